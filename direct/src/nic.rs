//! A direct host's network card: the TCP/IP stack ([`thermocline_net::stack`]) driven with the
//! host's simulated time after every packet and socket call, its transmissions put on the
//! simulated network (upload queue, the model's latency, jitter and loss, each path's packets
//! kept in order, then the receiver's download queue), and its next poll scheduled as a simulated-time event.

use crate::engine::{DirectEngine, LOOPBACK_DELAY_NS};
use crate::host::{Host, Obj};
use crate::inet6;
use crate::marks::StreamState;
use crate::tcp::Phase;
use smoltcp::wire::Ipv4Packet;
use std::net::Ipv4Addr;
use thermocline_models::units::Bandwidth;
use thermocline_net::decide;
use thermocline_net::stack::TcpStack;

/// The stack of host `h`, created on first use.
pub(crate) fn stack(host: &mut Host) -> &mut TcpStack {
    let (ip, seed, now) = (host.ip, host.tcp_seed, host.now);
    host.tcp.get_or_insert_with(|| Box::new(TcpStack::new(ip, seed, now)))
}

/// Poll host `h`'s stack at its current time: take in received packets, let the emulated sockets
/// see what changed (accepted connections, resets, readiness), send what is due, and schedule the
/// next poll.
pub(crate) fn poll(e: &mut DirectEngine, h: usize) {
    for _ in 0..8 {
        let host = &mut e.hosts[h];
        let now = host.now;
        let Some(st) = host.tcp.as_deref_mut() else { return };
        st.run(now);
        let again = crate::tcp::after_poll(host);
        let out = host.tcp.as_deref_mut().map(TcpStack::take_tx).unwrap_or_default();
        for mut p in out {
            let flows = &e.hosts[h].v6_flows;
            if !flows.is_empty() && inet6::tuple(&p).is_some_and(|t| flows.contains(&t)) {
                inet6::mark(&mut p);
            }
            transmit(e, h, p);
        }
        if !again {
            break;
        }
    }
    settle_marks(&mut e.hosts[h]);
    let host = &mut e.hosts[h];
    let now = host.now;
    let Some(st) = host.tcp.as_deref_mut() else { return };
    let Some(at) = st.next_poll(now) else { return };
    if st.timer.is_some_and(|(t, _)| t <= at && t > now) {
        return;
    }
    e.schedule_tcp_poll(h, at);
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

/// A card's receive coalescing: the packets it holds and when its open window ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxCoalescer {
    held: Vec<Vec<u8>>,
    end: Option<u64>,
}

impl RxCoalescer {
    /// Hold `packet`, arrived at `now`; if no window is open, open one of `window` ns and return
    /// its end.
    pub fn hold(&mut self, now: u64, packet: Vec<u8>, window: u64) -> Option<u64> {
        self.held.push(packet);
        if self.end.is_some() {
            return None;
        }
        let end = now.saturating_add(window);
        self.end = Some(end);
        Some(end)
    }

    /// The window ends: what was held, in arrival order; the next packet opens a new window.
    pub fn flush(&mut self) -> Vec<Vec<u8>> {
        self.end = None;
        std::mem::take(&mut self.held)
    }
}

/// A TCP packet reached host `h`, of an IPv6 flow if `native` (it was marked): hand it to the
/// stack ([`take_segment`]) and poll.
pub(crate) fn receive(e: &mut DirectEngine, h: usize, packet: &[u8], native: bool) {
    if take_segment(e, h, packet.to_vec(), native) {
        poll(e, h);
    }
}

/// Put TCP packet `packet` (unmarked; of an IPv6 flow if `native`) into host `h`'s stack, for
/// the next poll; `false` if it was refused instead. A connection request notes the flow's
/// family, and is refused with an RST when listeners have its port but none takes its family
/// (an `IPV6_V6ONLY` listener and an IPv4 peer, an `AF_INET` listener and an IPv6 peer), as
/// Linux refuses it.
pub(crate) fn take_segment(e: &mut DirectEngine, h: usize, packet: Vec<u8>, native: bool) -> bool {
    let host = &mut e.hosts[h];
    if (native || host.has_inet6 || !host.v6_flows.is_empty())
        && let Some(s) = inet6::syn(&packet)
    {
        note_flow(host, (s.dst, s.src), native);
        if refused(host, &s, native) {
            let mut rst = inet6::refusal(&s);
            if native {
                inet6::mark(&mut rst);
            }
            transmit(e, h, rst);
            return false;
        }
    }
    stack(&mut e.hosts[h]).push_rx(packet);
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
        let st = stack(host);
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
pub(crate) fn transmit(e: &mut DirectEngine, h: usize, packet: Vec<u8>) {
    let Ok(ip) = Ipv4Packet::new_checked(&packet[..]) else { return };
    let dst: Ipv4Addr = ip.dst_addr();
    let host = &mut e.hosts[h];
    let now = host.now;
    if let Some(p) = host.pcap.as_mut() {
        p.record(now, &packet);
    }
    if dst.is_loopback() || dst == host.ip {
        e.push_loopback(h, now + LOOPBACK_DELAY_NS, packet);
        return;
    }
    let Some(dst_host) = e.net().directory.host_of_ip(dst) else { return };
    let path = *e.net().path(e.hosts[h].id, dst_host);
    let host = &mut e.hosts[h];
    // A packet leaves the NIC whether or not the network then loses it.
    let depart = host.uplink.transmit(now, packet.len() as u64, Bandwidth(host.up_bps));
    let Some(arrival) = decide(&path, &e.rules, (host.id, dst_host), depart, false, &mut host.net_rng) else { return };
    let arrival = host.in_order.arrive(dst_host, arrival);
    e.send_packet(h, dst_host, arrival, packet);
}

#[cfg(test)]
mod tests {
    use super::RxCoalescer;

    #[test]
    fn a_window_opens_at_the_first_packet_and_hands_over_everything_at_its_end() {
        let mut rx = RxCoalescer::default();
        assert_eq!(rx.hold(1_000, vec![1], 50_000), Some(51_000), "the first packet opens a window");
        assert_eq!(rx.hold(1_240, vec![2], 50_000), None, "later ones join it");
        assert_eq!(rx.hold(51_000, vec![3], 50_000), None, "up to its end");
        assert_eq!(rx.flush(), vec![vec![1], vec![2], vec![3]], "in arrival order");
        assert_eq!(rx.flush(), Vec::<Vec<u8>>::new());
        assert_eq!(rx.hold(51_000, vec![4], 50_000), Some(101_000), "after the flush, a new window");
    }
}
