//! yamux (`/yamux/1.0.0`), the stream muxer rust-libp2p and go-libp2p negotiate by default, as
//! a sans-IO [`Muxer`]. Spec: hashicorp/yamux `spec.md`, copied into libp2p/specs `yamux/README.md`.
//!
//! Every frame starts with a 12-byte big-endian header: version (0), type (data, window update,
//! ping, go-away), flags (SYN, ACK, FIN, RST), stream id, length. Clients (dialers) open odd
//! stream ids, servers even ones; id 0 is the session. Each stream has a 256 KiB window in each
//! direction that the receiver tops up with window updates as its application takes the data.
//!
//! How this implementation behaves where the spec leaves room:
//! - An outbound stream's SYN rides on its first frame, which leaves at the next
//!   [`Muxer::poll_transmit`] after [`Muxer::open`] (with the first data if queued by then, else
//!   as a window update). A stream the peer opens is acknowledged at once the same way, so the
//!   peer's ACK backlog (libp2p specs: at most 256 unacknowledged streams) drains.
//! - Data reaches the application as [`MuxEvent::Data`] as soon as it arrives, even part of a
//!   frame: frame boundaries carry no meaning. The receive window is refreshed (a window update
//!   of everything taken) once the application has polled at least half of it out, so unpolled
//!   data per stream never exceeds [`YamuxConfig::receive_window`]; a peer sending beyond the
//!   window breaks the protocol.
//! - FIN leaves on a window update of its own after the stream's last data, never on a data
//!   frame: so go-yamux and js-libp2p's yamux send it, and js-libp2p's yamux
//!   (`@chainsafe/libp2p-yamux` 7) applies a frame's flags before its payload, so the data of a
//!   data frame carrying FIN would never reach its application.
//! - A stream is forgotten once both sides have sent FIN (and ours has left), or on a reset;
//!   frames still in flight for it are then ignored. Peer stream ids are remembered compactly
//!   (a floor plus a bounded set above it) so reused ids are refused without memory growing.
//! - Any protocol violation is fatal: `handle_bytes` returns the error (and the same error on
//!   every later call), a go-away with the protocol-error code is queued, and nothing but
//!   control frames is sent any more.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::Nanos;
use crate::mux::{MuxError, MuxEvent, Muxer, StreamId};

#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;

/// The most room a drained stream's send queue keeps (bytes).
const IDLE_ROOM: usize = 4096;

/// The multistream-select protocol id of yamux.
pub const PROTOCOL_ID: &str = "/yamux/1.0.0";
/// The window every stream starts with in each direction, as both sides assume (spec: 256 KiB).
pub const DEFAULT_WINDOW: u32 = 256 * 1024;
/// The length of a frame header.
pub const HEADER_LEN: usize = 12;
/// The header flag opening a stream (and marking a ping as a request).
pub const SYN: u16 = 0x1;
/// The header flag accepting a stream (and marking a ping as a response).
pub const ACK: u16 = 0x2;
/// The header flag half-closing a stream: its sender sends no more data on it.
pub const FIN: u16 = 0x4;
/// The header flag resetting a stream at once.
pub const RST: u16 = 0x8;

/// Outbound streams the peer has not acknowledged yet beyond which `open` refuses (libp2p specs'
/// ACK backlog limit).
const ACK_BACKLOG: usize = 256;
/// How many peer stream ids above the contiguous floor are remembered before the floor jumps
/// (ids skipped then count as used).
const USED_ID_MEMORY: usize = 1024;
/// `poll_transmit` stops adding frames once its buffer reaches this size.
const TRANSMIT_BATCH: usize = 64 * 1024;

/// Which end of the connection this is: it fixes the parity of the stream ids this side opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The dialer: opens odd stream ids.
    Client,
    /// The listener: opens even stream ids.
    Server,
}

