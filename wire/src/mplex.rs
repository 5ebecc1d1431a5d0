//! mplex (`/mplex/6.7.0`), the older libp2p stream muxer, behind the [`Muxer`] trait. Every
//! frame is a varint header `(stream number << 3) | flag`, a varint length and that many bytes.
//! Both sides number the streams they open from 0, so a stream is named on the wire by its
//! number *and* who opened it (the flag says whether the sender is the stream's initiator);
//! [`Mplex`] maps each such pair to a [`StreamId`] of its own, never reused.
//!
//! # No flow control
//!
//! mplex has no flow control: nothing is ever held back, [`Muxer::send`] frames the bytes at
//! once (in frames of at most [`MplexConfig::max_frame_size`], 1 MiB at most as the spec says)
//! and [`Muxer::queued`] is always 0. Inbound data is handed out as [`MuxEvent::Data`] as it
//! arrives, even a frame's first part before its rest; the muxer keeps nothing for an
//! application that does not read — the caller drains `poll_event` after each `handle_bytes`
//! and buffers for its application as it sees fit. The one guard is
//! [`MplexConfig::max_buffered_per_stream`]: if more than that many bytes of one stream sit in
//! undrained events, the stream is reset (a reset frame goes to the peer, [`MuxEvent::Reset`]
//! to the caller), so a caller that stops draining cannot be made to hold unbounded memory.
//!
//! # Lifecycle
//!
//! Each direction closes on its own ([`Muxer::close`] / [`MuxEvent::Closed`]); a stream is
//! forgotten once both directions are closed, or at once on a reset from either side. Frames
//! that arrive for a forgotten stream (the peer had not yet seen our reset, say) are dropped;
//! frames for a stream that was never opened are a protocol error. mplex has no go-away frame:
//! [`Muxer::go_away`] only stops this side opening streams (and accepting new ones, which it
//! resets), and [`MuxEvent::GoAway`] is never emitted. mplex has no timers either.

use std::collections::{BTreeMap, VecDeque};

use crate::Nanos;
use crate::mux::{MuxError, MuxEvent, Muxer, StreamId};
use crate::varint::{self, VarintError};

/// The protocol id multistream-select negotiates for mplex.
pub const PROTOCOL: &str = "/mplex/6.7.0";

/// The largest frame the spec allows (1 MiB); we never send bigger ones.
pub const SPEC_MAX_FRAME: usize = 1 << 20;

/// Stream numbers fit in 60 bits (a 9-byte varint header less the 3 flag bits).
const MAX_STREAM_NUM: u64 = (1 << 60) - 1;

/// Two varints of at most 9 bytes each.
const MAX_HEADER_LEN: usize = 18;

/// The limits of one mplex session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MplexConfig {
    /// The largest frame accepted from the peer (bigger is a protocol error); also the size our
    /// sends are split into, capped at [`SPEC_MAX_FRAME`].
    pub max_frame_size: usize,
    /// The most streams open at once, counting both sides' (more from the peer are reset).
    pub max_streams: usize,
    /// The most bytes of one stream waiting in undrained events before the stream is reset.
    pub max_buffered_per_stream: usize,
}

impl Default for MplexConfig {
    /// 1 MiB frames (the spec's limit), 128 streams (rust-libp2p's default), 4 MiB per stream.
    fn default() -> Self {
        Self { max_frame_size: SPEC_MAX_FRAME, max_streams: 128, max_buffered_per_stream: 4 << 20 }
    }
}

/// A stream's name on the wire: its number, and whether this side opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WireKey {
    num: u64,
    local_initiator: bool,
}

/// The four kinds of frame (the flag less the initiator/receiver distinction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Message,
    Close,
    Reset,
}

impl Kind {
    /// The flag this side sends for a frame of this kind on a stream it did (not) open.
    fn flag(self, local_initiator: bool) -> u64 {
        let base = match self {
            Kind::New => return 0,
            Kind::Message => 1,
            Kind::Close => 3,
            Kind::Reset => 5,
        };
        base + u64::from(local_initiator)
    }

    /// Reads a peer's flag: the kind, and whether the stream is one the *peer* opened.
    fn from_flag(flag: u64) -> Result<(Kind, bool), MuxError> {
        Ok(match flag {
            0 => (Kind::New, true),
            1 | 2 => (Kind::Message, flag == 2),
            3 | 4 => (Kind::Close, flag == 4),
            5 | 6 => (Kind::Reset, flag == 6),
            _ => return Err(MuxError::Protocol(format!("unknown mplex flag {flag}"))),
        })
    }
}

/// What we know of one open stream.
#[derive(Debug, Clone)]
struct Stream {
    key: WireKey,
    /// We sent our close.
    local_closed: bool,
    /// The peer sent its close.
    remote_closed: bool,
    /// Bytes of this stream in events not yet polled.
    undrained: usize,
}

/// Where the rest of the current frame's body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Data for this stream.
    Data(StreamId),
    /// Dropped (stream names, frames for forgotten streams, bodies of close and reset).
    Skip,
}

