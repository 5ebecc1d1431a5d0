//! Futexes in simulated time: the wait queues, the decoding of `futex(2)` operations and the
//! `FUTEX_WAKE_OP` arithmetic.
//!
//! Every `futex` call of a managed task is notified, and no waiter ever sleeps in the kernel: a
//! waiter is a task whose notification the supervisor has not answered yet, queued here under
//! its futex key. Wakes take waiters in FIFO order (the order in which they blocked, which the
//! scheduling makes deterministic). Since only one task of a host runs at a time and it is
//! stopped while its call is handled, reading the futex word (`process_vm_readv`) and the
//! read-modify-write of `FUTEX_WAKE_OP` (`process_vm_writev`) are atomic with respect to the
//! program.
//!
//! Keys are (thread group, address): the threads of a process share its memory. A futex word
//! in memory shared between processes (`MAP_SHARED`, process-shared mutexes) is not matched
//! across processes.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// `futex_wake(2)` (Linux 6.7), refused.
pub const SYS_FUTEX_WAKE: i64 = 454;
/// `futex_wait(2)` (Linux 6.7), refused.
pub const SYS_FUTEX_WAIT: i64 = 455;
/// `futex_requeue(2)` (Linux 6.7), refused.
pub const SYS_FUTEX_REQUEUE: i64 = 456;

/// `FUTEX_PRIVATE_FLAG`.
pub const PRIVATE_FLAG: u32 = 128;
/// `FUTEX_CLOCK_REALTIME`.
pub const CLOCK_REALTIME_FLAG: u32 = 256;
/// `FUTEX_BITSET_MATCH_ANY`: the bitset of plain `FUTEX_WAIT` and `FUTEX_WAKE`.
pub const MATCH_ANY: u32 = u32::MAX;

/// What a waiter waits on: a 32-bit word of one address space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FutexKey {
    /// Thread-group id of the address space.
    pub space: i32,
    /// Address of the word.
    pub addr: u64,
}

/// One blocked waiter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// The waiting task.
    pub vid: u32,
    /// `FUTEX_WAIT_BITSET`'s bitset (`MATCH_ANY` for `FUTEX_WAIT`).
    pub bitset: u32,
    /// The value the word had when it blocked (re-checked when a thread of its process exits).
    pub val: u32,
}

/// Futex waiters of one host.
#[derive(Default, Debug)]
pub struct FutexTable {
    queues: BTreeMap<FutexKey, VecDeque<Waiter>>,
    by_vid: HashMap<u32, FutexKey>,
}

impl FutexTable {
    /// Queue `w` at the back of `key`'s queue (a task waits on one futex at a time: any earlier
    /// entry of it is dropped).
    pub fn wait(&mut self, key: FutexKey, w: Waiter) {
        self.cancel(w.vid);
        self.queues.entry(key).or_default().push_back(w);
        self.by_vid.insert(w.vid, key);
    }

    /// Whether task `vid` is queued.
    pub fn is_waiting(&self, vid: u32) -> bool {
        self.by_vid.contains_key(&vid)
    }

    /// Remove task `vid` from its queue (its wait ended otherwise: timeout, signal, exit).
    pub fn cancel(&mut self, vid: u32) {
        if let Some(key) = self.by_vid.remove(&vid)
            && let Some(q) = self.queues.get_mut(&key)
        {
            q.retain(|w| w.vid != vid);
            if q.is_empty() {
                self.queues.remove(&key);
            }
        }
    }

    /// Dequeue up to `n` waiters of `key` whose bitset shares a bit with `bitset`, oldest first.
    pub fn wake(&mut self, key: FutexKey, n: usize, bitset: u32) -> Vec<u32> {
        let mut woken = Vec::new();
        let Some(q) = self.queues.get_mut(&key) else { return woken };
        q.retain(|w| {
            if woken.len() < n && w.bitset & bitset != 0 {
                woken.push(w.vid);
                false
            } else {
                true
            }
        });
        if q.is_empty() {
            self.queues.remove(&key);
        }
        for v in &woken {
            self.by_vid.remove(v);
        }
        woken
    }

