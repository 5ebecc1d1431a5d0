//! Threads under the supervisor, end to end: a C pthread program (mutex, condition variables,
//! timed waits, joins, a signal to one thread, raw futex operations), Python's `threading`, a
//! tokio multi-thread runtime, a Go program (static, without the shim), and threads that spin
//! until preemption stops them. Every run is
//! repeated and must give the same bytes and the same digest.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `spec` twice, on one shard and on two; both runs must give the same stdout (file
/// `stem.0.stdout` of host `t`) and the same digest. Returns the stdout.
fn twice(dir: &Path, spec: &Path, stem: &str) -> String {
    let mut runs = Vec::new();
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let stdout = read(out.join(format!("hosts/t/{stem}.0.stdout")));
        runs.push((stdout, summary(&out)["digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(runs[0], runs[1], "repeated runs give the same stdout and digest");
    runs.swap_remove(0).0
}

/// Run `thermocline args…` with extra environment variables, within a deadline.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(exe())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thermocline");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("thermocline {args:?} did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect output")
}

const PTHREADS_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define N 4
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turns = PTHREAD_COND_INITIALIZER, never = PTHREAD_COND_INITIALIZER;
static int turn, counter;
static char logs[N + 4][512];

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec - 3600 + t.tv_nsec / 1e9; }
static void msleep(long ms) { struct timespec d = {ms / 1000, (ms % 1000) * 1000000L}; nanosleep(&d, 0); }
#define LOG(i, ...) snprintf(logs[i] + strlen(logs[i]), sizeof logs[i] - strlen(logs[i]), __VA_ARGS__)

static void *worker(void *arg) {
    long id = (long)arg;
    for (int round = 0; round < 3; round++) {
        pthread_mutex_lock(&mu);
        while (turn % N != id) pthread_cond_wait(&turns, &mu);
        counter++;
        LOG(id, "w%ld round %d at %.3f\n", id, round, now());
        turn++;
        pthread_cond_broadcast(&turns);
        pthread_mutex_unlock(&mu);
        msleep(10 * (id + 1));
    }
    pthread_mutex_lock(&mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    double t0 = now();
    int r = pthread_cond_timedwait(&never, &mu, &until);
    LOG(id, "w%ld timedwait %s after %.3f at %.3f\n", id, r == ETIMEDOUT ? "ETIMEDOUT" : strerror(r), now() - t0, now());
    pthread_mutex_unlock(&mu);
    return (void *)(id * 10);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { got_usr1 = s; }

static void *sleeper(void *arg) {
    struct timespec d = {10, 0}, rem = {0, 0};
    int r = nanosleep(&d, &rem);
    LOG(N, "sleeper nanosleep %d %s at %.3f rem %ld.%03ld signal %d\n", r, r ? strerror(errno) : "-", now(), (long)rem.tv_sec, rem.tv_nsec / 1000000, got_usr1);
    return 0;
}

static int fa, fb;
static long fx(int *uaddr, int op, int val, long val2, int *uaddr2, int val3) {
    long r = syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
    return r < 0 ? -errno : r;
}

static void *fwaiter(void *arg) {
    long id = (long)arg;
    long r = fx(&fa, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
    LOG(N + 1 + id, "futex waiter %ld woke with %ld at %.3f\n", id, r, now());
    return 0;
}

int main(void) {
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    printf("cpus online %ld affinity %d\n", sysconf(_SC_NPROCESSORS_ONLN), CPU_COUNT(&set));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    pthread_t th[N], sl, fw[3];
    printf("start %.3f\n", now());
    for (long i = 0; i < N; i++) pthread_create(&th[i], 0, worker, (void *)i);
    pthread_create(&sl, 0, sleeper, 0);
    void *ret;
    pthread_join(th[0], &ret);
    printf("joined worker 0 -> %ld at %.3f\n", (long)ret, now());
    msleep(200);
    pthread_kill(sl, SIGUSR1);
    for (int i = 1; i < N; i++) {
        pthread_join(th[i], &ret);
        printf("joined worker %d -> %ld at %.3f\n", i, (long)ret, now());
    }
    pthread_join(sl, 0);
    printf("joined sleeper at %.3f, counter %d\n", now(), counter);

    printf("futex wait on a changed word: %ld\n", fx(&fa, FUTEX_WAIT_PRIVATE, 1, 0, 0, 0));
    struct timespec to = {0, 30000000};
    double t0 = now();
    long r = fx(&fa, FUTEX_WAIT_PRIVATE, 0, (long)&to, 0, 0);
    printf("futex wait with timeout: %ld after %.3f\n", r, now() - t0);
    for (long i = 0; i < 3; i++) pthread_create(&fw[i], 0, fwaiter, (void *)i);
    msleep(10);
    printf("cmp_requeue wrong value: %ld\n", fx(&fa, FUTEX_CMP_REQUEUE_PRIVATE, 1, 1, &fb, 7));
    printf("cmp_requeue: %ld at %.3f\n", fx(&fa, FUTEX_CMP_REQUEUE_PRIVATE, 1, 1, &fb, 0), now());
    msleep(10);
    r = fx(&fb, FUTEX_WAKE_OP_PRIVATE, 1, 1, &fa, FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0));
    printf("wake_op: %ld at %.3f, word now %d\n", r, now(), fa);
    for (int i = 0; i < 3; i++) pthread_join(fw[i], 0);
    for (int i = 0; i < N + 4; i++) fputs(logs[i], stdout);
    printf("end %.3f\n", now());
    return 0;
}
"#;

#[test]
fn c_threads_contend_on_a_mutex_and_condition_variables_and_wait_in_simulated_time() {
    let dir = scratch("threads-c");
    let exe = compile_with(&dir, "pt", PTHREADS_C, &["-pthread"]);
    let stdout = twice(&dir, &program_spec(&dir, &exe, &[], ""), "pt");
    // Workers take turns in id order (round 0 at once), each sleeping 10 ms × (id + 1) between
    // turns; their 250-ms timed waits on a condition nobody signals time out exactly; joins
    // return when the kernel clears the thread id (CLONE_CHILD_CLEARTID); a signal to one thread
    // interrupts its 10-s sleep with the rest reported.
    assert_eq!(
        stdout,
        "cpus online 2 affinity 2\n\
         start 1.000\n\
         joined worker 0 -> 0 at 1.300\n\
         joined worker 1 -> 10 at 1.500\n\
         joined worker 2 -> 20 at 1.500\n\
         joined worker 3 -> 30 at 1.500\n\
         joined sleeper at 1.500, counter 12\n\
         futex wait on a changed word: -11\n\
         futex wait with timeout: -110 after 0.030\n\
         cmp_requeue wrong value: -11\n\
         cmp_requeue: 2 at 1.540\n\
         wake_op: 2 at 1.550, word now 5\n\
         w0 round 0 at 1.000\nw0 round 1 at 1.010\nw0 round 2 at 1.040\n\
         w0 timedwait ETIMEDOUT after 0.250 at 1.300\n\
         w1 round 0 at 1.000\nw1 round 1 at 1.020\nw1 round 2 at 1.040\n\
         w1 timedwait ETIMEDOUT after 0.250 at 1.310\n\
         w2 round 0 at 1.000\nw2 round 1 at 1.030\nw2 round 2 at 1.060\n\
         w2 timedwait ETIMEDOUT after 0.250 at 1.340\n\
         w3 round 0 at 1.000\nw3 round 1 at 1.040\nw3 round 2 at 1.080\n\
         w3 timedwait ETIMEDOUT after 0.250 at 1.370\n\
         sleeper nanosleep -1 Interrupted system call at 1.500 rem 9.500 signal 10\n\
         futex waiter 0 woke with 0 at 1.540\n\
         futex waiter 1 woke with 0 at 1.550\n\
         futex waiter 2 woke with 0 at 1.550\n\
         end 1.550\n"
    );
}

const THREADING_PY: &str = r#"import queue, threading, time, os
from concurrent.futures import ThreadPoolExecutor

t0 = time.monotonic()
def now():
    return round(time.monotonic() - t0, 6)

print("cpus", os.cpu_count(), len(os.sched_getaffinity(0)), flush=True)
lock = threading.Lock()
total = 0
def add(n):
    global total
    for _ in range(n):
        with lock:
            total += 1
ts = [threading.Thread(target=add, args=(1000,)) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("total", total, "at", now(), flush=True)

ev = threading.Event()
print("event wait", ev.wait(0.75), "at", now(), flush=True)
threading.Timer(0.5, ev.set).start()
print("event set", ev.wait(5), "at", now(), flush=True)

q = queue.Queue()
def producer(i):
    time.sleep(0.1 * i)
    q.put((i, now()))
ps = [threading.Thread(target=producer, args=(i,)) for i in range(3)]
for p in ps: p.start()
for _ in range(3):
    print("got", q.get(timeout=2), flush=True)
try:
    q.get(timeout=0.25)
except queue.Empty:
    print("empty at", now(), flush=True)

def job(i):
    time.sleep(0.01 * (5 - i))
    return i * i, threading.current_thread().name, now()
with ThreadPoolExecutor(max_workers=3) as ex:
    for r in ex.map(job, range(5)):
        print("job", r, flush=True)
print("threads left", threading.active_count(), "end", now())
"#;

#[test]
fn python_threading_locks_events_queues_and_a_thread_pool_run_in_simulated_time() {
    let dir = scratch("threads-py");
    std::fs::write(dir.join("th.py"), THREADING_PY).unwrap();
    let stdout = twice(
        &dir,
        &program_spec(&dir, Path::new("/usr/bin/python3"), &[dir.join("th.py").to_str().unwrap()], ""),
        "python3",
    );
    assert_eq!(
        stdout,
        "cpus 2 2\n\
         total 4000 at 0.0\n\
         event wait False at 0.75\n\
         event set True at 1.25\n\
         got (0, 1.25)\n\
         got (1, 1.35)\n\
         got (2, 1.45)\n\
         empty at 1.7\n\
         job (0, 'ThreadPoolExecutor-0_0', 1.75)\n\
         job (1, 'ThreadPoolExecutor-0_1', 1.74)\n\
         job (4, 'ThreadPoolExecutor-0_2', 1.73)\n\
         job (9, 'ThreadPoolExecutor-0_2', 1.75)\n\
         job (16, 'ThreadPoolExecutor-0_1', 1.75)\n\
         threads left 1 end 1.75\n"
    );
}

/// Build the tokio probe (workspace crate `thermocline-probes`) in this test's profile and
/// return its path, next to the `thermocline` binary.
fn tokio_probe() -> PathBuf {
    let bin_dir = Path::new(exe()).parent().expect("binary folder");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "thermocline-probes", "--bin", "tokio-probe"]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("run cargo");
    assert!(out.status.success(), "building the tokio probe failed:\n{}", String::from_utf8_lossy(&out.stderr));
    bin_dir.join("tokio-probe")
}

#[test]
fn a_tokio_multi_thread_runtime_sleeps_and_passes_messages_in_simulated_time() {
    let dir = scratch("threads-tokio");
    let probe = tokio_probe();
    let stdout = twice(&dir, &program_spec(&dir, &probe, &[], ""), "tokio-probe");
    // Task i sends every 7 × (i + 1) ms; the receiver gets each message at the instant it was
    // sent. Then a 40-ms ping-pong, a 100-ms timeout, a 50-ms sleep on the blocking pool and
    // three tasks released together by a Notify, finishing 0, 5 and 10 ms later.
    assert_eq!(
        stdout,
        "task 0 message 0 sent at 7 received at 7\n\
         task 0 message 1 sent at 14 received at 14\n\
         task 1 message 0 sent at 14 received at 14\n\
         task 0 message 2 sent at 21 received at 21\n\
         task 2 message 0 sent at 21 received at 21\n\
         task 1 message 1 sent at 28 received at 28\n\
         task 3 message 0 sent at 28 received at 28\n\
         task 1 message 2 sent at 42 received at 42\n\
         task 2 message 1 sent at 42 received at 42\n\
         task 3 message 1 sent at 56 received at 56\n\
         task 2 message 2 sent at 63 received at 63\n\
         task 3 message 2 sent at 84 received at 84\n\
         pong 42 at 124\n\
         timed out true at 224\n\
         blocking pool slept until 274 (awaited at 274)\n\
         notified tasks finished [(0, 284), (1, 289), (2, 294)] end 294\n"
    );
}

const SPIN_C: &str = r#"#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_spinlock_t spin;
static atomic_int flag;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec - 3600 + t.tv_nsec / 1e9; }
static void msleep(long ms) { struct timespec d = {ms / 1000, (ms % 1000) * 1000000L}; nanosleep(&d, 0); }

static void *locker(void *arg) {
    pthread_spin_lock(&spin);
    printf("spinlock taken at %.3f\n", now());
    pthread_spin_unlock(&spin);
    return 0;
}

static void *waiter(void *arg) {
    unsigned long spins = 0;
    while (!atomic_load(&flag)) spins++;
    printf("flag seen at %.3f\n", now());
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "masked")) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, 0);
        while (!atomic_load(&flag)) ;
        return 1;
    }
    pthread_t a, b;
    pthread_spin_init(&spin, 0);
    pthread_spin_lock(&spin);
    pthread_create(&a, 0, locker, 0);
    msleep(2);
    pthread_spin_unlock(&spin);
    pthread_join(a, 0);
    pthread_create(&b, 0, waiter, 0);
    msleep(30);
    atomic_store(&flag, 1);
    pthread_join(b, 0);
    printf("end %.3f\n", now());
    return 0;
}
"#;

