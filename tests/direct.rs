//! Direct hosts end to end: real, unmodified programs (a C program compiled here, Debian's
//! python3, socat, sh) run under the supervisor with emulated time, randomness, processes and
//! UDP, and give the same bytes on every run.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Prints every clock, the TSC, random bytes and CPU accounting around long sleeps.
const TIME_PROGRAM: &str = r#"
#include <stdio.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/sysinfo.h>
#include <stdint.h>
#include <stdlib.h>
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
    int local = 0;
    printf("stack %p heap %p\n", (void *)&local, malloc(100));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct tms t;
    clock_t ticks = times(&t);
    printf("cpu getrusage %lld.%06ld %lld.%06ld maxrss %ld times %lld %lld clock %lld\n",
           (long long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec, (long long)ru.ru_stime.tv_sec,
           (long)ru.ru_stime.tv_usec, ru.ru_maxrss, (long long)ticks, (long long)t.tms_utime, (long long)clock());
    struct sysinfo si;
    sysinfo(&si);
    printf("sysinfo uptime %ld load %lu procs %u all free %d\n", si.uptime, si.loads[0], si.procs,
           si.totalram > 0 && si.freeram == si.totalram);
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

/// CPU time is not modelled: simulated time since the run began (3611.5 s at the last line)
/// stands in for it in `getrusage`, `times` and `clock`; `times` counts monotonic ticks.
const CPU_LINE: &str = "cpu getrusage 3611.500000 0.000000 maxrss 0 times 721150 361150 clock 3611500000";

/// `sysinfo` at the same moment: boot clock 7211.5 s, no load, one thread, memory all free.
const SYSINFO_LINE: &str = "sysinfo uptime 7212 load 0 procs 1 all free 1";

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
    assert!(lines[7].starts_with("stack 0x7fff"), "{}", lines[7]);
    assert_eq!(lines[8], CPU_LINE, "CPU accounting is simulated time, the machine's figures read 0");
    assert_eq!(lines[9], SYSINFO_LINE, "uptime is the simulated boot clock's, rounded up");
    assert_eq!(runs[0], runs[1], "repeated runs give the same stdout and digest (addresses too: no ASLR)");

    // Another seed: other random bytes, same times.
    let out = dir.join("seed");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--seed", "12"]);
    let other = read(out.join("hosts/clock/clock.0.stdout"));
    assert_ne!(other.lines().nth(2), lines.get(2).copied());
    assert_eq!(other.lines().nth(4), lines.get(4).copied());
}

#[test]
fn trapped_and_untrapped_programs_share_a_host_whatever_the_supervisors_tsc_mode() {
    // The supervisor matches its own rdtsc mode to the task it answers (and must turn it off
    // before the bus or the report code reads the clock); programs of both kinds interleave on
    // one host and each sees its own kind of TSC.
    let dir = scratch("direct-tsc-modes");
    let exe = compile(&dir, "clock", TIME_PROGRAM);
    let mut text = time_spec(&exe);
    for (start, trap) in [("2 s", false), ("3 s", true), ("3 s", false)] {
        text.push_str(&format!(
            "\n[[processes]]\nhost = \"clock\"\npath = \"{}\"\nstart = \"{start}\"\ntrap_rdtsc = {trap}\n",
            exe.display()
        ));
    }
    let spec = write_spec(&dir, "tsc.toml", &text);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    for (i, (start, trapped)) in [(1, true), (2, false), (3, true), (3, false)].into_iter().enumerate() {
        let stdout = read(out.join(format!("hosts/clock/clock.{i}.stdout")));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.first().copied(), Some(line("start", start, 0).as_str()), "process {i}: {stdout}");
        let tsc = format!("tsc {}", (BOOT + start) * 1_000_000_000);
        assert_eq!(lines[1] == tsc, trapped, "process {i} (trapped: {trapped}) read {:?}", lines[1]);
        assert_eq!(lines[6], line("after-absolute", start + 3610, 500_000_000), "process {i}");
    }
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

const PING_PY: &str = r#"
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6000))
s.settimeout(5)
print("start", time.time(), socket.gethostname(), os.urandom(4).hex(), flush=True)
for i in range(3):
    t0 = time.monotonic_ns()
    s.sendto(f"ping {i}".encode(), ("10.0.0.2", 7000))
    data, addr = s.recvfrom(2048)
    t1 = time.monotonic_ns()
    print("rtt", i, data.decode(), addr[0], addr[1], t1 - t0, flush=True)
    time.sleep(1)
l = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
l.bind(("127.0.0.1", 0))
t0 = time.monotonic_ns()
l.sendto(b"self", l.getsockname())
data, addr = l.recvfrom(100)
print("loopback", data.decode(), addr[0], time.monotonic_ns() - t0, flush=True)
s.setblocking(False)
try:
    s.recvfrom(100)
except BlockingIOError:
    print("nonblocking EAGAIN", flush=True)
s.settimeout(0.25)
t0 = time.monotonic_ns()
try:
    s.recvfrom(100)
except socket.timeout:
    print("timeout after", time.monotonic_ns() - t0, flush=True)
for i in range(2):
    s.sendto(f"hello nc {i} at {time.time()}\n".encode(), ("10.0.0.3", 7001))
print("end", time.time())
"#;

fn udp_spec(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("ping.py"), PING_PY).unwrap();
    let ping = dir.join("ping.py").display().to_string();
    let running = "expected_exit = \"running\"\n";
    SpecBuilder::alice_bob(5, "10 s", "1 Gbit")
        .direct("carol", "1 Gbit", "")
        .process("alice", "/usr/bin/python3", &[&ping], "2 s", "")
        .process("bob", "socat", &["UDP4-LISTEN:7000", "PIPE"], "1 s", running)
        .process("carol", "nc", &["-u", "-l", "-d", "7001"], "1 s", running)
        .write(dir, "udp.toml")
}

