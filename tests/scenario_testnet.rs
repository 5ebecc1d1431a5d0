//! End-to-end, an orchestrated testnet with services: `experiments/specs/testnet-services.toml` —
//! an uptime service with a key whitelist, three nodes submitting to it, one with a stolen key, a
//! log fetcher pulling the active nodes' logs into SQLite, and the timeline taking node2 down at
//! 30 s and back at 50 s. The database (queried here with Python's sqlite3) shows node2 dropped
//! from the active set while it was down and its log whole afterwards, the rogue node never
//! admitted; one and two shards give the same database and digest.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// `query` against the SQLite database `db`, each row as its columns joined by `|`.
fn sql(db: &Path, query: &str) -> Vec<String> {
    let script = "import sqlite3, sys\nfor r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):\n    print('|'.join(map(str, r)))";
    let out = Command::new("/usr/bin/python3").args(["-c", script, db.to_str().unwrap(), query]).output().unwrap();
    assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn the_fetcher_follows_the_active_set_through_a_takedown_and_the_database_repeats() {
    let dir = scratch("scenario-testnet");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs");
    std::fs::create_dir_all(dir.join("testnet")).unwrap();
    for f in ["uptime.py", "node.py", "fetch.py"] {
        std::fs::copy(source.join("testnet").join(f), dir.join("testnet").join(f)).unwrap();
    }
    let spec = write_spec(&dir, "testnet.toml", &read(source.join("testnet-services.toml")));
    let digests = digests_by_run(&dir, &spec, &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"], "one digest on one and two shards");
    let db = |run: &str| dir.join(run).join("hosts/fetcher/data/logs.db");
    let dump = "SELECT 'polls', at, active FROM polls UNION ALL SELECT node, height, line || fetched_at FROM lines";
    assert_eq!(sql(&db("one"), dump), sql(&db("two"), dump), "the same database");

    // Polls at 10, 20, … 70 s (simulated, from the start date 2000-01-01): node2 submitted last at
    // about 26 s, before its stop at 30 s, so the polls at 40 and 50 s leave it out (12 s without
    // a submission); it is back by 60 s.
    let polls = sql(&db("one"), "SELECT CAST(at - 946684800 AS INTEGER), active FROM polls ORDER BY at");
    let all = "node0,node1,node2";
    assert_eq!(
        polls,
        ["10", "20", "30", "40", "50", "60", "70"].map(|t| {
            let active = if t == "40" || t == "50" { "node0,node1" } else { all };
            format!("{t}|{active}")
        })
    );
    // Every node's log arrived whole: heights 1 to the last fetched, no gap, no repeat — node2's
    // across its restart, which resumed its height from its data directory. The rogue never.
    let heights =
        sql(&db("one"), "SELECT node, COUNT(*), MIN(height), MAX(height) FROM lines GROUP BY node ORDER BY node");
    assert_eq!(heights.len(), 3, "{heights:?}");
    for row in &heights {
        let f: Vec<&str> = row.split('|').collect();
        assert_eq!((f[1], f[2]), (f[3], "1"), "{row}");
    }
    let uptime = read(dir.join("one/hosts/uptime/uptime.py.0.stdout"));
    assert!(uptime.contains("rejected rogue") && !uptime.contains("submit rogue"), "{uptime}");
    let node2 = read(dir.join("one/hosts/node2/node.py.0.stdout"));
    let ups: Vec<&str> = node2.lines().filter(|l| l.contains("up at height")).collect();
    assert!(ups.len() == 2 && ups[0] == "node2 up at height 0" && ups[1] != ups[0], "{node2}");
}
