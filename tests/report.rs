//! `thermocline report` end to end: a short run like the default experiment and a direct run with
//! `--syscall-stats` and `--pcap` each get a `report.html` that headless Chromium renders with
//! every plot drawn; the page is self-contained and the same folder gives the same bytes.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The default experiment, smaller and shorter: 1,500 identities over the RIPE country table,
/// a 100 KiB block per 12-s slot from 10 s, three slots.
fn gossip_spec(dir: &Path) -> PathBuf {
    SpecBuilder::switch(1, "40 s", "10 ms")
        .network("topology = \"ripe-country\"")
        .surrogates(
            "tail",
            1500,
            "countries = { DE = 0.22, US = 0.20, FR = 0.06, GB = 0.05, other = 0.47 }\n\
             bandwidth = { up = \"50 Mbit\", down = \"200 Mbit\" }\n",
        )
        .sections(
            "[gossip]\nprofile = \"ethereum\"\n\n[traffic]\nstart = \"10 s\"\nslot = \"12 s\"\n\
             beacon_block = { size = \"100 KiB\", proposer_delay = \"0 ms\" }\n",
        )
        .write(dir, "gossip.toml")
}

/// `chromium`, failing the test with the package to install when it is missing.
fn chromium() -> String {
    need("/usr/bin/chromium", "chromium")
}

/// Chromium's headless flags: no sandbox (tests may run as root), no GPU, nothing fetched.
const HEADLESS: [&str; 5] =
    ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];

