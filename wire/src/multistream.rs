//! multistream-select 1.0 (`/multistream/1.0.0`): how two peers agree on the protocol a raw
//! connection or a muxed stream will speak. Every message is a varint length, then UTF-8 text
//! ending in `\n` (the newline counts in the length). Both sides first send the header
//! `/multistream/1.0.0`; the dialer then proposes protocols one at a time, and the listener
//! answers each with the same protocol (agreed) or `na` (not available). A listener also
//! answers `ls` with the protocols it supports.
//!
//! One [`Multistream`] runs one negotiation, sans-IO: peer bytes go in through
//! [`Multistream::handle_bytes`] (any split), bytes to send come out of
//! [`Multistream::poll_transmit`], the outcome out of [`Multistream::poll_event`].
//!
//! # Feeding bytes and the end of the negotiation
//!
//! The caller feeds every byte the peer sends to `handle_bytes` while
//! [`Multistream::wants_bytes`] is true. The event that ends the negotiation carries `rest`:
//! the bytes that arrived after the last multistream message, which belong to the next layer
//! (a peer may pipeline its first application bytes behind its last negotiation message).
//! From then on the caller gives the peer's bytes to the next layer, starting with `rest`;
//! `handle_bytes` refuses more input with [`MultistreamError::Finished`]. Every error is fatal
//! to the negotiation: the caller closes the stream or connection.
//!
//! - [`Multistream::dialer`] sends the header and its first proposal at once, moves to the next
//!   proposal on each `na`, and ends with [`MultistreamEvent::Agreed`] (the listener echoed a
//!   proposal) or [`MultistreamEvent::Refused`] (every proposal got `na`).
//! - [`Multistream::listener`] waits for the dialer's header, answers with its own, answers
//!   each proposal with an echo or `na` and each `ls` with its list, and ends with
//!   [`MultistreamEvent::Agreed`] once it echoes a supported protocol (it never refuses on its
//!   own: a dialer out of proposals just closes the stream).
//! - [`Multistream::dialer_lazy`] is rust-libp2p's "V1Lazy": it settles on its one protocol
//!   before any answer. It queues the header and the proposal and at once emits `Agreed` with an
//!   empty `rest`, so the caller may send application bytes right behind the proposal. It still
//!   wants bytes after that: the listener's header and echo must be taken off the front of the
//!   incoming bytes. When the echo has arrived it emits [`MultistreamEvent::Confirmed`] with the
//!   application bytes that followed it, and stops wanting bytes. An `na` is then an error
//!   ([`MultistreamError::LazyRefused`]): the listener has already taken our application bytes
//!   for more negotiation, so the stream is lost.

use crate::varint::{self, VarintError};

/// The multistream-select 1.0 header, the first message each side sends.
pub const HEADER: &str = "/multistream/1.0.0";

/// The longest message accepted from the peer, length prefix excluded (newline included).
/// Longer ones are a protocol error, which bounds what a hostile peer makes us buffer.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The most proposals and `ls` requests a listener answers in one negotiation before it gives
/// up on the dialer, which bounds what a peer can make it send.
pub const MAX_ROUNDS: usize = 64;

/// The varint of a length up to [`MAX_MESSAGE_LEN`] takes at most this many bytes.
const MAX_LEN_PREFIX: usize = 2;

/// Why a negotiation failed or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultistreamError {
    /// A message (or its length prefix) longer than [`MAX_MESSAGE_LEN`].
    #[error("multistream message longer than {MAX_MESSAGE_LEN} bytes")]
    Oversize,
    /// A message that is not one of multistream-select's (empty, no trailing newline, not UTF-8,
    /// a protocol name not starting with '/').
    #[error("malformed multistream message: {0}")]
    Malformed(&'static str),
    /// The peer's first message was not the `/multistream/1.0.0` header.
    #[error("peer did not start with the {HEADER} header")]
    NoHeader,
    /// A well-formed message the peer may not send at this point.
    #[error("unexpected multistream message {0:?}")]
    Unexpected(String),
    /// The listener refused the protocol a lazy dialer had already settled on.
    #[error("listener refused {0}, which the lazy dialer had already settled on")]
    LazyRefused(String),
    /// The dialer made more than [`MAX_ROUNDS`] proposals and `ls` requests.
    #[error("more than {MAX_ROUNDS} proposals")]
    TooManyRounds,
    /// Bytes fed after the negotiation ended (or failed): they belong to the next layer.
    #[error("negotiation already finished")]
    Finished,
    /// A protocol name we were asked to propose or support that the wire cannot carry (it must
    /// start with '/', contain no newline, not be the header, and fit in a message).
    #[error("invalid protocol name {0:?}")]
    InvalidProtocol(String),
    /// A dialer was given no protocol to propose.
    #[error("a dialer needs at least one protocol to propose")]
    NoProtocols,
}

