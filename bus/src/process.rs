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
//! Frame layout (big-endian): `u32 length` of the rest, `u8 tag`, then by tag:
//! - child → hub: `ROUND`: `next u64, events u64, count u32, count × (dst u32, len u32, bytes)`;
//!   `REPORT`: report bytes; `FAILED`: `message string`.
//! - hub → child: `START`: `shard u32, shards u32, config bytes`; `RESULT`: `next u64, count u32,
//!   count × (src u32, len u32, bytes)`; `ABORT`: `shard u32, cause string`.

use crate::engine::Engine;
use crate::error::{BusError, EngineError, panic_message};
use crate::exchange::{Exchange, Round};
use crate::ids::ShardId;
use crate::report::{ShardReport, decode_gathered};
use crate::time::SimTime;
use crate::window::{NoProgress, ProgressSink, WindowConfig, run_shard};
use crate::wire::{DecodeError, Reader, Writer};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Environment variable through which a shard process learns its socket's descriptor.
pub const HUB_FD_ENV: &str = "THERMOCLINE_HUB_FD";

const TAG_ROUND: u8 = 1;
const TAG_REPORT: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_START: u8 = 10;
const TAG_RESULT: u8 = 11;
const TAG_ABORT: u8 = 12;

/// Largest frame accepted (guards allocations against a corrupt length).
const MAX_FRAME: usize = 1 << 31;

fn write_frame(stream: &mut UnixStream, buf: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Writer)) -> io::Result<()> {
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

/// Launch `shards` shard processes with `command(shard)` (which must run [`serve_shard`]), hand
/// each `config` in its start frame, and coordinate the run. Returns every shard's report, or an
/// error naming the first shard that failed and why.
pub fn run_processes(
    shards: u32,
    config: &[u8],
    command: impl Fn(ShardId) -> Command,
    progress: &dyn ProgressSink,
) -> Result<Vec<ShardReport>, BusError> {
    assert!(shards > 0, "a run needs at least one shard");
    let hub = ShardId(0);
    let transport = |detail: String| BusError::Transport { shard: hub, detail };
    let mut procs: Vec<ShardProcess> = Vec::with_capacity(shards as usize);
    let (tx, rx) = mpsc::channel::<(u32, io::Result<Option<Vec<u8>>>)>();
    let mut readers = Vec::new();
    let mut frame_buf = Vec::new();
    let result = (|| {
        for s in 0..shards {
            let (ours, theirs) = UnixStream::pair().map_err(|e| transport(format!("socketpair: {e}")))?;
            let fd = theirs.as_raw_fd();
            // Let exactly this descriptor survive exec (std opens everything close-on-exec).
            // SAFETY: fcntl on a descriptor we own; no memory is touched.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(transport(format!("fcntl: {}", io::Error::last_os_error())));
            }
            let mut cmd = command(ShardId(s));
            cmd.env(HUB_FD_ENV, fd.to_string()).stdin(Stdio::null()).stdout(Stdio::null());
            let child = cmd.spawn().map_err(|e| transport(format!("launching shard {s}: {e}")))?;
            drop(theirs);
            let mut reader = BufReader::with_capacity(1 << 16, ours.try_clone().map_err(|e| transport(e.to_string()))?);
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                loop {
                    let mut buf = Vec::new();
                    match read_frame(&mut reader, &mut buf) {
                        Ok(true) => {
                            if tx.send((s, Ok(Some(buf)))).is_err() {
                                return;
                            }
                        }
                        Ok(false) => {
                            let _ = tx.send((s, Ok(None)));
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send((s, Err(e)));
                            return;
                        }
                    }
                }
            }));
            procs.push(ShardProcess { child, stream: ours });
        }
        for (s, p) in procs.iter_mut().enumerate() {
            write_frame(&mut p.stream, &mut frame_buf, TAG_START, |w| {
                w.u32(s as u32);
                w.u32(shards);
                w.bytes(config);
            })
            .map_err(|e| transport(format!("starting shard {s}: {e}")))?;
        }
        coordinate(shards, &mut procs, &rx, progress)
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
            for p in procs.iter_mut() {
                let _ = write_frame(&mut p.stream, &mut frame_buf, TAG_ABORT, |w| {
                    w.u32(e.shard().0);
                    w.string(&e.cause_text());
                });
                let _ = p.stream.shutdown(std::net::Shutdown::Both);
            }
            // One shared grace period for all, then kill what is left.
            let deadline = Instant::now() + Duration::from_millis(500);
            for p in procs.iter_mut() {
                let _ = reap(&mut p.child, deadline.saturating_duration_since(Instant::now()));
            }
            Err(e)
        }
    };
    drop(tx);
    for r in readers {
        let _ = r.join();
    }
    result
}