fn have(tool: &str) -> bool {
    ["/usr/bin", "/bin"].iter().any(|d| Path::new(d).join(tool).is_file())
}

#[test]
fn python_socat_and_nc_exchange_udp_with_the_models_latency_on_any_shard_count() {
    if !have("socat") || !have("nc") || !Path::new("/usr/bin/python3").is_file() {
        panic!(
            "this test needs Debian's socat, netcat-openbsd and python3 (apt-get install socat netcat-openbsd python3)"
        );
    }
    let dir = scratch("direct-udp");
    let spec = udp_spec(&dir);
    let unpinned = dir.join("unpinned.toml");
    std::fs::write(&unpinned, read(spec.clone()).replacen("seed = 5", "seed = 5\npin_cpus = false", 1)).unwrap();
    let mut results = Vec::new();
    for (name, extra, spec) in [
        ("one", &["--shards", "1"][..], &spec),
        ("again", &["--shards", "1"][..], &spec),
        ("two", &["--shards", "2"][..], &spec),
        ("procs", &["--shards", "2", "--backend", "processes"][..], &spec),
        ("unpinned", &["--shards", "2"][..], &unpinned),
    ] {
        let out = dir.join(name);
        let mut args = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
        args.extend_from_slice(extra);
        run_ok(&args);
        let alice = read(out.join("hosts/alice/python3.0.stdout"));
        let servers = read(out.join("hosts/bob/socat.0.stdout")) + &read(out.join("hosts/carol/nc.0.stdout"));
        results.push((alice, servers, summary(&out)["digest"].as_str().unwrap().to_string()));
    }
    for r in &results[1..] {
        assert_eq!(*r, results[0], "outputs and digest are the same on every run, shard count, backend and pinning");
    }
    let alice = &results[0].0;
    let nc = &results[0].1;
    // alice starts at 2 s of 2000-01-01 (the default start date); its host name is its own.
    assert!(alice.starts_with("start 946684802.0 alice "), "{alice}");
    // One way: the path's 25 ms, plus serialising the 34-byte packet (20 IPv4 + 8 UDP + 6)
    // on the sender's upload and the receiver's download link at 1 Gbit/s (272 ns each).
    let one_way: u64 = 25_000_000 + 2 * (34 * 8);
    for i in 0..3 {
        let want = format!("rtt {i} ping {i} 10.0.0.2 7000 {}", 2 * one_way);
        assert!(alice.lines().any(|l| l == want), "missing {want:?} in\n{alice}");
    }
    assert!(alice.contains("loopback self 127.0.0.1 1000\n"), "{alice}");
    assert!(alice.contains("nonblocking EAGAIN\n"), "{alice}");
    assert!(alice.contains("timeout after 250000000\n"), "{alice}");
    // Three round trips and three 1-s sleeps, then the 0.25-s timeout.
    let end_ns = 2_000_000_000 + 3 * (2 * one_way + 1_000_000_000) + 1_000 + 250_000_000;
    // nc printed what python sent it, stamped at the same emulated instant as python's "end".
    let end_text = alice.lines().last().unwrap().strip_prefix("end ").unwrap();
    assert_eq!(*nc, format!("hello nc 0 at {end_text}\nhello nc 1 at {end_text}\n"));
    let end = alice.lines().last().unwrap().strip_prefix("end ").unwrap().parse::<f64>().unwrap();
    assert_eq!((end * 1e6).round() as u64, 946_684_800_000_000 + end_ns / 1000, "{alice}");
}

const SCRIPT: &str = r#"
echo "sh start $(date -u +%Y-%m-%dT%H:%M:%S.%N)"
/usr/bin/python3 -c 'import time; print("child python", time.time())'
sleep 5
echo "after sleep $(date -u +%s)"
sh -c 'exit 7'
echo "status $?"
(sleep 1; echo "background done at $(date -u +%s)") &
wait
cat /dev/urandom | head -c 8 | od -An -tx1
echo done
"#;

