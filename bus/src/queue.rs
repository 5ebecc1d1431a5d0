//! A calendar queue: the pending-event set of an engine, with O(1) amortised insert and pop for
//! the bounded-delay schedules that network simulations have, and exactly the order of `T: Ord`.
//!
//! Time is cut into buckets of `2^shift` ns; a ring of buckets covers the near future and a
//! binary heap holds anything beyond it. A bucket is a list of fixed-size chunks taken from a
//! shared pool, so the queue's memory follows the items it holds rather than every bucket's
//! busiest moment, and a burst never copies a growing bucket. A bucket is gathered and sorted
//! once, when the queue reaches it, and then drained from the end; events inserted into the
//! bucket being drained go to a small heap that is merged on pop. Ordering is that of `T` (for engines, the bus's canonical event order),
//! so the queue never changes which event comes first — only how fast it is found. A binary heap
//! of 100k events misses cache on most of its ~17 levels per pop; here a pop touches one bucket.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Something with a timestamp, in nanoseconds; `T`'s order must sort by it first.
pub trait Timed {
    /// The time the item is due.
    fn time_ns(&self) -> u64;
}

/// Order a queue item type by its `key()` alone, and time it by its `time` field: for engines
/// whose items carry an action beside the canonical key, where the key is unique and the action
/// must take no part in the order. `order_by_key!(Pending)` implements `PartialEq`, `Eq`,
/// `PartialOrd`, `Ord` and [`Timed`].
#[macro_export]
macro_rules! order_by_key {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, o: &Self) -> bool {
                self.key() == o.key()
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for $t {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.key().cmp(&o.key())
            }
        }
        impl $crate::queue::Timed for $t {
            fn time_ns(&self) -> u64 {
                self.time
            }
        }
    };
}

/// Items per chunk of a bucket.
const CHUNK: usize = 64;

/// One bucket of the ring: the chunk being filled, kept in the ring itself so that a push reads
/// nothing but the ring and writes one item, and the chunks filled before it.
struct Bucket<T> {
    tail: Vec<T>,
    full: Vec<Vec<T>>,
}

impl<T> Bucket<T> {
    fn is_empty(&self) -> bool {
        self.tail.is_empty() && self.full.is_empty()
    }
}

/// A calendar queue of `T`. Items must not be inserted earlier than the last popped item's time
/// (the usual discrete-event rule); this is checked in debug builds.
pub struct CalendarQueue<T> {
    shift: u32,
    /// Bucket number of `ring[head]`.
    base: u64,
    head: usize,
    /// The buckets.
    ring: Vec<Bucket<T>>,
    /// Empty chunks (with room for [`CHUNK`] items) for any bucket to take.
    pool: Vec<Vec<T>>,
    /// The bucket being drained, sorted descending (pop from the end).
    current: Vec<T>,
    /// Items inserted into the bucket being drained after it was sorted.
    current_extra: BinaryHeap<Reverse<T>>,
    /// Items beyond the ring's horizon.
    overflow: BinaryHeap<Reverse<T>>,
    len: usize,
    /// Items in the ring's buckets (not counting `current`, `current_extra` or `overflow`), so
    /// that finding the ring empty takes no scan of its buckets.
    in_ring: usize,
    #[cfg(debug_assertions)]
    last_popped: u64,
}

impl<T: Ord + Timed> CalendarQueue<T> {
    /// A queue with buckets of `2^shift` ns and a ring of `buckets` buckets (rounded up to a power
    /// of two). Pick the width so a bucket holds tens to hundreds of items, and the ring to cover
    /// the usual scheduling horizon; both only affect speed, never order.
    pub fn new(shift: u32, buckets: usize) -> Self {
        let n = buckets.max(2).next_power_of_two();
        CalendarQueue {
            shift: shift.min(63),
            base: 0,
            head: 0,
            ring: (0..n).map(|_| Bucket { tail: Vec::new(), full: Vec::new() }).collect(),
            pool: Vec::new(),
            current: Vec::new(),
            current_extra: BinaryHeap::new(),
            overflow: BinaryHeap::new(),
            len: 0,
            in_ring: 0,
            #[cfg(debug_assertions)]
            last_popped: 0,
        }
    }