#[test]
fn spinning_threads_are_preempted_and_a_spinner_without_a_budget_is_reported() {
    let dir = scratch("threads-spin");
    let exe = compile_with(&dir, "spin", SPIN_C, &["-pthread"]);
    // A pthread spinlock held by main while it sleeps 2 ms, then a thread spinning on a flag
    // main sets after 30 ms: each preemption lets the sleeper's time come.
    let stdout = twice(&dir, &program_spec(&dir, &exe, &[], "preempt = \"5 ms\"\n"), "spin");
    assert_eq!(stdout, "spinlock taken at 1.002\nflag seen at 1.032\nend 1.032\n");

    // Without a budget the spinner never stops: the watchdog names it and suggests the budget.
    let watchdog = [("THERMOCLINE_DIRECT_WATCHDOG_S", "2")];
    let out = dir.join("nobudget");
    let res = run_env(
        &["run", program_spec(&dir, &exe, &[], "").to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"],
        &watchdog,
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(err.contains("has not stopped for 2s") && err.contains("(spin), kernel state Some('R')"), "{err}");
    assert!(err.contains("a process `preempt` budget stops spinning threads"), "{err}");

    // A thread that blocks every signal cannot be preempted: the watchdog says so.
    let out = dir.join("masked");
    let masked = program_spec(&dir, &exe, &["masked"], "preempt = \"5 ms\"\n");
    let res = run_env(&["run", masked.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"], &watchdog);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(err.contains("a preemption signal was sent and not taken"), "{err}");
}

const GO_PROGRAM: &str = r#"package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

func main() {
	start := time.Now()
	fmt.Println("gomaxprocs", runtime.GOMAXPROCS(0))
	ch := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
			ch <- fmt.Sprintf("goroutine %d at %d ms", i, time.Since(start).Milliseconds())
		}(i)
	}
	go func() { wg.Wait(); close(ch) }()
	for m := range ch {
		fmt.Println(m)
	}
	var mu sync.Mutex
	total := 0
	var wg2 sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for k := 0; k < 1000; k++ {
				mu.Lock()
				total++
				mu.Unlock()
			}
		}()
	}
	wg2.Wait()
	t := time.NewTimer(250 * time.Millisecond)
	<-t.C
	fmt.Println("total", total, "timer at", time.Since(start).Milliseconds())
}
"#;

