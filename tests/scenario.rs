//! Scenarios end to end: `[[scenario]]` partitions, delays, losses and bandwidth limits act on
//! surrogates' gossip and on direct hosts' packets alike, only within their windows, and runs
//! with them are deterministic across repeats, shard counts and backends.

mod common;

use common::*;

const GOSSIP: &str = r#"[gossip]
profile = "ethereum"

[traffic]
start = "5 s"
slot = "6 s"
beacon_block = { size = "10 KiB", proposer_delay = "0 ms" }
"#;

/// Two groups of 200 surrogates on a 10-ms switch, with `scenario` (TOML) appended.
fn two_groups(scenario: &str) -> String {
    SpecBuilder::switch(3, "40 s", "10 ms")
        .surrogates("a", 200, "")
        .surrogates("b", 200, "")
        .sections(GOSSIP)
        .sections(scenario)
        .text()
}

fn gossip_figure(dir: &std::path::Path, name: &str, text: &str, key: &str) -> f64 {
    let spec = write_spec(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    summary(&out)["gossip"][key].as_f64().unwrap()
}

#[test]
fn a_partition_between_surrogate_groups_cuts_delivery_until_it_heals_and_a_delay_slows_it() {
    let dir = scratch("scenario-gossip");
    let cut = "[[scenario]]\nat = \"10 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\n";
    let healed = "[[scenario]]\nat = \"10 s\"\nuntil = \"20 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\n";
    let slow = "[[scenario]]\nat = \"0 s\"\naction = \"delay\"\nbetween = [\"a\", \"b\"]\nextra = \"300 ms\"\n";
    let reliability = |name, scenario| gossip_figure(&dir, name, &two_groups(scenario), "reliability");
    let (none, cut_r, healed_r) = (reliability("none", ""), reliability("cut", cut), reliability("healed", healed));
    assert_eq!(none, 1.0, "every identity gets every block without a scenario");
    // Six blocks (5 s, 11 s, … 35 s): the first before the cut reaches everyone, the other five
    // only their publisher's half.
    assert!((cut_r - (1.0 + 5.0 * 0.5) / 6.0).abs() < 0.02, "partitioned to the end: {cut_r}");
    assert!(healed_r > cut_r + 0.2, "healed at 20 s, later blocks cross again: {healed_r} against {cut_r}");
    let p95 = |name, scenario| gossip_figure(&dir, name, &two_groups(scenario), "p95_ms");
    let (fast, slowed) = (p95("fast", ""), p95("slow", slow));
    assert!(slowed > fast + 250.0, "300 ms more between the halves: p95 {slowed} ms against {fast} ms");
    // Group a's uploads throttled to 2 Mbit/s (10 KiB blocks: 41 ms a copy, against 0.8 ms).
    let throttle = "[[scenario]]\nat = \"0 s\"\naction = \"bandwidth\"\nhosts = \"a\"\nup = \"2 Mbit\"\n";
    let throttled = p95("throttled", throttle);
    assert!(throttled > fast + 100.0, "a's uploads at 2 Mbit/s: p95 {throttled} ms against {fast} ms");
    // Only what crosses between the halves, each sender's at 2 Mbit/s.
    let narrow = "[[scenario]]\nat = \"0 s\"\naction = \"bandwidth\"\nbetween = [\"a\", \"b\"]\nup = \"2 Mbit\"\n";
    let narrowed = p95("narrow", narrow);
    assert!(narrowed > fast + 30.0, "the path between the halves at 2 Mbit/s: p95 {narrowed} ms against {fast} ms");

    let jittery = "[[scenario]]\nat = \"0 s\"\naction = \"jitter\"\nbetween = [\"a\", \"b\"]\nextra = \"50 ms\"\n";
    let limited = "[[scenario]]\nat = \"15 s\"\nuntil = \"25 s\"\naction = \"bandwidth\"\nhosts = \"b[0..50]\"\ndown = \"5 Mbit\"\nup = \"3 Mbit\"\n";
    let spec = write_spec(&dir, "det.toml", &two_groups(&format!("{healed}{slow}{jittery}{limited}{narrow}")));
    let digests = digests_by_run(
        &dir,
        &spec,
        &[
            ("one", &["--shards", "1"]),
            ("again", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("four", &["--shards", "4"]),
            ("procs", &["--shards", "2", "--backend", "processes"]),
        ],
    );
    let first = &digests["one"];
    assert!(digests.values().all(|d| d == first), "one digest on every run: {digests:?}");
}

#[test]
fn identities_that_go_offline_miss_the_blocks_of_their_outage_and_repeat_on_any_shard_count() {
    let dir = scratch("scenario-offline");
    // A quarter of the identities are offline from 10 s to 25 s: the blocks of 11, 17 and 23 s
    // reach at most the other three quarters; those of 5, 29 and 35 s everyone.
    let outage = "[[scenario]]\nat = \"10 s\"\nuntil = \"25 s\"\naction = \"offline\"\nhosts = \"a[0..100]\"\n";
    let r = gossip_figure(&dir, "outage", &two_groups(outage), "reliability");
    assert!(r <= 1.0 - 3.0 * 0.25 / 6.0 + 1e-9 && r > 0.6, "reliability {r}");
    let spec = write_spec(&dir, "det.toml", &two_groups(outage));
    let digests = digests_by_run(&dir, &spec, &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"]);
}

const PING_PY: &str = r#"import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.9)
t0 = time.monotonic()
for i in range(6):
    time.sleep(max(0.0, t0 + i - time.monotonic()))
    sent = time.monotonic()
    s.sendto(b"ping %d" % i, ("bob", 7000))
    try:
        s.recvfrom(100)
        print("reply", i, round((time.monotonic() - sent) * 1000), flush=True)
    except socket.timeout:
        print("lost", i, flush=True)
"#;

#[test]
fn a_partition_and_a_delay_between_direct_hosts_act_on_their_packets_within_their_windows() {
    let dir = scratch("scenario-direct");
    std::fs::write(dir.join("ping.py"), PING_PY).unwrap();
    let ping = dir.join("ping.py").display().to_string();
    let spec = SpecBuilder::alice_bob(5, "10 s", "1 Gbit")
        .process("alice", "/usr/bin/python3", &[&ping], "2 s", "")
        .process("bob", "socat", &["UDP4-LISTEN:7000,fork", "PIPE"], "1 s", "expected_exit = \"running\"\n")
        .sections(
            "[[scenario]]\nat = \"3500 ms\"\nuntil = \"5500 ms\"\naction = \"partition\"\nbetween = [\"alice\", \"bob\"]\n\
             [[scenario]]\nat = \"6500 ms\"\naction = \"delay\"\nfrom = \"bob\"\nto = \"alice\"\nextra = \"300 ms\"\n",
        )
        .write(&dir, "ping.toml");
    let mut results = Vec::new();
    for (name, shards) in [("one", "1"), ("two", "2")] {
        let out = dir.join(name);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap(), "--shards", shards]);
        results.push((read(out.join("hosts/alice/python3.0.stdout")), summary(&out)["digest"].clone()));
    }
    assert_eq!(results[0], results[1], "the same output and digest on one and two shards");
    // Pings at 2, 3, … 7 s, 25 ms each way: those at 4 and 5 s fall in the partition, the reply
    // to the one at 7 s takes 300 ms more (one way only).
    assert_eq!(results[0].0, "reply 0 50\nreply 1 50\nlost 2\nlost 3\nreply 4 50\nreply 5 350\n");
}

#[test]
fn jitter_between_direct_hosts_varies_each_packets_delay_below_its_bound_on_any_shard_count() {
    let dir = scratch("scenario-jitter");
    std::fs::write(dir.join("ping.py"), PING_PY).unwrap();
    let ping = dir.join("ping.py").display().to_string();
    let spec = SpecBuilder::alice_bob(5, "10 s", "1 Gbit")
        .process("alice", "/usr/bin/python3", &[&ping], "2 s", "")
        .process("bob", "socat", &["UDP4-LISTEN:7000,fork", "PIPE"], "1 s", "expected_exit = \"running\"\n")
        .sections(
            "[[scenario]]\nat = \"0 s\"\naction = \"jitter\"\nfrom = \"bob\"\nto = \"alice\"\nextra = \"200 ms\"\n",
        )
        .write(&dir, "jitter.toml");
    let mut results = Vec::new();
    for (name, shards) in [("one", "1"), ("again", "1"), ("two", "2")] {
        let out = dir.join(name);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap(), "--shards", shards]);
        results.push((read(out.join("hosts/alice/python3.0.stdout")), summary(&out)["digest"].clone()));
    }
    assert!(results.iter().all(|r| *r == results[0]), "the same output and digest on every run: {results:?}");
    // 25 ms each way and up to 200 ms more on the way back: every round trip in [50, 250) ms.
    let rtts: Vec<u64> = results[0]
        .0
        .lines()
        .map(|l| l.strip_prefix("reply ").unwrap().split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(rtts.len(), 6, "{}", results[0].0);
    assert!(rtts.iter().all(|&r| (50..250).contains(&r)), "{rtts:?}");
    assert!(rtts.iter().any(|&r| r != rtts[0]), "the delay varies: {rtts:?}");
}

