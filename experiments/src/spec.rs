//! The experiment spec: one TOML file describing a whole run. Errors point at the file, line and
//! column, and say what was expected.

use std::path::{Path, PathBuf};
use thermocline_bus::SimDuration;
use thermocline_calibration::config::CalibrationSpec;
use thermocline_direct::{ProcessSpec, StartDate};
use thermocline_models::directory::HostGroupSpec;
use thermocline_models::idle::IdleConfig;
use thermocline_models::metrics::TableFormat;
use thermocline_models::network::{NetworkError, NetworkModel, NetworkSpec};
use thermocline_models::phold::PholdConfig;
use thermocline_surrogate::config::{GossipSpec, PeerDiscovery, TrafficSpec};
use thermocline_surrogate::discv5::Discv5Spec;

/// The spec `thermocline run` uses when given none.
pub const DEFAULT_SPEC: &str = include_str!("../specs/default.toml");

/// The PHOLD example spec (`experiments/specs/phold.toml`).
pub const PHOLD_SPEC: &str = include_str!("../specs/phold.toml");

/// Which backend runs the shards.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Shards as threads of one process.
    Threads,
    /// One OS process per shard, coordinated over Unix sockets.
    Processes,
    /// One MPI rank per shard (run under `mpirun`; needs a build with `--features mpi`).
    Mpi,
}

impl Backend {
    /// The name used in specs, flags and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Threads => "threads",
            Backend::Processes => "processes",
            Backend::Mpi => "mpi",
        }
    }
}

/// `[run]`: what every experiment has.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// A name for the run, shown in summaries.
    pub name: String,
    /// The seed of every random stream.
    pub seed: u64,
    /// Simulated duration: events at or after it are not executed.
    pub duration: SimDuration,
    /// Number of shards (overridden by `--shards`).
    pub shards: u32,
    /// Backend (overridden by `--backend`): threads, processes or mpi.
    pub backend: Backend,
    /// The simulated calendar date at time zero (what direct hosts' clocks show), RFC 3339 UTC.
    pub start_date: StartDate,
    /// Wall time (not simulated time) a shard process may go without a frame or heartbeat before
    /// the run ends naming it as stalled (processes backend); must be positive.
    pub stall_timeout: SimDuration,
    /// Pin each shard that runs direct hosts, and the processes it launches, to one CPU
    /// (wall time only; results are the same either way).
    pub pin_cpus: bool,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            name: "experiment".into(),
            seed: 1,
            duration: SimDuration::from_secs(1),
            shards: 1,
            backend: Backend::Threads,
            start_date: StartDate::default(),
            stall_timeout: SimDuration::from_secs(thermocline_bus::process::DEFAULT_STALL_TIMEOUT.as_secs()),
            pin_cpus: true,
        }
    }
}

/// `[output]`: where results go.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Output directory (overridden by `--out`); relative paths are relative to the working directory.
    pub dir: PathBuf,
    /// `false` writes no table files (the key from before `format`; `true` is the default and
    /// means `format`'s files). After [`Spec::parse`] it is `None` unless `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrow: Option<bool>,
    /// Which files each metrics table is written as: `"arrow"` (IPC), `"parquet"` or `"both"`.
    /// After [`Spec::parse`] it is set whenever tables are written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormat>,
    /// Count every syscall of every direct-host binary (table `direct_syscalls`; also
    /// `thermocline run --syscall-stats`).
    pub syscall_stats: bool,
    /// Capture every IPv4 packet each direct host sends and receives, with simulated timestamps,
    /// in `hosts/<host>/packets.pcap` (also `thermocline run --pcap`).
    pub pcap: bool,
    /// Also print notes about this machine (`thermocline run --verbose`; not a spec setting).
    #[serde(skip)]
    pub verbose: bool,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            dir: PathBuf::from("out"),
            arrow: None,
            format: None,
            syscall_stats: false,
            pcap: false,
            verbose: false,
        }
    }
}

