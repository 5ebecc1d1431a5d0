//! Same seed and spec ⇒ identical digest, whatever the shard count and backend; a different seed
//! ⇒ a different digest.

mod common;
use common::*;

fn digest_of(
    spec: &std::path::Path,
    dir: &std::path::Path,
    shards: u32,
    backend: &str,
    extra: &[&str],
) -> (String, u64) {
    let out = dir.join(format!("{backend}-{shards}-{}", extra.join("")));
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--quiet",
        "--shards",
        &*Box::leak(shards.to_string().into_boxed_str()),
        "--backend",
        backend,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    let s = summary(&out);
    assert_eq!(s["shards"], shards);
    assert_eq!(s["backend"], backend);
    (s["digest"].as_str().unwrap().to_string(), s["events"].as_u64().unwrap())
}

#[test]
fn digest_is_identical_across_shard_counts_backends_and_repeats() {
    let dir = scratch("determinism");
    let spec = write_spec(&dir, "small.toml", SMALL_PHOLD);
    let reference = digest_of(&spec, &dir, 1, "threads", &[]);
    assert!(reference.1 > 100_000, "the run should execute many events, got {}", reference.1);
    for backend in ["threads", "processes"] {
        for shards in [1, 2, 4] {
            let got = digest_of(&spec, &dir, shards, backend, &[]);
            assert_eq!(got, reference, "{backend} with {shards} shards differs from threads with 1 shard");
        }
    }
    // A repeat of a multi-shard run.
    assert_eq!(digest_of(&spec, &dir, 4, "threads", &[]), reference);
    // The digest does depend on the seed.
    let other = digest_of(&spec, &dir, 2, "threads", &["--seed", "8"]);
    assert_ne!(other.0, reference.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_default_experiment_is_deterministic_across_shards() {
    let dir = scratch("default");
    let run = |shards: &str, backend: &str| {
        let out = dir.join(format!("{backend}-{shards}"));
        run_ok(&["run", "--quiet", "--shards", shards, "--backend", backend, "--out", out.to_str().unwrap()]);
        summary(&out)["digest"].as_str().unwrap().to_string()
    };
    let one = run("1", "threads");
    assert_eq!(run("2", "processes"), one);
    assert_eq!(run("4", "threads"), one);
    std::fs::remove_dir_all(dir).unwrap();
}
