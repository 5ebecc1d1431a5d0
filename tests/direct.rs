//! Direct hosts end to end: real, unmodified programs (a C program compiled here, Debian's
//! python3, socat, sh) run under the supervisor with emulated time, randomness, processes and
//! UDP, and give the same bytes on every run.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compile `source` (C) into `dir/name` with the system compiler.
fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let exe = dir.join(name);
    let out = Command::new("cc").arg("-O1").arg("-o").arg(&exe).arg(&src).output().expect("run cc");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const TIME_PROGRAM: &str = r#"
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <sys/time.h>
#include <sys/random.h>
#include <unistd.h>

static void show(const char *tag) {
    struct timespec r, m, b;
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_BOOTTIME, &b);
    gettimeofday(&tv, 0);
    printf("%s realtime %lld.%09ld monotonic %lld.%09ld boottime %lld.%09ld gettimeofday %lld.%06ld time %lld\n",
           tag, (long long)r.tv_sec, r.tv_nsec, (long long)m.tv_sec, m.tv_nsec, (long long)b.tv_sec, b.tv_nsec,
           (long long)tv.tv_sec, (long)tv.tv_usec, (long long)time(0));
}

int main(void) {
    show("start");
    printf("tsc %llu\n", (unsigned long long)__builtin_ia32_rdtsc());
    unsigned char buf[8];
    getrandom(buf, sizeof buf, 0);
    printf("getrandom %02x%02x%02x%02x%02x%02x%02x%02x\n", buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]);
    FILE *f = fopen("/dev/urandom", "r");
    if (!f || fread(buf, 1, sizeof buf, f) != sizeof buf) return 3;
    fclose(f);
    printf("urandom %02x%02x%02x%02x%02x%02x%02x%02x\n", buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]);
    sleep(3600);
    show("after-sleep");
    struct timespec half = {0, 500000000};
    nanosleep(&half, 0);
    show("after-nanosleep");
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 10;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, 0);
    show("after-absolute");
    return 0;
}
"#;

fn time_spec(exe: &Path) -> String {
    format!(
        r#"
[run]
seed = 11
duration = "3 h"
start_date = "2026-01-01T00:00:00Z"

[network]
topology = "single-switch"
latency = "10 ms"

[[hosts]]
name = "clock"
kind = "direct"
count = 1

[[processes]]
host = "clock"
path = "{}"
start = "1 s"
"#,
        exe.display()
    )
}

/// The start date 2026-01-01T00:00:00Z, s since the epoch; the monotonic clock starts at 1 h.
const START: u64 = 1_767_225_600;
const BOOT: u64 = 3600;

fn line(tag: &str, sim_s: u64, sim_ns: u64) -> String {
    let (r, m) = (START + sim_s, BOOT + sim_s);
    format!(
        "{tag} realtime {r}.{sim_ns:09} monotonic {m}.{sim_ns:09} boottime {m}.{sim_ns:09} gettimeofday {r}.{:06} time {r}",
        sim_ns / 1000
    )
}

#[test]
fn a_c_program_sees_exact_emulated_time_and_sleeps_an_hour_without_waiting() {
    let dir = scratch("direct-time");
    let exe = compile(&dir, "clock", TIME_PROGRAM);
    let spec = write_spec(&dir, "time.toml", &time_spec(&exe));
    let mut runs = Vec::new();
    for i in 0..2 {
        let out = dir.join(format!("out{i}"));
        // A real one-hour sleep would blow the deadline many times over.
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        let stdout = read(out.join("hosts/clock/clock.0.stdout"));
        let digest = summary(&out)["digest"].as_str().unwrap().to_string();
        runs.push((stdout, digest));
    }
    let lines: Vec<&str> = runs[0].0.lines().collect();
    assert_eq!(lines[0], line("start", 1, 0), "{}", runs[0].0);
    assert_eq!(lines[1], format!("tsc {}", (BOOT + 1) * 1_000_000_000), "rdtsc counts simulated ns");
    assert!(lines[2].starts_with("getrandom ") && lines[3].starts_with("urandom "));
    assert_ne!(lines[2][10..], lines[3][8..], "two draws from the host's stream differ");
    assert_eq!(lines[4], line("after-sleep", 3601, 0));
    assert_eq!(lines[5], line("after-nanosleep", 3601, 500_000_000));
    assert_eq!(lines[6], line("after-absolute", 3611, 500_000_000));
    assert_eq!(runs[0], runs[1], "repeated runs give the same stdout and digest");

    // Another seed: other random bytes, same times.
    let out = dir.join("seed");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--seed", "12"]);
    let other = read(out.join("hosts/clock/clock.0.stdout"));
    assert_ne!(other.lines().nth(2), lines.get(2).copied());
    assert_eq!(other.lines().nth(4), lines.get(4).copied());
}

#[test]
fn a_wrong_exit_status_fails_the_run_naming_host_and_process() {
    let dir = scratch("direct-exit");
    let exe = compile(&dir, "fail", "int main(void) { return 3; }");
    let spec = write_spec(&dir, "exit.toml", &time_spec(&exe).replace("start = \"1 s\"", "start = \"0 s\""));
    let out = dir.join("out");
    let res = run_with_deadline(
        &["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"],
        std::time::Duration::from_secs(120),
    );
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("host clock process fail.0") && err.contains("ended with exit 3, expected exit 0"), "{err}");
    // Expecting it makes the run pass.
    let spec = write_spec(&dir, "exit3.toml", &format!("{}expected_exit = 3\n", read(spec.clone())));
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
}
