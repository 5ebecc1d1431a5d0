//! `thermocline report`: one self-contained HTML page (`report.html`) with a run's summary and
//! plots, read from its output folder alone: `summary.json`, the Arrow IPC tables and, for
//! direct hosts, their packet captures. Plots are SVG drawn here (`plotters`); the page has
//! inline CSS and no script, font or link to anything outside it. A plot whose data the run does
//! not have is a one-line note saying why, never an empty chart. The same folder gives the same
//! bytes: nothing on the page depends on when or where it was made.
//!
//! What each plot shows and which table it comes from: `docs/report.md`.

mod bus;
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
