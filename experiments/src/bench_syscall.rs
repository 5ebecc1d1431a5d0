//! `thermocline bench syscall`: what interception costs. A small probe program (C, compiled at
//! run time with `cc`) runs natively and under the direct-host supervisor; the figure is wall
//! time per call, from the difference between a run with `n` calls and a run with none (so
//! process start-up cancels out). Under the shim the probe cannot time itself: its clocks are
//! simulated.

use crate::run::{RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use thermocline_bus::NoProgress;

/// Options of `bench syscall`.
#[derive(Clone, Debug, clap::Args)]
pub struct SyscallBench {
    /// Calls per measurement for the time read (vDSO `clock_gettime`).
    #[arg(long, default_value_t = 20_000_000)]
    pub time_calls: u64,
    /// Calls per measurement for the forwarded syscall and the UDP pair.
    #[arg(long, default_value_t = 200_000)]
    pub calls: u64,
    /// Calls per measurement for `syscall(SYS_clock_gettime, …)` (answered in the process under
    /// the shim: enough calls for a few ns each to stand out from a run's start-up).
    #[arg(long, default_value_t = 2_000_000)]
    pub raw_calls: u64,
    /// Repeats; the minimum is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The probe: `probe MODE N` makes N calls of one kind.
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <stddef.h>
#include <ucontext.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static int ping[2], pong[2];
static long rounds;
static void *echo(void *arg) {
    char c;
    for (long i = 0; i < rounds; i++) { if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1) break; }
    return arg;
}

/* Newer than Debian 12's kernel headers (Linux 6.6). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

/* A seccomp filter giving `action` for time(2) and allowing the rest. */
static int filter_time(unsigned action, unsigned flags) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_time, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {4, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void on_sigsys(int sig, siginfo_t *info, void *ctx) {
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = 42;
}

static void pin(void) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    volatile long sink = 0;
    if (!strcmp(argv[1], "notify")) {
        /* the mechanism alone: a minimal supervisor (this process) answers the user notifications
           of its child's time(2) calls at once, both on one CPU, with synchronous wake-ups */
        pin();
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 3;
        pid_t child = fork();
        if (child == 0) {
            int fd = filter_time(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
            if (fd < 0) _exit(3);
            char c = 0, cbuf[CMSG_SPACE(sizeof(int))];
            struct iovec io = {&c, 1};
            struct msghdr m = {0};
            m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
            struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
            cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fd, sizeof fd);
            if (sendmsg(sv[1], &m, 0) != 1) _exit(4);
            for (long i = 0; i < n; i++) sink += syscall(SYS_time, 0);
            _exit(0);
        }
        char c, cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec io = {&c, 1};
        struct msghdr m = {0};
        m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
        if (recvmsg(sv[0], &m, 0) != 1) return 4;
        int fd;
        memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        for (long i = 0; i < n; i++) {
            memset(&req, 0, sizeof req);
            if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) return 5;
            resp.id = req.id; resp.val = 42; resp.error = 0; resp.flags = 0;
            if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp)) return 6;
        }
        int status;
        if (waitpid(child, &status, 0) != child || status != 0) return 7;
        printf("0\n");
        return 0;
    }
    if (!strcmp(argv[1], "sigsys")) {
        /* answered in the caller's own process: a SECCOMP_RET_TRAP filter and a SIGSYS handler */
        struct sigaction sa = {0};
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        if (sigaction(SIGSYS, &sa, 0) || filter_time(SECCOMP_RET_TRAP, 0)) return 3;
        for (long i = 0; i < n; i++) sink += syscall(SYS_time, 0);
        printf("%ld\n", sink & 1);
        return 0;
    }
    if (!strcmp(argv[1], "switch")) {
        /* the machine's floor for any design where another thread answers: a one-byte pipe
           round trip between two threads on one CPU (two context switches, four syscalls) */
        pin();
        if (pipe(ping) || pipe(pong)) return 3;
        rounds = n;
        pthread_t t;
        pthread_create(&t, 0, echo, 0);
        char c = 'x';
        for (long i = 0; i < n; i++) { if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) return 4; }
        pthread_join(t, 0);
        printf("0\n");
        return 0;
    }
    if (!strcmp(argv[1], "time")) {
        struct timespec ts;
        for (long i = 0; i < n; i++) { clock_gettime(CLOCK_MONOTONIC, &ts); sink += ts.tv_nsec; }
    } else if (!strcmp(argv[1], "syscall")) {
        /* time(2) made with the syscall instruction itself (not libc's syscall(), which the shim
           answers): notified and answered by the supervisor, no memory access */
        for (long i = 0; i < n; i++) {
            long r;
            __asm__ volatile ("syscall" : "=a"(r) : "a"((long)SYS_time), "D"(0L) : "rcx", "r11", "memory");
            sink += r;
        }
    } else if (!strcmp(argv[1], "raw_clock_gettime")) {
        /* clock_gettime as a syscall through libc's syscall(), as programs that bypass the vDSO
           make it */
        struct timespec ts;
        for (long i = 0; i < n; i++) { syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts); sink += ts.tv_nsec; }
    } else if (!strcmp(argv[1], "udp")) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); a.sin_port = 0;
        if (bind(s, (struct sockaddr *)&a, sizeof a)) return 3;
        socklen_t len = sizeof a;
        getsockname(s, (struct sockaddr *)&a, &len);
        char buf[64] = "0123456789012345678901234567890123456789012345678901234567890123";
        for (long i = 0; i < n; i++) {
            if (sendto(s, buf, 64, 0, (struct sockaddr *)&a, sizeof a) != 64) return 4;
            if (recv(s, buf, 64, 0) != 64) return 5;
        }
    } else return 2;
    printf("%ld\n", sink & 1);
    return 0;
}
"#;

