//! Per-window statistics of the window protocol, and the figures derived from them: barrier idle
//! fraction and the cut matrix.

use crate::ids::ShardId;
use crate::time::SimTime;

/// What one shard did in one window, or in a run of consecutive windows once a long run's rows
/// were merged (see [`WindowLog`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Window number of the first window, from 0.
    pub window: u64,
    /// Windows this row covers: 1, or a power of two in a long run.
    pub windows: u64,
    /// Start of the first window (inclusive).
    pub start: SimTime,
    /// End of the last window (exclusive).
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

/// Traffic between this shard and one peer shard in one window, or in the windows of one merged
/// row of [`WindowStats`] (only non-zero pairs are kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Window number (the first window of its row).
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

/// The most rows of window statistics a shard keeps. A longer run merges neighbouring rows
/// pairwise each time the log fills, so memory stays bounded (about 20 MB per shard) however many
/// windows a run has, and rows keep an even resolution over the whole run.
pub const WINDOW_LOG_ROWS: usize = 1 << 17;

/// A shard's window statistics and shard-pair traffic, bounded in size (see [`WINDOW_LOG_ROWS`]).
#[derive(Debug)]
pub struct WindowLog {
    rows: Vec<WindowStats>,
    pairs: Vec<PairStats>,
    /// Windows per row: a power of two; rows start at multiples of it.
    span: u64,
    cap: usize,
}

impl Default for WindowLog {
    fn default() -> Self {
        WindowLog::with_capacity(WINDOW_LOG_ROWS)
    }
}

impl WindowLog {
    /// A log of at most `cap` rows (at least 2).
    pub fn with_capacity(cap: usize) -> Self {
        WindowLog { rows: Vec::new(), pairs: Vec::new(), span: 1, cap: cap.max(2) }
    }

    /// Record the next window (numbers must be consecutive from 0) and its non-zero pair traffic.
    pub fn push(&mut self, stats: WindowStats, pairs: impl IntoIterator<Item = PairStats>) {
        let row = stats.window / self.span * self.span;
        match self.rows.last_mut() {
            Some(last) if last.window == row => merge_window(last, &stats),
            _ => self.rows.push(WindowStats { window: row, windows: 1, ..stats }),
        }
        for p in pairs {
            self.push_pair(PairStats { window: row, ..p });
        }
        if self.rows.len() > self.cap {
            self.coarsen();
        }
    }

    fn push_pair(&mut self, p: PairStats) {
        let row_start = self.pairs.iter().rposition(|q| q.window != p.window).map_or(0, |k| k + 1);
        match self.pairs[row_start..].iter_mut().find(|q| q.peer == p.peer) {
            Some(q) => merge_pair(q, &p),
            None => self.pairs.push(p),
        }
    }

    /// Double the span: merge rows pairwise, and pair traffic with them.
    fn coarsen(&mut self) {
        self.span *= 2;
        let rows = std::mem::take(&mut self.rows);
        for r in rows {
            let start = r.window / self.span * self.span;
            match self.rows.last_mut() {
                Some(last) if last.window == start => merge_window(last, &r),
                _ => self.rows.push(WindowStats { window: start, ..r }),
            }
        }
        let pairs = std::mem::take(&mut self.pairs);
        for p in pairs {
            let window = p.window / self.span * self.span;
            self.push_pair(PairStats { window, ..p });
        }
    }

    /// The rows and pair traffic, in window order.
    pub fn into_parts(self) -> (Vec<WindowStats>, Vec<PairStats>) {
        (self.rows, self.pairs)
    }
}

fn merge_window(into: &mut WindowStats, w: &WindowStats) {
    into.windows += w.windows;
    into.end = w.end;
    into.events += w.events;
    into.sent_events += w.sent_events;
    into.sent_bytes += w.sent_bytes;
    into.recv_events += w.recv_events;
    into.recv_bytes += w.recv_bytes;
    into.exec_ns += w.exec_ns;
    into.encode_ns += w.encode_ns;
    into.wait_ns += w.wait_ns;
    into.decode_ns += w.decode_ns;
}

fn merge_pair(into: &mut PairStats, p: &PairStats) {
    into.sent_events += p.sent_events;
    into.sent_bytes += p.sent_bytes;
    into.recv_events += p.recv_events;
    into.recv_bytes += p.recv_bytes;
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
            t.windows = t.windows.max(windows.iter().map(|w| w.windows).sum());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: u64) -> WindowStats {
        let t = |n| SimTime::from_nanos(n * 10);
        WindowStats { window: k, windows: 1, start: t(k), end: t(k + 1), events: k, exec_ns: 1, ..Default::default() }
    }

    fn pair(k: u64, peer: u32) -> PairStats {
        PairStats { window: k, peer: ShardId(peer), sent_events: 1, sent_bytes: 10, recv_events: 2, recv_bytes: 20 }
    }

    #[test]
    fn a_long_run_stays_bounded_and_keeps_its_totals() {
        let mut log = WindowLog::with_capacity(8);
        let n = 1000u64;
        for k in 0..n {
            log.push(window(k), [pair(k, 1), pair(k, 2 + (k % 2) as u32)]);
        }
        let (rows, pairs) = log.into_parts();
        assert!(rows.len() <= 8, "{}", rows.len());
        assert_eq!(rows.iter().map(|r| r.windows).sum::<u64>(), n);
        assert_eq!(rows.iter().map(|r| r.events).sum::<u64>(), n * (n - 1) / 2);
        assert_eq!(rows[0].start, SimTime::ZERO);
        assert_eq!(rows.last().unwrap().end, SimTime::from_nanos(n * 10));
        for w in rows.windows(2) {
            assert_eq!(w[0].window + w[0].windows, w[1].window, "rows are consecutive");
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(pairs.iter().map(|p| p.sent_events).sum::<u64>(), 2 * n);
        assert!(pairs.len() <= 3 * rows.len());
        let totals = RunTotals::from_shards([
            (ShardId(0), rows.as_slice(), pairs.as_slice()),
            (ShardId(1), &[][..], &[][..]),
            (ShardId(2), &[][..], &[][..]),
            (ShardId(3), &[][..], &[][..]),
        ]);
        assert_eq!(totals.windows, n);
        assert_eq!(totals.cut_events[0][1], n);
    }

    #[test]
    fn a_short_run_keeps_one_row_per_window() {
        let mut log = WindowLog::default();
        for k in 0..100 {
            log.push(window(k), [pair(k, 1)]);
        }
        let (rows, pairs) = log.into_parts();
        assert_eq!(rows, (0..100).map(window).collect::<Vec<_>>());
        assert_eq!(pairs, (0..100).map(|k| pair(k, 1)).collect::<Vec<_>>());
    }
}
