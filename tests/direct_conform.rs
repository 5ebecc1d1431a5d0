//! Linux conformance of direct hosts, end to end: small C programs whose results Linux defines
//! (a second `connect` after a non-blocking one, bad iovec counts, edge-triggered epoll on a pipe
//! and on TCP connections,
//! futex wake-ups at a thread's exit, a main thread that exits before its threads), each run
//! natively and under the engine: both must print what Linux prints.

mod common;

use common::*;
use std::process::Command;

/// Compile `source` as `name` (with `flags`), run it natively in `dir` and under the engine on
/// one and on two shards (the same stdout and digest on both), and return (native stdout, its
/// exit code, simulated stdout). `extra` goes into the process entry (`expected_exit`).
fn native_and_simulated(name: &str, source: &str, flags: &[&str], extra: &str) -> (String, i32, String) {
    let dir = scratch(&format!("conform-{name}"));
    let exe = compile_with(&dir, name, source, flags);
    let native = Command::new(&exe).current_dir(&dir).output().expect("run natively");
    let spec = program_spec(&dir, &exe, &[], extra);
    let mut runs = Vec::new();
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let stdout = read(out.join(format!("hosts/t/{name}.0.stdout")));
        runs.push((stdout, summary(&out)["digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(runs[0], runs[1], "the same stdout and digest on one and two shards");
    let native_code = native.status.code().unwrap_or(-1);
    (String::from_utf8_lossy(&native.stdout).into_owned(), native_code, runs.swap_remove(0).0)
}

const CONNECT_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *what, int r) { printf("%s %d %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-"); }

static struct sockaddr_in listener(int *fd, int listening) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(*fd, (struct sockaddr *)&a, sizeof a);
    getsockname(*fd, (struct sockaddr *)&a, &len);
    if (listening) listen(*fd, 4);
    return a;
}

int main(void) {
    int l, idle;
    struct sockaddr_in a = listener(&l, 1);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    show("first connect", connect(c, (struct sockaddr *)&a, sizeof a));
    struct pollfd p = {c, POLLOUT, 0};
    int pr = poll(&p, 1, 1000); printf("poll %d revents %#x\n", pr, p.revents);
    show("second connect", connect(c, (struct sockaddr *)&a, sizeof a));
    show("third connect", connect(c, (struct sockaddr *)&a, sizeof a));
    int s = accept(l, 0, 0);
    printf("accepted %d\n", s >= 0);
    show("blocking socket's connect again", connect(s, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_in b = listener(&idle, 0);
    int d = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    show("refused first", connect(d, (struct sockaddr *)&b, sizeof b));
    struct pollfd q = {d, POLLOUT, 0};
    int qr = poll(&q, 1, 1000); printf("poll %d revents %#x\n", qr, q.revents);
    show("refused second", connect(d, (struct sockaddr *)&b, sizeof b));
    return 0;
}
"#;

#[test]
fn a_second_connect_after_a_non_blocking_one_reports_its_outcome_once() {
    let (native, _, simulated) = native_and_simulated("connect", CONNECT_C, &[], "");
    // Linux: 0 from the first connect after the handshake completed, EISCONN after it; a refused
    // attempt reports ECONNREFUSED to the second connect.
    let linux = "first connect -1 EINPROGRESS\n\
                 poll 1 revents 0x4\n\
                 second connect 0 -\n\
                 third connect -1 EISCONN\n\
                 accepted 1\n\
                 blocking socket's connect again -1 EISCONN\n\
                 refused first -1 EINPROGRESS\n\
                 poll 1 revents 0x1c\n\
                 refused second -1 ECONNREFUSED\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const IOV_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static char buf[16];
static struct iovec many[1026], bad[2];

static void show(const char *what, long r) { printf("%s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-"); }

static void vectors(const char *name, int fd, int wfd) {
    char what[64];
    snprintf(what, sizeof what, "%s readv -1", name); show(what, readv(fd, many, -1));
    snprintf(what, sizeof what, "%s readv 1025", name); show(what, readv(fd, many, 1025));
    snprintf(what, sizeof what, "%s writev -1", name); show(what, writev(wfd, many, -1));
    snprintf(what, sizeof what, "%s writev 1025", name); show(what, writev(wfd, many, 1025));
    snprintf(what, sizeof what, "%s writev negative length", name); show(what, writev(wfd, bad, 2));
}

static void messages(const char *name, int fd) {
    char what[64];
    struct msghdr m = {.msg_iov = many, .msg_iovlen = 1025};
    snprintf(what, sizeof what, "%s sendmsg 1025", name); show(what, sendmsg(fd, &m, MSG_DONTWAIT));
    snprintf(what, sizeof what, "%s recvmsg 1025", name); show(what, recvmsg(fd, &m, MSG_DONTWAIT));
    m.msg_iov = bad; m.msg_iovlen = 2;
    snprintf(what, sizeof what, "%s sendmsg negative length", name); show(what, sendmsg(fd, &m, MSG_DONTWAIT));
}

int main(void) {
    for (int i = 0; i < 1026; i++) many[i] = (struct iovec){buf, 1};
    bad[0] = (struct iovec){buf, 1};
    bad[1] = (struct iovec){buf, (size_t)-5};
    int p[2];
    pipe(p);
    vectors("pipe", p[0], p[1]);
    int f = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
    show("file preadv 1025", preadv(f, many, 1025, 0));
    show("file pwritev -1", pwritev(f, many, -1, 0));
    int r = open("/dev/urandom", O_RDONLY);
    show("urandom readv -1", readv(r, many, -1));
    show("urandom readv 1024", readv(r, many, 1024));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bind(u, (struct sockaddr *)&a, sizeof a);
    vectors("udp", u, u);
    messages("udp", u);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    vectors("tcp", t, t);
    messages("tcp", t);
    return 0;
}
"#;

#[test]
fn bad_iovec_counts_and_lengths_fail_with_einval_and_bad_msg_iovlen_with_emsgsize() {
    let (native, _, simulated) = native_and_simulated("iov", IOV_C, &["-Wno-stringop-overflow"], "");
    let mut linux = String::new();
    for (name, calls) in [("pipe", 0), ("udp", 1), ("tcp", 1)] {
        for call in ["readv -1", "readv 1025", "writev -1", "writev 1025", "writev negative length"] {
            linux += &format!("{name} {call} -1 EINVAL\n");
        }
        if name == "pipe" {
            linux += "file preadv 1025 -1 EINVAL\nfile pwritev -1 -1 EINVAL\n\
                      urandom readv -1 -1 EINVAL\nurandom readv 1024 1024 -\n";
        }
        if calls == 1 {
            linux += &format!(
                "{name} sendmsg 1025 -1 EMSGSIZE\n{name} recvmsg 1025 -1 EMSGSIZE\n\
                 {name} sendmsg negative length -1 EINVAL\n"
            );
        }
    }
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine (emulated sockets and /dev/urandom, native pipe and file)");
}

const ET_PIPE_C: &str = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int ep;
static void wait_once(const char *what) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 0);
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++) printf(" %s %#x", ev[i].data.u32 ? "writer" : "reader", ev[i].events);
    printf("\n");
}

int main(void) {
    int p[2];
    static char page[4096];
    pipe2(p, O_NONBLOCK);
    ep = epoll_create1(0);
    struct epoll_event w = {.events = EPOLLOUT | EPOLLET, .data.u32 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &w);
    wait_once("added writer");
    for (int i = 0; i < 3; i++) {
        write(p[1], "x", 1);
        wait_once("after a write");
    }
    struct epoll_event r = {.events = EPOLLIN | EPOLLET, .data.u32 = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &r);
    wait_once("added reader");
    write(p[1], "y", 1);
    wait_once("after another write");
    read(p[0], page, 4);
    wait_once("after reading a pipe that was not full");
    epoll_ctl(ep, EPOLL_CTL_DEL, p[0], 0);
    long filled = 0, k;
    while ((k = write(p[1], page, sizeof page)) > 0) filled += k;
    printf("filled %ld\n", filled);
    wait_once("full");
    read(p[0], page, 1);
    wait_once("after reading one byte of a full pipe");
    read(p[0], page, 4095);
    wait_once("after reading a whole buffer of a full pipe");
    read(p[0], page, 4096);
    wait_once("after reading a pipe no longer full");
    close(p[0]);
    wait_once("after the reader closed");
    return 0;
}
"#;

#[test]
fn edge_triggered_epoll_on_a_pipe_reports_new_edges_only() {
    let (native, _, simulated) = native_and_simulated("etpipe", ET_PIPE_C, &[], "");
    // Linux: a write gives the read end a new edge (every write, since 5.14) and never the write
    // end; a read gives the write end one only if the pipe was full, reported once it has room.
    let linux = "added writer: 1 writer 0x4\n\
                 after a write: 0\n\
                 after a write: 0\n\
                 after a write: 0\n\
                 added reader: 1 reader 0x1\n\
                 after another write: 1 reader 0x1\n\
                 after reading a pipe that was not full: 0\n\
                 filled 65536\n\
                 full: 0\n\
                 after reading one byte of a full pipe: 0\n\
                 after reading a whole buffer of a full pipe: 1 writer 0x4\n\
                 after reading a pipe no longer full: 0\n\
                 after the reader closed: 1 writer 0xc\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const ET_TCP_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int ep;
static void wait_once(const char *what, int ms) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, ms);
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++) printf(" %s %#x", ev[i].data.u32 ? "writer" : "reader", ev[i].events);
    printf("\n");
}

