//! Gossipsub v1.1 peer scoring for one topic (`beacon_block`), with the parameters Ethereum
//! clients use (Lighthouse's `gossipsub_scoring_parameters`, topic weight 0.5, one message per
//! slot). Scores are kept per connection and computed on demand:
//!
//! `score = w_t · (w₁·P₁ + w₂·P₂ + w₃·P₃ + w₃b·P₃b + w₄·P₄) + w₇·P₇` where P₁ = min(time in
//! mesh / quantum, cap), P₂ = first deliveries (capped), P₃ = (threshold − mesh deliveries)² once
//! the peer has been in the mesh longer than the activation time and delivers below the
//! threshold, P₃b = the sticky mesh-failure penalty, P₄ = (invalid messages delivered)², P₇ =
//! (behaviour penalty − threshold)² above the threshold. Counters decay every `decay_interval` and drop to zero below `decay_to_zero`.
//! Arithmetic is IEEE basic operations only, so results are the same on every platform.

use thermocline_bus::SimDuration;

/// Score function parameters and thresholds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreParams {
    /// Topic weight.
    pub topic_weight: f64,
    /// P₁ weight.
    pub time_in_mesh_weight: f64,
    /// P₁ quantum.
    pub time_in_mesh_quantum: SimDuration,
    /// P₁ cap.
    pub time_in_mesh_cap: f64,
    /// P₂ weight.
    pub first_deliveries_weight: f64,
    /// P₂ decay per interval.
    pub first_deliveries_decay: f64,
    /// P₂ cap.
    pub first_deliveries_cap: f64,
    /// P₃ weight (negative).
    pub mesh_deliveries_weight: f64,
    /// P₃ decay.
    pub mesh_deliveries_decay: f64,
    /// P₃ threshold.
    pub mesh_deliveries_threshold: f64,
    /// P₃ cap.
    pub mesh_deliveries_cap: f64,
    /// P₃ activation: time in mesh before the deficit counts.
    pub mesh_deliveries_activation: SimDuration,
    /// P₃ window: a copy this soon after the first also counts as a delivery.
    pub mesh_deliveries_window: SimDuration,
    /// P₃b weight (negative).
    pub mesh_failure_weight: f64,
    /// P₃b decay.
    pub mesh_failure_decay: f64,
    /// P₄ weight (negative): invalid messages the peer delivered, squared.
    pub invalid_deliveries_weight: f64,
    /// P₄ decay.
    pub invalid_deliveries_decay: f64,
    /// P₇ weight (negative).
    pub behaviour_weight: f64,
    /// P₇ threshold.
    pub behaviour_threshold: f64,
    /// P₇ decay.
    pub behaviour_decay: f64,
    /// Decay interval.
    pub decay_interval: SimDuration,
    /// Counters below this become zero.
    pub decay_to_zero: f64,
    /// Below this: no gossip to or from the peer.
    pub gossip_threshold: f64,
    /// Below this: no flood-published messages to the peer.
    pub publish_threshold: f64,
    /// Below this: every RPC from the peer is ignored.
    pub graylist_threshold: f64,
    /// Below this the peer manager disconnects the peer and refuses it while its score stays
    /// there (scores are kept across connections).
    pub disconnect_threshold: f64,
    /// Opportunistic grafting runs when the median mesh score is below this.
    pub opportunistic_graft_threshold: f64,
    /// Heartbeats between opportunistic grafting checks.
    pub opportunistic_graft_ticks: u32,
    /// Peers grafted opportunistically.
    pub opportunistic_graft_peers: u32,
    /// Best-scoring mesh peers always kept when pruning an oversubscribed mesh.
    pub retain_scores: u32,
    /// Gossip goes to max(D_lazy, gossip_factor × eligible peers).
    pub gossip_factor: f64,
}

fn decay_for(interval: f64, horizon: f64) -> f64 {
    0.01f64.powf(interval / horizon)
}

