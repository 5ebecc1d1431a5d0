//! Protocol rules of [`Yamux`], checked between two instances (the `Pair` harness moves bytes
//! between them in chosen splits) and against hand-made frames.

use super::*;
use proptest::prelude::*;

const KIB: usize = 1024;

/// Two sessions, a client and a server, and what each has reported.
struct Pair {
    a: Yamux,
    b: Yamux,
    a_events: Vec<MuxEvent>,
    b_events: Vec<MuxEvent>,
    /// Chunk sizes the bytes are cut into, cycled.
    splits: Vec<usize>,
    split_at: usize,
    now: Nanos,
}

impl Pair {
    fn new() -> Pair {
        Pair::with(YamuxConfig::default(), YamuxConfig::default())
    }

    fn with(a: YamuxConfig, b: YamuxConfig) -> Pair {
        Pair {
            a: Yamux::new(Role::Client, a),
            b: Yamux::new(Role::Server, b),
            a_events: Vec::new(),
            b_events: Vec::new(),
            splits: vec![usize::MAX],
            split_at: 0,
            now: 0,
        }
    }

    fn next_split(&mut self) -> usize {
        let n = self.splits[self.split_at % self.splits.len()].max(1);
        self.split_at += 1;
        n
    }

    /// Moves bytes both ways (and polls both sides' events) until nothing moves.
    fn run(&mut self) -> Result<(), MuxError> {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(bytes) = self.a.poll_transmit() {
                moved = true;
                self.feed(true, &bytes)?;
            }
            while let Some(bytes) = self.b.poll_transmit() {
                moved = true;
                self.feed(false, &bytes)?;
            }
            while let Some(e) = self.a.poll_event() {
                moved = true;
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                moved = true;
                self.b_events.push(e);
            }
            if !moved {
                return Ok(());
            }
        }
        panic!("the pair never went quiet");
    }

    /// Hands `bytes` from one side (a if `from_a`) to the other in the configured splits.
    fn feed(&mut self, from_a: bool, mut bytes: &[u8]) -> Result<(), MuxError> {
        while !bytes.is_empty() {
            let n = self.next_split().min(bytes.len());
            let to = if from_a { &mut self.b } else { &mut self.a };
            to.handle_bytes(self.now, &bytes[..n])?;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// Everything `events` delivered on `id`, concatenated.
fn data_of(events: &[MuxEvent], id: StreamId) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let MuxEvent::Data(s, d) = e
            && *s == id
        {
            out.extend_from_slice(d);
        }
    }
    out
}

/// Splits a transmitted buffer into its frames' headers (payloads skipped).
fn headers(mut bytes: &[u8]) -> Vec<Header> {
    let mut out = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let h = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
        let body = if h.frame_type == FrameType::Data { h.length as usize } else { 0 };
        bytes = &bytes[HEADER_LEN + body..];
        out.push(h);
    }
    assert!(bytes.is_empty(), "trailing partial frame");
    out
}

fn frame(frame_type: FrameType, flags: u16, stream: u32, length: u32) -> Vec<u8> {
    Header { frame_type, flags, stream, length }.encode().to_vec()
}

