//! TCP on direct hosts end to end: unmodified Debian programs (python3, curl, nginx, iperf3) and a
//! C program talk TCP over each host's smoltcp stack and the simulated network, and give the same
//! bytes on every run and shard count.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    SpecBuilder::alice_bob(7, duration, bandwidth).processes_toml(processes).text()
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
    // Linux's quick-ACK mode: the client acknowledges the echo of "hello 0" at once with a
    // 40-byte ACK, which "hello 1" follows on the upload link (320 ns at 1 Gbit/s); from then on
    // both ends are interactive (data follows data within the delayed-ACK timeout) and ACKs ride
    // on the data.
    assert_eq!(lines[2], format!("rtt 1 hello 1 {}", data_rtt + 40 * 8), "{client}");
    assert_eq!(lines[3], format!("rtt 2 hello 2 {data_rtt}"), "{client}");
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
    // Each follows the quick ACK of the previous echo on the upload link, as "hello 1" above.
    let sel_rtt = 2 * (25_000_000 + 2 * (40 + 5) * 8) + 40 * 8;
    let async_rtt = 2 * (25_000_000 + 2 * (40 + 7) * 8) + 40 * 8;
    assert_eq!(alines[3], format!("selectors rtt 1 sel 1 {sel_rtt}"), "{aclient}");
    assert_eq!(alines[5], format!("asyncio rtt 1 async 1 {async_rtt}"), "{aclient}");
    check_pcap(&out.join("hosts/alice/packets.pcap"));
    check_tcp_bytes(out);
}

#[test]
fn receive_coalescing_hands_packets_over_at_the_end_of_the_window() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("tcp-coalesce");
    for (name, text) in [("server.py", ECHO_SERVER_PY), ("client.py", ECHO_CLIENT_PY)] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let spec = SpecBuilder::alice_bob(7, "20 s", "1 Gbit")
        .network("topology = \"single-switch\"\nlatency = \"25 ms\"\nrx_coalesce = \"1 ms\"")
        .process("bob", &python, &[dir.join("server.py").to_str().unwrap()], "1 s", "")
        .process("alice", &python, &[dir.join("client.py").to_str().unwrap()], "2 s", "")
        .write(&dir, "coalesce.toml");
    let results = runs(&dir, &spec, &[("one", "1"), ("two", "2")], &["--pcap"]);
    assert_eq!(results[0].1, results[1].1, "the same digest on one and two shards");
    let out = &results[0].0;
    let client = read(out.join("hosts/alice/python3.0.stdout"));
    assert_eq!(client, read(results[1].0.join("hosts/alice/python3.0.stdout")));
    // Every packet that finds no window open waits the whole window at its receiver's card, so
    // a round trip takes 2 ms more than without coalescing (see the echo test above). "hello 1"
    // follows the client's 40-byte quick ACK, which opens bob's window when its download ends:
    // the two are handed over together a window later, so "hello 1" waits the window less the
    // time it downloaded after the ACK, and its round trip is 2 ms more than without coalescing
    // or the ACK, less twice the 7 bytes by which it is longer than the ACK (112 ns at 1 Gbit/s).
    let syn_rtt = 2 * (25_000_000 + 2 * 52 * 8) + 2_000_000;
    let data_rtt = 2 * (25_000_000 + 2 * 47 * 8) + 2_000_000;
    let lines: Vec<&str> = client.lines().collect();
    assert_eq!(lines[0], format!("connect {syn_rtt} 49152 ('10.0.0.2', 8000)"), "{client}");
    assert_eq!(lines[2], format!("rtt 1 hello 1 {}", data_rtt - 2 * (47 - 40) * 8), "{client}");
    assert_eq!(lines[3], format!("rtt 2 hello 2 {data_rtt}"), "{client}");
    assert_eq!(lines[4..6], ["big echo intact True", "eof b''"], "{client}");
    // The capture keeps each packet's arrival at the card, before the window ends.
    check_pcap(&out.join("hosts/alice/packets.pcap"));
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