impl OutputSection {
    /// The files a run writes for each table, or `None` when it writes none (`arrow = false`).
    pub fn tables(&self) -> Option<TableFormat> {
        match self.arrow {
            Some(false) => None,
            _ => Some(self.format.unwrap_or_default()),
        }
    }

    /// Settle the two keys into one setting (`format` filled in, `arrow` kept only as `false`),
    /// or say how they conflict, naming both keys.
    pub fn settle(&mut self) -> Result<(), String> {
        match (self.arrow, self.format) {
            (Some(false), Some(f)) => Err(format!(
                "output.arrow = false (write no table files) conflicts with output.format = \"{}\"; keep one of them",
                f.name()
            )),
            (Some(true), Some(TableFormat::Parquet)) => Err("output.arrow = true asks for Arrow files, but \
                output.format = \"parquet\" writes none; drop output.arrow, or use format = \"both\""
                .to_string()),
            (Some(false), None) => Ok(()),
            (_, f) => {
                self.arrow = None;
                self.format = Some(f.unwrap_or_default());
                Ok(())
            }
        }
    }
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// General settings.
    #[serde(default)]
    pub run: RunSection,
    /// The PHOLD workload.
    pub phold: Option<PholdConfig>,
    /// The idle workload (window-overhead measurement).
    pub idle: Option<IdleConfig>,
    /// The network: topology and routing.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Host groups (`[[hosts]]`).
    #[serde(default)]
    pub hosts: Vec<HostGroupSpec>,
    /// The gossip workload: surrogate gossipsub identities (`[gossip]`).
    pub gossip: Option<GossipSpec>,
    /// Slot traffic of the gossip workload.
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// The discovery workload: surrogate discv5 identities (`[discv5]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discv5: Option<Discv5Spec>,
    /// Output settings.
    #[serde(default)]
    pub output: OutputSection,
    /// Programs run on direct hosts (`[[processes]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessSpec>,
    /// The timeline of what happens to the network (`[[scenario]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenario: Vec<crate::scenario::ScenarioSpec>,
    /// Direct hosts that send datagrams at a rate without a program (`[[traffic_sources]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic_sources: Vec<thermocline_direct::sources::TrafficSourceSpec>,
    /// Port mirrors on direct hosts, read with packet sockets (`[[mirrors]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<thermocline_direct::packet::MirrorSpec>,
    /// How `thermocline calibrate` runs this spec's scenario (`[calibration]`); `thermocline
    /// run` runs the spec as written and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSpec>,
}

