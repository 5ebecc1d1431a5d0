//! Calls the shim answers inside the process: `syscall(SYS_clock_gettime, …)` and the other time
//! reads, `getcpu` and `uname` made through libc's `syscall()` (and `uname()`) give what the
//! supervisor gives a static binary without the shim, and what the vDSO gives, and spend the same
//! simulated time (the syscall-latency rule).

mod common;

use common::*;
use std::path::Path;

/// Makes raw syscalls and compares them with the vDSO; prints what a run must reproduce.
const PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long raw_mono(void) {
    struct timespec t;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
    return ns(t);
}

/* clock_gettime made with the syscall instruction itself: the supervisor answers it */
static long long asm_mono(void) {
    struct timespec t;
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"((long)SYS_clock_gettime), "D"((long)CLOCK_MONOTONIC), "S"(&t)
                      : "rcx", "r11", "memory");
    return r == 0 ? ns(t) : -1;
}

int main(void) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, 0); /* empties the task's syscall-latency account */
    long long t0 = raw_mono();
    for (int i = 0; i < 5000; i++) raw_mono();
    long long t1 = raw_mono();
    printf("5002 raw clock_gettime calls took %lld ns\n", t1 - t0);
    nanosleep(&ms, 0);
    int clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI, CLOCK_MONOTONIC_RAW,
                    CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        struct timespec a, b;
        clock_gettime(clocks[i], &a);
        long r = syscall(SYS_clock_gettime, clocks[i], &b);
        printf("clock %d: %ld %lld same-as-vdso %d\n", clocks[i], r, ns(b), ns(a) == ns(b));
    }
    printf("syscall instruction: same %d\n", asm_mono() == raw_mono());
    struct timeval tv1, tv2;
    gettimeofday(&tv1, 0);
    long r = syscall(SYS_gettimeofday, &tv2, 0);
    printf("gettimeofday: %ld %lld.%06ld same %d\n", r, (long long)tv2.tv_sec, (long)tv2.tv_usec,
           tv1.tv_sec == tv2.tv_sec && tv1.tv_usec == tv2.tv_usec);
    time_t t = 0;
    long s = syscall(SYS_time, &t);
    printf("time: %ld %lld same %d\n", s, (long long)t, s == (long)time(0));
    unsigned cpu = 7, node = 7;
    r = syscall(SYS_getcpu, &cpu, &node, 0);
    printf("getcpu: %ld cpu %u node %u\n", r, cpu, node);
    struct utsname u1, u2, u3;
    memset(&u1, 0, sizeof u1);
    long r1 = syscall(SYS_uname, &u1);
    long r2 = uname(&u2);
    long r3 = syscall(SYS_uname, &u3);
    printf("uname: %ld %ld %ld %s %s %s %s same %d\n", r1, r2, r3, u1.sysname, u1.nodename, u1.machine,
           strlen(u1.release) ? "release" : "no-release", !memcmp(&u1, &u2, sizeof u1) && !memcmp(&u1, &u3, sizeof u1));
    errno = 0;
    r = syscall(SYS_clock_gettime, 12345, &ms);
    printf("unknown clock: %ld %s\n", r, strerror(errno));
    errno = 0;
    r = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, 0);
    printf("null timespec: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_uname, 0);
    printf("null utsname: %ld %s\n", r, strerror(errno));
    printf("getpid %ld %d\n", syscall(SYS_getpid), getpid());
    errno = 0;
    r = syscall(SYS_close, 12345);
    printf("a passed-on call: %ld %s\n", r, strerror(errno));
    return 0;
}
"#;

fn spec(exe: &Path) -> String {
    format!(
        r#"
[run]
seed = 5
duration = "10 s"
start_date = "2026-01-01T00:00:00Z"

[network]
topology = "single-switch"

[[hosts]]
name = "raw"
kind = "direct"
count = 1

[[processes]]
host = "raw"
path = "{}"
start = "1 s"
"#,
        exe.display()
    )
}

fn run_program(dir: &Path, flags: &[&str]) -> String {
    let exe = compile_with(dir, "raw", PROGRAM, flags);
    let spec = write_spec(dir, "raw.toml", &spec(&exe));
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    read(out.join("hosts/raw/raw.0.stdout"))
}

#[test]
fn raw_time_syscalls_under_the_shim_answer_as_the_supervisor_does_for_a_static_binary() {
    let shim = run_program(&scratch("direct-local-shim"), &[]);
    let lines: Vec<&str> = shim.lines().collect();
    // 1 ms per 1,000 calls charged at 1 µs, waited off at the same calls as under the supervisor.
    assert_eq!(lines[0], "5002 raw clock_gettime calls took 5000000 ns", "{shim}");
    for l in &lines[1..10] {
        assert!(l.contains(": 0 ") && l.ends_with("same-as-vdso 1"), "{l}\n{shim}");
    }
    assert!(lines[1].starts_with("clock 0: 0 1767225601"), "realtime is the start date + 1 s: {shim}");
    for want in [
        "syscall instruction: same 1",
        "getcpu: 0 cpu 0 node 0",
        "uname: 0 0 0 Linux raw x86_64 release same 1",
        "unknown clock: -1 Invalid argument",
        "null timespec: -1 Bad address",
        "null utsname: -1 Bad address",
        "getpid 2 2",
        "a passed-on call: -1 Bad file descriptor",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{shim}");
    }
    assert!(lines.iter().any(|l| l.starts_with("gettimeofday: 0 ") && l.ends_with(" same 1")), "{shim}");
    assert!(lines.iter().any(|l| l.starts_with("time: 1767225601 1767225601 same 1")), "{shim}");
    let alone = run_program(&scratch("direct-local-static"), &["-static"]);
    assert_eq!(shim, alone, "the shim's answers differ from the supervisor's (static binary, no shim)");
}

#[test]
fn programs_start_with_default_signal_dispositions_however_thermocline_was_started() {
    // `nohup` ignores SIGHUP, and a shell's background job SIGINT and SIGQUIT; exec keeps what is
    // ignored. A host's program must not inherit that: it would make a trap on SIGINT a no-op.
    let dir = scratch("local-sigign");
    let spec = program_spec(&dir, Path::new("/bin/sh"), &["-c", "grep SigIgn /proc/self/status"], "");
    let out = dir.join("out");
    let status = std::process::Command::new("/bin/sh")
        .args(["-c", "trap '' HUP INT QUIT USR1; exec \"$0\" run \"$1\" -q --out \"$2\""])
        .args([exe(), spec.to_str().unwrap(), out.to_str().unwrap()])
        .status()
        .expect("run thermocline with signals ignored");
    assert!(status.success());
    assert_eq!(read(out.join("hosts/t/sh.0.stdout")), "SigIgn:\t0000000000000000\n");
}
