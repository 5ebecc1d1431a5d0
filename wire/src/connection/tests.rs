//! Two connections back to back (quinn's `Pair` style): bytes move between them in chosen
//! pieces until neither has anything to say.

use super::*;
use crate::gossipsub::{Control, Graft, Message, SubOpts};

fn key(i: u8) -> Keypair {
    Keypair::ed25519_from_secret([i; 32])
}

struct Pair {
    dialer: Connection,
    listener: Connection,
    events: (Vec<ConnEvent>, Vec<ConnEvent>),
}

impl Pair {
    fn new(dialer_muxers: Vec<MuxKind>, listener_muxers: Vec<MuxKind>) -> Pair {
        let config = |muxers| Arc::new(ConnConfig { muxers, ..ConnConfig::default() });
        let dialer =
            Connection::dial(key(1), [1; 32], Some(key(2).peer_id()), config(dialer_muxers), Addresses::default());
        let listener = Connection::accept(key(2), [2; 32], config(listener_muxers), Addresses::default());
        Pair { dialer, listener, events: (Vec::new(), Vec::new()) }
    }

    /// Moves bytes both ways in pieces of `piece` until quiet; returns whether either failed.
    fn run(&mut self, piece: usize) -> Result<(), ConnError> {
        for _ in 0..10_000 {
            let a = self.dialer.poll_transmit();
            let b = self.listener.poll_transmit();
            if a.is_none() && b.is_none() {
                break;
            }
            for chunk in a.unwrap_or_default().chunks(piece) {
                self.listener.handle_bytes(0, chunk)?;
            }
            for chunk in b.unwrap_or_default().chunks(piece) {
                self.dialer.handle_bytes(0, chunk)?;
            }
        }
        self.events.0.extend(std::iter::from_fn(|| self.dialer.poll_event()));
        self.events.1.extend(std::iter::from_fn(|| self.listener.poll_event()));
        Ok(())
    }

    fn rpcs(events: &[ConnEvent]) -> Vec<&Rpc> {
        events.iter().filter_map(|e| if let ConnEvent::Rpc(r) = e { Some(r) } else { None }).collect()
    }
}

fn hello(topic: &str, data: usize) -> Rpc {
    Rpc {
        subscriptions: vec![SubOpts { subscribe: true, topic: topic.into() }],
        publish: vec![Message { data: vec![7; data], topic: topic.into(), ..Message::default() }],
        control: Some(Control { graft: vec![Graft { topic: topic.into() }], ..Control::default() }),
    }
}

#[test]
fn both_sides_authenticate_agree_on_a_muxer_and_exchange_rpcs_in_any_split() {
    for muxer in [MuxKind::Yamux, MuxKind::Mplex] {
        for piece in [1, 7, 1000, usize::MAX] {
            let mut p = Pair::new(vec![muxer], vec![MuxKind::Yamux, MuxKind::Mplex]);
            // Sent before anything is agreed: it waits for the gossipsub stream.
            p.dialer.send_rpc(0, &hello("a", 300_000)).unwrap();
            p.run(piece).unwrap();
            p.listener.send_rpc(0, &hello("b", 10)).unwrap();
            p.run(piece).unwrap();
            assert_eq!(p.events.0[0], ConnEvent::Established { peer: key(2).peer_id() });
            assert_eq!(p.events.1[0], ConnEvent::Established { peer: key(1).peer_id() });
            assert!(p.events.0.contains(&ConnEvent::Ready { muxer }));
            assert_eq!(Pair::rpcs(&p.events.1), [&hello("a", 300_000)], "{muxer:?} piece {piece}");
            assert_eq!(Pair::rpcs(&p.events.0), [&hello("b", 10)]);
        }
    }
}

#[test]
fn a_listener_without_the_dialers_muxer_fails_the_negotiation() {
    let mut p = Pair::new(vec![MuxKind::Mplex], vec![MuxKind::Yamux]);
    let r = p.run(usize::MAX);
    assert!(matches!(r, Err(ConnError::Negotiation { layer: "muxer", .. })), "{r:?}");
    assert!(p.dialer.is_failed());
    assert!(!p.events.1.iter().any(|e| matches!(e, ConnEvent::Ready { .. })));
}

#[test]
fn a_dial_to_the_wrong_peer_fails() {
    let config = Arc::new(ConnConfig::default());
    let mut dialer = Connection::dial(key(1), [1; 32], Some(key(3).peer_id()), config.clone(), Addresses::default());
    let mut listener = Connection::accept(key(2), [2; 32], config, Addresses::default());
    let mut failed = false;
    for _ in 0..10 {
        if let Some(b) = dialer.poll_transmit() {
            let _ = listener.handle_bytes(0, &b);
        }
        if let Some(b) = listener.poll_transmit() {
            failed |= dialer.handle_bytes(0, &b).is_err();
        }
    }
    assert!(failed && dialer.is_failed());
    assert_eq!(dialer.send_rpc(0, &Rpc::default()), Err(ConnError::Closed));
}

#[test]
fn the_same_seeds_give_the_same_bytes() {
    let transcript = || {
        let mut p = Pair::new(vec![MuxKind::Yamux], vec![MuxKind::Yamux]);
        let mut bytes = Vec::new();
        p.dialer.send_rpc(0, &hello("a", 50)).unwrap();
        for _ in 0..20 {
            let a = p.dialer.poll_transmit().unwrap_or_default();
            let b = p.listener.poll_transmit().unwrap_or_default();
            p.listener.handle_bytes(0, &a).unwrap();
            p.dialer.handle_bytes(0, &b).unwrap();
            bytes.extend(a);
            bytes.extend(b);
        }
        bytes
    };
    let first = transcript();
    assert!(first.len() > 500);
    assert_eq!(first, transcript());
}

