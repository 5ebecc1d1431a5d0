//! Interop against an independent implementation: the `yamux` crate at the version rust-libp2p
//! 0.57.1 runs (0.14.1, through libp2p-yamux 0.48), polled by hand with a no-op waker over an
//! in-memory duplex, in both roles. Each side opens a stream and sends 1 MiB on it then closes;
//! the side that accepts answers with 1 MiB of its own and closes. The yamux crate pings on
//! its own (RTT measurement), which this side must answer exactly, and this side's keep-alive
//! pings must be answered by it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use futures::task::noop_waker;

use super::*;

const MIB: usize = 1024 * 1024;

fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One end of an in-memory duplex: reads what the other end wrote.
struct Pipe {
    inbox: Rc<RefCell<VecDeque<u8>>>,
    outbox: Rc<RefCell<VecDeque<u8>>>,
}

impl AsyncRead for Pipe {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.is_empty() {
            return Poll::Pending;
        }
        let n = buf.len().min(inbox.len());
        for (b, x) in buf.iter_mut().zip(inbox.drain(..n)) {
            *b = x;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.outbox.borrow_mut().extend(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A stream on the yamux crate's side: what it must send and what it got.
struct TheirStream {
    stream: yamux::Stream,
    out: Vec<u8>,
    written: usize,
    closed: bool,
    got: Vec<u8>,
    eof: bool,
}

impl TheirStream {
    fn new(stream: yamux::Stream, out: Vec<u8>) -> TheirStream {
        TheirStream { stream, out, written: 0, closed: false, got: Vec::new(), eof: false }
    }

    /// Writes, closes and reads as far as the stream lets; true if anything happened.
    fn step(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while self.written < self.out.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => panic!("yamux crate write failed: {e}"),
                Poll::Pending => break,
            }
            progress = true;
        }
        if self.written == self.out.len()
            && !self.closed
            && let Poll::Ready(r) = Pin::new(&mut self.stream).poll_close(cx)
        {
            r.expect("yamux crate close");
            self.closed = true;
            progress = true;
        }
        let mut buf = [0u8; 65536];
        while !self.eof {
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
                Poll::Ready(Err(e)) => panic!("yamux crate read failed: {e}"),
                Poll::Pending => break,
            }
            progress = true;
        }
        progress
    }
}

/// The yamux crate's end.
struct Theirs {
    conn: yamux::Connection<Pipe>,
    opened: bool,
    streams: Vec<TheirStream>,
    ended: bool,
}

impl Theirs {
    fn step(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if !self.opened
            && let Poll::Ready(r) = self.conn.poll_new_outbound(cx)
        {
            self.streams.push(TheirStream::new(r.expect("yamux crate opens"), payload(MIB, 1)));
            self.opened = true;
            progress = true;
        }
        while !self.ended {
            match self.conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => self.streams.push(TheirStream::new(s, payload(MIB, 2))),
                Poll::Ready(Some(Err(yamux::ConnectionError::Closed)) | None) => self.ended = true,
                Poll::Ready(Some(Err(e))) => panic!("yamux crate connection failed: {e}"),
                Poll::Pending => break,
            }
            progress = true;
        }
        for s in &mut self.streams {
            progress |= s.step(cx);
        }
        progress
    }

    fn done(&self) -> bool {
        self.streams.len() == 2 && self.streams.iter().all(|s| s.eof && s.closed)
    }
}

/// This crate's end: per stream, what arrived and whether the peer closed it.
struct Ours {
    yamux: Yamux,
    inbox: Rc<RefCell<VecDeque<u8>>>,
    outbox: Rc<RefCell<VecDeque<u8>>>,
    got: HashMap<StreamId, (Vec<u8>, bool)>,
    go_away: bool,
    now: Nanos,
}

