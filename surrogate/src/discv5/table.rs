//! One identity's Kademlia table, as discv5 keeps it (devp2p `discv5-theory.md`, "Node Table"):
//! bucket `d` holds up to [`K`] nodes at log2 distance `d` from the owner, least recently
//! verified first, and a node that finds its bucket full waits among the replacement candidates
//! until an entry of that bucket fails its liveness check.
//!
//! A million identities each keep one, so the layout is compact: one vector of 32-bit words
//! holds the entries (identity indices) grouped by bucket, then the candidates, then a
//! two-byte record per filled bucket; empty buckets, most of the 256, take no room. Candidates
//! are capped per table ([`REPLACEMENTS`]), not per bucket: a bucket that is full is one of the
//! few far ones, and a per-bucket cache of k would double the table. Distances come from the
//! caller (the table holds no node ids).

/// Bucket size (discv5's k).
pub const K: usize = 16;

/// Replacement candidates kept per table, newest last; the oldest goes when one more arrives.
pub const REPLACEMENTS: usize = 8;

/// Words added to a full table's vector at a time: a reallocation every few inserts, a few
/// bytes of slack.
const GROW: usize = 4;

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

/// One identity's table, in one allocation: `words` holds the entries grouped by bucket
/// (buckets by descending distance, each least recently verified first), then the replacement
/// candidates (newest last), then the filled buckets' records, two a word, each (distance − 1)
/// in the high byte and the bucket's entries in the low one.
#[derive(Debug, Clone, Default)]
pub struct Table {
    words: Vec<u32>,
    /// Entries in all buckets.
    len: u16,
    /// Filled buckets.
    buckets: u16,
    /// Replacement candidates.
    candidates: u8,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Table::default()
    }

    /// Entries in all buckets.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no bucket holds an entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Filled buckets.
    pub fn filled_buckets(&self) -> usize {
        usize::from(self.buckets)
    }

    /// The bucket of `distance` (1..=256), least recently verified first (empty if none).
    pub fn bucket(&self, distance: u16) -> &[u32] {
        match self.locate(distance) {
            Ok(at) => &self.words[at.range()],
            Err(_) => &[],
        }
    }

    /// Every entry, buckets by descending distance.
    pub fn entries(&self) -> &[u32] {
        &self.words[..self.len()]
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
        let at = match self.locate(distance) {
            Ok(at) => {
                let r = at.range();
                if let Some(k) = self.words[r.clone()].iter().position(|&n| n == node) {
                    self.words[r.start + k..r.end].rotate_left(1);
                    return Inserted::Refreshed;
                }
                if r.len() == K {
                    self.add_candidate(node);
                    return Inserted::Candidate;
                }
                at
            }
            Err(at) => {
                self.open_bucket(at.bucket, (distance - 1) as u8);
                at
            }
        };
        self.drop_candidate(node);
        self.grow();
        self.words.insert(at.range().end, node);
        self.len += 1;
        let (key, count) = self.record(at.bucket);
        self.set_record(at.bucket, key, count + 1);
        Inserted::Added
    }

    /// Take `node` out after a failed liveness check; the newest candidate at the same distance
    /// (`distance_of` gives a candidate's) takes its place, as the most recently verified
    /// entry, and is returned.
    pub fn remove(&mut self, node: u32, distance: u16, distance_of: impl Fn(u32) -> u16) -> Option<u32> {
        self.drop_candidate(node);
        let slot = self.locate(distance).ok()?;
        let (b, r) = (slot.bucket, slot.range());
        let at = self.words[r.clone()].iter().position(|&n| n == node)?;
        let start = self.candidates_start();
        let newest = (0..usize::from(self.candidates)).rev().find(|&c| distance_of(self.words[start + c]) == distance);
        match newest {
            Some(c) => {
                let promoted = self.words.remove(start + c);
                self.candidates -= 1;
                self.words[r.start + at..r.end].rotate_left(1);
                self.words[r.end - 1] = promoted;
                Some(promoted)
            }
            None => {
                self.words.remove(r.start + at);
                self.len -= 1;
                match self.record(b) {
                    (_, 1) => self.close_bucket(b),
                    (key, count) => self.set_record(b, key, count - 1),
                }
                None
            }
        }
    }

    /// The entry to check next for liveness: the least recently verified entry of the `pick`-th
    /// filled bucket (modulo their number), with its distance.
    pub fn least_recently_verified(&self, pick: u64) -> Option<(u32, u16)> {
        if self.buckets == 0 {
            return None;
        }
        let b = (pick % u64::from(self.buckets)) as usize;
        let start: usize = self.records().take(b).map(|(_, count)| usize::from(count)).sum();
        Some((self.words[start], u16::from(self.record(b).0) + 1))
    }

    /// Entries at the given distances, in the order asked, at most `limit` (a FINDNODE answer).
    pub fn at_distances(&self, distances: &[u16], limit: usize) -> Vec<u32> {
        let mut out = vec![0; limit];
        let n = self.fill_at_distances(distances, &mut out);
        out.truncate(n);
        out
    }

    /// [`Table::at_distances`] into `out`, as many as it holds; how many.
    pub fn fill_at_distances(&self, distances: &[u16], out: &mut [u32]) -> usize {
        let mut n = 0;
        for &d in distances {
            let bucket = self.bucket(d);
            let take = bucket.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&bucket[..take]);
            n += take;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Start loading the table's bucket records and the start of its entries (a hint for
    /// engines that prefetch an event's state).
    pub(crate) fn prefetch(&self) {
        if let Some(e) = self.words.first() {
            crate::prefetch::prefetch(e);
        }
        if let Some(r) = self.words.get(self.records_start()) {
            crate::prefetch::prefetch(r);
        }
    }

    /// Heap bytes held (capacity, not length), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 4
    }

    /// Room for one more word.
    fn grow(&mut self) {
        if self.words.len() == self.words.capacity() {
            self.words.reserve_exact(GROW);
        }
    }

    fn candidates_start(&self) -> usize {
        self.len()
    }

    fn records_start(&self) -> usize {
        self.len() + usize::from(self.candidates)
    }

    /// Filled bucket `b`'s record: (distance − 1, entries).
    fn record(&self, b: usize) -> (u8, u8) {
        let r = (self.words[self.records_start() + b / 2] >> (16 * (b % 2))) as u16;
        ((r >> 8) as u8, r as u8)
    }

    fn set_record(&mut self, b: usize, key: u8, count: u8) {
        let shift = 16 * (b % 2);
        let at = self.records_start() + b / 2;
        let r = u32::from(u16::from(key) << 8 | u16::from(count));
        self.words[at] = (self.words[at] & !(0xffff << shift)) | r << shift;
    }

    /// A new, empty bucket at position `b` of the records.
    fn open_bucket(&mut self, b: usize, key: u8) {
        if self.buckets.is_multiple_of(2) {
            self.grow();
            self.words.push(0);
        }
        self.buckets += 1;
        for k in (b + 1..usize::from(self.buckets)).rev() {
            let (key, count) = self.record(k - 1);
            self.set_record(k, key, count);
        }
        self.set_record(b, key, 0);
    }

    /// Bucket `b`, now empty, leaves the records.
    fn close_bucket(&mut self, b: usize) {
        for k in b..usize::from(self.buckets) - 1 {
            let (key, count) = self.record(k + 1);
            self.set_record(k, key, count);
        }
        self.buckets -= 1;
        if self.buckets.is_multiple_of(2) {
            self.words.pop();
        }
    }

    fn add_candidate(&mut self, node: u32) {
        let start = self.candidates_start();
        if !self.drop_candidate(node) && usize::from(self.candidates) == REPLACEMENTS {
            self.words.remove(start);
            self.candidates -= 1;
        }
        self.grow();
        self.words.insert(start + usize::from(self.candidates), node);
        self.candidates += 1;
    }

    /// Take `node` out of the candidates; whether it was one.
    fn drop_candidate(&mut self, node: u32) -> bool {
        let start = self.candidates_start();
        let Some(c) = self.words[start..self.records_start()].iter().position(|&n| n == node) else { return false };
        self.words.remove(start + c);
        self.candidates -= 1;
        true
    }

    /// The filled buckets' records in order: (distance − 1, entries).
    fn records(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        let words = &self.words[self.records_start()..];
        words
            .iter()
            .flat_map(|&w| [w as u16, (w >> 16) as u16])
            .map(|r| ((r >> 8) as u8, r as u8))
            .take(usize::from(self.buckets))
    }

    /// The filled bucket of `distance` and its entries, or where it would go (buckets by
    /// descending distance), in one pass over the records.
    fn locate(&self, distance: u16) -> Result<Slot, Slot> {
        let mut start = 0;
        if !(1..=256).contains(&distance) {
            return Err(Slot { bucket: self.filled_buckets(), start: self.len(), count: 0 });
        }
        let key = (distance - 1) as u8;
        for (b, (k, count)) in self.records().enumerate() {
            if k == key {
                return Ok(Slot { bucket: b, start, count: usize::from(count) });
            }
            if k < key {
                return Err(Slot { bucket: b, start, count: 0 });
            }
            start += usize::from(count);
        }
        Err(Slot { bucket: self.filled_buckets(), start, count: 0 })
    }
}