#[test]
fn a_shell_script_runs_other_programs_waits_for_them_and_is_repeatable() {
    let dir = scratch("direct-sh");
    std::fs::write(dir.join("script.sh"), SCRIPT).unwrap();
    let spec = write_spec(
        &dir,
        "sh.toml",
        &format!(
            r#"
[run]
duration = "1 min"

[[hosts]]
name = "shell"
kind = "direct"
count = 1

[network]
topology = "single-switch"

[[processes]]
host = "shell"
path = "/bin/sh"
args = ["{}"]
start = "1 s"
"#,
            dir.join("script.sh").display()
        ),
    );
    let mut runs = Vec::new();
    for i in 0..2 {
        let out = dir.join(format!("out{i}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        runs.push((read(out.join("hosts/shell/sh.0.stdout")), summary(&out)["digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(runs[0], runs[1]);
    let lines: Vec<&str> = runs[0].0.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "sh start 2000-01-01T00:00:01.000000000",
            "child python 946684801.0",
            "after sleep 946684806",
            "status 7",
            "background done at 946684807",
            lines[5],
        ],
        "{}",
        runs[0].0
    );
    assert_eq!(lines[5].split_whitespace().count(), 8, "eight random bytes: {}", lines[5]);
    assert_eq!(lines[6], "done");
}

#[test]
fn syscall_stats_list_what_each_binary_called_and_processes_are_tabled() {
    use arrow_array::{Array, StringArray, UInt64Array};
    use thermocline_models::metrics::read_ipc_file;
    let dir = scratch("direct-stats");
    let exe = compile(&dir, "clock", TIME_PROGRAM);
    let spec = write_spec(&dir, "time.toml", &time_spec(&exe));
    let plain = dir.join("plain");
    run_ok(&["run", spec.to_str().unwrap(), "--out", plain.to_str().unwrap(), "-q"]);
    let out = dir.join("stats");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--syscall-stats"]);
    assert_eq!(summary(&out)["digest"], summary(&plain)["digest"], "counting syscalls changes no result");
    let (_, batches) = read_ipc_file(&out.join("direct_syscalls.arrow")).unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let binary = col("binary");
        let binary = binary.as_any().downcast_ref::<StringArray>().unwrap();
        let syscall = col("syscall");
        let syscall = syscall.as_any().downcast_ref::<StringArray>().unwrap();
        let calls = col("calls");
        let calls = calls.as_any().downcast_ref::<UInt64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push((binary.value(i).to_string(), syscall.value(i).to_string(), calls.value(i)));
        }
    }
    let count = |bin: &str, sys: &str| rows.iter().find(|r| r.0 == bin && r.1 == sys).map_or(0, |r| r.2);
    assert_eq!(
        count("clock", "clock_nanosleep"),
        3,
        "sleep, nanosleep (glibc: clock_nanosleep) and the absolute one: {rows:?}"
    );
    assert_eq!(count("clock", "getrandom"), 2, "one by the program, one by glibc's malloc: {rows:?}");
    assert!(count("clock", "mmap") > 0 && count("clock", "exit_group") == 1, "{rows:?}");
    let (_, batches) = read_ipc_file(&out.join("direct_wakeups.arrow")).unwrap();
    let mut wakeups = Vec::new();
    for b in &batches {
        let text = |n: &str| b.column_by_name(n).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let (binary, syscall, how, reason) = (text("binary"), text("syscall"), text("how"), text("reason"));
        let calls = b.column_by_name("calls").unwrap().as_any().downcast_ref::<UInt64Array>().unwrap().clone();
        for i in 0..b.num_rows() {
            let row = [binary.value(i), syscall.value(i), how.value(i), reason.value(i)].map(String::from);
            wakeups.push((row, calls.value(i)));
        }
    }
    let row = ["clock", "clock_nanosleep", "after blocking", "timeout"].map(String::from);
    assert_eq!(
        wakeups.iter().find(|(r, _)| *r == row).map(|w| w.1),
        Some(3),
        "the three sleeps blocked and their timeouts woke them: {wakeups:?}"
    );
    let (_, procs) = read_ipc_file(&out.join("direct_processes.arrow")).unwrap();
    let status = procs[0].column_by_name("status").unwrap().clone();
    let status = status.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(status.value(0), "exit 0");
    let rss = procs[0].column_by_name("max_rss_bytes").unwrap().clone();
    let rss = rss.as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().value(0);
    assert!((100 << 10..1 << 30).contains(&rss), "peak RSS of a small C program: {rss} bytes");
}

#[test]
fn unsupported_calls_get_a_defined_error_and_one_log_line() {
    let dir = scratch("direct-unsupported");
    std::fs::write(
        dir.join("limits.py"),
        r#"
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall(449, 0, 0, 0, 0, 0) == -1:
    print("futex_waitv refused:", errno.errorcode[ctypes.get_errno()])
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW)
except OSError as e:
    print("raw refused:", errno.errorcode[e.errno])
try:
    socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET)
except OSError as e:
    print("alg refused:", errno.errorcode[e.errno])
"#,
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        "limits.toml",
        &format!(
            "[run]\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"lim\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"lim\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\n",
            dir.join("limits.py").display()
        ),
    );
    let out = dir.join("out");
    let res = run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let stdout = read(out.join("hosts/lim/python3.0.stdout"));
    assert_eq!(
        stdout, "futex_waitv refused: ENOSYS\nraw refused: ESOCKTNOSUPPORT\nalg refused: EAFNOSUPPORT\n",
        "{stdout}"
    );
    let log = String::from_utf8_lossy(&res.stderr);
    for want in [
        "thermocline: host lim process python3.11 (pid ",
        "unsupported syscall futex_waitv(449) (only futex(2) is emulated) → ENOSYS",
        "unsupported syscall socket(41) (AF_INET type 3 protocol 0; only UDP and TCP are emulated) → ESOCKTNOSUPPORT",
        "unsupported syscall socket(41) (address family 38) → EAFNOSUPPORT",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
}

#[test]
fn a_static_binary_without_the_shim_still_reads_emulated_time() {
    let dir = scratch("direct-static");
    let exe = compile_with(&dir, "clock", TIME_PROGRAM, &["-static"]);
    let spec = write_spec(&dir, "time.toml", &time_spec(&exe));
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let stdout = read(out.join("hosts/clock/clock.0.stdout"));
    let lines: Vec<&str> = stdout.lines().collect();
    // Its vDSO time functions were turned into syscalls, which the supervisor answers.
    // (rdtsc is not trapped without the shim; see docs/direct.md.)
    assert_eq!(lines[0], line("start", 1, 0), "{stdout}");
    assert_eq!(lines[4], line("after-sleep", 3601, 0));
    assert_eq!(lines[5], line("after-nanosleep", 3601, 500_000_000));
    assert_eq!(lines[6], line("after-absolute", 3611, 500_000_000));
    assert_eq!(lines[8], CPU_LINE);
    assert_eq!(lines[9], SYSINFO_LINE);
}

const UDP_C: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>