fn data_frame(flags: u16, stream: u32, body: &[u8]) -> Vec<u8> {
    let mut out = frame(FrameType::Data, flags, stream, body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn expect_protocol_error(y: &mut Yamux, bytes: &[u8]) {
    let err = y.handle_bytes(0, bytes).unwrap_err();
    assert!(matches!(err, MuxError::Protocol(_)), "{err:?}");
    assert_eq!(y.handle_bytes(0, &[0; 12]), Err(err), "the error sticks");
    let out = y.poll_transmit().expect("a go-away leaves");
    let last = headers(&out).pop().unwrap();
    assert_eq!((last.frame_type, last.length), (FrameType::GoAway, GoAwayCode::Protocol.to_u32()));
    assert_eq!(y.poll_timeout(), None);
}

#[test]
fn header_layout_matches_the_spec() {
    let h = Header { frame_type: FrameType::WindowUpdate, flags: SYN | ACK, stream: 0x0102_0304, length: 0x0506_0708 };
    assert_eq!(h.encode(), [0, 1, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(Header::decode(&h.encode()), Ok(h));
    assert_eq!(Header::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(HeaderError::Version(1)));
    assert_eq!(Header::decode(&[0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(HeaderError::Type(4)));
    for c in [0, 1, 2, 7] {
        assert_eq!(GoAwayCode::from_u32(c).to_u32(), c);
    }
}

#[test]
fn open_accept_and_data_both_ways() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    assert_eq!(s, StreamId(1), "the client opens odd ids");
    p.a.send(0, s, b"hello").unwrap();
    p.run().unwrap();
    assert_eq!(p.b_events, vec![MuxEvent::Opened(s), MuxEvent::Data(s, b"hello".to_vec())]);
    p.b.send(0, s, b"world").unwrap();
    let t = p.b.open(0).unwrap();
    assert_eq!(t, StreamId(2), "the server opens even ids");
    p.b.send(0, t, b"from b").unwrap();
    p.run().unwrap();
    assert_eq!(data_of(&p.a_events, s), b"world");
    assert_eq!(data_of(&p.a_events, t), b"from b");
    assert!(p.a_events.contains(&MuxEvent::Opened(t)));
}

#[test]
fn syn_rides_on_the_first_frame_and_ack_answers_it() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    let s = a.open(0).unwrap();
    a.send(0, s, b"x").unwrap();
    let out = a.poll_transmit().unwrap();
    assert_eq!(out, data_frame(SYN, 1, b"x"), "SYN on the first data frame");
    a.send(0, s, b"y").unwrap();
    assert_eq!(a.poll_transmit().unwrap(), data_frame(0, 1, b"y"), "no SYN afterwards");
    b.handle_bytes(0, &out).unwrap();
    assert_eq!(b.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, ACK, 1, 0), "accepted at once");
    // Opened without data: the SYN leaves as a window update.
    let t = a.open(0).unwrap();
    assert_eq!(a.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, SYN, t.0 as u32, 0));
    assert_eq!(a.poll_transmit(), None);
}

#[test]
fn half_close_then_both_closed_forgets_the_stream() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, b"request").unwrap();
    p.a.close(0, s).unwrap();
    assert_eq!(p.a.send(0, s, b"more"), Err(MuxError::UnknownStream(s)));
    p.run().unwrap();
    assert_eq!(p.b_events, vec![MuxEvent::Opened(s), MuxEvent::Data(s, b"request".to_vec()), MuxEvent::Closed(s)]);
    assert_eq!((p.a.open_streams(), p.b.open_streams()), (1, 1), "half-closed streams stay");
    p.b.send(0, s, b"response").unwrap();
    p.b.close(0, s).unwrap();
    p.run().unwrap();
    assert_eq!(data_of(&p.a_events, s), b"response");
    assert_eq!(p.a_events.last(), Some(&MuxEvent::Closed(s)));
    assert_eq!((p.a.open_streams(), p.b.open_streams()), (0, 0), "both closed: forgotten");
}

#[test]
fn fin_follows_the_last_data_frame_on_a_window_update_of_its_own() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    let s = a.open(0).unwrap();
    a.send(0, s, b"bye").unwrap();
    a.close(0, s).unwrap();
    let mut want = data_frame(SYN, 1, b"bye");
    want.extend(frame(FrameType::WindowUpdate, FIN, 1, 0));
    assert_eq!(a.poll_transmit().unwrap(), want);
    assert_eq!(a.poll_transmit(), None);
    // Closing an idle stream sends FIN alone, still on a window update.
    let t = a.open(0).unwrap();
    a.poll_transmit().unwrap();
    a.close(0, t).unwrap();
    assert_eq!(a.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, FIN, 3, 0));
}