/// The workload a spec selects.
pub enum Workload<'a> {
    /// PHOLD.
    Phold(&'a PholdConfig),
    /// Idle ticks.
    Idle(&'a IdleConfig),
    /// Gossipsub surrogates.
    Gossip(&'a GossipSpec),
    /// Discv5 surrogates.
    Discv5(&'a Discv5Spec),
    /// Real binaries on direct hosts (`[[processes]]`).
    Direct(&'a [ProcessSpec]),
    /// Both in one run: direct hosts and surrogate identities, each shard holding both kinds.
    Hybrid {
        /// The surrogates' gossip.
        gossip: &'a GossipSpec,
        /// The direct hosts' programs.
        processes: &'a [ProcessSpec],
    },
    /// Direct hosts beside discv5 surrogates: real clients walk the surrogates' DHT.
    Discv5Hybrid {
        /// The surrogates' discovery.
        discv5: &'a Discv5Spec,
        /// The direct hosts' programs.
        processes: &'a [ProcessSpec],
    },
}

/// A spec that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bad TOML or a value of the wrong shape, at a known place.
    #[error("{origin}:{line}:{column}: {message}\n{excerpt}")]
    Syntax {
        /// File name (or `<default spec>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
        /// The offending line with a caret under the column.
        excerpt: String,
    },
    /// The network or host groups cannot be built (the caller names the spec).
    #[error("{0}")]
    Model(String),
    /// Well-formed, but the values do not make a runnable experiment.
    #[error("{origin}: {message}")]
    Invalid {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// 1-based line and column of byte `offset` in `text`, and the line itself.
fn locate(text: &str, offset: usize) -> (usize, usize, &str) {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[..offset].matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    (line, column, &text[line_start..line_end])
}

/// The span of the key at `path` in a parsed document: dotted names, each optionally indexed
/// (`phold.lps`, `hosts[1].name`, `traffic.beacon_block.size`).
fn key_span(doc: &toml::de::DeTable<'_>, path: &str) -> Option<std::ops::Range<usize>> {
    use toml::de::DeValue;
    let mut table = doc;
    let mut span = None;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(key.span());
        let mut value = value.get_ref();
        if let Some(i) = index {
            let DeValue::Array(items) = value else { return span };
            let item = items.get(i)?;
            span = Some(item.span());
            value = item.get_ref();
        }
        match value {
            DeValue::Table(t) if parts.peek().is_some() => table = t,
            _ => break,
        }
    }
    span
}

/// The first word of `message` that names a key of the document, with its span: validation
/// messages name the key they are about (`phold.lps must be at least 1`).
fn first_key_in(doc: &toml::de::DeTable<'_>, message: &str) -> Option<std::ops::Range<usize>> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']');
    let named = message
        .split(|c: char| !is_key_char(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.contains('.') || w.contains('['))
        .find_map(|w| key_span(doc, w));
    named.or_else(|| group_span(doc, message))
}

/// The span of the `[[hosts]]` group that `message` names as `hosts group "NAME"`.
fn group_span(doc: &toml::de::DeTable<'_>, message: &str) -> Option<std::ops::Range<usize>> {
    use toml::de::DeValue;
    let rest = &message[message.find("hosts group \"")? + "hosts group \"".len()..];
    let name = &rest[..rest.find('"')?];
    let (_, hosts) = doc.iter().find(|(k, _)| k.get_ref().as_ref() == "hosts")?;
    let DeValue::Array(groups) = hosts.get_ref() else { return None };
    let index = groups.iter().position(|g| match g.get_ref() {
        DeValue::Table(t) => t.iter().any(|(k, v)| {
            k.get_ref().as_ref() == "name" && matches!(v.get_ref(), DeValue::String(s) if s.as_ref() == name)
        }),
        _ => false,
    })?;
    key_span(doc, &format!("hosts[{index}].name"))
}

/// A message about a spec's values, placed at the key it names when `text` has that key:
/// `file:line:column: message` and the line with a caret, as syntax errors are shown.
pub fn locate_message(text: &str, origin: &str, message: &str) -> SpecError {
    let doc = toml::de::DeTable::parse(text).ok();
    let Some(span) = doc.as_ref().and_then(|d| first_key_in(d.get_ref(), message)) else {
        return SpecError::Invalid { origin: origin.to_string(), message: message.to_string() };
    };
    let (line, column, source_line) = locate(text, span.start);
    let excerpt = format!("  | {source_line}\n  | {}^", " ".repeat(column.saturating_sub(1)));
    SpecError::Syntax { origin: origin.to_string(), line, column, message: message.to_string(), excerpt }
}

impl Spec {
    /// Parse spec text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecError> {
        let mut spec: Spec = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column, source_line) = locate(text, offset);
            let excerpt = format!("  | {source_line}\n  | {}^", " ".repeat(column.saturating_sub(1)));
            SpecError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
                excerpt,
            }
        })?;
        if [spec.phold.is_some(), spec.idle.is_some(), spec.gossip.is_some()].iter().filter(|&&w| w).count() > 1 {
            let message = "the spec defines more than one workload ([gossip], [phold], [idle]); keep one".to_string();
            return Err(SpecError::Invalid { origin: origin.to_string(), message });
        }
        spec.output.settle().map_err(|message| locate_message(text, origin, &message))?;
        if let Some(c) = &spec.calibration {
            c.check().map_err(|message| locate_message(text, origin, &message))?;
        }
        if spec.run.stall_timeout == SimDuration::ZERO {
            let message = "run.stall_timeout must be longer than 0 s: it is the wall time a shard process may \
                go without a sign of life before the run ends"
                .to_string();
            return Err(SpecError::Invalid { origin: origin.to_string(), message });
        }
        Ok(spec)
    }

    /// Read and parse a spec file. Relative paths in it (a GML file) are taken from the spec's
    /// folder and stored absolute, so the spec can be handed to shard processes as it is.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Io { path: path.display().to_string(), source })?;
        let mut spec = Spec::parse(&text, &path.display().to_string())?;
        spec.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(spec)
    }

    /// Make the spec's relative paths absolute, taking them from `folder` (the spec's): the GML
    /// file, and executables written with a folder (bare names are looked up on PATH).
    pub fn resolve_paths(&mut self, folder: &Path) {
        if let Some(gml) = &self.network.gml {
            let joined = folder.join(gml);
            self.network.gml = Some(std::path::absolute(&joined).unwrap_or(joined));
        }
        let client = self.calibration.as_mut().and_then(|c| c.client.as_mut());
        let commands = self.scenario.iter_mut().filter_map(|e| e.path.as_mut());
        for path in self.processes.iter_mut().map(|p| &mut p.path).chain(client).chain(commands) {
            if path.is_relative() && path.components().count() > 1 {
                let joined = folder.join(&*path);
                *path = std::path::absolute(&joined).unwrap_or(joined);
            }
        }
        // A step's `process` names a `[[processes]]` path as written: resolve it alike.
        for name in self.scenario.iter_mut().filter_map(|e| e.process.as_mut()) {
            let path = std::path::Path::new(name.as_str());
            if path.is_relative() && path.components().count() > 1 {
                let joined = folder.join(path);
                *name = std::path::absolute(&joined).unwrap_or(joined).to_string_lossy().into_owned();
            }
        }
    }

    /// Build the network model of the spec's `[network]` and `[[hosts]]`.
    pub fn network_model(&self) -> Result<NetworkModel, SpecError> {
        let invalid = SpecError::Model;
        let gml_text = match (&self.network.gml, &self.network.gml_inline) {
            (Some(_), Some(_)) => {
                return Err(invalid("network: give `gml` (a file) or `gml_inline` (the graph), not both".into()));
            }
            (Some(p), None) => Some((
                std::fs::read_to_string(p).map_err(|e| invalid(format!("reading {}: {e}", p.display())))?,
                p.display().to_string(),
            )),
            (None, Some(text)) => Some((text.clone(), "network.gml_inline".to_string())),
            (None, None) => None,
        };
        NetworkModel::build(&self.network, gml_text.as_ref().map(|(t, o)| (t.as_str(), o.as_str())), &self.hosts)
            .map_err(|e: NetworkError| invalid(e.to_string()))
    }

    /// The built-in default experiment.
    pub fn default_experiment() -> Spec {
        Spec::parse(DEFAULT_SPEC, "<default spec>").expect("the embedded default spec is valid")
    }

    /// The one workload this spec defines.
    pub fn workload(&self) -> Result<Workload<'_>, String> {
        // `[discv5]` beside `[gossip]` configures the gossip identities' discovery.
        if let (Some(g), Some(_)) = (&self.gossip, &self.discv5)
            && g.discovery != PeerDiscovery::Discv5
        {
            return Err("[discv5] beside [gossip] configures how gossip identities find their peers: \
                set [gossip] discovery = \"discv5\" (or drop [discv5])"
                .into());
        }
        if !self.processes.is_empty() {
            if let Some(discv5) = &self.discv5
                && self.gossip.is_none()
            {
                if self.phold.is_some() || self.idle.is_some() {
                    return Err("the spec has [[processes]], [discv5] and a [phold] or [idle] workload; direct \
                        hosts run beside [discv5] or [gossip] surrogates"
                        .into());
                }
                return Ok(Workload::Discv5Hybrid { discv5, processes: &self.processes });
            }
            if self.phold.is_some() || self.idle.is_some() {
                return Err("the spec has [[processes]] and a [phold] or [idle] workload; direct hosts run \
                    alone or beside [gossip] surrogates"
                    .into());
            }
            return Ok(match &self.gossip {
                Some(gossip) => Workload::Hybrid { gossip, processes: &self.processes },
                None => Workload::Direct(&self.processes),
            });
        }
        match (&self.phold, &self.idle, &self.gossip, &self.discv5) {
            (Some(p), None, None, None) => Ok(Workload::Phold(p)),
            (None, Some(i), None, None) => Ok(Workload::Idle(i)),
            (None, None, Some(g), _) => Ok(Workload::Gossip(g)),
            (None, None, None, Some(d)) => Ok(Workload::Discv5(d)),
            (None, None, None, None) => Err("the spec defines no workload; add a [gossip], [discv5], [phold] or \
                 [idle] section, or [[processes]]"
                .into()),
            _ => Err("the spec defines more than one workload ([gossip], [discv5], [phold], [idle]); keep one".into()),
        }
    }

    /// The spec as TOML, e.g. to hand to shard processes or store beside the results.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a spec always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_round_trips() {
        let spec = Spec::default_experiment();
        assert_eq!(spec.hosts[0].count, 20_000);
        assert!(spec.gossip.is_some());
        assert_eq!(Spec::parse(&spec.to_toml(), "x").unwrap(), spec);
    }

    #[test]
    fn output_format_and_the_arrow_key_settle_into_one_setting() {
        let parse = |keys: &str| Spec::parse(&format!("[output]\n{keys}\n"), "o.toml");
        let tables = |keys: &str| parse(keys).unwrap().output.tables();
        assert_eq!(tables(""), Some(TableFormat::Arrow));
        assert_eq!(tables("arrow = true"), Some(TableFormat::Arrow));
        assert_eq!(tables("arrow = false"), None);
        assert_eq!(tables("format = \"parquet\""), Some(TableFormat::Parquet));
        assert_eq!(tables("format = \"both\"\narrow = true"), Some(TableFormat::Both));
        for keys in ["", "arrow = false", "format = \"both\"", "arrow = true\nformat = \"arrow\""] {
            let spec = parse(keys).unwrap();
            assert_eq!(Spec::parse(&spec.to_toml(), "again").unwrap(), spec, "{keys}");
        }
        let err = parse("arrow = false\nformat = \"parquet\"").unwrap_err().to_string();
        assert!(err.starts_with("o.toml:2:1: output.arrow = false"), "{err}");
        assert!(err.contains("conflicts with output.format"), "{err}");
        let err = parse("format = \"parquet\"\narrow = true").unwrap_err().to_string();
        assert!(err.starts_with("o.toml:3:1: output.arrow = true"), "{err}");
        let err = parse("format = \"csv\"").unwrap_err().to_string();
        assert!(err.starts_with("o.toml:2:10: ") && err.contains("unknown variant `csv`"), "{err}");
    }

    #[test]
    fn example_specs_parse() {
        let phold = Spec::parse(PHOLD_SPEC, "phold.toml").unwrap();
        assert_eq!(phold.phold.unwrap().lps, 10_000);
    }

    #[test]
    fn errors_name_file_line_column_and_expectation() {
        let text = "[run]\nseed = 1\nduration = \"10 parsecs\"\n[phold]\n";
        let err = Spec::parse(text, "exp.toml").unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:3:12: "), "{err}");
        assert!(err.contains("unknown duration unit"), "{err}");

        let err = Spec::parse("[phold]\nlpz = 3\n", "exp.toml").unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:2:1: "), "{err}");
        assert!(err.contains("unknown field `lpz`"), "{err}");

        let err = Spec::parse("[phold]\nlps = \"many\"\n", "e.toml").unwrap_err().to_string();
        assert!(err.starts_with("e.toml:2:7: "), "{err}");

        let spec = Spec::parse("[run]\nseed = 1\n", "e.toml").unwrap();
        assert!(spec.workload().err().unwrap().contains("no workload"));
        let err = Spec::parse("[phold]\n[idle]\n", "e.toml").unwrap_err().to_string();
        assert!(err.contains("more than one workload"), "{err}");

        let err = Spec::parse("[run\n", "e.toml").unwrap_err().to_string();
        assert!(err.starts_with("e.toml:1:"), "{err}");
    }

    #[test]
    fn value_errors_point_at_the_key_they_name() {
        let text = "[run]\nseed = 1\n\n[phold]\ngroups = 2\nlps = 0\n";
        let err = locate_message(text, "p.toml", "phold.lps must be at least 1").to_string();
        assert!(err.starts_with("p.toml:6:1: phold.lps must be at least 1"), "{err}");
        let text = "[[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\ncount = 0\n";
        let err = locate_message(text, "h.toml", "hosts[1].count must be positive").to_string();
        assert!(err.starts_with("h.toml:5:1: "), "{err}");
        let text = "traffic.beacon_block.size = \"1 Tbit\"\n";
        let err = locate_message(text, "t.toml", "traffic.beacon_block.size 1 Tbit is too large").to_string();
        assert!(err.starts_with("t.toml:1:22: "), "{err}");
        let text = "[[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\n";
        let err = locate_message(text, "h.toml", "hosts group \"b\": unknown location").to_string();
        assert!(err.starts_with("h.toml:4:1: "), "{err}");
        let err = locate_message("[run]\n", "r.toml", "no key named here").to_string();
        assert_eq!(err, "r.toml: no key named here");
    }

    #[test]
    fn direct_processes_and_start_dates_parse_with_located_errors() {
        let ok = "[run]\nstart_date = \"2026-01-01T00:00:00Z\"\n[[hosts]]\nname = \"a\"\nkind = \"direct\"\ncount = 1\n\
                  [[processes]]\nhost = \"a\"\npath = \"sh\"\nargs = [\"-c\", \"true\"]\nstart = \"1 s\"\n\
                  expected_exit = \"running\"\n";
        let spec = Spec::parse(ok, "d.toml").unwrap();
        assert!(matches!(spec.workload(), Ok(Workload::Direct(p)) if p.len() == 1));
        assert_eq!(spec.run.start_date.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(Spec::parse(&spec.to_toml(), "x").unwrap(), spec);

        let err = Spec::parse("[run]\nstart_date = \"2026-13-01T00:00:00Z\"\n", "d.toml").unwrap_err().to_string();
        assert!(err.starts_with("d.toml:2:14: ") && err.contains("RFC 3339"), "{err}");
        let err = Spec::parse(&ok.replace("\"running\"", "\"SIGFOO\""), "d.toml").unwrap_err().to_string();
        assert!(err.starts_with("d.toml:12:17: ") && err.contains("unknown expected exit"), "{err}");
        let err = Spec::parse(&ok.replace("args", "argz"), "d.toml").unwrap_err().to_string();
        assert!(err.starts_with("d.toml:10:1: ") && err.contains("unknown field `argz`"), "{err}");
        let mixed = Spec::parse(&format!("{ok}[phold]\n"), "d.toml").unwrap();
        assert!(mixed.workload().err().unwrap().contains("beside [gossip] surrogates"));
        let hybrid = Spec::parse(&format!("{ok}[gossip]\n"), "d.toml").unwrap();
        assert!(matches!(hybrid.workload(), Ok(Workload::Hybrid { processes, .. }) if processes.len() == 1));
        let discovery = Spec::parse(&format!("{ok}[discv5]\n"), "d.toml").unwrap();
        assert!(matches!(discovery.workload(), Ok(Workload::Discv5Hybrid { processes, .. }) if processes.len() == 1));
        let both = Spec::parse(&format!("{ok}[discv5]\n[gossip]\n"), "d.toml").unwrap();
        assert!(both.workload().err().unwrap().contains("discovery = \"discv5\""));
        let found = Spec::parse(&format!("{ok}[discv5]\n[gossip]\ndiscovery = \"discv5\"\n"), "d.toml").unwrap();
        assert!(matches!(found.workload(), Ok(Workload::Hybrid { .. })));
    }
}
