//! libp2p's Noise security handshake and transport (libp2p/specs `noise/README.md`) as a sans-IO
//! state machine: `Noise_XX_25519_ChaChaPoly_SHA256`, every Noise message framed with a 2-byte
//! big-endian length, and each side's libp2p identity proven by a `NoiseHandshakePayload` whose
//! `identity_sig` signs `"noise-libp2p-static-key:" ++ static X25519 public key`.
//!
//! The caller feeds the raw wire bytes that follow the multistream-select agreement on `/noise`
//! (in any split) to [`Noise::handle_bytes`], sends plaintext with [`Noise::send`] once the
//! handshake is done, and takes framed wire bytes from [`Noise::poll_transmit`] and what
//! happened from [`Noise::poll_event`]. All key material (the static X25519 key and the
//! ephemeral) comes from a caller-given seed, so the same seeds give the same bytes.
//!
//! Memory: an established session keeps the two cipher states and the remote static key; the
//! receive buffer holds at most one partial frame and is freed when the frame completes, and
//! the transmit and event queues are handed out or freed as they empty.

use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use crate::identity::{IdentityError, Keypair, PeerId, PublicKey, pb};

/// The Noise protocol name libp2p mandates.
const PROTOCOL_NAME: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// What the identity key signs, before the static X25519 public key.
const STATIC_KEY_DOMAIN: &[u8] = b"noise-libp2p-static-key:";
/// The largest Noise message, and so the largest frame body (the length prefix is a `u16`).
const MAX_MESSAGE_LEN: usize = 65535;
/// The AEAD tag that every encrypted Noise payload carries.
pub(crate) const TAG_LEN: usize = 16;
/// The largest plaintext one transport frame carries.
pub(crate) const MAX_PLAINTEXT_LEN: usize = MAX_MESSAGE_LEN - TAG_LEN;
/// The length of an X25519 public key, the ephemeral in message 1.
const DH_LEN: usize = 32;

/// Why the session failed or refused a call. Every error from [`Noise::handle_bytes`] is fatal:
/// the session refuses all further input and output, and the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// A Noise message failed to decrypt or was malformed (bad MAC, short message, bad point).
    #[error("noise message rejected: {0}")]
    Crypto(String),
    /// The handshake payload is not a valid `NoiseHandshakePayload` for this message.
    #[error("bad handshake payload: {0}")]
    BadPayload(&'static str),
    /// The remote's identity key could not be decoded.
    #[error("bad remote identity key: {0}")]
    BadIdentityKey(#[from] IdentityError),
    /// The remote's identity signature does not cover its static Noise key.
    #[error("remote identity signature does not verify")]
    BadSignature,
    /// The remote proved an identity other than the one the initiator dialed.
    #[error("remote is {actual}, expected {expected}")]
    PeerMismatch {
        /// The peer id the initiator expected.
        expected: PeerId,
        /// The peer id the remote proved.
        actual: PeerId,
    },
    /// `send` was called before the handshake completed.
    #[error("handshake not complete")]
    NotEstablished,
    /// The session already failed; it accepts nothing more.
    #[error("session failed earlier")]
    Failed,
    /// The Noise state could not be set up (never happens with the built-in resolver).
    #[error("noise setup: {0}")]
    Setup(String),
}

/// What the remote did, in order. Events are transient (taken by `poll_event`), so the size of
/// `Established` (a decoded public key) costs nothing while a session idles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum NoiseEvent {
    /// The handshake completed and the remote proved this identity.
    Established {
        /// The remote's identity key.
        remote: PublicKey,
        /// The remote's peer id (the key's).
        remote_peer: PeerId,
    },
    /// Decrypted bytes from the remote (consecutive frames are joined into one event).
    Data(Vec<u8>),
}

/// One side of a libp2p Noise session: the XX handshake, then encrypted framed transport.
pub struct Noise {
    state: State,
    /// The start of a frame that has not fully arrived (at most 2 + 65535 bytes).
    rx: Vec<u8>,
    /// Framed bytes for the wire, not yet taken by `poll_transmit`.
    tx: Vec<u8>,
    events: VecDeque<NoiseEvent>,
}

enum State {
    Handshake(Box<Handshake>),
    Transport(Box<snow::TransportState>),
    Failed,
}

/// The handshake in progress.
struct Handshake {
    hs: snow::HandshakeState,
    /// Our `NoiseHandshakePayload` (identity key and signature), sent in message 2 or 3.
    payload: Vec<u8>,
    /// The peer the initiator dialed, if it wants it checked.
    expected: Option<PeerId>,
    /// Handshake messages received so far.
    received: u8,
}