/// Linux's socket semantics where they differ from smoltcp's, on one host's loopback.
const SEMANTICS_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static volatile int pipes;
static void on_pipe(int s) { pipes++; }
static long long now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (t.tv_sec - 3600) * 1000000LL + t.tv_nsec / 1000; }
static struct sockaddr_in addr(int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); a.sin_port = htons(port);
    return a;
}
static const char *err(int r) { return r < 0 ? strerrorname_np(errno) : "ok"; }
static int listener(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr(port);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8)) printf("listener %d: %s\n", port, strerror(errno));
    return l;
}
static int dial(int port) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr(port);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    if (r) printf("dial %d: %s\n", port, strerrorname_np(errno));
    return c;
}
static int events(int ep, int timeout_ms) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, timeout_ms), mask = 0;
    for (int i = 0; i < n; i++) mask |= ev[i].data.u32;
    return n < 0 ? -1 : mask;
}

int main(void) {
    signal(SIGPIPE, on_pipe);
    int l = listener(7000), one = 1, v; socklen_t len = sizeof v;
    char buf[256];
    ssize_t k;
    /* Address in use: without SO_REUSEADDR, and with it while the port is listening. */
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr(7000);
    printf("bind busy port: %s\n", err(bind(b, (struct sockaddr *)&a, sizeof a)));
    setsockopt(b, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    printf("bind busy port with SO_REUSEADDR: %s\n", err(bind(b, (struct sockaddr *)&a, sizeof a)));
    close(b);
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
    printf("SO_ACCEPTCONN %d\n", v);
    /* Non-blocking accept with nothing queued. */
    fcntl(l, F_SETFL, O_NONBLOCK);
    printf("accept empty: %s\n", err(accept(l, 0, 0)));
    /* Refused, blocking and non-blocking. */
    long long t0 = now_us();
    int c = dial(7001);
    printf("refused after %lld us\n", now_us() - t0);
    close(c);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in r = addr(7001);
    printf("nonblocking connect refused: %s\n", err(connect(c, (struct sockaddr *)&r, sizeof r)));
    struct pollfd p = {c, POLLOUT, 0};
    int n = poll(&p, 1, 1000);
    printf("poll %d revents %#x\n", n, p.revents);
    getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &len);
    printf("SO_ERROR %s, ", strerrorname_np(v));
    getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &len);
    printf("then %d\n", v);
    close(c);
    /* Non-blocking connect that succeeds. */
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    printf("nonblocking connect: %s\n", err(connect(c, (struct sockaddr *)&a, sizeof a)));
    printf("again: %s\n", err(connect(c, (struct sockaddr *)&a, sizeof a)));
    p.fd = c; p.events = POLLOUT; p.revents = 0;
    t0 = now_us();
    n = poll(&p, 1, 1000);
    printf("poll %d revents %#x after %lld us\n", n, p.revents, now_us() - t0);
    getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &len);
    printf("SO_ERROR %d; connect again: %s\n", v, err(connect(c, (struct sockaddr *)&a, sizeof a)));
    struct pollfd lp = {l, POLLIN, 0};
    t0 = now_us();
    n = poll(&lp, 1, 1000);
    printf("listener poll %d revents %#x after %lld us\n", n, lp.revents, now_us() - t0);
    struct sockaddr_in peer; socklen_t plen = sizeof peer;
    int s = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    struct sockaddr_in me; socklen_t mlen = sizeof me;
    getsockname(c, (struct sockaddr *)&me, &mlen);
    printf("accepted from %s port matches %d ephemeral %d cloexec %d\n", inet_ntoa(peer.sin_addr), peer.sin_port == me.sin_port, ntohs(me.sin_port) >= 49152, fcntl(s, F_GETFD));
    fcntl(c, F_SETFL, 0);
    /* Options. */
    v = 4000; setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &len);
    printf("SO_RCVBUF set 4000 reads %d\n", v);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    getsockopt(s, SOL_SOCKET, SO_TYPE, &b, &len);
    struct tcp_info ti; socklen_t ilen = sizeof ti;
    memset(&ti, 0xff, sizeof ti);
    const char *info = err(getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &ilen));
    printf("TCP_NODELAY %d SO_TYPE stream %d TCP_INFO %s state %d mss %u pmtu %u rtt %u len %d\n", v,
           b == SOCK_STREAM, info, ti.tcpi_state, ti.tcpi_snd_mss, ti.tcpi_pmtu, ti.tcpi_rtt, ilen == sizeof ti);
    /* Data, PEEK, FIONREAD, WAITALL, receive timeout. */
    write(c, "hello", 5);
    usleep(1000);
    ioctl(s, FIONREAD, &v);
    k = recv(s, buf, sizeof buf, MSG_PEEK);
    printf("FIONREAD %d peek %zd ", v, k);
    k = read(s, buf, sizeof buf);
    printf("read %zd '%.5s'\n", k, buf);
    struct timeval tv = {0, 200000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t0 = now_us();
    const char *to = err(recv(s, buf, sizeof buf, 0));
    printf("recv timeout: %s after %lld us\n", to, now_us() - t0);
    if (fork() == 0) {
        usleep(50000); write(c, "abc", 3);
        usleep(50000); write(c, "defgh", 5);
        _exit(0);
    }
    t0 = now_us();
    k = recv(s, buf, 8, MSG_WAITALL);
    printf("waitall %zd '%.8s' after %lld us\n", k, buf, now_us() - t0);
    /* Edge- and level-triggered epoll, and one-shot. */
    int ep = epoll_create1(0);
    struct epoll_event e = {EPOLLIN, {.u32 = 1}};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
    int c2 = dial(7000);
    poll(&lp, 1, 1000);
    int s2 = accept(l, 0, 0);
    /* Without Nagle, small writes go out at once (smoltcp's Nagle would hold them for an ACK). */
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    e.events = EPOLLIN | EPOLLET; e.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, s2, &e);
    write(c, "x", 1); write(c2, "y", 1);
    n = events(ep, 1000);
    printf("epoll both %d\n", n);
    n = events(ep, 0);
    printf("epoll unread: LT %d\n", n);
    read(s, buf, sizeof buf);
    write(c2, "z", 1);
    n = events(ep, 1000);
    printf("epoll new data on ET %d\n", n);
    epoll_ctl(ep, EPOLL_CTL_DEL, s, 0);
    e.events = EPOLLOUT | EPOLLET; e.data.u32 = 4;
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
    printf("ET EPOLLOUT once %d", events(ep, 0));
    t0 = now_us();
    n = events(ep, 100);
    printf(" then %d after %lld us\n", n, now_us() - t0);
    epoll_ctl(ep, EPOLL_CTL_DEL, c, 0);
    e.events = EPOLLIN | EPOLLONESHOT; e.data.u32 = 8;
    epoll_ctl(ep, EPOLL_CTL_MOD, s2, &e);
    printf("oneshot %d", events(ep, 1000));
    write(c2, "w", 1);
    printf(" disarmed %d", events(ep, 10));
    epoll_ctl(ep, EPOLL_CTL_MOD, s2, &e);
    printf(" rearmed %d\n", events(ep, 0));
    /* Half close: EOF after the peer's FIN, and EPOLLRDHUP. */
    shutdown(c2, SHUT_WR);
    e.events = EPOLLIN | EPOLLRDHUP; e.data.u32 = 16;
    epoll_ctl(ep, EPOLL_CTL_MOD, s2, &e);
    usleep(1000);
    struct epoll_event got;
    epoll_wait(ep, &got, 1, 1000);
    k = read(s2, buf, sizeof buf);
    printf("rdhup %d; reads %zd", (got.events & EPOLLRDHUP) != 0, k);
    k = read(s2, buf, sizeof buf);
    printf(" then EOF %zd\n", k);
    const char *w1 = err(write(c2, "0", 1));
    printf("write after own SHUT_WR: %s (SIGPIPE %d)\n", w1, pipes);
    /* Peer closed: the first write goes out, the peer answers RST, then EPIPE (and SIGPIPE). */
    int c3 = dial(7000);
    poll(&lp, 1, 1000);
    int s3 = accept(l, 0, 0);
    close(s3);
    usleep(1000);
    w1 = err(write(c3, "1", 1));
    printf("write after peer close: %s (SIGPIPE %d)", w1, pipes);
    usleep(1000);
    const char *w2 = err(send(c3, "2", 1, MSG_NOSIGNAL));
    printf(", then %s (SIGPIPE %d)", w2, pipes);
    const char *w3 = err(write(c3, "3", 1));
    printf(", then %s (SIGPIPE %d)\n", w3, pipes);
    close(s2); close(c3);
    /* Close with unread data: an RST, so the peer's read fails with ECONNRESET. */
    write(c, "unread", 6);
    usleep(1000);
    close(s);
    usleep(1000);
    const char *rst = err(read(c, buf, sizeof buf));
    k = read(c, buf, sizeof buf);
    printf("read after RST: %s; then %zd\n", rst, k);
    printf("getpeername after reset: %s\n", err(getpeername(c, (struct sockaddr *)&peer, &plen)));
    close(c); close(c2); close(l);
    /* The port is free again once the listener is closed. */
    l = listener(7000);
    printf("listen again: %s\n", err(0));
    return 0;
}
"#;