int main(void) {
    static char buf[4096];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    bind(l, (struct sockaddr *)&a, sizeof a);
    getsockname(l, (struct sockaddr *)&a, &len);
    listen(l, 4);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)&a, sizeof a);
    int s = accept(l, 0, 0);
    ep = epoll_create1(0);
    /* as tokio registers a connection: both directions, hang-ups, edge-triggered */
    struct epoll_event r = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u32 = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &r);
    wait_once("added the reader", 1000);
    write(c, buf, 100);
    wait_once("after 100 bytes came", 1000);
    printf("read %zd\n", read(s, buf, sizeof buf));
    wait_once("after reading them all", 50);
    write(c, buf, 10);
    wait_once("after 10 more came", 1000);
    printf("read %zd\n", read(s, buf, 5));
    wait_once("after reading half of them", 50);
    struct epoll_event w = {.events = EPOLLOUT | EPOLLET, .data.u32 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &w);
    wait_once("added the writer", 1000);
    write(c, buf, 100);
    wait_once("after the writer sent 100 bytes", 1000);
    wait_once("while they were acknowledged", 50);
    printf("read %zd\n", read(s, buf, sizeof buf));
    wait_once("after reading everything", 50);
    close(c);
    wait_once("after the writer closed", 1000);
    return 0;
}
"#;

