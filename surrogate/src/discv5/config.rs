//! The `[discv5]` section of a spec: how identities join, look up and check their tables, and
//! which of them sit behind NAT or come and go.

use thermocline_bus::SimDuration;

/// Churn: a share of identities alternate online and offline periods drawn from exponential
/// distributions (an identity that goes offline keeps its table, as clients keep their node
/// database, and loses its sessions, pending requests and lookup).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Share of identities that churn, in `[0, 1]`.
    pub share: f64,
    /// Mean length of an online period.
    pub mean_online: SimDuration,
    /// Mean length of an offline period.
    pub mean_offline: SimDuration,
}

/// Discovery among surrogate identities. Every field has a default.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discv5Spec {
    /// Bootnodes: the first identities that are not behind NAT; every identity starts with their
    /// records, as clients start with their configured boot ENRs. They join at time zero.
    pub bootnodes: u32,
    /// Identities join at uniformly drawn times within this span (bootnodes first, at zero).
    pub join_over: SimDuration,
    /// Each identity starts a lookup of a random target at this mean interval (the first after
    /// its self-lookup on joining); one lookup runs at a time per identity.
    pub lookup_interval: SimDuration,
    /// Each identity checks one table entry for liveness by PING at this interval (jittered
    /// ±50 %); an entry that does not answer is replaced by a candidate.
    pub revalidate: SimDuration,
    /// A request with no full answer by then has failed.
    pub request_timeout: SimDuration,
    /// Lookup parallelism: FINDNODE requests in flight per lookup (discv5's α).
    pub alpha: u32,
    /// Sessions an identity keeps (least recently used goes first); a request to a peer without
    /// one costs the WHOAREYOU handshake round trip.
    pub sessions: u32,
    /// Share of identities behind NAT: they find others, but nobody can reach them unasked, so
    /// they never enter a table.
    pub nat_share: f64,
    /// Identities coming and going (off by default).
    pub churn: Option<ChurnSpec>,
    /// How often every shard counts its online identities by table size (`discv5_table_fill`).
    pub sample: SimDuration,
    /// Check every lookup against the exact closest set (a scan of all identities per lookup:
    /// for tests and small studies; adds the `exact_overlap` column). The exact set is drawn from
    /// every identity not behind NAT, online or not, so under churn it counts offline ones too.
    pub exact: bool,
}

impl Default for Discv5Spec {
    fn default() -> Self {
        Discv5Spec {
            bootnodes: 4,
            join_over: SimDuration::from_millis(30_000),
            lookup_interval: SimDuration::from_millis(60_000),
            revalidate: SimDuration::from_millis(10_000),
            request_timeout: SimDuration::from_millis(1_000),
            alpha: 3,
            sessions: 32,
            nat_share: 0.0,
            churn: None,
            sample: SimDuration::from_millis(10_000),
            exact: false,
        }
    }
}

impl Discv5Spec {
    /// Check the values for a run of `identities` identities; the message names the key.
    pub fn check(&self, identities: u32) -> Result<(), String> {
        let positive = [
            ("lookup_interval", self.lookup_interval),
            ("revalidate", self.revalidate),
            ("request_timeout", self.request_timeout),
            ("sample", self.sample),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, d)| *d == SimDuration::ZERO) {
            return Err(format!("discv5.{key} must be positive"));
        }
        if !(0.0..1.0).contains(&self.nat_share) {
            return Err(format!("discv5.nat_share must be within [0, 1), got {}", self.nat_share));
        }
        if self.bootnodes == 0 || self.bootnodes > identities {
            return Err(format!(
                "discv5.bootnodes must be between 1 and the number of identities ({identities}), got {}",
                self.bootnodes
            ));
        }
        if !(1..=16).contains(&self.alpha) {
            return Err(format!("discv5.alpha must be between 1 and 16, got {}", self.alpha));
        }
        if !(1..=1024).contains(&self.sessions) {
            return Err(format!("discv5.sessions must be between 1 and 1024, got {}", self.sessions));
        }
        if let Some(c) = &self.churn {
            if !(0.0..=1.0).contains(&c.share) {
                return Err(format!("discv5.churn.share must be within [0, 1], got {}", c.share));
            }
            if c.mean_online == SimDuration::ZERO || c.mean_offline == SimDuration::ZERO {
                return Err("discv5.churn.mean_online and mean_offline must be positive".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_bad_value_names_its_key() {
        assert_eq!(Discv5Spec::default().check(100), Ok(()));
        let bad = |s: Discv5Spec, key: &str| {
            let e = s.check(100).unwrap_err();
            assert!(e.contains(key), "{e} should name {key}");
        };
        bad(Discv5Spec { revalidate: SimDuration::ZERO, ..Default::default() }, "revalidate");
        bad(Discv5Spec { nat_share: 1.0, ..Default::default() }, "nat_share");
        bad(Discv5Spec { bootnodes: 101, ..Default::default() }, "bootnodes");
        bad(Discv5Spec { alpha: 0, ..Default::default() }, "alpha");
        bad(Discv5Spec { sessions: 0, ..Default::default() }, "sessions");
        let churn = ChurnSpec { share: 2.0, mean_online: SimDuration::ZERO, mean_offline: SimDuration::ZERO };
        bad(Discv5Spec { churn: Some(churn), ..Default::default() }, "churn.share");
    }
}
