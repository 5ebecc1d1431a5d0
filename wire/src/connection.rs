//! One libp2p connection over a byte stream (a TCP connection), with every layer stacked as
//! rust-libp2p, go-libp2p and js-libp2p stack them: multistream-select agrees on `/noise`, Noise
//! XX authenticates both identity keys and encrypts, multistream-select inside Noise agrees on a
//! muxer (yamux or mplex), and on every muxed stream multistream-select agrees on the
//! application protocol. This side speaks gossipsub (`/meshsub/1.2.0`, `/meshsub/1.1.0`), and
//! answers identify (`/ipfs/id/1.0.0`) and ping (`/ipfs/ping/1.0.0`) as clients expect of a
//! peer.
//!
//! Sans-IO like its parts: [`Connection::handle_bytes`] takes what the TCP connection received,
//! [`Connection::poll_transmit`] gives what to write to it, [`Connection::poll_event`] gives the
//! peer's identity once authenticated and each gossipsub RPC it sent, and
//! [`Connection::send_rpc`] sends one. Gossipsub uses one stream per direction: this side opens
//! its own outbound stream as soon as the muxer is agreed and writes every RPC there (RPCs sent
//! before the stream is agreed wait, in order); RPCs are read from the streams the peer opens.
//! [`Connection::send_rpc_marked`] sends one and, once its last byte has left,
//! [`Connection::poll_mark`] says where it ends on the wire (see [`marks`]).

use crate::Nanos;
use crate::frame::{FrameDecoder, encode_frame};
use crate::gossipsub::{self, Rpc};
use crate::identify::{self, Identify};
use crate::identity::{Keypair, PeerId};
use crate::mplex::{Mplex, MplexConfig};
use crate::multistream::{Multistream, MultistreamEvent};
use crate::mux::{MuxEvent, Muxer, StreamId};
use crate::noise::{Noise, NoiseEvent};
use crate::ping::{self, PingResponder};
use crate::yamux::{self, Yamux, YamuxConfig};
use marks::Marks;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

mod marks;

/// The security protocol every connection negotiates.
pub const NOISE: &str = "/noise";

/// A stream muxer this side can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxKind {
    /// `/yamux/1.0.0`: flow-controlled streams (rust-libp2p's and js-libp2p's default).
    Yamux,
    /// `/mplex/6.7.0`: no flow control; what older Ethereum clients speak.
    Mplex,
}

impl MuxKind {
    /// The protocol id multistream-select agrees on.
    pub fn protocol(self) -> &'static str {
        match self {
            MuxKind::Yamux => "/yamux/1.0.0",
            MuxKind::Mplex => "/mplex/6.7.0",
        }
    }
}

/// What every connection of a run shares: protocols offered and limits. Held behind an `Arc`, so
/// a connection costs no copy of it.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Muxers in order of preference (a dialer proposes them in this order).
    pub muxers: Vec<MuxKind>,
    /// Gossipsub protocol ids in order of preference.
    pub gossip_protocols: Vec<String>,
    /// The largest gossipsub RPC accepted from the peer (bytes, framing excluded).
    pub max_rpc_bytes: usize,
    /// Identify's `agentVersion`.
    pub agent_version: String,
    /// Identify's `protocolVersion`.
    pub protocol_version: String,
    /// Request/response protocols this side answers (one request per stream, e.g. Ethereum's
    /// req/resp methods): a stream the peer opens with one of them is read to its end and
    /// handed up as [`ConnEvent::Request`].
    pub request_protocols: Vec<String>,
    /// The largest request accepted on such a stream, and the largest response read for a
    /// request this side sent (bytes).
    pub max_request_bytes: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            muxers: vec![MuxKind::Yamux, MuxKind::Mplex],
            gossip_protocols: vec![gossipsub::PROTOCOL_V1_2.into(), gossipsub::PROTOCOL_V1_1.into()],
            max_rpc_bytes: 10 << 20,
            agent_version: concat!("thermocline/", env!("CARGO_PKG_VERSION")).into(),
            protocol_version: "ipfs/0.1.0".into(),
            request_protocols: Vec::new(),
            max_request_bytes: 10 << 20,
        }
    }
}

