//! Traffic sources: cheap direct hosts that run no program and send UDP datagrams at a rate
//! toward targets — load and floods for ingress experiments (the QoS operation of the scenarios).
//!
//! Each host of a `[[traffic_sources]]` group is one source address. It sends datagrams from
//! `start` until `stop`, with Poisson or evenly spaced departures at `rate` per second, sizes
//! drawn from `size`, to a target drawn uniformly from `to`. The payload is random bytes, or a
//! signed transaction ([`thermocline_wire::tx`]) from the source's own ed25519 key with a share
//! `invalid` of bad signatures. A source is sans-IO ([`Source::next`]): the engine gives it the
//! time and sends what it returns through the host's uplink and the network model like any
//! program's datagram, so bandwidth, latency, loss and the scenario's rules apply. Every draw
//! comes from the host's own streams, so what a source sends is the same on every run and shard
//! count.

use rand_core::Rng;
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;
use std::ops::Range;
use thermocline_bus::SimDuration;
use thermocline_models::rng::{StreamFamily, StreamRng, below, probability_threshold};
use thermocline_wire::tx::{OVERHEAD, TxSigner};

/// How departures are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Exponential gaps (a Poisson process), the default.
    #[default]
    Poisson,
    /// Equal gaps.
    Constant,
}

/// What a datagram carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// Random bytes.
    #[default]
    Random,
    /// A signed transaction ([`thermocline_wire::tx`]), its body filling the size.
    Tx,
    /// A stamped datagram, for receivers that measure delay and loss: the send time (ns since
    /// the run's start), the source host's global id and its sequence number (big-endian u64,
    /// u32, u64: [`STAMP_LEN`] bytes), then random bytes filling the size.
    Stamp,
}

/// The bytes of a stamp at the head of a [`Payload::Stamp`] datagram.
pub const STAMP_LEN: usize = 20;

/// Datagram sizes (UDP payload bytes): `fixed`, or uniform in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeSpec {
    /// Every datagram this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<u32>,
    /// Smallest, with `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Largest, with `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// The largest UDP payload a source sends (an IPv4 datagram without fragmentation on a 1500-byte
/// MTU).
pub const MAX_SIZE: u32 = 1472;

impl SizeSpec {
    /// The range of sizes, checked: within 1..=[`MAX_SIZE`] and at least `floor`.
    pub fn range(&self, floor: u32) -> Result<(u32, u32), String> {
        let (lo, hi) = match (self.fixed, self.min, self.max) {
            (Some(f), None, None) => (f, f),
            (None, Some(a), Some(b)) if a <= b => (a, b),
            _ => return Err("gives `fixed`, or `min` and `max` with min ≤ max".into()),
        };
        if lo < floor.max(1) || hi > MAX_SIZE {
            return Err(format!("sizes must lie within {}..={MAX_SIZE} bytes, not {lo}..={hi}", floor.max(1)));
        }
        Ok((lo, hi))
    }
}

/// One `[[traffic_sources]]` entry as the spec gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSourceSpec {
    /// The direct host group whose every host is a source address.
    pub host: String,
    /// Targets, `SELECTOR:PORT` (a group or `group[a..b]`, and the port).
    pub to: Vec<String>,
    /// Datagrams per second per source host.
    pub rate: f64,
    /// Sizes of the UDP payloads.
    pub size: SizeSpec,
    /// What they carry.
    #[serde(default)]
    pub payload: Payload,
    /// With `payload = "tx"`: the share of transactions with a bad signature (0 to 1).
    #[serde(default)]
    pub invalid: f64,
    /// How departures are spaced.
    #[serde(default)]
    pub spacing: Spacing,
    /// When sending begins.
    #[serde(default)]
    pub start: SimDuration,
    /// When it ends (the end of the run if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<SimDuration>,
    /// The UDP port the datagrams come from.
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    20_000
}