#[test]
fn tcp_socket_calls_behave_like_linux_on_loopback() {
    let dir = scratch("tcp-c");
    let exe = compile(&dir, "tcp", SEMANTICS_C);
    let spec = write_spec(
        &dir,
        "tcp.toml",
        &format!(
            "[run]\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"t\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"t\"\npath = \"{}\"\nstart = \"1 s\"\n",
            exe.display()
        ),
    );
    let results = runs(&dir, &spec, &[("one", "1"), ("again", "1")], &[]);
    let outputs: Vec<(String, &String)> =
        results.iter().map(|(out, d)| (read(out.join("hosts/t/tcp.0.stdout")), d)).collect();
    assert_eq!(outputs[0], outputs[1], "same stdout and digest on every run");
    // Loopback packets take 1 us: a handshake is SYN, SYN-ACK (the connector is established
    // after 2 us), ACK (the listener has the connection after 3 us). After a non-blocking
    // connect has completed, the next connect returns 0, as on Linux (SO_ERROR does not change
    // that; tests/direct_conform.rs checks it against the kernel).
    assert_eq!(
        outputs[0].0,
        "bind busy port: EADDRINUSE\n\
         bind busy port with SO_REUSEADDR: EADDRINUSE\n\
         SO_ACCEPTCONN 1\n\
         accept empty: EAGAIN\n\
         dial 7001: ECONNREFUSED\n\
         refused after 2 us\n\
         nonblocking connect refused: EINPROGRESS\n\
         poll 1 revents 0x1c\n\
         SO_ERROR ECONNREFUSED, then 0\n\
         nonblocking connect: EINPROGRESS\n\
         again: EALREADY\n\
         poll 1 revents 0x4 after 2 us\n\
         SO_ERROR 0; connect again: ok\n\
         listener poll 1 revents 0x1 after 1 us\n\
         accepted from 127.0.0.1 port matches 1 ephemeral 1 cloexec 1\n\
         SO_RCVBUF set 4000 reads 8000\n\
         TCP_NODELAY 1 SO_TYPE stream 1 TCP_INFO ok state 1 mss 1460 pmtu 1500 rtt 0 len 1\n\
         FIONREAD 5 peek 5 read 5 'hello'\n\
         recv timeout: EAGAIN after 200000 us\n\
         waitall 8 'abcdefgh' after 100001 us\n\
         epoll both 3\n\
         epoll unread: LT 1\n\
         epoll new data on ET 2\n\
         ET EPOLLOUT once 4 then 0 after 100000 us\n\
         oneshot 8 disarmed 0 rearmed 8\n\
         rdhup 1; reads 3 then EOF 0\n\
         write after own SHUT_WR: EPIPE (SIGPIPE 1)\n\
         write after peer close: ok (SIGPIPE 1), then EPIPE (SIGPIPE 1), then EPIPE (SIGPIPE 2)\n\
         read after RST: ECONNRESET; then 0\n\
         getpeername after reset: ENOTCONN\n\
         listen again: ok\n",
        "{}",
        outputs[0].0
    );
}

