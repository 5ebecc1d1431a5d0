//! The direct engine: one shard's direct hosts as a bus engine.
//!
//! Every simulated action is an event in one queue ordered by the bus's canonical key: a process
//! starting, a blocked syscall's timer firing, a packet arriving. Executing an event sets the
//! host's time page and then *settles* the host: its tasks run one at a time, each until it is
//! stopped in a notified syscall again, and the supervisor answers syscalls until every task is
//! blocked (sleeping, receiving, waiting) or gone. Simulated time never moves while a task runs.

use crate::config::{DirectOptions, ExitStatus, ExpectedExit, HostVars, ProcessSpec, expand};
use crate::cx::{Answer, BOOT_OFFSET_NS, Cx, Shared};
use crate::host::{BlockKind, FdEntry, Host, NewTask, Obj, ProcState, TaskState, TimePageMem};
use crate::launch::{LaunchSpec, launch};
use crate::peers::{PeerBook, expand_peers};
use crate::procfs::{
    TaskStatus, auxv_random, binary_name, fd_link, proc_children, proc_children_of, proc_ppid, proc_state, proc_tgid,
    shim_mapped, stopped_thread_dying, thread_pidfd,
};
use crate::sched::{Action, MARK_EVENT_KIND, PACKET_EVENT_KIND, Pending, Scheduler};
use crate::timers::TimerKey;

use crate::seccomp::{SockFilter, filter_program};
use crate::{DirectError, emulate, sysnames};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thermocline_bus::{Digest, Engine, EngineError, EngineOutput, Event, Outbox, ShardId, SimTime};
use thermocline_models::directory::{HostDirectory, HostKind};
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;
use thermocline_models::rng::StreamFamily;
use thermocline_net::FifoLink;
use thermocline_net::host::HostNet;

mod timeline;

/// `OPENSSL_ia32cap` for every managed process (unless its spec sets one): OpenSSL's CPU
/// capability vector with RDRAND (CPUID leaf 1 ECX bit 30, bit 62 of the first word) and RDSEED
/// (leaf 7 EBX bit 18, of the second) masked off, so OpenSSL (Node.js, curl, Python, nginx)
/// never draws from the hardware generators. A second line of defence where CPUID faulting,
/// which hides them from every program, is unavailable.
pub const OPENSSL_NO_HW_RANDOM: &str = "~0x4000000000000000:~0x40000";
/// Syscalls answered after the end-of-run `SIGTERM` (handlers run) before the rest are killed.
const TERMINATION_STEPS: u32 = 10_000;

/// Process `p` as host `host` runs it: its peer placeholders replaced from `book`.
fn with_peers(p: &ProcessSpec, host: u32, book: Option<&dyn PeerBook>) -> Result<ProcessSpec, String> {
    let one = |text: &String| match book {
        Some(book) => expand_peers(text, host, book),
        None => match crate::peers::peer_refs(text)?.first() {
            Some(r) => Err(format!("{} names peers, which this run cannot give", r.token)),
            None => Ok(text.clone()),
        },
    };
    let args = p.args.iter().map(one).collect::<Result<_, _>>()?;
    let env = p.env.iter().map(|(k, v)| Ok((k.clone(), one(v)?))).collect::<Result<_, String>>()?;
    Ok(ProcessSpec { args, env, ..p.clone() })
}

/// Everything a shard's direct engine is built from.
pub struct DirectSetup<'a> {
    /// The network model.
    pub net: NetworkModel,
    /// Who owns which host.
    pub partition: Partition,
    /// The processes of the spec.
    pub processes: &'a [ProcessSpec],
    /// Settings.
    pub options: DirectOptions,
    /// The run's seed.
    pub seed: u64,
    /// The end of the simulation.
    pub end: SimTime,
    /// What `{peers:…}` and `{multiaddrs:…}` placeholders name (none: they are errors).
    pub peer_book: Option<&'a dyn PeerBook>,
    /// The scenario's rules, applied to every packet at departure.
    pub rules: thermocline_net::Rules,
    /// The scenario's operations on direct hosts (see [`crate::ops`]).
    pub ops: &'a [crate::ops::HostOp],
    /// The traffic sources (see [`crate::sources`]).
    pub sources: &'a [crate::sources::SourcePlan],
    /// The port mirrors (see [`crate::packet`]).
    pub mirrors: &'a [crate::packet::MirrorPlan],
}

/// The engine of one shard's direct hosts.
pub struct DirectEngine {
    /// This engine pinned the thread that runs it (undone when it finishes).
    pinned: bool,
    me: ShardId,
    hosts: Vec<Host>,
    local: HashMap<u32, usize>,
    /// The event queue, timer tokens and packet routing.
    sched: Scheduler,
    /// What every host shares (settings, placeholders, `/etc/hosts`).
    shared: Shared,
    filter: Vec<SockFilter>,
    /// The syscalls the supervisor emulates or watches ([`notified_syscalls`]), sorted.
    emulated: Vec<u32>,
    end: SimTime,
    /// A running task that has not stopped for this long is reported.
    watchdog: Duration,
    /// Print every handled syscall (`THERMOCLINE_DIRECT_TRACE=1`), for debugging.
    trace: bool,
    /// Syscalls still to answer while terminating (none: no limit).
    step_budget: Option<u32>,
    /// This thread has `rdtsc` faulting on (see [`DirectEngine::match_tsc`]).
    tsc_faulting: bool,
    /// The scenario's operations on direct hosts.
    ops: Vec<crate::ops::HostOp>,
    /// The traffic sources' plans.
    sources: Vec<crate::sources::SourcePlan>,
}

/// The syscalls the supervisor is notified of (unless every syscall is, for `--syscall-stats`).
pub fn notified_syscalls() -> Vec<u32> {
    use libc::*;
    let mut v: Vec<i64> = vec![
        // time
        SYS_clock_gettime,
        SYS_gettimeofday,
        SYS_time,
        SYS_nanosleep,
        SYS_clock_nanosleep,
        SYS_getrusage,
        SYS_times,
        SYS_sysinfo,
        // file times (answered with simulated ones, see `stamps`)
        SYS_stat,
        SYS_fstat,
        SYS_lstat,
        SYS_newfstatat,
        SYS_statx,
        // randomness
        SYS_getrandom,
        SYS_open,
        SYS_openat,
        SYS_openat2,
        // descriptors that may be emulated
        SYS_read,
        SYS_readv,
        SYS_pread64,
        SYS_preadv,
        SYS_preadv2,
        SYS_write,
        SYS_writev,
        SYS_pwrite64,
        SYS_pwritev,
        SYS_pwritev2,
        SYS_close,
        SYS_close_range,
        // what may free disk space (see `disk`): the host's folder is measured again after one
        SYS_unlink,
        SYS_unlinkat,
        SYS_rename,
        SYS_renameat,
        SYS_renameat2,
        SYS_truncate,
        SYS_ftruncate,
        SYS_dup,
        SYS_dup2,
        SYS_dup3,
        SYS_fcntl,
        SYS_ioctl,
        SYS_poll,
        SYS_ppoll,
        SYS_select,
        SYS_pselect6,
        // sockets
        SYS_socket,
        SYS_socketpair,
        SYS_bind,
        SYS_connect,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_sendmmsg,
        SYS_recvmmsg,
        SYS_getsockname,
        SYS_getpeername,
        SYS_setsockopt,
        SYS_getsockopt,
        SYS_shutdown,
        SYS_sendfile,
        // processes
        SYS_clone,
        SYS_clone3,
        SYS_fork,
        SYS_vfork,
        SYS_execve,
        SYS_execveat,
        // the first syscall of every x86-64 image (TLS set-up): the earliest stop after an exec
        SYS_arch_prctl,
        SYS_wait4,
        SYS_waitid,
        // host identity
        SYS_uname,
        // threads: creation is clone/clone3 above; a new thread's first syscalls (glibc: rseq,
        // set_robust_list, rt_sigprocmask; Go: gettid), so it stops before application code
        SYS_rseq,
        SYS_set_robust_list,
        SYS_rt_sigprocmask,
        SYS_gettid,
        SYS_futex,
        SYS_futex_waitv,
        crate::futex::SYS_FUTEX_WAKE,
        crate::futex::SYS_FUTEX_WAIT,
        crate::futex::SYS_FUTEX_REQUEUE,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_getcpu,
        // not supported yet: refused with a log line rather than run against real time
        SYS_alarm,
        SYS_setitimer,
        SYS_getitimer,
        SYS_timer_create,
        SYS_timerfd_create,
        SYS_timerfd_settime,
        SYS_timerfd_gettime,
        SYS_epoll_create,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_wait,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_pause,
        SYS_rt_sigsuspend,
        SYS_rt_sigtimedwait,
        // Calls that send signals: let run at once, they tell the host to look for signals
        // pending on its blocked tasks (see `DirectEngine::signal_and_continue`).
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_pidfd_send_signal,
        SYS_io_uring_setup,
        SYS_inotify_init,
        SYS_inotify_init1,
    ];
    v.push(thermocline_shim::abi::HELLO_SYSCALL);
    v.into_iter().map(|n| n as u32).collect()
}

