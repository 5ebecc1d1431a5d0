//! IPv6 on direct hosts end to end: `AF_INET6` sockets translated onto the simulated IPv4
//! network (see `direct/src/inet6.rs`). A C program on loopback prints the same as natively;
//! across hosts, dual-stack and `IPV6_V6ONLY` listeners, UDP over IPv6, the hosts file's AAAA
//! answers, the 20 bytes an IPv6 header adds, and unmodified programs (Python's `http.server
//! --bind ::` fetched by `curl -6`, a Node.js server listening on `::`), the same on one and two
//! shards.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `spec` into `dir/<name>` for each `(name, shards)`, returning each run's output folder and
/// digest.
fn runs(dir: &Path, spec: &Path, shards: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    shards
        .iter()
        .map(|(name, n)| {
            let out = dir.join(name);
            run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", n]);
            let digest = summary(&out)["digest"].as_str().unwrap().to_string();
            (out, digest)
        })
        .collect()
}

/// Socket calls on `::1`, `::ffff:127.0.0.1` and `::` of one host: dual-stack and `IPV6_V6ONLY`
/// listeners, the address forms `accept`, `getsockname`, `getpeername` and `recvfrom` give, the
/// bind errors, stored options, and UDP from IPv6 and IPv4 senders to a dual-stack socket.
const LOOPBACK_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *err(int r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

/* An address as text, with its family and length: "[addr]:port/len" or "a.b.c.d:port/len". */
static const char *show(const struct sockaddr_storage *s, socklen_t len) {
    static char out[4][96];
    static int k;
    char *o = out[k++ % 4], ip[64];
    if (s->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)s;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(o, 96, "[%s]:%d/%u flow %u scope %u", ip, ntohs(a->sin6_port), len, a->sin6_flowinfo, a->sin6_scope_id);
    } else {
        const struct sockaddr_in *a = (const void *)s;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(o, 96, "%s:%d/%u", ip, ntohs(a->sin_port), len);
    }
    return o;
}

static const char *name(int fd, int peer) {
    struct sockaddr_storage s;
    socklen_t len = sizeof s;
    memset(&s, 0, sizeof s);
    int r = peer ? getpeername(fd, (void *)&s, &len) : getsockname(fd, (void *)&s, &len);
    if (r) return strerrorname_np(errno);
    return show(&s, len);
}

static struct sockaddr_in6 a6(const char *ip, int port) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static struct sockaddr_in a4(const char *ip, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int listener6(int port, int v6only) {
    int l = socket(AF_INET6, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6only >= 0) setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    struct sockaddr_in6 a = a6("::", port);
    if (bind(l, (void *)&a, sizeof a) || listen(l, 8)) printf("listener %d: %s\n", port, err(-1));
    return l;
}

/* Connect a socket of `family` to `addr`; print the outcome and, once accepted by `l`, the
   names both ends see. Ports of the connecting side are ephemeral: only the server's shown. */
static void dial(int l, int family, const void *addr, socklen_t len, const char *what) {
    int c = socket(family, SOCK_STREAM, 0);
    int r = connect(c, addr, len);
    printf("%s: connect %s\n", what, err(r));
    if (r == 0) {
        printf("  client peer %s\n", name(c, 1));
        struct sockaddr_storage s;
        socklen_t sl = sizeof s;
        int a = accept(l, (void *)&s, &sl);
        if (s.ss_family == AF_INET6) {
            char ip[64];
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s)->sin6_addr, ip, sizeof ip);
            printf("  accepted from %s len %u, server local %s\n", ip, sl, name(a, 0));
        } else {
            printf("  accepted from %s len %u\n", inet_ntoa(((struct sockaddr_in *)&s)->sin_addr), sl);
        }
        char buf[8] = "x";
        write(c, "ping", 4);
        printf("  read %zd\n", read(a, buf, sizeof buf));
        /* The client closes first: TIME-WAIT stays on its ephemeral port, not the listener's. */
        close(c);
        read(a, buf, sizeof buf);
        close(a);
        return;
    }
    close(c);
}

