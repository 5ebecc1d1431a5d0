//! The fitting half of `thermocline calibrate`: the scenario with each `[calibration.fit]`
//! candidate laid over its `[gossip.params]`, the search's table, and the calibrated profile the
//! best candidate makes (`profile.toml`, the file `surrogate/profiles/` ships).

use crate::spec::Spec;
use thermocline_calibration::compare::{ErrorRow, duplicates_error, markdown};
use thermocline_calibration::config::Resolution;
use thermocline_calibration::fit::{Candidate, FitSpec, describe};
use thermocline_surrogate::config::GossipOverrides;

/// One candidate's outcome over every seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tried {
    /// The values laid over the scenario's `[gossip.params]`.
    pub params: Candidate,
    /// Its error rows against the reference.
    pub rows: Vec<ErrorRow>,
    /// Its score ([`thermocline_calibration::fit::loss`]; lower is closer).
    pub loss: Option<f64>,
}

/// `scenario` with `candidate` laid over its `[gossip.params]`, checked as its profile would
/// check it: the spec to run, or what is wrong at `calibration.fit.params`.
pub fn candidate_spec(scenario: &Spec, candidate: &Candidate) -> Result<Spec, String> {
    let mut spec = scenario.clone();
    let g = spec.gossip.as_mut().ok_or("calibration.fit needs a [gossip] scenario")?;
    g.params = overlay(&g.params, candidate)?;
    g.params_for(&g.profile).map_err(|e| format!("calibration.fit.params ({}): {e}", describe(candidate)))?;
    Ok(spec)
}

/// `params` with `candidate`'s keys replaced.
fn overlay(params: &GossipOverrides, candidate: &Candidate) -> Result<GossipOverrides, String> {
    let mut table = toml::Table::try_from(params).map_err(|e| format!("gossip.params: {e}"))?;
    for (k, v) in candidate {
        table.insert(k.clone(), v.clone());
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("calibration.fit.params ({}): {}", describe(candidate), e.message()))
}

/// Every candidate of `fit`, each checked: the specs to run in grid order, or the first error.
pub fn candidate_specs(scenario: &Spec, fit: &FitSpec) -> Result<Vec<(Candidate, Spec)>, String> {
    fit.candidates().into_iter().map(|c| candidate_spec(scenario, &c).map(|s| (c, s))).collect()
}

/// The search's section of `calibration.md`: every candidate's all-slots figures and loss, then
/// the best one's error table.
pub fn report_section(fit: &FitSpec, tried: &[Tried], best: Option<usize>, reference: Resolution) -> String {
    let mut t = format!(
        "\n## Fit\n\n{} candidates for `{}` (every combination of `calibration.fit.params`), each run on every seed as \
         all-surrogate. Loss: the largest of |p50 error| / 5 %, |p95 error| / 5 %, KS / 0.05 and, where both sides count \
         them, |duplicates error| / 10 %, over all slots (1.0: just within every goal); the least wins, the first of \
         equals.\n\n| # | parameters | p50 error | p95 error | KS | duplicates error | loss |\n\
         |---|---|---|---|---|---|---|\n",
        tried.len(),
        fit.profile
    );
    for (k, x) in tried.iter().enumerate() {
        let all = x.rows.first();
        let fig = |e: Option<f64>| e.map_or("n/a".into(), |v| format!("{:+.1} %", v * 100.0));
        let p50 = all.and_then(|r| r.quantile_errors[0].as_ref().map(|e| e.value));
        let p95 = all.and_then(|r| r.quantile_errors[1].as_ref().map(|e| e.value));
        let ks = all.and_then(|r| r.ks.as_ref()).map_or("n/a".into(), |e| format!("{:.3}", e.value));
        let dups = all.and_then(|r| duplicates_error(r.duplicates));
        let mark = if Some(k) == best { " **best**" } else { "" };
        t += &format!(
            "| {k} | {} | {} | {} | {ks} | {} | {}{mark} |\n",
            describe(&x.params),
            fig(p50),
            fig(p95),
            fig(dups),
            x.loss.map_or("n/a".into(), |l| format!("{l:.2}"))
        );
    }
    if let Some(b) = best {
        t += &format!("\nThe best, `{}`, against {}:\n\n", describe(&tried[b].params), reference.name());
        t += &markdown(&tried[b].rows, reference);
    }
    t
}

/// `profile.toml`: the fitted profile (the scenario's profile and `[gossip.params]` with the
/// best candidate laid over them) with how it was fitted and its error table.
pub fn profile_text(origin: &str, spec: &Spec, fit: &FitSpec, tried: &Tried, seeds: u32) -> Result<String, String> {
    let g = spec.gossip.as_ref().ok_or("a gossip scenario")?;
    let params = overlay(&g.params, &tried.params)?;
    let mut file = toml::Table::new();
    file.insert("base".into(), g.profile.clone().into());
    file.insert("params".into(), toml::Table::try_from(&params).map_err(|e| e.to_string())?.into());
    let mut about = toml::Table::new();
    about.insert("spec".into(), origin.into());
    about.insert("seeds".into(), i64::from(seeds).into());
    about.insert("loss".into(), tried.loss.unwrap_or(f64::NAN).into());
    about.insert("searched".into(), toml::Table::try_from(&fit.params).map_err(|e| e.to_string())?.into());
    let errors: Vec<toml::Value> = tried
        .rows
        .iter()
        .map(|r| {
            let mut row = toml::Table::new();
            row.insert("phase".into(), r.phase.name().into());
            for (name, e) in ["p50_error", "p95_error", "p99_error"].iter().zip(&r.quantile_errors) {
                if let Some(e) = e {
                    row.insert((*name).into(), round(e.value).into());
                }
            }
            if let Some(ks) = &r.ks {
                row.insert("ks".into(), round(ks.value).into());
            }
            row.insert("meets_goals".into(), r.meets_goals.into());
            row.into()
        })
        .collect();
    about.insert("errors".into(), errors.into());
    file.insert("fit".into(), about.into());
    let body = toml::to_string(&file).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Calibrated gossip profile {:?}: fitted by `thermocline calibrate {origin}` to its reference over {seeds} \
         seeds.\n# Ship it as surrogate/profiles/{}.toml (and list it in CALIBRATED) for specs to name it as \
         `profile = {:?}`.\n\n{body}",
        fit.profile, fit.profile, fit.profile
    ))
}

/// Four significant decimals, so the file reads as a table.
fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}
