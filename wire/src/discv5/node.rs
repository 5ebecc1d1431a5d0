//! One discv5 node on the wire, sans-IO in quinn-proto's manner: datagrams in through
//! [`Node::handle_packet`] (with the address they came from), datagrams out through
//! [`Node::poll_transmit`], what peers asked and answered through [`Node::poll_event`]. It
//! keeps the sessions (one per peer id and address), answers an undecryptable packet with
//! WHOAREYOU, completes handshakes either way round, answers PING (PONG with the address the
//! request came from) and TALKREQ (empty: no application protocols) itself, and splits the
//! NODES answer to a FINDNODE into packets under the 1280-byte limit. What a FINDNODE returns is
//! the caller's (its table), so requests other than PING and TALKREQ come out as events.
//!
//! Randomness (masking IVs, nonces, id nonces, ephemeral keys) comes from the caller's seed, so
//! a simulation that drives nodes is repeatable.

use super::enr::{Enr, NodeId};
use super::message::Message;
use super::packet::{self, AuthData, Header, MAX_PACKET};
use super::session::{self, SessionKeys};
use k256::ecdsa::{SigningKey, VerifyingKey};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng as _, SeedableRng as _};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddrV4};

/// A peer as the node addresses it.
pub type Peer = (NodeId, SocketAddrV4);

/// What came in, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A request the node does not answer itself (FINDNODE): answer with [`Node::send`]
    /// or [`Node::answer_findnode`].
    Request {
        /// Who asked.
        from: Peer,
        /// The request.
        message: Message,
    },
    /// An answer to one of our requests (PONG, NODES, TALKRESP).
    Response {
        /// Who answered.
        from: Peer,
        /// The answer.
        message: Message,
    },
    /// A session was established with a peer, whose verified record (when it sent one) is given.
    Established {
        /// The peer.
        peer: Peer,
        /// Its record, if the handshake carried one.
        record: Option<Box<Enr>>,
    },
}

/// The keys of one session, from our side.
#[derive(Clone, Copy, Debug)]
struct Session {
    write: [u8; 16],
    read: [u8; 16],
}

/// A request waiting for its peer's WHOAREYOU: the nonce of the packet that opened the
/// handshake, the message to send in it, and the peer's public key.
#[derive(Clone, Debug)]
struct Waiting {
    nonce: [u8; 12],
    message: Message,
    key: VerifyingKey,
}

/// A discv5 node (see the module documentation).
pub struct Node {
    key: SigningKey,
    id: NodeId,
    enr: Enr,
    rng: ChaCha8Rng,
    sessions: BTreeMap<Peer, Session>,
    /// WHOAREYOU we sent, by peer: its challenge data.
    challenges: BTreeMap<Peer, Vec<u8>>,
    /// Our requests waiting for a handshake, by peer.
    waiting: BTreeMap<Peer, Waiting>,
    /// Records of peers we know (their keys, for handshakes they start with no record).
    known: BTreeMap<NodeId, Enr>,
    out: VecDeque<(SocketAddrV4, Vec<u8>)>,
    events: VecDeque<NodeEvent>,
}

