//! Per-host state: the simulated-time page, tasks, descriptor tables, emulated objects, counters.

use crate::seccomp::{Listener, Notif};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use thermocline_models::rng::{StreamFamily, StreamRng};
use thermocline_net::FifoLink;
use thermocline_shim::abi::{ABI_VERSION, TIME_PAGE_BYTES, TimePage};

use crate::config::{ExitStatus, ProcessSpec};
use crate::pcap::PcapWriter;
use crate::timers::TimerKey;
use thermocline_net::host::{HostNet, TcpId, UdpId};

/// A host's simulated-time page: a memfd mapped read-write here and read-only in its processes.
pub struct TimePageMem {
    fd: OwnedFd,
    ptr: *mut TimePage,
}

impl TimePageMem {
    /// A new page with the given clock offsets.
    pub fn new(realtime_offset_ns: u64, monotonic_offset_ns: u64) -> io::Result<Self> {
        // SAFETY: memfd_create with a static name.
        let fd = unsafe { libc::memfd_create(c"thermocline-time".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizing and mapping our own memfd.
        let ptr = unsafe {
            if libc::ftruncate(fd.as_raw_fd(), TIME_PAGE_BYTES as i64) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::mmap(
                std::ptr::null_mut(),
                TIME_PAGE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let page = TimePageMem { fd, ptr: ptr as *mut TimePage };
        // SAFETY: the mapping is ours and large enough.
        unsafe {
            page.ptr.write_volatile(TimePage {
                version: ABI_VERSION,
                now_ns: 0,
                realtime_offset_ns,
                monotonic_offset_ns,
            })
        };
        Ok(page)
    }

    /// Publish the host's current simulated time.
    pub fn set_now(&self, now_ns: u64) {
        // SAFETY: the mapping lives as long as `self`.
        unsafe { std::ptr::addr_of_mut!((*self.ptr).now_ns).write_volatile(now_ns) };
    }

    /// The descriptor handed to processes (through `SECCOMP_IOCTL_NOTIF_ADDFD`).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl Drop for TimePageMem {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, TIME_PAGE_BYTES) };
    }
}

/// What a task is doing, from the supervisor's point of view.
#[derive(Debug)]
pub enum TaskState {
    /// Running native code (its next notification or exit is awaited).
    Running,
    /// Stopped in a notified syscall that has not been looked at yet.
    Parked(Notif),
    /// Stopped in a syscall that cannot complete yet (a sleep, a receive, a wait).
    Blocked(Notif, BlockKind),
    /// In `vfork` (or `clone(CLONE_VFORK)`): the kernel holds it until its child execs or exits.
    Vforked,
    /// Gone.
    Exited,
}

/// What a blocked task waits for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Only its timer.
    Timer,
    /// Something happening on the host (a packet, another task running, a process exiting), or
    /// its timer if it has one. `since`: the host's progress count when it blocked.
    Io {
        /// [`Host::progress`] when it blocked.
        since: u64,
    },
    /// A `futex` wait: only a wake of its futex word, its timer, a signal, or the exit of a thread
    /// of its process that changed the word ends it (see [`crate::futex`]).
    Futex,
    /// Not a blocked call: the task waits off its unapplied syscall latency (see
    /// [`crate::latency`]) before its call is handled. Only its timer ends it, and the call is
    /// then handled as if just made.
    Latency,
}

/// One entry of a process's descriptor table that the supervisor emulates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FdEntry {
    /// Index into the host's objects.
    pub obj: usize,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// An emulated object behind one or more descriptors.
pub enum Obj {
    /// `/dev/urandom` or `/dev/random`: reads give the host's seeded stream.
    Random,
    /// A UDP socket of the host's network ([`Host::net`]).
    Udp(UdpId),
    /// A TCP socket of the host's network (listening, or a connection of its stack).
    Tcp(TcpId),
    /// An epoll instance: interest list by descriptor number of the owning process.
    Epoll(BTreeMap<i32, EpollInterest>),
    /// A `timerfd` timer.
    TimerFd(Box<crate::timerfd::TimerFd>),
    /// A `NETLINK_ROUTE` socket.
    Netlink(Box<crate::netlink::NetlinkSocket>),
    /// A packet socket (`AF_PACKET`), fed copies of the packets crossing the host's interfaces.
    Packet(Box<crate::packet::PacketSocket>),
}

/// One descriptor registered with an emulated epoll instance.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EpollInterest {
    /// `EPOLLIN`, `EPOLLOUT`, … and the `EPOLLONESHOT` / `EPOLLET` flags.
    pub events: u32,
    /// The caller's cookie, returned with each event.
    pub data: u64,
    /// Edge-triggered: the descriptor's readiness-change count when it was last reported (`None`
    /// since `EPOLL_CTL_ADD`/`MOD`, so a descriptor ready then is reported once).
    pub reported: Option<u64>,
}

/// An object and the number of descriptors (over all processes) that refer to it.
pub struct ObjSlot {
    /// The object.
    pub obj: Obj,
    /// Descriptors referring to it.
    pub refs: u32,
    /// `O_NONBLOCK` of its open file description.
    pub nonblock: bool,
}

/// A descriptor table of emulated descriptors, shared by the threads of a process
/// (`CLONE_FILES`) and copied by `fork`.
#[derive(Default)]
pub struct FdTable {
    /// Emulated descriptors by number.
    pub fds: BTreeMap<i32, FdEntry>,
    /// Live tasks using this table; at zero its descriptors are released.
    pub users: u32,
}

/// One task (a thread: a process has one or more) of a host.
pub struct Task {
    /// Host-local id, in order of appearance: breaks ties in the scheduling order.
    pub vid: u32,
    /// Kernel thread id (the pid for a process's first thread).
    pub pid: i32,
    /// Kernel thread-group id: the pid of its process. Threads of one process share memory,
    /// futex words and the descriptor table.
    pub tgid: i32,
    /// A thread pidfd (`PIDFD_THREAD`), readable when this thread exits.
    pub pidfd: OwnedFd,
    /// For a process the launcher started: a process pidfd, to collect its exit status once the
    /// whole thread group has gone.
    pub group_pidfd: Option<OwnedFd>,
    /// Index of the seccomp listener of its process tree.
    pub tree: usize,
    /// Index of the spec process it descends from.
    pub proc: usize,
    /// The task that forked it, if known.
    pub parent: Option<u32>,
    /// The executable it runs (file name), for statistics.
    pub binary: String,
    /// State.
    pub state: TaskState,
    /// Index of its descriptor table in [`Host::fd_tables`].
    pub fdt: usize,
    /// Index of its process's random stream in [`Host::randoms`] (shared by the process's
    /// threads; a new process gets the next when it is registered, in creation order).
    pub random: usize,
    /// It forked or created a thread since it last stopped: look for new tasks at its next stop.
    pub forked: bool,
    /// It called execve since it last stopped: refresh binary, descriptors and AT_RANDOM.
    pub exec_pending: bool,
    /// Its blocked syscall's timer fired.
    pub timed_out: bool,
    /// Its pending notification was handled before and blocked (do not count it again).
    pub retry: bool,
    /// A signal is pending: its blocked syscall is to be interrupted.
    pub interrupted: bool,
    /// The period of its `ITIMER_REAL` timer (`alarm`, `setitimer`; 0: one shot), which
    /// [`Host::timers`] holds as [`TimerKey::Alarm`](crate::timers::TimerKey::Alarm).
    pub alarm_interval: u64,
    /// Whether this task is the one the launcher started (the supervisor's own child).
    pub is_root: bool,
    /// It called vfork and its child has not been registered yet.
    pub vfork_pending: bool,
    /// Notified syscalls handled.
    pub syscalls: u64,
    /// Its `futex` wait was ended by a wake (answered with 0 when it is retried).
    pub futex_woken: bool,
    /// [`Host::epoch`] when it last became runnable: runnable tasks run oldest first (ties by
    /// `vid`), a deterministic round robin.
    pub ready_since: u64,
    /// Its CPU time (ns, from `/proc`) when the supervisor first found it running without a stop;
    /// reset at each stop (see preemption in `engine.rs`).
    pub cpu_mark: Option<u64>,
    /// A preemption signal was sent and it has not stopped since.
    pub preempted: bool,
    /// The shim is loaded in its current image (it said hello): it handles the preemption
    /// signal.
    pub shim: bool,
    /// Bytes its blocked syscall has already transferred (a blocking TCP send or `MSG_WAITALL`
    /// receive that waits for the rest); 0 when it is not blocked.
    pub partial: usize,
    /// Simulated CPU time of its syscalls answered at once, not yet applied (see
    /// [`crate::latency`]).
    pub latency: crate::latency::Latency,
    /// Its entry in the registry [`crate::teardown::kill_managed_processes`] kills; dropped when
    /// it exits.
    pub registration: Option<crate::teardown::Registration>,
    /// What the kernel does with its memory when it exits (see [`crate::threads::wake_at_exit`]).
    pub exit_words: ExitWords,
}

/// The futex words a thread's exit releases: its `CLONE_CHILD_CLEARTID` word, which the kernel
/// sets to 0 and wakes one waiter of, and its robust list, whose mutexes the kernel marks
/// `FUTEX_OWNER_DIED`, waking one waiter of each.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitWords {
    /// The `CLONE_CHILD_CLEARTID` address given to the `clone` that created it; `None` for a
    /// process's first thread, whose address (`set_tid_address`, not notified) is not known.
    pub clear_tid: Option<u64>,
    /// Its id in its PID namespace: what a first thread's cleared word held.
    pub ns_tid: i32,
    /// The head of its robust list (`set_robust_list`), 0 if none.
    pub robust_list: u64,
}

