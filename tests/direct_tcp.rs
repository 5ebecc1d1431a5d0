//! TCP on direct hosts end to end: unmodified Debian programs (python3, curl, nginx, iperf3) and a
//! C program talk TCP over each host's smoltcp stack and the simulated network, and give the same
//! bytes on every run and shard count.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The program at `path`, or a failed test naming the Debian package that provides it.
fn need(path: &str, package: &str) -> String {
    assert!(Path::new(path).is_file(), "this test needs {path} (apt-get install {package})");
    path.to_string()
}

/// Run `spec` into `dir/<name>` for each `(name, shards)`, returning each run's output folder and
/// digest.
fn runs(dir: &Path, spec: &Path, shards: &[(&str, &str)], extra: &[&str]) -> Vec<(PathBuf, String)> {
    shards
        .iter()
        .map(|(name, n)| {
            let out = dir.join(name);
            let mut args = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", n];
            args.extend_from_slice(extra);
            run_ok(&args);
            let digest = summary(&out)["digest"].as_str().unwrap().to_string();
            (out, digest)
        })
        .collect()
}

/// Two hosts 25 ms apart with the given symmetric bandwidth, and `processes` (TOML).
fn two_hosts(duration: &str, bandwidth: &str, processes: &str) -> String {
    format!(
        r#"
[run]
seed = 7
duration = "{duration}"

[network]
topology = "single-switch"
latency = "25 ms"

[[hosts]]
name = "alice"
kind = "direct"
count = 1
bandwidth = {{ up = "{bandwidth}", down = "{bandwidth}" }}

[[hosts]]
name = "bob"
kind = "direct"
count = 1
bandwidth = {{ up = "{bandwidth}", down = "{bandwidth}" }}
{processes}
"#
    )
}

const ECHO_SERVER_PY: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000))
s.listen(5)
for i in range(2):
    c, addr = s.accept()
    print("accepted", addr[0], "at", time.time(), flush=True)
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
        c.sendall(d)
    c.close()
    print("echoed", n, "bytes", flush=True)
"#;

const ECHO_CLIENT_PY: &str = r#"
import socket, time
big = bytes(range(256)) * 4000
for k in range(2):
    t0 = time.monotonic_ns()
    c = socket.create_connection(("10.0.0.2", 8000))
    print("connect", time.monotonic_ns() - t0, c.getsockname()[1], c.getpeername(), flush=True)
    for i in range(3):
        t0 = time.monotonic_ns()
        c.sendall(b"hello %d" % i)
        d = c.recv(100)
        print("rtt", i, d.decode(), time.monotonic_ns() - t0, flush=True)
    c.sendall(big)
    got = bytearray()
    while len(got) < len(big):
        got += c.recv(65536)
    print("big echo intact", got == big, flush=True)
    c.shutdown(socket.SHUT_WR)
    print("eof", c.recv(10), flush=True)
    c.close()
    time.sleep(1)
"#;

const ASYNC_SERVER_PY: &str = r#"
import asyncio, time
done = 0
async def echo(reader, writer):
    global done
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    done += 1
    print("async connection done at", time.time(), flush=True)
async def main():
    server = await asyncio.start_server(echo, "0.0.0.0", 8001)
    while done < 1:
        await asyncio.sleep(0.5)
    server.close()
asyncio.run(main())
"#;

