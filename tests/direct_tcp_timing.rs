//! Linux's TCP timing on direct hosts, end to end: one Python program measures the congestion
//! window of a fresh connection, the time a 100 KiB message takes on a fresh, a warm and an idle
//! connection (initial window of 10 segments, slow start restarted after idle), the latency of a
//! request written in two parts on a fresh and a warm connection (quick ACKs first, then 40 ms
//! delayed ACKs that Nagle's rule waits for), and retransmissions (none on a loss-free path,
//! jittery or not). The program runs natively on loopback too, where the same rules hold.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

const TIMING_PY: &str = r#""""Linux TCP timing, measured from a program: the congestion window of a fresh connection,
transfer times of a 100 KiB message on a fresh, a warm and an idle connection (TCP_NODELAY, as
libp2p sets it, so that only the window shows), and the latency of
a small request written in two parts (write, write, read: Nagle holds the second part until the
first is acknowledged) on a fresh and a warm connection.

    timing.py server PORT           answer each message with one byte
    timing.py client HOST PORT      measure; prints one line per figure (times in µs)
"""
import socket, struct, sys, time

BIG = 100 * 1024


def info(s):
    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    rtt, = struct.unpack_from("I", b, 68)
    cwnd, = struct.unpack_from("I", b, 80)
    retrans, = struct.unpack_from("I", b, 100)
    return rtt, cwnd, retrans


def serve(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        while True:
            head = c.recv(4, socket.MSG_WAITALL)
            if len(head) < 4:
                break
            n, = struct.unpack("!I", head)
            if n == 0:
                c.close()
                return
            c.recv(n, socket.MSG_WAITALL)
            c.sendall(b"k")
        c.close()


def exchange(s, n, parts=1):
    """Send a message of n bytes (4-byte length, then the body) in `parts` writes; µs until the reply."""
    body = struct.pack("!I", n) + b"x" * n
    t0 = time.monotonic_ns()
    step = -(-len(body) // parts)
    for k in range(0, len(body), step):
        s.send(body[k:k + step])
    s.recv(1)
    return (time.monotonic_ns() - t0) // 1000


def client(host, port):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("cwnd_at_connect", info(s)[1], flush=True)
    print("fresh_100k_us", exchange(s, BIG), flush=True)
    for k in range(3):
        print("warm_100k_us", exchange(s, BIG), flush=True)
    time.sleep(12)
    print("idle_100k_us", exchange(s, BIG), flush=True)
    rtt, cwnd, retrans = info(s)
    print("retransmitted", retrans, flush=True)
    s.close()
    s = socket.create_connection((host, port))
    print("fresh_small_us", exchange(s, 96, parts=2), flush=True)
    for k in range(20):
        t = exchange(s, 96, parts=2)
    print("warm_small_us", t, flush=True)
    time.sleep(12)
    print("idle_small_us", exchange(s, 96, parts=2), flush=True)
    s.close()
    s = socket.create_connection((host, port))
    s.send(struct.pack("!I", 0))
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]))
"#;

/// One figure of the program's output (the last, if it is printed more than once).
fn figure(text: &str, key: &str) -> u64 {
    let line = text.lines().rfind(|l| l.starts_with(&format!("{key} "))).unwrap_or_else(|| panic!("{key} in {text}"));
    line[key.len() + 1..].parse().unwrap()
}

/// Two hosts (1 Gbit/s) on `network` (TOML), the program's server on bob and client on alice.
fn spec(dir: &Path, python: &str, network: &str, location: &str) -> std::path::PathBuf {
    let script = dir.join("timing.py").display().to_string();
    SpecBuilder::switch(5, "1 min", "25 ms")
        .network(network)
        .direct("alice", "1 Gbit", location)
        .direct("bob", "1 Gbit", location)
        .process("bob", python, &[&script, "server", "7000"], "1 s", "")
        .process("alice", python, &[&script, "client", "10.0.0.2", "7000"], "2 s", "")
        .write(dir, "timing.toml")
}

/// Run the spec on one and two shards (the same output and digest) and return the client's output.
fn simulated(dir: &Path, spec: &Path) -> String {
    let mut runs = Vec::new();
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        runs.push((
            read(out.join("hosts/alice/python3.0.stdout")),
            summary(&out)["digest"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(runs[0], runs[1], "the same output and digest on one and two shards");
    runs.swap_remove(0).0
}

/// The figures Linux's rules fix for a path of round trip `rtt` µs: the initial window, slow
/// start from it on a fresh and an idle connection (three round trips and a half for 71
/// segments, then half a round trip for the reply), a warm window sending 100 KiB at once (one
/// round trip with the reply), a quick ACK for a fresh connection's first
/// request and a 40 ms delayed ACK once both ends are interactive (idle does not end that), and
/// no retransmission. `slow_start`: check the figures that need a round trip longer than
/// loopback's.
fn check(text: &str, rtt: u64, slow_start: bool) {
    assert_eq!(figure(text, "cwnd_at_connect"), 10, "{text}");
    if slow_start {
        // Natively, a busy machine can make Linux's tail-loss probe fire on loopback.
        assert_eq!(figure(text, "retransmitted"), 0, "{text}");
        for key in ["fresh_100k_us", "idle_100k_us"] {
            let t = figure(text, key);
            assert!((4 * rtt..4 * rtt + rtt / 4).contains(&t), "{key}: {t} µs, {rtt} µs round trip: {text}");
        }
        let warm = figure(text, "warm_100k_us");
        assert!(warm < rtt + rtt / 4, "warm: {warm} µs: {text}");
    }
    // A request in two writes: the second waits for the ACK of the first, one round trip.
    let base = 2 * rtt;
    let fresh = figure(text, "fresh_small_us");
    assert!(fresh < base + 15_000, "fresh: quick ACK, {fresh} µs: {text}");
    for key in ["warm_small_us", "idle_small_us"] {
        let t = figure(text, key);
        assert!((base + 35_000..base + 55_000).contains(&t), "{key}: delayed ACK, {t} µs: {text}");
    }
}

#[test]
fn tcp_start_up_idle_restart_and_ack_timing_follow_linux_natively_and_simulated() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("tcp-timing");
    std::fs::write(dir.join("timing.py"), TIMING_PY).unwrap();
    let mut server = Command::new(&python)
        .args([dir.join("timing.py").to_str().unwrap(), "server", "47311"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("native server");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.as_mut().unwrap()), &mut line).unwrap();
    let native = Command::new(&python)
        .args([dir.join("timing.py").to_str().unwrap(), "client", "127.0.0.1", "47311"])
        .output()
        .expect("native client");
    let _ = server.wait();
    // Natively on loopback the round trip is a few µs: only the window and the ACK rules show.
    check(&String::from_utf8_lossy(&native.stdout), 0, false);
    let spec = spec(&dir, &python, "topology = \"single-switch\"\nlatency = \"25 ms\"", "");
    let text = simulated(&dir, &spec);
    // 25 ms each way, and serialising 100 KiB at 1 Gbit/s on both links.
    check(&text, 50_000, true);
}

#[test]
fn a_jittery_loss_free_path_keeps_segments_in_order_and_retransmits_nothing() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("tcp-timing-jitter");
    std::fs::write(dir.join("timing.py"), TIMING_PY).unwrap();
    // Germany to Germany in the RIPE table: 13.4 ms one way, jitter of ±6.7 ms.
    let spec = spec(&dir, &python, "topology = \"ripe-country\"", "location = \"DE\"\n");
    let text = simulated(&dir, &spec);
    assert_eq!(figure(&text, "retransmitted"), 0, "{text}");
    assert_eq!(figure(&text, "cwnd_at_connect"), 10, "{text}");
}