/// Per spec process: status and counters.
pub struct ProcState {
    /// The spec.
    pub spec: ProcessSpec,
    /// Resolved executable path.
    pub exe: PathBuf,
    /// File stem of its stdout/stderr files.
    pub stem: String,
    /// How it ended (or `NotStarted` / `Running`).
    pub status: ExitStatus,
    /// Notified syscalls handled for it and its descendants.
    pub syscalls: u64,
    /// UDP bytes sent and received by it and its descendants.
    pub udp_sent: u64,
    /// UDP bytes received.
    pub udp_recv: u64,
    /// TCP payload bytes sent (queued to the stack) by it and its descendants.
    pub tcp_sent: u64,
    /// TCP payload bytes received.
    pub tcp_recv: u64,
    /// Peak resident memory of the process or of any descendant it waited for, in bytes, from
    /// the kernel when the supervisor reaped it (0 if it never ended). A measurement of this
    /// machine, not of the simulation: it is not part of the digest.
    pub max_rss: u64,
    /// A command of the scenario timeline (`exec`), not a `[[processes]]` entry: how it ends is
    /// an outcome in `scenario_events`, not checked against an expected exit.
    pub scenario: bool,
    /// The timeline signalled or killed its running instance since it last started: how that
    /// instance ends is the timeline's doing, not checked against `expected_exit`.
    pub touched: bool,
    /// The timeline paused it (and its descendants): their tasks are not stepped until resumed.
    pub paused: bool,
    /// How many times it has started.
    pub instances: u32,
}

