//! Ping (`/ipfs/ping/1.0.0`, libp2p specs ping/ping.md): the dialer of a stream writes 32 bytes,
//! the listener writes the same 32 bytes back, and the dialer measures the round trip. The
//! dialer may ping again on the same stream, one payload at a time; the listener echoes every
//! 32 bytes it reads until the stream ends. No framing: the payloads are raw stream bytes, which
//! may arrive in any split.
//!
//! Both sides are sans-IO. The payload is the caller's (from its seeded RNG), so runs repeat.

use std::collections::VecDeque;

use crate::Nanos;

/// The ping protocol id.
pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// The size of one ping payload.
pub const PAYLOAD_LEN: usize = 32;

/// The listener's side: echoes each whole 32-byte payload.
#[derive(Debug, Clone, Default)]
pub struct PingResponder {
    /// The start of a payload not yet complete (under 32 bytes).
    partial: Vec<u8>,
    /// Echoes not yet taken by `poll_transmit`.
    out: Vec<u8>,
    /// Payloads echoed so far.
    echoed: u64,
}

impl PingResponder {
    /// A responder for a fresh inbound ping stream.
    pub fn new() -> Self {
        PingResponder::default()
    }

    /// Takes bytes from the stream (any split) and queues an echo for every complete payload.
    pub fn handle_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (PAYLOAD_LEN - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() == PAYLOAD_LEN {
                self.out.append(&mut self.partial);
                self.echoed += 1;
            }
        }
    }

    /// The echoes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// How many payloads have been echoed.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }
}

/// What the dialer learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingEvent {
    /// The payload came back intact after `rtt` nanoseconds.
    Pong {
        /// The round-trip time.
        rtt: Nanos,
    },
    /// No full answer within the timeout: the stream is unusable and should be reset.
    Timeout,
}

/// Why the dialer refused a call or the peer's bytes. Errors on peer bytes leave the dialer
/// failed: the stream should be reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// A ping is already waiting for its answer.
    #[error("a ping is already in flight")]
    InFlight,
    /// The peer sent bytes while no ping was waiting for them.
    #[error("unsolicited ping bytes")]
    Unsolicited,
    /// The echoed payload differs from the one sent.
    #[error("ping payload mismatch")]
    Mismatch,
    /// An earlier error or timeout ended this stream.
    #[error("ping stream failed")]
    Failed,
}

/// The ping in flight.
#[derive(Debug, Clone)]
struct InFlight {
    payload: [u8; PAYLOAD_LEN],
    sent_at: Nanos,
    /// The echo's bytes so far.
    received: Vec<u8>,
}

/// The dialer's side: sends a caller-given payload, checks the echo and reports the RTT.
#[derive(Debug, Clone)]
pub struct PingDialer {
    timeout: Nanos,
    in_flight: Option<InFlight>,
    transmit: Option<Vec<u8>>,
    events: VecDeque<PingEvent>,
    failed: bool,
}

impl PingDialer {
    /// A dialer that gives up on an answer after `timeout` (rust-libp2p's default is 20 s).
    pub fn new(timeout: Nanos) -> Self {
        PingDialer { timeout, in_flight: None, transmit: None, events: VecDeque::new(), failed: false }
    }

    /// Sends `payload` at `now`; refused while another ping waits for its answer.
    pub fn ping(&mut self, now: Nanos, payload: [u8; PAYLOAD_LEN]) -> Result<(), PingError> {
        if self.failed {
            return Err(PingError::Failed);
        }
        if self.in_flight.is_some() {
            return Err(PingError::InFlight);
        }
        self.transmit.get_or_insert_default().extend_from_slice(&payload);
        self.in_flight = Some(InFlight { payload, sent_at: now, received: Vec::with_capacity(PAYLOAD_LEN) });
        Ok(())
    }

    /// Takes the peer's bytes (any split), reporting a [`PingEvent::Pong`] when the echo is whole.
    pub fn handle_bytes(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), PingError> {
        let result = self.take_echo(now, bytes);
        if result.is_err() {
            self.failed = true;
            self.in_flight = None;
        }
        result
    }

    /// Checks `bytes` against the payload in flight.
    fn take_echo(&mut self, now: Nanos, bytes: &[u8]) -> Result<(), PingError> {
        if self.failed {
            return Err(PingError::Failed);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let f = self.in_flight.as_mut().ok_or(PingError::Unsolicited)?;
        let want = PAYLOAD_LEN - f.received.len();
        if bytes.len() > want {
            return Err(PingError::Unsolicited);
        }
        f.received.extend_from_slice(bytes);
        if !f.payload.starts_with(&f.received) {
            return Err(PingError::Mismatch);
        }
        if f.received.len() == PAYLOAD_LEN {
            self.events.push_back(PingEvent::Pong { rtt: now.saturating_sub(f.sent_at) });
            self.in_flight = None;
        }
        Ok(())
    }

    /// The bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// The next outcome, if any.
    pub fn poll_event(&mut self) -> Option<PingEvent> {
        self.events.pop_front()
    }

    /// When the ping in flight times out, if one is.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.in_flight.as_ref().map(|f| f.sent_at.saturating_add(self.timeout))
    }

