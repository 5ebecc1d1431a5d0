use super::*;
use proptest::prelude::*;

/// Two sessions wired back to back, bytes moved in pieces of the given sizes (cycled).
struct Pair {
    a: Mplex,
    b: Mplex,
    splits: Vec<usize>,
    turn: usize,
}

impl Pair {
    fn new(config: MplexConfig, splits: &[usize]) -> Self {
        Self { a: Mplex::new(config), b: Mplex::new(config), splits: splits.to_vec(), turn: 0 }
    }

    /// Moves all queued bytes both ways; returns the events each side saw, coalesced per
    /// stream so the split does not matter.
    fn pump(&mut self) -> (Vec<MuxEvent>, Vec<MuxEvent>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let to_b = self.a.poll_transmit();
            let to_a = self.b.poll_transmit();
            if to_b.is_none() && to_a.is_none() {
                return (coalesce(ea), coalesce(eb));
            }
            if let Some(bytes) = to_b {
                self.feed_b(&bytes);
            }
            if let Some(bytes) = to_a {
                self.feed_a(&bytes);
            }
            ea.extend(std::iter::from_fn(|| self.a.poll_event()));
            eb.extend(std::iter::from_fn(|| self.b.poll_event()));
        }
    }

    fn feed_a(&mut self, bytes: &[u8]) {
        for piece in self.pieces(bytes) {
            self.a.handle_bytes(0, &piece).unwrap();
        }
    }

    fn feed_b(&mut self, bytes: &[u8]) {
        for piece in self.pieces(bytes) {
            self.b.handle_bytes(0, &piece).unwrap();
        }
    }

    fn pieces(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let n = self.splits[self.turn % self.splits.len()].max(1).min(bytes.len() - pos);
            self.turn += 1;
            out.push(bytes[pos..pos + n].to_vec());
            pos += n;
        }
        out
    }
}

/// Joins adjacent data events of one stream.
fn coalesce(events: Vec<MuxEvent>) -> Vec<MuxEvent> {
    let mut out: Vec<MuxEvent> = Vec::new();
    for e in events {
        if let (Some(MuxEvent::Data(last, acc)), MuxEvent::Data(id, data)) = (out.last_mut(), &e)
            && last == id
        {
            acc.extend_from_slice(data);
            continue;
        }
        out.push(e);
    }
    out
}

fn data(id: u64, bytes: &[u8]) -> MuxEvent {
    MuxEvent::Data(StreamId(id), bytes.to_vec())
}

