//! The processes backend: one OS process per shard on one machine, each connected to the
//! coordinating parent (the hub) by a Unix stream socket.
//!
//! Per window, every shard sends the hub one frame with its next time and its encoded batches;
//! when the hub has all of them it sends each shard the global minimum and the batches addressed
//! to it. The hub routes bytes without decoding them. It also watches its children: a shard that
//! reports an error, panics, closes its socket or dies ends the run at once — the hub tells the
//! others to stop, kills what is left, and returns an error naming the shard and the cause
//! (its message, exit status or signal). Children die with the hub (`PR_SET_PDEATHSIG`) and
//! exit when their socket closes, so nothing is left behind either way.
//!
//! A shard that stops making progress without dying (`kill -STOP`, a deadlock, a hung system
//! call) ends the run too. A window may legitimately take many wall seconds (a direct host
//! running a heavy program), so silence between rounds proves nothing; instead every shard
//! process runs a heartbeat thread that sends a HEARTBEAT frame every `min(1 s, stall / 4)`.
//! A stopped process stops all its threads, so its heartbeats stop. The hub waits with a timeout:
//! a shard that has sent no frame at all for the stall limit ([`DEFAULT_STALL_TIMEOUT`] unless
//! the caller says otherwise) is reported as stalled, with what it was doing (building its
//! engine, the window it was in, or finishing its report), and the run ends as for any other
//! failure. The hub's writes time out after the stall limit as well, so a shard that stops
//! reading cannot block the hub either.
//!
//! Frame layout (big-endian): `u32 length` of the rest, `u8 tag`, then by tag:
//! - child → hub: `ROUND`: `next u64, events u64, count u32, count × (dst u32, len u32, bytes)`;
//!   `REPORT`: report bytes; `FAILED`: `message string`; `HEARTBEAT`: `phase u8` (0 building
//!   its engine, 1 running windows, 2 finishing its report).
//! - hub → child: `START`: `shard u32, shards u32, heartbeat_ns u64, config bytes`; `RESULT`:
//!   `next u64, count u32, count × (src u32, len u32, bytes)`; `ABORT`: `shard u32, cause string`.

use crate::binary::{DecodeError, Reader, Writer};
use crate::engine::Engine;
use crate::error::{BusError, EngineError, panic_message};
use crate::exchange::{Exchange, Round};
use crate::ids::ShardId;
use crate::report::{ShardReport, decode_gathered};
use crate::time::{SimDuration, SimTime};
use crate::window::{NoProgress, ProgressSink, WindowConfig, run_shard};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable through which a shard process learns its socket's descriptor.
pub const HUB_FD_ENV: &str = "THERMOCLINE_HUB_FD";

const TAG_ROUND: u8 = 1;
const TAG_REPORT: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_HEARTBEAT: u8 = 4;
const TAG_START: u8 = 10;
const TAG_RESULT: u8 = 11;
const TAG_ABORT: u8 = 12;

/// Largest frame accepted (guards allocations against a corrupt length).
const MAX_FRAME: usize = 1 << 31;

/// How long the hub waits without any frame or heartbeat from a shard before it ends the run
/// with that shard named as stalled, unless [`run_processes`] is given another limit. Generous,
/// because a loaded machine can delay a heartbeat thread; a run that needs a quicker verdict
/// sets a shorter limit.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest time between two heartbeats of a shard process.
const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The heartbeat interval for a stall limit: at least four heartbeats fit in the limit, so one
/// late heartbeat is not taken for a stall.
fn heartbeat_interval(stall: Duration) -> Duration {
    (stall / 4).clamp(Duration::from_millis(1), MAX_HEARTBEAT_INTERVAL)
}

/// What a shard process is doing, as its heartbeats tell the hub.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Started, building its engine.
    Building = 0,
    /// Running windows.
    Running = 1,
    /// Past its last window: finishing the engine and sending its report.
    Finishing = 2,
}

impl Phase {
    /// The phase a heartbeat's byte names, if any.
    fn from_u8(b: u8) -> Option<Phase> {
        [Phase::Building, Phase::Running, Phase::Finishing].into_iter().find(|p| *p as u8 == b)
    }
}

fn write_frame(stream: &mut impl Write, buf: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Writer)) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    let mut w = Writer::new(buf);
    w.u8(tag);
    body(&mut w);
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte frame exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    stream.write_all(buf)
}

/// Read one frame into `buf`; `Ok(false)` on a clean end of stream before a frame.
fn read_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    // Grow with the bytes that actually arrive, not with what the length claims.
    buf.clear();
    let got = stream.take(len as u64).read_to_end(buf)?;
    if got != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("frame ended after {got} of {len} bytes")));
    }
    Ok(true)
}