#[test]
fn edge_triggered_epoll_on_tcp_reports_wakeups_only() {
    let (native, _, simulated) = native_and_simulated("ettcp", ET_TCP_C, &[], "");
    // Linux: a connection's waiters are woken by arriving data (sk_data_ready), by room freed
    // after a writer found none (sk_write_space with SOCK_NOSPACE) and by state changes; an
    // edge-triggered entry then reports every event that holds. A read that empties (or half
    // empties) the queue wakes nobody, nor does an ACK that frees room nobody waited for.
    let linux = "added the reader: 1 reader 0x4\n\
                 after 100 bytes came: 1 reader 0x5\n\
                 read 100\n\
                 after reading them all: 0\n\
                 after 10 more came: 1 reader 0x5\n\
                 read 5\n\
                 after reading half of them: 0\n\
                 added the writer: 1 writer 0x4\n\
                 after the writer sent 100 bytes: 1 reader 0x5\n\
                 while they were acknowledged: 0\n\
                 read 105\n\
                 after reading everything: 0\n\
                 after the writer closed: 1 reader 0x2005\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const EXIT_WAKE_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int word;
static pthread_mutex_t robust;
static char log1[128];

static void *waiter(void *arg) {
    struct timespec to = {0, 300000000};
    long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &to, 0, 0);
    snprintf(log1, sizeof log1, "waiter: %ld %s, word %d\n", r, r < 0 ? strerrorname_np(errno) : "-", word);
    return 0;
}

