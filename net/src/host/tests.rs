//! Socket rules of [`HostNet`] without a process or an engine: two hosts' tables exchange their
//! stacks' packets directly, in the manner of quinn's `Pair`.

use super::*;
use std::net::Ipv4Addr;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MS: u64 = 1_000_000;

type Pair = crate::pair::Pair<HostNet>;

fn pair() -> Pair {
    Pair::new(HostNet::new(A, 1), HostNet::new(B, 2), MS)
}

fn listener(net: &mut HostNet, port: u16, backlog: i32) -> TcpId {
    let id = net.tcp_socket(false);
    net.tcp_bind(id, Ipv4Addr::UNSPECIFIED, port, 0).unwrap();
    net.tcp_listen(id, backlog, 0).unwrap();
    id
}

#[test]
fn a_port_in_use_is_refused_unless_both_sockets_share_it_as_linux_allows() {
    let mut net = HostNet::new(A, 1);
    let first = net.tcp_socket(false);
    net.tcp_bind(first, Ipv4Addr::UNSPECIFIED, 80, 0).unwrap();
    let second = net.tcp_socket(false);
    assert_eq!(net.tcp_bind(second, A, 80, 0), Err(libc::EADDRINUSE));
    assert_eq!(net.tcp_bind(first, A, 81, 0), Err(libc::EINVAL), "bound already");
    assert_eq!(net.tcp_bind(second, Ipv4Addr::new(10, 9, 9, 9), 80, 0), Err(libc::EADDRNOTAVAIL));
    // SO_REUSEADDR on both, neither listening: shared.
    net.tcp_mut(first).reuseaddr = true;
    let (x, y) = (net.tcp_socket(false), net.tcp_socket(false));
    net.tcp_mut(x).reuseaddr = true;
    net.tcp_mut(y).reuseaddr = true;
    net.tcp_bind(x, Ipv4Addr::UNSPECIFIED, 90, 0).unwrap();
    net.tcp_bind(y, Ipv4Addr::UNSPECIFIED, 90, 0).unwrap();
    net.tcp_listen(x, 8, 0).unwrap();
    assert_eq!(net.tcp_listen(y, 8, 0), Err(libc::EADDRINUSE), "one listener per port without SO_REUSEPORT");
    // A closed socket's port is free again.
    net.tcp_close(x, 0);
    net.tcp_listen(y, 8, 0).unwrap();
}

#[test]
fn ephemeral_ports_are_distinct_and_shared_by_tcp_and_udp_counters() {
    let mut net = HostNet::new(A, 1);
    let t = net.tcp_socket(false);
    net.tcp_bind(t, Ipv4Addr::UNSPECIFIED, 0, 0).unwrap();
    let u = net.udp_socket(false);
    net.udp_bind(u, Ipv4Addr::UNSPECIFIED, 0).unwrap();
    let (tp, up) = (net.tcp_ref(t).local.unwrap().1, net.udp_ref(u).local.unwrap().1);
    assert!(tp >= EPHEMERAL && up >= EPHEMERAL && tp != up);
    let v = net.udp_socket(false);
    assert_eq!(net.udp_bind(v, Ipv4Addr::UNSPECIFIED, up), Err(libc::EADDRINUSE));
    net.udp_close(u);
    net.udp_bind(v, Ipv4Addr::UNSPECIFIED, up).unwrap();
}

#[test]
fn a_connection_is_queued_on_the_listener_and_accepted_with_its_options() {
    let mut p = pair();
    let l = listener(&mut p.b, 7000, 4);
    p.b.tcp_mut(l).nodelay = true;
    let c = p.a.tcp_socket(false);
    p.a.tcp_connect(c, B, 7000, false, 0).unwrap();
    assert_eq!(p.b.tcp_accept(l, 0), Err(libc::EAGAIN), "nothing queued yet");
    p.run(10 * MS);
    let (flow, native) = p.b.tcp_next_accept(l, p.now).unwrap().expect("a queued connection");
    assert_eq!(flow.0, (B, 7000));
    assert_eq!(flow.1.0, A);
    assert!(!native);
    assert!(p.b.tcp_ref(l).wakeups.readable > 0, "the listener's readers were woken");
    let conn = p.b.tcp_accept(l, p.now).unwrap();
    assert!(p.b.tcp_ref(conn).nodelay, "the listener's options carry over");
    assert_eq!(p.b.tcp_ref(conn).peer, Some(flow.1));
    assert_eq!(p.b.tcp_accept(l, p.now), Err(libc::EAGAIN));
    assert!(p.a.tcp_ref(c).was_connected);
}

#[test]
fn a_dial_to_a_port_nobody_listens_on_fails_with_econnrefused() {
    let mut p = pair();
    let c = p.a.tcp_socket(false);
    p.a.tcp_connect(c, B, 7001, false, 0).unwrap();
    p.run(10 * MS);
    assert_eq!(p.a.tcp_ref(c).error, Some(libc::ECONNREFUSED));
    assert!(p.a.tcp_ready(c, p.now) & libc::POLLERR != 0);
}

#[test]
fn connect_refuses_what_the_simulation_cannot_reach() {
    let mut net = HostNet::new(A, 1);
    let c = net.tcp_socket(false);
    assert_eq!(net.tcp_connect(c, Ipv4Addr::new(192, 168, 1, 1), 80, false, 0), Err(libc::ENETUNREACH));
    assert_eq!(net.tcp_connect(c, B, 0, false, 0), Err(libc::ECONNREFUSED));
}

