//! The shard's timeline of direct-host events and its way out to the bus: what a handler uses to
//! arm a host's timers and send its packets, without the engine. The engine owns the
//! [`Scheduler`], executes what it pops, and hands what leaves the shard to the bus.

use crate::host::Host;
use crate::timers::TimerKey;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use thermocline_bus::{Event, HostId, ShardId, SimTime};
use thermocline_models::directory::HostKind;
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;
use thermocline_net::Rules;

/// Bus event kind of an IPv4 packet between hosts.
pub(crate) const PACKET_EVENT_KIND: u16 = thermocline_bus::kinds::PACKET;
/// Bus event kind of a stream mark from a boundary identity (see [`crate::marks`]).
pub(crate) const MARK_EVENT_KIND: u16 = thermocline_bus::kinds::HOT_MARK;

/// What an event does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    /// Start process `0` of the host.
    Start(usize),
    /// Send signal `1` to process `0` of the host (its `stop` time), if it still runs.
    Stop(usize, i32),
    /// Timer `key` of the host fires, if `generation` is still its current arming (see
    /// [`crate::timers`]).
    Timer { key: TimerKey, generation: u64 },
    /// An IPv4 packet reaches the host's interface.
    Arrive(Bytes),
    /// An IPv4 packet has been downloaded and goes to the host's sockets.
    Deliver(Bytes),
    /// An IPv4 packet the host sent to itself (loopback or its own address).
    Loopback(Bytes),
    /// A boundary identity's stream mark reaches the host.
    Mark(Bytes),
    /// The host's receive coalescing window ends: what its card holds goes to its sockets.
    RxFlush,
    /// Step `0` of the host's runbook is due (see [`crate::ops`]).
    OpBegin(usize),
    /// Step `0` of the host's runbook has a timer (grace period or timeout) due.
    OpTimer(usize),
    /// Traffic source `0` of the host sends its next datagram.
    SourceSend(usize),
}

/// An event of the queue, ordered by the bus's canonical key (time, source host, source
/// sequence number, destination host).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pending {
    /// When it happens, ns.
    pub time: u64,
    /// The host that caused it.
    pub src: u32,
    /// Its number among the events `src` caused.
    pub seq: u64,
    /// The host it happens to.
    pub dst: u32,
    /// What it does.
    pub action: Action,
}

/// The event queue of one shard's direct hosts, and where packets go: into the queue for a
/// direct host of this shard, out to the bus for anyone else.
pub(crate) struct Scheduler {
    queue: BinaryHeap<Reverse<Pending>>,
    outgoing: Vec<(ShardId, Event)>,
    me: ShardId,
    partition: Partition,
    net: NetworkModel,
    /// Rules on top of the network model (partitions, extra delay or loss), applied at departure.
    pub rules: Rules,
}

impl Scheduler {
    /// An empty timeline for shard `me`.
    pub fn new(me: ShardId, partition: Partition, net: NetworkModel) -> Self {
        Scheduler { queue: BinaryHeap::new(), outgoing: Vec::new(), me, partition, net, rules: Rules::default() }
    }

    /// The network model (for routing packets).
    pub fn net(&self) -> &NetworkModel {
        &self.net
    }

    /// Queue `p`.
    pub fn push(&mut self, p: Pending) {
        self.queue.push(Reverse(p));
    }

    /// The next event, if any.
    pub fn peek(&self) -> Option<&Pending> {
        self.queue.peek().map(|Reverse(p)| p)
    }

    /// Take the next event.
    pub fn pop(&mut self) -> Option<Pending> {
        self.queue.pop().map(|Reverse(p)| p)
    }

    /// What left the shard since the last call, with the shard each event goes to.
    pub fn take_outgoing(&mut self) -> std::vec::Drain<'_, (ShardId, Event)> {
        self.outgoing.drain(..)
    }

    /// Queue `action` for `host` itself at `time`.
    pub fn push_local(&mut self, host: &mut Host, time: u64, action: Action) {
        let seq = host.next_seq();
        let id = host.id;
        self.push(Pending { time, src: id, seq, dst: id, action });
    }

    /// Arm `host`'s timer `key` to fire at `at` (replacing an earlier arming, whose event will
    /// be stale) and queue its event.
    pub fn arm(&mut self, host: &mut Host, key: TimerKey, at: u64) {
        let generation = host.timers.arm(key, at);
        self.push_local(host, at, Action::Timer { key, generation });
    }

    /// Queue a packet for `host` itself (loopback), delivered to its sockets at `time`.
    pub fn push_loopback(&mut self, host: &mut Host, time: u64, packet: Vec<u8>) {
        self.push_local(host, time, Action::Loopback(Bytes::from(packet)));
    }

    /// Poll `host`'s TCP/IP stack at `time`, replacing any later scheduled poll.
    pub fn schedule_tcp_poll(&mut self, host: &mut Host, time: u64) {
        self.arm(host, TimerKey::TcpPoll, time);
    }

    /// Arm task `vid`'s `ITIMER_REAL` timer on `host` to fire at `at` (then every `interval`).
    pub fn set_alarm(&mut self, host: &mut Host, vid: u32, at: u64, interval: u64) {
        if let Some(t) = host.tasks.get_mut(&vid) {
            t.alarm_interval = interval;
        }
        self.arm(host, TimerKey::Alarm(vid), at);
    }

    /// Send an IPv4 packet from `host` to host `dst` (already checked to exist), to be delivered
    /// at `time`: into this queue for a direct host of this shard, and as a bus event otherwise
    /// (another shard, or a surrogate identity, which another engine holds even on this shard).
    pub fn send_packet(&mut self, host: &mut Host, dst: u32, time: u64, packet: Vec<u8>) {
        let seq = host.next_seq();
        let src = host.id;
        let to = self.partition.shard_of(dst);
        if to == self.me && self.net.directory.kind_of(dst) == HostKind::Direct {
            self.push(Pending { time, src, seq, dst, action: Action::Arrive(Bytes::from(packet)) });
        } else {
            let event = Event {
                deliver_time: SimTime::from_nanos(time),
                src_host: HostId(src),
                src_seq: seq,
                dst_host: HostId(dst),
                kind: PACKET_EVENT_KIND,
                payload: Bytes::from(packet),
            };
            self.outgoing.push((to, event));
        }
    }
}