#[test]
fn garbage_from_the_peer_fails_the_connection_and_it_stays_failed() {
    let mut d = Connection::accept(key(2), [2; 32], Arc::new(ConnConfig::default()), Addresses::default());
    assert!(d.handle_bytes(0, &[0xff; 40]).is_err());
    assert!(d.is_failed());
    assert_eq!(d.handle_bytes(0, b"x"), Err(ConnError::Closed));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..8)) {
        let mut c = Connection::accept(key(2), [2; 32], Arc::new(ConnConfig::default()), Addresses::default());
        for chunk in chunks {
            let _ = c.handle_bytes(0, &chunk);
            let _ = c.poll_transmit();
            while c.poll_event().is_some() {}
        }
    }
}

/// The listener's marks (tag, wire offset), and for each RPC the dialer read, its first topic and
/// the listener's wire offset at which it became readable.
type Fed = (Vec<(u64, u64)>, Vec<(String, u64)>);

/// Moves bytes both ways until quiet, the listener's to the dialer one byte at a time.
fn feed_bytewise(p: &mut Pair, wire: &mut u64) -> Fed {
    let (mut marks, mut read) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        marks.extend(std::iter::from_fn(|| p.listener.poll_mark()));
        let a = p.dialer.poll_transmit();
        let b = p.listener.poll_transmit();
        if a.is_none() && b.is_none() {
            break;
        }
        for byte in b.unwrap_or_default() {
            p.dialer.handle_bytes(0, &[byte]).unwrap();
            *wire += 1;
            while let Some(e) = p.dialer.poll_event() {
                if let ConnEvent::Rpc(r) = e {
                    read.push((r.publish[0].topic.clone(), *wire));
                }
            }
        }
        p.listener.handle_bytes(0, &a.unwrap_or_default()).unwrap();
    }
    (marks, read)
}

#[test]
fn a_marked_rpc_is_marked_exactly_where_the_peer_can_first_read_it() {
    for muxer in [MuxKind::Yamux, MuxKind::Mplex] {
        let mut p = Pair::new(vec![muxer], vec![muxer]);
        // Before anything is agreed, and larger than a yamux window: it waits, then leaves in
        // parts as the dialer grants window; the next ones queue behind it.
        p.listener.send_rpc_marked(0, &hello("a", 300_000), 1).unwrap();
        p.listener.send_rpc(0, &hello("b", 10)).unwrap();
        p.listener.send_rpc_marked(0, &hello("c", 70_000), 2).unwrap();
        let mut wire = 0;
        let (marks, read) = feed_bytewise(&mut p, &mut wire);
        let at = |read: &[(String, u64)], t: &str| read.iter().find(|(x, _)| x == t).unwrap().1;
        assert_eq!(marks, [(1, at(&read, "a")), (2, at(&read, "c"))], "{muxer:?}: {read:?}");
        // Once the stream is agreed: two that leave in one batch, the first ending in its first
        // Noise message, the second in its second.
        p.listener.send_rpc_marked(0, &hello("d", 65_000), 3).unwrap();
        p.listener.send_rpc_marked(0, &hello("e", 2_000), 4).unwrap();
        let (marks, read) = feed_bytewise(&mut p, &mut wire);
        assert_eq!(marks, [(3, at(&read, "d")), (4, at(&read, "e"))], "{muxer:?}: {read:?}");
    }
}

#[test]
fn requests_are_read_to_the_end_answered_and_refused_protocols_reported() {
    for muxer in [MuxKind::Yamux, MuxKind::Mplex] {
        let mut p = Pair::new(vec![muxer], vec![muxer]);
        p.listener = Connection::accept(
            key(2),
            [2; 32],
            Arc::new(ConnConfig {
                muxers: vec![muxer],
                request_protocols: vec!["/req/echo/1".into()],
                max_request_bytes: 100_000,
                ..ConnConfig::default()
            }),
            Addresses::default(),
        );
        assert!(p.dialer.request(0, "/req/echo/1", vec![1]).is_err(), "no muxer yet");
        p.run(5).unwrap();
        assert!(p.events.0.iter().any(|e| matches!(e, ConnEvent::Ready { .. })), "the muxer is agreed");
        let asked = p.dialer.request(0, "/req/echo/1", vec![9; 70_000]).unwrap();
        let refused = p.dialer.request(0, "/req/unknown/1", vec![1, 2]).unwrap();
        p.run(1000).unwrap();
        let (stream, body) = p
            .events
            .1
            .iter()
            .find_map(|e| match e {
                ConnEvent::Request { stream, protocol, body } if protocol == "/req/echo/1" => {
                    Some((*stream, body.clone()))
                }
                _ => None,
            })
            .expect("the request was handed up once the dialer closed its side");
        assert_eq!(body, vec![9; 70_000], "{muxer:?}");
        p.listener.respond(0, stream, b"answer").unwrap();
        // A second answer on the same stream is ignored.
        p.listener.respond(0, stream, b"again").unwrap();
        p.run(1000).unwrap();
        assert!(
            p.events.0.contains(&ConnEvent::Response { stream: asked, body: Some(b"answer".to_vec()) }),
            "{muxer:?}"
        );
        assert!(p.events.0.contains(&ConnEvent::Response { stream: refused, body: None }), "{muxer:?}");
        // A request over the limit resets the stream: the requester hears nothing but the reset.
        let big = p.dialer.request(0, "/req/echo/1", vec![0; 100_001]).unwrap();
        p.run(1000).unwrap();
        assert!(p.events.0.contains(&ConnEvent::Response { stream: big, body: None }), "{muxer:?}");
        assert!(!p.dialer.is_failed() && !p.listener.is_failed());
    }
}