/// Read a frame's tag and fail unless it is `tag` (`what` names the frame expected).
fn expect_tag(r: &mut Reader, tag: u8, what: &str) -> Result<(), DecodeError> {
    let found = r.u8("frame tag")?;
    if found != tag {
        return Err(DecodeError::Invalid {
            what: "frame tag",
            offset: 0,
            detail: format!("expected {what}, got tag {found}"),
        });
    }
    Ok(())
}

/// A decoded round frame from a child.
struct RoundFrame {
    next: u64,
    events: u64,
    batches: Vec<(u32, Vec<u8>)>,
}

enum ChildFrame {
    Round(RoundFrame),
    Report(Vec<u8>),
    Failed(String),
    Heartbeat(Phase),
}

fn decode_child_frame(buf: &[u8], shards: u32) -> Result<ChildFrame, DecodeError> {
    let mut r = Reader::new(buf);
    let tag = r.u8("frame tag")?;
    let frame = match tag {
        TAG_ROUND => {
            let next = r.u64("next time")?;
            let events = r.u64("events")?;
            let n = r.count("batch count", 8)?;
            let mut batches = Vec::with_capacity(n);
            for _ in 0..n {
                let at = r.offset();
                let dst = r.u32("batch destination")?;
                if dst >= shards {
                    return Err(DecodeError::Invalid {
                        what: "batch destination",
                        offset: at,
                        detail: format!("shard {dst} of {shards}"),
                    });
                }
                batches.push((dst, r.len_bytes("batch")?.to_vec()));
            }
            ChildFrame::Round(RoundFrame { next, events, batches })
        }
        TAG_REPORT => ChildFrame::Report(r.take(r.remaining(), "report")?.to_vec()),
        TAG_FAILED => ChildFrame::Failed(r.string("failure message")?),
        TAG_HEARTBEAT => {
            let at = r.offset();
            let b = r.u8("heartbeat phase")?;
            let phase = Phase::from_u8(b).ok_or_else(|| DecodeError::Invalid {
                what: "heartbeat phase",
                offset: at,
                detail: format!("unknown phase {b}"),
            })?;
            ChildFrame::Heartbeat(phase)
        }
        other => {
            return Err(DecodeError::Invalid {
                what: "frame tag",
                offset: 0,
                detail: format!("unknown child frame tag {other}"),
            });
        }
    };
    r.finish("child frame")?;
    Ok(frame)
}

/// Describe how a child process ended.
fn describe_exit(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGBUS => " (SIGBUS)",
            _ => "",
        };
        format!("was killed by signal {sig}{name}")
    } else {
        format!("exited with status {}", status.code().unwrap_or(-1))
    }
}

/// A launched shard process and the hub's end of its socket.
struct ShardProcess {
    child: Child,
    stream: UnixStream,
}

/// Wait up to `grace` for a child to end by itself, then kill it; return its status text.
fn reap(child: &mut Child, grace: Duration) -> String {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return describe_exit(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                return match child.wait() {
                    Ok(status) => format!("did not exit and {}", describe_exit(status)),
                    Err(e) => format!("could not be reaped: {e}"),
                };
            }
            Err(e) => return format!("could not be waited for: {e}"),
        }
    }
}

/// What a shard's reader thread hands the hub: a frame, the end of the stream, or a read error.
type Inbound = (u32, io::Result<Option<Vec<u8>>>);

/// How long the hub tries to hand each shard an ABORT frame once the run has failed.
const ABORT_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// Launch `shards` shard processes with `command(shard)` (which must run [`serve_shard`]), hand
/// each `config` in its start frame, and coordinate the run. Returns every shard's report, or an
/// error naming the first shard that failed and why.
///
/// `stall` is the wall time a shard may go without sending any frame or heartbeat before the run
/// ends with it named as stalled ([`DEFAULT_STALL_TIMEOUT`] is the usual choice); it must be
/// positive. Shards send heartbeats while busy, so a long window is not a stall.
pub fn run_processes(
    shards: u32,
    config: &[u8],
    command: impl Fn(ShardId) -> Command,
    stall: Duration,
    progress: &dyn ProgressSink,
) -> Result<Vec<ShardReport>, BusError> {
    assert!(shards > 0, "a run needs at least one shard");
    assert!(!stall.is_zero(), "the stall limit must be positive");
    let transport = |detail: String| BusError::Transport { shard: ShardId(0), detail };
    let mut procs: Vec<ShardProcess> = Vec::with_capacity(shards as usize);
    let (tx, rx) = mpsc::channel::<Inbound>();
    let mut readers = Vec::new();
    let mut frame_buf = Vec::new();
    let result = (|| {
        for s in 0..shards {
            let (p, reader) = launch_shard(ShardId(s), command(ShardId(s)), stall, tx.clone())?;
            procs.push(p);
            readers.push(reader);
        }
        let heartbeat_ns = u64::try_from(heartbeat_interval(stall).as_nanos()).unwrap_or(u64::MAX);
        for (s, p) in procs.iter_mut().enumerate() {
            write_frame(&mut p.stream, &mut frame_buf, TAG_START, |w| {
                w.u32(s as u32);
                w.u32(shards);
                w.u64(heartbeat_ns);
                w.bytes(config);
            })
            .map_err(|e| transport(format!("starting shard {s}: {e}")))?;
        }
        coordinate(shards, &mut procs, &rx, stall, progress)
    })();
    let result = match result {
        Ok(reports) => {
            // Every shard must also exit cleanly; reap them all, report the first that did not.
            let statuses: Vec<String> = procs.iter_mut().map(|p| reap(&mut p.child, Duration::from_secs(10))).collect();
            match statuses.iter().position(|st| !st.ends_with("status 0")) {
                None => Ok(reports),
                Some(s) => Err(BusError::ShardFailed {
                    shard: ShardId(s as u32),
                    cause: format!("process {} after reporting", statuses[s]),
                }),
            }
        }
        Err(e) => {
            abort_all(&mut procs, &e, &mut frame_buf);
            Err(e)
        }
    };
    drop(tx);
    for r in readers {
        let _ = r.join();
    }
    result
}