static void *changer(void *arg) {
    usleep(50000);
    word = 1; /* changed, and no FUTEX_WAKE: nothing wakes the waiter before its timeout */
    return 0;
}

static void *owner(void *arg) {
    pthread_mutex_lock(&robust);
    usleep(50000);
    return 0; /* exits holding the robust mutex */
}

int main(void) {
    pthread_t w, c, o;
    pthread_create(&w, 0, waiter, 0);
    pthread_create(&c, 0, changer, 0);
    pthread_join(c, 0);
    printf("joined the changer\n");
    pthread_join(w, 0);
    fputs(log1, stdout);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_create(&o, 0, owner, 0);
    usleep(10000);
    int r = pthread_mutex_lock(&robust);
    printf("lock after the owner died: %s\n", r ? strerrorname_np(r) : "0");
    if (r == EOWNERDEAD) pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    pthread_join(o, 0);
    printf("joined the owner\n");
    return 0;
}
"#;

#[test]
fn a_threads_exit_wakes_its_joiner_and_robust_mutex_waiters_only() {
    let (native, _, simulated) = native_and_simulated("exitwake", EXIT_WAKE_C, &["-pthread"], "");
    // Linux: the exit of a thread that changed a futex word without a wake leaves that word's
    // waiter asleep until its timeout; the exit of a robust mutex's owner wakes the next locker
    // with EOWNERDEAD; joins return (the CLONE_CHILD_CLEARTID word).
    let linux = "joined the changer\n\
                 waiter: -1 ETIMEDOUT, word 1\n\
                 lock after the owner died: EOWNERDEAD\n\
                 joined the owner\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const LEADER_C: &str = r#"#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <time.h>
static void *worker(void *a) {
    for (int i = 0; i < 3; i++) { usleep(100000); printf("worker tick %d\n", i); fflush(stdout); }
    printf("worker done\n"); fflush(stdout);
    syscall(SYS_exit, 3);
    return 0;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    printf("main exits\n"); fflush(stdout);
    syscall(SYS_exit, 5);
}
"#;

#[test]
fn a_main_thread_that_exits_first_leaves_its_process_running_until_the_last_thread_exits() {
    let (native, code, simulated) = native_and_simulated("leader", LEADER_C, &["-pthread"], "expected_exit = 3\n");
    // Linux: after the main thread's SYS_exit the worker keeps running; the process ends with
    // the last thread, its status that thread's exit code.
    let linux = "main exits\nworker tick 0\nworker tick 1\nworker tick 2\nworker done\n";
    assert_eq!((native.as_str(), code), (linux, 3), "natively");
    assert_eq!(simulated, linux, "under the engine (and it exits with 3: expected_exit)");
}

const SIGIO_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t sigio;
static void on_sigio(int s) { (void)s; sigio++; }

int main(void) {
    int p[2];
    pipe(p);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigio;
    sigaction(SIGIO, &sa, 0);
    fcntl(p[0], F_SETOWN, getpid());
    fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK);
    if (fork() == 0) {
        struct timespec d = {0, 200000000}, later = {1, 0};
        nanosleep(&d, 0);
        write(p[1], "x", 1);
        nanosleep(&later, 0);
        _exit(0);
    }
    struct timespec d = {5, 0}, rem = {0, 0};
    int r = nanosleep(&d, &rem);
    printf("nanosleep %d %s sigio %d rem %.1f\n", r, r ? strerrorname_np(errno) : "-", (int)sigio,
           rem.tv_sec + rem.tv_nsec / 1e9);
    return 0;
}
"#;