/// Run Chromium on `page` with `args`, each run with its own profile folder under `dir`.
fn chromium_on(dir: &Path, page: &Path, args: &[&str]) -> std::process::Output {
    let profile = dir.join(format!("chromium-profile-{}", args.len()));
    let out = Command::new(chromium())
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    assert!(out.status.success(), "chromium failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The page as Chromium's DOM after loading and laying it out.
fn rendered_dom(dir: &Path, page: &Path) -> String {
    String::from_utf8(chromium_on(dir, page, &["--dump-dom"]).stdout).expect("the DOM is UTF-8")
}

/// The markup of the `<figure data-plot="id">`, failing the test when it is missing.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("data-plot=\"{id}\"");
    let start = dom.find(&open).unwrap_or_else(|| panic!("no plot {id} on the page"));
    let end = dom[start..].find("</figure>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Every plot in `ids` is on the page, drawn: an `<svg>` with at least `min_marks` lines, paths,
/// rectangles or circles, and no "not in this run" note.
fn assert_drawn(dom: &str, ids: &[&str], min_marks: usize) {
    for id in ids {
        let f = figure(dom, id);
        assert!(!f.contains("data-absent"), "plot {id} is absent: {f}");
        assert!(f.contains("<svg"), "plot {id} has no SVG");
        let marks: usize = ["<polyline", "<path", "<rect", "<circle"].iter().map(|m| f.matches(m).count()).sum();
        assert!(marks >= min_marks, "plot {id} has {marks} drawn elements");
    }
}

/// The page loads nothing from anywhere: no script, no link, no URL but SVG's namespace.
fn assert_self_contained(page: &str) {
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="), "external resource");
    let urls = page.matches("http://").count() + page.matches("https://").count();
    let namespaces = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, namespaces, "the only URLs are SVG's namespace");
}

/// Decode `png` with python3's zlib and return (width, height, distinct colours, share of pixels
/// that are not white): enough to tell a drawn page from a blank one.
fn png_stats(png: &Path) -> (u64, u64, u64, f64) {
    let script = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, colour = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
assert depth == 8 and colour in (2, 6), (depth, colour)
bpp = 3 if colour == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, colours, ink = bytearray(stride), set(), 0
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        colours.add(px)
        ink += px != b'\xff\xff\xff'
    prev = line
print(w, h, len(colours), ink / (w * h))
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(png).output().expect("run python3");
    assert!(out.status.success(), "decoding the screenshot failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<&str> = text.split_whitespace().collect();
    (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap(), v[3].parse().unwrap())
}

#[test]
fn a_gossip_runs_report_renders_every_plot_and_is_the_same_each_time() {
    let dir = scratch("report-gossip");
    let spec = gossip_spec(&dir);
    let out = dir.join("out");
    let limit = Duration::from_secs(120);
    let args = ["run", spec.to_str().unwrap(), "-q", "--shards", "2", "--out", out.to_str().unwrap(), "--report"];
    let run = run_with_deadline(&args, limit);
    assert!(run.status.success(), "the run failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let page_path = out.join("report.html");
    let first = std::fs::read(&page_path).expect("run --report wrote report.html");
    assert!(!dir.join(".out.partial").exists(), "the report is written before the folder is published");

    // The same folder gives the same bytes, from `run --report` and from `report` alike.
    let again = run_with_deadline(&["report", out.to_str().unwrap()], limit);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), page_path.to_str().unwrap());
    assert!(std::fs::read(&page_path).unwrap() == first, "report.html differs between two renderings of one folder");

    let page = String::from_utf8(first).unwrap();
    assert_self_contained(&page);
    let digest = summary(&out)["digest"].as_str().unwrap().to_string();
    assert!(page.contains(&digest), "the summary table shows the digest");
    assert!(page.len() < 1_000_000, "the page stays small: {} bytes", page.len());

    let dom = rendered_dom(&dir, &page_path);
    assert!(dom.contains("Delivery per topic family"), "the summary table is rendered");
    let gossip = [
        "arrival-cdf",
        "slot-reliability",
        "slot-p95",
        "duplicates-per-node",
        "bytes-per-node",
        "mesh-degree-beacon_block",
    ];
    assert_drawn(&dom, &gossip, 2);
    assert_drawn(&dom, &["barrier-idle", "events-over-time"], 2);
    assert_drawn(&dom, &["cut-matrix"], 4);
    // No real clients in this run: the hot/cold plot says so instead of drawing empty axes.
    let hot = figure(&dom, "arrival-hot-cold");
    assert!(hot.contains("data-absent") && hot.contains("Not in this run") && !hot.contains("<svg"), "{hot}");

    let shot = dir.join("report.png");
    chromium_on(&dir, &page_path, &[&format!("--screenshot={}", shot.display()), "--window-size=1280,2000"]);
    let (w, h, colours, ink) = png_stats(&shot);
    assert_eq!((w, h), (1280, 2000));
    assert!(colours > 50 && ink > 0.02, "the screenshot is blank: {colours} colours, {:.3} of pixels inked", ink);
}

/// A TCP exchange between two direct hosts: socat answers one HTTP request with a fixed reply
/// (a file it `cat`s), curl fetches it and closes.
fn direct_spec(dir: &Path) -> PathBuf {
    let socat = need("/usr/bin/socat", "socat");
    let curl = need("/usr/bin/curl", "curl");
    let reply = dir.join("reply.http");
    std::fs::write(&reply, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
    // The reply, then the rest of the request until curl closes (nothing written to a closed pipe).
    let serve = format!("SYSTEM:cat {}; cat >/dev/null", reply.display());
    SpecBuilder::alice_bob(3, "8 s", "100 Mbit")
        .process("bob", &socat, &["-T", "5", "TCP-LISTEN:8080,reuseaddr", &serve], "1 s", "")
        .process("alice", &curl, &["-sS", "http://10.0.0.2:8080/"], "2 s", "")
        .write(dir, "direct.toml")
}

#[test]
fn a_direct_runs_report_has_the_syscall_plots_and_packet_timelines() {
    let dir = scratch("report-direct");
    let spec = direct_spec(&dir);
    let out = dir.join("out");
    let args = ["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap(), "--syscall-stats", "--pcap"];
    run_ok(&args);
    assert_eq!(read(out.join("hosts/alice/curl.0.stdout")), "hello");
    let page_path = out.join("report.html");
    assert!(!page_path.exists(), "without --report, run writes no report");
    run_ok(&["report", out.to_str().unwrap()]);
    let page = read(page_path.clone());
    assert_self_contained(&page);
    let dom = rendered_dom(&dir, &page_path);
    assert_drawn(&dom, &["syscall-mix", "wakeups", "wait-events"], 4);
    assert_drawn(&dom, &["packet-timeline", "events-over-time"], 2);
    assert!(dom.contains("data-table=\"direct-processes\"") && dom.contains(">curl.0<"), "the processes table");
    // No gossip section at all, and one shard: no cut matrix.
    assert!(!dom.contains("data-plot=\"arrival-cdf\""), "a direct-only run has no gossip plots");
    assert!(figure(&dom, "cut-matrix").contains("data-absent"));
}

#[test]
fn a_folder_without_a_run_is_refused() {
    let dir = scratch("report-empty");
    let out = run_with_deadline(&["report", dir.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("summary.json"), "{err}");
    assert!(!dir.join("report.html").exists());
}