/// Start one shard process with `cmd`, connected by a fresh socket pair, and a thread that
/// forwards every frame it sends to `tx`. The hub's writes to it time out after `stall`.
fn launch_shard(
    shard: ShardId,
    mut cmd: Command,
    stall: Duration,
    tx: mpsc::Sender<Inbound>,
) -> Result<(ShardProcess, JoinHandle<()>), BusError> {
    let transport = |detail: String| BusError::Transport { shard: ShardId(0), detail };
    let (ours, theirs) = UnixStream::pair().map_err(|e| transport(format!("socketpair: {e}")))?;
    ours.set_write_timeout(Some(stall)).map_err(|e| transport(format!("socket write timeout: {e}")))?;
    let fd = theirs.as_raw_fd();
    // Let exactly this descriptor survive exec (std opens everything close-on-exec).
    // SAFETY: fcntl on a descriptor we own; no memory is touched.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(transport(format!("fcntl: {}", io::Error::last_os_error())));
    }
    cmd.env(HUB_FD_ENV, fd.to_string()).stdin(Stdio::null()).stdout(Stdio::null());
    let child = cmd.spawn().map_err(|e| transport(format!("launching {shard}: {e}")))?;
    drop(theirs);
    let mut reader = BufReader::with_capacity(1 << 16, ours.try_clone().map_err(|e| transport(e.to_string()))?);
    let s = shard.0;
    let thread = std::thread::spawn(move || {
        loop {
            let mut buf = Vec::new();
            let (frame, more) = match read_frame(&mut reader, &mut buf) {
                Ok(true) => (Ok(Some(buf)), true),
                Ok(false) => (Ok(None), false),
                Err(e) => (Err(e), false),
            };
            if tx.send((s, frame)).is_err() || !more {
                return;
            }
        }
    });
    Ok((ShardProcess { child, stream: ours }, thread))
}