#[test]
fn a_write_to_a_pipe_in_async_mode_signals_its_owner_at_once() {
    let (native, _, simulated) = native_and_simulated("sigio", SIGIO_C, &[], "");
    // Linux: the child's write at 0.2 s sends SIGIO to the reader's owner, whose 5-s sleep ends
    // with EINTR and 4.8 s left (not at the child's exit, 1 s later).
    let linux = "nanosleep -1 EINTR sigio 1 rem 4.8\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const NOTSENT_LOWAT_C: &str = r#"#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0), v = 0;
    socklen_t len = sizeof v;
    getsockopt(s, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len);
    printf("default %d\n", v);
    v = 16384;
    printf("set %d\n", setsockopt(s, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof v));
    v = 0;
    getsockopt(s, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len);
    printf("read back %d\n", v);
    return 0;
}
"#;

#[test]
fn tcp_notsent_lowat_is_accepted_and_read_back() {
    let (native, _, simulated) = native_and_simulated("lowat", NOTSENT_LOWAT_C, &[], "");
    let linux = "default 0\nset 0\nread back 16384\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine (stored, without effect: docs/direct.md)");
}

#[test]
fn the_cpuid_faulting_note_is_printed_only_with_verbose() {
    let dir = scratch("conform-cpuid");
    let exe = compile(&dir, "hello", "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n");
    let spec = program_spec(&dir, &exe, &[], "");
    let run = |flags: &[&str]| {
        let out = dir.join(format!("out{}", flags.len()));
        let mut args = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
        args.extend_from_slice(flags);
        String::from_utf8_lossy(&run_ok(&args).stderr).into_owned()
    };
    assert!(!run(&[]).contains("CPUID"), "no note without --verbose");
    let faulting = read("/proc/cpuinfo".into()).contains("cpuid_fault");
    assert_eq!(run(&["--verbose"]).matches("CPUID faulting is not available").count(), usize::from(!faulting));
}

const UDP_SENDTO_C: &str = r#"#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int bound(int port, struct sockaddr_in *a) {
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    bind(s, (struct sockaddr *)a, sizeof *a);
    return s;
}

int main(void) {
    struct sockaddr_in a, b, c;
    int sa = bound(47101, &a), sb = bound(47102, &b), sc = bound(47103, &c);
    connect(sa, (struct sockaddr *)&b, sizeof b);
    long n = sendto(sa, "to c", 4, 0, (struct sockaddr *)&c, sizeof c);
    printf("sendto another address on a connected socket: %ld %s\n", n, n < 0 ? strerror(errno) : "-");
    char buf[16] = {0};
    n = recv(sc, buf, sizeof buf, 0);
    printf("the other address got: %ld %s\n", n, n > 0 ? buf : "-");
    n = send(sa, "to b", 4, 0);
    n = recv(sb, buf, sizeof buf, 0);
    printf("the connected peer got: %ld %.4s\n", n, buf);
    return 0;
}
"#;