int main(void) {
    int v, r;
    socklen_t vl = sizeof v;
    int l = listener6(7100, -1);
    getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl);
    printf("listener %s V6ONLY %d", name(l, 0), v);
    getsockopt(l, SOL_SOCKET, SO_DOMAIN, &v, &vl);
    printf(" SO_DOMAIN %d\n", v);
    struct sockaddr_in6 lo6 = a6("::1", 7100), mapped = a6("::ffff:127.0.0.1", 7100);
    struct sockaddr_in lo4 = a4("127.0.0.1", 7100);
    dial(l, AF_INET6, &lo6, sizeof lo6, "v6 to ::1");
    dial(l, AF_INET, &lo4, sizeof lo4, "v4 to 127.0.0.1");
    dial(l, AF_INET6, &mapped, sizeof mapped, "v6 to ::ffff:127.0.0.1");
    struct sockaddr_in6 any = a6("::", 7100);
    dial(l, AF_INET6, &any, sizeof any, "v6 to ::");
    close(l);

    /* V6ONLY: IPv4 peers are refused, and the port is free for AF_INET. */
    int only = listener6(7101, 1);
    struct sockaddr_in lo4b = a4("127.0.0.1", 7101);
    dial(only, AF_INET, &lo4b, sizeof lo4b, "v4 to a V6ONLY listener");
    int l4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any4 = a4("0.0.0.0", 7101);
    r = bind(l4, (void *)&any4, sizeof any4);
    printf("AF_INET bind beside V6ONLY: %s, listen %s\n", err(r), err(listen(l4, 4)));
    dial(l4, AF_INET, &lo4b, sizeof lo4b, "v4 to the AF_INET listener");
    struct sockaddr_in6 lo6b = a6("::1", 7101);
    dial(only, AF_INET6, &lo6b, sizeof lo6b, "v6 to the V6ONLY listener");
    int c = socket(AF_INET6, SOCK_STREAM, 0), one = 1;
    setsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 m2 = a6("::ffff:127.0.0.1", 7101);
    printf("V6ONLY socket to a mapped address: %s\n", err(connect(c, (void *)&m2, sizeof m2)));
    close(c);
    close(only);
    close(l4);

    /* A dual-stack port is taken for AF_INET too; V6ONLY cannot change after bind. */
    int d = listener6(7102, 0), b4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any4c = a4("0.0.0.0", 7102);
    printf("AF_INET bind beside dual-stack: %s\n", err(bind(b4, (void *)&any4c, sizeof any4c)));
    printf("V6ONLY after bind: %s\n", err(setsockopt(d, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one)));
    struct sockaddr_in6 far = a6("2001:db8::1", 80);
    int f = socket(AF_INET6, SOCK_STREAM, 0);
    printf("bind to a foreign address: %s\n", err(bind(f, (void *)&far, sizeof far)));
    printf("AF_INET address to AF_INET6 bind: %s\n", err(bind(f, (void *)&any4c, sizeof any4c)));
    printf("AF_INET6 address to AF_INET bind: %s\n", err(bind(b4, (void *)&lo6, sizeof lo6)));
    close(d); close(b4); close(f);

    /* Options stored and echoed. */
    int u = socket(AF_INET6, SOCK_DGRAM, 0), tc = 0x20;
    setsockopt(u, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof tc);
    int vals[4];
    int names[4] = {IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP};
    for (int i = 0; i < 4; i++) { vl = sizeof v; getsockopt(u, IPPROTO_IPV6, names[i], &vals[i], &vl); }
    printf("TCLASS %d UNICAST_HOPS %d MULTICAST_HOPS %d MULTICAST_LOOP %d\n", vals[0], vals[1], vals[2], vals[3]);

    /* UDP: a dual-stack socket on [::]:7200 hears IPv6 and IPv4 senders. */
    struct sockaddr_in6 u6 = a6("::", 7200);
    bind(u, (void *)&u6, sizeof u6);
    printf("udp bound %s\n", name(u, 0));
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0), s4 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in6 to6 = a6("::1", 7200);
    struct sockaddr_in to4 = a4("127.0.0.1", 7200);
    sendto(s6, "six", 3, 0, (void *)&to6, sizeof to6);
    sendto(s4, "four", 4, 0, (void *)&to4, sizeof to4);
    for (int i = 0; i < 2; i++) {
        char buf[16] = {0};
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(u, buf, sizeof buf, 0, (void *)&from, &fl);
        char ip[64];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&from)->sin6_addr, ip, sizeof ip);
        printf("udp got %zd '%s' from %s family %d len %u\n", n, buf, ip, from.ss_family, fl);
    }
    connect(s6, (void *)&to6, sizeof to6);
    printf("udp connected: local host %s\n", strstr(name(s6, 0), "[::1]") ? "::1" : name(s6, 0));
    printf("udp peer %s\n", name(s6, 1));

    /* UDP: an IPV6_V6ONLY socket and an AF_INET one share port 7300, each hearing its family. */
    int o6 = socket(AF_INET6, SOCK_DGRAM, 0), o4 = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(o6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 b6 = a6("::", 7300);
    struct sockaddr_in b4b = a4("0.0.0.0", 7300);
    printf("udp V6ONLY bind %s, AF_INET bind beside it %s\n", err(bind(o6, (void *)&b6, sizeof b6)),
           err(bind(o4, (void *)&b4b, sizeof b4b)));
    int d6 = socket(AF_INET6, SOCK_DGRAM, 0);
    printf("udp dual-stack bind beside both: %s\n", err(bind(d6, (void *)&b6, sizeof b6)));
    struct sockaddr_in6 t6 = a6("::1", 7300);
    struct sockaddr_in t4 = a4("127.0.0.1", 7300);
    sendto(socket(AF_INET6, SOCK_DGRAM, 0), "to six", 6, 0, (void *)&t6, sizeof t6);
    sendto(s4, "to four", 7, 0, (void *)&t4, sizeof t4);
    char b[16] = {0};
    printf("V6ONLY socket got '%.*s'", (int)recv(o6, b, sizeof b, 0), b);
    printf(", AF_INET socket got '%.*s'\n", (int)recv(o4, b, sizeof b, 0), b);
    return 0;
}
"#;

