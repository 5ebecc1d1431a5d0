//! A shard's final report — engine output plus window statistics — and its explicit encoding, so
//! that it can travel from a shard process or MPI rank to the coordinator.

use crate::binary::{DecodeError, Reader, Writer};
use crate::digest::Digest;
use crate::engine::{EngineOutput, Table};
use crate::ids::ShardId;
use crate::stats::{PairStats, WindowStats};
use crate::time::SimTime;

const REPORT_MAGIC: [u8; 4] = *b"TMCR";
const REPORT_VERSION: u16 = 2;

/// Everything a shard hands to the coordinator at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardReport {
    /// Which shard.
    pub shard: ShardId,
    /// The engine's digest contribution and tables.
    pub output: EngineOutput,
    /// One entry per window.
    pub windows: Vec<WindowStats>,
    /// Non-zero shard-pair traffic per window.
    pub pairs: Vec<PairStats>,
    /// Wall nanoseconds from the first window to the end of the last.
    pub wall_ns: u64,
}

impl ShardReport {
    /// Events executed by this shard.
    pub fn events(&self) -> u64 {
        self.windows.iter().map(|w| w.events).sum()
    }

    /// Explicit big-endian encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.bytes(&REPORT_MAGIC);
        w.u16(REPORT_VERSION);
        w.u32(self.shard.0);
        w.bytes(&self.output.digest.to_bytes());
        w.u64(self.wall_ns);
        w.u32(self.output.tables.len() as u32);
        for t in &self.output.tables {
            w.string(&t.name);
            w.len_bytes(&t.arrow_ipc);
        }
        w.u32(self.windows.len() as u32);
        for s in &self.windows {
            for v in [
                s.window,
                s.windows,
                s.start.as_nanos(),
                s.end.as_nanos(),
                s.events,
                s.sent_events,
                s.sent_bytes,
                s.recv_events,
                s.recv_bytes,
                s.exec_ns,
                s.encode_ns,
                s.wait_ns,
                s.decode_ns,
            ] {
                w.u64(v);
            }
        }
        w.u32(self.pairs.len() as u32);
        for p in &self.pairs {
            w.u64(p.window);
            w.u32(p.peer.0);
            for v in [p.sent_events, p.sent_bytes, p.recv_events, p.recv_bytes] {
                w.u64(v);
            }
        }
        buf
    }

    /// Decode; never panics on bad input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header("shard report", REPORT_MAGIC, REPORT_VERSION)?;
        let shard = ShardId(r.u32("shard")?);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(r.take(32, "digest")?);
        let wall_ns = r.u64("wall_ns")?;
        let n = r.count("table count", 8)?;
        let mut tables = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("table name")?;
            let arrow_ipc = r.len_bytes("table bytes")?.to_vec();
            tables.push(Table { name, arrow_ipc });
        }
        let n = r.count("window count", 104)?;
        let mut windows = Vec::with_capacity(n);
        for _ in 0..n {
            let mut v = [0u64; 13];
            for x in v.iter_mut() {
                *x = r.u64("window field")?;
            }
            windows.push(WindowStats {
                window: v[0],
                windows: v[1],
                start: SimTime::from_nanos(v[2]),
                end: SimTime::from_nanos(v[3]),
                events: v[4],
                sent_events: v[5],
                sent_bytes: v[6],
                recv_events: v[7],
                recv_bytes: v[8],
                exec_ns: v[9],
                encode_ns: v[10],
                wait_ns: v[11],
                decode_ns: v[12],
            });
        }
        let n = r.count("pair count", 44)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let window = r.u64("pair window")?;
            let peer = ShardId(r.u32("pair peer")?);
            let mut v = [0u64; 4];
            for x in v.iter_mut() {
                *x = r.u64("pair field")?;
            }
            pairs.push(PairStats {
                window,
                peer,
                sent_events: v[0],
                sent_bytes: v[1],
                recv_events: v[2],
                recv_bytes: v[3],
            });
        }
        r.finish("shard report")?;
        Ok(ShardReport {
            shard,
            output: EngineOutput { digest: Digest::from_bytes(digest), tables },
            windows,
            pairs,
            wall_ns,
        })
    }
}

/// Decode the reports gathered from every shard (index = shard), checking that each names its
/// own shard and only peers that exist, so that later folding cannot index out of range.
pub fn decode_gathered(all: &[Vec<u8>]) -> Result<Vec<ShardReport>, crate::error::BusError> {
    let n = all.len();
    let mut reports = Vec::with_capacity(n);
    for (i, bytes) in all.iter().enumerate() {
        let shard = ShardId(i as u32);
        let bad = |detail: String| crate::error::BusError::Report {
            shard,
            source: DecodeError::Invalid { what: "report", offset: 0, detail },
        };
        let r = ShardReport::decode(bytes).map_err(|source| crate::error::BusError::Report { shard, source })?;
        if r.shard != shard {
            return Err(bad(format!("the report of {shard} names {}", r.shard)));
        }
        if let Some(p) = r.pairs.iter().find(|p| p.peer.index() >= n) {
            return Err(bad(format!("traffic with {}, but the run has {n} shards", p.peer)));
        }
        reports.push(r);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ShardReport {
        let mut digest = Digest::EMPTY;
        digest.add_record(b"x");
        ShardReport {
            shard: ShardId(3),
            output: EngineOutput { digest, tables: vec![Table { name: "t".into(), arrow_ipc: vec![1, 2, 3] }] },
            windows: vec![WindowStats {
                window: 0,
                windows: 1,
                start: SimTime::from_nanos(5),
                end: SimTime::from_nanos(9),
                events: 7,
                exec_ns: 11,
                ..Default::default()
            }],
            pairs: vec![PairStats {
                window: 0,
                peer: ShardId(1),
                sent_events: 2,
                sent_bytes: 80,
                recv_events: 1,
                recv_bytes: 50,
            }],
            wall_ns: 42,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(ShardReport::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn gathered_reports_must_name_their_shard_and_real_peers() {
        let mut a = sample();
        a.shard = ShardId(0);
        a.pairs.clear();
        let mut b = sample();
        b.shard = ShardId(1);
        b.pairs[0].peer = ShardId(0);
        assert_eq!(decode_gathered(&[a.encode(), b.encode()]).unwrap().len(), 2);
        assert!(decode_gathered(&[b.encode(), a.encode()]).unwrap_err().to_string().contains("names shard 1"));
        b.pairs[0].peer = ShardId(7);
        assert!(decode_gathered(&[a.encode(), b.encode()]).unwrap_err().to_string().contains("traffic with shard 7"));
    }

    proptest! {
        #[test]
        fn truncated_or_corrupted_reports_are_errors_not_panics(cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), v in any::<u8>()) {
            let bytes = sample().encode();
            let cut = cut.index(bytes.len());
            prop_assert!(ShardReport::decode(&bytes[..cut]).is_err());
            let mut bad = bytes.clone();
            bad[flip.index(bytes.len())] = v;
            let _ = ShardReport::decode(&bad);
        }
    }
}
