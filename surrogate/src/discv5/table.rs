//! One identity's Kademlia table, as discv5 keeps it (devp2p `discv5-theory.md`, "Node Table"):
//! bucket `d` holds up to [`K`] nodes at log2 distance `d` from the owner, least recently
//! verified first, and a node that finds its bucket full waits among the replacement candidates
//! until an entry of that bucket fails its liveness check.
//!
//! A million identities each keep one, so the layout is compact: entries are identity indices
//! (`u32`) in one vector grouped by bucket, with a two-byte record per filled bucket; empty
//! buckets, most of the 256, take no room. Candidates are capped per table ([`REPLACEMENTS`]),
//! not per bucket: a bucket that is full is one of the few far ones, and a per-bucket cache of
//! k would double the table. Distances come from the caller (the table holds no node ids).

/// Bucket size (discv5's k).
pub const K: usize = 16;

/// Replacement candidates kept per table, newest last; the oldest goes when one more arrives.
pub const REPLACEMENTS: usize = 8;

/// A 256-bit discv5 node id, and the log2 distance that picks its bucket.
pub use thermocline_wire::discv5::enr::{NodeId, log_distance};

/// What [`Table::insert`] did with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// It joined its bucket, as the most recently verified entry.
    Added,
    /// It was in its bucket already and is now the most recently verified entry.
    Refreshed,
    /// Its bucket is full: it is a replacement candidate.
    Candidate,
    /// Distance 0 (the owner itself) or over 256: never an entry.
    Refused,
}