#[test]
fn udp_sendto_with_an_address_on_a_connected_socket_sends_there() {
    let (native, _, simulated) = native_and_simulated("udpsendto", UDP_SENDTO_C, &[], "");
    let linux = "sendto another address on a connected socket: 4 -\nthe other address got: 4 to c\n\
                 the connected peer got: 4 to b\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const SEGV_C: &str = r#"#define _GNU_SOURCE
#include <cpuid.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <x86intrin.h>

static sigjmp_buf back;
static volatile int caught;
static void on_fault(int sig) { caught = sig; siglongjmp(back, 1); }

static void instructions(const char *when) {
    unsigned a, b, c, d;
    unsigned long long t0 = __rdtsc(), t1 = __rdtsc();
    __cpuid(0, a, b, c, d);
    printf("%s: rdtsc %s, cpuid leaf 0 answers %s\n", when, t1 >= t0 ? "monotonic" : "backwards", a > 0 ? "yes" : "no");
}

static void *worker(void *arg) { instructions(arg); return NULL; }

int main(void) {
    struct sigaction dfl = {0}, seen = {0};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    instructions("every signal reset to SIG_DFL (as Node.js starts)");

    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_t t;
    pthread_create(&t, NULL, worker, "a thread with every signal blocked");
    pthread_join(t, NULL);
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    printf("SIGTERM still blocked: %d\n", sigismember(&now, SIGTERM));
    pthread_sigmask(SIG_UNBLOCK, &all, NULL);

    struct sigaction mine = {0};
    mine.sa_handler = on_fault;
    sigaction(SIGSEGV, &mine, NULL);
    sigaction(SIGSEGV, NULL, &seen);
    printf("the program's own handler reads back: %d\n", seen.sa_handler == on_fault);
    instructions("with the program's own SIGSEGV handler");
    if (sigsetjmp(back, 1) == 0) { *(volatile int *)8 = 1; }
    printf("a real fault reaches the program's handler: %s\n", caught == SIGSEGV ? "yes" : "no");
    if (signal(SIGSEGV, SIG_IGN) == on_fault) printf("signal() returns the previous handler\n");
    return 0;
}
"#;

/// Programs reset, replace and block `SIGSEGV` (Node.js resets every signal at start-up, thread
/// pools block every signal): `rdtsc` and `cpuid`, which fault under the engine, still work, and
/// the program's own handler still gets its real faults and reads back as it set it.
#[test]
fn rdtsc_and_cpuid_work_whatever_the_program_does_with_sigsegv() {
    let (native, code, simulated) = native_and_simulated("segv", SEGV_C, &["-pthread"], "");
    assert_eq!(code, 0, "natively: {native}");
    assert!(native.contains("a real fault reaches the program's handler: yes"), "natively: {native}");
    assert_eq!(simulated, native, "under the engine");
}

const TIMERS_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>

static volatile int alarms;
static void on_alarm(int s) { (void)s; alarms++; }
static struct itimerspec spec(long first_ms, long every_ms) {
    struct itimerspec s = {{every_ms / 1000, (every_ms % 1000) * 1000000L}, {first_ms / 1000, (first_ms % 1000) * 1000000L}};
    return s;
}
static long long expirations(int fd) {
    uint64_t n = 0;
    return read(fd, &n, sizeof n) == sizeof n ? (long long)n : -errno;
}

int main(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec s = spec(300, 0);
    timerfd_settime(fd, 0, &s, NULL);
    s = spec(600, 0);
    timerfd_settime(fd, 0, &s, NULL);
    struct pollfd p = {fd, POLLIN, 0};
    printf("re-armed from 300 to 600 ms, poll for 450 ms: %d\n", poll(&p, 1, 450));
    printf("then a read: %lld\n", expirations(fd));
    s = spec(200, 200);
    timerfd_settime(fd, 0, &s, NULL);
    printf("every 200 ms, first read: %lld\n", expirations(fd));
    usleep(700000);
    printf("after 700 ms more: %lld\n", expirations(fd));
    s = spec(0, 0);
    timerfd_settime(fd, 0, &s, NULL);
    usleep(500000);
    int flags = TFD_NONBLOCK;
    int quiet = timerfd_create(CLOCK_MONOTONIC, flags);
    struct itimerspec left;
    timerfd_gettime(fd, &left);
    printf("disarmed: gettime %ld.%09ld, nonblocking read of a fresh timer: %lld\n", (long)left.it_value.tv_sec, left.it_value.tv_nsec, expirations(quiet));

    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 0}, {0, 300000}};
    setitimer(ITIMER_REAL, &it, NULL);
    it.it_value.tv_usec = 0;
    it.it_value.tv_sec = 1;
    setitimer(ITIMER_REAL, &it, NULL);
    usleep(600000);
    printf("alarm re-set from 300 ms to 1 s, after 600 ms: %d\n", alarms);
    struct itimerval now;
    getitimer(ITIMER_REAL, &now);
    printf("left: about %ld ms\n", (now.it_value.tv_usec / 1000 + 50) / 100 * 100);
    pause();
    printf("then it fired: %d\n", alarms);
    return 0;
}
"#;

