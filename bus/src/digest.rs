//! The run digest: a fingerprint of a run's results that does not depend on how hosts were cut
//! into shards.
//!
//! Each host contributes records (its final state, its metrics); the digest is the sum modulo
//! 2^256 of the SHA-256 of every record (an additive multiset hash). Addition is commutative and
//! associative, so shards fold their own hosts and the coordinator adds the shard digests in any
//! order: the result equals the single-shard one exactly when the multiset of records does.
//! Records must therefore be self-describing (start with the host id) and unique.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// A 256-bit additive multiset hash. See the module documentation.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of no records.
    pub const EMPTY: Digest = Digest([0; 32]);

    /// Add one record.
    pub fn add_record(&mut self, record: &[u8]) {
        let h: [u8; 32] = Sha256::digest(record).into();
        self.add(&Digest(h));
    }

    /// Add another digest (e.g. a shard's) into this one.
    pub fn add(&mut self, other: &Digest) {
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let s = self.0[i] as u16 + other.0[i] as u16 + carry;
            self.0[i] = s as u8;
            carry = s >> 8;
        }
    }

    /// The 32 bytes, big-endian.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// From 32 big-endian bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Digest(b)
    }

    /// Lower-case hex, as written to `summary.json`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_grouping_do_not_matter_but_content_does() {
        let records: Vec<Vec<u8>> = (0u32..50).map(|i| i.to_be_bytes().repeat(3)).collect();
        let mut all = Digest::EMPTY;
        records.iter().for_each(|r| all.add_record(r));
        let (mut a, mut b) = (Digest::EMPTY, Digest::EMPTY);
        for (i, r) in records.iter().enumerate().rev() {
            if i % 3 == 0 { a.add_record(r) } else { b.add_record(r) }
        }
        b.add(&a);
        assert_eq!(all, b);
        let mut other = Digest::EMPTY;
        records[1..].iter().for_each(|r| other.add_record(r));
        assert_ne!(all, other);
        // A duplicated record changes the digest (unlike XOR-combining).
        other.add_record(&records[1]);
        other.add_record(&records[0]);
        assert_ne!(all, other);
    }

    #[test]
    fn carries_propagate_across_bytes() {
        let mut d = Digest::from_bytes([0xff; 32]);
        let mut one = [0u8; 32];
        one[31] = 1;
        d.add(&Digest::from_bytes(one));
        assert_eq!(d, Digest::EMPTY);
    }
}