static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    int a = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {0}, sb = {0}, got = {0};
    sa.sin_family = sb.sin_family = AF_INET;
    sa.sin_addr.s_addr = sb.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sb.sin_port = htons(5555);
    if (bind(a, (struct sockaddr *)&sa, sizeof sa) || bind(b, (struct sockaddr *)&sb, sizeof sb)) return 10;
    printf("rebind %s\n", bind(socket(AF_INET, SOCK_DGRAM, 0), (struct sockaddr *)&sb, sizeof sb) ? strerror(errno) : "ok");
    socklen_t len = sizeof got;
    getsockname(a, (struct sockaddr *)&got, &len);
    printf("a bound to %s:%d (ephemeral %s)\n", inet_ntoa(got.sin_addr), ntohs(got.sin_port), ntohs(got.sin_port) >= 49152 ? "yes" : "no");
    if (connect(a, (struct sockaddr *)&sb, sizeof sb)) return 11;
    len = sizeof got;
    getpeername(a, (struct sockaddr *)&got, &len);
    printf("a connected to port %d\n", ntohs(got.sin_port));
    int type = 0; len = sizeof type;
    getsockopt(a, SOL_SOCKET, SO_TYPE, &type, &len);
    printf("SO_TYPE dgram %d\n", type == SOCK_DGRAM);

    /* select with a timeout on an empty socket: times out after exactly 0.3 s */
    fd_set r; FD_ZERO(&r); FD_SET(b, &r);
    struct timeval tv = {0, 300000};
    long long t0 = now_ns();
    int n = select(b + 1, &r, 0, 0, &tv);
    printf("select empty -> %d after %lld ns\n", n, now_ns() - t0);

    /* sendmsg with two iovecs on the connected socket; recvmsg with MSG_PEEK then for real */
    struct iovec iov[2] = {{"hello ", 6}, {"world", 5}};
    struct msghdr m = {0}; m.msg_iov = iov; m.msg_iovlen = 2;
    printf("sendmsg %zd\n", sendmsg(a, &m, 0));
    FD_ZERO(&r); FD_SET(b, &r); tv.tv_sec = 5; tv.tv_usec = 0;
    t0 = now_ns();
    n = select(b + 1, &r, 0, 0, &tv);
    printf("select ready -> %d isset %d after %lld ns\n", n, FD_ISSET(b, &r) != 0, now_ns() - t0);
    int avail = 0; ioctl(b, FIONREAD, &avail);
    printf("FIONREAD %d\n", avail);
    char buf[64]; struct sockaddr_in from; struct iovec rio = {buf, sizeof buf};
    struct msghdr rm = {0}; rm.msg_name = &from; rm.msg_namelen = sizeof from; rm.msg_iov = &rio; rm.msg_iovlen = 1;
    ssize_t k = recvmsg(b, &rm, MSG_PEEK);
    printf("peek %zd '%.*s'\n", k, (int)k, buf);
    char small[5];
    k = recv(b, small, sizeof small, MSG_TRUNC);
    printf("trunc %zd '%.5s'\n", k, small);

    /* non-blocking via fcntl; poll reports POLLIN after a sendto */
    fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
    k = recv(b, buf, sizeof buf, 0);
    printf("nonblocking recv %zd %s\n", k, errno == EAGAIN ? "EAGAIN" : "?");
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(c, "x", 1, 0, (struct sockaddr *)&sb, sizeof sb);
    struct pollfd p = {b, POLLIN, 0};
    t0 = now_ns();
    n = poll(&p, 1, 1000);
    printf("poll -> %d revents %d after %lld ns\n", n, p.revents, now_ns() - t0);
    len = sizeof from;
    k = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    printf("recvfrom %zd from 127.0.0.1? %d\n", k, from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    /* a dup'd descriptor is the same socket */
    int d = dup(b);
    sendto(c, "yz", 2, 0, (struct sockaddr *)&sb, sizeof sb);
    usleep(10);
    printf("recv on dup %zd\n", recv(d, buf, sizeof buf, 0));
    /* three datagrams in one sendmmsg; one recvmmsg takes them all */
    struct mmsghdr out[3], in[8];
    struct iovec oio[3] = {{"one", 3}, {"three", 5}, {"seven!!", 7}}, iio[8];
    char ibuf[8][16];
    memset(out, 0, sizeof out); memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++) { out[i].msg_hdr.msg_iov = &oio[i]; out[i].msg_hdr.msg_iovlen = 1;
        out[i].msg_hdr.msg_name = &sb; out[i].msg_hdr.msg_namelen = sizeof sb; }
    for (int i = 0; i < 8; i++) { iio[i].iov_base = ibuf[i]; iio[i].iov_len = 16; in[i].msg_hdr.msg_iov = &iio[i]; in[i].msg_hdr.msg_iovlen = 1; }
    c = socket(AF_INET, SOCK_DGRAM, 0);
    printf("sendmmsg %d\n", sendmmsg(c, out, 3, 0));
    fcntl(b, F_SETFL, fcntl(b, F_GETFL) & ~O_NONBLOCK);
    n = recvmmsg(b, in, 8, 0, 0);
    printf("recvmmsg %d:", n);
    for (int i = 0; i < n; i++) printf(" %.*s/%u", (int)in[i].msg_len, ibuf[i], in[i].msg_len);
    printf("\n");
    close(d); close(c); close(a); close(b);
    return 0;
}
"#;