/// Which end of the TCP connection this side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// It connected: it proposes protocols and initiates Noise.
    Dialer,
    /// It accepted the connection.
    Listener,
}

/// What the connection learnt from the peer, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnEvent {
    /// Noise authenticated the peer: this is its identity.
    Established {
        /// The peer's id, from the identity key it proved it holds.
        peer: PeerId,
    },
    /// The muxer is agreed; streams (and so RPCs) can flow.
    Ready {
        /// The muxer agreed on.
        muxer: MuxKind,
    },
    /// A gossipsub RPC from the peer.
    Rpc(Rpc),
    /// The peer sent a request on one of [`ConnConfig::request_protocols`] and closed its side:
    /// answer it with [`Connection::respond`].
    Request {
        /// The stream to answer on.
        stream: StreamId,
        /// The protocol agreed on the stream.
        protocol: String,
        /// Every byte the peer sent on it.
        body: Vec<u8>,
    },
    /// The answer to a request this side sent ([`Connection::request`]): every byte the peer sent
    /// before closing the stream, or `None` if it refused the protocol or reset the stream.
    Response {
        /// The request's stream.
        stream: StreamId,
        /// The answer.
        body: Option<Vec<u8>>,
    },
}

/// Why the connection failed. Every error is fatal: the caller closes the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// Negotiating a protocol failed (which layer, and why).
    #[error("negotiating the {layer}: {detail}")]
    Negotiation {
        /// `security`, `muxer`.
        layer: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The Noise layer refused the peer's bytes.
    #[error("noise: {0}")]
    Noise(String),
    /// The muxer refused the peer's bytes.
    #[error("muxer: {0}")]
    Mux(String),
    /// The connection had already failed.
    #[error("the connection has failed")]
    Closed,
}

/// Addresses this side tells the peer about in identify.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// This side's listen addresses (multiaddr bytes).
    pub listen: Vec<Vec<u8>>,
    /// The peer's address as this side sees it (multiaddr bytes).
    pub observed: Option<Vec<u8>>,
}

/// Why a stream is being negotiated.
enum Purpose {
    /// The peer opened it.
    Inbound,
    /// This side's gossipsub stream.
    Gossip,
    /// A request of this side's, with its bytes.
    Request(Vec<u8>),
}

/// What a muxed stream is doing.
enum Stream {
    /// Agreeing on its protocol.
    Negotiating { ms: Multistream, purpose: Purpose },
    /// Gossipsub RPCs, length-prefixed.
    Gossip(FrameDecoder),
    /// Ping: echo.
    Ping(PingResponder),
    /// Reading a request the peer sends, until it closes its side.
    Request { protocol: String, buf: Vec<u8> },
    /// A request handed up, waiting for [`Connection::respond`].
    Answering,
    /// Reading the answer to this side's request, until the peer closes the stream.
    Requesting { buf: Vec<u8> },
    /// Answered and closed by this side (identify): what else arrives is ignored.
    Done,
}

impl Stream {
    /// Whether this is one of this side's requests, still owed a [`ConnEvent::Response`].
    fn awaits_response(&self) -> bool {
        matches!(self, Stream::Requesting { .. } | Stream::Negotiating { purpose: Purpose::Request(_), .. })
    }
}

/// The layers above TCP once `/noise` is agreed.
struct Secured {
    noise: Noise,
    /// Agreeing on the muxer (`None` until Noise is established), then the muxer.
    muxer_ms: Option<Multistream>,
    mux: Option<Box<dyn Muxer + Send>>,
    streams: BTreeMap<StreamId, Stream>,
    /// This side's gossipsub stream, once opened.
    gossip_out: Option<StreamId>,
    /// Framed RPCs waiting for that stream's protocol to be agreed.
    gossip_pending: Vec<u8>,
    /// Bytes of protocol negotiation written on that stream (before any RPC).
    gossip_negotiation: u64,
}