/// Limits and knobs of a yamux session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamuxConfig {
    /// The receive window of every stream, in bytes: the most the peer may send beyond what the
    /// application has polled, and so the most a stream buffers. It is both the initial and the
    /// maximum window (no auto-tuning). Values below [`DEFAULT_WINDOW`] are raised to it (the
    /// peer assumes 256 KiB anyway); larger ones are announced by a window update on the
    /// stream's SYN or ACK.
    pub receive_window: u32,
    /// The most streams open at once, both directions together; the peer's streams beyond it
    /// are refused with RST.
    pub max_streams: usize,
    /// The largest data frame payload this side sends (rust-libp2p's yamux refuses frames above
    /// 1 MiB and itself sends 16 KiB). At least 1.
    pub max_frame_payload: u32,
    /// How often to send a keep-alive ping (which also measures the round trip), if at all.
    pub keep_alive: Option<Nanos>,
}

impl Default for YamuxConfig {
    fn default() -> Self {
        YamuxConfig { receive_window: DEFAULT_WINDOW, max_streams: 512, max_frame_payload: 16 * 1024, keep_alive: None }
    }
}

/// The four frame types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// Stream data; the length is the payload's.
    Data,
    /// Window credit for a stream; the length is the increment.
    WindowUpdate,
    /// Ping request (SYN) or response (ACK); the length is an opaque value echoed back.
    Ping,
    /// The session ends; the length is a [`GoAwayCode`].
    GoAway,
}

/// The error code a go-away carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoAwayCode {
    /// Normal termination (0).
    Normal,
    /// The other side broke the protocol (1).
    Protocol,
    /// An internal error (2).
    Internal,
    /// A code the spec does not define, kept as received.
    Other(u32),
}

impl GoAwayCode {
    /// The code as the header's length field carries it.
    pub fn to_u32(self) -> u32 {
        match self {
            GoAwayCode::Normal => 0,
            GoAwayCode::Protocol => 1,
            GoAwayCode::Internal => 2,
            GoAwayCode::Other(c) => c,
        }
    }

    /// The code a header's length field names.
    pub fn from_u32(c: u32) -> Self {
        match c {
            0 => GoAwayCode::Normal,
            1 => GoAwayCode::Protocol,
            2 => GoAwayCode::Internal,
            c => GoAwayCode::Other(c),
        }
    }
}

/// Why a frame header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The version byte is not 0.
    #[error("unsupported yamux version {0}")]
    Version(u8),
    /// The type byte is not one of the four types.
    #[error("unknown yamux frame type {0}")]
    Type(u8),
}

/// A frame header. Unknown flag bits are kept as received and otherwise ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the frame is.
    pub frame_type: FrameType,
    /// SYN, ACK, FIN, RST (or-ed).
    pub flags: u16,
    /// The stream, 0 for the session.
    pub stream: u32,
    /// Payload length, window increment, ping value or go-away code, by type.
    pub length: u32,
}

impl Header {
    /// The 12 bytes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[1] = match self.frame_type {
            FrameType::Data => 0,
            FrameType::WindowUpdate => 1,
            FrameType::Ping => 2,
            FrameType::GoAway => 3,
        };
        b[2..4].copy_from_slice(&self.flags.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream.to_be_bytes());
        b[8..12].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// Reads a header from its 12 bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        if b[0] != 0 {
            return Err(HeaderError::Version(b[0]));
        }
        let frame_type = match b[1] {
            0 => FrameType::Data,
            1 => FrameType::WindowUpdate,
            2 => FrameType::Ping,
            3 => FrameType::GoAway,
            t => return Err(HeaderError::Type(t)),
        };
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Header { frame_type, flags: u16::from_be_bytes([b[2], b[3]]), stream: word(4), length: word(8) })
    }
}

/// How far this side's sending on a stream has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// The application may still send.
    Open,
    /// The application closed; FIN leaves after the queue.
    Closing,
    /// FIN has left.
    Closed,
}

