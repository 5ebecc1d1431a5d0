//! What yamux and mplex have in common, so a connection can run either: numbered streams
//! opened by either side, data, half-close, reset, and going away, behind one sans-IO trait.

use crate::Nanos;

/// A muxed stream as the local muxer names it (the wire's numbering differs between yamux and
/// mplex; each muxer maps its wire ids to these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// What the remote side did, in the order it did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// The remote opened a stream.
    Opened(StreamId),
    /// Bytes arrived on a stream.
    Data(StreamId, Vec<u8>),
    /// The remote will send no more on this stream (it may still read).
    Closed(StreamId),
    /// The remote reset the stream: neither side may use it any more.
    Reset(StreamId),
    /// The remote is going away: no new streams; existing ones may finish.
    GoAway,
}

/// Why the muxer refused a call or the peer's bytes. Errors from `handle_bytes` are fatal to the
/// connection; the others concern one call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// The peer broke the protocol (the connection must be closed).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// No such open stream (never opened, or already reset or closed for writing).
    #[error("unknown or closed stream {0:?}")]
    UnknownStream(StreamId),
    /// No more streams may be opened (limit reached, or the session is going away).
    #[error("cannot open a stream: {0}")]
    CannotOpen(&'static str),
}

/// A stream muxer over one secured connection, sans-IO: `handle_bytes` takes what the secure
/// channel decrypted (any split), `poll_transmit` gives what to encrypt and send.
pub trait Muxer {
    /// Feeds decrypted bytes from the peer.
    fn handle_bytes(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), MuxError>;
    /// Opens an outbound stream.
    fn open(&mut self, now: Nanos) -> Result<StreamId, MuxError>;
    /// Queues bytes on a stream; what flow control holds back is sent as the peer allows.
    fn send(&mut self, now: Nanos, id: StreamId, data: &[u8]) -> Result<(), MuxError>;
    /// Half-closes a stream: nothing more will be sent on it after what is queued.
    fn close(&mut self, now: Nanos, id: StreamId) -> Result<(), MuxError>;
    /// Resets a stream at once, dropping what is queued.
    fn reset(&mut self, now: Nanos, id: StreamId) -> Result<(), MuxError>;
    /// Tells the peer this side opens no more streams and will close.
    fn go_away(&mut self, now: Nanos);
    /// The next bytes to hand to the secure channel, if any.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// The next thing the peer did, if any.
    fn poll_event(&mut self) -> Option<MuxEvent>;
    /// When `handle_timeout` must next be called (keep-alive pings, say), if ever.
    fn poll_timeout(&self) -> Option<Nanos>;
    /// Lets time pass to `now`.
    fn handle_timeout(&mut self, now: Nanos);
    /// Bytes queued on a stream that flow control has not let out yet.
    fn queued(&self, id: StreamId) -> usize;
    /// Where stream `id`'s data lies in `batch`, bytes this muxer's `poll_transmit` just
    /// returned: for each of the stream's data frames in it, in order, the position in `batch`
    /// just past the frame's data and how many data bytes it carries. Empty for a stream the
    /// muxer no longer knows.
    fn data_in(&self, batch: &[u8], id: StreamId) -> Vec<(usize, usize)>;
}
