//! Our mplex against rust-libp2p's (`libp2p-mplex` 0.44, the version for libp2p 0.57.1),
//! driven through its `StreamMuxer` implementation on an in-memory duplex: streams opened from
//! each side, data both ways, half-close, a 1 MiB transfer (their 8 KiB frames), resets.

mod mem_duplex;

use std::collections::BTreeMap;

use futures::future::poll_fn;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_core::muxing::StreamMuxerExt;
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use mem_duplex::{Ours, pair, run};
use thermocline_wire::mplex::{Mplex, MplexConfig, PROTOCOL};
use thermocline_wire::mux::{MuxEvent, Muxer, StreamId};

/// Our side: the session and what it saw, per stream.
struct Side {
    mux: Mplex,
    opened: Vec<StreamId>,
    data: BTreeMap<StreamId, Vec<u8>>,
    closed: Vec<StreamId>,
    reset: Vec<StreamId>,
}

impl Side {
    fn new() -> Self {
        Self {
            mux: Mplex::new(MplexConfig::default()),
            opened: Vec::new(),
            data: BTreeMap::new(),
            closed: Vec::new(),
            reset: Vec::new(),
        }
    }

    /// Moves bytes between the pipe and the session; says whether anything moved.
    fn pump(&mut self, pipe: &Ours) -> bool {
        let incoming = pipe.take();
        let mut moved = !incoming.is_empty();
        self.mux.handle_bytes(0, &incoming).unwrap();
        while let Some(event) = self.mux.poll_event() {
            match event {
                MuxEvent::Opened(id) => self.opened.push(id),
                MuxEvent::Data(id, bytes) => self.data.entry(id).or_default().extend(bytes),
                MuxEvent::Closed(id) => self.closed.push(id),
                MuxEvent::Reset(id) => self.reset.push(id),
                MuxEvent::GoAway => panic!("mplex has no go-away"),
            }
        }
        if let Some(bytes) = self.mux.poll_transmit() {
            pipe.push(&bytes);
            moved = true;
        }
        moved
    }
}

#[test]
fn our_stream_to_their_muxer() {
    let (ours, pipe) = pair();
    let mut side = Side::new();
    let s = side.mux.open(0).unwrap();
    side.mux.send(0, s, b"hello").unwrap();
    side.mux.close(0, s).unwrap();
    let got = run(
        async move {
            let mut muxer = libp2p_mplex::Config::new().upgrade_inbound(pipe, PROTOCOL).await.unwrap();
            let mut stream = poll_fn(|cx| muxer.poll_inbound_unpin(cx)).await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            stream.write_all(b"world").await.unwrap();
            stream.close().await.unwrap();
            got
        },
        || side.pump(&ours),
    );
    assert_eq!(got, b"hello");
    assert_eq!(side.data[&s], b"world");
    assert_eq!(side.closed, [s]);
    assert_eq!(side.mux.open_streams(), 0);
}

#[test]
fn their_streams_to_us_with_a_mib_each_way() {
    let (ours, pipe) = pair();
    let mut side = Side::new();
    let payload: Vec<u8> = (0..(1 << 20) + 5).map(|i| (i % 253) as u8).collect();
    let expected = payload.clone();
    let mut answered = Vec::new();
    let replies = run(
        async move {
            let mut muxer = libp2p_mplex::Config::new().upgrade_outbound(pipe, PROTOCOL).await.unwrap();
            let mut replies = Vec::new();
            for _ in 0..2 {
                let mut stream = poll_fn(|cx| muxer.poll_outbound_unpin(cx)).await.unwrap();
                stream.write_all(&payload).await.unwrap();
                stream.close().await.unwrap();
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).await.unwrap();
                replies.push(reply);
            }
            replies
        },
        || {
            let moved = side.pump(&ours);
            // Echo each stream back once the peer has closed it, then close ours.
            for &id in &side.closed {
                if !answered.contains(&id) {
                    answered.push(id);
                    side.mux.send(0, id, &side.data[&id]).unwrap();
                    side.mux.close(0, id).unwrap();
                }
            }
            side.pump(&ours) || moved
        },
    );
    assert_eq!(replies, [expected.clone(), expected.clone()]);
    assert_eq!(side.opened, [StreamId(0), StreamId(1)]);
    assert_eq!(side.data[&StreamId(1)], expected);
    assert_eq!(side.mux.open_streams(), 0);
}