#[test]
fn ipv6_on_loopback_behaves_like_linux() {
    let dir = scratch("ipv6-lo");
    let exe = compile(&dir, "lo6", LOOPBACK_C);
    let native = Command::new(&exe).current_dir(&dir).output().expect("run natively");
    assert!(native.status.success());
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    let spec = program_spec(&dir, &exe, &[], "");
    let results = runs(&dir, &spec, &[("one", "1"), ("two", "2")]);
    let outputs: Vec<(String, &String)> =
        results.iter().map(|(out, d)| (read(out.join("hosts/t/lo6.0.stdout")), d)).collect();
    assert_eq!(outputs[0], outputs[1], "the same stdout and digest on one and two shards");
    assert_eq!(outputs[0].0, native, "simulated:\n{}\nnative:\n{native}", outputs[0].0);
    assert!(native.contains("v4 to a V6ONLY listener: connect ECONNREFUSED"), "{native}");
    assert!(native.contains("udp got 4 'four' from ::ffff:127.0.0.1 family 10 len 28"), "{native}");
}

/// Bob's side: a dual-stack listener on `[::]:8000` (two connections), an `IPV6_V6ONLY` one on
/// `[::]:8001` (one), and a UDP echo on `[::]:9000` (two datagrams).
const SERVER_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *text(const struct sockaddr_storage *s) {
    static char out[2][80];
    static int k;
    char *o = out[k++ % 2], ip[64];
    const struct sockaddr_in6 *a = (const void *)s;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(o, 80, "[%s]:%d", ip, ntohs(a->sin6_port));
    return o;
}