fn wall_watchdog() -> Duration {
    std::env::var("THERMOCLINE_DIRECT_WATCHDOG_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Find an executable the way the spec documents: paths with a slash as they are, bare names in
/// `/usr/local/bin:/usr/bin:/bin`.
pub fn resolve_exe(path: &Path) -> Option<PathBuf> {
    if path.components().count() > 1 || path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    ["/usr/local/bin", "/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(path)).find(|p| p.is_file())
}

impl DirectEngine {
    /// The engine for `shard`: every direct host the partition puts on this shard.
    pub fn new(setup: DirectSetup<'_>, shard: ShardId) -> Result<Self, DirectError> {
        let DirectSetup { net, partition, processes, options, seed, end, peer_book, rules, ops, sources, mirrors } =
            setup;
        let dir = &net.directory;
        for p in processes {
            let g = dir.groups.iter().find(|g| g.spec.name == p.host).ok_or_else(|| {
                DirectError::Config(format!("process {:?} names host group {:?}, which does not exist", p.path, p.host))
            })?;
            if g.spec.kind != HostKind::Direct {
                return Err(DirectError::Config(format!(
                    "process {:?} runs on host group {:?}, which is not kind = \"direct\"",
                    p.path, p.host
                )));
            }
            if resolve_exe(&p.path).is_none() {
                return Err(DirectError::Config(format!("process executable {:?} not found", p.path)));
            }
        }
        if !options.shim.is_file() {
            return Err(DirectError::Config(format!(
                "the shim {} is missing (build it with `cargo build --release -p thermocline-shim`, or set THERMOCLINE_SHIM)",
                options.shim.display()
            )));
        }
        let random = StreamFamily::new(seed, "direct-random");
        let netfam = StreamFamily::new(seed, "direct-net");
        let tcpfam = StreamFamily::new(seed, "direct-tcp");
        std::fs::create_dir_all(&options.out_dir)
            .map_err(|e| DirectError::Io(format!("creating {}", options.out_dir.display()), e))?;
        let run_start = crate::stamps::run_start(&options.out_dir);
        let mut hosts = Vec::new();
        let mut local = HashMap::new();
        let mut sched = Scheduler::new(shard, partition.clone(), net.clone());
        sched.rules = rules;
        // Surrogate identities hold the ids below `surrogates()`.
        for h in dir.surrogates()..dir.len() {
            let group = &dir.groups[dir.block_of(h).group as usize];
            if partition.shard_of(h) != shard {
                continue;
            }
            let name = dir.name_of(h);
            let hdir = options.out_dir.join("hosts").join(&name);
            std::fs::create_dir_all(&hdir).map_err(|e| DirectError::Io(format!("creating {}", hdir.display()), e))?;
            let quota = processes
                .iter()
                .filter(|p| p.host == group.spec.name)
                .filter_map(|p| p.disk_quota.map(|q| q.bytes()))
                .min()
                .unwrap_or(crate::disk::DEFAULT_DISK_QUOTA);
            let disk = crate::disk::Disk::new(std::fs::canonicalize(&hdir).unwrap_or_else(|_| hdir.clone()), quota);
            let page = TimePageMem::new(options.start_date.0, BOOT_OFFSET_NS)
                .map_err(|e| DirectError::Io("creating a time page".into(), e))?;
            let bw = dir.block_of(h).bandwidth;
            let mut procs = Vec::new();
            for p in processes.iter().filter(|p| p.host == group.spec.name) {
                let exe = resolve_exe(&p.path).unwrap_or_else(|| p.path.clone());
                let base = exe.file_name().map_or("process".into(), |f| f.to_string_lossy().into_owned());
                let stem = format!("{base}.{}", procs.len());
                let spec =
                    with_peers(p, h, peer_book).map_err(|message| DirectError::Host { host: name.clone(), message })?;
                procs.push(ProcState::new(spec, exe, stem));
            }
            let (runbook, commands) = timeline::runbook(ops, h, &mut procs, |p| with_peers(p, h, peer_book))
                .map_err(|message| DirectError::Host { host: name.clone(), message })?;
            let pcap = if options.pcap {
                let path = hdir.join("packets.pcap");
                Some(
                    crate::pcap::PcapWriter::create(&path)
                        .map_err(|e| DirectError::Io(format!("creating {}", path.display()), e))?,
                )
            } else {
                None
            };
            let mut host = Host {
                id: h,
                name,
                ip: HostDirectory::ip_of(h),
                dir: hdir,
                page,
                now: 0,
                seq: 0,
                random_family: random.clone(),
                randoms: Vec::new(),
                stamps: crate::stamps::Stamps::new(run_start),
                net_rng: netfam.stream(h),
                procs,
                trees: Vec::new(),
                tasks: BTreeMap::new(),
                pid_vid: HashMap::new(),
                next_vid: 0,
                fork_fds: HashMap::new(),
                fd_tables: Vec::new(),
                futexes: Default::default(),
                timers: Default::default(),
                epoch: 0,
                objs: Vec::new(),
                logged: Default::default(),
                stats: BTreeMap::new(),
                waits: options.syscall_stats.then(Default::default),
                net: HostNet::new(HostDirectory::ip_of(h), rand_core::Rng::next_u64(&mut tcpfam.stream(h))),
                uplink: FifoLink::default(),
                in_order: Default::default(),
                up_bps: bw.up.0,
                down_bps: bw.down.0,
                downlink: FifoLink::default(),
                progress: 0,
                signal_hint: false,
                async_io: false,
                native_edges: Default::default(),
                rx: Default::default(),
                pending_clear_tid: None,
                pcap,
                disk,
                ns: None,
                marks: Default::default(),
                logs: Default::default(),
                runbook,
                exits: Vec::new(),
                sources: Vec::new(),
                mirrors: mirrors.iter().filter(|m| m.hosts.contains(&h)).map(|m| m.rule.clone()).collect(),
                packet_sockets: 0,
                shaping: Default::default(),
            };
            for (i, p) in processes.iter().filter(|p| p.host == group.spec.name).enumerate() {
                let seq = host.next_seq();
                sched.push(Pending { time: p.start.as_nanos(), src: h, seq, dst: h, action: Action::Start(i) });
                if let Some(stop) = p.stop {
                    let seq = host.next_seq();
                    let signal = p.stop_signal.unwrap_or_default().0;
                    let action = Action::Stop(i, signal);
                    sched.push(Pending { time: stop.as_nanos(), src: h, seq, dst: h, action });
                }
            }
            host.logs.feed = !host.runbook.is_empty();
            for (time, step) in commands {
                let seq = host.next_seq();
                sched.push(Pending { time, src: h, seq, dst: h, action: Action::OpBegin(step) });
            }
            for k in (0..sources.len()).filter(|&k| sources[k].hosts.contains(&h)) {
                let mut source = crate::sources::Source::new(sources, k, h, seed);
                if let Some(time) = source.first(sources) {
                    let seq = host.next_seq();
                    let action = Action::SourceSend(host.sources.len());
                    sched.push(Pending { time, src: h, seq, dst: h, action });
                }
                host.sources.push(source);
            }
            local.insert(h, hosts.len());
            hosts.push(host);
        }
        let devnull = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| DirectError::Io("opening /dev/null".into(), e))?;
        // SAFETY: socket(2) with constant arguments.
        let udp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if udp < 0 {
            return Err(DirectError::Io("creating the UDP placeholder".into(), io::Error::last_os_error()));
        }
        // SAFETY: socket(2) with constant arguments.
        let tcp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if tcp < 0 {
            return Err(DirectError::Io("creating the TCP placeholder".into(), io::Error::last_os_error()));
        }
        let mut emulated = notified_syscalls();
        let filter = filter_program(&emulated, options.syscall_stats);
        emulated.sort_unstable();
        let hosts_file = crate::names::HostsFile::new(&crate::names::hosts_text(&net.directory))
            .map_err(|e| DirectError::Io("writing the simulated /etc/hosts".into(), e))?;
        let shared = Shared {
            opts: options,
            devnull: devnull.into(),
            // SAFETY: a fresh descriptor we own.
            udp_placeholder: unsafe { OwnedFd::from_raw_fd(udp) },
            // SAFETY: a fresh descriptor we own.
            tcp_placeholder: unsafe { OwnedFd::from_raw_fd(tcp) },
            hosts_file,
        };
        Ok(DirectEngine {
            ops: ops.to_vec(),
            sources: sources.to_vec(),
            pinned: false,
            me: shard,
            hosts,
            local,
            sched,
            shared,
            filter,
            emulated,
            end,
            watchdog: wall_watchdog(),
            trace: std::env::var_os("THERMOCLINE_DIRECT_TRACE").is_some(),
            step_budget: None,
            tsc_faulting: false,
        })
    }

    /// Queue `action` for host `h` itself at `time`.
    fn push_local(&mut self, h: usize, time: u64, action: Action) {
        self.sched.push_local(&mut self.hosts[h], time, action);
    }

    /// Poll host `h`'s stack if a socket call or a close changed it.
    fn flush_tcp(&mut self, h: usize) {
        if std::mem::take(&mut self.hosts[h].net.dirty) {
            crate::nic::poll(&mut self.cx(h));
        }
    }

    fn host_error(&self, h: usize, message: String) -> DirectError {
        DirectError::Host { host: self.hosts[h].name.clone(), message }
    }

    /// Start process `p` of host `h` (in the host's namespace, created with its first program).
    fn start(&mut self, h: usize, p: usize) -> Result<(), DirectError> {
        if self.hosts[h].ns.is_none() {
            let hosts = self.hosts[h].dir.parent().unwrap_or(&self.shared.opts.out_dir).to_path_buf();
            self.hosts[h].ns = crate::pidns::for_host(&hosts);
            let host = &mut self.hosts[h];
            if let Some(seen) = host.ns.as_ref().and_then(|ns| ns.host_dir(&host.name)) {
                host.disk.seen_at(seen);
            }
        }
        let host = &self.hosts[h];
        // Where the host's folder appears to its programs: a fixed path with a namespace.
        let home = host.ns.as_ref().and_then(|ns| ns.host_dir(&host.name)).unwrap_or_else(|| host.dir.clone());
        let ps = &host.procs[p];
        // A restart appends to the first instance's files.
        let open = |suffix: &str| {
            let name = format!("{}.{suffix}", ps.stem);
            let path = match host.ns.as_ref().filter(|_| home != host.dir) {
                Some(ns) => ns.inside(&home.join(&name)),
                None => host.dir.join(&name),
            };
            let first = ps.instances == 0;
            File::options()
                .create(true)
                .write(true)
                .truncate(first)
                .append(!first)
                .open(&path)
                .map_err(|e| DirectError::Io(format!("creating {}", path.display()), e))
        };
        let (stdout, stderr) = (open("stdout")?, open("stderr")?);
        let datadir = home.join(timeline::DATA_DIR);
        if ps.spec.args.iter().chain(ps.spec.env.values()).any(|a| a.contains("{datadir}")) {
            let inside = host.dir.join(timeline::DATA_DIR);
            std::fs::create_dir_all(&inside)
                .map_err(|e| DirectError::Io(format!("creating {}", inside.display()), e))?;
        }
        let taps = [(&stdout, crate::logs::Stream::Stdout), (&stderr, crate::logs::Stream::Stderr)]
            .map(|(f, stream)| f.metadata().map(|m| ((m.dev(), m.ino()), stream)));
        let taps: Vec<_> = taps
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| DirectError::Io(format!("reading {}'s output files", ps.stem), e))?;
        let dir = &self.sched.net().directory;
        let group = &dir.groups[dir.block_of(host.id).group as usize];
        let datadir = datadir.to_string_lossy();
        let vars = HostVars {
            host: &host.name,
            index: host.id - group.first,
            count: group.spec.count,
            ip: host.ip,
            datadir: &datadir,
        };
        let mut argv = vec![ps.spec.path.to_string_lossy().into_owned()];
        argv.extend(ps.spec.args.iter().map(|a| expand(a, &vars)));
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        env.insert("HOSTNAME".into(), host.name.clone());
        env.insert("TZ".into(), "UTC".into());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("LD_PRELOAD".into(), self.shared.opts.shim.to_string_lossy().into_owned());
        if !ps.spec.trap_rdtsc {
            env.insert(thermocline_shim::abi::RDTSC_ENV.into(), "native".into());
        }
        env.insert("OPENSSL_ia32cap".into(), OPENSSL_NO_HW_RANDOM.into());
        for (k, v) in &ps.spec.env {
            env.insert(k.clone(), expand(v, &vars));
        }
        let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let spec = LaunchSpec {
            path: &ps.exe,
            argv: &argv,
            env: &env,
            dir: &home,
            stdout,
            stderr,
            filter: &self.filter,
            namespace: host.ns.as_ref(),
        };
        let launched = launch(&spec).map_err(|e| self.host_error(h, format!("starting {}: {e}", ps.exe.display())))?;
        let binary = ps.stem.rsplit_once('.').map_or(ps.stem.clone(), |(b, _)| b.to_string());
        let pidfd = thread_pidfd(launched.pid)
            .ok_or_else(|| self.host_error(h, format!("opening a thread pidfd of {}", ps.exe.display())))?;
        let host = &mut self.hosts[h];
        for (id, stream) in taps {
            host.logs.tap(id, p, stream);
        }
        host.procs[p].status = ExitStatus::Running;
        host.procs[p].instances += 1;
        host.procs[p].touched = false;
        host.procs[p].paused = false;
        host.runbook.started(p);
        let tree = host.trees.len();
        host.trees.push(launched.listener);
        let fdt = host.new_fd_table(BTreeMap::new());
        // The launcher's own execve, which the supervisor sees, is not a pending exec.
        let vid = host.add_task(NewTask {
            pid: launched.pid,
            tgid: launched.pid,
            pidfd,
            group_pidfd: Some(launched.pidfd),
            tree,
            proc: p,
            parent: None,
            binary,
            fdt,
            is_root: true,
            shim: false,
        });
        crate::threads::note_exit_words(host, vid, None);
        Ok(())
    }

    /// Send `signal` to process `p` of host `h` (its `stop` time): to the process the spec
    /// started, not to its descendants, and only while it runs. It then ends, or not, as its
    /// handlers decide, and its exit status is checked at the end as any other.
    fn stop(&mut self, h: usize, p: usize, signal: i32) {
        let host = &mut self.hosts[h];
        let Some(t) = host.tasks.values().find(|t| t.is_root && t.proc == p && !matches!(t.state, TaskState::Exited))
        else {
            return;
        };
        // SAFETY: signalling a managed task's process.
        unsafe { libc::kill(t.tgid, signal) };
        host.progress += 1;
        host.signal_hint = true;
    }

    /// Register a task first seen (by its first notification, among its parent's children or
    /// its process's threads). A thread shares its process's descriptor table; a new process
    /// gets a copy of its parent's.
    fn register(&mut self, h: usize, pid: i32, tree: usize) -> Option<u32> {
        let pidfd = thread_pidfd(pid)?;
        let tgid = proc_tgid(pid).unwrap_or(pid);
        let host = &mut self.hosts[h];
        let sibling = if tgid != pid { host.group_member(tgid) } else { None };
        let (parent, proc, binary, fdt, shim) = if let Some(s) = sibling {
            let t = &host.tasks[&s];
            let (proc, binary, fdt, shim) = (t.proc, t.binary.clone(), t.fdt, t.shim);
            (None, proc, binary, host.share_fd_table(fdt), shim)
        } else {
            let parent = proc_ppid(pid).and_then(|pp| host.pid_vid.get(&pp).copied());
            match parent.and_then(|v| host.tasks.get(&v)) {
                Some(t) => {
                    let (proc, binary, fdt, shim) = (t.proc, t.binary.clone(), t.fdt, t.shim);
                    (parent, proc, binary, host.copy_fd_table(fdt), shim)
                }
                None => {
                    // An orphan (its parent exited before it was seen): it belongs to its tree's
                    // spec process, and has the shim if its image maps it.
                    let fds = host.fork_fds.get(&tree).cloned().unwrap_or_default();
                    let objs: Vec<usize> = fds.values().map(|e| e.obj).collect();
                    for o in objs {
                        host.retain(o);
                    }
                    let proc = host.tasks.values().find(|t| t.tree == tree).map_or(0, |t| t.proc);
                    (None, proc, "?".into(), host.new_fd_table(fds), shim_mapped(pid))
                }
            }
        };
        let task =
            NewTask { pid, tgid, pidfd, group_pidfd: None, tree, proc, parent, binary, fdt, is_root: false, shim };
        let clear_tid =
            if sibling.is_some() { host.pending_clear_tid.take_if(|p| p.0 == tgid).map(|p| p.1) } else { None };
        let vid = host.add_task(task);
        crate::threads::note_exit_words(host, vid, clear_tid);
        Some(vid)
    }

    /// Register the tasks that task `vid` created since it last stopped — children (`fork`,
    /// `vfork`) and threads of its process — in order of their kernel ids (creation order), so
    /// they are awaited before anything else is scheduled.
    fn discover(&mut self, h: usize, vid: u32) {
        let Some(t) = self.hosts[h].tasks.get(&vid) else { return };
        let (pid, tgid, tree) = (t.pid, t.tgid, t.tree);
        let mut found: Vec<i32> = proc_children_of(tgid, pid);
        found.extend(crate::procfs::proc_threads(tgid));
        found.sort_unstable();
        found.dedup();
        for child in found {
            if !self.hosts[h].pid_vid.contains_key(&child) {
                self.register(h, child, tree);
            }
        }
    }

    /// A task whose parent may be stopped in vfork has stopped (`exited`: or exited). A vfork
    /// parent is released by the kernel once the child's exec has replaced its memory or the
    /// child has exited — before the child can make another syscall — so checking the parent's
    /// kernel state here gives the same answer on every run: still `D` means the child has not
    /// exec'd (or its exec failed).
    fn release_vfork_parent(&mut self, h: usize, parent: Option<u32>, exited: bool) {
        let Some(p) = parent.and_then(|p| self.hosts[h].tasks.get_mut(&p)) else { return };
        if matches!(p.state, TaskState::Vforked) && (exited || proc_state(p.pid) != Some('D')) {
            p.state = TaskState::Running;
        }
    }

    /// A task has exited: record it, drop its descriptors, reap it if it is our child.
    fn exited(&mut self, h: usize, vid: u32) {
        let host = &mut self.hosts[h];
        let Some(t) = host.tasks.get_mut(&vid) else { return };
        if matches!(t.state, TaskState::Exited) {
            return;
        }
        t.state = TaskState::Exited;
        t.registration = None;
        let (pid, tgid, fdt) = (t.pid, t.tgid, t.fdt);
        host.pid_vid.remove(&pid);
        host.futexes.cancel(vid);
        host.timers.forget_task(vid);
        host.leave_fd_table(fdt);
        // A group exit (`exit_group`, or a fatal signal) has already sent SIGKILL to the other
        // threads when the first one's exit is seen. Those the supervisor holds stopped are dying:
        // await their exits like running tasks, instead of leaving them blocked for ever. Which
        // ones are dying must not depend on how far their deaths have got (see
        // `stopped_thread_dying`): a thread left blocked here would count as running at the end.
        for o in host.tasks.values_mut() {
            if o.tgid == tgid
                && let TaskState::Blocked(n, _) | TaskState::Parked(n) = o.state
                && stopped_thread_dying(TaskStatus::read(tgid, o.pid).as_ref(), &host.trees[o.tree], n.id)
            {
                o.state = TaskState::Running;
            }
        }
        host.progress += 1;
        host.native_edges.both(); // its pipes and sockets closed
        self.flush_tcp(h);
        let host = &mut self.hosts[h];
        host.signal_hint = true; // SIGCHLD
        // The kernel cleared the thread's CLONE_CHILD_CLEARTID word and released its robust
        // futexes, waking waiters in the kernel, where there are none: wake ours instead.
        crate::threads::wake_at_exit(&mut self.cx(h), vid);
        self.reap_group(h, tgid);
        let parent = self.hosts[h].tasks.get(&vid).and_then(|t| t.parent);
        self.release_vfork_parent(h, parent, true);
    }

    /// Once every known thread of the launched process `tgid` has exited, collect the process's
    /// exit status.
    fn reap_group(&mut self, h: usize, tgid: i32) {
        let host = &mut self.hosts[h];
        if host.tasks.values().any(|t| t.tgid == tgid && !matches!(t.state, TaskState::Exited)) {
            return;
        }
        let Some(t) = host.tasks.values_mut().find(|t| t.tgid == tgid && t.is_root && t.group_pidfd.is_some()) else {
            return;
        };
        let Some(group) = t.group_pidfd.take() else { return };
        let proc = t.proc;
        let mut p = libc::pollfd { fd: group.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on our own pidfd; the thread group is exiting.
        unsafe { libc::poll(&mut p, 1, 10_000) };
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the raw waitid (its fifth argument is the child's resource usage) on the pidfd
        // of our own child, whose threads have all exited.
        let r = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                group.as_raw_fd(),
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED | libc::WNOHANG,
                &mut usage as *mut libc::rusage,
            )
        };
        // SAFETY: filled in by waitid (si_pid is 0 when nothing was collected).
        if r == 0 && unsafe { info.si_pid() } != 0 {
            host.procs[proc].max_rss = usage.ru_maxrss.max(0) as u64 * 1024;
            // SAFETY: as above, for an exited child.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            host.procs[proc].status =
                if code == libc::CLD_EXITED { ExitStatus::Code(status) } else { ExitStatus::Signal(status) };
            host.exits.push(proc);
            host.logs.flush_proc(proc, host.now);
        }
    }

    /// Wait until no task of host `h` runs: each running task has stopped in a notified syscall
    /// or exited. New tasks (forked children) are found on the way.
    fn collect(&mut self, h: usize) -> Result<(), DirectError> {
        // When the wait for a stop began, read only once a poll finds nothing: reading the clock
        // is a real syscall here (see `wall`), and most polls find a stop at once.
        let mut waited: Option<u64> = None;
        let watchdog = self.watchdog.as_nanos() as u64;
        let overdue = |waited: &mut Option<u64>| {
            let now = crate::wall::now_ns();
            now.saturating_sub(*waited.get_or_insert(now)) > watchdog
        };
        loop {
            // Tasks stopped in vfork are not awaited: the kernel releases them when their child
            // execs or exits (see `release_vfork_parent`).
            // A vfork parent sleeps (state D) only once its child exists: then the child is
            // registered and awaited like any new task; until then the parent is still in clone.
            let mut in_clone = false;
            let pending: Vec<(u32, i32, usize)> = self.hosts[h]
                .tasks
                .values()
                .filter(|t| matches!(t.state, TaskState::Vforked) && t.vfork_pending)
                .map(|t| (t.vid, t.pid, t.tree))
                .collect();
            for (vid, pid, tree) in pending {
                match proc_state(pid) {
                    Some('D') => {
                        for child in proc_children(pid) {
                            if !self.hosts[h].pid_vid.contains_key(&child) {
                                self.register(h, child, tree);
                            }
                        }
                        if let Some(t) = self.hosts[h].tasks.get_mut(&vid) {
                            t.vfork_pending = false;
                        }
                    }
                    Some('Z') | Some('X') | None => {
                        if let Some(t) = self.hosts[h].tasks.get_mut(&vid) {
                            t.vfork_pending = false;
                        }
                    }
                    Some(_) => in_clone = true,
                }
            }
            let host = &mut self.hosts[h];
            let running = host.tasks.values().any(|t| matches!(t.state, TaskState::Running));
            if !running && in_clone {
                if overdue(&mut waited) {
                    return Err(self.host_error(h, "a task stayed in vfork without a child appearing".into()));
                }
                std::thread::yield_now();
                continue;
            }
            if !running {
                return Ok(());
            }
            let mut fds: Vec<libc::pollfd> = Vec::new();
            let mut what: Vec<(bool, usize)> = Vec::new(); // (is listener, tree or vid)
            for (i, l) in host.trees.iter().enumerate() {
                fds.push(libc::pollfd { fd: l.raw(), events: libc::POLLIN, revents: 0 });
                what.push((true, i));
            }
            for t in host.tasks.values() {
                if !matches!(t.state, TaskState::Exited) {
                    fds.push(libc::pollfd { fd: t.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                    what.push((false, t.vid as usize));
                }
            }
            // Usually the task has already stopped by the time the supervisor runs again (its
            // wake-up is a hand-off), so look without a timeout first: arming a poll timer costs
            // VM exits on a virtual machine.
            // SAFETY: poll over our own descriptors.
            let mut n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
            if n == 0 {
                let tick = crate::threads::poll_tick_ms(&self.cx(h));
                // SAFETY: as above.
                n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tick) };
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(DirectError::Io("poll".into(), e));
            }
            if n == 0 {
                let leaders = crate::threads::exited_leaders(&self.cx(h));
                if !leaders.is_empty() {
                    for vid in leaders {
                        self.exited(h, vid);
                    }
                    waited = None;
                    continue;
                }
                crate::threads::preempt_spinners(&mut self.cx(h));
                if overdue(&mut waited) {
                    let stuck: Vec<String> = self.hosts[h]
                        .tasks
                        .values()
                        .filter(|t| matches!(t.state, TaskState::Running))
                        .map(|t| {
                            format!(
                                "pid {} tid {} ({}), kernel state {:?}{}",
                                t.tgid,
                                t.pid,
                                t.binary,
                                proc_state(t.pid),
                                if t.preempted {
                                    ", a preemption signal was sent and not taken"
                                } else if self.hosts[h].procs[t.proc].spec.preempt.is_none() {
                                    " (spinning? a process `preempt` budget stops spinning threads)"
                                } else {
                                    ""
                                }
                            )
                        })
                        .collect();
                    return Err(self.host_error(
                        h,
                        format!(
                            "a task has not stopped for {:?} (blocked in a syscall that is not emulated?): {}",
                            self.watchdog,
                            stuck.join("; ")
                        ),
                    ));
                }
                continue;
            }
            waited = None;
            // Notifications first (a task that notified is alive), then exits.
            for (pfd, &(is_listener, idx)) in fds.iter().zip(&what) {
                if !is_listener || pfd.revents & libc::POLLIN == 0 {
                    continue;
                }
                let notif = match self.hosts[h].trees[idx].recv() {
                    Ok(n) => n,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // caller died meanwhile
                    Err(e) => return Err(DirectError::Io("receiving a seccomp notification".into(), e)),
                };
                let pid = notif.pid as i32;
                let vid = match self.hosts[h].pid_vid.get(&pid) {
                    Some(&v) => Some(v),
                    None => self.register(h, pid, idx),
                };
                if self.only_counted(&notif) {
                    self.count_and_continue(h, vid, idx, &notif)?;
                    continue;
                }
                if sends_signal(&notif) {
                    self.hosts[h].signal_hint = true;
                    self.count_and_continue(h, vid, idx, &notif)?;
                    continue;
                }
                if let Some(v) = vid
                    && notif.data.arch == crate::seccomp::AUDIT_ARCH_X86_64
                    && crate::stamps::is_stat(notif.data.nr as i64)
                {
                    self.answer_stat(h, v, idx, &notif)?;
                    continue;
                }
                let epoch = self.hosts[h].epoch;
                if let Some(v) = vid
                    && let Some(t) = self.hosts[h].tasks.get_mut(&v)
                {
                    t.state = TaskState::Parked(notif);
                    t.retry = false;
                    t.ready_since = epoch;
                    t.cpu_mark = None;
                    t.preempted = false;
                    let (parent, forked) = (t.parent, std::mem::take(&mut t.forked));
                    self.release_vfork_parent(h, parent, false);
                    // Its new child or thread is awaited (it has not stopped yet) before anything
                    // else is scheduled.
                    if forked {
                        self.discover(h, v);
                    }
                }
            }
            for (pfd, &(is_listener, idx)) in fds.iter().zip(&what) {
                if is_listener || pfd.revents == 0 {
                    continue;
                }
                let vid = idx as u32;
                let parked = matches!(
                    self.hosts[h].tasks.get(&vid).map(|t| &t.state),
                    Some(TaskState::Parked(_)) | Some(TaskState::Blocked(..))
                );
                // A stopped task with a readable pidfd was killed while stopped.
                if !parked || proc_state(self.hosts[h].tasks[&vid].pid).is_none_or(|s| s == 'Z' || s == 'X') {
                    self.exited(h, vid);
                }
            }
        }
    }

    /// Whether `notif` is a syscall the supervisor is told of only because `--syscall-stats`
    /// asks for every call to be counted: one it does not emulate.
    fn only_counted(&self, notif: &crate::seccomp::Notif) -> bool {
        self.shared.opts.syscall_stats
            && notif.data.arch == crate::seccomp::AUDIT_ARCH_X86_64
            && notif.data.nr & 0x4000_0000 == 0
            && self.emulated.binary_search(&(notif.data.nr as u32)).is_err()
    }

    /// Count a syscall the supervisor only counts ([`Self::only_counted`]) or only notes (one
    /// that sends a signal, [`sends_signal`]), with `--syscall-stats`, and let it run at once. The task stays running: the call is no scheduling point, is charged no latency and
    /// changes nothing the simulation sees, so `--syscall-stats` changes no result. (Were these
    /// calls scheduled like the emulated ones, other tasks of the host would run between a
    /// task's `mmap`s, and processes starting together would interleave, draw and allocate
    /// differently with the flag than without.)
    fn count_and_continue(
        &mut self,
        h: usize,
        vid: Option<u32>,
        tree: usize,
        notif: &crate::seccomp::Notif,
    ) -> Result<(), DirectError> {
        let host = &mut self.hosts[h];
        if let Some(t) = vid.and_then(|v| host.tasks.get_mut(&v)) {
            if t.exec_pending {
                t.binary = binary_name(t.pid).unwrap_or_else(|| t.binary.clone());
            }
            if self.shared.opts.syscall_stats {
                *host.stats.entry((t.binary.clone(), notif.data.nr as i64)).or_insert(0) += 1;
            }
        }
        match host.trees[tree].continue_syscall(notif.id) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(DirectError::Io("answering a seccomp notification".into(), e))
            }
            _ => Ok(()),
        }
    }

    /// Answer a `stat`-family call of task `vid` at once, with simulated file times
    /// ([`crate::stamps`]): like a call that is only counted, it is no scheduling point and is
    /// charged no latency, so presenting simulated times changes no other result.
    fn answer_stat(
        &mut self,
        h: usize,
        vid: u32,
        tree: usize,
        notif: &crate::seccomp::Notif,
    ) -> Result<(), DirectError> {
        let answer = emulate::stamps::answer(&mut self.cx(h), vid, notif);
        let host = &mut self.hosts[h];
        if let Some(t) = host.tasks.get_mut(&vid) {
            if self.shared.opts.syscall_stats {
                if t.exec_pending {
                    t.binary = binary_name(t.pid).unwrap_or_else(|| t.binary.clone());
                }
                *host.stats.entry((t.binary.clone(), notif.data.nr as i64)).or_insert(0) += 1;
            }
            t.syscalls += 1;
            if let Some(p) = host.procs.get_mut(t.proc) {
                p.syscalls += 1;
            }
        }
        let listener = &host.trees[tree];
        let sent = match answer {
            Some(Ok(v)) => listener.reply(notif.id, Ok(v)),
            Some(Err(e)) => listener.reply(notif.id, Err(e)),
            None => listener.continue_syscall(notif.id),
        };
        match sent {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(DirectError::Io("answering a seccomp notification".into(), e))
            }
            _ => Ok(()),
        }
    }

    /// Give this (supervisor) thread the same `rdtsc` mode as the task it is about to resume.
    ///
    /// `rdtsc` faulting is a CR4 bit that the kernel rewrites on every context switch between
    /// threads that differ in it, and on a virtual machine a CR4 write traps to the hypervisor
    /// (≈5 µs each here). A forwarded syscall switches task → supervisor → task, so a supervisor
    /// in the other mode paid two such writes per syscall. Matching the mode costs one write per
    /// change instead. While faulting is on this thread must not execute `rdtsc`: the vDSO clock
    /// does, so the engine reads wall time with the real syscall ([`crate::wall::now_ns`]) and turns
    /// faulting off before it returns to the bus.
    fn match_tsc(&mut self, faulting: bool) {
        if self.tsc_faulting != faulting {
            let mode = if faulting { libc::PR_TSC_SIGSEGV } else { libc::PR_TSC_ENABLE };
            // SAFETY: prctl on the calling thread with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_TSC, mode, 0, 0, 0) };
            self.tsc_faulting = faulting;
        }
    }

    /// Run host `h` until every task is blocked or gone. This may leave the thread's `rdtsc`
    /// faulting on; the bus-facing entry points turn it off before they return.
    fn settle(&mut self, h: usize) -> Result<(), DirectError> {
        loop {
            self.collect(h)?;
            let host = &mut self.hosts[h];
            // The runnable task that has waited longest; ties (tasks that stopped during the same
            // collect) by host-local id. A paused process's tasks wait (see `ops::OpKind::Pause`).
            let procs = &host.procs;
            let next = host
                .tasks
                .values()
                .filter(|t| matches!(t.state, TaskState::Parked(_)) && !procs.get(t.proc).is_some_and(|p| p.paused))
                .min_by_key(|t| (t.ready_since, t.vid))
                .map(|t| t.vid);
            if let Some(vid) = next {
                if let Some(budget) = &mut self.step_budget {
                    if *budget == 0 {
                        return Ok(());
                    }
                    *budget -= 1;
                }
                self.step(h, vid)?;
                continue;
            }
            // Nothing runnable. A blocked task with a signal pending (sent by another task, or a
            // child's SIGCHLD) is interrupted, as the kernel would.
            let progress = host.progress;
            let mut retried = false;
            if host.signal_hint {
                host.signal_hint = false;
                retried |= crate::threads::interrupt_signalled(host);
            }
            // Retry blocked tasks if something happened since they blocked (a paused process's
            // when it is resumed).
            let epoch = host.epoch;
            let procs = &host.procs;
            for t in host.tasks.values_mut() {
                if let TaskState::Blocked(n, BlockKind::Io { since }) = t.state
                    && since < progress
                    && !procs.get(t.proc).is_some_and(|p| p.paused)
                {
                    t.state = TaskState::Parked(n);
                    t.retry = true;
                    t.ready_since = epoch;
                    retried = true;
                }
            }
            if !retried {
                return Ok(());
            }
        }
    }

    /// Handle task `vid`'s pending notification (after it has waited off its unapplied syscall
    /// latency, if that is due).
    fn step(&mut self, h: usize, vid: u32) -> Result<(), DirectError> {
        if self.pause_for_latency(h, vid) {
            return Ok(());
        }
        let host = &mut self.hosts[h];
        let Some(t) = host.tasks.get_mut(&vid) else { return Ok(()) };
        let TaskState::Parked(notif) = t.state else { return Ok(()) };
        let retried = t.retry;
        let ending =
            crate::waits::Ending { timed_out: t.timed_out, interrupted: t.interrupted, futex_woken: t.futex_woken };
        let nr = notif.data.nr as i64;
        let trap_rdtsc = host.procs.get(t.proc).is_none_or(|p| p.spec.trap_rdtsc);
        if !t.retry {
            t.syscalls += 1;
            if self.shared.opts.syscall_stats {
                *host.stats.entry((t.binary.clone(), nr)).or_insert(0) += 1;
            }
            if let Some(p) = host.procs.get_mut(t.proc) {
                p.syscalls += 1;
            }
        }
        host.epoch += 1;
        self.match_tsc(trap_rdtsc);
        let host = &mut self.hosts[h];
        let t = host.tasks.get_mut(&vid).expect("task exists");
        if t.exec_pending {
            t.exec_pending = false;
            self.after_exec(h, vid);
        }
        let interrupted = std::mem::take(&mut self.hosts[h].tasks.get_mut(&vid).expect("task exists").interrupted);
        let answer = if interrupted {
            emulate::interrupted(&self.hosts[h], vid, &notif)
        } else {
            emulate::syscall(&mut self.cx(h), vid, &notif)?
        };
        if self.trace {
            let t = &self.hosts[h].tasks[&vid];
            eprintln!(
                "thermocline-trace: {} t={} vid {} pid {} {} {}({:#x}, {:#x}, {:#x}) -> {:?}",
                self.hosts[h].name,
                self.hosts[h].now,
                vid,
                t.pid,
                t.binary,
                sysnames::name(nr).unwrap_or("?"),
                notif.data.args[0],
                notif.data.args[1],
                notif.data.args[2],
                answer
            );
        }
        if !emulate::is_latency_bookkeeping(&notif) {
            self.account_latency(h, vid, retried || matches!(answer, Answer::Block(..)));
        }
        let host = &mut self.hosts[h];
        if let Some(w) = host.waits.as_mut() {
            if matches!(answer, Answer::Block(..)) {
                w.note = None;
            } else {
                w.count(&host.tasks[&vid].binary, nr, retried, ending);
            }
        }
        let now = host.now;
        let tree = host.tasks[&vid].tree;
        let listener = &host.trees[tree];
        let sent = match answer {
            Answer::Block(kind, timeout) => {
                let kind = match kind {
                    BlockKind::Io { .. } => BlockKind::Io { since: host.progress },
                    k => k,
                };
                host.tasks.get_mut(&vid).expect("task exists").state = TaskState::Blocked(notif, kind);
                if host.timers.due(TimerKey::Deadline(vid)).is_none()
                    && let Some(d) = timeout
                {
                    self.sched.arm(host, TimerKey::Deadline(vid), now.saturating_add(d));
                }
                self.flush_tcp(h);
                return Ok(());
            }
            Answer::Value(v) => listener.reply(notif.id, Ok(v)),
            Answer::Errno(e) => listener.reply(notif.id, Err(e)),
            Answer::Continue => listener.continue_syscall(notif.id),
            Answer::TimePage => listener.add_fd_and_reply(notif.id, host.page.raw_fd(), true).map(|_| ()),
            Answer::AddFile { file, cloexec } => {
                listener.add_fd_and_reply(notif.id, file.as_raw_fd(), cloexec).map(|_| ())
            }
            Answer::AddFd { src, cloexec, obj } => match listener.add_fd_and_reply(notif.id, src, cloexec) {
                Ok(fd) => {
                    let old = host.fds_mut(vid).and_then(|f| f.insert(fd, FdEntry { obj, cloexec }));
                    if let Some(old) = old {
                        host.release(old.obj);
                    }
                    Ok(())
                }
                Err(e) => {
                    host.release(obj);
                    Err(e)
                }
            },
        };
        let host = &mut self.hosts[h];
        host.futexes.cancel(vid);
        host.timers.cancel(TimerKey::Deadline(vid));
        let t = host.tasks.get_mut(&vid).expect("task exists");
        t.timed_out = false;
        t.retry = false;
        t.futex_woken = false;
        t.partial = 0;
        if !matches!(t.state, TaskState::Vforked | TaskState::Exited) {
            t.state = TaskState::Running;
        }
        host.progress += 1;
        self.flush_tcp(h);
        match sent {
            Ok(()) => Ok(()),
            // The task was killed while stopped: its pidfd will say so.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(DirectError::Io("answering a seccomp notification".into(), e)),
        }
    }

    /// Before task `vid`'s call is handled: if its unapplied syscall latency has reached the
    /// threshold, it first waits that long (a timer; the call is handled afresh when it fires).
    /// Not while terminating, when time stays at the end. Returns whether it now waits.
    fn pause_for_latency(&mut self, h: usize, vid: u32) -> bool {
        if self.step_budget.is_some() {
            return false;
        }
        let host = &mut self.hosts[h];
        let now = host.now;
        let Some(t) = host.tasks.get_mut(&vid) else { return false };
        let TaskState::Parked(notif) = t.state else { return false };
        if t.retry || t.interrupted {
            return false;
        }
        let Some(wait) = t.latency.take_due() else { return false };
        t.state = TaskState::Blocked(notif, BlockKind::Latency);
        self.sched.arm(host, TimerKey::Deadline(vid), now.saturating_add(wait));
        true
    }

    /// Task `vid`'s call was answered: charge its process's syscall latency, or empty its account
    /// if the call blocked or completes one that had.
    fn account_latency(&mut self, h: usize, vid: u32, blocked: bool) {
        let cost = self.hosts[h].syscall_latency(vid);
        if let Some(t) = self.hosts[h].tasks.get_mut(&vid) {
            t.latency.answered(blocked, cost);
        }
    }

    /// After an execve: the binary's name, which emulated descriptors survived (close-on-exec),
    /// and the image's AT_RANDOM bytes, rewritten from its process's stream.
    fn after_exec(&mut self, h: usize, vid: u32) {
        let udp_link = fd_link(std::process::id() as i32, self.shared.udp_placeholder.as_raw_fd());
        let tcp_link = fd_link(std::process::id() as i32, self.shared.tcp_placeholder.as_raw_fd());
        let null_link = Some("/dev/null".to_string());
        let host = &mut self.hosts[h];
        let Some(t) = host.tasks.get_mut(&vid) else { return };
        let pid = t.pid;
        if let Some(binary) = binary_name(pid) {
            t.binary = binary;
        }
        t.shim = false;
        // The kernel forgot its clear-tid address and robust list: the new image sets its own.
        t.exit_words.clear_tid = None;
        t.exit_words.robust_list = 0;
        let mut gone = Vec::new();
        for (&fd, e) in host.fds(vid) {
            let want = match host.objs.get(e.obj) {
                Some(Some(s)) => match s.obj {
                    Obj::Random | Obj::Epoll(_) | Obj::TimerFd(_) | Obj::Netlink(_) | Obj::Packet(_) => &null_link,
                    Obj::Udp(_) => &udp_link,
                    Obj::Tcp(_) => &tcp_link,
                },
                _ => &None,
            };
            if fd_link(pid, fd) != *want {
                gone.push(fd);
            }
        }
        let released: Vec<usize> = match host.fds_mut(vid) {
            Some(fds) => gone.iter().filter_map(|fd| fds.remove(fd)).map(|e| e.obj).collect(),
            None => Vec::new(),
        };
        for o in released {
            host.release(o);
        }
        self.flush_tcp(h);
        let host = &mut self.hosts[h];
        // Programs without the shim (static ones) read time through the vDSO: make those
        // reads syscalls the supervisor answers. The shim, if it loads, replaces the stubs.
        let _ = crate::vdso::neutralise(pid);
        if let Some(addr) = auxv_random(pid)
            && let Some(random) = host.random_of(vid)
        {
            let mut bytes = [0u8; 16];
            rand_core::Rng::fill_bytes(random, &mut bytes);
            let _ = crate::mem::write(pid, addr, &bytes);
        }
    }

    /// The narrow context of a syscall handler on host `h` (see [`Cx`]).
    fn cx(&mut self, h: usize) -> Cx<'_> {
        Cx { host: &mut self.hosts[h], sched: &mut self.sched, shared: &self.shared }
    }

    /// Host index of global host id `id`, if it is on this shard.
    pub(crate) fn local_index(&self, id: u32) -> Option<usize> {
        self.local.get(&id).copied()
    }

    fn set_now(&mut self, h: usize, t: u64) {
        let host = &mut self.hosts[h];
        host.now = host.now.max(t);
        host.page.set_now(host.now);
    }

    /// Apply one event to its host (the caller settles the host afterwards).
    fn execute(&mut self, ev: Pending) -> Result<(), DirectError> {
        let Some(h) = self.local_index(ev.dst) else { return Ok(()) };
        self.set_now(h, ev.time);
        match ev.action {
            // A process the timeline has already started is not started again by the spec.
            Action::Start(p) if self.hosts[h].procs[p].instances == 0 => self.start(h, p)?,
            Action::Start(_) => {}
            Action::OpBegin(step) => self.hosts[h].runbook.begin(&self.ops, step, ev.time),
            Action::OpTimer(step) => self.hosts[h].runbook.timer(&self.ops, step, ev.time),
            Action::SourceSend(i) => self.send_from_source(h, i),
            Action::Stop(p, signal) => self.stop(h, p, signal),
            Action::Timer { key, generation } => self.timer(h, key, generation),
            Action::Arrive(packet) => {
                let host = &mut self.hosts[h];
                let bytes = packet.len() as u64;
                let down = self.sched.rules.down_bps(host.id, ev.time, host.down_bps);
                let done = host.downlink.transmit(ev.time, bytes, thermocline_models::units::Bandwidth(down));
                if done > ev.time {
                    self.push_local(h, done, Action::Deliver(packet));
                } else {
                    self.downloaded(h, packet);
                }
            }
            Action::Deliver(packet) => self.downloaded(h, packet),
            Action::RxFlush => {
                let held = crate::nic::flush(&mut self.hosts[h]);
                crate::nic::deliver_held(&mut self.cx(h), held);
            }
            Action::Loopback(packet) => crate::nic::deliver_packet(&mut self.cx(h), &packet, false),
            Action::Mark(bytes) => {
                let mark = thermocline_net::StreamMark::decode(&bytes).map_err(|e| {
                    DirectError::BadEvent(format!("a stream mark for host {}: {e}", self.hosts[h].name))
                })?;
                self.hosts[h].marks.add(mark);
                crate::nic::settle_marks(&mut self.hosts[h]);
            }
        }
        Ok(())
    }

    /// Host `h`'s timer `key` fires, unless `generation` says the event is stale: a blocked call
    /// times out (or its latency pause ends), a timerfd expires, an alarm sends `SIGALRM`, the
    /// stack is polled.
    fn timer(&mut self, h: usize, key: TimerKey, generation: u64) {
        let host = &mut self.hosts[h];
        let Some(at) = host.timers.current(key, generation) else { return };
        if !matches!(key, TimerKey::Deadline(_)) {
            host.timers.cancel(key);
        }
        match key {
            TimerKey::Deadline(vid) => {
                let epoch = host.epoch;
                let Some(t) = host.tasks.get_mut(&vid) else { return };
                let TaskState::Blocked(n, kind) = t.state else { return };
                t.state = TaskState::Parked(n);
                t.ready_since = epoch;
                if kind == BlockKind::Latency {
                    // The pause is over and the call is handled afresh; a call that timed out
                    // keeps its deadline until it is answered, so blocking again arms none.
                    host.timers.cancel(key);
                } else {
                    t.timed_out = true;
                    t.retry = true;
                }
            }
            TimerKey::TimerFd(obj) => {
                let now = host.now;
                let Some(Some(crate::host::ObjSlot { obj: Obj::TimerFd(t), .. })) = host.objs.get_mut(obj) else {
                    return;
                };
                if t.fire(now) {
                    host.progress += 1;
                    if let Some(at) = t.next_deadline() {
                        self.sched.arm(host, key, at);
                    }
                }
            }
            TimerKey::Alarm(vid) => {
                let Some(t) = host.tasks.get(&vid) else { return };
                let (tgid, interval) = (t.tgid, t.alarm_interval);
                // SAFETY: signalling a managed task.
                unsafe { libc::kill(tgid, libc::SIGALRM) };
                host.progress += 1;
                host.signal_hint = true;
                if interval > 0 {
                    self.sched.set_alarm(host, vid, at + interval, interval);
                }
            }
            TimerKey::TcpPoll => {
                if host.net.has_stack() {
                    crate::nic::poll(&mut self.cx(h));
                }
            }
        }
    }

    /// A packet from the network has been downloaded by host `h`: to its sockets now, or, with
    /// receive coalescing, held by its card until the window ends.
    fn downloaded(&mut self, h: usize, packet: Bytes) {
        let window = self.shared.opts.rx_coalesce_ns;
        if window == 0 {
            crate::nic::deliver_packet(&mut self.cx(h), &packet, true);
            return;
        }
        if let Some(end) = crate::nic::hold(&mut self.hosts[h], packet.to_vec(), window) {
            self.push_local(h, end, Action::RxFlush);
        }
    }

    /// End of run: terminate what still runs (SIGTERM, a bounded number of answered syscalls,
    /// then SIGKILL), then check exit statuses.
    fn terminate(&mut self, h: usize) -> Result<(), DirectError> {
        // One signal per process (a thread id would name the same process again).
        let mut live: Vec<i32> =
            self.hosts[h].tasks.values().filter(|t| !matches!(t.state, TaskState::Exited)).map(|t| t.tgid).collect();
        live.sort_unstable();
        live.dedup();
        if live.is_empty() {
            return Ok(());
        }
        // The end of the run stops paused processes as it stops the others.
        for p in &mut self.hosts[h].procs {
            p.paused = false;
        }
        let roots: Vec<usize> = self.hosts[h]
            .tasks
            .values()
            .filter(|t| t.is_root && !matches!(t.state, TaskState::Exited))
            .map(|t| t.proc)
            .collect();
        for pid in &live {
            // SAFETY: signalling a managed task.
            unsafe { libc::kill(*pid, libc::SIGTERM) };
        }
        // Let handlers run as in normal operation (blocked calls with the signal pending are
        // interrupted, time stays at the end, so latency is not waited off), within a budget of
        // answered syscalls.
        let host = &mut self.hosts[h];
        for t in host.tasks.values_mut() {
            if let TaskState::Blocked(n, BlockKind::Latency) = t.state {
                t.state = TaskState::Parked(n);
                host.timers.cancel(TimerKey::Deadline(t.vid));
            }
        }
        self.hosts[h].progress += 1;
        self.hosts[h].signal_hint = true;
        self.step_budget = Some(TERMINATION_STEPS);
        let settled = self.settle(h);
        self.step_budget = None;
        settled?;
        for t in self.hosts[h].tasks.values() {
            if !matches!(t.state, TaskState::Exited) {
                // SAFETY: signalling a managed task's process.
                unsafe { libc::kill(t.tgid, libc::SIGKILL) };
            }
        }
        let vids: Vec<u32> = self.hosts[h].tasks.keys().copied().collect();
        for vid in vids {
            let host = &self.hosts[h];
            let t = &host.tasks[&vid];
            if matches!(t.state, TaskState::Exited) {
                continue;
            }
            let mut p = libc::pollfd { fd: t.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on our own pidfd; SIGKILL ends the task promptly.
            unsafe { libc::poll(&mut p, 1, 10_000) };
            self.exited(h, vid);
        }
        // Processes still running at the end count as "running", whatever the termination did.
        for p in roots {
            self.hosts[h].procs[p].status = ExitStatus::Running;
        }
        Ok(())
    }

    /// Execute the events before `end` (ns), settling each host after its batch.
    fn run_events(&mut self, end: SimTime) -> Result<u64, DirectError> {
        let end = end.as_nanos().min(self.end.as_nanos());
        let mut n = 0;
        while let Some(p) = self.sched.peek() {
            if p.time >= end {
                break;
            }
            // Everything that happens to a host at one instant is applied before its tasks run
            // (datagrams sent together arrive together, as on a real loopback), in canonical
            // order; then the host settles. The batch is every event due at that instant when
            // the instant begins, grouped by host, so it does not depend on which other hosts
            // share the shard. Events a settling host creates for the same instant (zero delays)
            // form the next batch.
            let time = p.time;
            let mut groups: Vec<(u32, Vec<Pending>)> = Vec::new();
            while let Some(next) = self.sched.peek() {
                if next.time != time {
                    break;
                }
                let Some(ev) = self.sched.pop() else { break };
                match groups.iter_mut().find(|(d, _)| *d == ev.dst) {
                    Some((_, g)) => g.push(ev),
                    None => groups.push((ev.dst, vec![ev])),
                }
            }
            for (dst, events) in groups {
                for ev in events {
                    self.execute(ev)?;
                    n += 1;
                }
                if let Some(h) = self.local_index(dst) {
                    self.settle(h)?;
                    self.advance_timeline(h)?;
                }
            }
        }
        Ok(n)
    }
}