/// Timers re-armed before they fire: a timerfd and `ITIMER_REAL` set again (and a timerfd
/// disarmed) fire at their last setting only, and a periodic timerfd counts its expirations, as
/// on Linux. Under the engine every one is an entry of the host's one timer table, whose earlier
/// events go stale when it is re-armed.
#[test]
fn re_armed_and_disarmed_timers_fire_at_their_last_setting_only() {
    let (native, _, simulated) = native_and_simulated("timers", TIMERS_C, &[], "");
    let linux = "re-armed from 300 to 600 ms, poll for 450 ms: 0\nthen a read: 1\n\
                 every 200 ms, first read: 1\nafter 700 ms more: 3\n\
                 disarmed: gettime 0.000000000, nonblocking read of a fresh timer: -11\n\
                 alarm re-set from 300 ms to 1 s, after 600 ms: 0\nleft: about 400 ms\nthen it fired: 1\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}

const UDP_REUSE_C: &str = r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int one = 1;
static struct sockaddr_in server = {.sin_family = AF_INET};

static int bound(const char *name, int reuse) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (reuse) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = server.sin_port};
    int r = bind(s, (struct sockaddr *)&a, sizeof a);
    printf("bind %s%s: %s\n", name, reuse ? " with SO_REUSEADDR" : "", r ? strerrorname_np(errno) : "ok");
    return s;
}

static void deliver(const char *what, int from, int a, const char *bname, int b) {
    sendto(from, what, strlen(what), 0, (struct sockaddr *)&server, sizeof server);
    usleep(20000);
    char buf[16];
    for (int i = 0; i < 2; i++) {
        ssize_t n = recv(i ? b : a, buf, sizeof buf - 1, 0);
        if (n > 0) { buf[n] = 0; printf("%s went to %s\n", buf, i ? bname : "a"); }
    }
}

int main(void) {
    server.sin_port = htons(7100);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int a = bound("a", 1);
    int b = bound("b", 1);
    bound("c", 0);
    int c1 = socket(AF_INET, SOCK_DGRAM, 0), c2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof local;
    bind(c1, (struct sockaddr *)&local, sizeof local);
    getsockname(c1, (struct sockaddr *)&local, &len);
    deliver("before-connect", c1, a, "b", b);
    connect(a, (struct sockaddr *)&local, sizeof local);
    deliver("from-its-peer", c1, a, "b", b);
    deliver("from-another", c2, a, "b", b);
    close(b);
    deliver("b-closed", c2, a, "b", b);
    printf("with b closed, a stranger's datagram went nowhere\n");
    int d = bound("d", 1);
    deliver("after-d", c2, a, "d", d);
    return 0;
}
"#;

/// Sockets that set `SO_REUSEADDR` share a UDP port (one that did not is refused): a datagram
/// goes to the socket connected to its sender, else to the one bound last, as on Linux; this is
/// what `socat UDP-LISTEN:…,fork` relies on.
#[test]
fn udp_sockets_with_so_reuseaddr_share_a_port_and_a_connected_one_takes_its_peer() {
    let (native, _, simulated) = native_and_simulated("udpreuse", UDP_REUSE_C, &[], "");
    let linux = "bind a with SO_REUSEADDR: ok\nbind b with SO_REUSEADDR: ok\nbind c: EADDRINUSE\n\
                 before-connect went to b\nfrom-its-peer went to a\nfrom-another went to b\n\
                 with b closed, a stranger's datagram went nowhere\nbind d with SO_REUSEADDR: ok\nafter-d went to d\n";
    assert_eq!(native, linux, "natively");
    assert_eq!(simulated, linux, "under the engine");
}
