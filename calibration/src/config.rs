//! The `[calibration]` section of a spec: which resolutions to run the spec's scenario at, with
//! which client on direct hosts, over how many seeds.

use std::path::PathBuf;

/// One way of running the scenario.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Resolution {
    /// Every node a real client on a direct host: the reference.
    AllDirect,
    /// A share of the nodes (the percentage, 1–99) real clients, the rest surrogates, on the
    /// same graph: `hybrid-10`.
    Hybrid(u8),
    /// Every node a surrogate identity.
    AllSurrogate,
}

impl Resolution {
    /// The name in specs, tables and folder names: `all-direct`, `hybrid-10`, `all-surrogate`.
    pub fn name(self) -> String {
        match self {
            Resolution::AllDirect => "all-direct".into(),
            Resolution::Hybrid(p) => format!("hybrid-{p}"),
            Resolution::AllSurrogate => "all-surrogate".into(),
        }
    }
}

impl TryFrom<String> for Resolution {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "all-direct" => return Ok(Resolution::AllDirect),
            "all-surrogate" => return Ok(Resolution::AllSurrogate),
            _ => {}
        }
        match name.strip_prefix("hybrid-").map(str::parse::<u8>) {
            Some(Ok(p)) if (1..=99).contains(&p) => Ok(Resolution::Hybrid(p)),
            _ => Err(format!(
                "unknown resolution {name:?}: expected \"all-direct\", \"all-surrogate\" or \"hybrid-P\" \
                 (P % of the nodes real clients, 1 to 99)"
            )),
        }
    }
}

impl From<Resolution> for String {
    fn from(r: Resolution) -> String {
        r.name()
    }
}

/// `[calibration]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationSpec {
    /// The resolutions to compare; the first is the reference the others are measured against.
    pub resolutions: Vec<Resolution>,
    /// The real client direct hosts run: a `gossip-node` build (relative to the spec's folder;
    /// default: beside the `thermocline` executable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<PathBuf>,
    /// Seeds per resolution: `run.seed`, `run.seed + 1`, …; each seed has its own peer graph and
    /// proposers, the same at every resolution.
    pub seeds: u32,
    /// Slots with a block each, from `traffic.start`.
    pub slots: u32,
    /// The first slots, counted as the cold phase (connections that carry their first block:
    /// TCP's slow start); the rest are the warm phase.
    pub cold_slots: u32,
    /// The port clients listen on.
    pub port: u16,
    /// Bootstrap replicates for each confidence interval.
    pub bootstrap_rounds: u32,
    /// `[calibration.fit]`: surrogate parameters to fit to the reference (none: compare only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<crate::fit::FitSpec>,
}

impl Default for CalibrationSpec {
    fn default() -> Self {
        CalibrationSpec {
            resolutions: vec![Resolution::AllDirect, Resolution::AllSurrogate],
            client: None,
            seeds: 5,
            slots: 8,
            cold_slots: 1,
            port: 9000,
            bootstrap_rounds: 1000,
            fit: None,
        }
    }
}

impl CalibrationSpec {
    /// Whether the values make a calibration: a message naming the key otherwise.
    pub fn check(&self) -> Result<(), String> {
        if self.resolutions.len() < 2 {
            return Err("calibration.resolutions needs at least two resolutions to compare, e.g. \
                        [\"all-direct\", \"all-surrogate\"]"
                .into());
        }
        let mut seen = self.resolutions.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.resolutions.len() {
            return Err("calibration.resolutions names a resolution twice".into());
        }
        if self.seeds < 2 {
            return Err(format!(
                "calibration.seeds must be at least 2 (a confidence interval over seeds needs several), got {}",
                self.seeds
            ));
        }
        if self.slots == 0 || self.cold_slots >= self.slots {
            return Err(format!(
                "calibration.cold_slots ({}) must be below calibration.slots ({}), so that a warm phase is left",
                self.cold_slots, self.slots
            ));
        }
        if let Some(fit) = &self.fit {
            fit.check()?;
            if !self.resolutions.contains(&Resolution::AllSurrogate) {
                return Err(
                    "calibration.fit fits the surrogates: calibration.resolutions must name all-surrogate".into()
                );
            }
            if self.resolutions[0] != Resolution::AllDirect {
                return Err("calibration.fit fits the surrogates to real clients: calibration.resolutions must start \
                            with all-direct, the reference"
                    .into());
            }
        }
        if self.bootstrap_rounds < 100 {
            return Err(format!("calibration.bootstrap_rounds must be at least 100, got {}", self.bootstrap_rounds));
        }
        Ok(())
    }

    /// The seeds of the runs, from the spec's `run.seed`.
    pub fn seed_list(&self, first: u64) -> Vec<u64> {
        (0..self.seeds as u64).map(|k| first.wrapping_add(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compare_direct_with_surrogates_over_five_seeds() {
        let c: CalibrationSpec = toml::from_str("").unwrap();
        assert_eq!(c, CalibrationSpec::default());
        assert_eq!(c.resolutions, [Resolution::AllDirect, Resolution::AllSurrogate]);
        c.check().unwrap();
        assert_eq!(c.seed_list(7), [7, 8, 9, 10, 11]);
    }

    #[test]
    fn hybrid_resolutions_name_their_share_of_real_clients() {
        let c: CalibrationSpec =
            toml::from_str("resolutions = [\"all-direct\", \"hybrid-10\", \"hybrid-50\", \"all-surrogate\"]").unwrap();
        assert_eq!(c.resolutions[1..3], [Resolution::Hybrid(10), Resolution::Hybrid(50)]);
        c.check().unwrap();
        assert_eq!(c.resolutions[1].name(), "hybrid-10");
        let back: CalibrationSpec = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "names round-trip");
        let twice = toml::from_str::<CalibrationSpec>("resolutions = [\"hybrid-10\", \"hybrid-10\"]").unwrap();
        assert!(twice.check().unwrap_err().contains("twice"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |text: &str| toml::from_str::<CalibrationSpec>(text).unwrap().check().unwrap_err();
        assert!(bad("resolutions = [\"all-direct\"]").contains("calibration.resolutions"));
        assert!(bad("resolutions = [\"all-direct\", \"all-direct\"]").contains("twice"));
        assert!(bad("seeds = 1").contains("calibration.seeds"));
        assert!(bad("slots = 3\ncold_slots = 3").contains("calibration.cold_slots"));
        assert!(bad("bootstrap_rounds = 5").contains("calibration.bootstrap_rounds"));
        let fit = "[fit]\nprofile = \"calibrated/x\"\nparams = { validation_delay = [\"0 ms\"] }";
        toml::from_str::<CalibrationSpec>(fit).unwrap().check().unwrap();
        let surrogate_first = format!("resolutions = [\"all-surrogate\", \"all-direct\"]\n{fit}");
        assert!(bad(&surrogate_first).contains("must start with all-direct"), "{}", bad(&surrogate_first));
        for name in ["hybrid", "hybrid-0", "hybrid-100", "hybrid-x"] {
            let unknown = toml::from_str::<CalibrationSpec>(&format!("resolutions = [\"{name}\"]")).unwrap_err();
            assert!(unknown.to_string().contains("hybrid-P"), "{unknown}");
        }
    }
}