    /// Lets time pass: a ping unanswered by its deadline becomes [`PingEvent::Timeout`] and ends
    /// the stream (a late echo could no longer be told from the next one's).
    pub fn handle_timeout(&mut self, now: Nanos) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.in_flight = None;
            self.failed = true;
            self.events.push_back(PingEvent::Timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: Nanos = 1_000_000_000;

    #[test]
    fn echo_round_trip_with_rtt() {
        let mut d = PingDialer::new(20 * SEC);
        let mut r = PingResponder::new();
        d.ping(100, [7; 32]).unwrap();
        assert_eq!(d.poll_timeout(), Some(100 + 20 * SEC));
        let sent = d.poll_transmit().unwrap();
        assert_eq!(sent, [7; 32]);
        r.handle_bytes(&sent[..5]);
        assert_eq!(r.poll_transmit(), None);
        r.handle_bytes(&sent[5..]);
        let echo = r.poll_transmit().unwrap();
        d.handle_bytes(300, &echo[..31]).unwrap();
        assert_eq!(d.poll_event(), None);
        d.handle_bytes(350, &echo[31..]).unwrap();
        assert_eq!(d.poll_event(), Some(PingEvent::Pong { rtt: 250 }));
        assert_eq!(d.poll_timeout(), None);
        // Again on the same stream.
        d.ping(400, [8; 32]).unwrap();
        r.handle_bytes(&d.poll_transmit().unwrap());
        d.handle_bytes(410, &r.poll_transmit().unwrap()).unwrap();
        assert_eq!(d.poll_event(), Some(PingEvent::Pong { rtt: 10 }));
        assert_eq!(r.echoed(), 2);
    }

    #[test]
    fn one_ping_at_a_time() {
        let mut d = PingDialer::new(SEC);
        d.ping(0, [1; 32]).unwrap();
        assert_eq!(d.ping(0, [2; 32]), Err(PingError::InFlight));
    }

    #[test]
    fn wrong_or_extra_bytes_fail_the_stream() {
        let mut d = PingDialer::new(SEC);
        assert_eq!(d.handle_bytes(0, &[1]), Err(PingError::Unsolicited));
        assert_eq!(d.ping(0, [1; 32]), Err(PingError::Failed));

        let mut d = PingDialer::new(SEC);
        d.ping(0, [1; 32]).unwrap();
        assert_eq!(d.handle_bytes(1, &[1, 1, 2]), Err(PingError::Mismatch));
        assert_eq!(d.poll_event(), None);

        let mut d = PingDialer::new(SEC);
        d.ping(0, [1; 32]).unwrap();
        assert_eq!(d.handle_bytes(1, &[1; 33]), Err(PingError::Unsolicited));
    }

    #[test]
    fn timeout_ends_the_stream() {
        let mut d = PingDialer::new(SEC);
        d.ping(10, [3; 32]).unwrap();
        d.handle_timeout(SEC + 9);
        assert_eq!(d.poll_event(), None);
        d.handle_timeout(SEC + 10);
        assert_eq!(d.poll_event(), Some(PingEvent::Timeout));
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_bytes(SEC + 11, &[3; 32]), Err(PingError::Failed));
    }

    #[test]
    fn responder_echoes_back_to_back_payloads_in_any_split() {
        let mut r = PingResponder::new();
        let input: Vec<u8> = (0..80).collect();
        r.handle_bytes(&input[..40]);
        r.handle_bytes(&input[40..]);
        assert_eq!(r.poll_transmit().unwrap(), input[..64]);
        assert_eq!(r.echoed(), 2);
    }

    proptest! {
        #[test]
        fn any_split_of_the_echo_gives_one_pong(
            payload in any::<[u8; 32]>(),
            cuts in proptest::collection::vec(0usize..=32, 0..6),
        ) {
            let mut d = PingDialer::new(SEC);
            let mut r = PingResponder::new();
            d.ping(0, payload).unwrap();
            let sent = d.poll_transmit().unwrap();
            let mut cuts = cuts;
            cuts.push(32);
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts {
                r.handle_bytes(&sent[at..c]);
                if let Some(echo) = r.poll_transmit() {
                    d.handle_bytes(5, &echo).unwrap();
                }
                at = c;
            }
            prop_assert_eq!(d.poll_event(), Some(PingEvent::Pong { rtt: 5 }));
            prop_assert_eq!(d.poll_event(), None);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            pings in proptest::collection::vec(any::<bool>(), 0..6),
        ) {
            let mut d = PingDialer::new(SEC);
            let mut r = PingResponder::new();
            for (i, c) in chunks.iter().enumerate() {
                if pings.get(i).copied().unwrap_or(false) {
                    let _ = d.ping(i as Nanos, [0; 32]);
                }
                let _ = d.handle_bytes(i as Nanos, c);
                d.handle_timeout(i as Nanos * SEC / 2);
                r.handle_bytes(c);
                prop_assert!(r.poll_transmit().is_none_or(|e| e.len() % PAYLOAD_LEN == 0));
            }
        }
    }
}