/// How a negotiation ended (or, for the lazy dialer, was confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultistreamEvent {
    /// Both sides speak `protocol` from here on. `rest` holds the peer's bytes that followed the
    /// negotiation: the first bytes of the next layer. (A lazy dialer emits this at once with an
    /// empty `rest` and keeps filtering until [`MultistreamEvent::Confirmed`].)
    Agreed {
        /// The protocol agreed on.
        protocol: String,
        /// Peer bytes after the last negotiation message.
        rest: Vec<u8>,
    },
    /// Dialer only: the listener answered `na` to every proposal. The stream is useless.
    Refused,
    /// Lazy dialer only: the listener's header and echo have arrived; `rest` holds the peer's
    /// bytes that followed them, the first bytes of the next layer.
    Confirmed {
        /// Peer bytes after the echo.
        rest: Vec<u8>,
    },
}

/// One message of the protocol as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message<'a> {
    Header,
    Na,
    Ls,
    Protocol(&'a str),
}

/// What one side does.
#[derive(Debug, Clone)]
enum Role {
    /// Proposes `proposals` in order; `current` is the one awaiting an answer.
    Dialer { proposals: Vec<String>, current: usize },
    /// Settled on `protocol` already; waits for the echo to confirm it.
    LazyDialer { protocol: String },
    /// Answers proposals from `supported`; `rounds` counts answers given.
    Listener { supported: Vec<String>, rounds: usize },
}

/// Where the negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's header.
    AwaitHeader,
    /// Header seen; waiting for an answer (dialers) or a request (listener).
    Negotiating,
    /// Ended (agreed, refused, confirmed or failed): no more bytes are taken.
    Done,
}

/// How `on_message` ends the negotiation, if it does.
enum Ending {
    Agreed(String),
    Refused,
    Confirmed,
}

/// One multistream-select negotiation, as dialer, lazy dialer or listener (see the module
/// documentation for the exact contract).
#[derive(Debug, Clone)]
pub struct Multistream {
    role: Role,
    phase: Phase,
    /// The start of a message whose end has not arrived yet (at most a prefix and a message).
    partial: Vec<u8>,
    out: Vec<u8>,
    events: Vec<MultistreamEvent>,
}

impl Multistream {
    /// A dialer proposing `protocols` in order of preference. The header and the first proposal
    /// are ready to send at once (`poll_transmit`).
    pub fn dialer(protocols: Vec<String>) -> Result<Self, MultistreamError> {
        check_names(&protocols)?;
        let Some(first) = protocols.first() else { return Err(MultistreamError::NoProtocols) };
        let mut out = Vec::new();
        put_message(&mut out, HEADER.as_bytes());
        put_message(&mut out, first.as_bytes());
        let mut ms = Self::new(Role::Dialer { proposals: protocols, current: 0 });
        ms.out = out;
        Ok(ms)
    }

    /// A lazy ("V1Lazy") dialer settled on `protocol`: header and proposal are ready to send,
    /// `Agreed` (with an empty `rest`) is already waiting, and the caller may send application
    /// bytes right behind the proposal. Keep feeding the peer's bytes until `Confirmed`.
    pub fn dialer_lazy(protocol: String) -> Result<Self, MultistreamError> {
        check_names(std::slice::from_ref(&protocol))?;
        let mut ms = Self::new(Role::LazyDialer { protocol: protocol.clone() });
        put_message(&mut ms.out, HEADER.as_bytes());
        put_message(&mut ms.out, protocol.as_bytes());
        ms.events.push(MultistreamEvent::Agreed { protocol, rest: Vec::new() });
        Ok(ms)
    }

    /// A listener supporting `supported` (in the order `ls` lists them). It sends nothing until
    /// the dialer's header arrives.
    pub fn listener(supported: Vec<String>) -> Result<Self, MultistreamError> {
        check_names(&supported)?;
        Ok(Self::new(Role::Listener { supported, rounds: 0 }))
    }

    fn new(role: Role) -> Self {
        Self { role, phase: Phase::AwaitHeader, partial: Vec::new(), out: Vec::new(), events: Vec::new() }
    }

    /// Whether the caller must still feed the peer's bytes here (false once the negotiation
    /// has ended, been confirmed, or failed).
    pub fn wants_bytes(&self) -> bool {
        self.phase != Phase::Done
    }