/// Whether `notif` is a call that sends a signal (`kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`,
/// `rt_tgsigqueueinfo`, `pidfd_send_signal`). These run in the kernel, at once and without being
/// a scheduling point (as calls that are only counted), and tell the host to look for signals
/// pending on its blocked tasks when it next settles: with the exits of tasks (`SIGCHLD`, a
/// group's deaths), the supervisor's own signals (`SIGALRM`, the end of the run's `SIGTERM`) and
/// native reads and writes (`SIGIO`), they are how a blocked task of a host gets a signal, so the
/// host reads `/proc/PID/status` of its blocked tasks only then, not after every answered call
/// (before: 29 % of the supervisor's CPU time in `bench direct --nodes 16`).
#[allow(non_upper_case_globals)]
fn sends_signal(notif: &crate::seccomp::Notif) -> bool {
    use libc::{SYS_kill, SYS_pidfd_send_signal, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_tgkill, SYS_tkill};
    notif.data.arch == crate::seccomp::AUDIT_ARCH_X86_64
        && matches!(
            notif.data.nr as i64,
            SYS_kill | SYS_tkill | SYS_tgkill | SYS_rt_sigqueueinfo | SYS_rt_tgsigqueueinfo | SYS_pidfd_send_signal
        )
}

impl Engine for DirectEngine {
    fn next_event_time(&self) -> SimTime {
        self.sched.peek().map_or(SimTime::NEVER, |p| SimTime::from_nanos(p.time))
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        if let Some(cpu) = self.shared.opts.cpu.take() {
            // On the thread that runs this shard, before it launches anything.
            crate::pin::pin_current_thread(cpu)
                .map_err(|e| format!("pinning shard {} to CPU {cpu}: {e}", self.me.0))?;
            self.pinned = true;
        }
        let ran = self.run_events(end);
        self.match_tsc(false);
        let n = ran?;
        for (to, ev) in self.sched.take_outgoing() {
            outbox.push(to, ev);
        }
        Ok(n)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        for e in events.drain(..) {
            let action = match e.kind {
                PACKET_EVENT_KIND => Some(Action::Arrive(e.payload)),
                MARK_EVENT_KIND => Some(Action::Mark(e.payload)),
                _ => None,
            };
            let (Some(action), Some(_)) = (action, self.local_index(e.dst_host.0)) else {
                return Err(Box::new(DirectError::BadEvent(format!(
                    "event kind {} for host {} is not a packet or a stream mark for a direct host of shard {}",
                    e.kind, e.dst_host.0, self.me
                ))));
            };
            self.sched.push(Pending {
                time: e.deliver_time.as_nanos(),
                src: e.src_host.0,
                seq: e.src_seq,
                dst: e.dst_host.0,
                action,
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        if std::mem::take(&mut self.pinned) {
            // The thread may run more (the next run of a benchmark, the outputs): all CPUs again.
            crate::pin::unpin_current_thread().map_err(|e| format!("unpinning shard {}: {e}", self.me.0))?;
        }
        let end = self.end.as_nanos();
        for h in 0..self.hosts.len() {
            self.set_now(h, end);
            let terminated = self.terminate(h);
            self.match_tsc(false);
            terminated?;
        }
        let mut digest = Digest::EMPTY;
        let mut problems = Vec::new();
        for host in &mut self.hosts {
            host.logs.finish();
            host.runbook.finish(end);
            if let Some(p) = host.pcap.as_mut() {
                p.finish().map_err(|e| DirectError::Io(format!("writing {}'s packet capture", host.name), e))?;
            }
        }
        for host in &self.hosts {
            let mut record = Vec::new();
            record.extend_from_slice(b"direct-host\0");
            record.extend_from_slice(&host.id.to_be_bytes());
            record.extend_from_slice(host.name.as_bytes());
            for p in &host.procs {
                for suffix in ["stdout", "stderr"] {
                    let bytes = std::fs::read(host.dir.join(format!("{}.{suffix}", p.stem))).unwrap_or_default();
                    record.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
                    record.extend_from_slice(&bytes);
                }
                record.extend_from_slice(p.status.to_string().as_bytes());
                record.push(0);
                for count in [p.udp_sent, p.udp_recv, p.tcp_sent, p.tcp_recv] {
                    record.extend_from_slice(&count.to_be_bytes());
                }
                let expected = p.spec.expected_exit;
                // The timeline's commands, and instances it ended, report their ends as
                // scenario events instead.
                let ok = p.scenario
                    || (p.touched && p.status != ExitStatus::Running)
                    || match p.status {
                        ExitStatus::NotStarted => expected == ExpectedExit::Running,
                        s => expected.matches(s),
                    };
                if !ok {
                    problems.push(format!(
                        "host {} process {} ({}): ended with {}, expected {}",
                        host.name,
                        p.stem,
                        p.exe.display(),
                        p.status,
                        expected
                    ));
                }
            }
            crate::marks::digest_record(&host.marks, &mut record);
            timeline::digest_record(&host.runbook, &mut record);
            timeline::digest_sources(&host.sources, &mut record);
            digest.add_record(&record);
        }
        if !problems.is_empty() {
            return Err(Box::new(DirectError::ExitStatus(problems.join("; "))));
        }
        let tables = crate::tables::tables(&self.hosts, &self.shared.opts, &self.ops, &self.sources)
            .map_err(|e| Box::new(DirectError::Table(e.to_string())))?;
        Ok(EngineOutput { digest, tables })
    }
}

impl Drop for DirectEngine {
    fn drop(&mut self) {
        for host in &self.hosts {
            for t in host.tasks.values() {
                if !matches!(t.state, TaskState::Exited) {
                    // SAFETY: killing a managed task's process (pidfd_send_signal would be exact;
                    // the pid cannot have been reused while we hold its pidfd and have not reaped
                    // it).
                    unsafe { libc::kill(t.tgid, libc::SIGKILL) };
                }
            }
            for t in host.tasks.values() {
                if t.is_root && t.group_pidfd.is_some() {
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(t.pid, std::ptr::null_mut(), 0) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_models::directory::HostGroupSpec;
    use thermocline_models::network::{NetworkSpec, TopologyKind};

    /// A network of one direct host on a single switch, on one shard.
    fn one_host() -> (NetworkModel, Partition) {
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
        (net, partition)
    }

    fn engine(out: &Path, processes: &[ProcessSpec]) -> DirectEngine {
        let (net, partition) = one_host();
        let exe = std::env::current_exe().unwrap();
        let options = DirectOptions {
            out_dir: out.to_path_buf(),
            start_date: crate::config::StartDate::default(),
            syscall_stats: false,
            shim: crate::locate_shim(&exe),
            pcap: false,
            cpu: None,
            verbose: false,
            rx_coalesce_ns: 0,
        };
        let setup = DirectSetup {
            net,
            partition,
            processes,
            options,
            seed: 1,
            end: SimTime::from_nanos(10_000_000_000),
            peer_book: None,
            rules: Default::default(),
            ops: &[],
            sources: &[],
            mirrors: &[],
        };
        DirectEngine::new(setup, ShardId(0)).unwrap()
    }

    fn run(e: &mut DirectEngine) -> EngineOutput {
        let mut outbox = Outbox::new(1);
        while !e.next_event_time().is_never() {
            e.run_until(SimTime::from_nanos(10_000_000_000), &mut outbox).unwrap();
            if e.next_event_time() >= SimTime::from_nanos(10_000_000_000) {
                break;
            }
        }
        e.finish().unwrap()
    }

    #[test]
    fn an_engine_runs_a_real_program_and_repeats_its_digest() {
        let dir = std::env::temp_dir().join(format!("thermocline-direct-unit-{}", std::process::id()));
        let p = ProcessSpec {
            args: vec!["-c".into(), "echo hello; date -u +%s; head -c 4 /dev/urandom | od -An -tx1".into()],
            start: thermocline_bus::SimDuration::from_secs(2),
            ..ProcessSpec::new("h", "sh")
        };
        let mut digests = Vec::new();
        for i in 0..2 {
            let out = dir.join(i.to_string());
            let mut e = engine(&out, std::slice::from_ref(&p));
            assert_eq!(e.next_event_time(), SimTime::from_nanos(2_000_000_000));
            digests.push(run(&mut e).digest);
            let stdout = std::fs::read_to_string(out.join("hosts/h/sh.0.stdout")).unwrap();
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines[..2], ["hello", "946684802"], "{stdout}");
            assert_eq!(lines[2].split_whitespace().count(), 4);
        }
        assert_eq!(digests[0], digests[1]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stop_time_sends_its_signal_at_that_simulated_time() {
        let dir = std::env::temp_dir().join(format!("thermocline-direct-unit-stop-{}", std::process::id()));
        let trap = ProcessSpec {
            args: vec!["-c".into(), "trap 'date -u +%s; exit 7' INT; while :; do sleep 1; done".into()],
            expected_exit: ExpectedExit::Code(7),
            stop: Some(thermocline_bus::SimDuration::from_millis(4_500)),
            stop_signal: Some(crate::config::Signal(libc::SIGINT)),
            ..ProcessSpec::new("h", "sh")
        };
        let killed = ProcessSpec {
            path: "sleep".into(),
            args: vec!["1000".into()],
            expected_exit: ExpectedExit::Signal(libc::SIGTERM),
            stop: Some(thermocline_bus::SimDuration::from_secs(2)),
            stop_signal: None,
            ..trap.clone()
        };
        let mut e = engine(&dir, &[trap, killed]);
        run(&mut e);
        let stdout = std::fs::read_to_string(dir.join("hosts/h/sh.0.stdout")).unwrap();
        // The trap runs once the `sleep 1` under way at 4.5 s has ended.
        assert_eq!(stdout.trim(), "946684805");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The group-exit race: a thread held stopped in a notification, whose process is killed,
    /// must be seen dying at every point of its death — also once it has dequeued its SIGKILL and
    /// is not a zombie yet, when `/proc` shows it running with nothing pending (a window that
    /// cannot be held open in a test, hence the status as it then reads).
    #[test]
    fn a_stopped_thread_is_seen_dying_however_far_its_death_has_got() {
        let filter = filter_program(&notified_syscalls(), false);
        let null = || File::options().write(true).open("/dev/null").unwrap();
        let argv = ["sleep".to_string(), "1000".to_string()];
        let spec = LaunchSpec {
            path: Path::new("/bin/sleep"),
            argv: &argv,
            env: &[],
            dir: Path::new("/"),
            stdout: null(),
            stderr: null(),
            filter: &filter,
            namespace: None,
        };
        let child = launch(&spec).unwrap();
        // Its first notified syscall, received and never answered: the child is held stopped.
        let n = child.listener.recv().unwrap();
        let exiting = TaskStatus { state: 'R', pending: 0, shared_pending: 0, blocked: 0 };
        let now = TaskStatus::read(child.pid, child.pid);
        assert!(now.is_some() && !stopped_thread_dying(now.as_ref(), &child.listener, n.id), "alive and stopped");
        assert!(!stopped_thread_dying(Some(&exiting), &child.listener, n.id), "a running thread is not dying");
        // SAFETY: signalling and polling our own child through its pidfd.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, child.pidfd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32);
            let mut p = libc::pollfd { fd: child.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            assert_eq!(libc::poll(&mut p, 1, 10_000), 1, "the child dies");
        }
        assert!(stopped_thread_dying(TaskStatus::read(child.pid, child.pid).as_ref(), &child.listener, n.id));
        assert!(
            stopped_thread_dying(Some(&exiting), &child.listener, n.id),
            "its notification was withdrawn before it dequeued its SIGKILL: dying, whatever /proc said"
        );
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child.pid, std::ptr::null_mut(), 0) };
    }

    #[test]
    fn calls_that_send_signals_are_notified_and_recognised() {
        use crate::seccomp::{AUDIT_ARCH_X86_64, Notif, SeccompData};
        let notif = |nr: i64, arch: u32| Notif {
            id: 1,
            pid: 1,
            flags: 0,
            data: SeccompData { nr: nr as i32, arch, instruction_pointer: 0, args: [0; 6] },
        };
        let notified = notified_syscalls();
        for nr in
            [libc::SYS_kill, libc::SYS_tkill, libc::SYS_tgkill, libc::SYS_rt_sigqueueinfo, libc::SYS_pidfd_send_signal]
        {
            assert!(sends_signal(&notif(nr, AUDIT_ARCH_X86_64)), "{nr}");
            assert!(notified.contains(&(nr as u32)), "{nr} is notified, so the host hears of it");
        }
        assert!(!sends_signal(&notif(libc::SYS_getpid, AUDIT_ARCH_X86_64)));
        assert!(!sends_signal(&notif(libc::SYS_kill, 0x4000_0003)), "another ABI's number");
    }

    #[test]
    fn specs_naming_missing_programs_or_groups_are_refused() {
        let dir = std::env::temp_dir().join(format!("thermocline-direct-unit-bad-{}", std::process::id()));
        let (net, partition) = one_host();
        let options = DirectOptions {
            out_dir: dir.clone(),
            start_date: crate::config::StartDate::default(),
            syscall_stats: false,
            shim: crate::locate_shim(&std::env::current_exe().unwrap()),
            pcap: false,
            cpu: None,
            verbose: false,
            rx_coalesce_ns: 0,
        };
        let p = ProcessSpec::new("nope", "sh");
        let mk = |p: &ProcessSpec| {
            let setup = DirectSetup {
                net: net.clone(),
                partition: partition.clone(),
                processes: std::slice::from_ref(p),
                options: options.clone(),
                seed: 1,
                end: SimTime::from_nanos(1),
                peer_book: None,
                rules: Default::default(),
                ops: &[],
                sources: &[],
                mirrors: &[],
            };
            DirectEngine::new(setup, ShardId(0)).err().map(|e| e.to_string())
        };
        assert!(mk(&p).unwrap().contains("host group \"nope\", which does not exist"));
        let q = ProcessSpec { host: "h".into(), path: "/no/such/program".into(), ..p };
        assert!(mk(&q).unwrap().contains("not found"));
    }
}
