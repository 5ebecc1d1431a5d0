//! A direct host's network card: the TCP/IP stack ([`thermocline_net::stack`]) driven with the
//! host's simulated time after every packet and socket call, its transmissions put on the
//! simulated network (upload queue, the model's latency, jitter and loss, each path's packets
//! kept in order, then the receiver's download queue), and its next poll scheduled as a simulated-time event.

use crate::cx::{Cx, LOOPBACK_DELAY_NS};
use crate::host::Host;
use crate::inet6;
use crate::marks::StreamState;
use crate::timers::TimerKey;
use smoltcp::wire::{IpProtocol, Ipv4Packet};
use std::net::Ipv4Addr;
use thermocline_models::units::Bandwidth;
use thermocline_net::decide;

/// Poll host `h`'s stack at its current time: take in received packets, let the emulated sockets
/// see what changed (accepted connections, resets, readiness), send what is due, and schedule the
/// next poll.
pub(crate) fn poll(cx: &mut Cx) {
    for _ in 0..8 {
        let host = &mut *cx.host;
        if !host.net.has_stack() {
            return;
        }
        let outcome = host.net.poll(host.now);
        if outcome.changed {
            host.progress += 1;
        }
        for p in host.net.take_transmit() {
            transmit(cx, p);
        }
        if !outcome.again {
            break;
        }
    }
    settle_marks(&mut *cx.host);
    let host = &mut *cx.host;
    let now = host.now;
    let Some(at) = host.net.poll_timeout(now) else { return };
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
    let Host { marks, net, .. } = host;
    let Some(st) = net.stack_if_any() else {
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
    capture(host, &packet, Crossing::In);
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
/// the next poll; `false` if it was refused instead, with the RST sent back (see
/// [`thermocline_net::host::HostNet::take_segment`]).
pub(crate) fn take_segment(cx: &mut Cx, packet: Vec<u8>, native: bool) -> bool {
    let host = &mut *cx.host;
    match host.net.take_segment(packet, native, host.now) {
        Ok(()) => true,
        Err(rst) => {
            transmit(cx, rst);
            false
        }
    }
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
    let local = dst.is_loopback() || dst == host.ip;
    capture(host, &packet, if local { Crossing::Loopback } else { Crossing::Out });
    if local {
        cx.sched.push_loopback(cx.host, now + LOOPBACK_DELAY_NS, packet);
        return;
    }
    let Some(dst_host) = cx.sched.net().directory.host_of_ip(dst) else { return };
    let path = *cx.sched.net().path(cx.host.id, dst_host);
    let host = &mut *cx.host;
    // A packet leaves the NIC whether or not the network then loses it.
    let up = cx.sched.rules.up_bps(host.id, now, host.up_bps);
    let depart = host.uplink.transmit(now, packet.len() as u64, Bandwidth(up));
    let depart = host.shaping.depart(&cx.sched.rules, (host.id, dst_host), depart, packet.len() as u64);
    let Some(arrival) =
        decide(cx.sched.net(), &path, &cx.sched.rules, (host.id, dst_host), depart, false, &mut host.net_rng)
    else {
        return;
    };
    let arrival = host.in_order.arrive(dst_host, arrival);
    cx.sched.send_packet(cx.host, dst_host, arrival, packet);
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
    capture(host, bytes, if remote { Crossing::In } else { Crossing::LoopbackIn });
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
    host.net.deliver_datagram(bytes, native);
}

/// Where a packet crosses a host's interfaces, for its packet sockets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Sent out of `eth0`.
    Out,
    /// Received on `eth0`.
    In,
    /// Sent to the host itself, on `lo`.
    Loopback,
    /// Received from the host itself, on `lo`.
    LoopbackIn,
}

/// Copy packet `bytes` to host `host`'s packet sockets that take it (see [`crate::packet`]): on
/// the interface it crosses, and on each mirror interface whose rule copies it. Nothing to do
/// (and nothing parsed) while the host has no packet socket open.
pub(crate) fn capture(host: &mut Host, bytes: &[u8], crossing: Crossing) {
    if host.packet_sockets == 0 {
        return;
    }
    let unmarked = inet6::unmark(bytes);
    let bytes = unmarked.as_deref().unwrap_or(bytes);
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else { return };
    let outgoing = matches!(crossing, Crossing::Out | Crossing::Loopback);
    let pkttype = if outgoing { crate::packet::PACKET_OUTGOING } else { crate::packet::PACKET_HOST };
    let own = crate::packet::mac_of(host.ip);
    let peer = crate::packet::mac_of(if outgoing { ip.dst_addr() } else { ip.src_addr() });
    let mut interfaces = Vec::with_capacity(2);
    match crossing {
        Crossing::Loopback | Crossing::LoopbackIn => interfaces.push((1, [0; 6], [0; 6])),
        Crossing::Out | Crossing::In => {
            interfaces.push((2, own, peer));
            for (k, m) in host.mirrors.iter().enumerate() {
                if m.copies(bytes, outgoing) {
                    interfaces.push((crate::packet::FIRST_MIRROR_INDEX + k as i32, own, peer));
                }
            }
        }
    }
    let mut captured = false;
    for slot in host.objs.iter_mut().flatten() {
        let crate::host::Obj::Packet(s) = &mut slot.obj else { continue };
        for &(index, own, peer) in &interfaces {
            if s.takes(index, outgoing) {
                s.capture(index, pkttype, (own, peer), bytes);
                captured = true;
            }
        }
    }
    if captured {
        host.progress += 1;
    }
}