/// A deterministic 300,000-byte body.
fn body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

const HTTP_SERVER_PY: &str = r#"
import http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = lambda *a, **k: Quiet(*a, directory=sys.argv[1], **k)
server = http.server.HTTPServer(("0.0.0.0", 8080), handler)
print("serving", flush=True)
server.handle_request()
print("served one request", flush=True)
"#;

/// curl's `-w` summary: status, size, and the time to the first byte and in total (s).
const CURL_FORMAT: &str = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}\\n";

fn curl_process(start: &str) -> String {
    format!(
        "[[processes]]\nhost = \"alice\"\npath = \"{}\"\n\
         args = [\"-sS\", \"-o\", \"got.bin\", \"-w\", \"{CURL_FORMAT}\", \"http://10.0.0.2:8080/body.bin\"]\n\
         start = \"{start}\"\n",
        need("/usr/bin/curl", "curl")
    )
}

/// curl's output, the same on every run and shard count, and its body byte for byte.
fn check_curl(results: &[(PathBuf, String)], extra: &[&str]) -> String {
    let outputs: Vec<(String, String, String)> = results
        .iter()
        .map(|(out, d)| {
            let others: String = extra.iter().map(|f| read(out.join(format!("hosts/{f}")))).collect();
            (read(out.join("hosts/alice/curl.0.stdout")), others, d.clone())
        })
        .collect();
    for o in &outputs[1..] {
        assert_eq!(*o, outputs[0], "stdout and digest are the same on every run and shard count");
    }
    for (out, _) in results {
        assert!(std::fs::read(out.join("hosts/alice/got.bin")).unwrap() == body(), "the body arrives intact");
    }
    outputs[0].0.clone()
}