/// After a failure: tell every shard to stop, close the sockets, give all one shared grace
/// period to exit, then kill (SIGKILL also ends a stopped process) and reap what is left.
fn abort_all(procs: &mut [ShardProcess], e: &BusError, buf: &mut Vec<u8>) {
    for p in procs.iter_mut() {
        // A stalled shard reads nothing: do not wait on it for long.
        let _ = p.stream.set_write_timeout(Some(ABORT_WRITE_TIMEOUT));
        let _ = write_frame(&mut p.stream, buf, TAG_ABORT, |w| {
            w.u32(e.shard().0);
            w.string(&e.cause_text());
        });
        let _ = p.stream.shutdown(std::net::Shutdown::Both);
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    for p in procs.iter_mut() {
        let _ = reap(&mut p.child, deadline.saturating_duration_since(Instant::now()));
    }
}

/// When the hub last heard from each shard, and what its last heartbeat said it was doing.
struct Liveness {
    stall: Duration,
    last_seen: Vec<Instant>,
    phase: Vec<Phase>,
}

/// How the hub's wait for the next frame ended.
enum Wait {
    /// A frame, the end of the stream or a read error from this shard.
    Frame(Inbound),
    /// This shard has sent nothing for the stall limit.
    Stalled(usize),
    /// Every reader thread has ended.
    Closed,
}

impl Liveness {
    /// Every shard counts as heard from now, when the hub starts waiting, in its first phase.
    fn new(shards: usize, stall: Duration) -> Self {
        Liveness { stall, last_seen: vec![Instant::now(); shards], phase: vec![Phase::Building; shards] }
    }

    /// Wait for the next frame from any shard, or until the longest-silent shard for which
    /// `watched` holds has been silent for the stall limit. Frames already queued come first, so
    /// a hub that was itself held up does not blame a shard whose frames are waiting for it.
    fn wait(&mut self, rx: &mpsc::Receiver<Inbound>, watched: impl Fn(usize) -> bool) -> Wait {
        let inbound = loop {
            match rx.try_recv() {
                Ok(inbound) => break inbound,
                Err(mpsc::TryRecvError::Disconnected) => return Wait::Closed,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let oldest = self.last_seen.iter().enumerate().filter(|(s, _)| watched(*s)).min_by_key(|(_, t)| **t);
            let mut timeout = self.stall;
            if let Some((s, seen)) = oldest {
                let silent = seen.elapsed();
                if silent >= self.stall {
                    return Wait::Stalled(s);
                }
                timeout = self.stall - silent;
            }
            match rx.recv_timeout(timeout) {
                Ok(inbound) => break inbound,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Wait::Closed,
            }
        };
        self.last_seen[inbound.0 as usize] = Instant::now();
        Wait::Frame(inbound)
    }
}

/// A wall duration as the spec writes durations (`60 s`, `1.5 s`).
fn show(d: Duration) -> String {
    SimDuration::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).to_string()
}

/// What a stalled shard was doing, from the number of exchanges the hub has completed (the
/// first only agrees on where window 0 starts; window `k` follows exchange `k + 1`), whether the
/// shard's frame for the current exchange had arrived, and its last heartbeat's phase.
fn stall_activity(exchanges: u64, sent_round: bool, phase: Phase) -> String {
    match (exchanges.checked_sub(1), sent_round) {
        (None, false) => "while building its engine".into(),
        (None, true) => "after building its engine, waiting for the other shards".into(),
        (Some(w), true) => format!("after window {w}, waiting for the other shards"),
        (Some(w), false) if phase == Phase::Finishing => format!("while finishing its report after {w} windows"),
        (Some(w), false) => format!("in window {w}"),
    }
}

/// The cause for a write to a shard that failed: a timed-out write means it stopped reading.
fn write_failure(what: &str, e: &io::Error, stall: Duration) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("stalled: {what}: it read nothing for {}", show(stall))
        }
        _ => format!("{what}: {e}"),
    }
}

/// The hub's main loop: collect one frame per shard, answer, repeat; then collect reports. A
/// shard that has not reported and sends nothing, not even a heartbeat, for `stall` ends it.
fn coordinate(
    shards: u32,
    procs: &mut [ShardProcess],
    rx: &mpsc::Receiver<Inbound>,
    stall: Duration,
    progress: &dyn ProgressSink,
) -> Result<Vec<ShardReport>, BusError> {
    let n = shards as usize;
    let mut rounds: Vec<Option<RoundFrame>> = (0..n).map(|_| None).collect();
    let mut reports: Vec<Option<Vec<u8>>> = vec![None; n];
    let (mut pending_rounds, mut pending_reports) = (n, n);
    let mut exchanges = 0u64;
    let mut live = Liveness::new(n, stall);
    let mut out = Vec::new();
    while pending_reports > 0 {
        let (s, frame) = match live.wait(rx, |i| reports[i].is_none()) {
            Wait::Frame(inbound) => inbound,
            Wait::Stalled(i) => {
                let doing = stall_activity(exchanges, rounds[i].is_some(), live.phase[i]);
                let cause = format!("stalled: no frame or heartbeat for {} ({doing})", show(stall));
                return Err(BusError::ShardFailed { shard: ShardId(i as u32), cause });
            }
            Wait::Closed => {
                return Err(BusError::Transport { shard: ShardId(0), detail: "all shard readers ended".into() });
            }
        };
        let shard = ShardId(s);
        let idx = s as usize;
        let died = |what: String, procs: &mut [ShardProcess]| {
            let status = reap(&mut procs[idx].child, Duration::from_secs(2));
            BusError::ShardFailed { shard, cause: format!("{what}; the process {status}") }
        };
        let bytes = match frame {
            Ok(Some(b)) => b,
            Ok(None) if reports[idx].is_some() => continue, // a shard exits after its report
            Ok(None) => return Err(died("connection closed before the run ended".into(), procs)),
            Err(e) => return Err(died(format!("connection failed: {e}"), procs)),
        };
        let frame = decode_child_frame(&bytes, shards)
            .map_err(|e| BusError::ShardFailed { shard, cause: format!("sent an undecodable frame: {e}") })?;
        match frame {
            ChildFrame::Heartbeat(phase) => live.phase[idx] = phase,
            ChildFrame::Failed(cause) => return Err(BusError::ShardFailed { shard, cause }),
            ChildFrame::Report(r) => {
                if reports[idx].replace(r).is_some() {
                    return Err(BusError::ShardFailed { shard, cause: "sent two reports".into() });
                }
                pending_reports -= 1;
            }
            ChildFrame::Round(r) => {
                if reports.iter().any(Option::is_some) || rounds[idx].is_some() {
                    return Err(BusError::ShardFailed { shard, cause: "sent a round frame out of turn".into() });
                }
                rounds[idx] = Some(r);
                pending_rounds -= 1;
                if pending_rounds == 0 {
                    pending_rounds = n;
                    exchanges += 1;
                    let frames: Vec<RoundFrame> =
                        rounds.iter_mut().map(|r| r.take().expect("all rounds present")).collect();
                    send_results(procs, &frames, &mut out, stall, progress)?;
                }
            }
        }
    }
    let reports: Vec<Vec<u8>> = reports.into_iter().map(|r| r.expect("all reports present")).collect();
    decode_gathered(&reports)
}