/// Sends 1 MB to bob over TCP at 2 s and again at 6 s, each time waiting for bob's one-byte
/// answer, and prints how long each took (simulated ms).
const SEND_MB_PY: &str = r#"import socket, time
for at in (2.0, 6.0):
    time.sleep(max(0.0, at - (time.time() - 946684800)))
    s = socket.create_connection(("bob", 7000))
    t0 = time.time()
    s.sendall(b"x" * 1_000_000)
    s.recv(1)
    print(f"took {round((time.time() - t0) * 1000)}", flush=True)
    s.close()
"#;

/// Takes two connections, reads 1 MB from each and answers one byte.
const TAKE_MB_PY: &str = r#"import socket
srv = socket.create_server(("0.0.0.0", 7000))
for _ in range(2):
    c, _ = srv.accept()
    got = 0
    while got < 1_000_000:
        got += len(c.recv(65536))
    c.sendall(b"k")
    c.close()
"#;

#[test]
fn a_bandwidth_limit_throttles_a_direct_hosts_uploads_until_it_ends() {
    let dir = scratch("scenario-bandwidth");
    // alice's link limited, or only the path from alice to bob.
    for (case, selects) in [("link", "hosts = \"alice\""), ("path", "from = \"alice\"\nto = \"bob\"")] {
        let spec = SpecBuilder::alice_bob(5, "10 s", "1 Gbit")
            .process("alice", "/usr/bin/python3", &["-c", SEND_MB_PY], "1 s", "")
            .process("bob", "/usr/bin/python3", &["-c", TAKE_MB_PY], "1 s", "")
            .sections(&format!(
                "[[scenario]]\nat = \"0 s\"\nuntil = \"5 s\"\naction = \"bandwidth\"\n{selects}\nup = \"8 Mbit\"\n"
            ))
            .write(&dir, &format!("{case}.toml"));
        let mut results = Vec::new();
        for shards in ["1", "2"] {
            let out = dir.join(format!("{case}-{shards}"));
            run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap(), "--shards", shards]);
            results.push((read(out.join("hosts/alice/python3.0.stdout")), summary(&out)["digest"].clone()));
        }
        assert_eq!(results[0], results[1], "{case}: the same output and digest on one and two shards");
        let took: Vec<u64> = results[0].0.lines().map(|l| l.strip_prefix("took ").unwrap().parse().unwrap()).collect();
        // 1 MB (about 1.04 MB on the wire) at 8 Mbit/s takes over a second; at 1 Gbit/s the
        // 50-ms round trips of slow start dominate.
        assert!(took[0] >= 1_000 && took[0] < 1_400, "{case}: throttled: {took:?}");
        assert!(took[1] < 600, "{case}: the limit ended at 5 s: {took:?}");
    }
}

#[test]
fn a_bad_scenario_entry_is_refused_at_its_line_before_anything_runs() {
    let dir = scratch("scenario-bad");
    let text = two_groups("[[scenario]]\nat = \"10 s\"\naction = \"partition\"\nbetween = [\"a\", \"c\"]\n");
    let line = text.lines().position(|l| l.starts_with("between")).unwrap() + 1;
    let spec = write_spec(&dir, "bad.toml", &text);
    let out = run_with_deadline(
        &["run", spec.to_str().unwrap(), "-q", "--out", dir.join("out").to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("bad.toml:{line}:1: scenario[0].between: no hosts group named \"c\"")), "{err}");
    assert!(!dir.join("out").exists(), "nothing is written");
}
