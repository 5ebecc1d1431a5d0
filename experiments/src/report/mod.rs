//! `thermocline report`: one self-contained HTML page (`report.html`) with a run's summary and
//! plots, read from its output folder alone: `summary.json`, the Arrow IPC tables and, for
//! direct hosts, their packet captures. Plots are SVG drawn here (`plotters`); the page has
//! inline CSS and no script, font or link to anything outside it. A plot whose data the run does
//! not have is a one-line note saying why, never an empty chart. The same folder gives the same
//! bytes: nothing on the page depends on when or where it was made.
//!
//! What each plot shows and which table it comes from: `docs/report.md`.

mod bus;
pub mod calibration;
mod chart;
pub mod data;
pub mod direct;
mod gossip;
mod html;
mod stats;

use chart::LineChart;
use data::RunFolder;
use std::path::{Path, PathBuf};

/// The report's file name in the output folder.
pub const REPORT_FILE: &str = "report.html";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// `summary.json` is not a run's summary.
    #[error("{path}: not a thermocline run summary: {source}")]
    Summary {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        #[source]
        source: serde_json::Error,
    },
    /// A table could not be read.
    #[error("table {table}: {source}")]
    Table {
        /// The table.
        table: String,
        /// What the reader said.
        #[source]
        source: thermocline_models::metrics::MetricsError,
    },
    /// A table lacks a column a plot needs, or has it with another type.
    #[error("table {table}: column {column} {why}")]
    Column {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong with it.
        why: String,
    },
    /// A packet capture is malformed.
    #[error("{path}: {why}")]
    Capture {
        /// The capture.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Drawing a plot failed.
    #[error("drawing a plot: {0}")]
    Plot(String),
    /// The report could not be written.
    #[error(transparent)]
    Write(#[from] crate::outdir::OutputError),
}

/// One plot (or table) of the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Its stable name: the `data-plot` attribute tests and readers look it up by.
    pub id: String,
    /// Its heading.
    pub title: String,
    /// What it shows and where from (text; `backticks` mark table and column names).
    pub note: String,
    /// What it holds.
    pub body: Body,
}

/// What a figure holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// An SVG chart.
    Svg(String),
    /// An HTML fragment (a table).
    Html(String),
    /// Nothing: the run does not have the data, for this reason.
    Absent(String),
}

impl Figure {
    /// A figure the run has no data for, and why.
    pub fn absent(id: &str, title: &str, why: &str) -> Figure {
        Figure { id: id.into(), title: title.into(), note: String::new(), body: Body::Absent(why.into()) }
    }

    /// A figure holding the SVG chart `svg`.
    pub fn svg(id: &str, title: &str, note: &str, svg: String) -> Figure {
        Figure { id: id.into(), title: title.into(), note: note.into(), body: Body::Svg(svg) }
    }

    /// A figure holding an HTML fragment.
    pub fn html(id: &str, title: &str, note: &str, fragment: String) -> Figure {
        Figure { id: id.into(), title: title.into(), note: note.into(), body: Body::Html(fragment) }
    }

    /// A line chart, or, when it has no point, an absent figure saying `why_empty`.
    pub fn line(id: &str, title: &str, note: &str, c: &LineChart, why_empty: &str) -> Result<Figure, ReportError> {
        if !c.has_points() {
            return Ok(Figure::absent(id, title, why_empty));
        }
        Ok(Figure::svg(id, title, note, chart::line_chart(c)?))
    }
}

/// A titled group of figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its heading.
    pub title: String,
    /// Its figures, in page order.
    pub figures: Vec<Figure>,
}

/// The report page of the run in `dir`.
pub fn render(dir: &Path) -> Result<String, ReportError> {
    let run = RunFolder::open(dir)?;
    let mut sections = Vec::new();
    sections.extend(gossip::section(&run)?);
    sections.extend(direct::section(&run)?);
    sections.push(bus::section(&run)?);
    Ok(html::page(&run.summary, &sections))
}