/// Complete an exchange: report progress, then send every shard the global minimum of the
/// round's next times and the batches addressed to it.
fn send_results(
    procs: &mut [ShardProcess],
    frames: &[RoundFrame],
    out: &mut Vec<u8>,
    stall: Duration,
    progress: &dyn ProgressSink,
) -> Result<(), BusError> {
    let next = frames.iter().map(|f| f.next).min().unwrap_or(u64::MAX);
    for f in frames {
        progress.window_done(ShardId(0), SimTime::from_nanos(next), f.events);
    }
    for (dst, p) in procs.iter_mut().enumerate() {
        let dst = dst as u32;
        write_frame(&mut p.stream, out, TAG_RESULT, |w| {
            w.u64(next);
            let inbound: Vec<(u32, &Vec<u8>)> = frames
                .iter()
                .enumerate()
                .flat_map(|(src, f)| f.batches.iter().filter(|(d, _)| *d == dst).map(move |(_, b)| (src as u32, b)))
                .collect();
            w.u32(inbound.len() as u32);
            for (src, b) in inbound {
                w.u32(src);
                w.len_bytes(b);
            }
        })
        .map_err(|e| BusError::ShardFailed {
            shard: ShardId(dst),
            cause: write_failure("could not be sent its batches", &e, stall),
        })?;
    }
    Ok(())
}

/// A shard process's heartbeat thread: it sends a HEARTBEAT frame with the shard's phase every
/// interval until stopped, so that the hub can tell a shard busy in a long window from a stalled
/// one. Frames go out whole under the writer's lock, so they never interleave with the main
/// loop's.
struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Start the thread: it writes through `writer` every `interval` the phase in `phase`.
    fn start(writer: Arc<Mutex<UnixStream>>, phase: Arc<AtomicU8>, interval: Duration) -> io::Result<Heartbeat> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
            let mut buf = Vec::new();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let phase = phase.load(Ordering::Relaxed);
                let mut stream = writer.lock().unwrap_or_else(|e| e.into_inner());
                if write_frame(&mut *stream, &mut buf, TAG_HEARTBEAT, |w| w.u8(phase)).is_err() {
                    return; // the hub is gone; the main loop finds out on its own
                }
            }
        })?;
        Ok(Heartbeat { stop: Some(stop), thread: Some(thread) })
    }

    /// Send no more heartbeats; returns once the thread has ended (after at most one write).
    fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A shard process's side of the hub connection.
struct ProcessExchange {
    /// The write half, shared with the heartbeat thread.
    writer: Arc<Mutex<UnixStream>>,
    reader: BufReader<UnixStream>,
    me: ShardId,
    shards: u32,
    buf: Vec<u8>,
    frame: Vec<u8>,
    /// Whether this shard's failure has been handed to the hub.
    reported: bool,
    /// What this shard is doing ([`Phase`] as a byte), for the heartbeats.
    phase: Arc<AtomicU8>,
    /// The end of the simulation: once the windows reach it, the shard is finishing.
    end: SimTime,
    heartbeat: Option<Heartbeat>,
}

impl ProcessExchange {
    fn transport(&self, detail: String) -> BusError {
        BusError::Transport { shard: self.me, detail }
    }

    /// Write one whole frame to the hub.
    fn send(&mut self, tag: u8, body: impl FnOnce(&mut Writer)) -> io::Result<()> {
        let mut stream = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_frame(&mut *stream, &mut self.buf, tag, body)
    }