/// What the layers need of the connection besides their own state.
struct Ctx<'a> {
    side: Side,
    config: &'a ConnConfig,
    identity: &'a Keypair,
    addresses: &'a Addresses,
}

impl Ctx<'_> {
    /// The protocols this side answers on streams the peer opens.
    fn supported(&self) -> Vec<String> {
        let mut protocols = self.config.gossip_protocols.clone();
        protocols.push(identify::PROTOCOL.into());
        protocols.push(ping::PROTOCOL.into());
        protocols.extend(self.config.request_protocols.iter().cloned());
        protocols
    }

    /// The identify message this side sends when asked.
    fn identify(&self) -> Identify {
        Identify {
            protocol_version: self.config.protocol_version.clone(),
            agent_version: self.config.agent_version.clone(),
            public_key: self.identity.public().to_protobuf(),
            listen_addrs: self.addresses.listen.clone(),
            observed_addr: self.addresses.observed.clone(),
            protocols: self.supported(),
            signed_peer_record: None,
        }
    }
}

impl Secured {
    /// Plaintext from Noise: to the muxer negotiation while it lasts, then to the muxer.
    fn feed_muxer(
        &mut self,
        now: Nanos,
        plain: &[u8],
        ctx: &Ctx<'_>,
        events: &mut VecDeque<ConnEvent>,
    ) -> Result<(), ConnError> {
        if let Some(m) = self.mux.as_mut() {
            return m.handle_bytes(now, plain).map_err(|e| ConnError::Mux(e.to_string()));
        }
        let Some(ms) = self.muxer_ms.as_mut() else {
            return Err(ConnError::Noise("data before the handshake completed".into()));
        };
        ms.handle_bytes(plain).map_err(|e| negotiation("muxer", e))?;
        while let Some(b) = ms.poll_transmit() {
            self.noise.send(&b).map_err(|e| ConnError::Noise(e.to_string()))?;
        }
        let (protocol, rest) = match ms.poll_event() {
            None => return Ok(()),
            Some(MultistreamEvent::Agreed { protocol, rest }) => (protocol, rest),
            Some(_) => return Err(ConnError::Negotiation { layer: "muxer", detail: "no muxer in common".into() }),
        };
        self.muxer_ms = None;
        let kind = if protocol == MuxKind::Yamux.protocol() { MuxKind::Yamux } else { MuxKind::Mplex };
        let mut mux: Box<dyn Muxer + Send> = match kind {
            MuxKind::Yamux => {
                let role = if ctx.side == Side::Dialer { yamux::Role::Client } else { yamux::Role::Server };
                Box::new(Yamux::new(role, YamuxConfig::default()))
            }
            MuxKind::Mplex => Box::new(Mplex::new(MplexConfig::default())),
        };
        let ms = Multistream::dialer(ctx.config.gossip_protocols.clone()).map_err(|e| negotiation("gossipsub", e))?;
        let id = mux.open(now).map_err(|e| ConnError::Mux(e.to_string()))?;
        self.streams.insert(id, Stream::Negotiating { ms, purpose: Purpose::Gossip });
        self.gossip_out = Some(id);
        mux.handle_bytes(now, &rest).map_err(|e| ConnError::Mux(e.to_string()))?;
        self.mux = Some(mux);
        events.push_back(ConnEvent::Ready { muxer: kind });
        Ok(())
    }