static int listener(int port, int v6only) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (bind(l, (void *)&a, sizeof a) || listen(l, 8)) perror("listener");
    return l;
}

static void serve(int l, const char *what) {
    struct sockaddr_storage peer, local;
    socklen_t pl = sizeof peer, ll = sizeof local;
    int c = accept(l, (void *)&peer, &pl);
    getsockname(c, (void *)&local, &ll);
    char buf[64];
    ssize_t n = read(c, buf, sizeof buf);
    printf("%s: accepted %s at %s, read %zd\n", what, text(&peer), text(&local), n);
    write(c, "pong", 4);
    close(c);
}

int main(void) {
    int dual = listener(8000, 0), only = listener(8001, 1);
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(9000), .sin6_addr = in6addr_any};
    bind(u, (void *)&a, sizeof a);
    printf("ready\n");
    fflush(stdout);
    serve(dual, "dual-stack");
    serve(dual, "dual-stack");
    serve(only, "v6only");
    for (int i = 0; i < 2; i++) {
        char buf[2048];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(u, buf, sizeof buf, 0, (void *)&from, &fl);
        printf("udp %zd bytes from %s len %u\n", n, text(&from), fl);
        sendto(u, buf, n, 0, (void *)&from, fl);
    }
    return 0;
}
"#;

/// Alice's side: bob's addresses from the hosts file, IPv4 and IPv6 connections to both
/// listeners, and the round trip of a 1000-byte datagram over IPv4 and over IPv6.
const CLIENT_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static const char *text(const void *sa) {
    static char out[4][80];
    static int k;
    char *o = out[k++ % 4], ip[64];
    if (((const struct sockaddr *)sa)->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(o, 80, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(o, 80, "%s:%d", ip, ntohs(a->sin_port));
    }
    return o;
}

static void dial(const void *addr, socklen_t len, const char *what) {
    int c = socket(((const struct sockaddr *)addr)->sa_family, SOCK_STREAM, 0);
    long long t0 = now_us();
    if (connect(c, addr, len)) {
        printf("%s: %s after %lld us\n", what, strerrorname_np(errno), now_us() - t0);
        close(c);
        return;
    }
    struct sockaddr_storage local, peer;
    socklen_t ll = sizeof local, pl = sizeof peer;
    getsockname(c, (void *)&local, &ll);
    getpeername(c, (void *)&peer, &pl);
    char buf[8] = {0};
    write(c, "ping", 4);
    read(c, buf, 4);
    printf("%s: %s -> %s, got %s\n", what, text(&local), text(&peer), buf);
    close(c);
}

/* The round trip of a 1000-byte datagram to `to`, echoed by bob. */
static long long udp_rtt(const void *to, socklen_t len, const char *what) {
    int u = socket(((const struct sockaddr *)to)->sa_family, SOCK_DGRAM, 0);
    char buf[2048] = {0};
    struct sockaddr_storage from, local;
    socklen_t fl = sizeof from, ll = sizeof local;
    long long t0 = now_us();
    sendto(u, buf, 1000, 0, to, len);
    ssize_t n = recvfrom(u, buf, sizeof buf, 0, (void *)&from, &fl);
    long long rtt = now_us() - t0;
    getsockname(u, (void *)&local, &ll);
    printf("%s: %zd bytes back from %s to %s in %lld us\n", what, n, text(&from), text(&local), rtt);
    close(u);
    return rtt;
}

int main(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *r;
    if (getaddrinfo("bob", "8000", &hints, &res) == 0) {
        for (r = res; r; r = r->ai_next) printf("bob: %s\n", text(r->ai_addr));
        freeaddrinfo(res);
    }
    hints.ai_family = AF_INET6;
    struct sockaddr_in6 six = {0};
    if (getaddrinfo("bob", "8000", &hints, &res) == 0) {
        printf("bob AAAA: %s\n", text(res->ai_addr));
        six = *(struct sockaddr_in6 *)res->ai_addr;
        freeaddrinfo(res);
    }
    struct sockaddr_in four = {.sin_family = AF_INET, .sin_port = htons(8000)};
    inet_pton(AF_INET, "10.0.0.2", &four.sin_addr);
    dial(&four, sizeof four, "v4 to dual-stack");
    dial(&six, sizeof six, "v6 to dual-stack");
    four.sin_port = six.sin6_port = htons(8001);
    dial(&four, sizeof four, "v4 to v6only");
    dial(&six, sizeof six, "v6 to v6only");
    four.sin_port = six.sin6_port = htons(9000);
    /* Let the connections' last segments leave the links' queues first. */
    usleep(500000);
    long long v4 = udp_rtt(&four, sizeof four, "udp v4");
    usleep(500000);
    long long v6 = udp_rtt(&six, sizeof six, "udp v6");
    printf("udp v6 - v4: %lld us\n", v6 - v4);
    return 0;
}
"#;

/// Alice and bob 25 ms apart on 1 Mbit/s links, with `processes` (TOML).
fn pair(processes: &str) -> SpecBuilder {
    SpecBuilder::alice_bob(11, "30 s", "1 Mbit/s").processes_toml(processes)
}

fn process(host: &str, path: &Path, args: &[&str], start: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[processes]]\nhost = \"{host}\"\npath = {:?}\nargs = [{}]\nstart = \"{start}\"\n",
        path.display().to_string(),
        args.join(", ")
    )
}