    /// Record what this shard is doing, for the heartbeats.
    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Read the hub's answer; an ABORT frame becomes the failure it reports.
    fn read_answer(&mut self) -> Result<(), BusError> {
        match read_frame(&mut self.reader, &mut self.frame) {
            Ok(true) => {}
            Ok(false) => return Err(self.transport("the hub closed the connection".into())),
            Err(e) => return Err(self.transport(format!("reading from the hub: {e}"))),
        }
        if self.frame[0] == TAG_ABORT {
            let mut r = Reader::new(&self.frame[1..]);
            let shard = ShardId(r.u32("shard").unwrap_or(u32::MAX));
            let cause = r.string("cause").unwrap_or_else(|e| format!("(undecodable abort: {e})"));
            return Err(BusError::ShardFailed { shard, cause });
        }
        Ok(())
    }
}

impl Exchange for ProcessExchange {
    fn shard(&self) -> ShardId {
        self.me
    }

    fn shard_count(&self) -> u32 {
        self.shards
    }

    fn exchange(&mut self, round: &mut Round) -> Result<SimTime, BusError> {
        let outgoing = &round.outgoing;
        let count = outgoing.iter().filter(|b| !b.is_empty()).count() as u32;
        self.send(TAG_ROUND, |w| {
            w.u64(round.local_next.as_nanos());
            w.u64(round.events);
            w.u32(count);
            for (dst, b) in outgoing.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
                w.u32(dst as u32);
                w.len_bytes(b);
            }
        })
        .map_err(|e| self.transport(format!("writing to the hub: {e}")))?;
        for b in round.outgoing.iter_mut() {
            b.clear();
        }
        self.read_answer()?;
        let shards = self.shards;
        let me = self.me;
        let mut decode = || -> Result<u64, DecodeError> {
            let mut r = Reader::new(&self.frame);
            expect_tag(&mut r, TAG_RESULT, "a round result")?;
            let next = r.u64("next time")?;
            for b in round.incoming.iter_mut() {
                b.clear();
            }
            let n = r.count("batch count", 8)?;
            for _ in 0..n {
                let at = r.offset();
                let src = r.u32("batch source")?;
                if src >= shards || src == me.0 {
                    return Err(DecodeError::Invalid {
                        what: "batch source",
                        offset: at,
                        detail: format!("shard {src}"),
                    });
                }
                round.incoming[src as usize].extend_from_slice(r.len_bytes("batch")?);
            }
            r.finish("round result")?;
            Ok(next)
        };
        let next =
            decode().map_err(|e| BusError::Transport { shard: me, detail: format!("bad frame from the hub: {e}") })?;
        let next = SimTime::from_nanos(next);
        if next >= self.end {
            self.set_phase(Phase::Finishing);
        }
        Ok(next)
    }

    fn gather(&mut self, report: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, BusError> {
        // The report is this shard's last frame: nothing may follow it, not even a heartbeat.
        if let Some(mut h) = self.heartbeat.take() {
            h.stop();
        }
        self.send(TAG_REPORT, |w| w.bytes(&report)).map_err(|e| self.transport(format!("sending the report: {e}")))?;
        Ok(None)
    }

    fn fail(&mut self, error: &BusError) {
        if matches!(error, BusError::ShardFailed { .. }) || self.reported {
            return; // the hub sent this abort, or has been told already
        }
        let text = error.cause_text();
        self.reported = self.send(TAG_FAILED, |w| w.string(&text)).is_ok();
    }
}

/// What a shard process needs to build its engine: its id, the shard count and the config bytes
/// the hub passed to [`run_processes`].
pub struct ShardStart<'a> {
    /// This shard.
    pub shard: ShardId,
    /// Shards in the run.
    pub shards: u32,
    /// The opaque configuration (e.g. the experiment spec).
    pub config: &'a [u8],
}

/// The body of a shard process: connect to the hub through the descriptor in [`HUB_FD_ENV`],
/// build the engine with `build`, run the window loop, send the report.
///
/// Every error returned has already been reported — to the hub, which reports it for the run,
/// or, where the hub cannot be told, on stderr — so the caller only sets the exit status.
pub fn serve_shard<B>(build: B) -> Result<(), BusError>
where
    B: FnOnce(&ShardStart) -> Result<(Box<dyn Engine>, WindowConfig), EngineError>,
{
    let result = serve(build);
    if let Err((e, false)) = &result {
        eprintln!("thermocline shard: {e}");
    }
    result.map_err(|(e, _)| e)
}