impl ScoreParams {
    /// Ethereum's `beacon_block` scoring for a mesh of `mesh_n` (Lighthouse's formulas; 12-s
    /// slots, 32-slot epochs). The decay factors are computed once here with `powf`, then stored.
    pub fn ethereum(mesh_n: u32) -> Self {
        let slot = 12.0;
        let epoch = 32.0 * slot;
        let first_decay = decay_for(slot, 20.0 * epoch);
        let first_cap = (2.0 / mesh_n as f64) / (1.0 - first_decay);
        let mesh_decay = decay_for(slot, 160.0 * slot);
        let mesh_threshold = (1.0 / 50.0) / (1.0 - mesh_decay) * mesh_decay;
        let behaviour_decay = decay_for(slot, 10.0 * epoch);
        let gossip_threshold = -4000.0;
        let graylist_threshold = -16000.0;
        // Lighthouse's largest positive score: (in-mesh 10 + first deliveries 40) times the sum
        // of its topic weights up to Deneb (blocks 0.5, aggregates 0.5, attestation subnets 1,
        // exits, proposer and attester slashings 0.05 each, sync subnets 0.4, sync
        // contributions 0.2, BLS changes 0.05, light-client updates 0.05 each).
        let max_positive_score = (10.0 + 40.0) * 2.9;
        ScoreParams {
            topic_weight: 0.5,
            time_in_mesh_weight: 10.0 / 300.0,
            time_in_mesh_quantum: SimDuration::from_secs(12),
            time_in_mesh_cap: 300.0,
            first_deliveries_weight: 40.0 / first_cap,
            first_deliveries_decay: first_decay,
            first_deliveries_cap: first_cap,
            mesh_deliveries_weight: -0.5,
            mesh_deliveries_decay: mesh_decay,
            mesh_deliveries_threshold: mesh_threshold,
            mesh_deliveries_cap: (3.0 * mesh_threshold).max(2.0),
            mesh_deliveries_activation: SimDuration::from_secs(384),
            mesh_deliveries_window: SimDuration::from_secs(2),
            mesh_failure_weight: -0.5,
            mesh_failure_decay: mesh_decay,
            invalid_deliveries_weight: -max_positive_score / 0.5,
            invalid_deliveries_decay: decay_for(slot, 50.0 * epoch),
            behaviour_weight: gossip_threshold / (10.0 / 32.0 / (1.0 - behaviour_decay) - 6.0f64).powi(2),
            behaviour_threshold: 6.0,
            behaviour_decay,
            decay_interval: SimDuration::from_secs(12),
            decay_to_zero: 0.01,
            gossip_threshold,
            publish_threshold: -8000.0,
            graylist_threshold,
            // Lighthouse and Lodestar weigh a negative gossipsub score so that the graylist
            // threshold maps to one point above their disconnect score of -20.
            disconnect_threshold: graylist_threshold * 20.0 / 19.0,
            opportunistic_graft_threshold: 5.0,
            opportunistic_graft_ticks: 60,
            opportunistic_graft_peers: 2,
            retain_scores: 4,
            gossip_factor: 0.25,
        }
    }
}

impl ScoreParams {
    /// A lower bound of the score of a peer with no negative counters (P₃b and P₇ at zero),
    /// out of or in the mesh.
    ///
    /// Out of the mesh such a score is a sum of non-negative terms. In the mesh the P₃ deficit
    /// only counts after `mesh_deliveries_activation`, by which time P₁ has earned at least
    /// `activation / quantum` quanta; with the usual signs of the weights the bound is then
    /// `w_t · min(0, w₁·P₁(activation) + w₃·threshold²)`, which for Ethereum's parameters is 0: an
    /// honest mesh peer can never score below zero. Unless that sum clears zero by a wide margin,
    /// a small margin keeps the bound below the exactly computed score whatever the rounding. With unusual signs the bound falls back to
    /// [`EdgeScore::floor`].
    pub fn clean_floor(&self, in_mesh: bool) -> f64 {
        let plain = EdgeScore::default().floor(self, in_mesh, 0.0);
        let usual = self.topic_weight >= 0.0
            && self.time_in_mesh_weight >= 0.0
            && self.first_deliveries_weight >= 0.0
            && self.mesh_deliveries_weight <= 0.0;
        if !in_mesh || !usual {
            return plain;
        }
        let quanta = (self.mesh_deliveries_activation.as_nanos() as f64
            / self.time_in_mesh_quantum.as_nanos().max(1) as f64)
            .min(self.time_in_mesh_cap);
        let activated = self.time_in_mesh_weight * quanta
            + self.mesh_deliveries_weight * self.mesh_deliveries_threshold * self.mesh_deliveries_threshold;
        let bound = if activated > 1e-6 { 0.0 } else { self.topic_weight * activated - 1e-9 };
        bound.max(plain)
    }
}