/// An mplex session over one secured connection (see the module documentation).
#[derive(Debug, Clone)]
pub struct Mplex {
    config: MplexConfig,
    streams: BTreeMap<StreamId, Stream>,
    by_key: BTreeMap<WireKey, StreamId>,
    next_id: u64,
    /// The number our next stream gets on the wire.
    next_local_num: u64,
    /// The highest number of a stream the peer opened, if any.
    remote_high: Option<u64>,
    going_away: bool,
    /// A protocol error was reported: the session takes no more bytes.
    failed: bool,
    /// The start of a frame header whose end has not arrived.
    header: Vec<u8>,
    /// The current frame body: where it goes and how many bytes are still to come.
    body: Option<(Body, usize)>,
    out: Vec<u8>,
    events: VecDeque<MuxEvent>,
}

impl Mplex {
    /// A session with these limits. Either side may open streams; nothing is sent until then.
    pub fn new(config: MplexConfig) -> Self {
        Self {
            config,
            streams: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_id: 0,
            next_local_num: 0,
            remote_high: None,
            going_away: false,
            failed: false,
            header: Vec::new(),
            body: None,
            out: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The number of streams open (in at least one direction).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Reads frames from `input`, delivering data as it comes.
    fn read(&mut self, mut input: &[u8]) -> Result<(), MuxError> {
        while !input.is_empty() {
            if let Some((body, remaining)) = self.body {
                let n = remaining.min(input.len());
                self.body = if remaining == n { None } else { Some((body, remaining - n)) };
                if let Body::Data(id) = body {
                    self.deliver(id, &input[..n]);
                }
                input = &input[n..];
                continue;
            }
            let had = self.header.len();
            let take = input.len().min(MAX_HEADER_LEN - had);
            self.header.extend_from_slice(&input[..take]);
            match parse_header(&self.header, self.config.max_frame_size)? {
                None => input = &input[take..],
                Some((header, len, used)) => {
                    self.header.clear();
                    input = &input[used - had..];
                    let body = self.start_frame(header, len)?;
                    if len > 0 {
                        self.body = Some((body, len));
                    }
                }
            }
        }
        Ok(())
    }

    /// Acts on a frame header; says where its body goes.
    fn start_frame(&mut self, header: u64, len: usize) -> Result<Body, MuxError> {
        let (kind, from_initiator) = Kind::from_flag(header & 7)?;
        let key = WireKey { num: header >> 3, local_initiator: !from_initiator };
        if kind == Kind::New {
            self.remote_opened(key)?;
            return Ok(Body::Skip);
        }
        let Some(&id) = self.by_key.get(&key) else {
            return if self.ever_opened(key) {
                Ok(Body::Skip)
            } else {
                Err(MuxError::Protocol(format!("mplex {kind:?} frame on stream {key:?}, never opened")))
            };
        };
        let Some(stream) = self.streams.get_mut(&id) else { return Ok(Body::Skip) };
        match kind {
            Kind::Message if stream.remote_closed => {
                return Err(MuxError::Protocol(format!("mplex data on stream {key:?} after its close")));
            }
            Kind::Message if len > 0 => return Ok(Body::Data(id)),
            Kind::Close if !stream.remote_closed => {
                stream.remote_closed = true;
                self.events.push_back(MuxEvent::Closed(id));
                if stream.local_closed {
                    self.forget(id);
                }
            }
            Kind::Reset => {
                self.events.push_back(MuxEvent::Reset(id));
                self.forget(id);
            }
            _ => {}
        }
        Ok(Body::Skip)
    }

    /// The peer opened stream `key`: accept it, or reset it if we are full or going away.
    fn remote_opened(&mut self, key: WireKey) -> Result<(), MuxError> {
        if self.by_key.contains_key(&key) {
            return Err(MuxError::Protocol(format!("mplex stream {} opened twice", key.num)));
        }
        self.remote_high = Some(self.remote_high.map_or(key.num, |h| h.max(key.num)));
        if self.going_away || self.streams.len() >= self.config.max_streams {
            self.write_frame(key, Kind::Reset, &[]);
            return Ok(());
        }
        let id = self.insert(key);
        self.events.push_back(MuxEvent::Opened(id));
        Ok(())
    }

    /// Whether a stream with this key was open at some time (so frames for it are stale, not
    /// a violation). The peer's numbers are judged by the highest it used.
    fn ever_opened(&self, key: WireKey) -> bool {
        if key.local_initiator { key.num < self.next_local_num } else { self.remote_high.is_some_and(|h| key.num <= h) }
    }

    /// Hands data of an open stream to the caller, resetting the stream if too much waits.
    fn deliver(&mut self, id: StreamId, data: &[u8]) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        stream.undrained += data.len();
        if stream.undrained > self.config.max_buffered_per_stream {
            let key = stream.key;
            self.write_frame(key, Kind::Reset, &[]);
            self.events.push_back(MuxEvent::Reset(id));
            self.forget(id);
            return;
        }
        if let Some(MuxEvent::Data(last, bytes)) = self.events.back_mut()
            && *last == id
        {
            bytes.extend_from_slice(data);
            return;
        }
        self.events.push_back(MuxEvent::Data(id, data.to_vec()));
    }

    fn insert(&mut self, key: WireKey) -> StreamId {
        let id = StreamId(self.next_id);
        self.next_id += 1;
        self.streams.insert(id, Stream { key, local_closed: false, remote_closed: false, undrained: 0 });
        self.by_key.insert(key, id);
        id
    }

    fn forget(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.remove(&id) {
            self.by_key.remove(&stream.key);
        }
    }

    /// The stream `id` if it is open for writing.
    fn writable(&self, id: StreamId) -> Result<WireKey, MuxError> {
        match self.streams.get(&id) {
            Some(s) if !s.local_closed => Ok(s.key),
            _ => Err(MuxError::UnknownStream(id)),
        }
    }

    fn write_frame(&mut self, key: WireKey, kind: Kind, data: &[u8]) {
        varint::put(&mut self.out, (key.num << 3) | kind.flag(key.local_initiator));
        varint::put(&mut self.out, data.len() as u64);
        self.out.extend_from_slice(data);
    }
}

/// Reads a frame header (header varint, length varint) at the start of `buf`: the header, the
/// length and the bytes they took, or `None` if more bytes are needed.
fn parse_header(buf: &[u8], max_frame: usize) -> Result<Option<(u64, usize, usize)>, MuxError> {
    let overflow = || MuxError::Protocol("mplex varint longer than 9 bytes".into());
    let (header, n) = match varint::get(buf) {
        Ok(v) => v,
        Err(VarintError::Truncated) => return Ok(None),
        Err(VarintError::Overflow) => return Err(overflow()),
    };
    let (len, m) = match varint::get(&buf[n..]) {
        Ok(v) => v,
        Err(VarintError::Truncated) => return Ok(None),
        Err(VarintError::Overflow) => return Err(overflow()),
    };
    match usize::try_from(len) {
        Ok(len) if len <= max_frame => Ok(Some((header, len, n + m))),
        _ => Err(MuxError::Protocol(format!("mplex frame of {len} bytes, more than {max_frame}"))),
    }
}

impl Muxer for Mplex {
    fn handle_bytes(&mut self, _now: Nanos, bytes: &[u8]) -> Result<(), MuxError> {
        if self.failed {
            return Err(MuxError::Protocol("mplex session already failed".into()));
        }
        let result = self.read(bytes);
        self.failed = result.is_err();
        result
    }