impl Node {
    /// A node with static key `key` and record `enr` (signed with it), its randomness from `seed`.
    pub fn new(key: SigningKey, enr: Enr, seed: u64) -> Node {
        let id = enr.node_id();
        Node {
            key,
            id,
            enr,
            rng: ChaCha8Rng::seed_from_u64(seed),
            sessions: BTreeMap::new(),
            challenges: BTreeMap::new(),
            waiting: BTreeMap::new(),
            known: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Our record.
    pub fn enr(&self) -> &Enr {
        &self.enr
    }

    /// Remember `enr` (a bootnode, or a record learnt from NODES), so we can start sessions with it.
    pub fn learn(&mut self, enr: Enr) {
        self.known.insert(enr.node_id(), enr);
    }

    /// Sessions established.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Sends `message` to `to` (whose record we know): in its session, or, with none yet, in the
    /// handshake its WHOAREYOU starts. `false` if we know no key for `to`.
    pub fn send(&mut self, to: Peer, message: Message) -> bool {
        if let Some(s) = self.sessions.get(&to).copied() {
            self.send_sealed(to, s.write, &message);
            return true;
        }
        let Some(key) = self.known.get(&to.0).map(|e| *e.public_key()) else { return false };
        // A packet the peer cannot open: its WHOAREYOU names this nonce.
        let nonce = self.nonce();
        let mut filler = [0u8; 20];
        self.rng.fill_bytes(&mut filler);
        let header = Header { nonce, auth: AuthData::Message { src: self.id } };
        let iv = self.iv();
        self.out.push_back((to.1, packet::encode(&to.0, iv, &header, &filler)));
        self.waiting.insert(to, Waiting { nonce, message, key });
        true
    }

    /// Answers a FINDNODE from `to` with `records`, as many NODES messages as the packet limit
    /// needs (each announcing the total).
    pub fn answer_findnode(&mut self, to: Peer, req_id: &[u8], records: &[Enr]) {
        let mut groups: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
        // Room for records in one packet: the limit, less the header, the tag and the message's
        // own framing (request id, total, list headers).
        let room = MAX_PACKET - 16 - 23 - 32 - 16 - 1 - 3 - 9 - 2 - 3;
        let mut used = 0;
        for r in records {
            let len = r.encoded().len();
            if used + len > room && !groups.last().expect("one group").is_empty() {
                groups.push(Vec::new());
                used = 0;
            }
            groups.last_mut().expect("one group").push(r.encoded().to_vec());
            used += len;
        }
        let total = groups.len() as u64;
        for records in groups {
            self.send(to, Message::Nodes { req_id: req_id.to_vec(), total, records });
        }
    }

    /// Takes a datagram that reached us from `from`. Anything that is not a packet for us, does
    /// not authenticate or does not parse is dropped (an ordinary packet we cannot open gets a
    /// WHOAREYOU).
    pub fn handle_packet(&mut self, from: SocketAddrV4, bytes: &[u8]) {
        let Ok(p) = packet::decode(&self.id, bytes) else { return };
        match p.header.auth.clone() {
            AuthData::Message { src } => self.on_message(from, src, &p),
            AuthData::WhoAreYou { enr_seq, .. } => self.on_whoareyou(from, &p, enr_seq),
            AuthData::Handshake { src, signature, eph_pubkey, record } => {
                self.on_handshake(from, src, &p, &signature, &eph_pubkey, record.as_deref());
            }
        }
    }

    /// The next datagram to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    fn on_message(&mut self, from: SocketAddrV4, src: NodeId, p: &packet::Packet<'_>) {
        let peer = (src, from);
        let opened = self
            .sessions
            .get(&peer)
            .and_then(|s| session::decrypt(&s.read, &p.header.nonce, p.message, &p.authenticated));
        match opened {
            Some(pt) => self.dispatch(peer, &pt),
            None => self.challenge(peer, p.header.nonce),
        }
    }

    /// Sends WHOAREYOU for the packet with `nonce` from `peer`, remembering its challenge data.
    fn challenge(&mut self, peer: Peer, nonce: [u8; 12]) {
        let mut id_nonce = [0u8; 16];
        self.rng.fill_bytes(&mut id_nonce);
        let enr_seq = self.known.get(&peer.0).map_or(0, Enr::seq);
        let header = Header { nonce, auth: AuthData::WhoAreYou { id_nonce, enr_seq } };
        let iv = self.iv();
        self.challenges.insert(peer, packet::authenticated(iv, &header));
        self.out.push_back((peer.1, packet::encode(&peer.0, iv, &header, &[])));
    }

    fn on_whoareyou(&mut self, from: SocketAddrV4, p: &packet::Packet<'_>, enr_seq: u64) {
        let Some((&peer, _)) = self.waiting.iter().find(|(peer, w)| peer.1 == from && w.nonce == p.header.nonce) else {
            return;
        };
        let w = self.waiting.remove(&peer).expect("found above");
        let challenge = &p.authenticated;
        let eph = self.ephemeral_key();
        let eph_pubkey = eph.verifying_key().to_sec1_point(true).as_bytes().to_vec();
        let SessionKeys { initiator, recipient } = session::derive_keys(&eph, &w.key, &self.id, &peer.0, challenge);
        let signature = session::id_sign(&self.key, challenge, &eph_pubkey, &peer.0).to_vec();
        let record = (enr_seq < self.enr.seq()).then(|| self.enr.encoded().to_vec());
        let header =
            Header { nonce: self.nonce(), auth: AuthData::Handshake { src: self.id, signature, eph_pubkey, record } };
        let iv = self.iv();
        let sealed =
            session::encrypt(&initiator, &header.nonce, &w.message.encode(), &packet::authenticated(iv, &header));
        self.out.push_back((from, packet::encode(&peer.0, iv, &header, &sealed)));
        self.sessions.insert(peer, Session { write: initiator, read: recipient });
        self.events.push_back(NodeEvent::Established { peer, record: None });
    }

    fn on_handshake(
        &mut self,
        from: SocketAddrV4,
        src: NodeId,
        p: &packet::Packet<'_>,
        signature: &[u8],
        eph_pubkey: &[u8],
        record: Option<&[u8]>,
    ) {
        let peer = (src, from);
        let Some(challenge) = self.challenges.get(&peer).cloned() else { return };
        let record = match record.map(Enr::decode) {
            Some(Ok(enr)) if enr.node_id() == src => Some(enr),
            Some(_) => return,
            None => None,
        };
        let Some(key) = record.as_ref().or_else(|| self.known.get(&src)).map(|e| *e.public_key()) else { return };
        let Ok(eph) = VerifyingKey::from_sec1_bytes(eph_pubkey) else { return };
        if !session::id_verify(&key, &challenge, eph_pubkey, &self.id, signature) {
            return;
        }
        let keys = session::derive_keys(&self.key, &eph, &src, &self.id, &challenge);
        let Some(pt) = session::decrypt(&keys.initiator, &p.header.nonce, p.message, &p.authenticated) else { return };
        self.challenges.remove(&peer);
        self.sessions.insert(peer, Session { write: keys.recipient, read: keys.initiator });
        if let Some(enr) = &record {
            self.known.insert(src, enr.clone());
        }
        self.events.push_back(NodeEvent::Established { peer, record: record.map(Box::new) });
        self.dispatch(peer, &pt);
    }

    /// A message opened in `peer`'s session: answered here (PING, TALKREQ) or handed out.
    fn dispatch(&mut self, peer: Peer, pt: &[u8]) {
        let Ok(message) = Message::decode(pt) else { return };
        match message {
            Message::Ping { req_id, .. } => {
                let pong = Message::Pong {
                    req_id,
                    enr_seq: self.enr.seq(),
                    ip: IpAddr::V4(*peer.1.ip()),
                    port: peer.1.port(),
                };
                self.send(peer, pong);
            }
            Message::TalkReq { req_id, .. } => {
                self.send(peer, Message::TalkResp { req_id, response: Vec::new() });
            }
            Message::FindNode { .. } => self.events.push_back(NodeEvent::Request { from: peer, message }),
            Message::Pong { .. } | Message::Nodes { .. } | Message::TalkResp { .. } => {
                self.events.push_back(NodeEvent::Response { from: peer, message });
            }
        }
    }

    fn send_sealed(&mut self, to: Peer, key: [u8; 16], message: &Message) {
        let header = Header { nonce: self.nonce(), auth: AuthData::Message { src: self.id } };
        let iv = self.iv();
        let sealed = session::encrypt(&key, &header.nonce, &message.encode(), &packet::authenticated(iv, &header));
        self.out.push_back((to.1, packet::encode(&to.0, iv, &header, &sealed)));
    }

    fn nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.rng.fill_bytes(&mut n);
        n
    }

    fn iv(&mut self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        self.rng.fill_bytes(&mut iv);
        iv
    }

    /// A fresh ephemeral key (32 random bytes are a valid secp256k1 scalar but with
    /// probability about 2^-128; draw again then).
    fn ephemeral_key(&mut self) -> SigningKey {
        loop {
            let mut b = [0u8; 32];
            self.rng.fill_bytes(&mut b);
            if let Ok(k) = SigningKey::from_slice(&b) {
                return k;
            }
        }
    }
}

#[cfg(test)]
mod tests;