#[test]
fn reset_ends_the_stream_on_both_sides() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, b"x").unwrap();
    p.run().unwrap();
    p.b.send(0, s, &pattern(100, 1)).unwrap();
    p.a.reset(0, s).unwrap();
    assert_eq!(p.a.reset(0, s), Err(MuxError::UnknownStream(s)));
    p.run().unwrap();
    assert_eq!(p.b_events.last(), Some(&MuxEvent::Reset(s)));
    assert_eq!(p.b.send(0, s, b"y"), Err(MuxError::UnknownStream(s)));
    assert_eq!((p.a.open_streams(), p.b.open_streams()), (0, 0));
    assert!(data_of(&p.a_events, s).is_empty(), "data in flight for a reset stream is dropped");
}

#[test]
fn reset_in_the_middle_of_a_frame_drops_the_rest() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    let bytes = data_frame(SYN, 1, &pattern(100, 0));
    b.handle_bytes(0, &bytes[..HEADER_LEN + 40]).unwrap();
    assert_eq!(b.poll_event(), Some(MuxEvent::Opened(StreamId(1))));
    assert_eq!(b.poll_event(), Some(MuxEvent::Data(StreamId(1), pattern(40, 0))));
    b.reset(0, StreamId(1)).unwrap();
    b.handle_bytes(0, &bytes[HEADER_LEN + 40..]).unwrap();
    assert_eq!(b.poll_event(), None);
    let out = headers(&b.poll_transmit().unwrap());
    assert_eq!(out, vec![Header { frame_type: FrameType::WindowUpdate, flags: RST, stream: 1, length: 0 }]);
}

#[test]
fn resetting_an_unannounced_stream_sends_nothing() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    let s = a.open(0).unwrap();
    a.reset(0, s).unwrap();
    assert_eq!(a.poll_transmit(), None);
}

#[test]
fn go_away_stops_new_streams_both_ways() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, b"x").unwrap();
    p.run().unwrap();
    p.a.go_away(0);
    p.run().unwrap();
    assert_eq!(p.b_events.last(), Some(&MuxEvent::GoAway));
    assert_eq!(p.b.remote_go_away(), Some(GoAwayCode::Normal));
    assert!(matches!(p.a.open(0), Err(MuxError::CannotOpen(_))));
    assert!(matches!(p.b.open(0), Err(MuxError::CannotOpen(_))));
    p.b.send(0, s, b"existing streams finish").unwrap();
    p.run().unwrap();
    assert_eq!(data_of(&p.a_events, s), b"existing streams finish");
}

#[test]
fn streams_opened_after_our_go_away_are_refused_with_rst() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.go_away(0);
    b.handle_bytes(0, &data_frame(SYN, 1, b"late")).unwrap();
    assert_eq!(b.poll_event(), None);
    let out = headers(&b.poll_transmit().unwrap());
    assert_eq!(out[1], Header { frame_type: FrameType::WindowUpdate, flags: RST, stream: 1, length: 0 });
}

#[test]
fn keep_alive_ping_is_answered_with_the_same_value() {
    let config = YamuxConfig { keep_alive: Some(1_000), ..YamuxConfig::default() };
    let mut p = Pair::with(config, YamuxConfig::default());
    assert_eq!(p.a.poll_timeout(), None, "armed by the first call that tells the time");
    p.a.handle_timeout(500);
    assert_eq!(p.a.poll_timeout(), Some(1_500));
    assert_eq!(p.a.poll_transmit(), None);
    p.a.handle_timeout(1_500);
    assert_eq!(p.a.poll_timeout(), Some(2_500));
    let ping = p.a.poll_transmit().unwrap();
    assert_eq!(headers(&ping), vec![Header { frame_type: FrameType::Ping, flags: SYN, stream: 0, length: 1 }]);
    p.b.handle_bytes(1_600, &ping).unwrap();
    let pong = p.b.poll_transmit().unwrap();
    assert_eq!(pong, frame(FrameType::Ping, ACK, 0, 1));
    p.a.handle_bytes(1_900, &pong).unwrap();
    assert_eq!(p.a.rtt(), Some(400));
}