#[test]
fn udp_socket_calls_behave_like_linux_on_loopback() {
    let dir = scratch("direct-udp-c");
    let exe = compile(&dir, "udp", UDP_C);
    let spec = time_spec(&exe).replace("name = \"clock\"", "name = \"u\"").replace("host = \"clock\"", "host = \"u\"");
    let spec = write_spec(&dir, "udp.toml", &spec);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let stdout = read(out.join("hosts/u/udp.0.stdout"));
    assert_eq!(
        stdout,
        "rebind Address already in use\n\
         a bound to 127.0.0.1:49152 (ephemeral yes)\n\
         a connected to port 5555\n\
         SO_TYPE dgram 1\n\
         select empty -> 0 after 300000000 ns\n\
         sendmsg 11\n\
         select ready -> 1 isset 1 after 1000 ns\n\
         FIONREAD 11\n\
         peek 11 'hello world'\n\
         trunc 11 'hello'\n\
         nonblocking recv -1 EAGAIN\n\
         poll -> 1 revents 1 after 1000 ns\n\
         recvfrom 1 from 127.0.0.1? 1\n\
         recv on dup 2\n\
         sendmmsg 3\n\
         recvmmsg 3: one/3 three/5 seven!!/7\n",
        "{stdout}"
    );
}

#[test]
fn python_forks_and_its_child_answers_over_a_socketpair_in_simulated_time() {
    let dir = scratch("direct-fork");
    std::fs::write(
        dir.join("fork.py"),
        r#"
import os, socket, time
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close()
    time.sleep(2)
    b.send(b"from child at %f" % time.time())
    os._exit(3)
b.close()
print(a.recv(100).decode(), "received at", time.time(), flush=True)
print("child status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#,
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        "fork.toml",
        &format!(
            "[run]\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"f\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"f\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\nstart = \"1 s\"\n",
            dir.join("fork.py").display()
        ),
    );
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(
        read(out.join("hosts/f/python3.0.stdout")),
        "from child at 946684803.000000 received at 946684803.0\nchild status 3\n"
    );
}

#[test]
fn python_selectors_and_asyncio_run_on_emulated_epoll() {
    let dir = scratch("direct-epoll");
    std::fs::write(
        dir.join("ep.py"),
        r#"
import asyncio, selectors, socket, time
sel = selectors.DefaultSelector()
print(type(sel).__name__)
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(("127.0.0.1", 7100))
a.setblocking(False)
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sel.register(a, selectors.EVENT_READ, "a")
t0 = time.monotonic()
print("empty", sel.select(0.5), time.monotonic() - t0)
b.sendto(b"hi", ("127.0.0.1", 7100))
print("ready", [(k.data, m) for k, m in sel.select(1)], a.recv(10))
sel.unregister(a)
a.close()

class P(asyncio.DatagramProtocol):
    def __init__(self, done):
        self.done = done
    def datagram_received(self, data, addr):
        print("asyncio got", data, "at", time.time())
        self.done.set_result(True)

async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    await loop.create_datagram_endpoint(lambda: P(done), local_addr=("127.0.0.1", 7200))
    await asyncio.sleep(1.5)
    b.sendto(b"async", ("127.0.0.1", 7200))
    await done

asyncio.run(main())
"#,
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        "ep.toml",
        &format!(
            "[run]\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"e\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"e\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\n",
            dir.join("ep.py").display()
        ),
    );
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(
        read(out.join("hosts/e/python3.0.stdout")),
        "EpollSelector\nempty [] 0.5\nready [('a', 1)] b'hi'\nasyncio got b'async' at 946684802.000002\n"
    );
}

const SIGNALS_C: &str = r#"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static volatile int got1, got2;
static void on1(int s) { got1++; }
static void on2(int s) { got2++; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec - 3600 + t.tv_nsec / 1e9; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on1;                 /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, 0);
    sa.sa_handler = on2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, 0);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); a.sin_port = htons(6000);
    bind(s, (struct sockaddr *)&a, sizeof a);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        sleep(2); kill(parent, SIGUSR1);
        sleep(1); kill(parent, SIGUSR2);
        sleep(1);
        int c = socket(AF_INET, SOCK_DGRAM, 0);
        sendto(c, "late", 4, 0, (struct sockaddr *)&a, sizeof a);
        _exit(0);
    }
    struct timespec req = {10, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    printf("nanosleep %d %s at %.3f rem %ld.%03ld handler %d\n", r, r ? strerror(errno) : "-", now(), (long)rem.tv_sec, rem.tv_nsec / 1000000, got1);
    char buf[16];
    ssize_t k = recv(s, buf, sizeof buf, 0);
    printf("recv %zd '%.*s' at %.3f (restarted after SIGUSR2: handler %d)\n", k, (int)k, buf, now(), got2);
    int st;
    waitpid(child, &st, 0);
    printf("child exit %d\n", WEXITSTATUS(st));
    return 0;
}
"#;

#[test]
fn signals_between_tasks_interrupt_emulated_sleeps_and_restart_receives() {
    let dir = scratch("direct-signals");
    let exe = compile(&dir, "sig", SIGNALS_C);
    let spec = time_spec(&exe).replace("name = \"clock\"", "name = \"s\"").replace("host = \"clock\"", "host = \"s\"");
    let spec = write_spec(&dir, "sig.toml", &spec);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(
        read(out.join("hosts/s/sig.0.stdout")),
        "nanosleep -1 Interrupted system call at 3.000 rem 8.000 handler 1\n\
         recv 4 'late' at 5.000 (restarted after SIGUSR2: handler 1)\n\
         child exit 0\n"
    );
}

const ALARM_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

static volatile int ticks;
static void on_alarm(int s) { ticks++; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec - 3600 + t.tv_nsec / 1e9; }

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(3);
    pause();
    printf("alarm fired at %.3f ticks %d\n", now(), ticks);
    struct itimerval it = {{0, 500000}, {0, 500000}};
    setitimer(ITIMER_REAL, &it, 0);
    while (ticks < 4) pause();
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    printf("interval timer: 3 more ticks by %.3f, next in %ld us\n", now(), (long)cur.it_value.tv_usec);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, 0);
    alarm(10);
    sleep(1);
    printf("alarm(0) returned %u\n", alarm(0));
    return 0;
}
"#;

