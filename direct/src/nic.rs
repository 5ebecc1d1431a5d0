//! A direct host's network card: the TCP/IP stack ([`thermocline_net::stack`]) driven with the
//! host's simulated time after every packet and socket call, its transmissions put on the
//! simulated network (upload queue, the model's latency, jitter and loss, each path's packets
//! kept in order, then the receiver's download queue), and its next poll scheduled as a simulated-time event.

use crate::cx::{Cx, LOOPBACK_DELAY_NS};
use crate::host::{Host, Obj, ObjSlot};
use crate::inet6;
use crate::inet6::{FlowKey, Inet6};
use crate::marks::StreamState;
use crate::tcp::{
    LISTEN_POOL, Listener, Phase, Seen, mask, new_stack_socket, send_buffer, synchronised, v4, wakeups_between,
};
use crate::timers::TimerKey;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpListenEndpoint};
use smoltcp::wire::{IpProtocol, Ipv4Packet};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use thermocline_models::units::Bandwidth;
use thermocline_net::decide;
use thermocline_net::stack::TcpStack;
use thermocline_net::stack::{PortOwner, PortUse};
use thermocline_net::udp_ports::Arrival;

/// Poll host `h`'s stack at its current time: take in received packets, let the emulated sockets
/// see what changed (accepted connections, resets, readiness), send what is due, and schedule the
/// next poll.
pub(crate) fn poll(cx: &mut Cx) {
    for _ in 0..8 {
        let host = &mut *cx.host;
        let now = host.now;
        let Some(st) = host.tcp.as_deref_mut() else { return };
        st.run(now);
        let again = after_poll(host);
        let out = host.tcp.as_deref_mut().map(TcpStack::take_tx).unwrap_or_default();
        for mut p in out {
            let flows = &cx.host.v6_flows;
            if !flows.is_empty() && inet6::tuple(&p).is_some_and(|t| flows.contains(&t)) {
                inet6::mark(&mut p);
            }
            transmit(cx, p);
        }
        if !again {
            break;
        }
    }
    settle_marks(&mut *cx.host);
    let host = &mut *cx.host;
    let now = host.now;
    let Some(st) = host.tcp.as_deref_mut() else { return };
    let Some(at) = st.next_poll(now) else { return };
    if host.timers.due(TimerKey::TcpPoll).is_some_and(|t| t <= at && t > now) {
        return;
    }
    cx.sched.schedule_tcp_poll(cx.host, at);
}

/// Settles host `host`'s waiting stream marks against its stack at its current time (see
/// [`crate::marks`]): a connection the program closed counts as gone.
pub(crate) fn settle_marks(host: &mut Host) {
    if !host.marks.waiting() {
        return;
    }
    let now = host.now;
    let Host { marks, tcp, .. } = host;
    let Some(st) = tcp.as_deref_mut() else {
        marks.settle(now, |_, _| None);
        return;
    };
    marks.settle(now, |local, remote| {
        let hd = st.find((*local.ip(), local.port()), (*remote.ip(), remote.port()))?;
        if st.orphans.contains(&hd) {
            return None;
        }
        let open = st.socket(hd).may_recv();
        Some(StreamState { delivered: st.delivered(hd), open })
    });
}

/// Receive interrupt coalescing (`[network] rx_coalesce`): packet `packet` reached host `host`'s
/// card (captured now, at its arrival), which holds it until the window ends. A packet that
/// finds no window open opens one of `window` ns, whose end is returned (the caller schedules
/// the flush then); later ones join it. Like a NIC's `rx-usecs` interrupt moderation, the window
/// is counted from the first packet, so no packet waits longer than `window`, and what arrives
/// at the end's instant after the flush opens the next window.
pub(crate) fn hold(host: &mut Host, packet: Vec<u8>, window: u64) -> Option<u64> {
    if let Some(p) = host.pcap.as_mut() {
        p.record(host.now, &packet);
    }
    host.rx.hold(host.now, packet, window)
}

/// The window of host `host`'s card ends: the packets it held, in arrival order.
pub(crate) fn flush(host: &mut Host) -> Vec<Vec<u8>> {
    host.rx.flush()
}

/// A TCP packet reached host `h`, of an IPv6 flow if `native` (it was marked): hand it to the
/// stack ([`take_segment`]) and poll.
pub(crate) fn receive(cx: &mut Cx, packet: &[u8], native: bool) {
    if take_segment(cx, packet.to_vec(), native) {
        poll(cx);
    }
}