#[test]
fn unsolicited_pong_is_ignored() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    a.handle_bytes(0, &frame(FrameType::Ping, ACK, 0, 9)).unwrap();
    assert_eq!((a.rtt(), a.poll_transmit()), (None, None));
}

#[test]
fn mebibyte_transfer_both_ways_needs_window_updates() {
    let mut p = Pair::new();
    p.splits = vec![1, 7, 12, 13, 4000, 100_000];
    let s = p.a.open(0).unwrap();
    let up = pattern(1024 * KIB, 3);
    let down = pattern(1024 * KIB, 5);
    p.a.send(0, s, &up).unwrap();
    p.a.close(0, s).unwrap();
    p.run().unwrap();
    p.b.send(0, s, &down).unwrap();
    p.b.close(0, s).unwrap();
    p.run().unwrap();
    assert_eq!(data_of(&p.b_events, s), up);
    assert_eq!(data_of(&p.a_events, s), down);
    assert_eq!((p.a.queued(s), p.b.queued(s)), (0, 0));
    assert_eq!((p.a.open_streams(), p.b.open_streams()), (0, 0));
}

#[test]
fn sender_stops_at_the_window_and_resumes_on_updates() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    let s = a.open(0).unwrap();
    a.send(0, s, &pattern(300 * KIB, 0)).unwrap();
    let mut sent = Vec::new();
    while let Some(out) = a.poll_transmit() {
        sent.extend(out);
    }
    let data: usize = headers(&sent).iter().map(|h| h.length as usize).sum();
    assert_eq!(data, DEFAULT_WINDOW as usize, "exactly one window leaves");
    assert_eq!(a.queued(s), 300 * KIB - DEFAULT_WINDOW as usize);
    b.handle_bytes(0, &sent).unwrap();
    let mut taken = 0;
    while let Some(e) = b.poll_event() {
        if let MuxEvent::Data(_, d) = e {
            taken += d.len();
        }
    }
    assert_eq!(taken, DEFAULT_WINDOW as usize);
    let updates = b.poll_transmit().unwrap();
    assert_eq!(b.poll_transmit(), None);
    let credit: u32 = headers(&updates).iter().map(|h| h.length).sum();
    assert_eq!(credit, DEFAULT_WINDOW, "everything taken is granted back");
    a.handle_bytes(0, &updates).unwrap();
    while a.poll_transmit().is_some() {}
    assert_eq!(a.queued(s), 0);
}

#[test]
fn window_is_refreshed_once_half_is_taken() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.handle_bytes(0, &data_frame(SYN, 1, &pattern(128 * KIB - 1, 0))).unwrap();
    while b.poll_event().is_some() {}
    assert_eq!(b.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, ACK, 1, 0), "just the ACK");
    b.handle_bytes(0, &data_frame(0, 1, b"z")).unwrap();
    while b.poll_event().is_some() {}
    assert_eq!(b.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, 0, 1, 128 * 1024));
}

#[test]
fn a_larger_receive_window_is_announced_on_syn_and_ack() {
    let big = YamuxConfig { receive_window: 1024 * 1024, ..YamuxConfig::default() };
    let mut a = Yamux::new(Role::Client, big.clone());
    let mut b = Yamux::new(Role::Server, big);
    let s = a.open(0).unwrap();
    let syn = a.poll_transmit().unwrap();
    assert_eq!(syn, frame(FrameType::WindowUpdate, SYN, 1, 768 * 1024));
    b.handle_bytes(0, &syn).unwrap();
    assert_eq!(b.poll_transmit().unwrap(), frame(FrameType::WindowUpdate, ACK, 1, 768 * 1024));
    b.send(0, s, &pattern(1024 * KIB, 0)).unwrap();
    while b.poll_transmit().is_some() {}
    assert_eq!(b.queued(s), 0, "the whole announced window may be used");
}

