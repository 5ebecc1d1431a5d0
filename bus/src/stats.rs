//! Per-window statistics of the window protocol, and the figures derived from them: barrier idle
//! fraction and the cut matrix.

use crate::ids::ShardId;
use crate::time::SimTime;

/// What one shard did in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Window number, from 0.
    pub window: u64,
    /// Window start (inclusive).
    pub start: SimTime,
    /// Window end (exclusive).
    pub end: SimTime,
    /// Events the engine executed.
    pub events: u64,
    /// Events sent to other shards.
    pub sent_events: u64,
    /// Encoded bytes sent to other shards (batch headers included).
    pub sent_bytes: u64,
    /// Events received from other shards.
    pub recv_events: u64,
    /// Encoded bytes received from other shards.
    pub recv_bytes: u64,
    /// Wall nanoseconds running the engine.
    pub exec_ns: u64,
    /// Wall nanoseconds encoding outbound batches.
    pub encode_ns: u64,
    /// Wall nanoseconds in the exchange (waiting for the other shards plus transport).
    pub wait_ns: u64,
    /// Wall nanoseconds decoding, checking, sorting and delivering inbound events.
    pub decode_ns: u64,
}

/// Traffic between this shard and one peer shard in one window (only non-zero pairs are kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Window number.
    pub window: u64,
    /// The other shard.
    pub peer: ShardId,
    /// Events sent to the peer.
    pub sent_events: u64,
    /// Bytes sent to the peer.
    pub sent_bytes: u64,
    /// Events received from the peer.
    pub recv_events: u64,
    /// Bytes received from the peer.
    pub recv_bytes: u64,
}

/// Totals over a run, computed from every shard's window statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTotals {
    /// Number of shards.
    pub shards: u32,
    /// Windows run (the same on every shard).
    pub windows: u64,
    /// Events executed on all shards.
    pub events: u64,
    /// Share of shard wall time spent waiting in the exchange: Σ wait / Σ (exec + encode + wait + decode).
    pub barrier_idle_fraction: f64,
    /// `cut_events[src][dst]`: events sent from shard `src` to shard `dst`.
    pub cut_events: Vec<Vec<u64>>,
    /// `cut_bytes[src][dst]`: bytes sent from shard `src` to shard `dst`.
    pub cut_bytes: Vec<Vec<u64>>,
    /// Σ execute ns over shards.
    pub exec_ns: u64,
    /// Σ wait ns over shards.
    pub wait_ns: u64,
    /// Σ encode + decode ns over shards.
    pub serialise_ns: u64,
}

impl RunTotals {
    /// Fold the statistics of every shard (`per_shard[i]` = (windows, pairs) of shard `i`).
    pub fn from_shards<'a>(per_shard: impl IntoIterator<Item = (ShardId, &'a [WindowStats], &'a [PairStats])>) -> Self {
        let items: Vec<_> = per_shard.into_iter().collect();
        let n = items.iter().map(|(s, _, _)| s.0 + 1).max().unwrap_or(0) as usize;
        let mut t = RunTotals {
            shards: n as u32,
            windows: 0,
            events: 0,
            barrier_idle_fraction: 0.0,
            cut_events: vec![vec![0; n]; n],
            cut_bytes: vec![vec![0; n]; n],
            exec_ns: 0,
            wait_ns: 0,
            serialise_ns: 0,
        };
        for (shard, windows, pairs) in items {
            t.windows = t.windows.max(windows.len() as u64);
            for w in windows {
                t.events += w.events;
                t.exec_ns += w.exec_ns;
                t.wait_ns += w.wait_ns;
                t.serialise_ns += w.encode_ns + w.decode_ns;
            }
            for p in pairs {
                t.cut_events[shard.index()][p.peer.index()] += p.sent_events;
                t.cut_bytes[shard.index()][p.peer.index()] += p.sent_bytes;
            }
        }
        let busy = t.exec_ns + t.wait_ns + t.serialise_ns;
        t.barrier_idle_fraction = if busy == 0 { 0.0 } else { t.wait_ns as f64 / busy as f64 };
        t
    }
}