#[test]
fn a_burst_of_dials_beyond_the_pool_is_queued_up_to_the_backlog() {
    let mut p = pair();
    let l = listener(&mut p.b, 7002, 64);
    let dials: Vec<TcpId> = (0..3 * LISTEN_POOL)
        .map(|_| {
            let c = p.a.tcp_socket(false);
            p.a.tcp_connect(c, B, 7002, false, 0).unwrap();
            c
        })
        .collect();
    p.run(100 * MS);
    let mut accepted = 0;
    while p.b.tcp_accept(l, p.now).is_ok() {
        accepted += 1;
    }
    let refused = dials.iter().filter(|&&c| p.a.tcp_ref(c).error.is_some()).count();
    assert_eq!(accepted + refused, dials.len());
    assert!(accepted >= LISTEN_POOL, "at least a pool's worth gets through at once: {accepted}");
}

#[test]
fn a_datagram_goes_to_the_socket_bound_to_its_port() {
    let mut p = pair();
    let rx = p.b.udp_socket(false);
    p.b.udp_bind(rx, Ipv4Addr::UNSPECIFIED, 9000).unwrap();
    let bytes = crate::udp::encode((A, 5000), (B, 9000), b"ping");
    assert_eq!(p.b.deliver_datagram(&bytes, false), Some(rx));
    assert_eq!(p.b.udp_mut(rx).dequeue(false).unwrap().data, b"ping");
    let stray = crate::udp::encode((A, 5000), (B, 9001), b"lost");
    assert_eq!(p.b.deliver_datagram(&stray, false), None, "nobody holds 9001");
    p.b.udp_close(rx);
    assert_eq!(p.b.deliver_datagram(&bytes, false), None, "closed");
}

#[test]
fn a_v6only_listener_refuses_an_ipv4_connection_request_with_an_rst() {
    let mut p = pair();
    let l = p.b.tcp_socket(true);
    p.b.tcp_mut(l).inet6.as_mut().unwrap().v6only = true;
    p.b.tcp_bind(l, Ipv4Addr::UNSPECIFIED, 7003, 0).unwrap();
    p.b.tcp_listen(l, 4, 0).unwrap();
    let c = p.a.tcp_socket(false);
    p.a.tcp_connect(c, B, 7003, false, 0).unwrap();
    p.run(10 * MS);
    assert_eq!(p.a.tcp_ref(c).error, Some(libc::ECONNREFUSED));
    assert_eq!(p.b.tcp_accept(l, p.now), Err(libc::EAGAIN));
}

#[test]
fn writes_reads_shutdown_and_reset_follow_linux_nonblocking_semantics() {
    let mut p = pair();
    let l = listener(&mut p.b, 7000, 4);
    let c = p.a.tcp_socket(false);
    p.a.tcp_connect(c, B, 7000, false, 0).unwrap();
    assert_eq!(p.a.tcp_send(c, b"early", 0), Err(libc::EAGAIN), "the handshake is not over");
    p.run(10 * MS);
    let s = p.b.tcp_accept(l, p.now).unwrap();
    let mut got = Vec::new();
    assert_eq!(p.b.tcp_recv(s, &mut got, p.now), Err(libc::EAGAIN), "nothing waits yet");
    assert_eq!(p.a.tcp_send(c, b"hello", p.now), Ok(5));
    p.run(p.now + 10 * MS);
    assert_eq!(p.b.tcp_recv(s, &mut got, p.now), Ok(5));
    assert_eq!(got, b"hello");
    // A full send buffer takes nothing and says so.
    p.a.tcp_mut(c).sndbuf_set = true;
    let big = vec![7u8; 1 << 22];
    let first = p.a.tcp_send(c, &big, p.now).unwrap();
    assert!(first > 0 && first < big.len(), "a partial write: {first}");
    assert_eq!(p.a.tcp_send(c, &big, p.now), Err(libc::EAGAIN));
    assert!(p.a.tcp_ref(c).nospace, "a writer that found no room waits for it");
    assert_eq!(p.a.tcp_shutdown(c, 7, p.now), Err(libc::EINVAL));
    p.a.tcp_shutdown(c, libc::SHUT_WR, p.now).unwrap();
    assert_eq!(p.a.tcp_send(c, b"x", p.now), Err(libc::EPIPE), "writing is shut");
    p.run(p.now + 2_000 * MS);
    let mut rest = Vec::new();
    while p.b.tcp_recv(s, &mut rest, p.now).is_ok_and(|n| n > 0) {
        p.run(p.now + 100 * MS);
    }
    assert_eq!(rest.len(), first, "every byte written before the FIN arrives");
    assert_eq!(p.b.tcp_recv(s, &mut rest, p.now), Ok(0), "then the end of the stream");
    // The other side resets: the next read reports it once.
    p.b.tcp_abort(s, p.now);
    p.run(p.now + 10 * MS);
    assert_eq!(p.a.tcp_recv(c, &mut Vec::new(), p.now), Err(libc::ECONNRESET));
    let fresh = p.a.tcp_socket(false);
    assert_eq!(p.a.tcp_shutdown(fresh, libc::SHUT_RDWR, p.now), Err(libc::ENOTCONN));
}