impl ProcState {
    /// Process `spec` (run as `exe`, its outputs `<stem>.stdout` and `.stderr`), not started yet.
    pub fn new(spec: ProcessSpec, exe: PathBuf, stem: String) -> Self {
        ProcState {
            spec,
            exe,
            stem,
            status: ExitStatus::NotStarted,
            syscalls: 0,
            udp_sent: 0,
            udp_recv: 0,
            max_rss: 0,
            tcp_sent: 0,
            tcp_recv: 0,
            scenario: false,
            touched: false,
            paused: false,
            instances: 0,
        }
    }
}

/// One simulated host of this shard.
pub struct Host {
    /// Global host id.
    pub id: u32,
    /// Host name.
    pub name: String,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// Working directory of its processes.
    pub dir: PathBuf,
    /// Its time page.
    pub page: TimePageMem,
    /// Simulated time it has reached.
    pub now: u64,
    /// Sequence number of the next event it produces.
    pub seq: u64,
    /// The family of the streams behind getrandom, /dev/urandom and `AT_RANDOM`.
    pub random_family: StreamFamily,
    /// One stream of that family per process of the host, in order of appearance (see
    /// [`Task::random`]): each process draws from its own, so the order in which processes that
    /// run at the same instant draw cannot change what any of them gets.
    pub randoms: Vec<StreamRng>,
    /// The simulated times of the files its programs changed (see [`crate::stamps`]).
    pub stamps: crate::stamps::Stamps,
    /// Seeded stream for network decisions (latency, loss).
    pub net_rng: StreamRng,
    /// Its processes.
    pub procs: Vec<ProcState>,
    /// Listeners, one per launched process tree.
    pub trees: Vec<Listener>,
    /// Tasks by vid.
    pub tasks: BTreeMap<u32, Task>,
    /// pid → vid.
    pub pid_vid: HashMap<i32, u32>,
    /// Next vid.
    pub next_vid: u32,
    /// Per tree: the descriptor table of the last task that forked, for children whose parent
    /// has already gone when they are first seen.
    pub fork_fds: HashMap<usize, BTreeMap<i32, FdEntry>>,
    /// Descriptor tables, referred to by [`Task::fdt`]; `None` once unused.
    pub fd_tables: Vec<Option<FdTable>>,
    /// Futex waiters of this host's tasks.
    pub futexes: crate::futex::FutexTable,
    /// Every timer of the host: blocked calls' timeouts, alarms, the stack's poll, timerfds.
    pub(crate) timers: crate::timers::Timers,
    /// Counts scheduling steps: the age of runnable tasks ([`Task::ready_since`]).
    pub epoch: u64,
    /// Emulated objects.
    pub objs: Vec<Option<ObjSlot>>,
    /// (process, syscall, detail) already logged as unsupported.
    pub logged: HashSet<(usize, i64, String)>,
    /// Per (binary, syscall number): calls seen.
    pub stats: BTreeMap<(String, i64), u64>,
    /// With `--syscall-stats`: how readiness and blocked calls ended, and why (see
    /// [`crate::waits`]).
    pub waits: Option<crate::waits::WaitStats>,
    /// Its sockets, ports and TCP/IP stack: descriptors of sockets are handles into it.
    pub net: HostNet,
    /// The upload link's queue.
    pub uplink: FifoLink,
    /// The last arrival on each path from this host: its packets never overtake each other.
    pub in_order: thermocline_net::InOrder,
    /// Upload bandwidth, bits/s (0: unlimited).
    pub up_bps: u64,
    /// Download bandwidth, bits/s (0: unlimited).
    pub down_bps: u64,
    /// The download link's queue.
    pub downlink: FifoLink,
    /// Count of things that happened (a task resumed or exited, a packet arrived): blocked tasks
    /// are retried when it has moved since they blocked.
    pub progress: u64,
    /// A signal may have been sent to a blocked task since they were last checked (another task
    /// ran or exited, a timer fired): check `/proc` for pending signals when the host settles.
    pub signal_hint: bool,
    /// A process of the host has asked for signal-driven I/O on some descriptor (`O_ASYNC`,
    /// an owner or a signal for it: see [`crate::emulate::sets_async_io`]). Until then a native
    /// read or write cannot signal anyone (`SIGIO`), so it needs no look at pending signals.
    pub async_io: bool,
    /// The `CLONE_CHILD_CLEARTID` address of the last thread-creating `clone` of the host (thread
    /// group, address): the next thread of that group to register takes it. Only one task runs at
    /// a time and a newborn is registered before anything else is scheduled, so it is its own.
    pub pending_clear_tid: Option<(i32, u64)>,
    /// Edges of descriptors the supervisor does not emulate (pipes, `AF_UNIX` sockets, eventfds):
    /// what an edge-triggered epoll sees as a change of those.
    pub native_edges: NativeEdges,
    /// Its card's receive coalescing: packets held until the window ends (see `nic::hold`).
    pub rx: crate::coalesce::RxCoalescer,
    /// Its packet capture, with `--pcap`.
    pub pcap: Option<PcapWriter>,
    /// Its disk quota and what it uses of it.
    pub disk: crate::disk::Disk,
    /// Its PID and mount namespaces, created when its first program starts (`None` before, or
    /// where namespaces cannot be had).
    pub ns: Option<crate::pidns::HostNamespace>,
    /// Where gossip messages from boundary identities end on its streams, and the arrivals
    /// they gave.
    pub marks: crate::marks::Marks,
    /// The lines its processes wrote to their stdout and stderr.
    pub logs: crate::logs::Logs,
    /// Its share of the scenario timeline.
    pub runbook: crate::ops::Runbook,
    /// Processes that ended since the runbook was last told.
    pub exits: Vec<usize>,
    /// The traffic sources it is the address of.
    pub sources: Vec<crate::sources::Source>,
    /// Its mirror interfaces (`[[mirrors]]`), numbered from [`crate::packet::FIRST_MIRROR_INDEX`].
    pub mirrors: Vec<crate::packet::MirrorRule>,
    /// How many packet sockets it has open: packets are copied only while there are some.
    pub packet_sockets: usize,
    /// Its queues for the scenario's path limits.
    pub shaping: thermocline_net::Shaping,
}