#[test]
fn peer_announcing_a_larger_window_on_syn_is_honoured() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.handle_bytes(0, &frame(FrameType::WindowUpdate, SYN, 1, 16 * 1024 * 1024)).unwrap();
    b.send(0, StreamId(1), &pattern(4 * 1024 * KIB, 0)).unwrap();
    while b.poll_transmit().is_some() {}
    assert_eq!(b.queued(StreamId(1)), 0);
}

#[test]
fn data_beyond_the_window_is_a_protocol_error() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    let mut bytes = data_frame(SYN, 1, &pattern(DEFAULT_WINDOW as usize, 0));
    bytes.extend(frame(FrameType::Data, 0, 1, 1));
    expect_protocol_error(&mut b, &bytes);
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    expect_protocol_error(&mut b, &frame(FrameType::Data, SYN, 1, DEFAULT_WINDOW + 1));
}

#[test]
fn bad_version_and_type_are_protocol_errors() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    let mut bytes = frame(FrameType::WindowUpdate, SYN, 1, 0);
    bytes[0] = 1;
    expect_protocol_error(&mut b, &bytes);
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    bytes[0] = 0;
    bytes[1] = 9;
    expect_protocol_error(&mut b, &bytes);
}

#[test]
fn peer_opening_our_parity_is_a_protocol_error() {
    let mut a = Yamux::new(Role::Client, YamuxConfig::default());
    expect_protocol_error(&mut a, &frame(FrameType::WindowUpdate, SYN, 3, 0));
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    expect_protocol_error(&mut b, &data_frame(SYN, 2, b"x"));
}

#[test]
fn reused_stream_id_is_a_protocol_error() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.handle_bytes(0, &frame(FrameType::WindowUpdate, SYN, 5, 0)).unwrap();
    b.handle_bytes(0, &frame(FrameType::WindowUpdate, RST, 5, 0)).unwrap();
    b.handle_bytes(0, &frame(FrameType::WindowUpdate, SYN, 1, 0)).unwrap();
    assert_eq!(b.open_streams(), 1, "out-of-order ids are fine");
    expect_protocol_error(&mut b, &frame(FrameType::WindowUpdate, SYN, 5, 0));
}

#[test]
fn frames_for_streams_never_opened_are_protocol_errors() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    expect_protocol_error(&mut b, &data_frame(0, 7, b"x"));
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    expect_protocol_error(&mut b, &frame(FrameType::WindowUpdate, 0, 4, 10));
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    expect_protocol_error(&mut b, &frame(FrameType::WindowUpdate, SYN, 0, 0));
}

#[test]
fn data_after_fin_is_a_protocol_error() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.handle_bytes(0, &data_frame(SYN | FIN, 1, b"last")).unwrap();
    expect_protocol_error(&mut b, &data_frame(0, 1, b"more"));
}

#[test]
fn send_window_overflow_is_a_protocol_error() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    b.handle_bytes(0, &frame(FrameType::WindowUpdate, SYN, 1, 0)).unwrap();
    expect_protocol_error(&mut b, &frame(FrameType::WindowUpdate, 0, 1, u32::MAX));
}

#[test]
fn frames_for_forgotten_streams_are_ignored() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, b"x").unwrap();
    p.run().unwrap();
    p.a.reset(0, s).unwrap();
    p.run().unwrap();
    p.a.handle_bytes(0, &data_frame(0, 1, &pattern(1000, 0))).unwrap();
    p.a.handle_bytes(0, &frame(FrameType::WindowUpdate, FIN, 1, 5)).unwrap();
    p.b.handle_bytes(0, &data_frame(0, 1, b"late")).unwrap();
    assert_eq!(p.a.poll_event(), None);
    assert_eq!(p.b.poll_event(), None);
}