/// [`serve_shard`] without the final reporting: the error and whether the hub has it.
/// Connect to the hub and read the start frame: the exchange, and the config bytes.
fn connect() -> Result<(ProcessExchange, Vec<u8>), BusError> {
    let unknown = ShardId(u32::MAX);
    let transport = |detail: String| BusError::Transport { shard: unknown, detail };
    let fd: i32 = std::env::var(HUB_FD_ENV)
        .map_err(|_| {
            transport(format!(
                "{HUB_FD_ENV} is not set: shard processes are started by `thermocline run --backend processes`"
            ))
        })?
        .parse()
        .map_err(|_| transport(format!("{HUB_FD_ENV} is not a descriptor number")))?;
    // SAFETY: die with the hub rather than linger; prctl touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if std::os::unix::process::parent_id() == 1 {
        return Err(transport("the hub exited before this shard started".into()));
    }
    // SAFETY: the hub passed us this descriptor for our exclusive use.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let reader = BufReader::with_capacity(1 << 16, stream.try_clone().map_err(|e| transport(e.to_string()))?);
    let mut ex = ProcessExchange {
        writer: Arc::new(Mutex::new(stream)),
        reader,
        me: unknown,
        shards: 0,
        buf: Vec::new(),
        frame: Vec::new(),
        reported: false,
        phase: Arc::new(AtomicU8::new(Phase::Building as u8)),
        end: SimTime::from_nanos(u64::MAX),
        heartbeat: None,
    };
    ex.read_answer()?;
    let mut r = Reader::new(&ex.frame);
    let parse = |r: &mut Reader| -> Result<(u32, u32, u64), DecodeError> {
        expect_tag(r, TAG_START, "a start frame")?;
        Ok((r.u32("shard")?, r.u32("shards")?, r.u64("heartbeat interval")?))
    };
    let (shard, shards, heartbeat_ns) = parse(&mut r).map_err(|e| transport(format!("bad start frame: {e}")))?;
    let config = ex.frame[r.offset()..].to_vec();
    ex.me = ShardId(shard);
    ex.shards = shards;
    let interval = Duration::from_nanos(heartbeat_ns).clamp(Duration::from_millis(1), MAX_HEARTBEAT_INTERVAL);
    let heartbeat = Heartbeat::start(Arc::clone(&ex.writer), Arc::clone(&ex.phase), interval)
        .map_err(|e| ex.transport(format!("starting the heartbeat thread: {e}")))?;
    ex.heartbeat = Some(heartbeat);
    Ok((ex, config))
}