/// Who a new task is: what [`Host::add_task`] needs beyond the defaults of a task that has just
/// started running.
pub struct NewTask {
    /// Kernel thread id.
    pub pid: i32,
    /// Kernel thread-group id.
    pub tgid: i32,
    /// Its thread pidfd.
    pub pidfd: OwnedFd,
    /// A process pidfd, for a process the launcher started.
    pub group_pidfd: Option<OwnedFd>,
    /// Index of the seccomp listener of its process tree.
    pub tree: usize,
    /// Index of the spec process it descends from.
    pub proc: usize,
    /// The task that forked it, if known.
    pub parent: Option<u32>,
    /// The executable it runs.
    pub binary: String,
    /// Its descriptor table (already counting this task as a user).
    pub fdt: usize,
    /// Whether the launcher started it.
    pub is_root: bool,
    /// Whether the shim is loaded in its image (a thread of a process that has it).
    pub shim: bool,
}

impl Host {
    /// Add a running task, giving it the next host-local id (its scheduling order), which is
    /// returned.
    pub fn add_task(&mut self, t: NewTask) -> u32 {
        let registration = crate::teardown::register(t.pid, t.pidfd.as_fd());
        let random = match self.group_member(t.tgid) {
            Some(v) => self.tasks[&v].random,
            None => {
                let index = u32::try_from(self.randoms.len() + 1).unwrap_or(u32::MAX);
                self.randoms.push(self.random_family.substream(self.id, index));
                self.randoms.len() - 1
            }
        };
        let vid = self.next_vid;
        self.next_vid += 1;
        self.pid_vid.insert(t.pid, vid);
        self.tasks.insert(
            vid,
            Task {
                vid,
                pid: t.pid,
                tgid: t.tgid,
                pidfd: t.pidfd,
                group_pidfd: t.group_pidfd,
                tree: t.tree,
                proc: t.proc,
                parent: t.parent,
                binary: t.binary,
                state: TaskState::Running,
                fdt: t.fdt,
                random,
                forked: false,
                exec_pending: false,
                timed_out: false,
                retry: false,
                interrupted: false,
                alarm_interval: 0,
                is_root: t.is_root,
                vfork_pending: false,
                syscalls: 0,
                futex_woken: false,
                ready_since: self.epoch,
                cpu_mark: None,
                preempted: false,
                shim: t.shim,
                partial: 0,
                latency: Default::default(),
                registration,
                exit_words: ExitWords::default(),
            },
        );
        vid
    }