#[test]
fn a_static_go_program_runs_goroutines_channels_and_timers_in_simulated_time() {
    if Command::new("go").arg("version").output().is_err() {
        panic!("this test needs a Go toolchain (apt-get install golang-go)");
    }
    let dir = scratch("threads-go");
    std::fs::write(dir.join("main.go"), GO_PROGRAM).unwrap();
    let exe = dir.join("gprobe");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(dir.join("main.go"))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build");
    assert!(out.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stdout = twice(&dir, &program_spec(&dir, &exe, &[], ""), "gprobe");
    assert_eq!(
        stdout,
        "gomaxprocs 2\n\
         goroutine 0 at 10 ms\n\
         goroutine 1 at 20 ms\n\
         goroutine 2 at 30 ms\n\
         goroutine 3 at 40 ms\n\
         total 8000 timer at 290\n"
    );
}

#[test]
fn a_process_is_told_of_the_cpus_its_spec_gives() {
    let dir = scratch("threads-cpus");
    let script =
        "nproc; getconf _NPROCESSORS_ONLN; python3 -c 'import os; print(len(os.sched_getaffinity(0)), os.cpu_count())'";
    for (extra, want) in [("", "2\n2\n2 2\n"), ("cpus = 1\n", "1\n1\n1 1\n"), ("cpus = 12\n", "12\n12\n12 12\n")] {
        let spec = program_spec(&dir, Path::new("/bin/sh"), &["-c", script], extra);
        assert_eq!(twice(&dir, &spec, "sh"), want, "with {extra:?}");
    }
    let spec = program_spec(&dir, Path::new("/bin/sh"), &["-c", "true"], "cpus = 65\n");
    let out = run_with_deadline(&["run", spec.to_str().unwrap(), "-q"], Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cpus = 65: a process is told of 1 to 64 CPUs"), "{err}");
}