#[test]
fn dual_stack_and_v6only_listeners_and_udp_over_ipv6_between_hosts() {
    let dir = scratch("ipv6-pair");
    let server = compile(&dir, "server6", SERVER_C);
    let client = compile(&dir, "client6", CLIENT_C);
    let spec =
        pair(&(process("bob", &server, &[], "1 s") + &process("alice", &client, &[], "2 s"))).write(&dir, "pair.toml");
    let results = runs(&dir, &spec, &[("one", "1"), ("two", "2"), ("again", "1")]);
    let outputs: Vec<(String, String, &String)> = results
        .iter()
        .map(|(out, d)| {
            (read(out.join("hosts/alice/client6.0.stdout")), read(out.join("hosts/bob/server6.0.stdout")), d)
        })
        .collect();
    assert_eq!(outputs[0], outputs[1], "the same stdout and digest on one and two shards");
    assert_eq!(outputs[0], outputs[2], "and on every run");
    let (alice, bob) = (&outputs[0].0, &outputs[0].1);
    // The hosts file answers AAAA; glibc sorts the IPv6 address first (RFC 3484's table).
    assert!(
        alice.starts_with("bob: [fd00:7468::a00:2]:8000\nbob: 10.0.0.2:8000\nbob AAAA: [fd00:7468::a00:2]:8000\n"),
        "{alice}"
    );
    let lines: Vec<&str> = alice.lines().collect();
    let port = |l: &str| l.split(" -> ").next().and_then(|a| a.rsplit(':').next()).unwrap_or("").to_string();
    let v4 = lines.iter().find(|l| l.starts_with("v4 to dual-stack")).expect(alice);
    let v6 = lines.iter().find(|l| l.starts_with("v6 to dual-stack")).expect(alice);
    assert!(v4.contains(": 10.0.0.1:") && v4.ends_with(" -> 10.0.0.2:8000, got pong"), "{alice}");
    assert!(v6.contains(": [fd00:7468::a00:1]:") && v6.ends_with(" -> [fd00:7468::a00:2]:8000, got pong"), "{alice}");
    // Bob sees the IPv4 client IPv4-mapped, the IPv6 one by its IPv6 address, and answers from
    // the matching local address.
    assert!(
        bob.contains(&format!("dual-stack: accepted [::ffff:10.0.0.1]:{} at [::ffff:10.0.0.2]:8000, read 4", port(v4))),
        "{bob}"
    );
    assert!(
        bob.contains(&format!(
            "dual-stack: accepted [fd00:7468::a00:1]:{} at [fd00:7468::a00:2]:8000, read 4",
            port(v6)
        )),
        "{bob}"
    );
    // IPV6_V6ONLY: the IPv4 SYN is answered with an RST (a round trip), the IPv6 one accepted.
    let refused = lines.iter().find_map(|l| l.strip_prefix("v4 to v6only: ECONNREFUSED after ")).expect(alice);
    let refused_us: u64 = refused.trim_end_matches(" us").parse().unwrap();
    assert!((50_000..55_000).contains(&refused_us), "one round trip and the links' queues: {alice}");
    assert!(alice.contains("v6 to v6only: [fd00:7468::a00:1]:"), "{alice}");
    assert!(bob.contains("v6only: accepted [fd00:7468::a00:1]:"), "{bob}");
    assert!(bob.contains("udp 1000 bytes from [::ffff:10.0.0.1]:"), "{bob}");
    assert!(bob.contains("udp 1000 bytes from [fd00:7468::a00:1]:"), "{bob}");
    assert!(alice.contains("udp v6: 1000 bytes back from [fd00:7468::a00:2]:9000 to [::]:"), "{alice}");
    // The 20 bytes an IPv6 header adds are charged: 4 serialisations (up and down, both ways)
    // of 20 bytes at 1 Mbit/s.
    assert!(alice.contains("udp v6 - v4: 640 us\n"), "{alice}");
}