    /// A bucket width (as a shift) for `rate` items per ns of simulated time, aiming at `per_bucket`
    /// items per bucket.
    pub fn shift_for(items_per_second: f64, per_bucket: f64) -> u32 {
        if items_per_second <= 0.0 {
            return 20;
        }
        let width_ns = per_bucket / items_per_second * 1e9;
        (width_ns.max(1.0).log2().floor() as u32).min(40)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bucket_of(&self, time: u64) -> u64 {
        time >> self.shift
    }

    /// Add an item.
    pub fn push(&mut self, item: T) {
        #[cfg(debug_assertions)]
        debug_assert!(item.time_ns() >= self.last_popped, "item scheduled in the past");
        self.len += 1;
        let b = self.bucket_of(item.time_ns());
        let n = self.ring.len() as u64;
        if b <= self.base {
            // Due in the bucket being drained (or, defensively, earlier).
            self.current_extra.push(Reverse(item));
        } else if b - self.base < n {
            self.push_ring(b, item);
        } else {
            self.overflow.push(Reverse(item));
        }
    }

    /// Add `item` to the ring's bucket `b` (which the ring covers and is not the current one).
    fn push_ring(&mut self, b: u64, item: T) {
        let idx = (self.head + (b - self.base) as usize) & (self.ring.len() - 1);
        let bucket = &mut self.ring[idx];
        if bucket.tail.len() == bucket.tail.capacity() {
            let fresh = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
            let filled = std::mem::replace(&mut bucket.tail, fresh);
            if filled.capacity() > 0 {
                bucket.full.push(filled);
            }
        }
        bucket.tail.push(item);
        self.in_ring += 1;
    }

    /// Move the items of ring slot `idx` into `current` (which is empty), giving its chunks back
    /// to the pool.
    fn gather(&mut self, idx: usize) {
        let bucket = &mut self.ring[idx];
        for mut chunk in bucket.full.drain(..) {
            self.in_ring -= chunk.len();
            self.current.append(&mut chunk);
            self.pool.push(chunk);
        }
        self.in_ring -= bucket.tail.len();
        self.current.append(&mut bucket.tail);
    }

    /// Make `current` hold the earliest non-empty bucket, if the current one is exhausted, but
    /// advance no further than bucket `limit`: a caller that only wants items up to some time
    /// keeps the queue from moving past it, so that items it then inserts before the next
    /// non-empty bucket still go to the ring rather than to the side heap.
    fn refill(&mut self, limit: u64) {
        if !self.current.is_empty() || !self.current_extra.is_empty() || self.len == 0 {
            return;
        }
        let n = self.ring.len();
        while self.base < limit {
            // Advance to the next bucket.
            self.head = (self.head + 1) & (n - 1);
            self.base += 1;
            // Pull overflow items that the ring now covers.
            while let Some(Reverse(top)) = self.overflow.peek() {
                let b = self.bucket_of(top.time_ns());
                if b - self.base.min(b) >= n as u64 {
                    break;
                }
                let Reverse(item) = self.overflow.pop().expect("peeked");
                if b <= self.base {
                    self.current_extra.push(Reverse(item));
                } else {
                    self.push_ring(b, item);
                }
            }
            if !self.ring[self.head].is_empty() {
                self.gather(self.head);
            }
            if !self.current.is_empty() || !self.current_extra.is_empty() {
                self.current.sort_unstable_by(|a, b| b.cmp(a));
                return;
            }
            // Skip empty stretches: if the ring is empty, jump to the overflow's first bucket
            // (or to the limit, if that comes first).
            if self.in_ring == 0
                && let Some(Reverse(top)) = self.overflow.peek()
            {
                let target = self.bucket_of(top.time_ns()).min(limit);
                if target > self.base + 1 {
                    self.base = target - 1;
                }
            }
        }
    }

    /// The earliest item if it is due no later than `time`'s bucket (it may be later than `time`
    /// itself); `None` if the queue holds nothing that early. Unlike [`CalendarQueue::peek`] it
    /// never moves the queue past `time`'s bucket.
    pub fn peek_until(&mut self, time: u64) -> Option<&T> {
        let limit = self.bucket_of(time);
        self.refill(limit);
        let shift = self.shift;
        self.front().filter(|x| x.time_ns() >> shift <= limit)
    }

    /// The earliest item, without removing it.
    pub fn peek(&mut self) -> Option<&T> {
        self.refill(u64::MAX);
        self.front()
    }

    /// The earliest of the bucket being drained and its side heap.
    fn front(&self) -> Option<&T> {
        match (self.current.last(), self.current_extra.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if b < a { b } else { a }),
            (Some(a), None) => Some(a),
            (None, Some(Reverse(b))) => Some(b),
            (None, None) => None,
        }
    }

    /// Remove and return the earliest item.
    pub fn pop(&mut self) -> Option<T> {
        self.refill(u64::MAX);
        let take_extra = match (self.current.last(), self.current_extra.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => return None,
        };
        let item = if take_extra { self.current_extra.pop().map(|Reverse(x)| x) } else { self.current.pop() };
        self.len -= 1;
        #[cfg(debug_assertions)]
        if let Some(i) = &item {
            self.last_popped = i.time_ns();
        }
        item
    }