#[test]
fn alarm_and_interval_timers_fire_in_simulated_time() {
    let dir = scratch("direct-alarm");
    let exe = compile(&dir, "alarm", ALARM_C);
    let spec = time_spec(&exe).replace("name = \"clock\"", "name = \"t\"").replace("host = \"clock\"", "host = \"t\"");
    let spec = write_spec(&dir, "alarm.toml", &spec);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(
        read(out.join("hosts/t/alarm.0.stdout")),
        "alarm fired at 4.000 ticks 1\n\
         interval timer: 3 more ticks by 5.500, next in 500000 us\n\
         alarm(0) returned 9\n"
    );
    // coreutils' timeout (timer_create is refused, so it falls back to alarm) ends a long sleep.
    let spec = write_spec(
        &dir,
        "timeout.toml",
        "[run]\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
         [[hosts]]\nname = \"t\"\nkind = \"direct\"\ncount = 1\n\
         [[processes]]\nhost = \"t\"\npath = \"/bin/sh\"\n\
         args = [\"-c\", \"timeout 2 sleep 30; echo status $? at $(date -u +%s)\"]\n",
    );
    let out = dir.join("timeout");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(read(out.join("hosts/t/sh.0.stdout")), "status 124 at 946684802\n");
}

#[test]
fn at_the_end_running_programs_get_sigterm_and_their_handlers_run() {
    let dir = scratch("direct-term");
    std::fs::write(
        dir.join("server.py"),
        r#"
import signal, socket, sys, time
def bye(sig, frame):
    print("terminated by", signal.Signals(sig).name, "at", time.time(), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
print("serving", flush=True)
s.recvfrom(100)
"#,
    )
    .unwrap();
    let spec = write_spec(
        &dir,
        "term.toml",
        &format!(
            "[run]\nduration = \"30 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"srv\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"srv\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\nexpected_exit = \"running\"\n\
             [[processes]]\nhost = \"srv\"\npath = \"/bin/sleep\"\nargs = [\"3600\"]\nexpected_exit = \"running\"\n",
            dir.join("server.py").display()
        ),
    );
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(read(out.join("hosts/srv/python3.0.stdout")), "serving\nterminated by SIGTERM at 946684830.0\n");
}

const RESOLVE_PY: &str = r#"
import socket
for name in ["bob", "peer0", "peer2", socket.gethostname(), "localhost"]:
    print(name, socket.gethostbyname(name), flush=True)
info = socket.getaddrinfo("peer1", 7000, socket.AF_INET, socket.SOCK_DGRAM)
print("getaddrinfo peer1", info[0][4][0], info[0][4][1], flush=True)
try:
    socket.gethostbyname("nowhere")
except socket.gaierror:
    print("nowhere unresolved", flush=True)
"#;

#[test]
fn every_host_resolves_every_simulated_host_by_name() {
    let dir = scratch("direct-names");
    std::fs::write(dir.join("resolve.py"), RESOLVE_PY).unwrap();
    let spec = write_spec(
        &dir,
        "names.toml",
        &format!(
            r#"
[run]
duration = "10 s"

[network]
topology = "single-switch"

[[hosts]]
name = "alice"
kind = "direct"
count = 1

[[hosts]]
name = "bob"
kind = "direct"
count = 1

[[hosts]]
name = "peer"
kind = "direct"
count = 3

[[processes]]
host = "alice"
path = "/usr/bin/python3"
args = ["{}"]

[[processes]]
host = "bob"
path = "/usr/bin/getent"
args = ["hosts", "alice", "peer1"]

[[processes]]
host = "peer"
path = "/usr/bin/python3"
args = ["-c", "import socket, sys; print(*sys.argv[1:], socket.gethostbyname(sys.argv[1]))", "{{host}}", "{{index}}/{{count}}", "{{ip}}", "%{{x}}"]
"#,
            dir.join("resolve.py").display()
        ),
    );
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let again = dir.join("again");
    run_ok(&["run", spec.to_str().unwrap(), "--out", again.to_str().unwrap(), "-q", "--shards", "2"]);
    assert_eq!(summary(&again)["digest"], summary(&out)["digest"], "the same digest again, on 2 shards");
    assert_eq!(
        read(out.join("hosts/alice/python3.0.stdout")),
        "bob 10.0.0.2\npeer0 10.0.0.3\npeer2 10.0.0.5\nalice 10.0.0.1\nlocalhost 127.0.0.1\n\
         getaddrinfo peer1 10.0.0.4 7000\nnowhere unresolved\n"
    );
    // getent goes through glibc's NSS "files" source; `getent hosts` asks for IPv6 first, and
    // every host has an AAAA line too (docs/direct.md, *Names*).
    let got = read(out.join("hosts/bob/getent.0.stdout"));
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["fd00:7468::a00:1", "alice", "fd00:7468::a00:4", "peer1"],
        "{got}"
    );
    // One spec line, a different command line on each host of the group.
    for p in 0..3 {
        let got = read(out.join(format!("hosts/peer{p}/python3.0.stdout")));
        let ip = format!("10.0.0.{}", 3 + p);
        assert_eq!(got, format!("peer{p} {p}/3 {ip} %{{x}} {ip}\n"), "other braces pass through");
    }
}

const TIMERS_PROGRAM: &str = r#"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static struct timespec t0;
static long ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
}
static void nap(long msec) {
    struct timespec d = {msec / 1000, (msec % 1000) * 1000000};
    nanosleep(&d, 0);
}
static int efd;
static void *writer(void *arg) {
    (void)arg;
    nap(30);
    uint64_t one = 5;
    write(efd, &one, 8);
    return 0;
}