/// A Node.js TCP server on `[::]:8081` that answers each connection with what it sees of it, and
/// says which addresses `os.networkInterfaces()` lists (netlink's address dump).
const NODE_SERVER_JS: &str = r#"
const net = require('net'), os = require('os');
const ifs = os.networkInterfaces();
for (const name of Object.keys(ifs).sort()) {
    for (const a of ifs[name]) console.log('interface', name, a.family, a.address + '/' + a.netmask);
}
const server = net.createServer(c => {
    c.end(`${c.remoteAddress} ${c.remoteFamily} ${c.localAddress}\n`);
});
server.listen(8081, '::', () => console.log('listening', JSON.stringify(server.address())));
"#;

/// A Node.js client: to bob by name over IPv6, and by its IPv4 address.
const NODE_CLIENT_JS: &str = r#"
const net = require('net');
function ask(opts) {
    return new Promise(done => {
        const c = net.connect(opts, () => {});
        let got = '';
        c.on('data', d => got += d);
        c.on('end', () => { console.log(JSON.stringify(opts), '->', got.trim(), 'from', c.localAddress); done(); });
        c.on('error', e => { console.log(JSON.stringify(opts), e.code); done(); });
    });
}
(async () => {
    await ask({host: 'bob', port: 8081, family: 6});
    await ask({host: '10.0.0.2', port: 8081});
    await ask({host: 'fd00:7468::a00:2', port: 8081});
})();
"#;

fn curl(args: &[&str], out: &str, url: &str, start: &str) -> String {
    let curl = need("/usr/bin/curl", "curl");
    let mut all: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    for a in ["-sS", "-o", out, "-w", "%{http_code} %{size_download} %{remote_ip}\\n", url] {
        all.push(format!("{a:?}"));
    }
    format!("[[processes]]\nhost = \"alice\"\npath = \"{curl}\"\nargs = [{}]\nstart = \"{start}\"\n", all.join(", "))
}