impl Noise {
    /// The dialing side for `identity`: message 1 is ready in [`Noise::poll_transmit`] at once.
    /// `seed` determines the static and ephemeral X25519 keys; when `expected_remote` is given,
    /// a remote proving another peer id fails the handshake.
    pub fn initiator(identity: &Keypair, seed: [u8; 32], expected_remote: Option<PeerId>) -> Result<Noise, NoiseError> {
        let mut noise = Noise::new(identity, seed, expected_remote, true)?;
        noise.write_handshake(&[])?;
        Ok(noise)
    }

    /// The listening side for `identity`; `seed` determines its static and ephemeral keys.
    pub fn responder(identity: &Keypair, seed: [u8; 32]) -> Result<Noise, NoiseError> {
        Noise::new(identity, seed, None, false)
    }

    fn new(identity: &Keypair, seed: [u8; 32], expected: Option<PeerId>, initiator: bool) -> Result<Noise, NoiseError> {
        let params: NoiseParams = PROTOCOL_NAME.parse().map_err(setup)?;
        let static_key = snow::Builder::with_resolver(params.clone(), SeededResolver::boxed(seed, 0))
            .generate_keypair()
            .map_err(setup)?;
        let builder = snow::Builder::with_resolver(params, SeededResolver::boxed(seed, 1))
            .local_private_key(&static_key.private)
            .map_err(setup)?;
        let hs = if initiator { builder.build_initiator() } else { builder.build_responder() }.map_err(setup)?;
        let payload = identity_payload(identity, &static_key.public);
        let handshake = Handshake { hs, payload, expected, received: 0 };
        Ok(Noise {
            state: State::Handshake(Box::new(handshake)),
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// Whether the handshake has completed (and the session has not failed).
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Transport(_))
    }

    /// Feeds wire bytes from the remote, in any split. Complete frames are processed at once:
    /// handshake messages advance the handshake (queueing our reply), transport messages are
    /// decrypted into [`NoiseEvent::Data`]. Any error is fatal.
    pub fn handle_bytes(&mut self, mut bytes: &[u8]) -> Result<(), NoiseError> {
        if matches!(self.state, State::Failed) {
            return Err(NoiseError::Failed);
        }
        while !bytes.is_empty() {
            if self.rx.is_empty()
                && let Some((frame, rest)) = split_frame(bytes)
            {
                self.on_frame_or_fail(frame)?;
                bytes = rest;
                continue;
            }
            let take = frame_missing(&self.rx).min(bytes.len());
            self.rx.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if frame_missing(&self.rx) == 0 {
                let rx = std::mem::take(&mut self.rx);
                self.on_frame_or_fail(&rx[2..])?;
            }
        }
        Ok(())
    }

    /// Encrypts `plaintext` for the remote, in frames of at most 65535 bytes of ciphertext.
    /// Only after the handshake ([`NoiseError::NotEstablished`] before).
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), NoiseError> {
        let transport = match &mut self.state {
            State::Transport(t) => t,
            State::Handshake(_) => return Err(NoiseError::NotEstablished),
            State::Failed => return Err(NoiseError::Failed),
        };
        for chunk in plaintext.chunks(MAX_PLAINTEXT_LEN) {
            let start = self.tx.len();
            self.tx.resize(start + 2 + chunk.len() + TAG_LEN, 0);
            let written = transport.write_message(chunk, &mut self.tx[start + 2..]).map_err(crypto)?;
            self.tx[start..start + 2].copy_from_slice(&(written as u16).to_be_bytes());
        }
        Ok(())
    }