    /// Wake up to `n_wake` waiters of `from`, then move up to `n_requeue` of the rest (in order)
    /// to the back of `to`'s queue. Returns the woken tasks and the number moved.
    pub fn requeue(&mut self, from: FutexKey, n_wake: usize, to: FutexKey, n_requeue: usize) -> (Vec<u32>, usize) {
        let woken = self.wake(from, n_wake, MATCH_ANY);
        if from == to || n_requeue == 0 {
            return (woken, 0);
        }
        let mut moved = Vec::new();
        if let Some(q) = self.queues.get_mut(&from) {
            let take = n_requeue.min(q.len());
            moved.extend(q.drain(..take));
            if q.is_empty() {
                self.queues.remove(&from);
            }
        }
        let count = moved.len();
        for w in moved {
            self.by_vid.insert(w.vid, to);
            self.queues.entry(to).or_default().push_back(w);
        }
        (woken, count)
    }

    /// Every waiter of address space `space`, with its key, in queue order.
    pub fn waiters_in(&self, space: i32) -> Vec<(FutexKey, Waiter)> {
        self.queues
            .iter()
            .filter(|(k, _)| k.space == space)
            .flat_map(|(k, q)| q.iter().map(move |w| (*k, *w)))
            .collect()
    }

    /// Remove a specific waiter (it is woken by a changed word), returning whether it was queued.
    pub fn take(&mut self, vid: u32) -> bool {
        let queued = self.is_waiting(vid);
        self.cancel(vid);
        queued
    }
}

/// A decoded `futex(2)` operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FutexOp {
    /// `FUTEX_WAIT` (relative timeout) or `FUTEX_WAIT_BITSET` (`bitset`: the bitset is `val3`
    /// and the timeout is absolute, against `CLOCK_REALTIME` if `realtime`, else
    /// `CLOCK_MONOTONIC`).
    Wait {
        /// `FUTEX_WAIT_BITSET`.
        bitset: bool,
        /// `FUTEX_CLOCK_REALTIME`.
        realtime: bool,
    },
    /// `FUTEX_WAKE`, or `FUTEX_WAKE_BITSET` (`bitset`: waiters match when their bitset shares a
    /// bit with `val3`).
    Wake {
        /// `FUTEX_WAKE_BITSET`.
        bitset: bool,
    },
    /// `FUTEX_REQUEUE`, or `FUTEX_CMP_REQUEUE` (`compare`).
    Requeue {
        /// Compare the word with `val3` first.
        compare: bool,
    },
    /// `FUTEX_WAKE_OP`.
    WakeOp,
    /// A command that exists but is not emulated (priority-inheritance futexes): its name.
    Unsupported(&'static str),
}

/// Decode the `op` argument: the operation and whether it is private, or the errno the kernel
/// gives for an invalid one (`ENOSYS`, as Linux does for unknown commands and misplaced
/// `FUTEX_CLOCK_REALTIME`).
pub fn decode(op: u32) -> Result<(FutexOp, bool), i32> {
    let private = op & PRIVATE_FLAG != 0;
    let realtime = op & CLOCK_REALTIME_FLAG != 0;
    let cmd = op & !(PRIVATE_FLAG | CLOCK_REALTIME_FLAG);
    let decoded = match cmd {
        0 => FutexOp::Wait { bitset: false, realtime },
        9 => FutexOp::Wait { bitset: true, realtime },
        1 => FutexOp::Wake { bitset: false },
        10 => FutexOp::Wake { bitset: true },
        3 => FutexOp::Requeue { compare: false },
        4 => FutexOp::Requeue { compare: true },
        5 => FutexOp::WakeOp,
        6 => FutexOp::Unsupported("FUTEX_LOCK_PI"),
        7 => FutexOp::Unsupported("FUTEX_UNLOCK_PI"),
        8 => FutexOp::Unsupported("FUTEX_TRYLOCK_PI"),
        11 => FutexOp::Unsupported("FUTEX_WAIT_REQUEUE_PI"),
        12 => FutexOp::Unsupported("FUTEX_CMP_REQUEUE_PI"),
        13 => FutexOp::Unsupported("FUTEX_LOCK_PI2"),
        _ => return Err(libc::ENOSYS),
    };
    // Linux accepts FUTEX_CLOCK_REALTIME only on waits (and the PI commands it refuses anyway).
    if realtime && !matches!(decoded, FutexOp::Wait { .. } | FutexOp::Unsupported(_)) {
        return Err(libc::ENOSYS);
    }
    Ok((decoded, private))
}