int main(void) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t n;
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {{0, 50000000}, {0, 100000000}};
    timerfd_settime(t, 0, &its, 0);
    read(t, &n, 8);
    printf("periodic: %llu expiration at %ld ms\n", (unsigned long long)n, ms());
    nap(120);
    read(t, &n, 8);
    struct itimerspec cur;
    timerfd_gettime(t, &cur);
    printf("after a nap: %llu expirations at %ld ms, next in %ld ms, every %ld ms\n", (unsigned long long)n, ms(),
           cur.it_value.tv_nsec / 1000000, cur.it_interval.tv_nsec / 1000000);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(t, 0, &off, &cur);
    timerfd_gettime(t, &cur);
    printf("disarmed: %ld %ld\n", (long)cur.it_value.tv_nsec, (long)cur.it_interval.tv_nsec);

    int a = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    printf("nothing yet: %s\n", read(a, &n, 8) < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec at = {{0, 0}, {now.tv_sec + 1, now.tv_nsec}};
    timerfd_settime(a, TFD_TIMER_ABSTIME, &at, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN | EPOLLET, {.fd = a}}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev);
    long before = ms();
    int k = epoll_wait(ep, &out, 1, 5000);
    printf("absolute realtime timer: %d ready after %ld ms\n", k, ms() - before);
    printf("edge reported once: %d\n", epoll_wait(ep, &out, 1, 0));

    efd = eventfd(0, 0);
    pthread_t th;
    before = ms();
    pthread_create(&th, 0, writer, 0);
    read(efd, &n, 8);
    printf("eventfd: %llu after %ld ms\n", (unsigned long long)n, ms() - before);
    pthread_join(th, 0);
    int sem = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK);
    uint64_t three = 3;
    write(sem, &three, 8);
    int reads = 0;
    while (read(sem, &n, 8) == 8 && n == 1) reads++;
    printf("semaphore: %d reads, then %s\n", reads, errno == EAGAIN ? "EAGAIN" : "?");
    return 0;
}
"#;

#[test]
fn timerfd_and_eventfd_wake_their_readers_in_simulated_time() {
    let dir = scratch("direct-timers");
    let exe = compile_with(&dir, "timers", TIMERS_PROGRAM, &["-pthread"]);
    let spec = write_spec(
        &dir,
        "timers.toml",
        &format!(
            "[run]\nduration = \"10 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"t\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"t\"\npath = \"{}\"\n",
            exe.display()
        ),
    );
    let mut outputs = Vec::new();
    for i in 0..2 {
        let out = dir.join(format!("out{i}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        outputs.push((read(out.join("hosts/t/timers.0.stdout")), summary(&out)["digest"].to_string()));
    }
    assert_eq!(outputs[0], outputs[1], "repeatable");
    assert_eq!(
        outputs[0].0,
        "periodic: 1 expiration at 100 ms\n\
         after a nap: 2 expirations at 220 ms, next in 30 ms, every 50 ms\n\
         disarmed: 0 0\n\
         nothing yet: EAGAIN\n\
         absolute realtime timer: 1 ready after 1000 ms\n\
         edge reported once: 0\n\
         eventfd: 5 after 30 ms\n\
         semaphore: 3 reads, then EAGAIN\n"
    );
}

const IFADDRS_PROGRAM: &str = r#"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>

int main(void) {
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) { perror("getifaddrs"); return 1; }
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
        char a[16], m[16];
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof a);
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_netmask)->sin_addr, m, sizeof m);
        printf("%s %s/%s up=%d loopback=%d index=%u\n", i->ifa_name, a, m, !!(i->ifa_flags & IFF_UP),
               !!(i->ifa_flags & IFF_LOOPBACK), if_nametoindex(i->ifa_name));
    }
    freeifaddrs(list);
    return 0;
}
"#;

#[test]
fn programs_list_the_hosts_interfaces_through_netlink() {
    let dir = scratch("direct-netlink");
    let exe = compile(&dir, "ifaddrs", IFADDRS_PROGRAM);
    let spec = write_spec(
        &dir,
        "netlink.toml",
        &format!(
            "[run]\nduration = \"5 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"n\"\nkind = \"direct\"\ncount = 2\n\
             [[processes]]\nhost = \"n\"\npath = \"{}\"\n\
             [[processes]]\nhost = \"n\"\npath = \"/usr/bin/python3\"\n\
             args = [\"-c\", \"import socket; print(socket.if_nameindex())\"]\n",
            exe.display()
        ),
    );
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    let again = dir.join("again");
    run_ok(&["run", spec.to_str().unwrap(), "--out", again.to_str().unwrap(), "-q", "--shards", "2"]);
    assert_eq!(summary(&again)["digest"], summary(&out)["digest"], "the same digest again, on 2 shards");
    for (i, ip) in ["10.0.0.1", "10.0.0.2"].into_iter().enumerate() {
        assert_eq!(
            read(out.join(format!("hosts/n{i}/ifaddrs.0.stdout"))),
            format!("lo 127.0.0.1/255.0.0.0 up=1 loopback=1 index=1\neth0 {ip}/255.0.0.0 up=1 loopback=0 index=2\n")
        );
        assert_eq!(read(out.join(format!("hosts/n{i}/python3.1.stdout"))), "[(1, 'lo'), (2, 'eth0')]\n");
    }
}