    /// Bytes waiting to be taken by [`Noise::poll_transmit`].
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Framed bytes to write to the wire (everything pending, in one buffer), if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.tx.is_empty() { None } else { Some(std::mem::take(&mut self.tx)) }
    }

    /// The next thing the remote did, if any.
    pub fn poll_event(&mut self) -> Option<NoiseEvent> {
        let event = self.events.pop_front();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        event
    }

    /// Processes one frame body; on error the session becomes `Failed` and drops its state.
    fn on_frame_or_fail(&mut self, frame: &[u8]) -> Result<(), NoiseError> {
        let result = match &mut self.state {
            State::Handshake(_) => self.on_handshake_frame(frame),
            State::Transport(t) => match decrypt(t, frame) {
                Ok(data) => {
                    self.push_data(data);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            State::Failed => Err(NoiseError::Failed),
        };
        if result.is_err() {
            self.state = State::Failed;
            self.rx = Vec::new();
            self.tx = Vec::new();
        }
        result
    }

    /// Appends decrypted bytes to the last `Data` event, or queues a new one.
    fn push_data(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        match self.events.back_mut() {
            Some(NoiseEvent::Data(last)) => last.extend_from_slice(&data),
            _ => self.events.push_back(NoiseEvent::Data(data)),
        }
    }

    /// A handshake message: message 1 (responder), 2 (initiator) or 3 (responder).
    fn on_handshake_frame(&mut self, frame: &[u8]) -> Result<(), NoiseError> {
        let State::Handshake(hs) = &mut self.state else { return Err(NoiseError::Failed) };
        if hs.hs.is_my_turn() {
            return Err(NoiseError::BadPayload("handshake message out of turn"));
        }
        hs.received += 1;
        let mut payload = vec![0u8; frame.len()];
        let n = hs.hs.read_message(frame, &mut payload).map_err(crypto)?;
        payload.truncate(n);
        if hs.received == 1 && !hs.hs.is_initiator() {
            if frame.len() != DH_LEN || !payload.is_empty() {
                return Err(NoiseError::BadPayload("message 1 must carry only the ephemeral key"));
            }
            let ours = std::mem::take(&mut hs.payload);
            return self.write_handshake(&ours);
        }
        let (remote, remote_peer) = authenticate(hs, &payload)?;
        if hs.hs.is_initiator() {
            let ours = std::mem::take(&mut hs.payload);
            self.write_handshake(&ours)?;
        }
        self.finish(remote, remote_peer)
    }

    /// Writes our next handshake message with `payload`, framed, into `tx`.
    fn write_handshake(&mut self, payload: &[u8]) -> Result<(), NoiseError> {
        let State::Handshake(hs) = &mut self.state else { return Err(NoiseError::Failed) };
        let mut message = vec![0u8; MAX_MESSAGE_LEN];
        let written = hs.hs.write_message(payload, &mut message).map_err(crypto)?;
        self.tx.extend_from_slice(&(written as u16).to_be_bytes());
        self.tx.extend_from_slice(&message[..written]);
        Ok(())
    }

    /// Switches to transport mode and reports the remote.
    fn finish(&mut self, remote: PublicKey, remote_peer: PeerId) -> Result<(), NoiseError> {
        let State::Handshake(hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(NoiseError::Failed);
        };
        let transport = hs.hs.into_transport_mode().map_err(crypto)?;
        self.state = State::Transport(Box::new(transport));
        self.events.push_back(NoiseEvent::Established { remote, remote_peer });
        Ok(())
    }
}

/// Checks the remote's handshake payload against the static key the handshake just revealed,
/// and against the expected peer.
fn authenticate(hs: &Handshake, payload: &[u8]) -> Result<(PublicKey, PeerId), NoiseError> {
    let (key, sig) = parse_payload(payload)?;
    let remote = PublicKey::from_protobuf(key)?;
    let remote_static = hs.hs.get_remote_static().ok_or(NoiseError::BadPayload("no remote static key"))?;
    if !remote.verify(&[STATIC_KEY_DOMAIN, remote_static].concat(), sig) {
        return Err(NoiseError::BadSignature);
    }
    let actual = remote.peer_id();
    match hs.expected {
        Some(expected) if expected != actual => Err(NoiseError::PeerMismatch { expected, actual }),
        _ => Ok((remote, actual)),
    }
}

/// Reads `identity_key` (1) and `identity_sig` (2) from a `NoiseHandshakePayload`, checking that
/// `extensions` (4), when present, is a well-formed message; other fields are skipped.
fn parse_payload(payload: &[u8]) -> Result<(&[u8], &[u8]), NoiseError> {
    let (mut key, mut sig) = (None, None);
    let mut rest = payload;
    while let Some((field, value)) = pb::next_field(&mut rest).map_err(NoiseError::BadPayload)? {
        match (field, value) {
            (1, pb::Value::Bytes(b)) => key = Some(b),
            (2, pb::Value::Bytes(b)) => sig = Some(b),
            (4, pb::Value::Bytes(mut ext)) => {
                while pb::next_field(&mut ext).map_err(NoiseError::BadPayload)?.is_some() {}
            }
            (1 | 2 | 4, _) => return Err(NoiseError::BadPayload("wrong wire type")),
            _ => {}
        }
    }
    let key = key.ok_or(NoiseError::BadPayload("no identity key"))?;
    let sig = sig.ok_or(NoiseError::BadPayload("no identity signature"))?;
    Ok((key, sig))
}

/// Our `NoiseHandshakePayload`: the identity key and its signature of the static key.
fn identity_payload(identity: &Keypair, static_public: &[u8]) -> Vec<u8> {
    let sig = identity.sign(&[STATIC_KEY_DOMAIN, static_public].concat());
    let mut out = Vec::new();
    pb::put_bytes_field(&mut out, 1, &identity.public().to_protobuf());
    pb::put_bytes_field(&mut out, 2, &sig);
    out
}

/// Decrypts one transport frame body.
fn decrypt(transport: &mut snow::TransportState, frame: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let mut out = vec![0u8; frame.len().saturating_sub(TAG_LEN)];
    let n = transport.read_message(frame, &mut out).map_err(crypto)?;
    out.truncate(n);
    Ok(out)
}

/// The first complete frame of `bytes` (its body) and what follows it, if it is all there.
fn split_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let [hi, lo, rest @ ..] = bytes else { return None };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// How many more bytes the partial frame `rx` needs (the length prefix first).
fn frame_missing(rx: &[u8]) -> usize {
    match rx {
        [hi, lo, body @ ..] => usize::from(u16::from_be_bytes([*hi, *lo])) - body.len(),
        _ => 2 - rx.len(),
    }
}

fn crypto(e: snow::Error) -> NoiseError {
    NoiseError::Crypto(e.to_string())
}

fn setup(e: snow::Error) -> NoiseError {
    NoiseError::Setup(e.to_string())
}

/// snow's crypto with a ChaCha20 RNG seeded by the caller: `stream` 0 makes the static key,
/// stream 1 the ephemeral, so the two never share bytes and both follow from one seed.
struct SeededResolver {
    seed: [u8; 32],
    stream: u64,
}

impl SeededResolver {
    fn boxed(seed: [u8; 32], stream: u64) -> Box<dyn CryptoResolver + Send> {
        Box::new(SeededResolver { seed, stream })
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        Some(Box::new(SeededRng(rng)))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// A seeded ChaCha20 stream as snow's RNG.
struct SeededRng(ChaCha20Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        rand_core::Rng::fill_bytes(&mut self.0, dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ed(n: u8) -> Keypair {
        Keypair::ed25519_from_secret([n; 32])
    }

    fn secp(n: u8) -> Keypair {
        Keypair::secp256k1_from_secret([n; 32]).unwrap()
    }

    /// Moves bytes both ways until neither side has anything to send, cutting every transmit
    /// into pieces of the sizes `split` gives; returns everything each side sent.
    fn pump(a: &mut Noise, b: &mut Noise, mut split: impl FnMut() -> usize) -> Result<(Vec<u8>, Vec<u8>), NoiseError> {
        let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
        loop {
            let (ta, tb) = (a.poll_transmit(), b.poll_transmit());
            if ta.is_none() && tb.is_none() {
                return Ok((sent_a, sent_b));
            }
            for (bytes, to, log) in [(ta, &mut *b, &mut sent_a), (tb, &mut *a, &mut sent_b)] {
                let Some(bytes) = bytes else { continue };
                log.extend_from_slice(&bytes);
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = split().clamp(1, rest.len());
                    to.handle_bytes(&rest[..n])?;
                    rest = &rest[n..];
                }
            }
        }
    }

    fn events(n: &mut Noise) -> Vec<NoiseEvent> {
        std::iter::from_fn(|| n.poll_event()).collect()
    }

    fn established(n: &mut Noise) -> PeerId {
        match n.poll_event() {
            Some(NoiseEvent::Established { remote, remote_peer }) => {
                assert_eq!(remote.peer_id(), remote_peer);
                remote_peer
            }
            other => panic!("expected Established, got {other:?}"),
        }
    }

    /// A completed handshake between `a` (initiator) and `b` (responder).
    fn pair(a: &Keypair, b: &Keypair) -> (Noise, Noise) {
        let mut i = Noise::initiator(a, [1; 32], Some(b.peer_id())).unwrap();
        let mut r = Noise::responder(b, [2; 32]).unwrap();
        pump(&mut i, &mut r, || usize::MAX).unwrap();
        assert_eq!(established(&mut i), b.peer_id());
        assert_eq!(established(&mut r), a.peer_id());
        (i, r)
    }

    #[test]
    fn handshake_and_data_in_any_split_with_both_key_types() {
        for (a, b) in [(ed(1), ed(2)), (secp(1), secp(2)), (ed(3), secp(4)), (secp(5), ed(6))] {
            for step in [1usize, 2, 3, 7, 100, usize::MAX] {
                let mut i = Noise::initiator(&a, [1; 32], Some(b.peer_id())).unwrap();
                let mut r = Noise::responder(&b, [2; 32]).unwrap();
                assert!(!i.is_established() && !r.is_established());
                pump(&mut i, &mut r, || step).unwrap();
                assert!(i.is_established() && r.is_established());
                assert_eq!(established(&mut i), b.peer_id());
                assert_eq!(established(&mut r), a.peer_id());
                i.send(b"ping").unwrap();
                r.send(b"pong").unwrap();
                i.send(b"!").unwrap();
                pump(&mut i, &mut r, || step).unwrap();
                assert_eq!(events(&mut r), vec![NoiseEvent::Data(b"ping!".to_vec())]);
                assert_eq!(events(&mut i), vec![NoiseEvent::Data(b"pong".to_vec())]);
            }
        }
    }

    #[test]
    fn message_sizes_follow_xx() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        let msg1 = i.poll_transmit().unwrap();
        assert_eq!(msg1, [&[0u8, 32][..], &msg1[2..]].concat(), "-> e, empty payload");
        assert_eq!(msg1.len(), 2 + 32);
        r.handle_bytes(&msg1).unwrap();
        let msg2 = r.poll_transmit().unwrap();
        let payload = identity_payload(&ed(2), &[0; 32]).len();
        assert_eq!(msg2.len(), 2 + 32 + (32 + 16) + payload + 16, "<- e, ee, s, es + payload");
        i.handle_bytes(&msg2).unwrap();
        let msg3 = i.poll_transmit().unwrap();
        assert_eq!(msg3.len(), 2 + (32 + 16) + payload + 16, "-> s, se + payload");
        assert!(i.is_established() && !r.is_established());
        r.handle_bytes(&msg3).unwrap();
        assert!(r.is_established());
    }

    #[test]
    fn initiator_may_send_right_after_message_3() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        r.handle_bytes(&i.poll_transmit().unwrap()).unwrap();
        i.handle_bytes(&r.poll_transmit().unwrap()).unwrap();
        i.send(b"early").unwrap();
        r.handle_bytes(&i.poll_transmit().unwrap()).unwrap();
        established(&mut r);
        assert_eq!(r.poll_event(), Some(NoiseEvent::Data(b"early".to_vec())));
    }

    #[test]
    fn any_tampered_byte_fails_the_session() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        let msg1 = i.poll_transmit().unwrap();
        r.handle_bytes(&msg1).unwrap();
        let msg2 = r.poll_transmit().unwrap();
        for at in 2..msg2.len() {
            let mut fresh = Noise::initiator(&ed(1), [1; 32], None).unwrap();
            fresh.poll_transmit();
            let mut bad = msg2.clone();
            bad[at] ^= 0x40;
            assert!(fresh.handle_bytes(&bad).is_err(), "message 2 byte {at}");
            assert_eq!(fresh.handle_bytes(&msg2), Err(NoiseError::Failed));
            assert_eq!(fresh.send(b"x"), Err(NoiseError::Failed));
        }
        i.handle_bytes(&msg2).unwrap();
        let msg3 = i.poll_transmit().unwrap();
        for at in 2..msg3.len() {
            let mut fresh = Noise::responder(&ed(2), [2; 32]).unwrap();
            fresh.handle_bytes(&msg1).unwrap();
            let mut bad = msg3.clone();
            bad[at] ^= 0x01;
            assert!(fresh.handle_bytes(&bad).is_err(), "message 3 byte {at}");
        }
        r.handle_bytes(&msg3).unwrap();
        i.send(b"data").unwrap();
        let mut frame = i.poll_transmit().unwrap();
        frame[5] ^= 0x80;
        assert!(matches!(r.handle_bytes(&frame), Err(NoiseError::Crypto(_))));
        assert!(!r.is_established());
    }

    #[test]
    fn wrong_expected_peer_is_refused() {
        let mut i = Noise::initiator(&ed(1), [1; 32], Some(ed(9).peer_id())).unwrap();
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        let err = pump(&mut i, &mut r, || usize::MAX).unwrap_err();
        assert_eq!(err, NoiseError::PeerMismatch { expected: ed(9).peer_id(), actual: ed(2).peer_id() });
        assert!(!i.is_established());
        assert_eq!(i.poll_transmit(), None, "message 3 is not sent");
    }

    #[test]
    fn a_signature_over_another_static_key_is_refused() {
        for (initiator_lies, key) in [(true, ed(1)), (false, ed(1)), (true, secp(1)), (false, secp(1))] {
            let mut i = Noise::initiator(&key, [1; 32], None).unwrap();
            let mut r = Noise::responder(&key, [2; 32]).unwrap();
            let liar = if initiator_lies { &mut i } else { &mut r };
            let State::Handshake(hs) = &mut liar.state else { unreachable!() };
            hs.payload = identity_payload(&key, &[7; 32]);
            assert_eq!(pump(&mut i, &mut r, || usize::MAX), Err(NoiseError::BadSignature));
        }
    }

    #[test]
    fn responder_refuses_a_payload_in_message_1() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        let mut msg1 = i.poll_transmit().unwrap();
        msg1.push(0x0a);
        msg1[1] += 1;
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        assert!(matches!(r.handle_bytes(&msg1), Err(NoiseError::BadPayload(_))));
    }

    #[test]
    fn payloads_without_identity_are_refused() {
        assert_eq!(parse_payload(&[]), Err(NoiseError::BadPayload("no identity key")));
        assert_eq!(parse_payload(&[0x0a, 0x00]), Err(NoiseError::BadPayload("no identity signature")));
        assert_eq!(parse_payload(&[0x0a, 0x00, 0x12, 0x00]), Ok((&[][..], &[][..])));
        assert!(parse_payload(&[0x0a, 0x00, 0x12, 0x00, 0x22, 0x02, 0x0a, 0x05]).is_err(), "bad extensions");
        let with_extensions = [0x0a, 0x00, 0x12, 0x00, 0x22, 0x04, 0x12, 0x02, b'/', b'y', 0x38, 0x01];
        assert_eq!(parse_payload(&with_extensions), Ok((&[][..], &[][..])), "extensions and unknown fields skipped");
    }

    #[test]
    fn send_before_the_handshake_is_refused() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        assert_eq!(i.send(b"x"), Err(NoiseError::NotEstablished));
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        assert_eq!(r.send(b"x"), Err(NoiseError::NotEstablished));
        assert_eq!(r.poll_transmit(), None, "the responder waits for message 1");
    }

    #[test]
    fn large_plaintext_crosses_in_frames() {
        let (mut i, mut r) = pair(&ed(1), &secp(2));
        let data: Vec<u8> = (0..200 * 1024).map(|n: u32| (n * 7 % 251) as u8).collect();
        i.send(&data).unwrap();
        let wire = i.poll_transmit().unwrap();
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        while let Some((frame, tail)) = split_frame(rest) {
            frames.push(frame.len());
            rest = tail;
        }
        assert!(rest.is_empty());
        assert_eq!(frames, vec![65535, 65535, 65535, 200 * 1024 - 3 * MAX_PLAINTEXT_LEN + 16]);
        for chunk in wire.chunks(1000) {
            r.handle_bytes(chunk).unwrap();
        }
        assert_eq!(events(&mut r), vec![NoiseEvent::Data(data)]);
    }

    #[test]
    fn same_seeds_give_the_same_bytes() {
        let run = |seed_i: [u8; 32], seed_r: [u8; 32]| {
            let mut i = Noise::initiator(&secp(1), seed_i, None).unwrap();
            let mut r = Noise::responder(&ed(2), seed_r).unwrap();
            let (mut a, mut b) = pump(&mut i, &mut r, || usize::MAX).unwrap();
            i.send(b"hello").unwrap();
            r.send(b"world").unwrap();
            let (c, d) = pump(&mut i, &mut r, || usize::MAX).unwrap();
            a.extend(c);
            b.extend(d);
            (a, b)
        };
        assert_eq!(run([1; 32], [2; 32]), run([1; 32], [2; 32]));
        let (a, b) = run([1; 32], [2; 32]);
        let (c, d) = run([3; 32], [2; 32]);
        assert_ne!(a[..34], c[..34], "another initiator seed, another ephemeral");
        assert_ne!(b, d, "the responder's messages depend on the initiator's ephemeral");
    }

    #[test]
    fn static_and_ephemeral_keys_differ() {
        let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
        let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
        let msg1 = i.poll_transmit().unwrap();
        r.handle_bytes(&msg1).unwrap();
        i.handle_bytes(&r.poll_transmit().unwrap()).unwrap();
        let State::Transport(t) = &i.state else { unreachable!() };
        let responder_static = t.get_remote_static().unwrap().to_vec();
        let params: NoiseParams = PROTOCOL_NAME.parse().unwrap();
        let expected =
            snow::Builder::with_resolver(params, SeededResolver::boxed([2; 32], 0)).generate_keypair().unwrap();
        assert_eq!(responder_static, expected.public, "the static key is the seed's stream 0");
        assert_ne!(msg1[2..], expected.public[..]);
    }

    #[test]
    fn sessions_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Noise>();
        send::<NoiseEvent>();
    }

    #[test]
    fn idle_sessions_hold_no_buffers() {
        let (mut i, mut r) = pair(&ed(1), &ed(2));
        i.send(&[5; 100_000]).unwrap();
        let wire = i.poll_transmit().unwrap();
        r.handle_bytes(&wire[..70_000]).unwrap();
        assert!(r.rx.capacity() > 0, "a partial frame is kept");
        r.handle_bytes(&wire[70_000..]).unwrap();
        events(&mut r);
        for n in [&i, &r] {
            assert_eq!((n.rx.capacity(), n.tx.capacity(), n.events.capacity()), (0, 0, 0));
        }
        assert!(std::mem::size_of::<Noise>() <= 128, "{}", std::mem::size_of::<Noise>());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
            let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
            let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
            for chunk in &chunks {
                let _ = i.handle_bytes(chunk);
                let _ = r.handle_bytes(chunk);
            }
            let _ = (i.poll_transmit(), r.poll_transmit(), i.poll_event(), r.poll_event());
        }

        #[test]
        fn arbitrary_bytes_after_a_real_message_1_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut i = Noise::initiator(&ed(1), [1; 32], None).unwrap();
            let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
            r.handle_bytes(&i.poll_transmit().unwrap()).unwrap();
            let _ = r.handle_bytes(&tail);
            let _ = i.handle_bytes(&tail);
        }

        #[test]
        fn sessions_carry_data_in_any_split(
            splits in proptest::collection::vec(1usize..300, 1..20),
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..6),
        ) {
            let mut i = Noise::initiator(&ed(1), [1; 32], Some(ed(2).peer_id())).unwrap();
            let mut r = Noise::responder(&ed(2), [2; 32]).unwrap();
            let mut k = 0;
            let mut split = || { k += 1; splits[k % splits.len()] };
            pump(&mut i, &mut r, &mut split).unwrap();
            for m in &messages {
                i.send(m).unwrap();
                r.send(m).unwrap();
            }
            pump(&mut i, &mut r, &mut split).unwrap();
            let all = messages.concat();
            for n in [&mut i, &mut r] {
                let data: Vec<u8> = events(n).into_iter().flat_map(|e| match e {
                    NoiseEvent::Data(d) => d,
                    NoiseEvent::Established { .. } => Vec::new(),
                }).collect();
                prop_assert_eq!(&data, &all);
            }
        }
    }
}