/// A bucket's place: its position among the filled buckets and its entries in the table's
/// words (where it would go, with no entries, if it is not filled).
#[derive(Debug, Clone, Copy)]
struct Slot {
    bucket: usize,
    start: usize,
    count: usize,
}

impl Slot {
    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.count
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
        let distance = |n: u32| if n == 101 || (50..50 + K as u32).contains(&n) { 200 } else { 255 };
        assert_eq!(t.remove(0, 255, distance), Some(102));
        assert_eq!(t.remove(1, 255, distance), Some(100));
        assert_eq!(t.remove(2, 255, distance), None, "no candidate left at 255; 101 is at 200");
        assert_eq!(t.bucket(255).len(), K - 1);
        assert_eq!(t.remove(50, 200, distance), Some(101));
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
            promoted.extend(t.remove(n, 256, |_| 256));
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

        fn remove(&mut self, node: u32, d: u16) -> Option<u32> {
            self.candidates.retain(|&(_, n)| n != node);
            let b = self.buckets.get_mut(&d)?;
            let i = b.iter().position(|&n| n == node)?;
            b.remove(i);
            let promoted = self.candidates.iter().rposition(|&(cd, _)| cd == d).map(|c| self.candidates.remove(c).1);
            b.extend(promoted);
            if b.is_empty() {
                self.buckets.remove(&d);
            }
            promoted
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
                    let promoted = t.remove(node, d, |n| 250 + (n % 7) as u16);
                    prop_assert_eq!(promoted, m.remove(node, d));
                }
                let flat: Vec<u32> = m.buckets.iter().rev().flat_map(|(_, b)| b.iter().copied()).collect();
                prop_assert_eq!(t.entries(), &flat[..]);
                for (&d, b) in &m.buckets {
                    prop_assert_eq!(t.bucket(d), &b[..]);
                }
                prop_assert_eq!(t.filled_buckets(), m.buckets.len());
                for (pick, (&d, b)) in m.buckets.iter().rev().enumerate() {
                    prop_assert_eq!(t.least_recently_verified(pick as u64), Some((b[0], d)));
                }
            }
        }
    }
}