#[test]
fn streams_beyond_the_limit_are_refused_with_rst() {
    let config = YamuxConfig { max_streams: 2, ..YamuxConfig::default() };
    let mut b = Yamux::new(Role::Server, config);
    for id in [1, 3, 5] {
        b.handle_bytes(0, &data_frame(SYN, id, b"hi")).unwrap();
    }
    assert_eq!(b.open_streams(), 2);
    let out = headers(&b.poll_transmit().unwrap());
    assert!(out.contains(&Header { frame_type: FrameType::WindowUpdate, flags: RST, stream: 5, length: 0 }));
    assert!(matches!(b.open(0), Err(MuxError::CannotOpen(_))));
}

#[test]
fn ack_backlog_limits_unacknowledged_opens() {
    let config = YamuxConfig { max_streams: 1000, ..YamuxConfig::default() };
    let mut a = Yamux::new(Role::Client, config);
    for _ in 0..ACK_BACKLOG {
        a.open(0).unwrap();
    }
    assert!(matches!(a.open(0), Err(MuxError::CannotOpen(_))));
    a.handle_bytes(0, &frame(FrameType::WindowUpdate, ACK, 1, 0)).unwrap();
    a.open(0).unwrap();
}

#[test]
fn used_peer_ids_stay_bounded() {
    let mut b = Yamux::new(Role::Server, YamuxConfig::default());
    // Skip id 1 for ever: every later id waits above the floor until the memory limit.
    for k in 1..5000u32 {
        let id = 2 * k + 1;
        b.handle_bytes(0, &frame(FrameType::WindowUpdate, SYN | RST, id, 0)).unwrap();
        assert!(b.remote_ids.above.len() <= USED_ID_MEMORY);
    }
    assert_eq!(b.open_streams(), 0);
    expect_protocol_error(&mut b, &frame(FrameType::WindowUpdate, SYN, 9, 0));
}

#[test]
fn transmit_round_robins_between_streams() {
    let mut a = Yamux::new(Role::Client, YamuxConfig { max_frame_payload: 10, ..YamuxConfig::default() });
    let s = a.open(0).unwrap();
    let t = a.open(0).unwrap();
    a.send(0, s, &[1; 30]).unwrap();
    a.send(0, t, &[2; 30]).unwrap();
    let ids: Vec<u32> = headers(&a.poll_transmit().unwrap()).iter().map(|h| h.stream).collect();
    assert_eq!(ids, vec![1, 3, 1, 3, 1, 3]);
}

/// One event stream, with data merged per stream: what must not depend on how bytes are split.
fn normalised(events: &[MuxEvent]) -> Vec<MuxEvent> {
    let mut out: Vec<MuxEvent> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(MuxEvent::Data(s, d)), MuxEvent::Data(t, more)) if s == t => d.extend_from_slice(more),
            _ => out.push(e.clone()),
        }
    }
    out
}

/// A frame sequence that is mostly well formed, to reach past the header checks.
fn frames_strategy() -> impl Strategy<Value = Vec<u8>> {
    let one = (0u8..5, 0u16..16, 0u32..8, prop_oneof![0u32..64, Just(DEFAULT_WINDOW), any::<u32>()], 0usize..64);
    prop::collection::vec(one, 0..40).prop_map(|frames| {
        let mut out = Vec::new();
        for (t, flags, stream, length, body) in frames {
            let mut h = Header { frame_type: FrameType::Data, flags, stream, length }.encode();
            h[1] = t;
            out.extend_from_slice(&h);
            if t == 0 {
                out.extend(pattern(body.min(length as usize), 9));
            }
        }
        out
    })
}

/// Feeds `bytes` in `splits`, with application calls in between; returns the events.
fn drive(role: Role, bytes: &[u8], splits: &[usize]) -> (Vec<MuxEvent>, Option<MuxError>) {
    let mut y = Yamux::new(role, YamuxConfig { keep_alive: Some(10), ..YamuxConfig::default() });
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = splits.get(i % splits.len().max(1)).copied().unwrap_or(rest.len()).clamp(1, rest.len());
        i += 1;
        if y.handle_bytes(i as Nanos, &rest[..n]).is_err() {
            break;
        }
        rest = &rest[n..];
        if let Ok(s) = y.open(i as Nanos) {
            let _ = y.send(i as Nanos, s, b"x");
        }
        y.handle_timeout(i as Nanos);
        while y.poll_transmit().is_some() {}
        while let Some(e) = y.poll_event() {
            if let MuxEvent::Opened(s) = e {
                let _ = y.send(0, s, b"reply");
            }
            events.push(e);
        }
    }
    while let Some(e) = y.poll_event() {
        events.push(e);
    }
    (events, y.error().cloned())
}