impl Ours {
    fn step(&mut self) -> bool {
        self.now += 1_000;
        self.yamux.handle_timeout(self.now);
        let input: Vec<u8> = self.inbox.borrow_mut().drain(..).collect();
        let mut progress = !input.is_empty();
        self.yamux.handle_bytes(self.now, &input).expect("our side accepts the yamux crate's bytes");
        while let Some(e) = self.yamux.poll_event() {
            progress = true;
            match e {
                MuxEvent::Opened(s) => {
                    self.yamux.send(self.now, s, &payload(MIB, 3)).unwrap();
                    self.yamux.close(self.now, s).unwrap();
                }
                MuxEvent::Data(s, d) => self.got.entry(s).or_default().0.extend(d),
                MuxEvent::Closed(s) => self.got.entry(s).or_default().1 = true,
                MuxEvent::Reset(s) => panic!("the yamux crate reset {s:?}"),
                MuxEvent::GoAway => self.go_away = true,
            }
        }
        while let Some(out) = self.yamux.poll_transmit() {
            progress = true;
            self.outbox.borrow_mut().extend(out);
        }
        progress
    }
}

/// Runs the exchange with this side in `role` and `config` (keep-alive set here); `they_close`
/// picks who ends the session.
fn exchange(role: Role, config: YamuxConfig, they_close: bool) {
    let (a, b) = (Rc::new(RefCell::new(VecDeque::new())), Rc::new(RefCell::new(VecDeque::new())));
    let mode = if role == Role::Client { yamux::Mode::Server } else { yamux::Mode::Client };
    let pipe = Pipe { inbox: a.clone(), outbox: b.clone() };
    let mut theirs = Theirs {
        conn: yamux::Connection::new(pipe, yamux::Config::default(), mode),
        opened: false,
        streams: vec![],
        ended: false,
    };
    let config = YamuxConfig { keep_alive: Some(3_000), ..config };
    let mut ours =
        Ours { yamux: Yamux::new(role, config), inbox: b, outbox: a, got: HashMap::new(), go_away: false, now: 0 };
    let ours_id = ours.yamux.open(0).unwrap();
    ours.yamux.send(0, ours_id, &payload(MIB, 4)).unwrap();
    ours.yamux.close(0, ours_id).unwrap();

    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut idle = 0;
    while !(theirs.done() && ours.got.len() == 2 && ours.got.values().all(|(_, fin)| *fin)) {
        let progress = theirs.step(&mut cx) | ours.step();
        idle = if progress { 0 } else { idle + 1 };
        assert!(idle < 100, "stalled: ours {:?}", ours.got.values().map(|(d, f)| (d.len(), *f)).collect::<Vec<_>>());
    }
    let (ours_out, theirs_out) = if role == Role::Client { (0, 1) } else { (1, 0) };
    // The crate's streams: the one it opened comes first.
    assert_eq!(theirs.streams[0].got, payload(MIB, 3), "our answer on the crate's stream");
    assert_eq!(theirs.streams[1].got, payload(MIB, 4), "our stream's data");
    let their_id = *ours.got.keys().find(|k| **k != ours_id).unwrap();
    assert_eq!(ours.got[&their_id].0, payload(MIB, 1), "the crate's stream's data");
    assert_eq!(ours.got[&ours_id].0, payload(MIB, 2), "the crate's answer on our stream");
    assert_eq!((ours_id.0 % 2, their_id.0 % 2), (1 - ours_out, 1 - theirs_out), "parity by role");
    assert_eq!(ours.yamux.open_streams(), 0, "all streams forgotten");
    assert!(ours.yamux.rtt().is_some(), "the crate answered our keep-alive ping");

    if they_close {
        let mut closed = false;
        for _ in 0..100 {
            closed |= theirs.conn.poll_close(&mut cx).is_ready();
            ours.step();
        }
        assert!(closed && ours.go_away);
        assert_eq!(ours.yamux.remote_go_away(), Some(GoAwayCode::Normal));
    } else {
        ours.yamux.go_away(ours.now);
        for _ in 0..100 {
            ours.step();
            theirs.step(&mut cx);
        }
        assert!(theirs.ended, "the crate saw our go-away");
    }
}

#[test]
fn we_dial_the_yamux_crate() {
    exchange(Role::Client, YamuxConfig::default(), true);
}

#[test]
fn the_yamux_crate_dials_us() {
    exchange(Role::Server, YamuxConfig::default(), false);
}

#[test]
fn larger_windows_and_frames_with_the_yamux_crate() {
    let big = YamuxConfig { receive_window: 4 * MIB as u32, max_frame_payload: 1 << 20, ..YamuxConfig::default() };
    exchange(Role::Client, big.clone(), false);
    exchange(Role::Server, big, true);
}
