//! Host operations in the scenario timeline, end to end: an admin command that drains a node and
//! a wait for its exit, a start that waits for a log line, a graceful restart, a wipe that keeps
//! the keys, a signal, a stop that escalates to SIGKILL; `{datadir}` kept across restarts;
//! `direct_logs` and `scenario_events` as tables; the same digest on repeats, on one and two
//! shards and on the processes backend; a bad step refused at its line.

mod common;

use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use common::*;
use std::path::Path;

/// A node: counts its starts in `{datadir}/count`, keeps an id in `{datadir}/keys/id`, serves an
/// admin port (`POST /shutdown` drains it), logs a tick each second, drains for 2 s on SIGTERM
/// or a shutdown request, and logs `reload` on SIGUSR1.
const NODE_PY: &str = r#"import os, signal, socket, sys, time
data = sys.argv[1]
os.makedirs(os.path.join(data, "keys"), exist_ok=True)
idf = os.path.join(data, "keys", "id")
if not os.path.exists(idf):
    open(idf, "w").write(os.urandom(4).hex())
cf = os.path.join(data, "count")
n = int(open(cf).read()) + 1 if os.path.exists(cf) else 1
open(cf, "w").write(str(n))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append("SIGTERM"))
signal.signal(signal.SIGUSR1, lambda *a: print("reload", flush=True))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8500))
srv.listen(4)
srv.settimeout(1.0)
print("listening start=%d id=%s" % (n, open(idf).read()), flush=True)
tick = 0
while not stop:
    try:
        c, _ = srv.accept()
        req = c.recv(1000)
        if b"/shutdown" in req:
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\ndraining\n")
            stop.append("admin")
        c.close()
    except socket.timeout:
        tick += 1
        print("tick", tick, flush=True)
    except InterruptedError:
        pass
print("draining after", stop[0], flush=True)
time.sleep(2)
print("stopped", flush=True)
"#;

const SCENARIO: &str = r#"
[[scenario]]
name = "drain"
at = "5 s"
hosts = "node"
action = "exec"
path = "curl"
args = ["-s", "-X", "POST", "http://127.0.0.1:8500/shutdown"]
process = "/usr/bin/python3"
wait = "exit"
timeout = "10 s"

[[scenario]]
name = "up"
after = "drain"
at = "1 s"
hosts = "node"
action = "start"
process = "/usr/bin/python3"
wait = "log"
line = "listening"
timeout = "5 s"

[[scenario]]
at = "20 s"
hosts = "node"
action = "restart"
process = "/usr/bin/python3"
grace = "5 s"

[[scenario]]
at = "30 s"
hosts = "node"
action = "wipe"
process = "/usr/bin/python3"
keep = ["keys"]

[[scenario]]
at = "40 s"
hosts = "node"
action = "signal"
process = "/usr/bin/python3"
signal = "SIGUSR1"

[[scenario]]
at = "44 s"
hosts = "node"
action = "stop"
process = "sh"
grace = "2 s"
wait = "exit"
timeout = "10 s"
"#;

fn spec_text(node: &Path) -> String {
    SpecBuilder::switch(11, "50 s", "10 ms")
        .sections("[[hosts]]\nname = \"node\"\nkind = \"direct\"\ncount = 2\n")
        .process(
            "node",
            "/usr/bin/python3",
            &[node.to_str().unwrap(), "{datadir}"],
            "1 s",
            "expected_exit = \"running\"\n",
        )
        .process(
            "node",
            "sh",
            &["-c", "trap '' TERM; while true; do sleep 1; done"],
            "1 s",
            "expected_exit = \"running\"\n",
        )
        .sections(SCENARIO)
        .text()
}

fn batches(path: &Path) -> Vec<RecordBatch> {
    thermocline_models::metrics::read_ipc_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).1
}

fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

fn times(b: &RecordBatch) -> Vec<u64> {
    let c = b.column_by_name("time_ns").unwrap().as_any().downcast_ref::<UInt64Array>().unwrap();
    c.values().to_vec()
}

/// Host `host`'s rows of a table with `host_name`, as (time in ms, the other columns named).
fn rows(path: &Path, host: &str, columns: &[&str]) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    for b in batches(path) {
        let names = strings(&b, "host_name");
        let cols: Vec<Vec<String>> = columns.iter().map(|c| strings(&b, c)).collect();
        for (i, t) in times(&b).into_iter().enumerate() {
            if names[i] == host {
                out.push((t / 1_000_000, cols.iter().map(|c| c[i].clone()).collect()));
            }
        }
    }
    out
}