/// A traffic source entry resolved against the host directory.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlan {
    /// Its index among the spec's entries.
    pub entry: usize,
    /// The source hosts (global ids).
    pub hosts: Range<u32>,
    /// Where datagrams go.
    pub targets: Vec<SocketAddrV4>,
    /// Mean gap between departures, ns.
    pub gap_ns: u64,
    /// Sizes, inclusive.
    pub sizes: (u32, u32),
    /// What they carry.
    pub payload: Payload,
    /// Share of bad signatures.
    pub invalid: f64,
    /// How departures are spaced.
    pub spacing: Spacing,
    /// First departure no earlier than this (ns).
    pub start: u64,
    /// No departure at or after this (ns).
    pub stop: u64,
    /// Source port.
    pub port: u16,
}

/// One source host's sending state.
pub struct Source {
    /// The plan it follows (index into the list of plans).
    pub plan: usize,
    rng: StreamRng,
    host: u32,
    signer: Option<TxSigner>,
    invalid_threshold: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// UDP payload bytes sent.
    pub bytes: u64,
    /// Of them, transactions with a bad signature.
    pub invalid: u64,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where to.
    pub to: SocketAddrV4,
    /// From which port.
    pub from_port: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Source {
    /// Host `host`'s source for `plans[plan]`, its draws from the run's `seed`.
    pub fn new(plans: &[SourcePlan], plan: usize, host: u32, seed: u64) -> Self {
        let family = StreamFamily::new(seed, "direct-traffic-source");
        let mut rng = family.substream(host, plan as u32);
        let p = &plans[plan];
        let signer = (p.payload == Payload::Tx).then(|| {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            TxSigner::from_seed(key)
        });
        let invalid_threshold = probability_threshold(p.invalid);
        Source { plan, rng, host, signer, invalid_threshold, sent: 0, bytes: 0, invalid: 0 }
    }

    /// When the first datagram leaves, if before the plan's stop: at the start with constant
    /// spacing, one exponential gap after it with Poisson's.
    pub fn first(&mut self, plans: &[SourcePlan]) -> Option<u64> {
        let p = &plans[self.plan];
        let t = match p.spacing {
            Spacing::Constant => p.start,
            Spacing::Poisson => p.start.saturating_add(self.gap(p)),
        };
        (t < p.stop).then_some(t)
    }

    /// The datagram due now (at `now`), and when the next one is due, if before the stop.
    pub fn next(&mut self, plans: &[SourcePlan], now: u64) -> (Datagram, Option<u64>) {
        let p = &plans[self.plan];
        let to = p.targets[below(&mut self.rng, p.targets.len() as u64) as usize];
        let size = p.sizes.0 + below(&mut self.rng, u64::from(p.sizes.1 - p.sizes.0) + 1) as u32;
        let mut payload = Vec::with_capacity(size as usize);
        match &self.signer {
            None if p.payload == Payload::Stamp => {
                payload.extend_from_slice(&now.to_be_bytes());
                payload.extend_from_slice(&self.host.to_be_bytes());
                payload.extend_from_slice(&self.sent.to_be_bytes());
                payload.resize(size as usize, 0);
                self.rng.fill_bytes(&mut payload[STAMP_LEN..]);
            }
            None => {
                payload.resize(size as usize, 0);
                self.rng.fill_bytes(&mut payload);
            }
            Some(signer) => {
                let mut body = vec![0u8; size as usize - OVERHEAD];
                self.rng.fill_bytes(&mut body);
                let valid = self.rng.next_u64() >= self.invalid_threshold;
                self.invalid += u64::from(!valid);
                signer.encode(self.sent, &body, valid, &mut payload);
            }
        }
        self.sent += 1;
        self.bytes += u64::from(size);
        let next = now.saturating_add(self.gap(p).max(1));
        (Datagram { to, from_port: p.port, payload }, (next < p.stop).then_some(next))
    }

    fn gap(&mut self, p: &SourcePlan) -> u64 {
        match p.spacing {
            Spacing::Constant => p.gap_ns,
            Spacing::Poisson => {
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                (-libm::log(1.0 - u) * p.gap_ns as f64) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn plan(payload: Payload, invalid: f64, spacing: Spacing) -> SourcePlan {
        SourcePlan {
            entry: 0,
            hosts: 0..1,
            targets: vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8000),
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8000),
            ],
            gap_ns: 1_000_000,
            sizes: (200, 300),
            payload,
            invalid,
            spacing,
            start: 5_000_000,
            stop: 1_005_000_000,
            port: 20_000,
        }
    }

    fn run(plans: &[SourcePlan], seed: u64) -> (Source, Vec<(u64, Datagram)>) {
        let mut s = Source::new(plans, 0, 3, seed);
        let mut out = Vec::new();
        let mut at = s.first(plans);
        while let Some(t) = at {
            let (d, next) = s.next(plans, t);
            out.push((t, d));
            at = next;
        }
        (s, out)
    }

    #[test]
    fn a_poisson_source_sends_about_its_rate_within_its_window_and_repeats() {
        let plans = [plan(Payload::Random, 0.0, Spacing::Poisson)];
        let (s, sent) = run(&plans, 1);
        assert!((900..1100).contains(&sent.len()), "about 1000 in 1 s: {}", sent.len());
        assert!(
            sent.iter().all(|(t, d)| (5_000_000..1_005_000_000).contains(t) && (200..=300).contains(&d.payload.len()))
        );
        assert!(
            sent.iter().any(|(_, d)| d.to.ip().octets()[3] == 1)
                && sent.iter().any(|(_, d)| d.to.ip().octets()[3] == 2)
        );
        assert_eq!(s.sent as usize, sent.len());
        assert_eq!(run(&plans, 1).1, sent, "the same seed, the same datagrams");
        assert_ne!(run(&plans, 2).1, sent);
    }

    #[test]
    fn constant_spacing_is_exact_and_transactions_carry_the_asked_share_of_bad_signatures() {
        let plans = [plan(Payload::Tx, 0.25, Spacing::Constant)];
        let (s, sent) = run(&plans, 1);
        assert_eq!(sent.len(), 1000);
        assert!(sent.windows(2).all(|w| w[1].0 - w[0].0 == 1_000_000));
        let bad = sent.iter().filter(|(_, d)| !thermocline_wire::tx::decode(&d.payload).unwrap().verify()).count();
        assert_eq!(bad as u64, s.invalid);
        assert!((200..300).contains(&bad), "a quarter of 1000: {bad}");
        let keys: std::collections::BTreeSet<[u8; 32]> =
            sent.iter().map(|(_, d)| *thermocline_wire::tx::decode(&d.payload).unwrap().key).collect();
        assert_eq!(keys.len(), 1, "one key per source");
    }

    #[test]
    fn stamped_datagrams_carry_their_send_time_source_and_sequence() {
        let plans = [plan(Payload::Stamp, 0.0, Spacing::Constant)];
        let (_, sent) = run(&plans, 1);
        for (k, (t, d)) in sent.iter().enumerate() {
            let p = &d.payload;
            assert_eq!(u64::from_be_bytes(p[0..8].try_into().unwrap()), *t);
            assert_eq!(u32::from_be_bytes(p[8..12].try_into().unwrap()), 3, "the source host");
            assert_eq!(u64::from_be_bytes(p[12..20].try_into().unwrap()), k as u64);
        }
        assert_ne!(sent[0].1.payload[STAMP_LEN..], sent[1].1.payload[STAMP_LEN..], "random filling");
    }

    #[test]
    fn sizes_are_checked() {
        let fixed = SizeSpec { fixed: Some(1200), min: None, max: None };
        assert_eq!(fixed.range(OVERHEAD as u32), Ok((1200, 1200)));
        assert!(SizeSpec { fixed: Some(50), min: None, max: None }.range(OVERHEAD as u32).is_err());
        assert!(SizeSpec { fixed: None, min: Some(300), max: Some(200) }.range(1).is_err());
        assert!(SizeSpec { fixed: None, min: Some(1), max: Some(MAX_SIZE + 1) }.range(1).is_err());
    }
}