    /// Handles what the muxer reports: new streams, their bytes, their ends.
    fn streams_events(&mut self, now: Nanos, ctx: &Ctx<'_>, events: &mut VecDeque<ConnEvent>) -> Result<(), ConnError> {
        while let Some(event) = self.mux.as_mut().and_then(|m| m.poll_event()) {
            match event {
                MuxEvent::Opened(id) => {
                    let ms = Multistream::listener(ctx.supported()).map_err(|e| negotiation("stream", e))?;
                    self.streams.insert(id, Stream::Negotiating { ms, purpose: Purpose::Inbound });
                }
                MuxEvent::Data(id, data) => self.on_stream_data(now, id, &data, ctx, events),
                MuxEvent::Closed(id) => match self.streams.remove(&id) {
                    Some(Stream::Request { protocol, buf }) => {
                        self.streams.insert(id, Stream::Answering);
                        events.push_back(ConnEvent::Request { stream: id, protocol, body: buf });
                    }
                    Some(Stream::Requesting { buf }) => {
                        events.push_back(ConnEvent::Response { stream: id, body: Some(buf) })
                    }
                    Some(Stream::Negotiating { purpose: Purpose::Request(_), .. }) => {
                        events.push_back(ConnEvent::Response { stream: id, body: None })
                    }
                    _ => self.forget(id),
                },
                MuxEvent::Reset(id) => {
                    if self.streams.get(&id).is_some_and(Stream::awaits_response) {
                        events.push_back(ConnEvent::Response { stream: id, body: None });
                    }
                    self.forget(id);
                }
                MuxEvent::GoAway => {}
            }
        }
        Ok(())
    }

    /// Stream `id` is gone.
    fn forget(&mut self, id: StreamId) {
        self.streams.remove(&id);
        if self.gossip_out == Some(id) {
            self.gossip_out = None;
        }
    }

    /// Resets stream `id` and forgets it.
    fn abandon(&mut self, now: Nanos, id: StreamId) {
        self.forget(id);
        if let Some(mux) = self.mux.as_mut() {
            let _ = mux.reset(now, id);
        }
    }
}

enum State {
    /// Agreeing on `/noise` over the raw bytes.
    Security {
        ms: Multistream,
        seed: [u8; 32],
        expected: Option<PeerId>,
    },
    Secured(Box<Secured>),
    Failed,
}

/// One libp2p connection (see the module documentation).
pub struct Connection {
    side: Side,
    config: Arc<ConnConfig>,
    identity: Keypair,
    addresses: Addresses,
    state: State,
    out: Vec<u8>,
    events: VecDeque<ConnEvent>,
    /// Framed RPCs sent before Noise was agreed on.
    early: Vec<u8>,
    /// Bytes [`Connection::poll_transmit`] has handed out, ever.
    taken: u64,
    /// Marked RPCs (see [`Connection::send_rpc_marked`]).
    marks: Marks,
}

impl Connection {
    /// A connection this side dialled, to `expected` if it knows whom it dials. `seed` makes the
    /// Noise keys (and so every byte sent) deterministic.
    pub fn dial(
        identity: Keypair,
        seed: [u8; 32],
        expected: Option<PeerId>,
        config: Arc<ConnConfig>,
        addresses: Addresses,
    ) -> Connection {
        let ms = Multistream::dialer(vec![NOISE.into()]).expect("a valid protocol name");
        Self::new(Side::Dialer, State::Security { ms, seed, expected }, identity, config, addresses)
    }

    /// A connection this side accepted.
    pub fn accept(identity: Keypair, seed: [u8; 32], config: Arc<ConnConfig>, addresses: Addresses) -> Connection {
        let ms = Multistream::listener(vec![NOISE.into()]).expect("a valid protocol name");
        Self::new(Side::Listener, State::Security { ms, seed, expected: None }, identity, config, addresses)
    }

    fn new(side: Side, state: State, identity: Keypair, config: Arc<ConnConfig>, addresses: Addresses) -> Self {
        let mut c = Connection {
            side,
            config,
            identity,
            addresses,
            state,
            out: Vec::new(),
            events: VecDeque::new(),
            early: Vec::new(),
            taken: 0,
            marks: Marks::default(),
        };
        c.flush(0);
        c
    }