/// The score counters of one connection.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct EdgeScore {
    /// When the peer last joined our mesh, ms.
    pub grafted_ms: u32,
    /// P₂ counter.
    pub first_deliveries: f32,
    /// P₃ counter.
    pub mesh_deliveries: f32,
    /// P₃b counter.
    pub mesh_failure: f32,
    /// P₇ counter.
    pub behaviour: f32,
}

impl EdgeScore {
    /// The P₃ deficit (0 when inactive or met).
    pub fn mesh_deficit(&self, p: &ScoreParams, in_mesh: bool, now_ms: u32) -> f64 {
        let active = in_mesh
            && (now_ms.saturating_sub(self.grafted_ms) as u64) * 1_000_000 > p.mesh_deliveries_activation.as_nanos();
        let d = p.mesh_deliveries_threshold - self.mesh_deliveries as f64;
        if active && d > 0.0 { d } else { 0.0 }
    }

    /// The peer's score, with `invalid` the P₄ counter (kept apart: only attackers have one).
    pub fn score(&self, p: &ScoreParams, in_mesh: bool, now_ms: u32, invalid: f32) -> f64 {
        let p1 = if in_mesh {
            let quanta = (now_ms.saturating_sub(self.grafted_ms) as u64 * 1_000_000) as f64
                / p.time_in_mesh_quantum.as_nanos().max(1) as f64;
            quanta.min(p.time_in_mesh_cap)
        } else {
            0.0
        };
        let deficit = self.mesh_deficit(p, in_mesh, now_ms);
        let topic = p.time_in_mesh_weight * p1
            + p.first_deliveries_weight * self.first_deliveries as f64
            + p.mesh_deliveries_weight * deficit * deficit
            + p.mesh_failure_weight * self.mesh_failure as f64
            + invalid_term(p, invalid);
        let excess = (self.behaviour as f64 - p.behaviour_threshold).max(0.0);
        p.topic_weight * topic + p.behaviour_weight * excess * excess
    }

    /// A lower bound of the score from its negative terms alone (the positive ones, P₁ and P₂,
    /// are never below zero): when it clears a threshold, the exact score does too, and need not
    /// be computed. Honest peers have no negative terms, so this is the common case.
    pub fn floor(&self, p: &ScoreParams, in_mesh: bool, invalid: f32) -> f64 {
        let max_deficit = if in_mesh { p.mesh_deliveries_threshold } else { 0.0 };
        let excess = (self.behaviour as f64 - p.behaviour_threshold).max(0.0);
        p.topic_weight
            * (p.mesh_deliveries_weight * max_deficit * max_deficit
                + p.mesh_failure_weight * self.mesh_failure as f64
                + invalid_term(p, invalid))
            + p.behaviour_weight * excess * excess
    }

    /// One decay interval.
    pub fn decay(&mut self, p: &ScoreParams) {
        let z = p.decay_to_zero as f32;
        let d = |v: f32, f: f64| {
            let x = v * f as f32;
            if x < z { 0.0 } else { x }
        };
        self.first_deliveries = d(self.first_deliveries, p.first_deliveries_decay);
        self.mesh_deliveries = d(self.mesh_deliveries, p.mesh_deliveries_decay);
        self.mesh_failure = d(self.mesh_failure, p.mesh_failure_decay);
        self.behaviour = d(self.behaviour, p.behaviour_decay);
    }
}

/// `w₄·P₄` for a P₄ counter of `invalid`.
fn invalid_term(p: &ScoreParams, invalid: f32) -> f64 {
    let n = invalid as f64;
    p.invalid_deliveries_weight * n * n
}

