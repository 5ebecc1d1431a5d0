//! The messages a shard's identities hold, by local slot, and when a message stops mattering.
//!
//! A message's state (per local subscriber: first arrival, sender, hops, duplicates, last IWANT)
//! is what the arrival tables are made of, and at a million identities it is 23 bytes per
//! identity per message. A message **expires** `lifetime` after its publication: from then on
//! every copy, IHAVE, IWANT and IDONTWANT about it is ignored, a queued copy is dropped, and
//! nothing can change its state any more. The engine then **retires** it: its rows go out as
//! tables during the run and its state is freed, so memory follows the messages in flight, not
//! the length of the run. Expiry is a rule of the model, the same whether messages are retired
//! or kept to the end, so both give the same results.

use crate::engine::MsgState;
use crate::rpc::MsgKey;
use std::collections::VecDeque;
use std::ops::{Index, IndexMut};

/// Message state by slot. Slots are numbered in the order this shard first saw each message and
/// are never reused, so a slot held elsewhere (an IDONTWANT ring, a pending validation) can
/// never name a newer message; a retired slot is empty.
#[derive(Default)]
pub(crate) struct Messages {
    /// The slot number of `live[0]`.
    base: usize,
    /// Slots from `base` on; retired ones are hollow (`MsgState::retired`) until every slot
    /// before them has gone too.
    live: VecDeque<MsgState>,
}

impl Messages {
    /// The slot the next message will take.
    pub fn next_slot(&self) -> usize {
        self.base + self.live.len()
    }

    /// Store a newly seen message in [`Messages::next_slot`].
    pub fn push(&mut self, st: MsgState) {
        self.live.push_back(st);
    }

    /// The message of slot `m`, unless it is retired.
    pub fn get(&self, m: usize) -> Option<&MsgState> {
        m.checked_sub(self.base).and_then(|k| self.live.get(k)).filter(|st| !st.retired)
    }

    /// Slots of the messages held, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.live.iter().enumerate().filter(|(_, st)| !st.retired).map(|(k, _)| self.base + k)
    }

    /// Slots of the surrogates' messages that have expired by `now` (a client's message has no
    /// publication time every shard agrees on, so it is kept to the end).
    pub fn expired(&self, now: u64, lifetime: u64) -> Vec<usize> {
        self.slots()
            .filter(|&m| !self[m].retiring && !self[m].key.is_client() && expired(self[m].published_ns, now, lifetime))
            .collect()
    }

    /// Free the state of slot `m`, whose rows have been written out; returns its key.
    pub fn retire(&mut self, m: usize) -> MsgKey {
        let st = &mut self[m];
        st.retired = true;
        st.arrival = Vec::new();
        st.from = Vec::new();
        st.hops = Vec::new();
        st.dups = Vec::new();
        st.requested = Vec::new();
        let key = st.key;
        while self.live.front().is_some_and(|st| st.retired) {
            self.live.pop_front();
            self.base += 1;
        }
        key
    }
}

impl Index<usize> for Messages {
    type Output = MsgState;
    fn index(&self, m: usize) -> &MsgState {
        let st = &self.live[m - self.base];
        debug_assert!(!st.retired, "message slot {m} is retired");
        st
    }
}

impl IndexMut<usize> for Messages {
    fn index_mut(&mut self, m: usize) -> &mut MsgState {
        let st = &mut self.live[m - self.base];
        debug_assert!(!st.retired, "message slot {m} is retired");
        st
    }
}

/// Whether a message published at `published_ns` has expired at `now`. A publication time of 0
/// is unknown (a message first heard of in a client's IHAVE, before any copy reached this
/// shard): such a message does not expire.
pub(crate) fn expired(published_ns: u64, now: u64, lifetime: u64) -> bool {
    published_ns != 0 && now >= published_ns.saturating_add(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NONE;

    fn msg(key: u64, published_ns: u64) -> MsgState {
        MsgState {
            key: MsgKey(key),
            topic: 0,
            size: 100,
            published_ns,
            slot: 0,
            publisher: NONE,
            publisher_peers: 0,
            arrival: vec![u64::MAX; 3],
            from: vec![NONE; 3],
            hops: vec![0; 3],
            dups: vec![0; 3],
            requested: vec![u64::MAX; 3],
            last_arrival_ns: 0,
            in_recent: false,
            retiring: false,
            retired: false,
        }
    }

    #[test]
    fn slots_are_never_reused_and_retired_ones_read_as_gone() {
        let mut ms = Messages::default();
        for (k, t) in [(1, 5), (2, 50), (3, 10)] {
            assert_eq!(ms.next_slot(), k as usize - 1);
            ms.push(msg(k, t));
        }
        assert_eq!(ms.expired(60, 50), vec![0, 2]);
        assert_eq!(ms.retire(2), MsgKey(3));
        // Slot 2 is hollow behind a live slot 1; slot 0 still leads.
        assert!(ms.get(2).is_none());
        assert_eq!(ms.slots().collect::<Vec<_>>(), vec![0, 1]);
        ms.retire(0);
        assert!(ms.get(0).is_none());
        assert_eq!(ms[1].key, MsgKey(2));
        ms.retire(1);
        assert_eq!(ms.slots().count(), 0);
        assert_eq!(ms.next_slot(), 3, "slots go on from where they were");
        ms.push(msg(4, 70));
        assert_eq!(ms.get(3).map(|st| st.key), Some(MsgKey(4)));
        assert!(ms.get(1).is_none());
    }

    #[test]
    fn a_message_expires_exactly_one_lifetime_after_publication() {
        assert!(!expired(100, 159, 60));
        assert!(expired(100, 160, 60));
        assert!(!expired(u64::MAX - 5, u64::MAX - 1, 60), "no overflow near the end of time");
        assert!(!expired(0, u64::MAX, 60), "an unknown publication time never expires");
    }

    #[test]
    fn clients_messages_never_expire() {
        let mut ms = Messages::default();
        let client = MsgKey(1 << 63 | 7);
        assert!(client.is_client());
        ms.push(MsgState { key: client, ..msg(0, 1) });
        ms.push(msg(2, 1));
        assert_eq!(ms.expired(1_000, 10), vec![1]);
    }
}
