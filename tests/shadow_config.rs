//! End-to-end: Shadow 3.x configurations run as they are (`thermocline run shadow.yaml`) and as
//! the TOML spec `thermocline import` prints, with the configurations of `experiments/shadow/`
//! (written in the style of Shadow's documentation examples): Python's HTTP server and curl
//! clients on the built-in 1 Gbit switch, and a TCP echo pair across a lossy inline GML graph.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A configuration of `experiments/shadow/`.
fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shadow").join(name)
}

/// `thermocline import config`, written to `dir/name`.
fn import(dir: &Path, config: &Path, name: &str) -> PathBuf {
    let out = run_ok(&["import", config.to_str().unwrap()]);
    write_spec(dir, name, &String::from_utf8(out.stdout).unwrap())
}

/// What `seq 1 20000` prints: the file the server writes and the clients fetch.
fn seq() -> String {
    (1..=20_000).map(|i| format!("{i}\n")).collect()
}

#[test]
fn shadows_http_example_runs_its_curl_clients_to_exit_0_with_the_server_running() {
    need("/usr/bin/curl", "curl");
    need("/usr/bin/python3", "python3");
    let dir = scratch("shadow-http");
    let yaml = config("http-server.yaml");
    let digests = digests_by_run(&dir, &yaml, &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"], "1 and 2 shards");
    let out = dir.join("one");
    for client in ["client1", "client2", "client3"] {
        assert_eq!(read(out.join(format!("hosts/{client}/data.txt"))), seq(), "{client} fetched the whole file");
    }
    let log = read(out.join("hosts/server/python3.1.stderr"));
    assert_eq!(log.matches("\"GET /data.txt HTTP/1.1\" 200").count(), 3, "{log}");
    // Shadow's host names resolve, and the clients started at 5 s (Shadow's calendar starts in 2000).
    assert!(log.contains("[01/Jan/2000 00:00:05]"), "{log}");

    // The final states are checked: the server is still running, so expecting it to exit fails.
    let text = std::fs::read_to_string(&yaml).unwrap().replace("expected_final_state: running", "");
    let wrong = write_spec(&dir, "wrong.yaml", &text);
    let failed = run_with_deadline(
        &["run", wrong.to_str().unwrap(), "-q", "--out", dir.join("wrong").to_str().unwrap()],
        std::time::Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("host server process python3") && stderr.contains("expected exit 0"), "{stderr}");
}

#[test]
fn a_tcp_echo_pair_crosses_a_lossy_inline_graph_intact_and_loss_slows_it() {
    need("/usr/bin/python3", "python3");
    need("/usr/bin/socat", "socat");
    let dir = scratch("shadow-echo");
    let yaml = config("tcp-echo.yaml");
    let digests = digests_by_run(&dir, &yaml, &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"], "1 and 2 shards");
    let took = |out: &Path| -> f64 {
        let lines = read(out.join("hosts/echo.client/python3.0.stdout"));
        assert!(lines.starts_with("echoed 200000 bytes, intact: True\n"), "{lines}");
        lines.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
    };
    let lossy = took(&dir.join("one"));
    let text = std::fs::read_to_string(&yaml).unwrap().replace("packet_loss 0.02", "packet_loss 0.0");
    let clean_yaml = write_spec(&dir, "clean.yaml", &text);
    let clean = dir.join("clean");
    run_ok(&["run", clean_yaml.to_str().unwrap(), "-q", "--out", clean.to_str().unwrap()]);
    let clean = took(&clean);
    // 200 kB up at 10 Mbit/s and back at 20 Mbit/s, across 25 ms: at least 0.24 s; losses of 2 %
    // each way cost retransmissions on top.
    assert!(clean >= 0.24 && lossy > clean + 0.05, "clean {clean} s, lossy {lossy} s");
}

#[test]
fn the_imported_spec_runs_to_the_same_digest_as_the_configuration() {
    need("/usr/bin/python3", "python3");
    need("/usr/bin/socat", "socat");
    let dir = scratch("shadow-import");
    let yaml = config("tcp-echo.yaml");
    let toml = import(&dir, &yaml, "tcp-echo.toml");
    let text = read(toml.clone());
    assert!(text.starts_with("# Imported from the Shadow configuration tcp-echo.yaml"), "{text}");
    assert!(text.contains("stop = \"2 s\"\nstop_signal = \"SIGKILL\""), "{text}");
    let from_yaml = digests_by_run(&dir, &yaml, &[("yaml", &[])]);
    let from_toml = digests_by_run(&dir, &toml, &[("toml", &["--shards", "2"])]);
    assert_eq!(from_yaml["yaml"], from_toml["toml"]);
}

#[test]
fn unsupported_and_unknown_keys_are_refused_at_their_line_and_column() {
    let dir = scratch("shadow-refused");
    let base = "general:\n  stop_time: 10 s\nnetwork:\n  graph:\n    type: 1_gbit_switch\nhosts:\n  a:\n    \
                network_node_id: 0\n    processes:\n    - path: true\n";
    let cases = [
        (
            base.replace("stop_time: 10 s\n", "stop_time: 10 s\n  bootstrap_end_time: 5 s\n"),
            "3:23: `general.bootstrap_end_time` is not supported: Thermocline has no bootstrap period",
        ),
        (
            format!("{base}experimental:\n  interface_qdisc: round-robin\n"),
            "12:20: `experimental.interface_qdisc` is not supported",
        ),
        (base.replace("    processes:", "    procesess:"), "9:5: unknown key `procesess` in hosts.a"),
        (
            base.replace("type: 1_gbit_switch", "type: gml\n    file:\n      path: g.gml.xz\n      compression: xz"),
            "8:20: compressed graphs are not read",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = write_spec(&dir, &format!("c{i}.yaml"), text);
        for command in ["run", "import"] {
            let out = run_with_deadline(&[command, path.to_str().unwrap()], std::time::Duration::from_secs(60));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} c{i}: {stderr}");
            let at = format!("error: {}:{expected}", path.display());
            assert!(stderr.starts_with(&at), "{command} c{i}: expected {at:?}, got:\n{stderr}");
        }
    }
}