    /// A new descriptor table holding `fds` (whose objects the caller has retained), with one
    /// user.
    pub fn new_fd_table(&mut self, fds: BTreeMap<i32, FdEntry>) -> usize {
        let table = Some(FdTable { fds, users: 1 });
        if let Some(i) = self.fd_tables.iter().position(Option::is_none) {
            self.fd_tables[i] = table;
            i
        } else {
            self.fd_tables.push(table);
            self.fd_tables.len() - 1
        }
    }

    /// A copy of table `fdt` for a new process (`fork`): every object gains a reference.
    pub fn copy_fd_table(&mut self, fdt: usize) -> usize {
        let fds = self.fd_tables.get(fdt).and_then(Option::as_ref).map(|t| t.fds.clone()).unwrap_or_default();
        let objs: Vec<usize> = fds.values().map(|e| e.obj).collect();
        for o in objs {
            self.retain(o);
        }
        self.new_fd_table(fds)
    }

    /// One more task (a new thread) uses table `fdt`.
    pub fn share_fd_table(&mut self, fdt: usize) -> usize {
        if let Some(Some(t)) = self.fd_tables.get_mut(fdt) {
            t.users += 1;
        }
        fdt
    }

    /// A task using table `fdt` has gone; the last one releases its descriptors.
    pub fn leave_fd_table(&mut self, fdt: usize) {
        let last = match self.fd_tables.get_mut(fdt) {
            Some(Some(t)) => {
                t.users = t.users.saturating_sub(1);
                t.users == 0
            }
            _ => false,
        };
        if last && let Some(Some(t)) = self.fd_tables.get_mut(fdt).map(Option::take) {
            for e in t.fds.values() {
                self.release(e.obj);
            }
        }
    }