/// Feeds `bytes` in `splits` with no application call in between (so that the windows, and
/// hence what is valid, do not depend on the splits); returns the events.
fn feed_only(bytes: &[u8], splits: &[usize]) -> (Vec<MuxEvent>, Option<MuxError>) {
    let mut y = Yamux::new(Role::Server, YamuxConfig::default());
    let mut rest = bytes;
    for n in splits.iter().cycle() {
        let n = (*n).clamp(1, rest.len().max(1));
        if rest.is_empty() || y.handle_bytes(0, &rest[..n]).is_err() {
            break;
        }
        rest = &rest[n..];
    }
    let mut events = Vec::new();
    while let Some(e) = y.poll_event() {
        events.push(e);
    }
    (events, y.error().cloned())
}

proptest! {
    #[test]
    fn header_round_trips(t in 0u8..4, flags: u16, stream: u32, length: u32) {
        let mut b = [0u8; HEADER_LEN];
        b[1] = t;
        b[2..4].copy_from_slice(&flags.to_be_bytes());
        b[4..8].copy_from_slice(&stream.to_be_bytes());
        b[8..12].copy_from_slice(&length.to_be_bytes());
        let h = Header::decode(&b).unwrap();
        prop_assert_eq!(h.encode(), b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        splits in prop::collection::vec(1usize..64, 1..8),
        client: bool,
    ) {
        drive(if client { Role::Client } else { Role::Server }, &bytes, &splits);
    }

    #[test]
    fn arbitrary_frames_never_panic(
        bytes in frames_strategy(),
        splits in prop::collection::vec(1usize..64, 1..8),
        client: bool,
    ) {
        drive(if client { Role::Client } else { Role::Server }, &bytes, &splits);
    }

    #[test]
    fn splits_do_not_change_what_arrives(
        bytes in frames_strategy(),
        splits in prop::collection::vec(1usize..64, 1..8),
    ) {
        let (whole, whole_err) = feed_only(&bytes, &[usize::MAX]);
        let (split, split_err) = feed_only(&bytes, &splits);
        prop_assert_eq!(whole_err, split_err);
        prop_assert_eq!(normalised(&whole), normalised(&split));
    }

    #[test]
    fn pair_transfers_intact_in_any_split(
        sizes in prop::collection::vec(0usize..70_000, 1..4),
        splits in prop::collection::vec(1usize..5000, 1..6),
    ) {
        let mut p = Pair::new();
        p.splits = splits;
        let mut sent = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let s = p.a.open(0).unwrap();
            let data = pattern(*n, i as u8);
            p.a.send(0, s, &data).unwrap();
            p.a.close(0, s).unwrap();
            sent.push((s, data));
        }
        p.run().unwrap();
        for (s, data) in sent {
            prop_assert_eq!(data_of(&p.b_events, s), data);
            prop_assert!(p.b_events.contains(&MuxEvent::Closed(s)));
        }
    }
}

#[test]
fn a_drained_stream_keeps_little_room_after_a_large_message() {
    let mut p = Pair::new();
    let s = p.a.open(0).unwrap();
    p.a.send(0, s, &vec![5u8; 200 * KIB]).unwrap();
    p.run().unwrap();
    assert_eq!(data_of(&p.b_events, s).len(), 200 * KIB);
    let id = u32::try_from(s.0).unwrap();
    assert!(p.a.streams[&id].queue.capacity() <= IDLE_ROOM, "{}", p.a.streams[&id].queue.capacity());
}