/// One decay interval of a P₄ counter: 0 once below `decay_to_zero`.
pub fn decay_invalid(p: &ScoreParams, invalid: f32) -> f32 {
    let x = invalid * p.invalid_deliveries_decay as f32;
    if x < p.decay_to_zero as f32 { 0.0 } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_match_lighthouses_beacon_block_values() {
        let p = ScoreParams::ethereum(8);
        assert!((p.first_deliveries_decay - 0.99283).abs() < 1e-5, "{}", p.first_deliveries_decay);
        assert!((p.first_deliveries_cap - 34.87).abs() < 0.01, "{}", p.first_deliveries_cap);
        assert!((p.mesh_deliveries_decay - 0.97163).abs() < 1e-5);
        assert!((p.mesh_deliveries_threshold - 0.685).abs() < 0.001, "{}", p.mesh_deliveries_threshold);
        assert!((p.behaviour_weight - -15.88).abs() < 0.01, "{}", p.behaviour_weight);
        assert!((ScoreParams::ethereum(5).first_deliveries_cap - 55.79).abs() < 0.01);
    }

    #[test]
    fn components_add_up_as_specified() {
        let p = ScoreParams::ethereum(8);
        let mut e = EdgeScore { grafted_ms: 0, first_deliveries: 10.0, ..Default::default() };
        // 120 s in mesh = 10 quanta; 10 first deliveries.
        let s = e.score(&p, true, 120_000, 0.0);
        let expected = 0.5 * (10.0 / 300.0 * 10.0 + p.first_deliveries_weight * 10.0);
        assert!((s - expected).abs() < 1e-9, "{s} vs {expected}");
        assert_eq!(e.score(&p, false, 120_000, 0.0), 0.5 * p.first_deliveries_weight * 10.0);
        // P3: after activation with no deliveries, the squared deficit counts.
        let late = 400_000;
        let with_deficit = e.score(&p, true, late, 0.0);
        let d = p.mesh_deliveries_threshold;
        assert!(
            (with_deficit
                - (0.5
                    * (p.time_in_mesh_weight * (late as f64 / 12_000.0) + p.first_deliveries_weight * 10.0
                        - 0.5 * d * d)))
                .abs()
                < 1e-6
        );
        // P7 counts only above its threshold, squared.
        e.behaviour = 6.0;
        assert_eq!(e.score(&p, false, 0, 0.0), 0.5 * p.first_deliveries_weight * 10.0);
        e.behaviour = 8.0;
        assert!(
            (e.score(&p, false, 0, 0.0) - (0.5 * p.first_deliveries_weight * 10.0 + p.behaviour_weight * 4.0)).abs()
                < 1e-9
        );
        // The floor never exceeds the score.
        for probe in [EdgeScore { mesh_failure: 3.0, behaviour: 9.0, ..e }, e, EdgeScore::default()] {
            for (mesh, t) in [(true, late), (false, 0), (true, 1_000)] {
                assert!(probe.floor(&p, mesh, 0.0) <= probe.score(&p, mesh, t, 0.0) + 1e-12);
            }
        }
        // The clean floor bounds every honest peer's score, in or out of the mesh, at any time.
        assert!(p.clean_floor(true) == 0.0 && p.clean_floor(false) == 0.0);
        for t in (0..2_000_000).step_by(1_000) {
            for f in [0.0, 0.5, 30.0] {
                let honest = EdgeScore { grafted_ms: 0, first_deliveries: f, ..Default::default() };
                for mesh in [true, false] {
                    assert!(honest.score(&p, mesh, t, 0.0) >= p.clean_floor(mesh), "t={t} f={f} mesh={mesh}");
                }
            }
        }
        // P₄: one invalid message takes a peer to -145, eleven past the disconnect threshold
        // (and the floor still bounds the score).
        let clean = EdgeScore::default();
        assert!((clean.score(&p, false, 0, 1.0) - -145.0).abs() < 1e-9);
        assert!(clean.score(&p, false, 0, 10.0) > p.disconnect_threshold);
        assert!(clean.score(&p, false, 0, 11.0) < p.disconnect_threshold);
        assert!((p.disconnect_threshold - -16000.0 * 20.0 / 19.0).abs() < 1e-9);
        for k in [0.0, 1.0, 7.5] {
            assert!(e.floor(&p, true, k) <= e.score(&p, true, 1_000, k) + 1e-12);
        }
        let mut k = 1.0;
        for _ in 0..800 {
            k = decay_invalid(&p, k);
        }
        // 50 epochs of 32 twelve-second slots decay a count to 1 %: half of them to 10 %.
        assert!((k - 0.1).abs() < 1e-3, "{k}");
        assert_eq!(decay_invalid(&p, 0.01001), 0.0);
        // Decay, then to zero.
        let mut f = EdgeScore { first_deliveries: 1.0, behaviour: 0.0101, ..Default::default() };
        f.decay(&p);
        assert!((f.first_deliveries as f64 - p.first_deliveries_decay).abs() < 1e-6);
        assert_eq!(f.behaviour, 0.0);
    }
}
