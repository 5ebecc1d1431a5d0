//! End-to-end, the gossip layer under attack: `experiments/specs/gossip-attack.toml` — 1,000
//! honest surrogate identities and 100 attackers that, from 20 s on, flood their peers with
//! invalid blocks, GRAFT them whatever their backoff, spam IWANTs and forward nothing. Without
//! peer scoring the honest identities still get every block, but later; with scoring they cut the
//! attackers off within seconds and deliver as fast as a network whose attackers stay honest.
//! The attack repeats exactly, on one and two shards and on the processes backend.

mod common;

use arrow_array::{Array, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use common::*;
use std::collections::BTreeSet;
use std::path::Path;

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_any().downcast_ref::<T>().unwrap()
}

fn batches(out: &Path, table: &str) -> Vec<RecordBatch> {
    thermocline_models::metrics::read_ipc_file(&out.join(format!("{table}.arrow"))).unwrap().1
}

/// What a run did to the honest identities.
#[derive(Debug)]
struct Honest {
    /// Share of (honest identity, honest block) pairs delivered.
    reliability: f64,
    /// Arrival delay of honest blocks at honest identities, ms: median and 95th percentile.
    p50_ms: f64,
    p95_ms: f64,
    /// Invalid messages honest identities received.
    invalid: u64,
    /// Peers honest identities disconnected for their score.
    disconnects: u64,
}

fn honest_figures(out: &Path) -> Honest {
    let mut attackers = BTreeSet::new();
    let (mut honest, mut invalid, mut disconnects) = (0u64, 0u64, 0u64);
    for b in batches(out, "gossip_nodes") {
        let (node, name) = (column::<UInt32Array>(&b, "node"), column::<StringArray>(&b, "meta_client_name"));
        let (inv, disc) =
            (column::<UInt32Array>(&b, "invalid_received"), column::<UInt32Array>(&b, "score_disconnects"));
        for k in 0..b.num_rows() {
            if name.value(k).starts_with("attackers") {
                attackers.insert(node.value(k));
            } else {
                honest += 1;
                invalid += inv.value(k) as u64;
                disconnects += disc.value(k) as u64;
            }
        }
    }
    assert_eq!((attackers.len(), honest), (100, 1_000));
    let mut blocks = BTreeSet::new();
    for b in batches(out, "gossip_messages") {
        let (id, publisher) = (column::<UInt64Array>(&b, "message_id"), column::<UInt32Array>(&b, "publisher"));
        blocks.extend((0..b.num_rows()).filter(|&k| !attackers.contains(&publisher.value(k))).map(|k| id.value(k)));
    }
    let mut delays = Vec::new();
    for b in batches(out, "gossip_arrivals") {
        let (id, node) = (column::<UInt64Array>(&b, "message_id"), column::<UInt32Array>(&b, "node"));
        let since = column::<UInt64Array>(&b, "arrival_since_publish_ns");
        for k in 0..b.num_rows() {
            if blocks.contains(&id.value(k)) && !attackers.contains(&node.value(k)) {
                delays.push(since.value(k));
            }
        }
    }
    delays.sort_unstable();
    let q = |p: f64| delays[((delays.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    Honest {
        reliability: delays.len() as f64 / (blocks.len() as u64 * honest) as f64,
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        invalid,
        disconnects,
    }
}

#[test]
fn peer_scoring_cuts_attackers_off_and_restores_honest_delivery() {
    let dir = scratch("scenario-attack");
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs/gossip-attack.toml"));
    let (from, to) = (text.rfind("[[gossip.attackers]]").unwrap(), text.rfind("[traffic]").unwrap());
    let variants = [
        ("calm", format!("{}{}", &text[..from], &text[to..])),
        ("blind", text.replace("scoring = true", "scoring = false")),
        ("scored", text.clone()),
    ];
    let mut figures = Vec::new();
    for (name, spec_text) in &variants {
        let spec = write_spec(&dir, &format!("{name}.toml"), spec_text);
        let out = dir.join(name);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
        let f = honest_figures(&out);
        // The summary's honest figures agree (the calm run has no attackers to set apart).
        let s = &summary(&out)["gossip"]["honest"];
        if *name == "calm" {
            assert!(s.is_null(), "{s}");
        } else {
            assert_eq!(
                (s["invalid_received"].as_u64(), s["score_disconnects"].as_u64()),
                (Some(f.invalid), Some(f.disconnects))
            );
            assert_eq!(s["blocks"]["reliability"].as_f64(), Some(f.reliability), "{s}");
        }
        figures.push(f);
    }
    let [calm, blind, scored] = &figures[..] else { unreachable!() };
    eprintln!("calm {calm:?}\nblind {blind:?}\nscored {scored:?}");
    for f in &figures {
        assert!(f.reliability > 0.999, "{f:?}");
    }
    // Without scoring the attack slows every honest block down, and nobody is cut off.
    assert_eq!((calm.invalid, calm.disconnects), (0, 0));
    assert!(blind.p95_ms > calm.p95_ms + 60.0 && blind.p50_ms > calm.p50_ms + 50.0, "{calm:?} {blind:?}");
    assert!(blind.invalid > 200_000 && blind.disconnects == 0, "{blind:?}");
    // With scoring each attacker is cut off after eleven invalid messages, and honest delivery is
    // as it was without the attack.
    assert!(scored.invalid < blind.invalid / 10, "{scored:?}");
    assert!(scored.p95_ms < calm.p95_ms + 30.0 && scored.p95_ms < blind.p95_ms - 60.0, "{calm:?} {scored:?}");
    let links = batches(&dir.join("scored"), "gossip_attack_links");
    let mut n = 0;
    for b in &links {
        let (score, up) = (column::<Float64Array>(b, "score"), column::<BooleanArray>(b, "connected"));
        let invalid = column::<Float64Array>(b, "invalid_deliveries");
        for k in 0..b.num_rows() {
            assert!(!up.value(k) && score.value(k) < -16_000.0 && invalid.value(k) >= 10.0, "link {k}");
            n += 1;
        }
    }
    assert!(n > 1_000, "{n} honest links to attackers");
    let blind_links = batches(&dir.join("blind"), "gossip_attack_links");
    assert!(blind_links.iter().all(|b| column::<BooleanArray>(b, "connected").true_count() == b.num_rows()));
    // The attack is part of the run: the same digest on repeats and on two shards.
    let spec = dir.join("scored.toml");
    let runs: &[(&str, &[&str])] =
        &[("again", &[]), ("two", &["--shards", "2"]), ("processes", &["--shards", "2", "--backend", "processes"])];
    let digests = digests_by_run(&dir, &spec, runs);
    let first = summary(&dir.join("scored"))["digest"].as_str().unwrap().to_string();
    assert!(digests.values().all(|d| *d == first), "{first} {digests:?}");
    assert_ne!(first, summary(&dir.join("blind"))["digest"].as_str().unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}