/// Interop with an independent implementation: rust-libp2p's `libp2p-noise` (the version
/// libp2p 0.57.1 uses) on one end of an in-memory duplex, this module on the other, polled by
/// hand with a no-op waker so every step is deterministic.
#[cfg(test)]
mod interop {
    use super::*;
    use futures::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
    use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    /// Their end of the duplex: reads what we queued in `to_them`, writes into `from_them`.
    #[derive(Clone, Default)]
    struct Pipe {
        to_them: Arc<Mutex<VecDeque<u8>>>,
        from_them: Arc<Mutex<Vec<u8>>>,
    }

    impl futures::AsyncRead for Pipe {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut queue = self.to_them.lock().unwrap();
            if queue.is_empty() {
                return Poll::Pending;
            }
            let n = buf.len().min(queue.len());
            for (slot, byte) in buf.iter_mut().zip(queue.drain(..n)) {
                *slot = byte;
            }
            Poll::Ready(Ok(n))
        }
    }

    impl futures::AsyncWrite for Pipe {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.from_them.lock().unwrap().extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Polls `fut` to completion, moving bytes between it (through `pipe`) and `ours` between
    /// polls, in pieces of at most `step` bytes.
    fn drive<F: Future + Unpin>(fut: &mut F, ours: &mut Noise, pipe: &Pipe, step: usize) -> F::Output {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100_000 {
            let done = fut.poll_unpin(&mut cx);
            shuttle(ours, pipe, step);
            if let Poll::Ready(out) = done {
                return out;
            }
        }
        panic!("no progress");
    }

    fn shuttle(ours: &mut Noise, pipe: &Pipe, step: usize) {
        if let Some(bytes) = ours.poll_transmit() {
            pipe.to_them.lock().unwrap().extend(bytes);
        }
        let theirs = std::mem::take(&mut *pipe.from_them.lock().unwrap());
        for chunk in theirs.chunks(step) {
            ours.handle_bytes(chunk).unwrap();
        }
    }

    type TheirOutput = libp2p_noise::Output<Pipe>;

    /// After the handshake: data both ways, including a payload larger than one frame.
    fn exchange(ours: &mut Noise, theirs: &mut TheirOutput, pipe: &Pipe, step: usize) {
        let big: Vec<u8> = (0..150_000u32).map(|n| (n % 253) as u8).collect();
        drive(&mut theirs.write_all(&big).boxed_local(), ours, pipe, step).unwrap();
        drive(&mut theirs.flush().boxed_local(), ours, pipe, step).unwrap();
        shuttle(ours, pipe, step);
        let mut got = Vec::new();
        while let Some(NoiseEvent::Data(d)) = ours.poll_event() {
            got.extend(d);
        }
        assert_eq!(got, big, "their bytes reach us");

        ours.send(b"hello from thermocline").unwrap();
        ours.send(&big).unwrap();
        let mut buf = vec![0u8; 22 + big.len()];
        drive(&mut theirs.read_exact(&mut buf).boxed_local(), ours, pipe, step).unwrap();
        assert_eq!(&buf[..22], b"hello from thermocline");
        assert_eq!(&buf[22..], &big[..], "our bytes reach them");
    }

    fn expect_established(ours: &mut Noise, peer: &libp2p_identity::Keypair) {
        match ours.poll_event() {
            Some(NoiseEvent::Established { remote_peer, remote }) => {
                assert_eq!(remote_peer.to_bytes(), peer.public().to_peer_id().to_bytes());
                assert_eq!(remote.to_protobuf(), peer.public().encode_protobuf());
            }
            other => panic!("expected Established, got {other:?}"),
        }
    }

    fn keys(secret: u8, secp: bool) -> (Keypair, libp2p_identity::Keypair) {
        let s = [secret; 32];
        if secp {
            let sk = libp2p_identity::secp256k1::SecretKey::try_from_bytes(s).unwrap();
            (Keypair::secp256k1_from_secret(s).unwrap(), libp2p_identity::secp256k1::Keypair::from(sk).into())
        } else {
            (Keypair::ed25519_from_secret(s), libp2p_identity::Keypair::ed25519_from_bytes(s).unwrap())
        }
    }

    #[test]
    fn we_initiate_they_respond() {
        for (secp, step) in [(false, usize::MAX), (true, 1), (false, 5)] {
            let (ours_key, _) = keys(1, secp);
            let (_, their_key) = keys(2, !secp);
            let pipe = Pipe::default();
            let expected: PeerId = their_key.public().to_peer_id().to_string().parse().unwrap();
            let mut ours = Noise::initiator(&ours_key, [3; 32], Some(expected)).unwrap();
            let config = libp2p_noise::Config::new(&their_key).unwrap();
            let mut fut = config.upgrade_inbound(pipe.clone(), "/noise");
            let (their_view, mut theirs) = drive(&mut fut, &mut ours, &pipe, step).unwrap();
            assert_eq!(their_view.to_string(), ours_key.peer_id().to_string(), "they authenticated us");
            expect_established(&mut ours, &their_key);
            exchange(&mut ours, &mut theirs, &pipe, step);
        }
    }

    #[test]
    fn they_initiate_we_respond() {
        for (secp, step) in [(false, usize::MAX), (true, 1), (true, 7)] {
            let (ours_key, _) = keys(4, secp);
            let (_, their_key) = keys(5, !secp);
            let pipe = Pipe::default();
            let mut ours = Noise::responder(&ours_key, [6; 32]).unwrap();
            let config = libp2p_noise::Config::new(&their_key).unwrap();
            let mut fut = config.upgrade_outbound(pipe.clone(), "/noise");
            let (their_view, mut theirs) = drive(&mut fut, &mut ours, &pipe, step).unwrap();
            assert_eq!(their_view.to_string(), ours_key.peer_id().to_string(), "they authenticated us");
            expect_established(&mut ours, &their_key);
            exchange(&mut ours, &mut theirs, &pipe, step);
        }
    }

    #[test]
    fn they_refuse_a_tampered_message_2() {
        let (ours_key, their_key) = (Keypair::ed25519_from_secret([7; 32]), keys(8, false).1);
        let pipe = Pipe::default();
        let mut ours = Noise::responder(&ours_key, [9; 32]).unwrap();
        let mut fut = libp2p_noise::Config::new(&their_key).unwrap().upgrade_outbound(pipe.clone(), "/noise");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.poll_unpin(&mut cx).is_pending());
        let msg1 = std::mem::take(&mut *pipe.from_them.lock().unwrap());
        ours.handle_bytes(&msg1).unwrap();
        let mut msg2 = ours.poll_transmit().unwrap();
        let last = msg2.len() - 1;
        msg2[last] ^= 1;
        pipe.to_them.lock().unwrap().extend(msg2);
        assert!(matches!(fut.poll_unpin(&mut cx), Poll::Ready(Err(_))));
    }
}
