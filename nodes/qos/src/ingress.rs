//! The node's ingress, without sockets or clocks: a fixed-capacity queue of transactions ordered
//! by their source's score, verified in batches, and the scores signature failures lower.
//!
//! A source (an IPv4 address) starts at [`FULL_SCORE`]; a bad signature halves its score, a good
//! one raises it by one, back up to full. A transaction is placed by the score its source had
//! when it arrived. With scoring on, a batch takes the best-placed transactions first (oldest
//! first among equals), and a full queue evicts the newest of the worst-placed for a better-placed
//! arrival; with scoring off every source scores alike, so the queue is first in, first out and
//! drops arrivals when full.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// A source's score before any signature of it failed.
pub const FULL_SCORE: u32 = 100;
/// Bytes of a transaction besides its body: key, nonce, signature.
pub const OVERHEAD: usize = 104;

/// What the ingress has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams received.
    pub received: u64,
    /// Too short to be a transaction, or from an address that is not IPv4.
    pub malformed: u64,
    /// Dropped because the queue was full (arrivals refused and entries evicted).
    pub dropped: u64,
    /// Verified with a good signature.
    pub good: u64,
    /// Verified with a bad signature.
    pub bad: u64,
}

/// The ingress state.
pub struct Ingress {
    capacity: usize,
    scoring: bool,
    scores: HashMap<Ipv4Addr, u32>,
    /// Queued transactions by (priority, arrival number): the first key is the next to verify.
    queue: BTreeMap<(u32, u64), (Ipv4Addr, Vec<u8>)>,
    arrivals: u64,
    /// What it has done.
    pub counts: Counts,
}

impl Ingress {
    /// An ingress holding at most `capacity` transactions (at least one), scoring sources or not.
    pub fn new(capacity: usize, scoring: bool) -> Self {
        Ingress {
            capacity: capacity.max(1),
            scoring,
            scores: HashMap::new(),
            queue: BTreeMap::new(),
            arrivals: 0,
            counts: Counts::default(),
        }
    }

    /// Transactions waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn score(&self, src: Ipv4Addr) -> u32 {
        if self.scoring { self.scores.get(&src).copied().unwrap_or(FULL_SCORE) } else { FULL_SCORE }
    }

    /// A datagram arrives that cannot be a transaction of a scored source (from an IPv6 address).
    pub fn receive_unscored(&mut self) {
        self.counts.received += 1;
        self.counts.malformed += 1;
    }

    /// A datagram `bytes` from `src` arrives.
    pub fn receive(&mut self, src: Ipv4Addr, bytes: &[u8]) {
        self.counts.received += 1;
        if bytes.len() < OVERHEAD {
            self.counts.malformed += 1;
            return;
        }
        self.arrivals += 1;
        let key = (FULL_SCORE - self.score(src), self.arrivals);
        if self.queue.len() >= self.capacity {
            // The worst-placed entry: lowest score, newest arrival.
            let Some((&last, _)) = self.queue.last_key_value() else { return };
            self.counts.dropped += 1;
            if last <= key {
                return;
            }
            self.queue.remove(&last);
        }
        self.queue.insert(key, (src, bytes.to_vec()));
    }

    /// Verify up to `n` queued transactions, best first.
    pub fn verify_batch(&mut self, n: usize) {
        for _ in 0..n {
            let Some((_, (src, tx))) = self.queue.pop_first() else { return };
            let ok = verify(&tx);
            let score = self.scores.entry(src).or_insert(FULL_SCORE);
            if ok {
                self.counts.good += 1;
                *score = (*score + 1).min(FULL_SCORE);
            } else {
                self.counts.bad += 1;
                *score /= 2;
            }
        }
    }
}

/// Whether `tx` (key, nonce, body, signature) carries its key's signature over what precedes it.
pub fn verify(tx: &[u8]) -> bool {
    if tx.len() < OVERHEAD {
        return false;
    }
    let (signed, signature) = tx.split_at(tx.len() - 64);
    let Ok(key) = <[u8; 32]>::try_from(&signed[..32]) else { return false };
    let Ok(signature) = <[u8; 64]>::try_from(signature) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(&key) else { return false };
    key.verify(signed, &Signature::from_bytes(&signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn tx(seed: u8, nonce: u64, good: bool) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut out = key.verifying_key().to_bytes().to_vec();
        out.extend_from_slice(&nonce.to_be_bytes());
        out.extend_from_slice(&[0u8; 20]);
        let mut sig = key.sign(&out).to_bytes();
        if !good {
            sig[0] ^= 1;
        }
        out.extend_from_slice(&sig);
        out
    }

    const HONEST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

    #[test]
    fn signatures_are_checked() {
        assert!(verify(&tx(1, 5, true)));
        assert!(!verify(&tx(1, 5, false)));
        assert!(!verify(&[0; 50]));
    }

    #[test]
    fn without_scoring_a_flood_crowds_honest_transactions_out_of_a_full_queue() {
        let mut q = Ingress::new(4, false);
        for n in 0..4 {
            q.receive(ATTACKER, &tx(9, n, false));
        }
        q.receive(HONEST, &tx(1, 0, true));
        q.verify_batch(4);
        assert_eq!((q.counts.good, q.counts.bad, q.counts.dropped), (0, 4, 1));
    }

    #[test]
    fn with_scoring_failed_sources_sink_and_honest_transactions_go_first() {
        let mut q = Ingress::new(4, true);
        q.receive(ATTACKER, &tx(9, 0, false));
        q.verify_batch(1);
        for n in 1..5 {
            q.receive(ATTACKER, &tx(9, n, false));
        }
        q.receive(HONEST, &tx(1, 0, true));
        assert_eq!(q.counts.dropped, 1, "the attacker's newest made room");
        q.verify_batch(1);
        assert_eq!(q.counts.good, 1, "the honest transaction first");
        q.receive(Ipv4Addr::new(10, 0, 0, 2), &[1, 2, 3]);
        assert_eq!(q.counts.malformed, 1);
    }
}