fn compile_probe(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("probe.c");
    std::fs::write(&src, PROBE)?;
    let exe = dir.join("probe");
    let out = Command::new("cc").args(["-O2", "-o"]).arg(&exe).arg(&src).output().context("running cc")?;
    if !out.status.success() {
        bail!("cc failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(exe)
}

fn native(probe: &Path, mode: &str, n: u64) -> Result<Duration> {
    let started = Instant::now();
    let st = Command::new(probe).args([mode, &n.to_string()]).output()?;
    if !st.status.success() {
        bail!("the probe failed natively: {:?}", st.status);
    }
    Ok(started.elapsed())
}

fn shimmed(dir: &Path, probe: &Path, mode: &str, n: u64, trap_rdtsc: bool, exe: &Path) -> Result<Duration> {
    let out = dir.join(format!("run-{mode}-{n}-{trap_rdtsc}"));
    let text = format!(
        "[run]\nduration = \"1000 h\"\n[network]\ntopology = \"single-switch\"\n[output]\ndir = {out:?}\n\
         [[hosts]]\nname = \"bench\"\nkind = \"direct\"\ncount = 1\n\
         [[processes]]\nhost = \"bench\"\npath = {probe:?}\nargs = [{mode:?}, \"{n}\"]\ntrap_rdtsc = {trap_rdtsc}\n",
        out = out.display().to_string(),
        probe = probe.display().to_string(),
    );
    let spec = Spec::parse(&text, "<bench syscall>")?;
    let window = window_config(&spec, 1).map_err(anyhow::Error::msg)?;
    let plan = RunPlan { spec, shards: 1, backend: Backend::Threads, exe: exe.to_path_buf() };
    let outcome = execute(&plan, window, &NoProgress, None)?.context("no outcome")?;
    Ok(outcome.wall)
}

/// ns per call: min over repeats of (T(n) − T(0)) / n.
fn per_call(n: u64, repeats: u32, mut run: impl FnMut(u64) -> Result<Duration>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let base = run(0)?;
        let full = run(n)?;
        best = best.min(full.saturating_sub(base).as_nanos() as f64 / n as f64);
    }
    Ok(best)
}

/// Run `thermocline bench syscall`.
pub fn syscall(args: &SyscallBench, exe: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("thermocline-bench-syscall-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<serde_json::Value> {
        let probe = compile_probe(&dir)?;
        let mut rows = Vec::new();
        for (key, mode, n) in [
            ("time_read", "time", args.time_calls),
            ("forwarded_syscall", "syscall", args.calls),
            ("raw_clock_gettime", "raw_clock_gettime", args.raw_calls),
            ("udp_send_recv_pair", "udp", args.calls),
        ] {
            let nat = per_call(n, args.repeats, |k| native(&probe, mode, k))?;
            let shim = per_call(n, args.repeats, |k| shimmed(&dir, &probe, mode, k, true, exe))?;
            // With rdtsc left untrapped (`trap_rdtsc = false`): shows that trapping costs nothing
            // per syscall now that the supervisor takes the mode of the task it answers.
            let untrapped = per_call(n, args.repeats, |k| shimmed(&dir, &probe, mode, k, false, exe))?;
            rows.push((
                key,
                json!({ "calls": n, "native_ns": nat, "shim_ns": shim, "shim_rdtsc_untrapped_ns": untrapped }),
            ));
        }
        // Not shim figures, natively: what two context switches cost here; what the user
        // notification mechanism alone costs (a minimal supervisor answering at once); and what
        // answering inside the calling process (SIGSYS) costs, the only kind of design that
        // avoids the switches.
        for (key, mode) in
            [("context_switch_floor", "switch"), ("user_notification_floor", "notify"), ("in_process_sigsys", "sigsys")]
        {
            let ns = per_call(args.calls, args.repeats, |k| native(&probe, mode, k))?;
            rows.push((key, json!({ "calls": args.calls, "native_ns": ns })));
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in rows {
            obj.insert(k.to_string(), v);
        }
        obj.insert(
            "anchors".into(),
            json!({
                "shadow_round_trip_nonblocking_ns": 6800,
                "shadow_round_trip_blocking_ns": 13400,
                "native_syscall_ns": 130,
                "goal_time_read_ns": 50,
                "goal_raw_clock_gettime_ns": 100,
                "goal_forwarded_nonblocking_ns": 3000
            }),
        );
        obj.insert(
            "method".into(),
            json!("wall time of a run with N calls minus a run with none, divided by N; minimum over repeats"),
        );
        Ok(serde_json::Value::Object(obj))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let v = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{:<22} {:>12} {:>12} {:>22}", "per call", "native ns", "shim ns", "shim, rdtsc untrapped");
        for k in ["time_read", "forwarded_syscall", "raw_clock_gettime", "udp_send_recv_pair"] {
            let f = |c: &str| v[k][c].as_f64().unwrap_or(0.0);
            println!("{k:<22} {:>12.1} {:>12.1} {:>22.1}", f("native_ns"), f("shim_ns"), f("shim_rdtsc_untrapped_ns"));
        }
        let floor = |k: &str| v[k]["native_ns"].as_f64().unwrap_or(0.0);
        println!(
            "floors: a pipe round trip between two threads on one CPU (two switches) {:.1} ns; \
             user notification answered by a minimal supervisor {:.1} ns; in-process SIGSYS {:.1} ns",
            floor("context_switch_floor"),
            floor("user_notification_floor"),
            floor("in_process_sigsys")
        );
        println!("anchors: Shadow 6.8 us non-blocking / 13.4 us blocking round trip; native syscall ~0.13 us");
    }
    Ok(())
}