#[test]
fn a_runbook_drains_restarts_wipes_and_kills_on_time_and_repeats_on_any_shard_count() {
    let dir = scratch("scenario-hosts");
    std::fs::write(dir.join("node.py"), NODE_PY).unwrap();
    let spec = write_spec(&dir, "runbook.toml", &spec_text(&dir.join("node.py")));
    let digests = digests_by_run(
        &dir,
        &spec,
        &[
            ("one", &["--shards", "1"]),
            ("again", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("procs", &["--shards", "2", "--backend", "processes"]),
        ],
    );
    assert!(digests.values().all(|d| *d == digests["one"]), "one digest on every run: {digests:?}");

    let out = dir.join("one");
    let events = rows(&out.join("scenario_events.arrow"), "node1", &["step", "event", "detail"]);
    let seen = |step: &str, event: &str| -> Vec<u64> {
        events.iter().filter(|(_, c)| c[0] == step && c[1] == event).map(|(t, _)| *t).collect()
    };
    // The admin command drains the node, which exits 2 s later; the start 1 s after that ends
    // when the new instance logs "listening".
    assert_eq!(seen("drain", "exec"), [5000]);
    let drained = seen("drain", "done");
    assert!(drained.len() == 1 && (7000..7100).contains(&drained[0]), "{events:?}");
    assert_eq!(seen("up", "begin"), [drained[0] + 1000]);
    assert_eq!(seen("up", "done").len(), 1, "{events:?}");
    // The restart's SIGTERM is honoured within the grace period (2 s of draining): no kill.
    let restart = seen("scenario[2]", "stopped");
    assert!(restart.len() == 1 && (22_000..22_100).contains(&restart[0]), "{events:?}");
    assert!(seen("scenario[2]", "kill").is_empty() && seen("scenario[3]", "wipe").len() == 1);
    // The shell ignores SIGTERM: killed when its grace period ends.
    assert_eq!(seen("scenario[5]", "kill"), [46_000]);
    let ended: Vec<&String> =
        events.iter().filter(|(_, c)| c[0] == "scenario[5]" && c[1] == "exited").map(|(_, c)| &c[2]).collect();
    assert_eq!(ended, ["sh.1 SIGKILL"]);
    assert_eq!(seen("scenario[5]", "done"), [46_000]);

    // The node's lines, timed: four starts (the first, after the drain, after the restart, after
    // the wipe, which reset the count but kept the id), the reload at 40 s.
    let lines = rows(&out.join("direct_logs.arrow"), "node1", &["process", "line"]);
    let node: Vec<(u64, &str)> =
        lines.iter().filter(|(_, c)| c[0] == "python3.0").map(|(t, c)| (*t, c[1].as_str())).collect();
    let starts: Vec<&str> = node.iter().filter(|(_, l)| l.starts_with("listening")).map(|(_, l)| *l).collect();
    let id = starts[0].rsplit_once("id=").unwrap().1;
    assert_eq!(
        starts,
        [1, 2, 3, 1].map(|n| format!("listening start={n} id={id}")),
        "the count survives restarts, not the wipe; the key survives both"
    );
    assert!(node.iter().any(|&(t, l)| l == "reload" && (40_000..40_100).contains(&t)), "{node:?}");
    assert!(node.iter().any(|&(t, l)| l == "draining after admin" && (5000..5100).contains(&t)), "{node:?}");
    assert!(node.iter().any(|&(t, l)| l == "draining after SIGTERM" && (20_000..20_100).contains(&t)));
    // The stdout file holds every instance's lines, in order, as the table does.
    let file = read(out.join("hosts/node1/python3.0.stdout"));
    let table: Vec<&str> = node.iter().map(|(_, l)| *l).collect();
    assert_eq!(file.lines().collect::<Vec<_>>(), table);
    assert_eq!(read(out.join("hosts/node1/curl.2.stdout")), "draining\n", "the admin command's answer");
}

/// Prints the simulated time (ms) each second, and `term` when told to end.
const TICK_PY: &str = r#"import signal, sys, time
def term(*_):
    print("term", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
while True:
    time.sleep(1)
    print(f"tick {round((time.time() - 946684800) * 1000)}", flush=True)
"#;

/// Sends a datagram to alice's echo port at 2 s and at 4 s and prints each answer's round trip.
const PING_TWICE_PY: &str = r#"import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for at in (2.0, 4.0):
    time.sleep(max(0.0, at - (time.time() - 946684800)))
    t0 = time.time()
    s.sendto(b"ping", ("alice", 7000))
    s.recv(16)
    print(f"rtt {round((time.time() - t0) * 1000)}", flush=True)
"#;

#[test]
fn a_paused_host_runs_nothing_until_resumed_while_its_network_stack_queues() {
    let dir = scratch("scenario-pause");
    let spec = SpecBuilder::alice_bob(2, "10 s", "100 Mbit")
        .process("alice", "/usr/bin/python3", &["-c", TICK_PY], "0 s", "expected_exit = \"running\"\n")
        .process("alice", "/usr/bin/socat", &["UDP4-LISTEN:7000,fork", "PIPE"], "0 s", "expected_exit = \"running\"\n")
        .process("bob", "/usr/bin/python3", &["-c", PING_TWICE_PY], "1 s", "")
        .sections(
            "[[scenario]]\nname = \"freeze\"\nat = \"3500 ms\"\nhosts = \"alice\"\naction = \"pause\"\n\n\
             [[scenario]]\nafter = \"freeze\"\nat = \"3 s\"\nhosts = \"alice\"\naction = \"resume\"\n",
        )
        .write(&dir, "pause.toml");
    let digests = digests_by_run(&dir, &spec, &[("one", &[]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"]);
    let ticks: Vec<u64> = read(dir.join("one/hosts/alice/python3.0.stdout"))
        .lines()
        .filter_map(|l| l.strip_prefix("tick ").map(|t| t.parse().unwrap()))
        .collect();
    // Each second, but nothing while paused from 3.5 s to 6.5 s: the sleep due to end at 4 s
    // ends at the resume.
    assert_eq!(ticks[..6], [1000, 2000, 3000, 6500, 7500, 8500], "{ticks:?}");
    // The echo answers at once before the pause; the ping of 4 s waits in alice's socket until
    // the resume, 2.5 s later (25 ms each way).
    let rtts = read(dir.join("one/hosts/bob/python3.0.stdout"));
    assert_eq!(rtts, "rtt 50\nrtt 2525\n");
    let events = rows(&dir.join("one/scenario_events.arrow"), "alice", &["event", "detail"]);
    let paused: Vec<(u64, String)> =
        events.iter().filter(|(_, c)| c[0] == "pause" || c[0] == "resume").map(|(t, c)| (*t, c[0].clone())).collect();
    assert_eq!(
        paused,
        [(3500, "pause".into()), (3500, "pause".into()), (6500, "resume".into()), (6500, "resume".into())],
        "both of alice's processes"
    );

    // Paused for good at 3.5 s; the ticker restarted at 5 s: its SIGTERM waits (the handler
    // would run at a resume), the grace period ends in SIGKILL at 6 s, and the new instance runs
    // unpaused. The echo server is still paused when the run ends, and is stopped as usual.
    let spec = SpecBuilder::alice_bob(2, "10 s", "100 Mbit")
        .process("alice", "/usr/bin/python3", &["-c", TICK_PY], "0 s", "expected_exit = \"running\"\n")
        .process("alice", "/usr/bin/socat", &["UDP4-LISTEN:7000,fork", "PIPE"], "0 s", "expected_exit = \"running\"\n")
        .sections(
            "[[scenario]]\nat = \"3500 ms\"\nhosts = \"alice\"\naction = \"pause\"\n\n\
             [[scenario]]\nat = \"5 s\"\nhosts = \"alice\"\nprocess = \"python3\"\naction = \"restart\"\ngrace = \"1 s\"\n",
        )
        .write(&dir, "frozen.toml");
    let digests = digests_by_run(&dir, &spec, &[("frozen", &[]), ("frozen-two", &["--shards", "2"])]);
    assert_eq!(digests["frozen"], digests["frozen-two"]);
    let out = read(dir.join("frozen/hosts/alice/python3.0.stdout"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["tick 1000", "tick 2000", "tick 3000"], "{out}");
    let later: Vec<u64> = lines.iter().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).skip(3).collect();
    assert!(!later.is_empty() && later.iter().all(|&t| t > 6000), "the new instance ticks, unpaused: {out}");
    assert_eq!(lines.last(), Some(&"term"), "the end of the run stops it with SIGTERM: {out}");
    let events = rows(&dir.join("frozen/scenario_events.arrow"), "alice", &["event", "detail"]);
    assert!(events.iter().any(|(t, c)| *t == 6000 && c[0] == "kill"), "{events:?}");
}

#[test]
fn a_bad_host_step_is_refused_at_its_line() {
    let dir = scratch("scenario-hosts-bad");
    let node = dir.join("node.py");
    // (what the good spec says, what the bad one says instead, whether the error points at the
    // bad line, what it says)
    let cases = [
        ("process = \"sh\"\ngrace", "process = \"nginx\"\ngrace", true, "is none of group \"node\"'s [[processes]]"),
        ("hosts = \"node\"\naction = \"stop\"", "hosts = \"node[1..3]\"\naction = \"stop\"", true, "indices"),
        ("wait = \"exit\"\ntimeout", "wait = \"log\"\ntimeout", false, "non-empty"),
    ];
    for (i, (good, bad, at_line, message)) in cases.into_iter().enumerate() {
        let text = spec_text(&node).replacen(good, bad, 1);
        assert_ne!(text, spec_text(&node), "case {i} changes the spec");
        let spec = write_spec(&dir, &format!("bad{i}.toml"), &text);
        let out = run_with_deadline(
            &["run", spec.to_str().unwrap(), "-q", "--out", dir.join("out").to_str().unwrap()],
            std::time::Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i}");
        assert!(err.contains(message), "case {i}: {err}");
        let first = bad.lines().next().unwrap();
        let line = text.lines().position(|l| l == first).unwrap() + 1;
        let place = if at_line { format!("bad{i}.toml:{line}:") } else { format!("bad{i}.toml") };
        assert!(err.contains(&place), "case {i} names {place}: {err}");
        assert!(!dir.join("out").exists(), "nothing is written");
    }
}