    fn open(&mut self, _now: Nanos) -> Result<StreamId, MuxError> {
        if self.going_away {
            return Err(MuxError::CannotOpen("session is going away"));
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(MuxError::CannotOpen("stream limit reached"));
        }
        if self.next_local_num > MAX_STREAM_NUM {
            return Err(MuxError::CannotOpen("stream numbers exhausted"));
        }
        let key = WireKey { num: self.next_local_num, local_initiator: true };
        self.next_local_num += 1;
        self.write_frame(key, Kind::New, &[]);
        Ok(self.insert(key))
    }

    fn send(&mut self, _now: Nanos, id: StreamId, data: &[u8]) -> Result<(), MuxError> {
        let key = self.writable(id)?;
        let frame = self.config.max_frame_size.clamp(1, SPEC_MAX_FRAME);
        for chunk in data.chunks(frame) {
            self.write_frame(key, Kind::Message, chunk);
        }
        Ok(())
    }

    fn close(&mut self, _now: Nanos, id: StreamId) -> Result<(), MuxError> {
        let key = self.writable(id)?;
        self.write_frame(key, Kind::Close, &[]);
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.local_closed = true;
            if stream.remote_closed {
                self.forget(id);
            }
        }
        Ok(())
    }

    fn reset(&mut self, _now: Nanos, id: StreamId) -> Result<(), MuxError> {
        let key = self.streams.get(&id).ok_or(MuxError::UnknownStream(id))?.key;
        self.write_frame(key, Kind::Reset, &[]);
        self.forget(id);
        Ok(())
    }

    fn go_away(&mut self, _now: Nanos) {
        self.going_away = true;
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() { None } else { Some(std::mem::take(&mut self.out)) }
    }

    fn poll_event(&mut self) -> Option<MuxEvent> {
        let event = self.events.pop_front()?;
        if let MuxEvent::Data(id, data) = &event
            && let Some(stream) = self.streams.get_mut(id)
        {
            stream.undrained = stream.undrained.saturating_sub(data.len());
        }
        Some(event)
    }

    fn poll_timeout(&self) -> Option<Nanos> {
        None
    }

    fn handle_timeout(&mut self, _now: Nanos) {}

    fn queued(&self, _id: StreamId) -> usize {
        0
    }

    fn data_in(&self, batch: &[u8], id: StreamId) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let Some(key) = self.streams.get(&id).map(|s| s.key) else { return spans };
        let ours = (key.num << 3) | Kind::Message.flag(key.local_initiator);
        let mut at = 0;
        while let Some(rest) = batch.get(at..)
            && let Ok(Some((header, len, took))) = parse_header(rest, usize::MAX)
        {
            at += took + len;
            if header == ours && len > 0 {
                spans.push((at, len));
            }
        }
        spans
    }
}

#[cfg(test)]
mod tests;