    /// Feeds the peer's bytes, in any split. Messages are answered as they complete; the bytes
    /// after the message that ends the negotiation go to that event's `rest`. An error is fatal.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), MultistreamError> {
        if self.phase == Phase::Done {
            return Err(MultistreamError::Finished);
        }
        let joined;
        let input: &[u8] = if self.partial.is_empty() {
            bytes
        } else {
            self.partial.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.partial);
            &joined
        };
        let result = self.consume(input);
        if result.is_err() {
            self.phase = Phase::Done;
        }
        result
    }

    /// Runs the messages complete in `input`, keeping an unfinished one for later.
    fn consume(&mut self, input: &[u8]) -> Result<(), MultistreamError> {
        let mut pos = 0;
        while let Some((payload, used)) = next_frame(&input[pos..])? {
            pos += used;
            let Some(ending) = self.on_message(decode(payload)?)? else { continue };
            let rest = input[pos..].to_vec();
            self.events.push(match ending {
                Ending::Agreed(protocol) => MultistreamEvent::Agreed { protocol, rest },
                Ending::Refused => MultistreamEvent::Refused,
                Ending::Confirmed => MultistreamEvent::Confirmed { rest },
            });
            self.phase = Phase::Done;
            return Ok(());
        }
        self.partial = input[pos..].to_vec();
        Ok(())
    }

    /// Acts on one message; says whether it ended the negotiation.
    fn on_message(&mut self, msg: Message<'_>) -> Result<Option<Ending>, MultistreamError> {
        if self.phase == Phase::AwaitHeader {
            if msg != Message::Header {
                return Err(MultistreamError::NoHeader);
            }
            self.phase = Phase::Negotiating;
            if matches!(self.role, Role::Listener { .. }) {
                put_message(&mut self.out, HEADER.as_bytes());
            }
            return Ok(None);
        }
        match &mut self.role {
            Role::Dialer { proposals, current } => match msg {
                Message::Protocol(p) if p == proposals[*current] => Ok(Some(Ending::Agreed(p.to_owned()))),
                Message::Na => {
                    *current += 1;
                    match proposals.get(*current) {
                        Some(next) => {
                            put_message(&mut self.out, next.as_bytes());
                            Ok(None)
                        }
                        None => Ok(Some(Ending::Refused)),
                    }
                }
                other => Err(unexpected(other)),
            },
            Role::LazyDialer { protocol } => match msg {
                Message::Protocol(p) if p == protocol => Ok(Some(Ending::Confirmed)),
                Message::Na => Err(MultistreamError::LazyRefused(protocol.clone())),
                other => Err(unexpected(other)),
            },
            Role::Listener { supported, rounds } => {
                *rounds += 1;
                if *rounds > MAX_ROUNDS {
                    return Err(MultistreamError::TooManyRounds);
                }
                match msg {
                    Message::Protocol(p) if supported.iter().any(|s| s == p) => {
                        put_message(&mut self.out, p.as_bytes());
                        Ok(Some(Ending::Agreed(p.to_owned())))
                    }
                    Message::Protocol(_) => {
                        put_message(&mut self.out, b"na");
                        Ok(None)
                    }
                    Message::Ls => {
                        put_list(&mut self.out, supported);
                        Ok(None)
                    }
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// All bytes queued for the peer, if any (one write: the spec asks for header and first
    /// message in one packet).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() { None } else { Some(std::mem::take(&mut self.out)) }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MultistreamEvent> {
        if self.events.is_empty() { None } else { Some(self.events.remove(0)) }
    }
}

/// Checks that each name can be proposed: see [`MultistreamError::InvalidProtocol`].
fn check_names(names: &[String]) -> Result<(), MultistreamError> {
    for name in names {
        let fits = name.len() < MAX_MESSAGE_LEN;
        if !name.starts_with('/') || name.contains('\n') || name == HEADER || !fits {
            return Err(MultistreamError::InvalidProtocol(name.clone()));
        }
    }
    Ok(())
}

fn unexpected(msg: Message<'_>) -> MultistreamError {
    MultistreamError::Unexpected(match msg {
        Message::Header => HEADER.to_owned(),
        Message::Na => "na".to_owned(),
        Message::Ls => "ls".to_owned(),
        Message::Protocol(p) => p.to_owned(),
    })
}

/// Appends `text` as one message: varint length, text, newline.
fn put_message(out: &mut Vec<u8>, text: &[u8]) {
    varint::put(out, text.len() as u64 + 1);
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Appends the answer to `ls`: one message holding each protocol as a message of its own, then
/// a newline (the spec's format, also rust-libp2p's and go-multistream's).
fn put_list(out: &mut Vec<u8>, supported: &[String]) {
    let mut body = Vec::new();
    for p in supported {
        put_message(&mut body, p.as_bytes());
    }
    body.push(b'\n');
    varint::put(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// The payload of the first complete message in `buf` and the bytes it took with its prefix,
/// or `None` if it has not all arrived.
fn next_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, MultistreamError> {
    let (len, prefix) = match varint::get(buf) {
        Ok(v) => v,
        Err(VarintError::Truncated) if buf.len() < MAX_LEN_PREFIX => return Ok(None),
        Err(_) => return Err(MultistreamError::Oversize),
    };
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(MultistreamError::Oversize);
    }
    let end = prefix + len as usize;
    Ok(buf.get(prefix..end).map(|payload| (payload, end)))
}

/// Reads one message's payload (newline included).
fn decode(payload: &[u8]) -> Result<Message<'_>, MultistreamError> {
    let Some((b'\n', text)) = payload.split_last() else {
        return Err(MultistreamError::Malformed("message does not end with a newline"));
    };
    let text = std::str::from_utf8(text).map_err(|_| MultistreamError::Malformed("message is not UTF-8"))?;
    match text {
        HEADER => Ok(Message::Header),
        "na" => Ok(Message::Na),
        "ls" => Ok(Message::Ls),
        p if p.starts_with('/') && !p.contains('\n') => Ok(Message::Protocol(p)),
        _ => Err(MultistreamError::Malformed("not a header, na, ls or protocol name")),
    }
}

#[cfg(test)]
mod tests;