const ASYNC_CLIENT_PY: &str = r#"
import asyncio, selectors, socket, time
# selectors: a non-blocking connect, then readiness through epoll.
sel = selectors.DefaultSelector()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(False)
t0 = time.monotonic_ns()
print("connect_ex", s.connect_ex(("10.0.0.2", 8001)) == 115, flush=True)  # EINPROGRESS
sel.register(s, selectors.EVENT_WRITE)
sel.select()
print("writable after", time.monotonic_ns() - t0, "SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), flush=True)
sel.modify(s, selectors.EVENT_READ)
for i in range(2):
    t0 = time.monotonic_ns()
    s.send(b"sel %d" % i)
    sel.select()
    print("selectors rtt", i, s.recv(100).decode(), time.monotonic_ns() - t0, flush=True)
s.close()
# asyncio streams on the same server.
async def main():
    reader, writer = await asyncio.open_connection("10.0.0.2", 8001)
    for i in range(2):
        t0 = time.monotonic_ns()
        writer.write(b"async %d" % i)
        data = await reader.read(100)
        print("asyncio rtt", i, data.decode(), time.monotonic_ns() - t0, flush=True)
    writer.close()
    await writer.wait_closed()
asyncio.run(main())
"#;

#[test]
fn python_tcp_echo_blocking_and_asyncio_take_the_models_latency_on_any_shard_count() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("tcp-echo");
    for (name, text) in [
        ("server.py", ECHO_SERVER_PY),
        ("client.py", ECHO_CLIENT_PY),
        ("aserver.py", ASYNC_SERVER_PY),
        ("aclient.py", ASYNC_CLIENT_PY),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let proc = |host: &str, script: &str, start: &str, i: usize| {
        format!(
            "[[processes]]\nhost = \"{host}\"\npath = \"{python}\"\nargs = [\"{}\"]\nstart = \"{start}\"\n# {i}\n",
            dir.join(script).display()
        )
    };
    let processes = [
        proc("bob", "server.py", "1 s", 0),
        proc("bob", "aserver.py", "1 s", 1),
        proc("alice", "client.py", "2 s", 0),
        proc("alice", "aclient.py", "6 s", 1),
    ]
    .concat();
    let spec = write_spec(&dir, "echo.toml", &two_hosts("20 s", "1 Gbit", &processes));
    let results = runs(&dir, &spec, &[("one", "1"), ("again", "1"), ("two", "2")], &["--pcap"]);
    let outputs: Vec<(String, String)> = results
        .iter()
        .map(|(out, digest)| {
            let files = ["alice/python3.0", "alice/python3.1", "bob/python3.0", "bob/python3.1"];
            let text: String = files.iter().map(|f| read(out.join(format!("hosts/{f}.stdout")))).collect();
            (text, digest.clone())
        })
        .collect();
    for o in &outputs[1..] {
        assert_eq!(*o, outputs[0], "stdout and digest are the same on every run and shard count");
    }
    let out = &results[0].0;
    let client = read(out.join("hosts/alice/python3.0.stdout"));
    // One way: the path's 25 ms plus serialising the packet on the sender's upload and the
    // receiver's download link at 1 Gbit/s: a SYN is 52 bytes (MSS, window scale, SACK options),
    // a segment with the 7-byte "hello i" 47 bytes.
    let syn_rtt = 2 * (25_000_000 + 2 * 52 * 8);
    let data_rtt = 2 * (25_000_000 + 2 * 47 * 8);
    let lines: Vec<&str> = client.lines().collect();
    assert_eq!(lines[0], format!("connect {syn_rtt} 49152 ('10.0.0.2', 8000)"), "{client}");
    assert!(lines[1].starts_with("rtt 0 hello 0 "), "{client}");
    for i in 1..3 {
        assert_eq!(lines[1 + i], format!("rtt {i} hello {i} {data_rtt}"), "{client}");
    }
    assert_eq!(lines[4..6], ["big echo intact True", "eof b''"], "{client}");
    assert_eq!(lines[6], format!("connect {syn_rtt} 49153 ('10.0.0.2', 8000)"), "{client}");
    let server = read(out.join("hosts/bob/python3.0.stdout"));
    assert_eq!(
        server.lines().filter(|l| l.starts_with("echoed")).collect::<Vec<_>>(),
        ["echoed 1024021 bytes", "echoed 1024021 bytes"],
        "{server}"
    );
    let aclient = read(out.join("hosts/alice/python3.1.stdout"));
    let alines: Vec<&str> = aclient.lines().collect();
    assert_eq!(alines[0], "connect_ex True", "{aclient}");
    assert_eq!(alines[1], format!("writable after {syn_rtt} SO_ERROR 0"), "{aclient}");
    let sel_rtt = 2 * (25_000_000 + 2 * (40 + 5) * 8);
    let async_rtt = 2 * (25_000_000 + 2 * (40 + 7) * 8);
    assert_eq!(alines[3], format!("selectors rtt 1 sel 1 {sel_rtt}"), "{aclient}");
    assert_eq!(alines[5], format!("asyncio rtt 1 async 1 {async_rtt}"), "{aclient}");
    check_pcap(&out.join("hosts/alice/packets.pcap"));
    check_tcp_bytes(out);
}

/// The capture is a pcap file with raw IPv4 records in time order, starting with alice's SYN to
/// bob's port 8000 at 2 s; tcpdump reads it when it is installed.
fn check_pcap(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 101, "LINKTYPE_RAW");
    let mut at = 24;
    let mut records = Vec::new();
    while at + 16 <= bytes.len() {
        let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
        let (sec, usec, caplen, len) = (word(0), word(4), word(8) as usize, word(12) as usize);
        assert_eq!(caplen, len, "whole packets");
        let packet = &bytes[at + 16..at + 16 + caplen];
        assert_eq!(packet[0] >> 4, 4, "IPv4");
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]) as usize, len, "IPv4 total length");
        records.push((sec as u64 * 1_000_000 + usec as u64, packet.to_vec()));
        at += 16 + caplen;
    }
    assert_eq!(at, bytes.len(), "no trailing bytes");
    assert!(records.windows(2).all(|w| w[0].0 <= w[1].0), "records in time order");
    let (t, syn) = &records[0];
    assert_eq!(*t, 2_000_000);
    assert_eq!((syn[9], &syn[12..16], &syn[16..20]), (6, &[10, 0, 0, 1][..], &[10, 0, 0, 2][..]));
    let tcp = &syn[20..];
    assert_eq!((u16::from_be_bytes([tcp[2], tcp[3]]), tcp[13]), (8000, 0x02), "a SYN to port 8000");
    if Path::new("/usr/bin/tcpdump").is_file() {
        let out = Command::new("/usr/bin/tcpdump").arg("-nr").arg(path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), records.len());
        assert!(text.lines().next().unwrap().contains("IP 10.0.0.1.49152 > 10.0.0.2.8000: Flags [S]"), "{text}");
    }
}

/// `direct_processes` counts the TCP payload each client sent and received.
fn check_tcp_bytes(out: &Path) {
    use arrow_array::{Array, StringArray, UInt64Array};
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("direct_processes.arrow")).unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (host, process, sent, recv) =
            (col("host_name"), col("process"), col("tcp_sent_bytes"), col("tcp_recv_bytes"));
        let host = host.as_any().downcast_ref::<StringArray>().unwrap();
        let process = process.as_any().downcast_ref::<StringArray>().unwrap();
        let sent = sent.as_any().downcast_ref::<UInt64Array>().unwrap();
        let recv = recv.as_any().downcast_ref::<UInt64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push((format!("{}/{}", host.value(i), process.value(i)), sent.value(i), recv.value(i)));
        }
    }
    // Per connection: three 7-byte messages and 1,024,000 bytes, echoed; two connections.
    let per = 3 * 7 + 1_024_000;
    assert!(rows.contains(&("alice/python3.0".to_string(), 2 * per, 2 * per)), "{rows:?}");
    assert!(rows.contains(&("bob/python3.0".to_string(), 2 * per, 2 * per)), "{rows:?}");
}