/// Put TCP packet `packet` (unmarked; of an IPv6 flow if `native`) into host `h`'s stack, for
/// the next poll; `false` if it was refused instead. A connection request notes the flow's
/// family, and is refused with an RST when listeners have its port but none takes its family
/// (an `IPV6_V6ONLY` listener and an IPv4 peer, an `AF_INET` listener and an IPv6 peer), as
/// Linux refuses it.
pub(crate) fn take_segment(cx: &mut Cx, packet: Vec<u8>, native: bool) -> bool {
    let host = &mut *cx.host;
    if (native || host.has_inet6 || !host.v6_flows.is_empty())
        && let Some(s) = inet6::syn(&packet)
    {
        note_flow(host, (s.dst, s.src), native);
        if refused(host, &s, native) {
            let mut rst = inet6::refusal(&s);
            if native {
                inet6::mark(&mut rst);
            }
            transmit(cx, rst);
            return false;
        }
    }
    cx.host.stack().push_rx(packet);
    true
}

/// Record whether the TCP connection `(local, remote)` of `host` is an IPv6 flow (`native`).
/// Entries of connections the stack no longer has are dropped now and then (whenever the set
/// reaches a power of two from 1,024 up), so the set stays as large as the live connections.
pub(crate) fn note_flow(host: &mut Host, key: inet6::FlowKey, native: bool) {
    if !native {
        host.v6_flows.remove(&key);
        return;
    }
    let n = host.v6_flows.len();
    if n >= 1024 && n.is_power_of_two() {
        let flows = std::mem::take(&mut host.v6_flows);
        let st = host.stack();
        let live = flows.into_iter().filter(|&(l, r)| st.find(l, r).is_some()).collect();
        host.v6_flows = live;
    }
    host.v6_flows.insert(key);
}

/// Whether `host` refuses connection request `s` because listeners have its port but none takes
/// its family.
fn refused(host: &Host, s: &inet6::Syn, native: bool) -> bool {
    let mut listeners = host.objs.iter().flatten().filter_map(|slot| match &slot.obj {
        Obj::Tcp(t) if matches!(t.phase, Phase::Listening(_)) => {
            let (ip, port) = t.local?;
            (port == s.dst.1 && (ip.is_unspecified() || ip == s.dst.0)).then_some(slot.inet6.as_ref())
        }
        _ => None,
    });
    let mut any = false;
    for six in listeners.by_ref() {
        any = true;
        if six.map_or(!native, |six| six.takes(native)) {
            return false;
        }
    }
    any
}

/// Send an IPv4 packet from host `h` over the simulated network (or back to the host itself for
/// loopback and its own address), recording it in the host's capture. Packets to no host are
/// lost; packets to surrogate identities reach the identity's engine as events.
pub(crate) fn transmit(cx: &mut Cx, packet: Vec<u8>) {
    let Ok(ip) = Ipv4Packet::new_checked(&packet[..]) else { return };
    let dst: Ipv4Addr = ip.dst_addr();
    let host = &mut *cx.host;
    let now = host.now;
    if let Some(p) = host.pcap.as_mut() {
        p.record(now, &packet);
    }
    if dst.is_loopback() || dst == host.ip {
        cx.sched.push_loopback(cx.host, now + LOOPBACK_DELAY_NS, packet);
        return;
    }
    let Some(dst_host) = cx.sched.net().directory.host_of_ip(dst) else { return };
    let path = *cx.sched.net().path(cx.host.id, dst_host);
    let host = &mut *cx.host;
    // A packet leaves the NIC whether or not the network then loses it.
    let depart = host.uplink.transmit(now, packet.len() as u64, Bandwidth(host.up_bps));
    let Some(arrival) = decide(&path, &cx.sched.rules, (host.id, dst_host), depart, false, &mut host.net_rng) else {
        return;
    };
    let arrival = host.in_order.arrive(dst_host, arrival);
    cx.sched.send_packet(cx.host, dst_host, arrival, packet);
}