/// One open stream.
#[derive(Debug)]
struct Stream {
    /// Bytes the peer still lets us send.
    send_window: u32,
    /// Bytes we still let the peer send.
    recv_window: u32,
    /// Bytes the application has polled since the last window update.
    taken: u32,
    /// Window credit to announce in the next window update.
    grant: u32,
    /// Bytes the application sent that have not left yet.
    queue: VecDeque<u8>,
    /// SYN or ACK still to put on the stream's next frame.
    flags: u16,
    write: Write,
    /// The peer sent FIN.
    remote_closed: bool,
    /// The peer acknowledged the stream (or opened it).
    acked: bool,
}

impl Stream {
    fn new(receive_window: u32, flags: u16) -> Stream {
        Stream {
            send_window: DEFAULT_WINDOW,
            recv_window: receive_window,
            taken: 0,
            grant: receive_window - DEFAULT_WINDOW,
            queue: VecDeque::new(),
            flags,
            write: Write::Open,
            remote_closed: false,
            acked: flags == ACK,
        }
    }

    /// Whether the application has closed and everything queued has left.
    fn fin_ready(&self) -> bool {
        self.write == Write::Closing && self.queue.is_empty()
    }

    /// Whether the stream has a frame to send.
    fn needs_tx(&self) -> bool {
        self.grant > 0 || self.flags != 0 || self.fin_ready() || (!self.queue.is_empty() && self.send_window > 0)
    }
}

/// The stream ids the peer has used: all below `next` of its parity, and those in `above`.
#[derive(Debug)]
struct UsedIds {
    next: u64,
    above: BTreeSet<u32>,
}

impl UsedIds {
    fn was_used(&self, id: u32) -> bool {
        u64::from(id) < self.next || self.above.contains(&id)
    }

    /// Records `id` as used; false if it already was.
    fn insert(&mut self, id: u32) -> bool {
        if self.was_used(id) {
            return false;
        }
        self.above.insert(id);
        if self.above.len() > USED_ID_MEMORY
            && let Some(lowest) = self.above.pop_first()
        {
            self.next = u64::from(lowest) + 2;
        }
        while self.above.remove(&(self.next as u32)) {
            self.next += 2;
        }
        true
    }
}

/// The part of a data frame's payload still to come.
#[derive(Debug)]
struct Body {
    stream: u32,
    remaining: u32,
    /// Whether the bytes go to the application (else they are dropped).
    deliver: bool,
    /// Whether the frame carried FIN, applied once the payload is in.
    fin: bool,
}

/// Keep-alive pings and the round trip they measure.
#[derive(Debug, Default)]
struct Pinger {
    next: Option<Nanos>,
    nonce: u32,
    outstanding: Option<(u32, Nanos)>,
    rtt: Option<Nanos>,
}

/// A yamux session over one secured connection. See the module documentation.
#[derive(Debug)]
pub struct Yamux {
    role: Role,
    config: YamuxConfig,
    streams: BTreeMap<u32, Stream>,
    /// Streams with a frame to send.
    dirty: BTreeSet<u32>,
    /// The stream `poll_transmit` served last (round robin).
    cursor: u32,
    next_local: u64,
    remote_ids: UsedIds,
    header: [u8; HEADER_LEN],
    header_len: usize,
    body: Option<Body>,
    control: VecDeque<[u8; HEADER_LEN]>,
    events: VecDeque<MuxEvent>,
    local_go_away: bool,
    remote_go_away: Option<GoAwayCode>,
    failed: Option<MuxError>,
    now: Nanos,
    pinger: Pinger,
}

fn protocol(msg: String) -> MuxError {
    MuxError::Protocol(msg)
}