/// Write `report.html` into the run folder `dir` (atomically: a reader sees the old page or the
/// new one) and return its path.
pub fn write_report(dir: &Path) -> Result<PathBuf, ReportError> {
    let page = render(dir)?;
    let path = dir.join(REPORT_FILE);
    crate::outdir::write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_bus::Table;
    use thermocline_models::metrics::{GossipArrivals, TableFormat, concat_tables, write_table};

    /// Write engine tables of one name as `<name>.arrow` in `dir`, as a run does.
    fn write(dir: &Path, tables: &[Table]) {
        let refs: Vec<&Table> = tables.iter().collect();
        let (schema, batches) = concat_tables(&tables[0].name, &refs).unwrap();
        write_table(dir, &tables[0].name, schema, &batches, TableFormat::Arrow).unwrap();
    }

    /// `n` first arrivals of `topic` in `slot`, 10 ms apart from `first_ms`, at nodes from `node`.
    fn arrivals(topic: &str, slot: u64, n: u32, node: u32, first_ms: u64) -> GossipArrivals {
        let mut a = GossipArrivals::default();
        for k in 0..n {
            a.slot.push(slot);
            a.topic.push(topic.into());
            a.message_id.push(slot);
            a.node.push(node + k);
            a.name.push(format!("n{}", node + k));
            a.implementation.push("c".into());
            a.slot_start_ns.push(slot * 12_000_000_000);
            a.arrival_ns.push(slot * 12_000_000_000 + (first_ms + 10 * u64::from(k)) * 1_000_000);
            a.since_publish_ns.push((first_ms + 10 * u64::from(k)) * 1_000_000);
            a.hops.push(1);
            a.from_peer.push(0);
            a.duplicates.push(k % 3);
        }
        a
    }

    /// A two-shard hybrid run's folder: blocks and one attestation subnet at surrogates, blocks
    /// at two real clients, no bus tables.
    fn hybrid_folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("thermocline-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let summary = serde_json::json!({
            "name": "hybrid", "digest": "ab", "seed": 1, "sim_time_ns": 40_000_000_000u64, "wall_s": 1.0,
            "events": 10, "events_per_s": 10.0, "windows": 4, "runahead_ns": 10_000_000, "shards": 2,
            "backend": "threads", "barrier_idle_fraction": 0.5, "cut_events": [[0, 1], [2, 0]],
            "cut_bytes": [[0, 10], [20, 0]], "files": [], "version": "0.1.0"
        });
        std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        let cold = [
            arrivals("beacon_block", 0, 40, 100, 50).table(false, 0).unwrap(),
            arrivals("beacon_block", 1, 38, 100, 60).table(false, 0).unwrap(),
            arrivals("beacon_attestation_3", 1, 20, 100, 30).table(false, 0).unwrap(),
            arrivals("beacon_block", 1, 2, 7, 200).table(true, 0).unwrap(),
        ];
        write(&dir, &cold);
        dir
    }

    /// The markup of the figure `id` of `page`.
    fn figure<'a>(page: &'a str, id: &str) -> &'a str {
        let at = page.find(&format!("data-plot=\"{id}\"")).unwrap_or_else(|| panic!("no figure {id}"));
        &page[at..at + page[at..].find("</figure>").expect("closed")]
    }

    #[test]
    fn a_hybrid_runs_page_draws_hot_beside_cold_and_says_what_it_lacks() {
        let dir = hybrid_folder("hybrid");
        let page = render(&dir).unwrap();
        for drawn in ["arrival-cdf", "arrival-hot-cold", "slot-p95", "duplicates-per-node"] {
            let f = figure(&page, drawn);
            assert!(f.contains("<polyline") && !f.contains("data-absent"), "{drawn}: {f}");
        }
        assert!(page.contains("beacon_attestation") && page.contains("beacon_block (hot)"));
        for (absent, why) in [
            ("slot-reliability", "lists no messages"),
            ("bytes-per-node", "gossip_nodes"),
            ("barrier-idle", "bus_windows"),
            ("cut-matrix", "bus_pairs"),
        ] {
            let f = figure(&page, absent);
            assert!(f.contains("data-absent") && f.contains(why) && !f.contains("<svg"), "{absent}: {f}");
        }
        assert_eq!(page, render(&dir).unwrap(), "the same folder gives the same page");
    }

    #[test]
    fn a_folder_without_a_summary_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("thermocline-report-{}-empty", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = render(&dir).unwrap_err().to_string();
        assert!(e.contains("summary.json"), "{e}");
    }
}