fn serve<B>(build: B) -> Result<(), (BusError, bool)>
where
    B: FnOnce(&ShardStart) -> Result<(Box<dyn Engine>, WindowConfig), EngineError>,
{
    let (mut ex, config) = connect().map_err(|e| (e, false))?;
    let (me, shards) = (ex.me, ex.shards);

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let start = ShardStart { shard: me, shards, config: &config };
        let (mut engine, window) = build(&start).map_err(|source| BusError::Engine { shard: me, source })?;
        ex.end = window.end;
        ex.set_phase(Phase::Running);
        run_shard(engine.as_mut(), &mut ex, &window, &NoProgress).map(|_| ())
    }));
    let e = match outcome {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(payload) => BusError::Panicked { shard: me, message: panic_message(payload.as_ref()) },
    };
    ex.fail(&e);
    // An abort came from the hub, which reports the failure that caused it.
    let reported = ex.reported || matches!(e, BusError::ShardFailed { .. });
    Err((e, reported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_frame(batches: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut buf = vec![TAG_ROUND];
        let mut w = Writer::new(&mut buf);
        w.u64(77);
        w.u64(5);
        w.u32(batches.len() as u32);
        for (d, b) in batches {
            w.u32(*d);
            w.len_bytes(b);
        }
        buf
    }

    #[test]
    fn round_frames_decode_and_bad_destinations_are_refused() {
        let ChildFrame::Round(r) = decode_child_frame(&round_frame(&[(1, vec![9, 9])]), 2).unwrap() else {
            panic!("not a round")
        };
        assert_eq!((r.next, r.events, r.batches), (77, 5, vec![(1, vec![9, 9])]));
        assert!(decode_child_frame(&round_frame(&[(2, vec![])]), 2).is_err());
        assert!(decode_child_frame(&[99], 2).is_err());
    }

    #[test]
    fn heartbeat_frames_decode_and_unknown_phases_are_refused() {
        for phase in [Phase::Building, Phase::Running, Phase::Finishing] {
            let frame = decode_child_frame(&[TAG_HEARTBEAT, phase as u8], 2).unwrap();
            assert!(matches!(frame, ChildFrame::Heartbeat(p) if p == phase));
        }
        assert!(decode_child_frame(&[TAG_HEARTBEAT], 2).is_err());
        assert!(decode_child_frame(&[TAG_HEARTBEAT, 3], 2).is_err());
        assert!(decode_child_frame(&[TAG_HEARTBEAT, 1, 0], 2).is_err());
    }

    #[test]
    fn heartbeat_frames_written_by_the_shard_are_read_whole_by_the_hub() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut buf = Vec::new();
        write_frame(&mut a, &mut buf, TAG_HEARTBEAT, |w| w.u8(Phase::Running as u8)).unwrap();
        let mut frame = Vec::new();
        assert!(read_frame(&mut b, &mut frame).unwrap());
        assert!(matches!(decode_child_frame(&frame, 1), Ok(ChildFrame::Heartbeat(Phase::Running))));
    }

    #[test]
    fn a_heartbeat_thread_sends_until_stopped() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let phase = Arc::new(AtomicU8::new(Phase::Finishing as u8));
        let mut h = Heartbeat::start(Arc::new(Mutex::new(a)), phase, Duration::from_millis(5)).unwrap();
        let mut frame = Vec::new();
        for _ in 0..3 {
            assert!(read_frame(&mut b, &mut frame).unwrap());
            assert!(matches!(decode_child_frame(&frame, 1), Ok(ChildFrame::Heartbeat(Phase::Finishing))));
        }
        h.stop();
        // The thread held the only write half: a clean end of stream after whole frames shows
        // it has ended without cutting a frame.
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while read_frame(&mut b, &mut frame).unwrap() {
            assert!(matches!(decode_child_frame(&frame, 1), Ok(ChildFrame::Heartbeat(Phase::Finishing))));
        }
    }

    #[test]
    fn the_heartbeat_interval_fits_four_times_in_the_stall_limit() {
        assert_eq!(heartbeat_interval(DEFAULT_STALL_TIMEOUT), Duration::from_secs(1));
        assert_eq!(heartbeat_interval(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(heartbeat_interval(Duration::from_nanos(1)), Duration::from_millis(1));
    }

    #[test]
    fn a_silent_shard_is_named_after_the_stall_limit_and_frames_reset_its_clock() {
        let stall = Duration::from_millis(60);
        let mut live = Liveness::new(2, stall);
        let (tx, rx) = mpsc::channel::<Inbound>();
        // Nothing arrives: the longest-silent watched shard is named once the limit has passed.
        let started = Instant::now();
        assert!(matches!(live.wait(&rx, |_| true), Wait::Stalled(0)));
        assert!(started.elapsed() >= stall);
        // Shard 1 speaks: its clock restarts, and shard 0, no longer watched (it has reported),
        // is not named although it has been silent longer.
        let before = Instant::now();
        tx.send((1, Ok(None))).unwrap();
        assert!(matches!(live.wait(&rx, |_| true), Wait::Frame((1, _))));
        assert!(matches!(live.wait(&rx, |s| s == 1), Wait::Stalled(1)));
        assert!(before.elapsed() >= stall);
        drop(tx);
        live.last_seen = vec![Instant::now(); 2];
        assert!(matches!(live.wait(&rx, |_| true), Wait::Closed));
    }

    #[test]
    fn stalls_say_what_the_shard_was_doing() {
        assert_eq!(stall_activity(0, false, Phase::Building), "while building its engine");
        assert_eq!(stall_activity(0, true, Phase::Running), "after building its engine, waiting for the other shards");
        assert_eq!(stall_activity(8, false, Phase::Running), "in window 7");
        assert_eq!(stall_activity(8, true, Phase::Running), "after window 7, waiting for the other shards");
        assert_eq!(stall_activity(8, false, Phase::Finishing), "while finishing its report after 7 windows");
        let timed_out = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(
            write_failure("could not be sent its batches", &timed_out, Duration::from_secs(60)),
            "stalled: could not be sent its batches: it read nothing for 60 s"
        );
    }

    proptest! {
        #[test]
        fn heartbeat_frames_decode_for_every_known_phase_only(phase in any::<u8>()) {
            let decoded = decode_child_frame(&[TAG_HEARTBEAT, phase], 3);
            match Phase::from_u8(phase) {
                Some(p) => prop_assert!(matches!(decoded, Ok(ChildFrame::Heartbeat(q)) if q == p)),
                None => prop_assert!(decoded.is_err()),
            }
        }

        #[test]
        fn frames_with_arbitrary_bodies_never_panic(tag in prop::sample::select(vec![TAG_ROUND, TAG_REPORT, TAG_FAILED, TAG_HEARTBEAT]),
                                                    body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut frame = vec![tag];
            frame.extend_from_slice(&body);
            let _ = decode_child_frame(&frame, 2);
        }

        #[test]
        fn child_frames_from_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), shards in 1u32..8) {
            let _ = decode_child_frame(&bytes, shards);
        }

        #[test]
        fn truncated_round_frames_are_errors(cut in any::<prop::sample::Index>()) {
            let frame = round_frame(&[(1, vec![1, 2, 3]), (0, vec![4])]);
            let cut = cut.index(frame.len());
            prop_assert!(decode_child_frame(&frame[..cut], 2).is_err());
        }
    }
}