    /// Which end this side is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Takes bytes received on the TCP connection (any split).
    pub fn handle_bytes(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), ConnError> {
        let r = self.take(now, bytes);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn take(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), ConnError> {
        match &mut self.state {
            State::Failed => return Err(ConnError::Closed),
            State::Security { ms, .. } => {
                ms.handle_bytes(bytes).map_err(|e| negotiation("security", e))?;
                if let Some(rest) = self.secure()? {
                    return self.take(now, &rest);
                }
            }
            State::Secured(s) => {
                s.noise.handle_bytes(bytes).map_err(|e| ConnError::Noise(e.to_string()))?;
                self.drive(now)?;
            }
        }
        self.flush(now);
        Ok(())
    }

    /// Once `/noise` is agreed: starts Noise, and returns the bytes that followed the agreement.
    fn secure(&mut self) -> Result<Option<Vec<u8>>, ConnError> {
        let State::Security { ms, seed, expected } = &mut self.state else { return Ok(None) };
        while let Some(b) = ms.poll_transmit() {
            self.out.extend_from_slice(&b);
        }
        let Some(event) = ms.poll_event() else { return Ok(None) };
        let rest = match event {
            MultistreamEvent::Agreed { rest, .. } => rest,
            MultistreamEvent::Refused => {
                return Err(ConnError::Negotiation { layer: "security", detail: "the peer refused /noise".into() });
            }
            MultistreamEvent::Confirmed { .. } => unreachable!("only lazy dialers confirm"),
        };
        let noise = match self.side {
            Side::Dialer => Noise::initiator(&self.identity, *seed, *expected),
            Side::Listener => Noise::responder(&self.identity, *seed),
        }
        .map_err(|e| ConnError::Noise(e.to_string()))?;
        self.state = State::Secured(Box::new(Secured {
            noise,
            muxer_ms: None,
            mux: None,
            streams: BTreeMap::new(),
            gossip_out: None,
            gossip_pending: std::mem::take(&mut self.early),
            gossip_negotiation: 0,
        }));
        Ok(Some(rest))
    }

    /// Takes what Noise decrypted up through the muxer and the streams.
    fn drive(&mut self, now: Nanos) -> Result<(), ConnError> {
        let Connection { side, config, identity, addresses, state, events, .. } = self;
        let State::Secured(s) = state else { return Ok(()) };
        let ctx = Ctx { side: *side, config, identity, addresses };
        while let Some(event) = s.noise.poll_event() {
            match event {
                NoiseEvent::Established { remote_peer, .. } => {
                    events.push_back(ConnEvent::Established { peer: remote_peer });
                    let muxers: Vec<String> = ctx.config.muxers.iter().map(|m| m.protocol().to_string()).collect();
                    let ms = match ctx.side {
                        Side::Dialer => Multistream::dialer(muxers),
                        Side::Listener => Multistream::listener(muxers),
                    };
                    s.muxer_ms = Some(ms.map_err(|e| negotiation("muxer", e))?);
                }
                NoiseEvent::Data(plain) => s.feed_muxer(now, &plain, &ctx, events)?,
            }
            s.streams_events(now, &ctx, events)?;
        }
        Ok(())
    }

    /// Sends a gossipsub RPC to the peer (after whatever was sent before it). Before the
    /// gossipsub stream is agreed, RPCs wait in order.
    pub fn send_rpc(&mut self, now: Nanos, rpc: &Rpc) -> Result<(), ConnError> {
        self.send_frame(now, rpc, None)
    }

    /// Sends a gossipsub RPC as [`Connection::send_rpc`] does, and notes `tag`: once the RPC's
    /// last byte has left (the stream's flow control may hold it back for a while),
    /// [`Connection::poll_mark`] gives `tag` with the wire offset just past the Noise message
    /// that carries that byte, the point from which the peer can read the whole RPC.
    pub fn send_rpc_marked(&mut self, now: Nanos, rpc: &Rpc, tag: u64) -> Result<(), ConnError> {
        self.send_frame(now, rpc, Some(tag))
    }

    /// The next marked RPC that has left whole: its tag and the wire offset where the peer can
    /// read it (bytes from the start of what [`Connection::poll_transmit`] hands out).
    pub fn poll_mark(&mut self) -> Option<(u64, u64)> {
        self.marks.poll()
    }

    fn send_frame(&mut self, now: Nanos, rpc: &Rpc, tag: Option<u64>) -> Result<(), ConnError> {
        let frame = encode_frame(&rpc.encode());
        if !matches!(self.state, State::Failed) {
            self.marks.frame(frame.len(), tag);
        }
        let s = match &mut self.state {
            State::Failed => return Err(ConnError::Closed),
            State::Security { .. } => {
                self.early.extend_from_slice(&frame);
                return Ok(());
            }
            State::Secured(s) => s,
        };
        match (s.gossip_out, s.mux.as_mut()) {
            (Some(id), Some(mux)) if matches!(s.streams.get(&id), Some(Stream::Gossip(_))) => {
                mux.send(now, id, &frame).map_err(|e| ConnError::Mux(e.to_string()))?
            }
            _ => s.gossip_pending.extend_from_slice(&frame),
        }
        self.flush(now);
        Ok(())
    }

    /// Moves every layer's output down: stream negotiations into the muxer, the muxer into
    /// Noise, Noise onto the wire.
    fn flush(&mut self, now: Nanos) {
        let wire = self.taken + self.out.len() as u64;
        let marks = &mut self.marks;
        let State::Secured(s) = &mut self.state else {
            if let State::Security { ms, .. } = &mut self.state {
                while let Some(b) = ms.poll_transmit() {
                    self.out.extend_from_slice(&b);
                }
            }
            return;
        };
        if let Some(ms) = s.muxer_ms.as_mut() {
            while let Some(b) = ms.poll_transmit() {
                let _ = s.noise.send(&b);
            }
        }
        if let Some(mux) = s.mux.as_mut() {
            for (&id, st) in s.streams.iter_mut() {
                if let Stream::Negotiating { ms, .. } = st {
                    while let Some(b) = ms.poll_transmit() {
                        if s.gossip_out == Some(id) {
                            s.gossip_negotiation += b.len() as u64;
                        }
                        let _ = mux.send(now, id, &b);
                    }
                }
            }
            while let Some(b) = mux.poll_transmit() {
                if let Some(id) = s.gossip_out {
                    let at = wire + s.noise.queued() as u64;
                    marks.batch(&mux.data_in(&b, id), b.len(), at, s.gossip_negotiation);
                }
                let _ = s.noise.send(&b);
            }
        }
        if s.gossip_out.is_none() && marks.waiting() && s.mux.is_some() {
            marks.abandon();
        }
        while let Some(b) = s.noise.poll_transmit() {
            self.out.extend_from_slice(&b);
        }
    }

    /// Bytes to write to the TCP connection, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let out = (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))?;
        self.taken += out.len() as u64;
        Some(out)
    }