impl Yamux {
    /// A session with no streams yet. `role` is [`Role::Client`] on the dialer's side.
    pub fn new(role: Role, mut config: YamuxConfig) -> Yamux {
        config.receive_window = config.receive_window.max(DEFAULT_WINDOW);
        config.max_frame_payload = config.max_frame_payload.max(1);
        let (local, remote) = match role {
            Role::Client => (1, 2),
            Role::Server => (2, 1),
        };
        Yamux {
            role,
            config,
            streams: BTreeMap::new(),
            dirty: BTreeSet::new(),
            cursor: 0,
            next_local: local,
            remote_ids: UsedIds { next: remote, above: BTreeSet::new() },
            header: [0; HEADER_LEN],
            header_len: 0,
            body: None,
            control: VecDeque::new(),
            events: VecDeque::new(),
            local_go_away: false,
            remote_go_away: None,
            failed: None,
            now: 0,
            pinger: Pinger::default(),
        }
    }

    /// The streams currently tracked (open in at least one direction).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The code of the peer's go-away, if it sent one.
    pub fn remote_go_away(&self) -> Option<GoAwayCode> {
        self.remote_go_away
    }

    /// The round trip the last answered ping measured.
    pub fn rtt(&self) -> Option<Nanos> {
        self.pinger.rtt
    }

    /// The fatal error that ended the session, if any.
    pub fn error(&self) -> Option<&MuxError> {
        self.failed.as_ref()
    }

    /// Sends a ping request now (the keep-alive timer does so by itself when configured); its
    /// answer sets [`Yamux::rtt`]. A ping still unanswered is superseded.
    pub fn ping(&mut self, now: Nanos) {
        self.now = now;
        if self.failed.is_some() {
            return;
        }
        self.pinger.nonce = self.pinger.nonce.wrapping_add(1);
        self.pinger.outstanding = Some((self.pinger.nonce, now));
        self.push_control(FrameType::Ping, SYN, 0, self.pinger.nonce);
    }

    /// Tells the peer this side is going away with `code` (once; later calls do nothing).
    /// [`Muxer::go_away`] sends [`GoAwayCode::Normal`].
    pub fn go_away_with(&mut self, code: GoAwayCode) {
        if !self.local_go_away {
            self.local_go_away = true;
            self.push_control(FrameType::GoAway, 0, 0, code.to_u32());
        }
    }

    fn push_control(&mut self, frame_type: FrameType, flags: u16, stream: u32, length: u32) {
        self.control.push_back(Header { frame_type, flags, stream, length }.encode());
    }