#[test]
fn curl_fetches_a_file_from_a_python_http_server_on_another_host() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("tcp-curl");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("body.bin"), body()).unwrap();
    std::fs::write(dir.join("web.py"), HTTP_SERVER_PY).unwrap();
    let processes = format!(
        "[[processes]]\nhost = \"bob\"\npath = \"{python}\"\nargs = [\"{}\", \"{}\"]\nstart = \"1 s\"\n{}",
        dir.join("web.py").display(),
        www.display(),
        curl_process("2 s")
    );
    let spec = write_spec(&dir, "curl.toml", &two_hosts("20 s", "25 Mbit", &processes));
    let results = runs(&dir, &spec, &[("one", "1"), ("again", "1"), ("two", "2")], &[]);
    let curl = check_curl(&results, &["bob/python3.0.stdout"]);
    let f: Vec<f64> = curl.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(f[..2], [200.0, 300_000.0], "{curl}");
    // Handshake and request: two round trips of 50 ms before the first byte; then at least the
    // 300 kB at 25 Mbit/s (96 ms).
    assert!(f[2] >= 0.1 && f[3] >= f[2] + 0.096, "{curl}");
    assert_eq!(read(results[0].0.join("hosts/bob/python3.0.stdout")), "serving\nserved one request\n");
}