/// `FUTEX_WAKE_OP`'s encoded operation applied to the old value of the second word: the new
/// value to store and whether the comparison holds (the second word's waiters are then woken
/// too). `Err(ENOSYS)` for an unknown operation or comparison, as Linux.
pub fn wake_op(encoded: u32, old: u32) -> Result<(u32, bool), i32> {
    let op = (encoded >> 28) & 0x7;
    let shift = encoded & (8 << 28) != 0; // FUTEX_OP_OPARG_SHIFT
    let cmp = (encoded >> 24) & 0xf;
    let sign12 = |v: u32| ((v << 20) as i32) >> 20;
    let mut oparg = sign12((encoded >> 12) & 0xfff);
    let cmparg = sign12(encoded & 0xfff);
    if shift {
        oparg = 1i32.wrapping_shl((oparg & 31) as u32);
    }
    let oparg = oparg as u32;
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(libc::ENOSYS),
    };
    let o = old as i32;
    let holds = match cmp {
        0 => o == cmparg,
        1 => o != cmparg,
        2 => o < cmparg,
        3 => o <= cmparg,
        4 => o > cmparg,
        5 => o >= cmparg,
        _ => return Err(libc::ENOSYS),
    };
    Ok((new, holds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: FutexKey = FutexKey { space: 7, addr: 0x1000 };
    const B: FutexKey = FutexKey { space: 7, addr: 0x2000 };

    fn w(vid: u32) -> Waiter {
        Waiter { vid, bitset: MATCH_ANY, val: 0 }
    }

    #[test]
    fn wakes_take_waiters_in_the_order_they_blocked() {
        let mut t = FutexTable::default();
        for v in [5, 2, 9, 4] {
            t.wait(A, w(v));
        }
        assert_eq!(t.wake(A, 2, MATCH_ANY), [5, 2]);
        assert!(!t.is_waiting(5) && t.is_waiting(9));
        assert_eq!(t.wake(A, 10, MATCH_ANY), [9, 4]);
        assert_eq!(t.wake(A, 1, MATCH_ANY), Vec::<u32>::new());
        assert!(t.queues.is_empty() && t.by_vid.is_empty());
    }

    #[test]
    fn a_cancelled_waiter_leaves_its_queue_and_waiting_again_goes_to_the_back() {
        let mut t = FutexTable::default();
        t.wait(A, w(1));
        t.wait(A, w(2));
        t.wait(A, w(3));
        t.cancel(2);
        t.wait(A, w(1));
        assert_eq!(t.wake(A, 3, MATCH_ANY), [3, 1]);
        assert!(!t.take(1));
    }

    #[test]
    fn bitset_wakes_skip_waiters_with_no_common_bit() {
        let mut t = FutexTable::default();
        t.wait(A, Waiter { vid: 1, bitset: 0b01, val: 0 });
        t.wait(A, Waiter { vid: 2, bitset: 0b10, val: 0 });
        t.wait(A, Waiter { vid: 3, bitset: MATCH_ANY, val: 0 });
        assert_eq!(t.wake(A, 5, 0b10), [2, 3]);
        assert_eq!(t.wake(A, 5, 0b10), Vec::<u32>::new());
        assert_eq!(t.wake(A, 5, MATCH_ANY), [1]);
    }

    #[test]
    fn requeue_wakes_some_and_moves_the_next_ones_behind_the_target_queue() {
        let mut t = FutexTable::default();
        t.wait(B, w(10));
        for v in 1..=5 {
            t.wait(A, w(v));
        }
        let (woken, moved) = t.requeue(A, 1, B, 2);
        assert_eq!((woken, moved), (vec![1], 2));
        assert_eq!(
            t.waiters_in(7).iter().map(|(k, w)| (k.addr, w.vid)).collect::<Vec<_>>(),
            [(0x1000, 4), (0x1000, 5), (0x2000, 10), (0x2000, 2), (0x2000, 3)]
        );
        t.cancel(3);
        assert_eq!(t.wake(B, 5, MATCH_ANY), [10, 2]);
        assert_eq!(t.wake(A, 5, MATCH_ANY), [4, 5]);
        assert!(t.waiters_in(7).is_empty());
    }

    #[test]
    fn other_address_spaces_are_other_futexes() {
        let mut t = FutexTable::default();
        t.wait(A, w(1));
        let other = FutexKey { space: 8, addr: A.addr };
        assert_eq!(t.wake(other, 1, MATCH_ANY), Vec::<u32>::new());
        assert_eq!(t.waiters_in(8), vec![]);
        assert_eq!(t.waiters_in(7).len(), 1);
    }

    /// `FUTEX_OP(op, oparg, cmp, cmparg)` from `linux/futex.h`.
    fn futex_op(op: u32, oparg: u32, cmp: u32, cmparg: u32) -> u32 {
        ((op & 0xf) << 28) | ((cmp & 0xf) << 24) | ((oparg & 0xfff) << 12) | (cmparg & 0xfff)
    }

    #[test]
    fn wake_op_arithmetic_matches_the_kernel() {
        // glibc's pthread_cond_signal of old: FUTEX_OP_SET 0, compare GT 1.
        assert_eq!(wake_op(futex_op(0, 0, 4, 1), 2), Ok((0, true)));
        assert_eq!(wake_op(futex_op(0, 0, 4, 1), 1), Ok((0, false)));
        assert_eq!(wake_op(futex_op(1, 5, 0, 7), 2), Ok((7, false)));
        assert_eq!(wake_op(futex_op(1, 5, 0, 2), 2), Ok((7, true)));
        assert_eq!(wake_op(futex_op(2, 0b100, 1, 0), 0b001), Ok((0b101, true)));
        assert_eq!(wake_op(futex_op(3, 0b011, 2, 0), 0b111), Ok((0b100, false)));
        assert_eq!(wake_op(futex_op(4, 0xff, 3, 0xff), 0xff), Ok((0, true)));
        assert_eq!(wake_op(futex_op(0, 0, 5, 3), 3), Ok((0, true)));
        // Sign-extended 12-bit arguments: ADD -1 (0xfff), compare LT -1 with a negative word.
        assert_eq!(wake_op(futex_op(1, 0xfff, 2, 0xfff), 10), Ok((9, false)));
        assert_eq!(wake_op(futex_op(1, 0xfff, 2, 0xfff), (-5i32) as u32), Ok(((-6i32) as u32, true)));
        // FUTEX_OP_OPARG_SHIFT: the argument is a bit number.
        assert_eq!(wake_op(futex_op(8 | 2, 4, 0, 0), 1), Ok((17, false)));
        assert_eq!(wake_op(futex_op(5, 0, 0, 0), 0), Err(libc::ENOSYS));
        assert_eq!(wake_op(futex_op(0, 0, 6, 0), 0), Err(libc::ENOSYS));
    }

    #[test]
    fn decode_knows_the_commands_and_refuses_misplaced_realtime() {
        assert_eq!(decode(128), Ok((FutexOp::Wait { bitset: false, realtime: false }, true)));
        assert_eq!(decode(9 | 256), Ok((FutexOp::Wait { bitset: true, realtime: true }, false)));
        assert_eq!(decode(10 | 128), Ok((FutexOp::Wake { bitset: true }, true)));
        assert_eq!(decode(4), Ok((FutexOp::Requeue { compare: true }, false)));
        assert_eq!(decode(5 | 128), Ok((FutexOp::WakeOp, true)));
        assert_eq!(decode(6 | 128), Ok((FutexOp::Unsupported("FUTEX_LOCK_PI"), true)));
        assert_eq!(decode(1 | 256), Err(libc::ENOSYS));
        assert_eq!(decode(2), Err(libc::ENOSYS));
        assert_eq!(decode(99), Err(libc::ENOSYS));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_keeps_the_private_flag(op in any::<u32>()) {
            if let Ok((_, private)) = decode(op) {
                prop_assert_eq!(private, op & PRIVATE_FLAG != 0);
            }
        }

        #[test]
        fn wake_op_never_panics_and_set_stores_the_argument(encoded in any::<u32>(), old in any::<u32>()) {
            let r = wake_op(encoded, old);
            if encoded >> 28 == 0 && (encoded >> 24) & 0xf <= 5 {
                let arg = ((((encoded >> 12) & 0xfff) << 20) as i32 >> 20) as u32;
                prop_assert_eq!(r.map(|(new, _)| new), Ok(arg));
            }
        }

        #[test]
        fn every_queued_waiter_is_woken_exactly_once(vids in proptest::collection::btree_set(0u32..64, 0..20), n in 1usize..5) {
            let mut t = FutexTable::default();
            for &v in &vids {
                t.wait(if v % 2 == 0 { A } else { B }, w(v));
            }
            let mut all = Vec::new();
            loop {
                let (woken, _) = t.requeue(B, n, A, n);
                let more = t.wake(A, n, MATCH_ANY);
                if woken.is_empty() && more.is_empty() {
                    break;
                }
                all.extend(woken);
                all.extend(more);
            }
            all.sort_unstable();
            prop_assert_eq!(all, vids.into_iter().collect::<Vec<_>>());
        }
    }
}
