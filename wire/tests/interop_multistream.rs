//! Our multistream-select against rust-libp2p's (`multistream-select` 0.14, as libp2p 0.57.1
//! uses): their dialer (V1 and V1Lazy) against our listener, our dialer (plain and lazy)
//! against their listener, each followed by application bytes both ways.

mod mem_duplex;

use futures::{AsyncReadExt, AsyncWriteExt};
use mem_duplex::{Ours, Theirs, pair, run};
use multistream_select::{NegotiationError, Version, dialer_select_proto, listener_select_proto};
use thermocline_wire::multistream::{Multistream, MultistreamEvent};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Our side of a test: the negotiation, then the application bytes it passed on.
struct Side {
    ms: Multistream,
    agreed: Option<String>,
    refused: bool,
    confirmed: bool,
    app_in: Vec<u8>,
}

impl Side {
    fn new(ms: Multistream) -> Self {
        Self { ms, agreed: None, refused: false, confirmed: false, app_in: Vec::new() }
    }

    /// Moves bytes between the pipe and the negotiation (or, once it is over, `app_in`);
    /// sends `reply` once `expect` has arrived. Says whether anything moved.
    fn pump(&mut self, pipe: &Ours, expect: &[u8], reply: &mut Option<&[u8]>) -> bool {
        let incoming = pipe.take();
        let mut moved = !incoming.is_empty();
        if self.ms.wants_bytes() {
            if !incoming.is_empty() {
                self.ms.handle_bytes(&incoming).unwrap();
            }
        } else {
            self.app_in.extend_from_slice(&incoming);
        }
        while let Some(event) = self.ms.poll_event() {
            match event {
                MultistreamEvent::Agreed { protocol, rest } => {
                    self.agreed = Some(protocol);
                    self.app_in.extend(rest);
                }
                MultistreamEvent::Confirmed { rest } => {
                    self.confirmed = true;
                    self.app_in.extend(rest);
                }
                MultistreamEvent::Refused => self.refused = true,
            }
        }
        if let Some(bytes) = self.ms.poll_transmit() {
            pipe.push(&bytes);
            moved = true;
        }
        if self.agreed.is_some()
            && self.app_in == expect
            && let Some(r) = reply.take()
        {
            pipe.push(r);
            moved = true;
        }
        moved
    }
}

fn their_dialer_against_our_listener(version: Version, theirs: &'static [&'static str]) -> (Side, &'static str) {
    let (ours, pipe) = pair();
    let mut side = Side::new(Multistream::listener(names(&["/b", "/a"])).unwrap());
    let mut reply = Some(&b"world"[..]);
    let proto = run(
        async move {
            let (proto, mut io) = dialer_select_proto(pipe, theirs.iter().copied(), version).await.unwrap();
            io.write_all(b"hello").await.unwrap();
            io.flush().await.unwrap();
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"world");
            proto
        },
        || side.pump(&ours, b"hello", &mut reply),
    );
    (side, proto)
}

#[test]
fn their_v1_dialer_against_our_listener() {
    let (side, proto) = their_dialer_against_our_listener(Version::V1, &["/x", "/y", "/a"]);
    assert_eq!(proto, "/a");
    assert_eq!(side.agreed.as_deref(), Some("/a"));
    assert_eq!(side.app_in, b"hello");
}

#[test]
fn their_lazy_dialer_against_our_listener() {
    let (ours, pipe) = pair();
    let mut side = Side::new(Multistream::listener(names(&["/a"])).unwrap());
    let mut first = None;
    let proto = run(
        async move {
            let (proto, mut io) = dialer_select_proto(pipe, ["/a"], Version::V1Lazy).await.unwrap();
            io.write_all(b"hello").await.unwrap();
            io.flush().await.unwrap();
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"world");
            proto
        },
        || {
            let moved = side.pump(&ours, b"hello", &mut Some(b"world"));
            first.get_or_insert_with(|| side.app_in.clone());
            moved
        },
    );
    assert_eq!(proto, "/a");
    assert_eq!(side.agreed.as_deref(), Some("/a"));
    // Header, proposal and application bytes came in one write: the bytes after the proposal
    // were in the agreement's `rest`.
    assert_eq!(first.as_deref(), Some(&b"hello"[..]));
}

#[test]
fn their_dialer_refused_by_our_listener() {
    // V1 fails the negotiation; V1Lazy settles on its last proposal at once and fails on the
    // first read, when it finds our `na`.
    for version in [Version::V1, Version::V1Lazy] {
        let (ours, pipe) = pair();
        let mut side = Side::new(Multistream::listener(names(&["/a"])).unwrap());
        let failed = run(
            async move {
                match dialer_select_proto(pipe, ["/x", "/y"], version).await {
                    Err(NegotiationError::Failed) => true,
                    Err(other) => panic!("{other:?}"),
                    Ok((_, mut io)) => io.read(&mut [0u8; 1]).await.is_err(),
                }
            },
            || side.pump(&ours, b"", &mut None),
        );
        assert!(failed, "{version:?}");
        assert_eq!(side.agreed, None);
    }
}

/// Their listener agrees on one of `protocols`, reads `ping` and answers `pong`; returns the
/// protocol agreed.
async fn listen_ping_pong(pipe: Theirs, protocols: [&'static str; 2]) -> &'static str {
    let (proto, mut io) = listener_select_proto(pipe, protocols).await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    io.write_all(b"pong").await.unwrap();
    io.flush().await.unwrap();
    proto
}

#[test]
fn our_dialer_against_their_listener() {
    let (ours, pipe) = pair();
    let mut side = Side::new(Multistream::dialer(names(&["/x", "/c", "/a"])).unwrap());
    let mut reply = Some(&b"ping"[..]);
    let proto = run(listen_ping_pong(pipe, ["/a", "/c"]), || side.pump(&ours, b"", &mut reply));
    assert_eq!(proto, "/c");
    assert_eq!(side.agreed.as_deref(), Some("/c"));
    assert_eq!(side.app_in, b"pong");
}

#[test]
fn our_dialer_refused_by_their_listener() {
    let (ours, pipe) = pair();
    let mut side = Side::new(Multistream::dialer(names(&["/x", "/y"])).unwrap());
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = done.clone();
    // Their listener waits for more proposals; it ends when we close the stream.
    let result = run(async move { listener_select_proto(pipe, ["/a"]).await.map(|(p, _)| p) }, || {
        let moved = side.pump(&ours, b"", &mut None);
        if side.refused && !flag.get() {
            flag.set(true);
            ours.close();
            return true;
        }
        moved
    });
    assert!(done.get());
    assert!(matches!(result, Err(NegotiationError::Failed)), "{result:?}");
}

#[test]
fn our_lazy_dialer_against_their_listener() {
    let (ours, pipe) = pair();
    let mut side = Side::new(Multistream::dialer_lazy("/a".into()).unwrap());
    // Agreed at once: send the application bytes right behind the proposal.
    let mut first = side.ms.poll_transmit().unwrap();
    first.extend_from_slice(b"ping");
    ours.push(&first);
    let proto = run(listen_ping_pong(pipe, ["/b", "/a"]), || side.pump(&ours, b"", &mut None));
    assert_eq!(proto, "/a");
    assert_eq!(side.agreed.as_deref(), Some("/a"));
    assert!(side.confirmed);
    assert_eq!(side.app_in, b"pong");
}