#[test]
fn python_http_server_on_ipv6_any_serves_curl_over_ipv6_and_ipv4_and_node_listens_on_ipv6() {
    let python = need("/usr/bin/python3", "python3");
    let node = need("/usr/bin/node", "nodejs");
    let dir = scratch("ipv6-real");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(www.join("body.bin"), &body).unwrap();
    std::fs::write(dir.join("server.js"), NODE_SERVER_JS).unwrap();
    std::fs::write(dir.join("client.js"), NODE_CLIENT_JS).unwrap();
    let www = www.display().to_string();
    let server_js = dir.join("server.js").display().to_string();
    let client_js = dir.join("client.js").display().to_string();
    let processes = format!(
        "[[processes]]\nhost = \"bob\"\npath = \"{python}\"\n\
         args = [\"-m\", \"http.server\", \"--bind\", \"::\", \"--directory\", \"{www}\", \"8080\"]\n\
         start = \"1 s\"\nexpected_exit = \"running\"\n\
         [[processes]]\nhost = \"bob\"\npath = \"{node}\"\nargs = [\"{server_js}\"]\nstart = \"1 s\"\n\
         expected_exit = \"running\"\n{}{}{}\
         [[processes]]\nhost = \"alice\"\npath = \"{node}\"\nargs = [\"{client_js}\"]\nstart = \"6 s\"\n",
        curl(&["-6"], "v6.bin", "http://bob:8080/body.bin", "3 s"),
        curl(&["-4"], "v4.bin", "http://bob:8080/body.bin", "4 s"),
        curl(&[], "literal.bin", "http://[fd00:7468::a00:2]:8080/body.bin", "5 s"),
    );
    let spec = SpecBuilder::alice_bob(5, "10 s", "25 Mbit/s").processes_toml(&processes).write(&dir, "real.toml");
    let results = runs(&dir, &spec, &[("one", "1"), ("two", "2")]);
    let seen = |out: &Path| {
        let host = |h: &str, f: &str| read(out.join(format!("hosts/{h}/{f}")));
        [
            host("alice", "curl.0.stdout"),
            host("alice", "curl.1.stdout"),
            host("alice", "curl.2.stdout"),
            host("alice", "node.3.stdout"),
            host("bob", "python3.0.stderr"),
            host("bob", "node.1.stdout"),
        ]
    };
    let (one, two) = (seen(&results[0].0), seen(&results[1].0));
    assert_eq!((&one, &results[0].1), (&two, &results[1].1), "the same outputs and digest on one and two shards");
    assert_eq!(one[0], "200 100000 fd00:7468::a00:2\n");
    assert_eq!(one[1], "200 100000 10.0.0.2\n");
    assert_eq!(one[2], "200 100000 fd00:7468::a00:2\n");
    for f in ["v6.bin", "v4.bin", "literal.bin"] {
        assert!(std::fs::read(results[0].0.join("hosts/alice").join(f)).unwrap() == body, "{f} byte for byte");
    }
    // http.server logs each client as its socket saw it.
    let log: Vec<&str> = one[4].lines().map(|l| l.split(" - - ").next().unwrap_or("")).collect();
    assert_eq!(log, ["fd00:7468::a00:1", "::ffff:10.0.0.1", "fd00:7468::a00:1"], "{}", one[4]);
    let node_client = &one[3];
    assert!(
        node_client.contains(
            "{\"host\":\"bob\",\"port\":8081,\"family\":6} -> fd00:7468::a00:1 IPv6 fd00:7468::a00:2 from fd00:7468::a00:1"
        ),
        "{node_client}"
    );
    assert!(
        node_client
            .contains("{\"host\":\"10.0.0.2\",\"port\":8081} -> ::ffff:10.0.0.1 IPv6 ::ffff:10.0.0.2 from 10.0.0.1"),
        "{node_client}"
    );
    let node_server = &one[5];
    for line in [
        "interface eth0 IPv4 10.0.0.2/255.0.0.0",
        "interface eth0 IPv6 fd00:7468::a00:2/ffff:ffff:ffff:ffff:ffff:ffff::",
        "interface lo IPv6 ::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "listening {\"address\":\"::\",\"family\":\"IPv6\",\"port\":8081}",
    ] {
        assert!(node_server.contains(line), "{line}:\n{node_server}");
    }
}