    fn is_local(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.role == Role::Client)
    }

    /// Arms the keep-alive timer on the first call that tells the time.
    fn arm(&mut self, now: Nanos) {
        self.now = now;
        if let (Some(every), None) = (self.config.keep_alive, self.pinger.next) {
            self.pinger.next = Some(now.saturating_add(every));
        }
    }

    fn touch(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(Stream::needs_tx) {
            self.dirty.insert(id);
        } else {
            self.dirty.remove(&id);
        }
    }

    fn forget(&mut self, id: u32) {
        self.streams.remove(&id);
        self.dirty.remove(&id);
    }

    /// Forgets the stream if both directions are closed.
    fn maybe_forget(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(|s| s.remote_closed && s.write == Write::Closed) {
            self.forget(id);
        }
    }

    /// Ends the session on a fatal error: go-away (protocol error), no more stream frames.
    fn fail(&mut self, err: MuxError) -> MuxError {
        self.go_away_with(GoAwayCode::Protocol);
        self.failed = Some(err.clone());
        self.streams.clear();
        self.dirty.clear();
        self.body = None;
        err
    }

    /// The stream an application call names, if open.
    fn app_stream(&mut self, id: StreamId) -> Result<(u32, &mut Stream), MuxError> {
        let wire = u32::try_from(id.0).map_err(|_| MuxError::UnknownStream(id))?;
        match self.streams.get_mut(&wire) {
            Some(s) => Ok((wire, s)),
            None => Err(MuxError::UnknownStream(id)),
        }
    }

    /// Consumes as much of `input` as the current data payload takes.
    fn take_body<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let Some(body) = self.body.as_mut() else { return input };
        let n = input.len().min(body.remaining as usize);
        body.remaining -= n as u32;
        // A stream the application reset meanwhile gets nothing more.
        if body.deliver && n > 0 && self.streams.contains_key(&body.stream) {
            self.events.push_back(MuxEvent::Data(StreamId(u64::from(body.stream)), input[..n].to_vec()));
        }
        if body.remaining == 0 {
            let (stream, fin) = (body.stream, body.fin);
            self.body = None;
            if fin {
                self.remote_fin(stream);
            }
        }
        &input[n..]
    }

    /// Consumes header bytes from `input`; a complete header is acted on.
    fn take_header<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], MuxError> {
        let n = input.len().min(HEADER_LEN - self.header_len);
        self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
        self.header_len += n;
        if self.header_len == HEADER_LEN {
            self.header_len = 0;
            let header = Header::decode(&self.header).map_err(|e| protocol(e.to_string()))?;
            self.on_header(header)?;
        }
        Ok(&input[n..])
    }

    fn on_header(&mut self, h: Header) -> Result<(), MuxError> {
        match h.frame_type {
            FrameType::Data | FrameType::WindowUpdate => self.on_stream_frame(h),
            FrameType::Ping => {
                self.on_ping(h);
                Ok(())
            }
            FrameType::GoAway => {
                if self.remote_go_away.is_none() {
                    self.remote_go_away = Some(GoAwayCode::from_u32(h.length));
                    self.events.push_back(MuxEvent::GoAway);
                }
                Ok(())
            }
        }
    }

    fn on_ping(&mut self, h: Header) {
        if h.flags & ACK != 0 {
            if let Some((nonce, sent)) = self.pinger.outstanding
                && nonce == h.length
            {
                self.pinger.rtt = Some(self.now.saturating_sub(sent));
                self.pinger.outstanding = None;
            }
        } else {
            self.push_control(FrameType::Ping, ACK, 0, h.length);
        }
    }

    /// Skips the payload of a data frame for a stream that is gone or refused.
    fn skip(&mut self, h: &Header) {
        if h.frame_type == FrameType::Data && h.length > 0 {
            self.body = Some(Body { stream: h.stream, remaining: h.length, deliver: false, fin: false });
        }
    }

    fn on_stream_frame(&mut self, h: Header) -> Result<(), MuxError> {
        let id = h.stream;
        if id == 0 {
            return Err(protocol(format!("{:?} frame on stream 0", h.frame_type)));
        }
        if h.flags & SYN != 0 && !self.accept(id)? {
            self.skip(&h);
            return Ok(());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            if h.flags & RST != 0 || self.was_used(id) {
                self.skip(&h);
                return Ok(());
            }
            return Err(protocol(format!("frame for stream {id}, which was never opened")));
        };
        if h.flags & ACK != 0 {
            s.acked = true;
        }
        if h.flags & RST != 0 {
            self.forget(id);
            self.events.push_back(MuxEvent::Reset(StreamId(u64::from(id))));
            self.skip(&h);
            return Ok(());
        }
        if h.frame_type == FrameType::Data {
            return self.on_data(id, h.length, h.flags & FIN != 0);
        }
        s.send_window = s
            .send_window
            .checked_add(h.length)
            .ok_or_else(|| protocol(format!("window update overflows stream {id}'s send window")))?;
        if h.flags & FIN != 0 {
            self.remote_fin(id);
        }
        self.touch(id);
        Ok(())
    }

    /// Whether a stream id not open now was used before (frames may still be in flight).
    fn was_used(&self, id: u32) -> bool {
        if self.is_local(id) { u64::from(id) < self.next_local } else { self.remote_ids.was_used(id) }
    }

    /// Takes a SYN: true if the stream is now open, false if refused (with RST).
    fn accept(&mut self, id: u32) -> Result<bool, MuxError> {
        if self.is_local(id) {
            return Err(protocol(format!("peer opened stream {id}, which has this side's parity")));
        }
        if !self.remote_ids.insert(id) {
            return Err(protocol(format!("peer reused stream id {id}")));
        }
        if self.local_go_away || self.remote_go_away.is_some() || self.streams.len() >= self.config.max_streams {
            self.push_control(FrameType::WindowUpdate, RST, id, 0);
            return Ok(false);
        }
        self.streams.insert(id, Stream::new(self.config.receive_window, ACK));
        self.events.push_back(MuxEvent::Opened(StreamId(u64::from(id))));
        self.touch(id);
        Ok(true)
    }

    fn on_data(&mut self, id: u32, len: u32, fin: bool) -> Result<(), MuxError> {
        let Some(s) = self.streams.get_mut(&id) else { return Ok(()) };
        if len == 0 {
            if fin {
                self.remote_fin(id);
            }
            return Ok(());
        }
        if s.remote_closed {
            return Err(protocol(format!("data on stream {id} after the peer's FIN")));
        }
        if len > s.recv_window {
            return Err(protocol(format!("{len} bytes on stream {id} exceed its window of {}", s.recv_window)));
        }
        s.recv_window -= len;
        self.body = Some(Body { stream: id, remaining: len, deliver: true, fin });
        Ok(())
    }

    /// The peer half-closed the stream.
    fn remote_fin(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id)
            && !s.remote_closed
        {
            s.remote_closed = true;
            self.events.push_back(MuxEvent::Closed(StreamId(u64::from(id))));
            self.maybe_forget(id);
        }
    }

    /// The application took `n` bytes of a stream: refresh the window once it took half.
    fn on_taken(&mut self, id: u32, n: usize) {
        let half = self.config.receive_window / 2;
        let Some(s) = self.streams.get_mut(&id) else { return };
        if s.remote_closed {
            return;
        }
        s.taken = s.taken.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if s.taken >= half {
            s.grant += s.taken;
            s.recv_window += s.taken;
            s.taken = 0;
            self.touch(id);
        }
    }

    /// The next stream with something to send, round robin.
    fn next_dirty(&mut self) -> Option<u32> {
        let id = self.dirty.range(self.cursor.saturating_add(1)..).next().or_else(|| self.dirty.first()).copied()?;
        self.cursor = id;
        Some(id)
    }

    /// Appends the stream's next frame to `out`: a window update when there is credit to
    /// grant or no data may leave, else data. Pending SYN/ACK ride on it; FIN rides only on a
    /// window update, once the queue of a closing stream is empty (see the module documentation).
    fn emit_frame(&mut self, id: u32, out: &mut Vec<u8>) {
        let max = self.config.max_frame_payload as usize;
        let Some(s) = self.streams.get_mut(&id) else { return };
        let sendable = s.queue.len().min(s.send_window as usize).min(max);
        let (frame_type, length) = if s.grant > 0 || sendable == 0 {
            (FrameType::WindowUpdate, std::mem::take(&mut s.grant))
        } else {
            s.send_window -= sendable as u32;
            (FrameType::Data, sendable as u32)
        };
        let mut flags = std::mem::take(&mut s.flags);
        if s.write == Write::Closing && frame_type == FrameType::WindowUpdate && s.queue.is_empty() {
            flags |= FIN;
            s.write = Write::Closed;
        }
        out.extend_from_slice(&Header { frame_type, flags, stream: id, length }.encode());
        if frame_type == FrameType::Data {
            out.extend(s.queue.drain(..sendable));
            if s.queue.is_empty() && s.queue.capacity() > IDLE_ROOM {
                // A drained stream keeps little room: a large message would otherwise pin its size.
                s.queue = VecDeque::new();
            }
        }
        self.maybe_forget(id);
        self.touch(id);
    }
}

