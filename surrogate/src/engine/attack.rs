//! Attackers at the gossip layer (`[[gossip.attackers]]`), and what honest identities do about
//! them: invalid messages are downloaded, validated, rejected and charged to their sender (P₄);
//! GRAFTs within a backoff cost P₇; a peer whose score falls below the disconnect threshold is
//! disconnected and refused while it stays there; an IWANT for one message is answered at most
//! `gossip_retransmission` times per peer. With scoring off only the router's own rules remain.

use super::{Action, DOWN, GossipEngine, NONE, PENALISED};
use crate::config::AttackSpec;
use crate::rpc::{MsgKey, NO_HINT, Rpc, RpcKind};
use crate::score::decay_invalid;
use crate::topics::TOPIC_BEACON_BLOCK;
use std::collections::BTreeMap;
use std::ops::Range;
use thermocline_models::rng::{StreamFamily, below};

/// What an attacker does, in engine units (see [`AttackSpec`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    /// When it begins, ns.
    pub start_ns: u64,
    /// Time between two invalid messages, ns (0: none).
    pub invalid_every_ns: u64,
    /// Size of an invalid message, bytes.
    pub invalid_size: u32,
    /// GRAFT every peer outside its mesh at every heartbeat.
    pub graft_spam: bool,
    /// IWANTs per held message, peer and heartbeat.
    pub iwant_spam: u32,
    /// Forward nothing, answer no IWANT.
    pub withhold: bool,
}

impl Attack {
    /// The attack `spec` asks for, with `block_size` the default size of an invalid message.
    pub fn from_spec(spec: &AttackSpec, block_size: u32) -> Self {
        Attack {
            start_ns: spec.start.as_nanos(),
            invalid_every_ns: if spec.invalid_rate > 0.0 {
                (1e9 / spec.invalid_rate).round().max(1.0) as u64
            } else {
                0
            },
            invalid_size: spec.invalid_size.map_or(block_size, |s| s.bytes() as u32),
            graft_spam: spec.graft_spam,
            iwant_spam: spec.iwant_spam,
            withhold: spec.withhold,
        }
    }
}

/// An honest identity's connection to an attacker at the end of the run.
pub(crate) struct AttackerLink {
    /// The honest identity.
    pub node: u32,
    /// The attacker.
    pub attacker: u32,
    /// The attacker's score at `node`.
    pub score: f64,
    /// Still connected.
    pub connected: bool,
    /// In `node`'s `beacon_block` mesh.
    pub in_mesh: bool,
    /// P₄ counter.
    pub invalid: f64,
    /// P₇ counter.
    pub behaviour: f64,
}

/// No attack: an honest identity.
const HONEST: u8 = u8::MAX;

/// A shard's attackers and the honest identities' defence counters.
#[derive(Default)]
pub(crate) struct AttackState {
    attacks: Vec<Attack>,
    /// The attackers' global ids, by attack.
    ranges: Vec<Range<u32>>,
    /// Per local identity: its attack (index into `attacks`), or [`HONEST`]; empty without
    /// attackers.
    of: Vec<u8>,
    /// P₄ counters by connection (only connections that delivered an invalid message).
    invalid: BTreeMap<u32, f32>,
    /// Per local identity: invalid messages received.
    pub invalid_in: Vec<u32>,
    /// Per local identity: peers disconnected for their score.
    pub disconnects: Vec<u32>,
    /// Per local attacker: invalid messages published so far.
    invalid_seq: BTreeMap<u32, u32>,
    /// IWANT answers per (message slot, connection).
    served: BTreeMap<(u32, u32), u8>,
}

impl AttackState {
    /// The state of a shard whose local identities are `ids`, with `attackers` by global id range.
    pub fn new(attackers: Vec<(Range<u32>, Attack)>, ids: &[u32]) -> Self {
        let k = ids.len();
        let (ranges, attacks): (Vec<_>, Vec<_>) = attackers.into_iter().unzip();
        let of = if attacks.is_empty() {
            Vec::new()
        } else {
            ids.iter()
                .map(|h| ranges.iter().position(|r: &Range<u32>| r.contains(h)).map_or(HONEST, |a| a as u8))
                .collect()
        };
        AttackState {
            attacks,
            ranges,
            of,
            invalid: BTreeMap::new(),
            invalid_in: vec![0; k],
            disconnects: vec![0; k],
            invalid_seq: BTreeMap::new(),
            served: BTreeMap::new(),
        }
    }

