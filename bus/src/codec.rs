//! The event-batch wire format: explicit, versioned, big-endian, independent of the transport.
//!
//! Every backend (threads, processes, MPI) moves the same bytes, so a batch recorded from one can
//! be replayed into another. Layout of version 1 (all integers big-endian):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | magic | 4 bytes | `TMCB` |
//! | version | u16 | 1 |
//! | flags | u16 | reserved, 0 |
//! | src_shard | u32 | sending shard |
//! | dst_shard | u32 | receiving shard |
//! | count | u32 | number of events |
//! | events | count × event | see below |
//!
//! Each event: `deliver_time u64, src_host u32, src_seq u64, dst_host u32, kind u16,
//! payload_len u32, payload`. Decoding untrusted bytes returns a [`DecodeError`]; it never panics
//! and never allocates more than the input could hold.

use crate::binary::{DecodeError, Reader, Writer};
use crate::event::Event;
use crate::ids::{HostId, ShardId};
use crate::time::SimTime;
use bytes::Bytes;

/// The first four bytes of a batch.
pub const BATCH_MAGIC: [u8; 4] = *b"TMCB";
/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u16 = 1;
/// Bytes in a batch header.
pub const BATCH_HEADER_BYTES: usize = 20;
/// Bytes in an event's fixed part (before its payload).
pub const EVENT_HEADER_BYTES: usize = 30;

/// Who sent a batch to whom.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// The sending shard.
    pub src_shard: ShardId,
    /// The receiving shard.
    pub dst_shard: ShardId,
    /// How many events follow.
    pub count: u32,
}

/// Encoded size of one event.
pub fn encoded_event_len(e: &Event) -> usize {
    EVENT_HEADER_BYTES + e.payload.len()
}

/// Append the encoding of `events` as one batch from `src` to `dst` to `out`.
pub fn encode_batch(out: &mut Vec<u8>, src: ShardId, dst: ShardId, events: &[Event]) {
    let payload: usize = events.iter().map(encoded_event_len).sum();
    out.reserve(BATCH_HEADER_BYTES + payload);
    let mut w = Writer::new(out);
    w.bytes(&BATCH_MAGIC);
    w.u16(BATCH_VERSION);
    w.u16(0);
    w.u32(src.0);
    w.u32(dst.0);
    w.u32(u32::try_from(events.len()).expect("more than 4G events in one batch"));
    for e in events {
        w.u64(e.deliver_time.as_nanos());
        w.u32(e.src_host.0);
        w.u64(e.src_seq);
        w.u32(e.dst_host.0);
        w.u16(e.kind);
        w.len_bytes(&e.payload);
    }
}

/// Decode one batch, appending its events to `out`; their payloads are slices of `bytes` (no
/// copy). On error `out` is left as it was.
pub fn decode_batch(bytes: &Bytes, out: &mut Vec<Event>) -> Result<BatchHeader, DecodeError> {
    let start_len = out.len();
    let result = decode_into(bytes, out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn decode_into(bytes: &Bytes, out: &mut Vec<Event>) -> Result<BatchHeader, DecodeError> {
    let mut r = Reader::new(bytes);
    r.header("event batch", BATCH_MAGIC, BATCH_VERSION)?;
    let flags_at = r.offset();
    let flags = r.u16("flags")?;
    if flags != 0 {
        return Err(DecodeError::Invalid {
            what: "flags",
            offset: flags_at,
            detail: format!("reserved flags {flags:#06x} set"),
        });
    }
    let src_shard = ShardId(r.u32("src_shard")?);
    let dst_shard = ShardId(r.u32("dst_shard")?);
    let count = r.count("event count", EVENT_HEADER_BYTES)?;
    out.reserve(count);
    for _ in 0..count {
        let deliver_time = SimTime::from_nanos(r.u64("deliver_time")?);
        let src_host = HostId(r.u32("src_host")?);
        let src_seq = r.u64("src_seq")?;
        let dst_host = HostId(r.u32("dst_host")?);
        let kind = r.u16("kind")?;
        let payload = bytes.slice_ref(r.len_bytes("payload")?);
        out.push(Event { deliver_time, src_host, src_seq, dst_host, kind, payload });
    }
    r.finish("event batch")?;
    Ok(BatchHeader { src_shard, dst_shard, count: count as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(t, s, q, d, k, p)| Event {
                deliver_time: SimTime::from_nanos(t),
                src_host: HostId(s),
                src_seq: q,
                dst_host: HostId(d),
                kind: k,
                payload: Bytes::from(p),
            })
    }

    proptest! {
        #[test]
        fn round_trips(events in proptest::collection::vec(arb_event(), 0..40), src in any::<u32>(), dst in any::<u32>()) {
            let mut buf = Vec::new();
            encode_batch(&mut buf, ShardId(src), ShardId(dst), &events);
            prop_assert_eq!(buf.len(), BATCH_HEADER_BYTES + events.iter().map(encoded_event_len).sum::<usize>());
            let mut out = Vec::new();
            let h = decode_batch(&Bytes::from(buf.clone()), &mut out).unwrap();
            prop_assert_eq!(h, BatchHeader { src_shard: ShardId(src), dst_shard: ShardId(dst), count: events.len() as u32 });
            prop_assert_eq!(out, events);
        }

        #[test]
        fn every_truncation_is_an_error(events in proptest::collection::vec(arb_event(), 1..8), cut in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            encode_batch(&mut buf, ShardId(0), ShardId(1), &events);
            let cut = cut.index(buf.len());
            let mut out = vec![];
            prop_assert!(decode_batch(&Bytes::copy_from_slice(&buf[..cut]), &mut out).is_err());
            prop_assert!(out.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = vec![];
            let _ = decode_batch(&Bytes::from(bytes), &mut out);
        }

        #[test]
        fn corrupted_batches_never_panic(events in proptest::collection::vec(arb_event(), 1..8), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut buf = Vec::new();
            encode_batch(&mut buf, ShardId(0), ShardId(1), &events);
            for (i, v) in flips {
                let i = i.index(buf.len());
                buf[i] = v;
            }
            let mut out = vec![];
            let _ = decode_batch(&Bytes::from(buf), &mut out);
        }
    }

    #[test]
    fn hostile_count_is_rejected_without_allocating() {
        let mut buf = Vec::new();
        encode_batch(&mut buf, ShardId(0), ShardId(1), &[]);
        buf[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = decode_batch(&Bytes::from(buf), &mut vec![]).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid { what: "event count", .. }), "{err}");
    }

    #[test]
    fn wrong_magic_version_flags_and_trailing_bytes_are_named() {
        let mut buf = Vec::new();
        encode_batch(&mut buf, ShardId(0), ShardId(1), &[]);
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(matches!(decode_batch(&Bytes::from(bad.clone()), &mut vec![]), Err(DecodeError::BadMagic { .. })));
        let mut bad = buf.clone();
        bad[5] = 2;
        assert!(matches!(
            decode_batch(&Bytes::from(bad.clone()), &mut vec![]),
            Err(DecodeError::UnsupportedVersion { found: 2, .. })
        ));
        let mut bad = buf.clone();
        bad[7] = 1;
        assert!(matches!(
            decode_batch(&Bytes::from(bad.clone()), &mut vec![]),
            Err(DecodeError::Invalid { what: "flags", .. })
        ));
        let mut bad = buf.clone();
        bad.push(0);
        assert!(matches!(
            decode_batch(&Bytes::from(bad.clone()), &mut vec![]),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
    }
}