#[test]
fn both_sides_open_at_once() {
    let (ours, pipe) = pair();
    let mut side = Side::new();
    let mine = side.mux.open(0).unwrap();
    side.mux.send(0, mine, b"ours").unwrap();
    side.mux.close(0, mine).unwrap();
    let mut replied = false;
    let (from_us, reply) = run(
        async move {
            let mut muxer = libp2p_mplex::Config::new().upgrade_outbound(pipe, PROTOCOL).await.unwrap();
            let mut out = poll_fn(|cx| muxer.poll_outbound_unpin(cx)).await.unwrap();
            out.write_all(b"theirs").await.unwrap();
            out.close().await.unwrap();
            let mut inbound = poll_fn(|cx| muxer.poll_inbound_unpin(cx)).await.unwrap();
            let mut from_us = Vec::new();
            inbound.read_to_end(&mut from_us).await.unwrap();
            inbound.close().await.unwrap();
            let mut reply = Vec::new();
            out.read_to_end(&mut reply).await.unwrap();
            (from_us, reply)
        },
        || {
            let moved = side.pump(&ours);
            if let Some(&theirs) = side.opened.first()
                && side.closed.contains(&theirs)
                && !replied
            {
                replied = true;
                side.mux.send(0, theirs, b"reply").unwrap();
                side.mux.close(0, theirs).unwrap();
                side.pump(&ours);
                return true;
            }
            moved
        },
    );
    assert_eq!(from_us, b"ours");
    assert_eq!(reply, b"reply");
    // Both sides' stream 0 on the wire, two different streams here.
    let theirs = side.opened[0];
    assert_ne!(theirs, mine);
    assert_eq!(side.data[&theirs], b"theirs");
}

#[test]
fn our_reset_reaches_their_stream() {
    let (ours, pipe) = pair();
    let mut side = Side::new();
    let s = side.mux.open(0).unwrap();
    side.mux.send(0, s, b"partial").unwrap();
    side.mux.reset(0, s).unwrap();
    let write_failed = run(
        async move {
            let mut muxer = libp2p_mplex::Config::new().upgrade_inbound(pipe, PROTOCOL).await.unwrap();
            let mut stream = poll_fn(|cx| muxer.poll_inbound_unpin(cx)).await.unwrap();
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got).await;
            stream.write_all(b"too late").await.is_err()
        },
        || side.pump(&ours),
    );
    assert!(write_failed, "their stream must be unusable after our reset");
    assert_eq!(side.mux.open_streams(), 0);
}

#[test]
fn their_reset_reaches_us() {
    let (ours, pipe) = pair();
    let mut side = Side::new();
    run(
        async move {
            let mut muxer = libp2p_mplex::Config::new().upgrade_outbound(pipe, PROTOCOL).await.unwrap();
            let mut first = poll_fn(|cx| muxer.poll_outbound_unpin(cx)).await.unwrap();
            first.write_all(b"x").await.unwrap();
            first.flush().await.unwrap();
            // Dropping an open substream resets it; the frame goes out with the next one.
            drop(first);
            let mut second = poll_fn(|cx| muxer.poll_outbound_unpin(cx)).await.unwrap();
            second.write_all(b"y").await.unwrap();
            second.flush().await.unwrap();
        },
        || side.pump(&ours),
    );
    side.pump(&ours);
    assert_eq!(side.opened, [StreamId(0), StreamId(1)]);
    assert_eq!(side.data[&StreamId(0)], b"x");
    assert_eq!(side.reset, [StreamId(0)]);
    assert_eq!(side.mux.open_streams(), 1);
}