#[test]
fn nginx_serves_a_file_with_sendfile_to_curl_on_another_host() {
    let nginx = need("/usr/sbin/nginx", "nginx");
    let dir = scratch("tcp-nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("body.bin"), body()).unwrap();
    // The prefix and every path nginx writes live in bob's folder of each run: `$HOME` is it.
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log error.log info;\npid nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  client_body_temp_path tmp;\n  proxy_temp_path tmp;\n\
           fastcgi_temp_path tmp;\n  uwsgi_temp_path tmp;\n  scgi_temp_path tmp;\n\
           server {{ listen 8080; root {}; }}\n}}\n",
        www.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let processes = format!(
        "[[processes]]\nhost = \"bob\"\npath = \"{nginx}\"\n\
         args = [\"-c\", \"{}\", \"-p\", \".\", \"-e\", \"error.log\"]\nstart = \"1 s\"\nexpected_exit = \"running\"\n{}",
        dir.join("nginx.conf").display(),
        curl_process("2 s")
    );
    let spec = write_spec(&dir, "nginx.toml", &two_hosts("10 s", "25 Mbit", &processes));
    let results = runs(&dir, &spec, &[("one", "1"), ("again", "1"), ("two", "2")], &["--syscall-stats"]);
    let curl = check_curl(&results, &[]);
    assert!(curl.starts_with("200 300000 "), "{curl}");
    // Its log (not part of the digest: it names the machine's pid) says how it waits.
    let log = read(results[0].0.join("hosts/bob/error.log"));
    assert!(log.contains("using the \"epoll\" event method"), "{log}");
    // The file went out with sendfile on an edge-triggered epoll loop.
    use arrow_array::{Array, StringArray, UInt64Array};
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&results[0].0.join("direct_syscalls.arrow")).unwrap();
    let mut calls = Vec::new();
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (binary, syscall, count) = (col("binary"), col("syscall"), col("calls"));
        let binary = binary.as_any().downcast_ref::<StringArray>().unwrap();
        let syscall = syscall.as_any().downcast_ref::<StringArray>().unwrap();
        let count = count.as_any().downcast_ref::<UInt64Array>().unwrap();
        for i in 0..b.num_rows() {
            calls.push((binary.value(i).to_string(), syscall.value(i).to_string(), count.value(i)));
        }
    }
    let n = |s: &str| calls.iter().find(|c| c.0 == "nginx" && c.1 == s).map_or(0, |c| c.2);
    assert!(n("sendfile") > 0 && n("epoll_wait") > 0 && n("accept4") > 0, "{calls:?}");
}

#[test]
fn iperf3_tcp_throughput_matches_the_modelled_bandwidth() {
    let iperf3 = need("/usr/bin/iperf3", "iperf3");
    let dir = scratch("tcp-iperf3");
    // Reports go to files, and are compared whole: even the CPU use iperf3 reports (and sends
    // to its peer, so it sets byte counts in the digest) comes from emulated `getrusage` and
    // `clock`.
    let processes = format!(
        "[[processes]]\nhost = \"bob\"\npath = \"{iperf3}\"\nargs = [\"-s\", \"-1\", \"-J\", \"--logfile\", \"server.json\"]\n\
         start = \"1 s\"\n\
         [[processes]]\nhost = \"alice\"\npath = \"{iperf3}\"\n\
         args = [\"-c\", \"10.0.0.2\", \"-t\", \"4\", \"-O\", \"1\", \"-J\", \"--logfile\", \"client.json\"]\nstart = \"2 s\"\n"
    );
    let spec = write_spec(&dir, "iperf3.toml", &two_hosts("30 s", "25 Mbit", &processes));
    let results = runs(&dir, &spec, &[("one", "1"), ("again", "1"), ("two", "2")], &[]);
    let report = |out: &Path, file: &str| {
        let text = read(out.join(file));
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"))
    };
    let outputs: Vec<_> = results
        .iter()
        .map(|(out, d)| {
            let stdout = read(out.join("hosts/alice/iperf3.0.stdout")) + &read(out.join("hosts/bob/iperf3.0.stdout"));
            (stdout, report(out, "hosts/alice/client.json"), report(out, "hosts/bob/server.json"), d.clone())
        })
        .collect();
    for o in &outputs[1..] {
        assert_eq!(o.0, outputs[0].0, "stdout is the same on every run and shard count");
        assert_eq!(o.1, outputs[0].1, "the client's report is the same on every run and shard count");
        assert_eq!(o.2, outputs[0].2, "the server's report is the same on every run and shard count");
        assert_eq!(o.3, outputs[0].3, "the digest is the same on every run and shard count");
    }
    // CPU time is not modelled: simulated time stands in for it, in `clock` and `getrusage` alike.
    let cpu = &outputs[0].1["end"]["cpu_utilization_percent"];
    assert_eq!((cpu["host_user"].as_f64(), cpu["host_system"].as_f64()), (Some(100.0), Some(0.0)), "{cpu}");
    for (side, json) in [("client", &outputs[0].1), ("server", &outputs[0].2)] {
        assert!(json.get("error").is_none(), "{side}: {json}");
        // TCP_INFO gives the path MTU and the stack's Linux state: a smoothed RTT of at least
        // the path's 50 ms (the upload queue adds to it), a congestion window, no retransmissions.
        if side == "client" {
            let stream = &json["intervals"][0]["streams"][0];
            assert_eq!(stream["pmtu"].as_u64(), Some(1500), "{stream}");
            assert!(stream["rtt"].as_u64().is_some_and(|r| r >= 50_000), "{stream}");
            assert!(stream["snd_cwnd"].as_u64().is_some_and(|c| c >= 10 * 1460), "{stream}");
            assert_eq!(stream["retransmits"].as_u64(), Some(0), "{stream}");
        }
        let received = json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap();
        // The link carries whole IPv4 packets: 1460 bytes of payload in every 1500.
        let model = 25e6 * 1460.0 / 1500.0;
        assert!((received - model).abs() / model < 0.05, "{side}: {received} bit/s against the model's {model}");
    }
}