impl Muxer for Yamux {
    fn handle_bytes(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), MuxError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.arm(now);
        let mut input = bytes;
        while !input.is_empty() {
            input = if self.body.is_some() {
                self.take_body(input)
            } else {
                match self.take_header(input) {
                    Ok(rest) => rest,
                    Err(err) => return Err(self.fail(err)),
                }
            };
        }
        Ok(())
    }

    fn open(&mut self, now: Nanos) -> Result<StreamId, MuxError> {
        self.arm(now);
        let unacked = self.streams.iter().filter(|(id, s)| self.is_local(**id) && !s.acked).count();
        let refusal = if self.failed.is_some() {
            Some("the session failed")
        } else if self.local_go_away {
            Some("this side is going away")
        } else if self.remote_go_away.is_some() {
            Some("the peer is going away")
        } else if self.streams.len() >= self.config.max_streams {
            Some("stream limit reached")
        } else if unacked >= ACK_BACKLOG {
            Some("too many streams await the peer's acknowledgement")
        } else if self.next_local > u64::from(u32::MAX) {
            Some("stream ids exhausted")
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(MuxError::CannotOpen(why));
        }
        let id = self.next_local as u32;
        self.next_local += 2;
        self.streams.insert(id, Stream::new(self.config.receive_window, SYN));
        self.touch(id);
        Ok(StreamId(u64::from(id)))
    }

    fn send(&mut self, now: Nanos, id: StreamId, data: &[u8]) -> Result<(), MuxError> {
        self.arm(now);
        let (wire, s) = self.app_stream(id)?;
        if s.write != Write::Open {
            return Err(MuxError::UnknownStream(id));
        }
        s.queue.extend(data);
        self.touch(wire);
        Ok(())
    }

    fn close(&mut self, now: Nanos, id: StreamId) -> Result<(), MuxError> {
        self.arm(now);
        let (wire, s) = self.app_stream(id)?;
        if s.write != Write::Open {
            return Err(MuxError::UnknownStream(id));
        }
        s.write = Write::Closing;
        self.touch(wire);
        Ok(())
    }

    fn reset(&mut self, now: Nanos, id: StreamId) -> Result<(), MuxError> {
        self.arm(now);
        let (wire, s) = self.app_stream(id)?;
        if s.flags & SYN == 0 {
            self.push_control(FrameType::WindowUpdate, RST, wire, 0);
        }
        self.forget(wire);
        Ok(())
    }

    fn go_away(&mut self, now: Nanos) {
        self.arm(now);
        self.go_away_with(GoAwayCode::Normal);
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < TRANSMIT_BATCH {
            if let Some(header) = self.control.pop_front() {
                out.extend_from_slice(&header);
                continue;
            }
            match self.next_dirty() {
                Some(id) => self.emit_frame(id, &mut out),
                None => break,
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }

    fn poll_event(&mut self) -> Option<MuxEvent> {
        let event = self.events.pop_front()?;
        if let MuxEvent::Data(id, bytes) = &event {
            self.on_taken(id.0 as u32, bytes.len());
        }
        Some(event)
    }

    fn poll_timeout(&self) -> Option<Nanos> {
        if self.failed.is_some() { None } else { self.pinger.next }
    }

    fn handle_timeout(&mut self, now: Nanos) {
        self.arm(now);
        if let (Some(due), Some(every)) = (self.pinger.next, self.config.keep_alive)
            && due <= now
            && self.failed.is_none()
        {
            self.pinger.next = Some(now.saturating_add(every));
            self.ping(now);
        }
    }

    fn queued(&self, id: StreamId) -> usize {
        u32::try_from(id.0).ok().and_then(|w| self.streams.get(&w)).map_or(0, |s| s.queue.len())
    }

    fn data_in(&self, batch: &[u8], id: StreamId) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let Ok(wire) = u32::try_from(id.0) else { return spans };
        let mut at = 0;
        // A batch holds whole frames: headers, and data frames' payloads after theirs.
        while let Some(h) = batch.get(at..at + HEADER_LEN).and_then(|b| Header::decode(b.try_into().ok()?).ok()) {
            at += HEADER_LEN;
            if h.frame_type == FrameType::Data {
                at += h.length as usize;
                if h.stream == wire && h.length > 0 {
                    spans.push((at, h.length as usize));
                }
            }
        }
        spans
    }
}