/// The hub's main loop: collect one frame per shard, answer, repeat; then collect reports.
fn coordinate(
    shards: u32,
    procs: &mut [ShardProcess],
    rx: &mpsc::Receiver<(u32, io::Result<Option<Vec<u8>>>)>,
    progress: &dyn ProgressSink,
) -> Result<Vec<ShardReport>, BusError> {
    let n = shards as usize;
    let mut rounds: Vec<Option<RoundFrame>> = (0..n).map(|_| None).collect();
    let mut reports: Vec<Option<Vec<u8>>> = vec![None; n];
    let (mut pending_rounds, mut pending_reports) = (n, n);
    let mut out = Vec::new();
    while pending_reports > 0 {
        let (s, frame) = rx
            .recv()
            .map_err(|_| BusError::Transport { shard: ShardId(0), detail: "all shard readers ended".into() })?;
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
                    let frames: Vec<RoundFrame> =
                        rounds.iter_mut().map(|r| r.take().expect("all rounds present")).collect();
                    let next = frames.iter().map(|f| f.next).min().unwrap_or(u64::MAX);
                    for f in frames.iter() {
                        progress.window_done(ShardId(0), SimTime::from_nanos(next), f.events);
                    }
                    for (dst, p) in procs.iter_mut().enumerate() {
                        let dst = dst as u32;
                        write_frame(&mut p.stream, &mut out, TAG_RESULT, |w| {
                            w.u64(next);
                            let inbound: Vec<(u32, &Vec<u8>)> = frames
                                .iter()
                                .enumerate()
                                .flat_map(|(src, f)| {
                                    f.batches.iter().filter(|(d, _)| *d == dst).map(move |(_, b)| (src as u32, b))
                                })
                                .collect();
                            w.u32(inbound.len() as u32);
                            for (src, b) in inbound {
                                w.u32(src);
                                w.len_bytes(b);
                            }
                        })
                        .map_err(|e| BusError::ShardFailed {
                            shard: ShardId(dst),
                            cause: format!("could not be sent its batches: {e}"),
                        })?;
                    }
                }
            }
        }
    }
    let reports: Vec<Vec<u8>> = reports.into_iter().map(|r| r.expect("all reports present")).collect();
    decode_gathered(&reports)
}

/// A shard process's side of the hub connection.
struct ProcessExchange {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    me: ShardId,
    shards: u32,
    buf: Vec<u8>,
    frame: Vec<u8>,
    /// Whether this shard's failure has been handed to the hub.
    reported: bool,
}

impl ProcessExchange {
    fn transport(&self, detail: String) -> BusError {
        BusError::Transport { shard: self.me, detail }
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
        write_frame(&mut self.stream, &mut self.buf, TAG_ROUND, |w| {
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
        Ok(SimTime::from_nanos(next))
    }

    fn gather(&mut self, report: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, BusError> {
        write_frame(&mut self.stream, &mut self.buf, TAG_REPORT, |w| w.bytes(&report))
            .map_err(|e| self.transport(format!("sending the report: {e}")))?;
        Ok(None)
    }

    fn fail(&mut self, error: &BusError) {
        if matches!(error, BusError::ShardFailed { .. }) || self.reported {
            return; // the hub sent this abort, or has been told already
        }
        let text = error.cause_text();
        self.reported = write_frame(&mut self.stream, &mut self.buf, TAG_FAILED, |w| w.string(&text)).is_ok();
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
    let mut ex =
        ProcessExchange { stream, reader, me: unknown, shards: 0, buf: Vec::new(), frame: Vec::new(), reported: false };
    ex.read_answer()?;
    let mut r = Reader::new(&ex.frame);
    let parse = |r: &mut Reader| -> Result<(u32, u32), DecodeError> {
        expect_tag(r, TAG_START, "a start frame")?;
        Ok((r.u32("shard")?, r.u32("shards")?))
    };
    let (shard, shards) = parse(&mut r).map_err(|e| transport(format!("bad start frame: {e}")))?;
    let config = ex.frame[r.offset()..].to_vec();
    ex.me = ShardId(shard);
    ex.shards = shards;
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

    proptest! {
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
