//! End-to-end, ingress QoS under attack: `experiments/specs/qos-attack.toml` — an ingress node
//! (`nodes/qos`) verifying 4,000 ed25519 transactions a second, 8 honest traffic sources sending
//! 2,000 valid ones a second, and from 15 s to 30 s 16 flood sources sending 20,000 a second with
//! bad signatures. Without the flood every honest transaction is verified; with it and no
//! scoring the flood crowds most of them out; with scoring the node serves the honest sources
//! as if there were no flood. The sources send what they were asked, and the run repeats on one
//! and two shards.

mod common;

use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use common::*;
use std::path::Path;

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap().as_any().downcast_ref::<T>().unwrap()
}

/// The node's `good=` count at each second it reported, from `direct_logs`.
fn good_by_second(out: &Path) -> Vec<(u64, u64)> {
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("direct_logs.arrow")).unwrap();
    let mut seen = Vec::new();
    for b in &batches {
        let (proc, line) = (column::<StringArray>(b, "process"), column::<StringArray>(b, "line"));
        for i in 0..b.num_rows() {
            let text = line.value(i);
            if proc.value(i) != "qos-node.0" || !text.starts_with("t=") {
                continue;
            }
            let field = |k: &str| -> u64 {
                text.split_whitespace().find_map(|f| f.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap()
            };
            seen.push((field("t="), field("good=")));
        }
    }
    seen
}

/// Valid transactions verified per second from 17 s to 29 s (the flood well under way).
fn honest_rate(out: &Path) -> f64 {
    let good = good_by_second(out);
    let at =
        |t: u64| good.iter().find(|(s, _)| *s == t).map(|(_, g)| *g).unwrap_or_else(|| panic!("no t={t} in {good:?}"));
    (at(29) - at(17)) as f64 / 12.0
}

#[test]
fn scoring_keeps_honest_throughput_under_a_flood_of_bad_signatures() {
    let node = node_program("qos-node");
    let dir = scratch("scenario-qos");
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs/qos-attack.toml"))
        .replace("../../target/release/qos-node", &node.display().to_string());
    let flood_at = text.rfind("[[traffic_sources]]").unwrap();
    let variants = [
        ("calm", text[..flood_at].to_string()),
        ("scoring", text.clone()),
        ("blind", text.replace(r#""--scoring", "on""#, r#""--scoring", "off""#)),
    ];
    let mut rates = Vec::new();
    for (name, spec_text) in &variants {
        assert!(name == &"scoring" || spec_text != &text, "{name} differs from the experiment");
        let spec = write_spec(&dir, &format!("{name}.toml"), spec_text);
        let out = dir.join(name);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
        rates.push(honest_rate(&out));
    }
    let [calm, scoring, blind] = rates[..] else { unreachable!() };
    assert!(calm > 1900.0, "without the flood every honest transaction is verified: {calm}/s");
    assert!(blind < 0.5 * calm, "the flood crowds honest transactions out without scoring: {blind}/s of {calm}/s");
    assert!(scoring > 0.98 * calm, "scoring restores honest throughput: {scoring}/s of {calm}/s");

    // What the sources sent: every flood transaction bad, no honest one; about rate × time.
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&dir.join("scoring/traffic_sources.arrow")).unwrap();
    let mut flood_sent = 0;
    for b in &batches {
        let (names, sent, invalid) = (
            column::<StringArray>(b, "host_name"),
            column::<UInt64Array>(b, "sent"),
            column::<UInt64Array>(b, "invalid"),
        );
        for i in 0..b.num_rows() {
            let flood = names.value(i).starts_with("flood");
            assert_eq!(invalid.value(i), if flood { sent.value(i) } else { 0 }, "{}", names.value(i));
            flood_sent += if flood { sent.value(i) } else { 0 };
        }
    }
    assert!((285_000..315_000).contains(&flood_sent), "16 × 1,250/s × 15 s = 300,000: {flood_sent}");

    let two = digests_by_run(&dir, &dir.join("scoring.toml"), &[("two", &["--shards", "2"])]);
    assert_eq!(
        two["two"],
        summary(&dir.join("scoring"))["digest"].as_str().unwrap(),
        "one digest on one and two shards"
    );
}