    /// The next thing learnt from the peer, if any.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        match &self.state {
            State::Secured(s) => s.mux.as_ref().and_then(|m| m.poll_timeout()),
            _ => None,
        }
    }

    /// Lets time pass to `now`.
    pub fn handle_timeout(&mut self, now: Nanos) {
        if let State::Secured(s) = &mut self.state
            && let Some(m) = s.mux.as_mut()
        {
            m.handle_timeout(now);
        }
        self.flush(now);
    }

    /// Answers the request on `stream` (see [`ConnEvent::Request`]) with `bytes`, then closes
    /// the stream. A stream that is not waiting for an answer (the peer reset it) is ignored.
    pub fn respond(&mut self, now: Nanos, stream: StreamId, bytes: &[u8]) -> Result<(), ConnError> {
        let State::Secured(s) = &mut self.state else { return Err(ConnError::Closed) };
        if !matches!(s.streams.get(&stream), Some(Stream::Answering)) {
            return Ok(());
        }
        s.streams.remove(&stream);
        if let Some(mux) = s.mux.as_mut() {
            let _ = mux.send(now, stream, bytes).and_then(|()| mux.close(now, stream));
        }
        self.flush(now);
        Ok(())
    }

    /// Sends a request on a new stream: agrees on `protocol`, writes `body`, closes this side.
    /// What the peer answers comes as [`ConnEvent::Response`] on the returned stream.
    pub fn request(&mut self, now: Nanos, protocol: &str, body: Vec<u8>) -> Result<StreamId, ConnError> {
        let State::Secured(s) = &mut self.state else { return Err(ConnError::Closed) };
        let Some(mux) = s.mux.as_mut() else { return Err(ConnError::Closed) };
        let ms = Multistream::dialer(vec![protocol.to_string()]).map_err(|e| negotiation("request", e))?;
        let id = mux.open(now).map_err(|e| ConnError::Mux(e.to_string()))?;
        s.streams.insert(id, Stream::Negotiating { ms, purpose: Purpose::Request(body) });
        self.flush(now);
        Ok(id)
    }

    /// Whether the connection has failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }
}

