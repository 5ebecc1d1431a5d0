//! Linux's TCP timing rules, applied by the stack's driver over smoltcp's public API: the
//! sender's congestion window (initial window of 10 segments, RFC 6928; slow start by bytes
//! acknowledged; restart from the initial window after an idle retransmission timeout,
//! `tcp_slow_start_after_idle = 1`; CUBIC's decrease on loss) and the receiver's ACK clock
//! (quick-ACK mode for the first segments and after idle, then a delayed ACK of at least 40 ms
//! that adapts to the arrival interval, as `tcp_event_data_recv` and `tcp_send_delayed_ack`).
//! Sans-IO: every call gives the simulated time in ns.

/// Linux's initial congestion window, segments (`TCP_INIT_CWND`, RFC 6928).
pub const INIT_CWND: usize = 10;
/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`), ns.
pub const RTO_MIN_NS: u64 = 200_000_000;
/// Linux's retransmission timeout before any RTT sample (`TCP_TIMEOUT_INIT`), ns.
pub const RTO_INIT_NS: u64 = 1_000_000_000;
/// Linux's minimum delayed-ACK timeout (`TCP_ATO_MIN`, `TCP_DELACK_MIN`), ns.
pub const ATO_MIN_NS: u64 = 40_000_000;
/// Linux's longest delayed ACK (`TCP_DELACK_MAX`), ns.
pub const DELACK_MAX_NS: u64 = 200_000_000;
/// Linux's most quick ACKs granted at once (`TCP_MAX_QUICKACKS`).
pub const MAX_QUICKACKS: u32 = 16;
/// Linux's `tcp_wmem` (min, default, max), bytes.
pub const TCP_WMEM: [usize; 3] = [4096, 16_384, 4 << 20];
/// Linux's `tcp_rmem` (min, default, max), bytes.
pub const TCP_RMEM: [usize; 3] = [4096, 131_072, 6 << 20];
/// The memory `tcp_sndbuf_expand` counts per segment: a full segment with the largest TCP header
/// and its shared info, rounded up to a power of two (4096), plus the `sk_buff` itself (256).
const PER_MSS_MEMORY: usize = 4096 + 256;

/// Linux's send buffer for a connection whose congestion window is `cwnd` bytes of `mss`-byte
/// segments (`tcp_sndbuf_expand`, which Linux runs when the connection is established and as
/// its window grows): twice the window's segments (at least the initial window, and the
/// reordering degree of 3 plus one) at their memory cost, at most `tcp_wmem`'s maximum. Linux
/// compares it with the memory of the queued data, which for bulk writes (64-KiB buffers) is
/// close to their length; here it bounds the bytes queued.
pub fn send_buffer_for(cwnd: usize, mss: usize) -> usize {
    let segments = (cwnd / mss.max(1)).max(INIT_CWND).max(4);
    (2 * segments * PER_MSS_MEMORY).min(TCP_WMEM[2])
}

/// The receive window Linux offers at most with a receive buffer of `rcvbuf` bytes
/// (`tcp_adv_win_scale` = 1: half the buffer, the other half counted for overhead).
pub fn window_for(rcvbuf: usize) -> usize {
    rcvbuf / 2
}

/// CUBIC's multiplicative decrease on loss (β = 0.7), in tenths.
const BETA_TENTHS: usize = 7;

/// The sender's congestion state of one connection.
#[derive(Clone, Debug)]
pub struct Sender {
    mss: usize,
    /// Congestion window, bytes.
    pub cwnd: usize,
    /// Slow-start threshold, bytes.
    pub ssthresh: usize,
    /// Smoothed RTT and its mean deviation, ns (0: no sample yet).
    pub srtt_ns: u64,
    rttvar_ns: u64,
    /// The segment being timed: (sequence number after it, when it left).
    timing: Option<(u32, u64)>,
    /// The highest sequence number sent so far (after the segment), if any data was sent.
    snd_max: Option<u32>,
    /// Loss recovery lasts until this sequence number is acknowledged.
    recover: Option<u32>,
    /// When data last left, ns.
    last_send_ns: Option<u64>,
    /// Segments retransmitted, in all.
    pub retransmits: u32,
}

/// Whether sequence number `a` is after `b` (modulo 2³²).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Sender {
    /// A new connection's state with segments of `mss` bytes.
    pub fn new(mss: usize) -> Self {
        Sender {
            mss,
            cwnd: INIT_CWND * mss,
            ssthresh: usize::MAX,
            srtt_ns: 0,
            rttvar_ns: 0,
            timing: None,
            snd_max: None,
            recover: None,
            last_send_ns: None,
            retransmits: 0,
        }
    }

    /// The retransmission timeout, as Linux computes it: srtt + max(4·rttvar, 200 ms), 1 s before
    /// the first sample.
    pub fn rto_ns(&self) -> u64 {
        if self.srtt_ns == 0 {
            return RTO_INIT_NS;
        }
        self.srtt_ns + (4 * self.rttvar_ns).max(RTO_MIN_NS)
    }

    /// `acked` bytes were newly acknowledged while `flight` bytes were unacknowledged and
    /// `waiting` more were held back by the window: grow the window (slow start by the bytes
    /// acknowledged, then about one segment per window), but only while it limited the sender.
    pub fn on_acked(&mut self, acked: usize, flight: usize, waiting: bool) {
        if acked == 0 {
            return;
        }
        let slow_start = self.cwnd < self.ssthresh;
        let limited = waiting || if slow_start { 2 * flight >= self.cwnd } else { flight + self.mss >= self.cwnd };
        if !limited {
            return;
        }
        if slow_start {
            self.cwnd = (self.cwnd + acked).min(self.ssthresh.max(self.cwnd));
        } else {
            self.cwnd += (self.mss * acked.min(self.mss) / self.cwnd).max(1);
        }
    }

    /// An acknowledgement for sequence number `ack` arrived at `now`: take an RTT sample (Karn:
    /// none across a retransmission) and end loss recovery once it covers the lost data.
    pub fn on_ack(&mut self, ack: u32, now: u64) {
        if let Some((end, sent)) = self.timing
            && !after(end, ack)
        {
            self.sample(now.saturating_sub(sent));
            self.timing = None;
        }
        if self.recover.is_some_and(|r| !after(r, ack)) {
            self.recover = None;
        }
    }

    fn sample(&mut self, rtt: u64) {
        if self.srtt_ns == 0 {
            self.srtt_ns = rtt;
            self.rttvar_ns = rtt / 2;
        } else {
            let err = self.srtt_ns.abs_diff(rtt);
            self.rttvar_ns = (3 * self.rttvar_ns + err) / 4;
            self.srtt_ns = (7 * self.srtt_ns + rtt) / 8;
        }
    }

    /// A segment carrying `len` bytes from sequence number `seq` left at `now`. A segment below
    /// the highest sequence sent is a retransmission: `fast` when an acknowledgement prompted it
    /// (three duplicate ACKs: the window drops by CUBIC's β), otherwise the retransmission timer
    /// fired (the window drops to one segment). One reduction per loss episode.
    pub fn on_sent(&mut self, seq: u32, len: usize, now: u64, fast: bool) {
        if len == 0 {
            return;
        }
        let end = seq.wrapping_add(len as u32);
        self.last_send_ns = Some(now);
        let retransmit = self.snd_max.is_some_and(|m| after(m, seq));
        if !retransmit {
            self.snd_max = Some(end);
            self.timing.get_or_insert((end, now));
            return;
        }
        self.retransmits += 1;
        self.timing = None;
        if self.recover.is_none() {
            self.ssthresh = (self.cwnd * BETA_TENTHS / 10).max(2 * self.mss);
            self.recover = self.snd_max;
            self.cwnd = if fast { self.ssthresh } else { self.mss };
        } else if !fast {
            self.cwnd = self.mss;
        }
    }

    /// New data is about to leave at `now` with nothing in flight: after an idle period longer
    /// than the retransmission timeout the window halves for each timeout elapsed, down to the
    /// initial window (Linux's `tcp_cwnd_restart`).
    pub fn before_send(&mut self, now: u64) {
        let Some(last) = self.last_send_ns else { return };
        let rto = self.rto_ns();
        let restart = (INIT_CWND * self.mss).min(self.cwnd);
        let mut idle = now.saturating_sub(last);
        if idle <= rto {
            return;
        }
        self.ssthresh = self.ssthresh.max(self.cwnd * 3 / 4);
        while idle > rto && self.cwnd > restart {
            self.cwnd /= 2;
            idle -= rto;
        }
        self.cwnd = self.cwnd.max(restart);
        self.last_send_ns = Some(now);
    }
}

/// The receiver's ACK clock of one connection: Linux's quick-ACK mode and delayed-ACK timeout.
#[derive(Clone, Debug, Default)]
pub struct AckClock {
    /// Quick ACKs left: while any are, every segment is acknowledged at once.
    pub quick: u32,
    /// The delayed-ACK timeout, ns (0: no data received yet).
    pub ato_ns: u64,
    /// When data last arrived, ns.
    last_rx_ns: u64,
    /// Interactive mode: this side sent data soon after receiving, so ACKs wait to ride on data.
    pub pingpong: bool,
    /// The highest acknowledgement number sent.
    last_ack: Option<u32>,
}

impl AckClock {
    /// A data segment arrived at `now` (`rto`: the connection's retransmission timeout): the
    /// first one starts quick-ACK mode, and so does one after a gap longer than `rto`; the
    /// timeout follows the interval between arrivals (`tcp_event_data_recv`).
    pub fn on_data(&mut self, now: u64, rto: u64) {
        if self.ato_ns == 0 {
            self.quick = self.quick.max(MAX_QUICKACKS);
            self.ato_ns = ATO_MIN_NS;
        } else {
            let m = now.saturating_sub(self.last_rx_ns);
            if m <= ATO_MIN_NS / 2 {
                self.ato_ns = self.ato_ns / 2 + ATO_MIN_NS / 2;
            } else if m < self.ato_ns {
                self.ato_ns = (self.ato_ns / 2 + m).min(rto);
            } else if m > rto {
                self.quick = self.quick.max(MAX_QUICKACKS);
            }
        }
        self.last_rx_ns = now;
    }

    /// An ACK for sequence number `ack` left; `timer`: sent by the delayed-ACK timer rather than
    /// prompted by a segment. An ACK of new data uses up one quick ACK; a timer ACK ends
    /// interactive mode (`tcp_delack_timer`).
    pub fn on_ack_sent(&mut self, ack: u32, timer: bool) {
        if self.last_ack.is_some_and(|l| !after(ack, l)) {
            return;
        }
        self.last_ack = Some(ack);
        if self.quick > 0 {
            self.quick -= 1;
            if self.quick == 0 {
                self.ato_ns = ATO_MIN_NS;
            }
        }
        if timer && self.pingpong {
            self.pingpong = false;
            self.ato_ns = ATO_MIN_NS;
        }
    }

    /// This side sent data at `now`: data within the timeout of the last arrival means an
    /// interactive exchange (`tcp_event_data_sent`).
    pub fn on_data_sent(&mut self, now: u64) {
        if self.ato_ns > 0 && now.saturating_sub(self.last_rx_ns) < self.ato_ns {
            self.pingpong = true;
        }
    }

    /// How long the next ACK may wait (`None`: at once), for a connection whose smoothed RTT is
    /// `srtt` ns (0: unknown): at once in quick-ACK mode, else the timeout, bounded above by the
    /// RTT (at least 40 ms) and 200 ms (`tcp_send_delayed_ack`).
    pub fn delay_ns(&self, srtt: u64) -> Option<u64> {
        if self.ato_ns == 0 || (self.quick > 0 && !self.pingpong) {
            return None;
        }
        let mut bound = DELACK_MAX_NS;
        if srtt > 0 {
            bound = bound.min(srtt.max(ATO_MIN_NS));
        }
        Some(if self.ato_ns > ATO_MIN_NS { self.ato_ns.min(bound) } else { self.ato_ns })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_send_buffer_grows_with_the_window_up_to_tcp_wmem_max() {
        use super::*;
        assert_eq!(send_buffer_for(MSS, MSS), 2 * 10 * 4352, "the initial window's, at least");
        assert_eq!(send_buffer_for(100 * MSS, MSS), 2 * 100 * 4352);
        assert_eq!(send_buffer_for(10_000 * MSS, MSS), 4 << 20, "capped");
        assert_eq!(window_for(TCP_RMEM[2]), 3 << 20);
    }

    use super::*;

    const MSS: usize = 1460;
    const MS: u64 = 1_000_000;

    #[test]
    fn a_new_connection_may_send_ten_segments_and_doubles_each_round_trip() {
        let mut s = Sender::new(MSS);
        assert_eq!(s.cwnd, 10 * MSS);
        // One round: ten segments acknowledged two at a time (delayed ACKs), the window full.
        for _ in 0..5 {
            s.on_acked(2 * MSS, 10 * MSS, true);
        }
        assert_eq!(s.cwnd, 20 * MSS);
    }

    #[test]
    fn an_application_limited_sender_does_not_grow_its_window() {
        let mut s = Sender::new(MSS);
        s.on_acked(MSS, MSS, false);
        assert_eq!(s.cwnd, 10 * MSS);
    }

    #[test]
    fn after_an_idle_timeout_the_window_restarts_from_the_initial_window() {
        let mut s = Sender::new(MSS);
        s.cwnd = 100 * MSS;
        s.on_sent(1, MSS, 0, false);
        s.on_ack(1 + MSS as u32, 20 * MS);
        s.before_send(20 * MS + 100 * MS);
        assert_eq!(s.cwnd, 100 * MSS, "idle less than the 200 ms minimum timeout: kept");
        s.before_send(12_000 * MS);
        assert_eq!(s.cwnd, 10 * MSS, "12 s idle: back to ten segments");
        assert!(s.ssthresh >= 75 * MSS, "ssthresh remembers three quarters of the old window");
    }

    #[test]
    fn one_idle_timeout_halves_a_large_window_once() {
        let mut s = Sender::new(MSS);
        s.cwnd = 100 * MSS;
        s.on_sent(1, MSS, 0, false);
        s.on_ack(1 + MSS as u32, 20 * MS);
        let rto = s.rto_ns();
        s.before_send(rto + rto / 2);
        assert_eq!(s.cwnd, 50 * MSS);
    }

    #[test]
    fn a_fast_retransmission_cuts_the_window_once_by_beta_and_a_timeout_to_one_segment() {
        let mut s = Sender::new(MSS);
        s.cwnd = 40 * MSS;
        for k in 0..20u32 {
            s.on_sent(k * MSS as u32, MSS, 0, false);
        }
        s.on_sent(0, MSS, MS, true);
        assert_eq!((s.cwnd, s.retransmits), (28 * MSS, 1));
        s.on_sent(MSS as u32, MSS, MS, true);
        assert_eq!(s.cwnd, 28 * MSS, "one reduction per episode");
        s.on_sent(0, MSS, 500 * MS, false);
        assert_eq!((s.cwnd, s.retransmits), (MSS, 3));
    }

    #[test]
    fn rtt_samples_set_the_timeout_with_a_200_ms_floor() {
        let mut s = Sender::new(MSS);
        assert_eq!(s.rto_ns(), 1_000 * MS);
        s.on_sent(0, MSS, 0, false);
        s.on_ack(MSS as u32, 50 * MS);
        assert_eq!(s.srtt_ns, 50 * MS);
        assert_eq!(s.rto_ns(), 250 * MS);
    }

    #[test]
    fn the_first_segments_are_acknowledged_at_once_then_after_40_ms() {
        let mut a = AckClock::default();
        assert_eq!(a.delay_ns(0), None);
        for k in 0..16u32 {
            a.on_data(k as u64 * MS, 1_000 * MS);
            assert_eq!(a.delay_ns(0), None, "quick ACK {k}");
            a.on_ack_sent(k * 1000 + 1000, false);
        }
        a.on_data(16 * MS, 1_000 * MS);
        assert_eq!(a.delay_ns(0), Some(40 * MS));
    }

    #[test]
    fn quick_acks_return_after_an_idle_gap_longer_than_the_timeout() {
        let mut a = AckClock { quick: 0, ato_ns: ATO_MIN_NS, ..Default::default() };
        a.on_data(0, 300 * MS);
        assert_eq!(a.delay_ns(0), Some(40 * MS));
        a.on_data(12_000 * MS, 300 * MS);
        assert_eq!((a.quick, a.delay_ns(0)), (16, None));
    }

    #[test]
    fn an_interactive_exchange_delays_acks_until_the_timer_fires() {
        let mut a = AckClock::default();
        a.on_data(0, 1_000 * MS);
        a.on_data_sent(MS);
        assert_eq!(a.delay_ns(0), Some(40 * MS), "data sent right after data received: interactive");
        a.on_ack_sent(10, true);
        assert_eq!(a.delay_ns(0), None, "the delayed ACK fired: quick ACKs again");
    }

    #[test]
    fn the_delay_follows_slow_arrivals_bounded_by_the_rtt() {
        let mut a = AckClock { quick: 0, ato_ns: ATO_MIN_NS, ..Default::default() };
        a.on_data(0, 1_000 * MS);
        a.on_data(30 * MS, 1_000 * MS);
        assert_eq!(a.ato_ns, 50 * MS);
        assert_eq!(a.delay_ns(0), Some(50 * MS));
        assert_eq!(a.delay_ns(45 * MS), Some(45 * MS));
        assert_eq!(a.delay_ns(10 * MS), Some(40 * MS));
    }
}
