//! Fitting: the surrogate's free parameters chosen by a documented search against the reference.
//!
//! `[calibration.fit]` names `[gossip.params]` keys, each with the values to try. The reference
//! runs once per seed; the all-surrogate resolution then runs once per seed for every
//! combination of the values (a full grid, in key order), and each combination is scored by
//! [`loss`] on its all-slots row: the largest of |p50 error|, |p95 error|, KS and (where both
//! sides count them) |duplicates error|, each over its goal (so 1.0 is "just within every
//! goal"). The combination with the least loss wins; ties go
//! to the earlier one in grid order, so the search is the same on every machine.

use crate::compare::{ErrorRow, GOALS, Phase, duplicates_error};
use std::collections::BTreeMap;

/// Most combinations a fit may ask for: each is one surrogate run per seed.
pub const MAX_CANDIDATES: usize = 512;

/// `[calibration.fit]`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitSpec {
    /// The name the fitted profile is written under, e.g. `calibrated/gossip-node`.
    pub profile: String,
    /// `[gossip.params]` keys with the values to try (as they are written there).
    pub params: BTreeMap<String, Vec<toml::Value>>,
}

/// One combination of values: a `[gossip.params]` table to lay over the scenario's own.
pub type Candidate = BTreeMap<String, toml::Value>;

impl FitSpec {
    /// Whether the section makes a search: a message naming the key otherwise.
    pub fn check(&self) -> Result<(), String> {
        if self.profile.is_empty() || self.profile.split('/').any(|p| p.is_empty() || p.starts_with('.')) {
            return Err(format!(
                "calibration.fit.profile must be a name such as \"calibrated/gossip-node\", got {:?}",
                self.profile
            ));
        }
        if self.params.is_empty() {
            return Err("calibration.fit.params names no parameter to fit".into());
        }
        for (key, values) in &self.params {
            if values.is_empty() {
                return Err(format!("calibration.fit.params.{key} has no value to try"));
            }
        }
        let n = self.params.values().try_fold(1usize, |n, v| n.checked_mul(v.len()));
        if n.is_none_or(|n| n > MAX_CANDIDATES) {
            return Err(format!(
                "calibration.fit.params make more than {MAX_CANDIDATES} combinations: try fewer values"
            ));
        }
        Ok(())
    }

    /// Every combination of the values, in grid order: the last key varies fastest.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut all = vec![Candidate::new()];
        for (key, values) in &self.params {
            all = all
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(key.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        all
    }
}

/// A candidate's score from its rows: the largest of |p50 error|, |p95 error|, KS and, where
/// both sides count them, |duplicates error| over all slots, each divided by its goal. `None`
/// when the row has no figures (nothing arrived).
pub fn loss(rows: &[ErrorRow]) -> Option<f64> {
    let row = rows.iter().find(|r| r.phase == Phase::All)?;
    let p50 = row.quantile_errors[0].as_ref()?.value.abs() / GOALS.quantile;
    let p95 = row.quantile_errors[1].as_ref()?.value.abs() / GOALS.quantile;
    let ks = row.ks.as_ref()?.value / GOALS.ks;
    let dups = duplicates_error(row.duplicates).map_or(0.0, |e| e.abs() / GOALS.duplicates);
    Some(p50.max(p95).max(ks).max(dups))
}

/// The index of the best of `losses` (least; the first of equals; `None` and NaN score last).
pub fn best(losses: &[Option<f64>]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (k, l) in losses.iter().enumerate() {
        if let Some(l) = *l
            && !l.is_nan()
            && best.is_none_or(|(_, b)| l < b)
        {
            best = Some((k, l));
        }
    }
    best.map(|(k, _)| k)
}

/// A candidate as one line of TOML (`key = value, …`), for tables and logs.
pub fn describe(c: &Candidate) -> String {
    c.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{Arrival, RunArrivals, TableOptions, error_table};
    use crate::config::Resolution;

    fn spec(text: &str) -> FitSpec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_grid_holds_every_combination_last_key_fastest() {
        let f = spec("profile = \"calibrated/x\"\nparams = { b = [1, 2, 3], a = [\"p\", \"q\"] }");
        f.check().unwrap();
        let c: Vec<String> = f.candidates().iter().map(describe).collect();
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], "a = \"p\", b = 1");
        assert_eq!(c[1], "a = \"p\", b = 2");
        assert_eq!(c[5], "a = \"q\", b = 3");
    }

    #[test]
    fn bad_sections_name_their_key() {
        let bad = |t: &str| spec(t).check().unwrap_err();
        assert!(bad("profile = \"\"\nparams = { a = [1] }").contains("calibration.fit.profile"));
        assert!(bad("profile = \"../x\"\nparams = { a = [1] }").contains("calibration.fit.profile"));
        assert!(bad("profile = \"x\"\nparams = {}").contains("no parameter"));
        assert!(bad("profile = \"x\"\nparams = { a = [] }").contains("calibration.fit.params.a"));
        let many = (0..10).map(|k| format!("k{k} = [1, 2]")).collect::<Vec<_>>().join(", ");
        assert!(bad(&format!("profile = \"x\"\nparams = {{ {many} }}")).contains("combinations"));
        assert!(toml::from_str::<FitSpec>("profile = \"x\"\nparams = {}\nextra = 1").is_err());
    }

    fn run(seed: u64, shift: f64) -> RunArrivals {
        let arrivals = (0..400)
            .map(|k| Arrival { slot: k % 4, node: k, delay_ms: 100.0 + (k % 97) as f64 + shift, duplicates: None })
            .collect();
        RunArrivals { seed, arrivals, expected: 400, copies: None }
    }

    fn rows(shift: f64) -> Vec<ErrorRow> {
        let reference: Vec<_> = (0..3).map(|s| run(s, 0.0)).collect();
        let it: Vec<_> = (0..3).map(|s| run(s, shift)).collect();
        let options = TableOptions { slots: 4, cold_slots: 1, rounds: 100, seed: 1 };
        error_table(&reference, &[(Resolution::AllSurrogate, it)], options)
    }

    #[test]
    fn the_loss_is_the_worst_figure_over_its_goal_and_the_least_wins() {
        assert_eq!(loss(&rows(0.0)), Some(0.0));
        // +10 ms on a p95 of about 192 ms: +5.2 %, just over the goal.
        let shifted = loss(&rows(10.0)).unwrap();
        assert!(shifted > 1.0, "{shifted}");
        let worse = loss(&rows(30.0)).unwrap();
        assert!(worse > shifted);
        assert_eq!(best(&[Some(worse), None, Some(shifted), Some(shifted)]), Some(2));
        // Duplicates count where both sides have them: 30 % too many is three times its goal.
        let mut dups = rows(0.0);
        dups[0].duplicates = (Some(2.0), Some(2.6));
        assert!((loss(&dups).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(best(&[None, None]), None);
        assert_eq!(best(&[Some(f64::NAN), Some(3.0), Some(2.0)]), Some(2), "NaN never wins");
    }
}