    /// The emulated descriptors of task `vid` (of its process).
    pub fn fds(&self, vid: u32) -> &BTreeMap<i32, FdEntry> {
        static EMPTY: BTreeMap<i32, FdEntry> = BTreeMap::new();
        self.tasks.get(&vid).and_then(|t| self.fd_tables.get(t.fdt)).and_then(Option::as_ref).map_or(&EMPTY, |t| &t.fds)
    }

    /// The emulated descriptors of task `vid`, to change (`None` if it has no table).
    pub fn fds_mut(&mut self, vid: u32) -> Option<&mut BTreeMap<i32, FdEntry>> {
        let fdt = self.tasks.get(&vid)?.fdt;
        self.fd_tables.get_mut(fdt)?.as_mut().map(|t| &mut t.fds)
    }

    /// The random stream of task `vid`'s process.
    pub fn random_of(&mut self, vid: u32) -> Option<&mut StreamRng> {
        let i = self.tasks.get(&vid)?.random;
        self.randoms.get_mut(i)
    }

    /// The lowest-`vid` live task of thread group `tgid`, if any.
    pub fn group_member(&self, tgid: i32) -> Option<u32> {
        self.tasks.values().find(|t| t.tgid == tgid && !matches!(t.state, TaskState::Exited)).map(|t| t.vid)
    }

    /// The live emulated object `obj`, if there is one: what each kind's accessor matches on.
    pub fn obj_mut(&mut self, obj: usize) -> Option<&mut Obj> {
        self.objs.get_mut(obj)?.as_mut().map(|s| &mut s.obj)
    }

    /// Add an object with one reference.
    pub fn add_obj(&mut self, obj: Obj, nonblock: bool) -> usize {
        let slot = ObjSlot { obj, refs: 1, nonblock };
        if let Some(i) = self.objs.iter().position(Option::is_none) {
            self.objs[i] = Some(slot);
            i
        } else {
            self.objs.push(Some(slot));
            self.objs.len() - 1
        }
    }

