//! `kill_managed_processes`, as the CLI's `SIGTERM` handler calls it, ends a running engine's
//! programs and their children, without PID namespaces (the case where nothing else would).
//! A test binary of its own: the teardown is process-wide.

use std::time::{Duration, Instant};
use thermocline_bus::{Engine, Outbox, ShardId, SimDuration, SimTime};
use thermocline_direct::{DirectEngine, DirectOptions, DirectSetup, ExpectedExit, ProcessSpec, StartDate};
use thermocline_models::directory::{HostGroupSpec, HostKind};
use thermocline_models::network::{NetworkModel, NetworkSpec, TopologyKind};
use thermocline_models::partition::Partition;

/// Processes whose environment holds `THERMOCLINE_TEST_MARK=<mark>`.
fn marked(mark: &str) -> Vec<i32> {
    let want = format!("THERMOCLINE_TEST_MARK={mark}");
    let Ok(all) = std::fs::read_dir("/proc") else { return Vec::new() };
    all.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()))
        })
        .collect()
}

/// Whether `pid` runs (exists and is not a zombie).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s[s.rfind(')')? + 1..].trim_start().chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

fn engine(out: &std::path::Path, p: &ProcessSpec) -> DirectEngine {
    let hosts = [HostGroupSpec {
        name: "h".into(),
        kind: HostKind::Direct,
        count: 1,
        location: None,
        locations: None,
        bandwidth: None,
        profile: None,
        load: None,
    }];
    let spec = NetworkSpec { topology: TopologyKind::SingleSwitch, ..Default::default() };
    let net = NetworkModel::build(&spec, None, &hosts).unwrap();
    let partition = Partition::compute(&net.directory, &net.routes, 1).unwrap();
    let options = DirectOptions {
        out_dir: out.to_path_buf(),
        start_date: StartDate::default(),
        syscall_stats: false,
        shim: thermocline_direct::locate_shim(&std::env::current_exe().unwrap()),
        pcap: false,
        cpu: None,
        verbose: false,
        rx_coalesce_ns: 0,
    };
    let end = SimTime::ZERO.saturating_add(SimDuration::from_secs(3600));
    let setup = DirectSetup {
        net,
        partition,
        processes: std::slice::from_ref(p),
        options,
        seed: 1,
        end,
        peer_book: None,
        rules: Default::default(),
        ops: &[],
        sources: &[],
        mirrors: &[],
    };
    DirectEngine::new(setup, ShardId(0)).unwrap()
}

#[test]
fn the_teardown_kills_a_running_engines_programs_and_their_children() {
    // SAFETY: this test binary's only test sets it before any engine exists.
    unsafe { std::env::set_var("THERMOCLINE_DIRECT_NAMESPACES", "0") };
    let out = std::env::temp_dir().join(format!("thermocline-direct-teardown-{}", std::process::id()));
    let mark = format!("teardown-{}", std::process::id());
    let p = ProcessSpec {
        args: vec!["-c".into(), "(while :; do :; done) & (sleep 1000) & wait".into()],
        env: [("THERMOCLINE_TEST_MARK".to_string(), mark.clone())].into(),
        expected_exit: ExpectedExit::Running,
        preempt: Some(SimDuration::from_millis(5)),
        ..ProcessSpec::new("h", "sh")
    };
    let dir = out.clone();
    // Engines are built on the thread that runs them (as the bus does): they are not `Send`.
    let runner = std::thread::spawn(move || {
        let mut e = engine(&dir, &p);
        let end = SimTime::ZERO.saturating_add(SimDuration::from_secs(3600));
        let mut outbox = Outbox::new(1);
        while e.next_event_time() < end && e.run_until(end, &mut outbox).is_ok() {}
    });
    let started = Instant::now();
    while marked(&mark).len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "the program's processes never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let recorded = marked(&mark);
    thermocline_direct::kill_managed_processes();
    let killed = Instant::now();
    while recorded.iter().any(|&p| running(p)) && killed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<i32> = recorded.iter().copied().filter(|&p| running(p)).collect();
    for &p in &survivors {
        // SAFETY: kill(2) of a process of this test's run.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    assert!(survivors.is_empty(), "{survivors:?} of {recorded:?} survived the teardown");
    runner.join().unwrap();
    let _ = std::fs::remove_dir_all(&out);
}