/// iperf3 over a long fat path (1 Gbit/s, 100 ms round trip) with `extra` client arguments: the
/// receiver's rate in bit/s, after the first second.
fn long_fat_path_rate(dir: &Path, name: &str, extra: &[&str]) -> f64 {
    let iperf3 = need("/usr/bin/iperf3", "iperf3");
    let mut args = vec!["-c", "10.0.0.2", "-t", "4", "-O", "1", "-J", "--logfile", "client.json"];
    args.extend_from_slice(extra);
    let spec = SpecBuilder::switch(7, "30 s", "50 ms")
        .direct("alice", "1 Gbit", "")
        .direct("bob", "1 Gbit", "")
        .process("bob", &iperf3, &["-s", "-1"], "1 s", "")
        .process("alice", &iperf3, &args, "2 s", "")
        .write(dir, &format!("{name}.toml"));
    let out = dir.join(name);
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let text = read(out.join("hosts/alice/client.json"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or_else(|| panic!("{json}"))
}

#[test]
fn buffers_limit_a_long_fat_path_as_linuxs_do() {
    let dir = scratch("tcp-long-fat-path");
    let rtt = 0.1;
    // Autotuned: the send buffer grows with the window to tcp_wmem's 4 MiB, and a writer may
    // queue two thirds of it (writable while the free space is half the queued bytes) and one
    // more 128-KiB write: about 2.9 MB per round trip, where a fixed 1 MiB buffer gave 0.7 MB.
    let auto = long_fat_path_rate(&dir, "auto", &[]);
    let wmem_limit = (4 << 20) as f64 * 2.0 / 3.0 * 8.0 / rtt;
    assert!(auto > 0.9 * wmem_limit && auto < 1.15 * wmem_limit, "{auto} bit/s against {wmem_limit}");
    // `-w 256K` sets SO_SNDBUF and SO_RCVBUF on both ends: Linux doubles them and offers half
    // of the receive buffer as the window, 256 KiB per round trip.
    let set = long_fat_path_rate(&dir, "set", &["-w", "256K"]);
    let window_limit = (256 << 10) as f64 * 8.0 / rtt;
    assert!(set > 0.8 * window_limit && set < 1.05 * window_limit, "{set} bit/s against {window_limit}");
}