    /// One more descriptor refers to object `i`.
    pub fn retain(&mut self, i: usize) {
        if let Some(Some(s)) = self.objs.get_mut(i) {
            s.refs += 1;
        }
    }

    /// One descriptor fewer refers to object `i`; the last one closes it.
    pub fn release(&mut self, i: usize) {
        let last = match self.objs.get_mut(i) {
            Some(Some(s)) => {
                s.refs = s.refs.saturating_sub(1);
                s.refs == 0
            }
            _ => false,
        };
        if last {
            match self.objs.get(i) {
                Some(Some(ObjSlot { obj: Obj::Udp(id), .. })) => self.net.udp_close(*id),
                Some(Some(ObjSlot { obj: Obj::Tcp(id), .. })) => self.net.tcp_close(*id, self.now),
                Some(Some(ObjSlot { obj: Obj::TimerFd(_), .. })) => self.timers.cancel(TimerKey::TimerFd(i)),
                Some(Some(ObjSlot { obj: Obj::Packet(_), .. })) => self.packet_sockets -= 1,
                _ => {}
            }
            self.objs[i] = None;
        }
    }

    /// The simulated latency of a syscall of task `vid`'s process (its `syscall_latency`), ns.
    pub(crate) fn syscall_latency(&self, vid: u32) -> u64 {
        self.tasks
            .get(&vid)
            .and_then(|t| self.procs.get(t.proc))
            .and_then(|p| p.spec.syscall_latency)
            .map_or(crate::latency::DEFAULT_SYSCALL_LATENCY_NS, |d| d.as_nanos())
    }

    /// The next sequence number of an event this host produces.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Log an unsupported syscall of task `vid` once per (process, syscall, detail), with the
    /// error it gets.
    pub(crate) fn unsupported(&mut self, vid: u32, nr: i64, what: &str, errno: i32) {
        let Some(t) = self.tasks.get(&vid) else { return };
        if self.logged.insert((t.proc, nr, what.to_string())) {
            let name = crate::sysnames::name(nr).unwrap_or("unknown");
            let error = match errno {
                libc::EAGAIN => "EAGAIN",
                libc::EAFNOSUPPORT => "EAFNOSUPPORT",
                libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
                libc::ENOPROTOOPT => "ENOPROTOOPT",
                libc::EOPNOTSUPP => "EOPNOTSUPP",
                _ => "ENOSYS",
            };
            eprintln!(
                "thermocline: host {} process {} (pid {}): unsupported syscall {name}({nr}){what} → {error}",
                self.name, t.binary, t.pid
            );
        }
    }
}

/// Counts of the events that give descriptors the supervisor does not emulate a new edge for an
/// edge-triggered epoll, split as Linux's wake-ups are: a write wakes the readers of a pipe or
/// socket (every write, since Linux 5.14), a read the writers (of a pipe, only a read of a full
/// pipe: `pipe_read`'s `was_full`), a close or an exit both. Writes never give a writer a new
/// `EPOLLOUT` edge.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct NativeEdges {
    /// Events that wake readers: native writes, sends and connects, closes, exits.
    pub readable: u64,
    /// Events that wake writers: native reads that make room, closes, exits.
    pub writable: u64,
}

impl NativeEdges {
    /// A close or an exit: readers and writers may see a hang-up.
    pub fn both(&mut self) {
        self.readable += 1;
        self.writable += 1;
    }

    /// The count an epoll interest in `events` (`EPOLLIN`, `EPOLLOUT`, …) watches.
    pub fn watched(&self, events: u32) -> u64 {
        let reads = (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32;
        let r = if events & reads != 0 { self.readable } else { 0 };
        let w = if events & libc::EPOLLOUT as u32 != 0 { self.writable } else { 0 };
        r + w
    }
}