    /// Whether global identity `h` is an attacker.
    pub fn is_attacker(&self, h: u32) -> bool {
        self.ranges.iter().any(|r| r.contains(&h))
    }

    /// The P₄ counter of connection `c`.
    pub fn invalid_of(&self, c: usize) -> f32 {
        if self.invalid.is_empty() { 0.0 } else { self.invalid.get(&(c as u32)).copied().unwrap_or(0.0) }
    }

    /// Forget the IWANT answers about message slot `m` (it has retired).
    pub fn forget_message(&mut self, m: u32) {
        if !self.served.is_empty() {
            let keys: Vec<_> = self.served.range((m, 0)..=(m, u32::MAX)).map(|(&k, _)| k).collect();
            for key in keys {
                self.served.remove(&key);
            }
        }
    }
}

impl GossipEngine {
    /// Local identity `i`'s attack, once it has begun at `now`.
    pub(super) fn attack_at(&self, i: usize, now: u64) -> Option<&Attack> {
        let a = *self.attack.of.get(i)?;
        self.attack.attacks.get(a as usize).filter(|a| now >= a.start_ns)
    }

    /// Schedule each local attacker's first invalid message: at the attack's start plus a phase
    /// drawn from the identity's "attack" stream, so attackers do not publish in step.
    pub(super) fn schedule_attacks(&mut self, seed: u64) {
        let family = StreamFamily::new(seed, "attack");
        for i in 0..self.attack.of.len() {
            let Some(a) = self.attack.attacks.get(self.attack.of[i] as usize) else { continue };
            if a.invalid_every_ns == 0 {
                continue;
            }
            let at = a.start_ns + below(&mut family.compact(self.ids[i]), a.invalid_every_ns);
            if at < self.end_ns {
                self.self_event(i, at, Action::PublishInvalid);
            }
        }
    }

    /// Attacker `i` sends a new invalid message to every connected peer of the block topic (if it
    /// is online, and its upload queue holds less than one copy per peer: it floods as fast as its
    /// link allows, not into an ever longer queue), and schedules the next.
    pub(super) fn publish_invalid(&mut self, i: usize, now: u64, online: bool) {
        let Some(a) = self.attack_at(i, now).cloned() else { return };
        let backlog = self.txq[i].len() + self.fair.get(i).map_or(0, |f| f.len());
        if online && backlog < self.peers(i).len() {
            let seq = self.attack.invalid_seq.entry(i as u32).or_default();
            let msg = MsgKey::invalid(self.ids[i], *seq);
            *seq += 1;
            let rpc = Rpc {
                kind: RpcKind::Message,
                topic: TOPIC_BEACON_BLOCK,
                hops: 1,
                msg,
                size: a.invalid_size,
                published_ns: now,
                backoff_ms: 0,
                upload_us: 0,
                hint: NO_HINT,
            };
            for c in self.peers(i) {
                if self.up(c) && !self.is_client(c) && self.peer_subscribes(i, c, TOPIC_BEACON_BLOCK) {
                    self.send(i, c, now, rpc);
                }
            }
        }
        if now + a.invalid_every_ns < self.end_ns {
            self.self_event(i, now + a.invalid_every_ns, Action::PublishInvalid);
        }
    }

    /// An invalid message from `src` reached `i`: it is validated (taking the validation delay),
    /// then rejected.
    pub(super) fn receive_invalid(&mut self, i: usize, now: u64, src: u32) {
        self.attack.invalid_in[i] = self.attack.invalid_in[i].saturating_add(1);
        let at = now + prm!(self, i).validation_delay.as_nanos();
        self.self_event(i, at, Action::Rejected { from: src });
    }

    /// `i` rejected an invalid message from `from`: P₄ for the sender (with scoring), who is
    /// disconnected if that takes its score below the disconnect threshold.
    pub(super) fn reject(&mut self, i: usize, now: u64, from: u32) {
        if !prm!(self, i).scoring {
            return;
        }
        let Some(c) = self.slot_of(i, from).filter(|&c| self.up(c)) else { return };
        *self.attack.invalid.entry(c as u32).or_default() += 1.0;
        self.conn[c].flags |= PENALISED;
        self.disconnect_if_below(i, c, now);
    }