/// One identity's table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Entries grouped by bucket, buckets in `buckets` order, each least recently verified first.
    entries: Vec<u32>,
    /// Filled buckets by descending distance: (distance − 1, entries).
    buckets: Vec<(u8, u8)>,
    /// Replacement candidates, newest last: (distance − 1, node).
    candidates: Vec<(u8, u32)>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Table::default()
    }

    /// Entries in all buckets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no bucket holds an entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Filled buckets.
    pub fn filled_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket of `distance` (1..=256), least recently verified first (empty if none).
    pub fn bucket(&self, distance: u16) -> &[u32] {
        match self.find(distance) {
            Ok(b) => &self.entries[self.range(b)],
            Err(_) => &[],
        }
    }

    /// Every entry, buckets by descending distance.
    pub fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Whether `node`, at `distance`, is an entry.
    pub fn contains(&self, node: u32, distance: u16) -> bool {
        self.bucket(distance).contains(&node)
    }

    /// Put `node`, at `distance` from the owner, in the table after a successful contact.
    pub fn insert(&mut self, node: u32, distance: u16) -> Inserted {
        if !(1..=256).contains(&distance) {
            return Inserted::Refused;
        }
        let key = (distance - 1) as u8;
        let b = match self.find(distance) {
            Ok(b) => {
                let r = self.range(b);
                if let Some(at) = self.entries[r.clone()].iter().position(|&n| n == node) {
                    self.entries[r.start + at..r.end].rotate_left(1);
                    return Inserted::Refreshed;
                }
                if r.len() == K {
                    self.add_candidate(key, node);
                    return Inserted::Candidate;
                }
                b
            }
            Err(b) => {
                self.buckets.reserve_exact(1);
                self.buckets.insert(b, (key, 0));
                b
            }
        };
        self.candidates.retain(|&(_, n)| n != node);
        self.entries.reserve_exact(1);
        self.entries.insert(self.range(b).end, node);
        self.buckets[b].1 += 1;
        Inserted::Added
    }

    /// Take `node` out after a failed liveness check; the newest candidate at the same distance
    /// takes its place (as the most recently verified entry), and is returned.
    pub fn remove(&mut self, node: u32, distance: u16) -> Option<u32> {
        self.candidates.retain(|&(_, n)| n != node);
        let b = self.find(distance).ok()?;
        let r = self.range(b);
        let at = self.entries[r.clone()].iter().position(|&n| n == node)?;
        let key = self.buckets[b].0;
        let promoted = self.candidates.iter().rposition(|&(d, _)| d == key).map(|i| self.candidates.remove(i).1);
        match promoted {
            Some(p) => {
                self.entries[r.start + at..r.end].rotate_left(1);
                self.entries[r.end - 1] = p;
            }
            None => {
                self.entries.remove(r.start + at);
                self.buckets[b].1 -= 1;
                if self.buckets[b].1 == 0 {
                    self.buckets.remove(b);
                }
            }
        }
        promoted
    }

    /// The entry to check next for liveness: the least recently verified entry of the `pick`-th
    /// filled bucket (modulo their number), with its distance.
    pub fn least_recently_verified(&self, pick: u64) -> Option<(u32, u16)> {
        if self.buckets.is_empty() {
            return None;
        }
        let b = (pick % self.buckets.len() as u64) as usize;
        Some((self.entries[self.range_start(b)], u16::from(self.buckets[b].0) + 1))
    }

    /// Entries at the given distances, in the order asked, at most `limit` (a FINDNODE answer).
    pub fn at_distances(&self, distances: &[u16], limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for &d in distances {
            let bucket = self.bucket(d);
            let room = limit - out.len();
            out.extend_from_slice(&bucket[..bucket.len().min(room)]);
            if out.len() == limit {
                break;
            }
        }
        out
    }

    /// Start loading the table's buckets and the start of its entries (a hint for engines that
    /// prefetch an event's state).
    pub(crate) fn prefetch(&self) {
        if let Some(b) = self.buckets.first() {
            crate::prefetch::prefetch(b);
        }
        if let Some(e) = self.entries.first() {
            crate::prefetch::prefetch(e);
        }
    }

    /// Heap bytes held (capacity, not length), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * 4 + self.buckets.capacity() * 2 + self.candidates.capacity() * 8
    }

    fn add_candidate(&mut self, key: u8, node: u32) {
        if let Some(i) = self.candidates.iter().position(|&(_, n)| n == node) {
            self.candidates.remove(i);
        } else if self.candidates.len() == REPLACEMENTS {
            self.candidates.remove(0);
        }
        self.candidates.reserve_exact(1);
        self.candidates.push((key, node));
    }

    /// The filled bucket of `distance`, or where it would go (buckets by descending distance).
    fn find(&self, distance: u16) -> Result<usize, usize> {
        if !(1..=256).contains(&distance) {
            return Err(self.buckets.len());
        }
        let key = (distance - 1) as u8;
        self.buckets.binary_search_by(|&(k, _)| key.cmp(&k))
    }

    fn range_start(&self, b: usize) -> usize {
        self.buckets[..b].iter().map(|&(_, n)| n as usize).sum()
    }

    fn range(&self, b: usize) -> std::ops::Range<usize> {
        let start = self.range_start(b);
        start..start + self.buckets[b].1 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_full_bucket_keeps_its_entries_and_the_newcomer_waits_as_a_candidate() {
        let mut t = Table::new();
        for n in 0..K as u32 {
            assert_eq!(t.insert(n, 256), Inserted::Added);
        }
        assert_eq!(t.insert(100, 256), Inserted::Candidate);
        assert_eq!(t.bucket(256).len(), K);
        assert!(!t.contains(100, 256));
        assert_eq!(t.insert(3, 256), Inserted::Refreshed);
        assert_eq!(*t.bucket(256).last().unwrap(), 3, "a refreshed entry becomes the most recently verified");
        assert_eq!(t.insert(9, 0), Inserted::Refused);
    }

    #[test]
    fn a_failed_entry_is_replaced_by_the_newest_candidate_of_its_own_bucket() {
        let mut t = Table::new();
        for n in 0..K as u32 {
            t.insert(n, 255);
        }
        for n in 0..K as u32 {
            t.insert(50 + n, 200);
        }
        t.insert(100, 255);
        t.insert(101, 200);
        t.insert(102, 255);
        assert_eq!(t.least_recently_verified(0), Some((0, 255)));
        assert_eq!(t.remove(0, 255), Some(102));
        assert_eq!(t.remove(1, 255), Some(100));
        assert_eq!(t.remove(2, 255), None, "no candidate left at 255; 101 is at 200");
        assert_eq!(t.bucket(255).len(), K - 1);
        assert_eq!(t.remove(50, 200), Some(101));
        assert_eq!(t.len(), 2 * K - 1);
    }

    #[test]
    fn findnode_answers_in_the_order_of_the_distances_asked_up_to_the_limit() {
        let mut t = Table::new();
        for n in 0..5 {
            t.insert(n, 250);
        }
        for n in 10..13 {
            t.insert(n, 251);
        }
        t.insert(20, 249);
        assert_eq!(t.at_distances(&[250, 251, 249], 16), vec![0, 1, 2, 3, 4, 10, 11, 12, 20]);
        assert_eq!(t.at_distances(&[251, 250], 4), vec![10, 11, 12, 0]);
        assert_eq!(t.at_distances(&[7], 16), Vec::<u32>::new());
        assert_eq!(t.filled_buckets(), 3);
    }

    #[test]
    fn candidates_are_capped_oldest_out() {
        let mut t = Table::new();
        for n in 0..K as u32 {
            t.insert(n, 256);
        }
        for n in 0..(REPLACEMENTS as u32 + 2) {
            t.insert(100 + n, 256);
        }
        let mut promoted = Vec::new();
        for n in 0..K as u32 {
            promoted.extend(t.remove(n, 256));
        }
        let expected: Vec<u32> = (102..100 + REPLACEMENTS as u32 + 2).rev().collect();
        assert_eq!(promoted, expected);
    }

    /// A plain model: per distance, the entries in verification order, and the candidates.
    #[derive(Default)]
    struct Model {
        buckets: BTreeMap<u16, Vec<u32>>,
        candidates: Vec<(u16, u32)>,
    }

    impl Model {
        fn insert(&mut self, node: u32, d: u16) {
            let b = self.buckets.entry(d).or_default();
            if let Some(i) = b.iter().position(|&n| n == node) {
                b.remove(i);
                b.push(node);
            } else if b.len() < K {
                self.candidates.retain(|&(_, n)| n != node);
                b.push(node);
            } else {
                self.candidates.retain(|&(_, n)| n != node);
                if self.candidates.len() == REPLACEMENTS {
                    self.candidates.remove(0);
                }
                self.candidates.push((d, node));
            }
        }

        fn remove(&mut self, node: u32, d: u16) {
            self.candidates.retain(|&(_, n)| n != node);
            let Some(b) = self.buckets.get_mut(&d) else { return };
            let Some(i) = b.iter().position(|&n| n == node) else { return };
            b.remove(i);
            if let Some(c) = self.candidates.iter().rposition(|&(cd, _)| cd == d) {
                b.push(self.candidates.remove(c).1);
            }
        }
    }

    proptest! {
        #[test]
        fn the_compact_table_behaves_as_a_bucket_map(ops in proptest::collection::vec((any::<bool>(), 0u32..60), 0..400)) {
            let mut t = Table::new();
            let mut m = Model::default();
            for (add, node) in ops {
                // A node has one distance from the owner; seven buckets, some overfull.
                let d = 250 + (node % 7) as u16;
                if add {
                    t.insert(node, d);
                    m.insert(node, d);
                } else {
                    t.remove(node, d);
                    m.remove(node, d);
                }
                let flat: Vec<u32> = m.buckets.iter().rev().flat_map(|(_, b)| b.iter().copied()).collect();
                prop_assert_eq!(t.entries(), &flat[..]);
                for (&d, b) in &m.buckets {
                    prop_assert_eq!(t.bucket(d), &b[..]);
                }
            }
        }
    }
}