#[cfg(test)]
mod tests;

fn negotiation(layer: &'static str, e: impl std::fmt::Display) -> ConnError {
    ConnError::Negotiation { layer, detail: e.to_string() }
}

impl Secured {
    /// Bytes arrived on stream `id`: negotiate, then decode RPCs, answer identify, echo pings.
    /// A stream that breaks its protocol is reset; the connection goes on.
    fn on_stream_data(
        &mut self,
        now: Nanos,
        id: StreamId,
        data: &[u8],
        ctx: &Ctx<'_>,
        events: &mut VecDeque<ConnEvent>,
    ) {
        if self.stream_data(now, id, data, ctx, events).is_err() {
            if self.streams.get(&id).is_some_and(Stream::awaits_response) {
                events.push_back(ConnEvent::Response { stream: id, body: None });
            }
            self.abandon(now, id);
        }
    }

    fn stream_data(
        &mut self,
        now: Nanos,
        id: StreamId,
        data: &[u8],
        ctx: &Ctx<'_>,
        events: &mut VecDeque<ConnEvent>,
    ) -> Result<(), ()> {
        let mux = self.mux.as_mut().expect("streams exist only once the muxer does");
        let Some(st) = self.streams.get_mut(&id) else { return Ok(()) };
        let mut data = data.to_vec();
        if let Stream::Negotiating { ms, purpose } = st {
            ms.handle_bytes(&data).map_err(drop)?;
            while let Some(b) = ms.poll_transmit() {
                if self.gossip_out == Some(id) {
                    self.gossip_negotiation += b.len() as u64;
                }
                mux.send(now, id, &b).map_err(drop)?;
            }
            let (protocol, rest) = match ms.poll_event() {
                None => return Ok(()),
                Some(MultistreamEvent::Agreed { protocol, rest }) => (protocol, rest),
                Some(_) => return Err(()),
            };
            let purpose = std::mem::replace(purpose, Purpose::Inbound);
            data = rest;
            *st = if let Purpose::Request(body) = &purpose {
                mux.send(now, id, body).map_err(drop)?;
                mux.close(now, id).map_err(drop)?;
                Stream::Requesting { buf: Vec::new() }
            } else if protocol == identify::PROTOCOL {
                mux.send(now, id, &encode_frame(&ctx.identify().encode())).map_err(drop)?;
                mux.close(now, id).map_err(drop)?;
                Stream::Done
            } else if protocol == ping::PROTOCOL {
                Stream::Ping(PingResponder::new())
            } else if ctx.config.request_protocols.contains(&protocol) {
                Stream::Request { protocol, buf: Vec::new() }
            } else {
                Stream::Gossip(FrameDecoder::new(ctx.config.max_rpc_bytes))
            };
            if matches!(purpose, Purpose::Gossip) && !self.gossip_pending.is_empty() {
                mux.send(now, id, &std::mem::take(&mut self.gossip_pending)).map_err(drop)?;
            }
        }
        match st {
            Stream::Gossip(decoder) => {
                decoder.push(&data);
                while let Some(frame) = decoder.next().map_err(drop)? {
                    events.push_back(ConnEvent::Rpc(Rpc::decode(&frame).map_err(drop)?));
                }
            }
            Stream::Ping(p) => {
                p.handle_bytes(&data);
                while let Some(b) = p.poll_transmit() {
                    mux.send(now, id, &b).map_err(drop)?;
                }
            }
            Stream::Request { buf, .. } | Stream::Requesting { buf } => {
                if buf.len() + data.len() > ctx.config.max_request_bytes {
                    return Err(());
                }
                buf.extend_from_slice(&data);
            }
            Stream::Negotiating { .. } | Stream::Answering | Stream::Done => {}
        }
        Ok(())
    }
}