fn protocol_error(m: &mut Mplex, bytes: &[u8]) -> String {
    match m.handle_bytes(0, bytes) {
        Err(MuxError::Protocol(why)) => why,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn frames_on_the_wire() {
    let mut m = Mplex::new(MplexConfig::default());
    let id = m.open(0).unwrap();
    m.send(0, id, b"hi").unwrap();
    m.close(0, id).unwrap();
    assert_eq!(m.poll_transmit().unwrap(), [0x00, 0x00, 0x02, 0x02, b'h', b'i', 0x04, 0x00]);
    // The peer opens its stream 17: header (17 << 3) | 0 = 136 = [0x88, 0x01].
    m.handle_bytes(0, &[0x88, 0x01, 0x01, b'n']).unwrap();
    let theirs = StreamId(1);
    assert_eq!(m.poll_event(), Some(MuxEvent::Opened(theirs)));
    m.send(0, theirs, b"x").unwrap();
    m.reset(0, theirs).unwrap();
    assert_eq!(m.poll_transmit().unwrap(), [0x89, 0x01, 0x01, b'x', 0x8d, 0x01, 0x00]);
    assert_eq!(m.queued(id), 0);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn both_sides_open_stream_zero_and_keep_them_apart() {
    for split in [1, 2, 3, 1000] {
        let mut p = Pair::new(MplexConfig::default(), &[split]);
        let a0 = p.a.open(0).unwrap();
        let b0 = p.b.open(0).unwrap();
        p.a.send(0, a0, b"from a").unwrap();
        p.b.send(0, b0, b"from b").unwrap();
        let (ea, eb) = p.pump();
        assert_eq!(ea, [MuxEvent::Opened(StreamId(1)), data(1, b"from b")]);
        assert_eq!(eb, [MuxEvent::Opened(StreamId(1)), data(1, b"from a")]);
        p.a.send(0, StreamId(1), b"reply to b").unwrap();
        p.b.send(0, StreamId(1), b"reply to a").unwrap();
        let (ea, eb) = p.pump();
        assert_eq!(ea, [data(0, b"reply to a")]);
        assert_eq!(eb, [data(0, b"reply to b")]);
    }
}

#[test]
fn half_close_then_forget() {
    let mut p = Pair::new(MplexConfig::default(), &[5]);
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, b"request").unwrap();
    p.a.close(0, s).unwrap();
    assert_eq!(p.a.send(0, s, b"more"), Err(MuxError::UnknownStream(s)));
    assert_eq!(p.a.close(0, s), Err(MuxError::UnknownStream(s)));
    let (_, eb) = p.pump();
    let t = StreamId(0);
    assert_eq!(eb, [MuxEvent::Opened(t), data(0, b"request"), MuxEvent::Closed(t)]);
    p.b.send(0, t, b"response").unwrap();
    p.b.close(0, t).unwrap();
    assert_eq!(p.b.open_streams(), 0, "closed both ways: forgotten");
    let (ea, _) = p.pump();
    assert_eq!(ea, [data(0, b"response"), MuxEvent::Closed(s)]);
    assert_eq!(p.a.open_streams(), 0);
    assert_eq!(p.a.reset(0, s), Err(MuxError::UnknownStream(s)));
}

#[test]
fn reset_forgets_and_late_frames_are_dropped() {
    let mut p = Pair::new(MplexConfig::default(), &[7]);
    let s = p.a.open(0).unwrap();
    p.pump();
    let t = StreamId(0);
    // b writes before it sees a's reset: a drops those frames without complaint.
    p.b.send(0, t, b"in flight").unwrap();
    p.b.close(0, t).unwrap();
    p.a.reset(0, s).unwrap();
    let (ea, eb) = p.pump();
    assert_eq!(ea, []);
    assert_eq!(eb, [MuxEvent::Reset(t)]);
    assert_eq!(p.b.send(0, t, b"x"), Err(MuxError::UnknownStream(t)));
    assert_eq!((p.a.open_streams(), p.b.open_streams()), (0, 0));
}

#[test]
fn one_mib_transfer_in_frames_of_at_most_the_max() {
    let payload: Vec<u8> = (0..(1 << 20) + 7).map(|i| (i * 31 % 251) as u8).collect();
    for (max_frame, split) in [(SPEC_MAX_FRAME, 65536), (SPEC_MAX_FRAME, 1400), (4096, 999)] {
        let config = MplexConfig { max_frame_size: max_frame, ..MplexConfig::default() };
        let mut p = Pair::new(config, &[split]);
        let s = p.a.open(0).unwrap();
        p.a.send(0, s, &payload).unwrap();
        p.a.close(0, s).unwrap();
        let bytes = p.a.poll_transmit().unwrap();
        let frames = payload.len().div_ceil(max_frame);
        let header_bytes = bytes.len() - payload.len() - 4;
        assert!(header_bytes <= frames * 5, "{frames} frames take {header_bytes} header bytes");
        p.feed_b(&bytes);
        let events = coalesce(std::iter::from_fn(|| p.b.poll_event()).collect());
        assert_eq!(events, [MuxEvent::Opened(StreamId(0)), data(0, &payload), MuxEvent::Closed(StreamId(0))]);
    }
}

#[test]
fn frames_sent_never_exceed_the_spec() {
    let config = MplexConfig { max_frame_size: 4 << 20, ..MplexConfig::default() };
    let mut m = Mplex::new(config);
    let s = m.open(0).unwrap();
    m.poll_transmit();
    m.send(0, s, &vec![0; SPEC_MAX_FRAME + 1]).unwrap();
    let bytes = m.poll_transmit().unwrap();
    assert_eq!(&bytes[..5], &[0x02, 0x80, 0x80, 0x40, 0x00][..], "first frame is exactly 1 MiB");
}

#[test]
fn unknown_flag_is_a_protocol_error() {
    let mut m = Mplex::new(MplexConfig::default());
    assert!(protocol_error(&mut m, &[0x07, 0x00]).contains("unknown mplex flag 7"));
    assert!(protocol_error(&mut m, &[0x00, 0x00]).contains("already failed"));
}

#[test]
fn oversize_frame_is_a_protocol_error() {
    let config = MplexConfig { max_frame_size: 100, ..MplexConfig::default() };
    let mut m = Mplex::new(config);
    m.handle_bytes(0, &[0x00, 100]).unwrap();
    m.handle_bytes(0, &[0u8; 100]).unwrap();
    assert!(protocol_error(&mut m, &[0x02, 101]).contains("more than 100"));
    let mut m = Mplex::new(MplexConfig::default());
    let mut header = vec![0x02];
    varint::put(&mut header, SPEC_MAX_FRAME as u64 + 1);
    assert!(protocol_error(&mut m, &header).contains("more than"));
    let mut m = Mplex::new(MplexConfig::default());
    assert!(protocol_error(&mut m, &[0xff; 10]).contains("longer than 9 bytes"));
}

#[test]
fn frames_on_streams_never_opened_are_protocol_errors() {
    // MessageInitiator on a peer stream never opened; MessageReceiver, CloseReceiver and
    // ResetReceiver on a stream of ours never opened.
    for frame in [[0x02, 0x01, b'x'], [0x01, 0x01, b'x'], [0x0b, 0x00, 0x00], [0x05, 0x00, 0x00]] {
        let mut m = Mplex::new(MplexConfig::default());
        assert!(protocol_error(&mut m, &frame).contains("never opened"), "{frame:?}");
    }
    // Our stream 0 exists, our stream 1 does not.
    let mut m = Mplex::new(MplexConfig::default());
    m.open(0).unwrap();
    m.handle_bytes(0, &[0x01, 0x01, b'x']).unwrap();
    assert!(protocol_error(&mut m, &[0x09, 0x00]).contains("never opened"));
}

#[test]
fn opening_an_open_stream_or_writing_after_close_is_a_protocol_error() {
    let mut m = Mplex::new(MplexConfig::default());
    m.handle_bytes(0, &[0x00, 0x00]).unwrap();
    assert!(protocol_error(&mut m, &[0x00, 0x00]).contains("opened twice"));
    let mut m = Mplex::new(MplexConfig::default());
    m.handle_bytes(0, &[0x00, 0x00, 0x04, 0x00]).unwrap();
    assert!(protocol_error(&mut m, &[0x02, 0x01, b'x']).contains("after its close"));
}

#[test]
fn a_peer_stream_number_may_be_reused_after_both_closed() {
    let mut m = Mplex::new(MplexConfig::default());
    m.handle_bytes(0, &[0x00, 0x00, 0x04, 0x00]).unwrap();
    m.close(0, StreamId(0)).unwrap();
    m.handle_bytes(0, &[0x00, 0x00, 0x02, 0x01, b'y']).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
    let expected = [MuxEvent::Opened(StreamId(0)), MuxEvent::Closed(StreamId(0)), MuxEvent::Opened(StreamId(1))];
    assert_eq!(events[..3], expected);
    assert_eq!(events[3], data(1, b"y"));
}

#[test]
fn stream_limit_resets_extra_peer_streams_and_refuses_local_ones() {
    let config = MplexConfig { max_streams: 2, ..MplexConfig::default() };
    let mut m = Mplex::new(config);
    m.open(0).unwrap();
    m.poll_transmit();
    m.handle_bytes(0, &[0x00, 0x00, 0x08, 0x00, 0x0a, 0x01, b'z']).unwrap();
    assert_eq!(m.poll_event(), Some(MuxEvent::Opened(StreamId(1))));
    assert_eq!(m.poll_event(), None, "the peer's stream 1 was reset, its data dropped");
    assert_eq!(m.poll_transmit().unwrap(), [0x0d, 0x00]);
    assert_eq!(m.open(0), Err(MuxError::CannotOpen("stream limit reached")));
}

#[test]
fn undrained_data_beyond_the_limit_resets_the_stream() {
    let config = MplexConfig { max_buffered_per_stream: 10, ..MplexConfig::default() };
    let mut m = Mplex::new(config);
    m.handle_bytes(0, &[0x00, 0x00, 0x02, 0x06, 1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(m.poll_event(), Some(MuxEvent::Opened(StreamId(0))));
    assert_eq!(m.poll_event(), Some(data(0, &[1, 2, 3, 4, 5, 6])));
    // Drained: another 10 fit.
    m.handle_bytes(0, &[0x02, 0x04, 1, 2, 3, 4, 0x02, 0x06, 1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(m.poll_transmit(), None);
    // Not drained: one more byte is too many.
    m.handle_bytes(0, &[0x02, 0x02, 7, 8, 0x04, 0x00]).unwrap();
    assert_eq!(m.poll_transmit().unwrap(), [0x05, 0x00]);
    let events: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
    assert_eq!(events, [data(0, &[1, 2, 3, 4, 1, 2, 3, 4, 5, 6]), MuxEvent::Reset(StreamId(0))]);
    assert_eq!(m.open_streams(), 0);
}

#[test]
fn go_away_stops_new_streams() {
    let mut m = Mplex::new(MplexConfig::default());
    m.go_away(0);
    assert_eq!(m.open(0), Err(MuxError::CannotOpen("session is going away")));
    m.handle_bytes(0, &[0x00, 0x00]).unwrap();
    assert_eq!(m.poll_event(), None);
    assert_eq!(m.poll_transmit().unwrap(), [0x05, 0x00]);
}

#[test]
fn unknown_local_stream_calls_fail() {
    let mut m = Mplex::new(MplexConfig::default());
    let nope = StreamId(9);
    assert_eq!(m.send(0, nope, b"x"), Err(MuxError::UnknownStream(nope)));
    assert_eq!(m.close(0, nope), Err(MuxError::UnknownStream(nope)));
    assert_eq!(m.reset(0, nope), Err(MuxError::UnknownStream(nope)));
}

proptest! {
    #[test]
    fn streams_round_trip_in_any_split(
        writes in proptest::collection::vec((0usize..3, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
        splits in proptest::collection::vec(1usize..50, 1..6),
    ) {
        let config = MplexConfig { max_frame_size: 64, ..MplexConfig::default() };
        let mut p = Pair::new(config, &splits);
        let ours: Vec<StreamId> = (0..3).map(|_| p.a.open(0).unwrap()).collect();
        let theirs: Vec<StreamId> = (0..3).map(|_| p.b.open(0).unwrap()).collect();
        p.pump();
        let mut sent_ab = vec![Vec::new(); 3];
        let mut sent_ba = vec![Vec::new(); 3];
        for (i, from_a, bytes) in &writes {
            if *from_a {
                p.a.send(0, ours[*i], bytes).unwrap();
                sent_ab[*i].extend_from_slice(bytes);
            } else {
                p.b.send(0, theirs[*i], bytes).unwrap();
                sent_ba[*i].extend_from_slice(bytes);
            }
        }
        let (ea, eb) = p.pump();
        // b numbers a's streams after its own three; a likewise.
        let mut got_ab = vec![Vec::new(); 3];
        let mut got_ba = vec![Vec::new(); 3];
        for e in eb {
            if let MuxEvent::Data(StreamId(id), d) = e { got_ab[id as usize - 3].extend(d) }
        }
        for e in ea {
            if let MuxEvent::Data(StreamId(id), d) = e { got_ba[id as usize - 3].extend(d) }
        }
        prop_assert_eq!(got_ab, sent_ab);
        prop_assert_eq!(got_ba, sent_ba);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        splits in proptest::collection::vec(1usize..64, 1..8),
        opened in 0usize..3,
    ) {
        let config = MplexConfig { max_frame_size: 512, max_streams: 4, max_buffered_per_stream: 256 };
        let mut m = Mplex::new(config);
        for _ in 0..opened {
            m.open(0).unwrap();
        }
        let mut pos = 0;
        let mut i = 0;
        while pos < bytes.len() {
            let n = splits[i % splits.len()].min(bytes.len() - pos);
            i += 1;
            if m.handle_bytes(0, &bytes[pos..pos + n]).is_err() {
                break;
            }
            pos += n;
            prop_assert!(m.header.len() <= MAX_HEADER_LEN);
            prop_assert!(m.open_streams() <= 4);
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
    }
}