    /// Disconnect `i`'s peer on connection `c` if its score is below the disconnect threshold
    /// (scoring on): out of every mesh, told, closed, and replaced if `i` finds its peers.
    pub(super) fn disconnect_if_below(&mut self, i: usize, c: usize, now: u64) {
        let now_ms = (now / 1_000_000) as u32;
        if !self.up(c) || self.passes(i, c, prm!(self, i).score.disconnect_threshold, now_ms) {
            return;
        }
        for s in 0..self.per {
            self.leave_mesh(i, s, c, now_ms);
        }
        self.send_on(i, c, now, Rpc::control(RpcKind::Disconnect, 0));
        self.conn[c].flags |= DOWN;
        self.attack.disconnects[i] += 1;
        self.dial_discovered(i, now);
    }

    /// Whether `i` refuses a (re)connection on `c`: its peer's score, kept from before, is still
    /// below the disconnect threshold.
    pub(super) fn refuses_peer(&self, i: usize, c: usize, now: u64) -> bool {
        let now_ms = (now / 1_000_000) as u32;
        prm!(self, i).scoring && !self.passes(i, c, prm!(self, i).score.disconnect_threshold, now_ms)
    }

    /// One decay interval of `i`'s P₄ counters; a connection with no penalty left is clean again.
    pub(super) fn decay_invalid(&mut self, i: usize) {
        if self.attack.invalid.is_empty() {
            return;
        }
        let (start, end) = (self.row[i], self.row[i + 1]);
        let p = &prm!(self, i).score;
        let mut cleared = Vec::new();
        for (&c, v) in self.attack.invalid.range_mut(start..end) {
            *v = decay_invalid(p, *v);
            if *v == 0.0 {
                cleared.push(c);
            }
        }
        for c in cleared {
            self.attack.invalid.remove(&c);
            let s = &self.score[c as usize];
            if s.mesh_failure == 0.0 && s.behaviour == 0.0 {
                self.conn[c as usize].flags &= !PENALISED;
            }
        }
    }

    /// Whether `i` answers an IWANT for message slot `m` on connection `c`: at most
    /// `gossip_retransmission` times per peer and message.
    pub(super) fn may_retransmit(&mut self, i: usize, c: usize, m: u32) -> bool {
        let limit = prm!(self, i).gossip_retransmission;
        let n = self.attack.served.entry((m, c as u32)).or_default();
        if u32::from(*n) >= limit {
            return false;
        }
        *n = n.saturating_add(1);
        true
    }

    /// Attacker `i`'s heartbeat: with `graft_spam`, GRAFT every peer of each topic outside its
    /// mesh (backoff or not); with `iwant_spam`, ask every peer for each message it holds.
    pub(super) fn attack_heartbeat(&mut self, i: usize, now: u64, a: &Attack) {
        if a.graft_spam {
            for s in 0..self.per {
                for c in self.peers(i) {
                    if self.conn[c].shared >> s & 1 != 0 && self.up(c) && !self.in_mesh(i, s, c) {
                        self.graft(i, s, c, now);
                    }
                }
            }
        }
        if a.iwant_spam == 0 {
            return;
        }
        for s in 0..self.per {
            let t = self.topic_of(i, s) as usize;
            let pos = self.position(i, s);
            let held: Vec<u32> =
                self.recent[t].iter().copied().filter(|&m| self.msgs[m as usize].arrival[pos] != u64::MAX).collect();
            for m in held {
                let iwant = Rpc::about(RpcKind::IWant, &self.message_rpc(m, 0));
                for c in self.peers(i) {
                    if self.conn[c].shared >> s & 1 != 0 && self.up(c) && !self.is_client(c) {
                        for _ in 0..a.iwant_spam {
                            self.send(i, c, now, iwant);
                        }
                    }
                }
            }
        }
    }

    /// Every honest local identity's connections to attackers at the end, by identity id then
    /// attacker.
    pub(super) fn attacker_links(&self) -> Vec<AttackerLink> {
        if self.attack.attacks.is_empty() {
            return Vec::new();
        }
        let now_ms = (self.end_ns / 1_000_000) as u32;
        let mut rows = Vec::new();
        for i in 0..self.ids.len() {
            if self.attack.of[i] != HONEST {
                continue;
            }
            for c in self.peers(i) {
                let peer = self.conn[c].peer;
                if peer == NONE || !self.attack.is_attacker(peer) {
                    continue;
                }
                rows.push(AttackerLink {
                    node: self.ids[i],
                    attacker: peer,
                    score: self.score_of(i, c, now_ms),
                    connected: self.up(c),
                    in_mesh: self.in_mesh(i, 0, c),
                    invalid: self.attack.invalid_of(c) as f64,
                    behaviour: self.score[c].behaviour as f64,
                });
            }
        }
        rows.sort_by_key(|r| (r.node, r.attacker));
        rows
    }
}