/// After a poll of the stack: finish orphaned connections, refill listening pools and move
/// established connections to accept queues, turn resets and timeouts into pending errors, and
/// count readiness changes. Returns whether the stack has something new to send.
pub(crate) fn after_poll(host: &mut Host) -> bool {
    let mut again = false;
    let mut changed = false;
    let Host { objs, tcp, v6_flows, .. } = &mut *host;
    let Some(st) = tcp.as_deref_mut() else { return false };
    let mut misfits = Vec::new();
    let mut orphans = std::mem::take(&mut st.orphans);
    orphans.retain(|&hd| {
        let t = st.socket(hd);
        if t.state() == State::Closed && t.remote_endpoint().is_none() {
            st.remove(hd);
            st.ports.retain(|p| p.owner != PortOwner::Conn(hd));
            false
        } else {
            // Linux answers data for a closed descriptor with an RST.
            if t.recv_queue() > 0 && t.state() != State::Closed {
                st.abort(hd);
                again = true;
            }
            true
        }
    });
    st.orphans = orphans;
    let resets = std::mem::take(&mut st.resets);
    for slot in objs.iter_mut() {
        let Some(ObjSlot { obj: Obj::Tcp(s), inet6, .. }) = slot else { continue };
        let mut queued = 0;
        let mut arrivals = 0;
        let mut rx = 0;
        let mut state = None;
        match &mut s.phase {
            Phase::Fresh => {}
            Phase::Listening(l) => {
                let reuse = (s.reuseaddr, s.reuseport);
                let six = inet6.as_ref();
                let fams = six.map_or((true, false), Inet6::families);
                let mut pool = std::mem::take(&mut l.pool);
                // A connection whose family this listener does not take (another listener on the
                // port does, or the request would have been refused) goes to that listener.
                pool.retain(|&hd| {
                    let t = st.socket(hd);
                    if matches!(t.state(), State::Listen | State::Closed) {
                        return true;
                    }
                    let Some(m) = stray(t, six, v6_flows) else { return true };
                    misfits.push((hd, m));
                    false
                });
                pool.retain(|&hd| match st.socket(hd).state() {
                    State::Listen | State::SynReceived => true,
                    State::Closed => {
                        st.remove(hd);
                        false
                    }
                    _ => {
                        let t = st.socket(hd);
                        let local = t.local_endpoint().map_or(Ipv4Addr::UNSPECIFIED, |e| v4(e.addr));
                        let port = t.local_endpoint().map_or(0, |e| e.port);
                        st.ports.push(PortUse {
                            port,
                            ip: local,
                            owner: PortOwner::Conn(hd),
                            reuseaddr: reuse.0,
                            reuseport: reuse.1,
                            listening: false,
                            families: fams,
                        });
                        l.queue.push_back(hd);
                        arrivals += 1;
                        false
                    }
                });
                l.pool = pool;
                let listening = l.pool.iter().filter(|&&hd| st.socket(hd).state() == State::Listen).count();
                let room = (l.backlog + 1).saturating_sub(l.queue.len()).min(LISTEN_POOL);
                if let Some((ip, port)) = s.local {
                    for _ in listening..room {
                        let mut t = new_stack_socket(s);
                        let addr = (!ip.is_unspecified()).then_some(IpAddress::Ipv4(ip));
                        if t.listen(IpListenEndpoint { addr, port }).is_ok() {
                            let hd = st.add(t);
                            st.set_send_buffer(hd, send_buffer(s));
                            let Phase::Listening(l) = &mut s.phase else { unreachable!() };
                            l.pool.push(hd);
                        }
                    }
                }
                let Phase::Listening(l) = &s.phase else { unreachable!() };
                queued = l.queue.len();
            }
            &mut Phase::Open(hd) => {
                let t = st.socket(hd);
                let now_state = t.state();
                rx = t.recv_queue();
                state = Some(now_state);
                if synchronised(now_state) && !s.was_connected {
                    s.was_connected = true;
                    t.set_timeout(None);
                }
                if let Some(&(_, before)) = resets.iter().find(|(h, _)| *h == hd) {
                    s.error = Some(match before {
                        State::SynSent | State::SynReceived => libc::ECONNREFUSED,
                        State::CloseWait => libc::EPIPE,
                        _ => libc::ECONNRESET,
                    });
                } else if now_state == State::Closed
                    && s.error.is_none()
                    && s.seen.state.is_some_and(|b| b != State::Closed && b != State::TimeWait && b != State::LastAck)
                {
                    s.error = Some(libc::ETIMEDOUT);
                }
            }
        }
        let m = mask(s, st);
        let now = Seen { mask: m, rx, queued, state };
        let (w, nospace) = wakeups_between(s.seen, now, arrivals, s.nospace);
        s.wakeups.readable += w.readable;
        s.wakeups.writable += w.writable;
        s.wakeups.all += w.all;
        s.nospace = nospace;
        // Blocked calls are retried on any change (they look at the levels themselves).
        if m != s.seen.mask || rx > s.seen.rx || queued > s.seen.queued || state != s.seen.state {
            changed = true;
        }
        s.seen = now;
    }
    for (hd, (local, native)) in misfits {
        match home(objs, local, native) {
            Some(l) => l.pool.push(hd),
            None => {
                st.abort(hd);
                st.orphans.push(hd);
            }
        }
        again = true;
    }
    if changed {
        host.progress += 1;
    }
    again
}