    /// The item `k` places after the next one in the bucket being drained, if that bucket still
    /// holds that many: a look-ahead for prefetching, which ignores items inserted into the bucket
    /// since it was sorted (so it may name an item that is not the `k`-th next).
    pub fn ahead(&self, k: usize) -> Option<&T> {
        self.current.len().checked_sub(k + 1).map(|j| &self.current[j])
    }

    /// The time of the earliest item, without mutating the queue's position (used for
    /// `next_event_time` from `&self`).
    pub fn min_time(&self) -> Option<u64> {
        let candidates =
            [self.current.last().map(Timed::time_ns), self.current_extra.peek().map(|Reverse(x)| x.time_ns())];
        if let Some(t) = candidates.into_iter().flatten().min() {
            return Some(t);
        }
        let n = self.ring.len();
        for k in 0..n {
            let bucket = &self.ring[(self.head + k) & (n - 1)];
            if let Some(t) = bucket.full.iter().flatten().chain(&bucket.tail).map(Timed::time_ns).min() {
                return Some(t);
            }
        }
        self.overflow.peek().map(|Reverse(x)| x.time_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Item(u64, u32);
    impl Timed for Item {
        fn time_ns(&self) -> u64 {
            self.0
        }
    }

    proptest! {
        /// Any interleaving of pushes (never into the past), pops and bounded peeks gives exactly
        /// the order of a binary heap, whatever the bucket width and ring size.
        #[test]
        fn pops_in_the_same_order_as_a_binary_heap(
            shift in 0u32..12,
            buckets in 1usize..64,
            ops in proptest::collection::vec((0u8..4, 0u64..5_000, any::<u32>()), 1..600),
        ) {
            let mut q: CalendarQueue<Item> = CalendarQueue::new(shift, buckets);
            let mut h = BinaryHeap::new();
            let mut now = 0u64;
            for (op, delay, tag) in ops {
                match op {
                    0 => {
                        let a = q.pop();
                        let b = h.pop().map(|Reverse(x)| x);
                        prop_assert_eq!(a, b);
                        if let Some(x) = a { now = x.0; }
                    }
                    1 => {
                        // Only items due by the limit's bucket are seen, and the queue does not
                        // move past it: pushes after it must still come out in order.
                        let limit = now + delay;
                        let expected = h.peek().map(|Reverse(x)| *x).filter(|x| x.0 >> shift <= limit >> shift);
                        prop_assert_eq!(q.peek_until(limit).copied(), expected);
                    }
                    _ => {
                        let item = Item(now + delay, tag);
                        q.push(item);
                        h.push(Reverse(item));
                    }
                }
                prop_assert_eq!(q.len(), h.len());
                prop_assert_eq!(q.min_time(), h.peek().map(|Reverse(x)| x.0));
            }
            while let Some(Reverse(x)) = h.pop() {
                prop_assert_eq!(q.pop(), Some(x));
            }
            prop_assert!(q.pop().is_none());
        }

        /// A burst of many items in one bucket (several chunks) comes out sorted, and the chunks
        /// are reused by later buckets.
        #[test]
        fn crowded_buckets_pop_in_order(times in proptest::collection::vec(0u64..64, 1..1_000)) {
            let mut q: CalendarQueue<Item> = CalendarQueue::new(6, 4);
            let mut h = BinaryHeap::new();
            for round in 0..3u64 {
                for (k, &t) in times.iter().enumerate() {
                    let item = Item(round * 64 + 64 + t, k as u32);
                    q.push(item);
                    h.push(Reverse(item));
                }
                while let Some(Reverse(x)) = h.pop() {
                    prop_assert_eq!(q.pop(), Some(x));
                }
            }
            prop_assert!(q.pool.len() <= times.len().div_ceil(CHUNK));
        }
    }

    #[test]
    fn far_future_items_are_found_after_long_gaps() {
        let mut q: CalendarQueue<Item> = CalendarQueue::new(4, 8);
        q.push(Item(1_000_000_000, 1));
        q.push(Item(5, 0));
        q.push(Item(u64::MAX - 1, 2));
        assert_eq!(q.pop(), Some(Item(5, 0)));
        assert_eq!(q.peek(), Some(&Item(1_000_000_000, 1)));
        assert_eq!(q.pop(), Some(Item(1_000_000_000, 1)));
        assert_eq!(q.pop(), Some(Item(u64::MAX - 1, 2)));
        assert_eq!(q.pop(), None);
    }
}