const UNIX_SERVER_PY: &str = r#"
import os, socket, time
socks = []
for name in ["srv.sock", "\0thermocline-abstract"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    s.listen(1)
    socks.append(s)
print("listening at", time.monotonic() - 3600, flush=True)
for s in socks:
    c, _ = s.accept()
    data = c.recv(100)
    c.sendall(b"echo " + data)
    c.close()
    print("served", data.decode(), "at", time.monotonic() - 3600, flush=True)
"#;

const UNIX_CLIENT_PY: &str = r#"
import socket, time
for name in ["srv.sock", "\0thermocline-abstract"]:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(name)
    c.sendall(("hello " + name.strip("\0")).encode())
    print(c.recv(100).decode(), "at", time.monotonic() - 3600, flush=True)
    c.close()
    time.sleep(0.5)
"#;

#[test]
fn unix_domain_sockets_by_path_and_abstract_name_connect_two_programs() {
    let dir = scratch("direct-unix");
    std::fs::write(dir.join("server.py"), UNIX_SERVER_PY).unwrap();
    std::fs::write(dir.join("client.py"), UNIX_CLIENT_PY).unwrap();
    let spec = write_spec(
        &dir,
        "unix.toml",
        &format!(
            "[run]\nduration = \"10 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"u\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"u\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\n\
             [[processes]]\nhost = \"u\"\npath = \"/usr/bin/python3\"\nargs = [\"{}\"]\nstart = \"2 s\"\n",
            dir.join("server.py").display(),
            dir.join("client.py").display()
        ),
    );
    let mut runs = Vec::new();
    for i in 0..2 {
        let out = dir.join(format!("out{i}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        runs.push((
            read(out.join("hosts/u/python3.0.stdout")),
            read(out.join("hosts/u/python3.1.stdout")),
            summary(&out)["digest"].to_string(),
        ));
    }
    assert_eq!(runs[0], runs[1], "repeatable");
    assert_eq!(runs[0].0, "listening at 0.0\nserved hello srv.sock at 2.0\nserved hello thermocline-abstract at 2.5\n");
    assert_eq!(runs[0].1, "echo hello srv.sock at 2.0\necho hello thermocline-abstract at 2.5\n");
}

#[test]
fn bench_syscall_reports_shim_costs_and_the_machines_floors_as_json() {
    let out = run_ok(&["bench", "syscall", "--time-calls", "200000", "--calls", "2000", "--repeats", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ns = |row: &str, col: &str| v[row][col].as_f64().unwrap_or_else(|| panic!("{row}.{col} in {v}"));
    for row in ["time_read", "forwarded_syscall", "udp_send_recv_pair"] {
        for col in ["native_ns", "shim_ns", "shim_rdtsc_untrapped_ns"] {
            assert!(ns(row, col).is_finite(), "{row}.{col} in {v}");
        }
    }
    for row in ["context_switch_floor", "user_notification_floor", "in_process_sigsys"] {
        assert!(ns(row, "native_ns").is_finite(), "{row} in {v}");
    }
    // The figures themselves are wall time, and with this few calls a difference of two runs is
    // mostly start-up noise on a shared machine: only their presence is checked. The probe's
    // floors ran to completion (a failing probe fails the command).
}

#[test]
fn openssl_draws_repeatable_bytes_and_is_told_not_to_use_the_hardware_generators() {
    let openssl = need("/usr/bin/openssl", "openssl");
    let dir = scratch("direct-openssl");
    let spec = write_spec(
        &dir,
        "openssl.toml",
        &format!(
            "[run]\nduration = \"10 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"o\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"o\"\npath = \"{openssl}\"\nargs = [\"rand\", \"-hex\", \"16\"]\nstart = \"1 s\"\n\
             [[processes]]\nhost = \"o\"\npath = \"{openssl}\"\nargs = [\"info\", \"-cpusettings\"]\nstart = \"2 s\"\n"
        ),
    );
    let run = |name: &str, seed: &str| {
        let out = dir.join(name);
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--seed", seed]);
        (read(out.join("hosts/o/openssl.0.stdout")), read(out.join("hosts/o/openssl.1.stdout")))
    };
    let (one, again, other) = (run("one", "1"), run("again", "1"), run("other", "2"));
    assert_eq!(one, again, "the same bytes on every run");
    assert_eq!(one.0.trim().len(), 32, "{}", one.0);
    assert_ne!(one.0, other.0, "another seed, other bytes");
    // `OPENSSL_ia32cap=0x<leaf 1 ECX:EDX>:0x<leaf 7 ECX:EBX> env:<what was asked>`, as OpenSSL
    // uses it: RDRAND (bit 62 of the first word) and RDSEED (bit 18 of the second) are off.
    let caps = one.1.trim().strip_prefix("OPENSSL_ia32cap=").unwrap_or_else(|| panic!("{}", one.1));
    let words: Vec<u64> = caps
        .split([':', ' '])
        .take(2)
        .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{caps}")))
        .collect();
    assert_eq!((words[0] >> 62 & 1, words[1] >> 18 & 1), (0, 0), "{caps}");
}

#[test]
fn a_dotted_host_name_resolves_like_any_other() {
    let dir = scratch("direct-dotted");
    let text = "[run]\nduration = \"2 s\"\n[network]\ntopology = \"single-switch\"\n\
                [[hosts]]\nname = \"lossless.tcpserver.echo\"\nkind = \"direct\"\ncount = 1\n\
                [[hosts]]\nname = \"client\"\nkind = \"direct\"\ncount = 1\n\
                [[processes]]\nhost = \"client\"\npath = \"/usr/bin/python3\"\n\
                args = [\"-c\", \"import socket; print(socket.gethostbyname('lossless.tcpserver.echo'))\"]\n";
    let spec = write_spec(&dir, "dotted.toml", text);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    // Groups go in name order: "client" is 10.0.0.1, the dotted host 10.0.0.2.
    assert_eq!(read(out.join("hosts/client/python3.0.stdout")), "10.0.0.2\n");
    assert!(out.join("hosts/lossless.tcpserver.echo").is_dir());
}