/// If connection `t`, taken by a listener with IPv6 side `six`, is of a family that listener
/// does not take: its local endpoint, and whether it is an IPv6 flow.
fn stray(
    t: &tcp::Socket<'static>,
    six: Option<&Inet6>,
    v6_flows: &BTreeSet<FlowKey>,
) -> Option<((Ipv4Addr, u16), bool)> {
    let local = t.local_endpoint().map(|l| (v4(l.addr), l.port))?;
    let remote = t.remote_endpoint().map(|r| (v4(r.addr), r.port))?;
    let native = v6_flows.contains(&(local, remote));
    let takes = six.map_or(!native, |six| six.takes(native));
    (!takes).then_some((local, native))
}

/// The listener among `objs` that takes a connection to `local` of this family (`native`: IPv6).
fn home(objs: &mut [Option<ObjSlot>], local: (Ipv4Addr, u16), native: bool) -> Option<&mut Listener> {
    objs.iter_mut().flatten().find_map(|slot| match slot {
        ObjSlot { obj: Obj::Tcp(s), inet6, .. }
            if s.local.is_some_and(|(ip, port)| port == local.1 && (ip.is_unspecified() || ip == local.0))
                && inet6.as_ref().map_or(!native, |six| six.takes(native)) =>
        {
            match &mut s.phase {
                Phase::Listening(l) => Some(l),
                _ => None,
            }
        }
        _ => None,
    })
}

/// A packet has reached host `h` (from another host, `remote`, or from itself): a TCP segment
/// goes to the host's stack; a datagram's payload is queued on the UDP socket bound to its port,
/// if any, and if that socket takes its family (an IPv6 flow's packets are marked, see
/// [`crate::inet6`]). Bad packets are dropped (they cannot come from this simulator's own
/// encoders).
pub(crate) fn deliver_packet(cx: &mut Cx, bytes: &[u8], remote: bool) {
    let host = &mut *cx.host;
    if remote && let Some(p) = host.pcap.as_mut() {
        p.record(host.now, bytes);
    }
    host.progress += 1;
    let unmarked = inet6::unmark(bytes);
    let native = unmarked.is_some();
    let bytes = unmarked.as_deref().unwrap_or(bytes);
    if is_tcp(bytes) {
        receive(cx, bytes, native);
        return;
    }
    deliver_datagram(&mut *cx.host, bytes, native);
}

/// Whether IPv4 packet `bytes` carries TCP.
fn is_tcp(bytes: &[u8]) -> bool {
    Ipv4Packet::new_checked(bytes).is_ok_and(|p| p.next_header() == IpProtocol::Tcp)
}

/// Packets host `h`'s card held for its receive coalescing window (already captured), handed to
/// its sockets together: datagrams queued in order, TCP segments taken in by one poll of the
/// stack.
pub(crate) fn deliver_held(cx: &mut Cx, packets: Vec<Vec<u8>>) {
    let mut segments = false;
    for bytes in packets {
        cx.host.progress += 1;
        let (bytes, native) = match inet6::unmark(&bytes) {
            Some(unmarked) => (unmarked, true),
            None => (bytes, false),
        };
        if is_tcp(&bytes) {
            segments |= take_segment(cx, bytes, native);
        } else {
            deliver_datagram(&mut *cx.host, &bytes, native);
        }
    }
    if segments {
        poll(cx);
    }
}

/// A UDP datagram (IPv4 packet `bytes`, unmarked; of an IPv6 flow if `native`) reached host
/// `host`: queue it on the socket Linux's lookup picks among those holding its port.
fn deliver_datagram(host: &mut Host, bytes: &[u8], native: bool) {
    let Ok(p) = thermocline_net::udp::decode(bytes) else { return };
    let arrival = Arrival { src: p.src, dst: p.dst, v6: native };
    let objs = &host.objs;
    let peer_of = |obj: usize| match objs.get(obj) {
        Some(Some(ObjSlot { obj: Obj::Udp(s), .. })) => s.peer,
        _ => None,
    };
    let Some(obj) = host.udp_ports.lookup(arrival, peer_of) else { return };
    let Some(Some(ObjSlot { obj: Obj::Udp(s), .. })) = host.objs.get_mut(obj) else { return };
    s.enqueue(thermocline_net::udp::Datagram { src: p.src, data: p.payload, v6: native });
}
