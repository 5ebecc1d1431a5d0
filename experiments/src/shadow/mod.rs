//! Shadow 3.x configurations read as Thermocline specs: `thermocline run shadow.yaml` runs one,
//! `thermocline import shadow.yaml` prints the equivalent TOML spec.
//!
//! Every key Shadow defines is mapped onto the spec, noted and ignored (when it cannot change
//! results), or refused with its file, line and column and the reason; keys Shadow does not
//! define are refused the same way. Each Shadow host becomes a direct host: a `[[hosts]]` group
//! of one, placed on its `network_node_id`. `docs/shadow.md` lists every key.

pub mod args;
pub mod yaml;

use crate::spec::{Spec, SpecError};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use thermocline_bus::SimDuration;
use thermocline_direct::{ExpectedExit, ProcessSpec, Signal};
use thermocline_models::directory::{HostBandwidth, HostDirectory, HostGroupSpec, HostKind};
use thermocline_models::network::{NetworkError, NetworkModel, TopologyKind};
use thermocline_models::topology::{Topology, TopologyError, shadow_bandwidth, shadow_duration};
use thermocline_models::units::{Bandwidth, Size};
use yaml::{Entry, Node, Pos, Value};

/// Shadow's built-in `1_gbit_switch` graph, as its documentation gives it.
pub const ONE_GBIT_SWITCH: &str = "graph [
  directed 0
  node [
    id 0
    host_bandwidth_up \"1 Gbit\"
    host_bandwidth_down \"1 Gbit\"
  ]
  edge [
    source 0
    target 0
    latency \"1 ms\"
    packet_loss 0.0
  ]
]
";

/// Whether `path` names a Shadow configuration (`.yaml` or `.yml`) rather than a TOML spec.
pub fn is_shadow_config(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// A Shadow configuration read as a spec, and what the reading noted: keys ignored, addresses
/// not honoured, each `file:line:column: text`.
#[derive(Debug)]
pub struct Imported {
    /// The spec, with paths as written in the configuration (see [`Spec::resolve_paths`]).
    pub spec: Spec,
    /// Notes for the user (printed on stderr by `run` and `import`).
    pub notes: Vec<String>,
}

impl Imported {
    /// The spec as TOML, headed by comments naming its source and carrying the notes. Keys
    /// that have their default value are left out, so the spec shows what the configuration
    /// says.
    pub fn to_toml(&self, source: &str) -> String {
        let mut text = format!("# Imported from the Shadow configuration {source} by `thermocline import`.\n");
        for note in &self.notes {
            for (i, line) in note.lines().enumerate() {
                text += if i == 0 { "# note: " } else { "#   " };
                text += line;
                text += "\n";
            }
        }
        let full = toml::Table::try_from(&self.spec).expect("a spec always serialises");
        let defaults = toml::Table::try_from(empty_spec()).expect("a spec always serialises");
        let mut kept = without_defaults(full, &defaults);
        // Sections in the order docs/spec.md gives them (a table alone would sort them by name).
        for section in ["run", "output", "network", "hosts", "processes"] {
            if let Some(value) = kept.remove(section) {
                let one: toml::Table = [(section.to_string(), value)].into_iter().collect();
                text += "\n";
                text += &toml::to_string(&one).expect("a table always serialises");
            }
        }
        text
    }
}

/// A spec with nothing in it but Thermocline's defaults.
fn empty_spec() -> Spec {
    Spec {
        run: Default::default(),
        phold: None,
        idle: None,
        network: Default::default(),
        hosts: Vec::new(),
        gossip: None,
        traffic: Default::default(),
        discv5: None,
        output: Default::default(),
        processes: Vec::new(),
        scenario: Vec::new(),
        traffic_sources: Vec::new(),
        mirrors: Vec::new(),
        calibration: None,
    }
}

/// `table` without the keys whose values equal those of `defaults` (tables compared key by key,
/// and dropped when nothing is left in them).
fn without_defaults(mut table: toml::Table, defaults: &toml::Table) -> toml::Table {
    let keys: Vec<String> = table.keys().cloned().collect();
    for k in keys {
        match (table.remove(&k), defaults.get(&k)) {
            (Some(toml::Value::Table(t)), Some(toml::Value::Table(d))) => {
                let t = without_defaults(t, d);
                if !t.is_empty() {
                    table.insert(k, toml::Value::Table(t));
                }
            }
            (Some(v), Some(d)) if &v == d => {}
            (Some(toml::Value::Array(items)), _) => {
                // Entries of `[[hosts]]` or `[[processes]]`: without their empty tables (`env`).
                let items = items.into_iter().map(|item| match item {
                    toml::Value::Table(mut t) => {
                        t.retain(|_, v| !matches!(v, toml::Value::Table(x) if x.is_empty()));
                        toml::Value::Table(t)
                    }
                    other => other,
                });
                table.insert(k, toml::Value::Array(items.collect()));
            }
            (Some(v), _) => {
                table.insert(k, v);
            }
            (None, _) => {}
        }
    }
    table
}

/// Read the Shadow configuration at `path` for a run: as [`import`], with relative paths taken
/// from the configuration's folder and made absolute.
pub fn load(path: &Path) -> Result<Imported, SpecError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.display().to_string(), source })?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut imported = import(&text, &path.display().to_string(), folder)?;
    imported.spec.resolve_paths(folder);
    Ok(imported)
}

/// Read Shadow configuration `text` (named `origin` in messages; relative paths in it are taken
/// from `folder`) as a spec named after the file.
pub fn import(text: &str, origin: &str, folder: &Path) -> Result<Imported, SpecError> {
    let mut r = Reader { text, origin, folder, notes: Vec::new() };
    let root = yaml::parse(text).map_err(|e| r.err(e.pos, e.message))?;
    let mut spec = r.config(&root)?;
    // As a parsed spec has them: its output settings settled into one (Arrow files, the default).
    spec.output.settle().map_err(|message| r.err(root.pos, message))?;
    Ok(Imported { spec, notes: r.notes })
}

/// What a key of Shadow's that Thermocline does not map means here.
enum Rule {
    /// It cannot change results: noted and ignored, whatever its value.
    Note(&'static str),
    /// It changes results when not Shadow's default: refused unless it has that value.
    DefaultOnly(ShadowDefault, &'static str),
}

/// Shadow's default of a key, to compare a written value with.
enum ShadowDefault {
    Bool(bool),
    Str(&'static str),
    Time(u64),
    Bytes(u64),
    Null,
}

/// The `general` keys that are not mapped.
fn general_rule(key: &str) -> Option<Rule> {
    Some(match key {
        "parallelism" => Rule::Note("results do not depend on it; Thermocline runs on `--shards` (default 1)"),
        "heartbeat_interval" => Rule::Note("Thermocline shows a progress bar on a terminal instead (`-q` hides it)"),
        "progress" => Rule::Note("Thermocline shows a progress bar on a terminal (`-q` hides it)"),
        "log_level" => Rule::Note("it sets Shadow's own log; programs' output is in the output folder as ever"),
        "model_unblocked_syscall_latency" => Rule::Note(
            "Thermocline always charges each syscall that does not block 1 µs of simulated time, taken 1 ms at a \
             time (the `syscall_latency` of [[processes]], see docs/direct.md), which is what this key turns on in \
             Shadow",
        ),
        "bootstrap_end_time" => Rule::DefaultOnly(
            ShadowDefault::Time(0),
            "Thermocline has no bootstrap period with unlimited bandwidth and no loss; remove the key or give 0",
        ),
        "template_directory" => Rule::DefaultOnly(
            ShadowDefault::Null,
            "copying a template folder into the data directory is not supported; start the programs from files \
             their arguments name instead",
        ),
        _ => return None,
    })
}

/// The `experimental` keys (none is mapped).
fn experimental_rule(key: &str) -> Option<Rule> {
    const PERFORMANCE: &str = "it tunes Shadow's own speed and cannot change results";
    const LATENCY: &str = "Thermocline charges 1 µs of simulated time per syscall that does not block, taken 1 ms at \
        a time (the `syscall_latency` of [[processes]])";
    Some(match key {
        "use_cpu_pinning"
        | "use_worker_spinning"
        | "use_sched_fifo"
        | "use_syscall_counters"
        | "use_object_counters"
        | "use_memory_manager"
        | "use_preload_libc"
        | "scheduler"
        | "use_dynamic_runahead"
        | "report_errors_to_stderr" => Rule::Note(PERFORMANCE),
        "strace_logging_mode" => {
            Rule::Note("no strace files are written; `--syscall-stats` counts every syscall of every program")
        }
        "use_preload_openssl_rng" => {
            Rule::Note("Thermocline makes OpenSSL's randomness repeatable its own way (see docs/direct.md)")
        }
        "use_new_tcp" => Rule::Note("Thermocline has one TCP stack of its own, with Linux's windows and ACK rules"),
        "unblocked_syscall_latency" | "unblocked_vdso_latency" | "max_unapplied_cpu_latency" => Rule::Note(LATENCY),
        "native_preemption_native_interval" | "native_preemption_sim_interval" => {
            Rule::Note("native preemption is off (see `native_preemption_enabled`)")
        }
        "use_preload_openssl_crypto" => Rule::DefaultOnly(
            ShadowDefault::Bool(false),
            "skipping AES in OpenSSL changes what programs compute; Thermocline runs them unchanged",
        ),
        "native_preemption_enabled" => Rule::DefaultOnly(
            ShadowDefault::Bool(false),
            "Shadow's native preemption is not repeatable; Thermocline's nearest is the `preempt` budget of \
             [[processes]] (import the configuration and set it there)",
        ),
        "interface_qdisc" => {
            Rule::DefaultOnly(ShadowDefault::Str("fifo"), "hosts' interfaces send in FIFO order (no round-robin)")
        }
        "socket_recv_buffer" | "socket_send_buffer" => Rule::DefaultOnly(
            ShadowDefault::Bytes(if key == "socket_recv_buffer" { 174_760 } else { 131_072 }),
            "socket buffers follow Linux's defaults and the programs' SO_RCVBUF/SO_SNDBUF",
        ),
        "socket_recv_autotune" | "socket_send_autotune" => {
            Rule::DefaultOnly(ShadowDefault::Bool(true), "socket buffers grow as Linux's do")
        }
        "runahead" => Rule::DefaultOnly(
            ShadowDefault::Time(1_000_000),
            "the window of a sharded run is the smallest latency between shards and never delays a packet",
        ),
        _ => return None,
    })
}

/// A host's settings that Shadow also takes from `host_option_defaults`.
#[derive(Clone, Default)]
struct HostOptions {
    /// `pcap_enabled`, where written.
    pcap: Option<bool>,
}

/// One Shadow host as read.
struct Host {
    name: String,
    pos: Pos,
    node_id: i64,
    node_pos: Pos,
    ip: Option<(Ipv4Addr, Pos)>,
    up: Option<Bandwidth>,
    down: Option<Bandwidth>,
    options: HostOptions,
    processes: Vec<ProcessSpec>,
}

/// Where the GML graph came from, to place its errors in the configuration.
enum GraphSource {
    /// Built in (`1_gbit_switch`): written at the `type` key.
    Builtin(Pos),
    /// `inline:` text; for a literal block (`|`), the first line and its indentation.
    Inline { pos: Pos, block: Option<(usize, usize)> },
    /// `file: { path }`.
    File { path: PathBuf },
}

/// The reader of one configuration.
struct Reader<'a> {
    text: &'a str,
    origin: &'a str,
    folder: &'a Path,
    notes: Vec<String>,
}

impl Reader<'_> {
    /// An error at `pos`: `file:line:column: message` and the line with a caret.
    fn err(&self, pos: Pos, message: impl Into<String>) -> SpecError {
        let source_line = self.text.lines().nth(pos.line.saturating_sub(1)).unwrap_or("");
        let excerpt = format!("  | {source_line}\n  | {}^", " ".repeat(pos.column.saturating_sub(1)));
        SpecError::Syntax {
            origin: self.origin.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            excerpt,
        }
    }

    fn note(&mut self, pos: Pos, message: impl AsRef<str>) {
        self.notes.push(format!("{}:{}:{}: {}", self.origin, pos.line, pos.column, message.as_ref()));
    }

    /// The entries of a mapping (null: none).
    fn map<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [Entry], SpecError> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            _ if node.is_null() => Ok(&[]),
            _ => Err(self.err(node.pos, format!("{what} must be a mapping of keys, not {}", node.kind()))),
        }
    }

    fn string(&self, node: &Node, what: &str) -> Result<String, SpecError> {
        match node.scalar() {
            Some(s) if !node.is_null() => Ok(s.to_string()),
            _ => Err(self.err(node.pos, format!("{what} must be a string, not {}", node.kind()))),
        }
    }

    fn integer(&self, node: &Node, what: &str) -> Result<i64, SpecError> {
        match &node.value {
            Value::Scalar { text, plain: true, .. } => {
                text.parse().map_err(|_| self.err(node.pos, format!("{what} must be an integer, not {text:?}")))
            }
            _ => Err(self.err(node.pos, format!("{what} must be an integer, not {}", node.kind()))),
        }
    }

    fn boolean(&self, node: &Node, what: &str) -> Result<bool, SpecError> {
        match &node.value {
            Value::Scalar { text, plain: true, .. } => match text.as_str() {
                "true" | "True" | "TRUE" => Ok(true),
                "false" | "False" | "FALSE" => Ok(false),
                _ => Err(self.err(node.pos, format!("{what} must be true or false, not {text:?}"))),
            },
            _ => Err(self.err(node.pos, format!("{what} must be true or false, not {}", node.kind()))),
        }
    }

    /// A time as Shadow writes it: `"10 s"`, `"1 min"`, `"100 ms"`, or an integer of seconds.
    fn time(&self, node: &Node, what: &str) -> Result<SimDuration, SpecError> {
        let text = self.string(node, what)?;
        shadow_duration(&text).map_err(|e| {
            self.err(
                node.pos,
                format!("{what}: {e}; Shadow's times are e.g. \"10 s\", \"1 min\", \"100 ms\" or seconds"),
            )
        })
    }

    /// A bandwidth as Shadow writes it: `"1 Gbit"`, `"100 Mbit"`, or an integer of bits/s.
    fn bandwidth(&self, node: &Node, what: &str) -> Result<Bandwidth, SpecError> {
        let text = self.string(node, what)?;
        match shadow_bandwidth(&text) {
            Ok(b) if b.0 == 0 => Err(self.err(node.pos, format!("{what} must be positive"))),
            Ok(b) => Ok(b),
            Err(e) => Err(self.err(node.pos, format!("{what}: {e}"))),
        }
    }

    /// Apply `rule` to key `name` (written at `e`): a note, or an error unless the value is
    /// Shadow's default.
    fn apply(&mut self, name: &str, e: &Entry, rule: Rule) -> Result<(), SpecError> {
        match rule {
            Rule::Note(why) => {
                self.note(e.pos, format!("`{name}` is ignored: {why}"));
                Ok(())
            }
            Rule::DefaultOnly(default, why) => {
                let v = &e.value;
                let is_default = match default {
                    ShadowDefault::Bool(b) => self.boolean(v, name)? == b,
                    ShadowDefault::Str(s) => self.string(v, name)? == s,
                    ShadowDefault::Time(ns) => v.is_null() || self.time(v, name)?.as_nanos() == ns,
                    ShadowDefault::Bytes(n) => {
                        let text = self.string(v, name)?;
                        let bytes = text.parse::<u64>().ok().or_else(|| text.parse::<Size>().ok().map(|s| s.bytes()));
                        bytes == Some(n)
                    }
                    ShadowDefault::Null => v.is_null(),
                };
                if !is_default {
                    return Err(self.err(v.pos, format!("`{name}` is not supported: {why}")));
                }
                self.note(e.pos, format!("`{name}` has Shadow's default value, which is what Thermocline does"));
                Ok(())
            }
        }
    }

    fn unknown(&self, e: &Entry, section: &str) -> SpecError {
        self.err(e.pos, format!("unknown key `{}` in {section}: Shadow 3.x defines no such key", e.key))
    }

    /// The whole configuration.
    fn config(&mut self, root: &Node) -> Result<Spec, SpecError> {
        let Value::Map(top) = &root.value else {
            return Err(self.err(root.pos, "a Shadow configuration is a mapping with `general`, `network` and `hosts`"));
        };
        let mut spec = empty_spec();
        spec.run.name = Path::new(self.origin).file_stem().map_or("shadow".into(), |s| s.to_string_lossy().into());
        let (mut general, mut network, mut hosts, mut defaults) = (None, None, None, HostOptions::default());
        let mut experimental = None;
        for e in top {
            match e.key.as_str() {
                "general" => general = Some(e),
                "network" => network = Some(e),
                "hosts" => hosts = Some(e),
                "experimental" => experimental = Some(e),
                "host_option_defaults" => defaults = self.host_options(&e.value, "host_option_defaults")?,
                // Extension fields, as Shadow drops them (anchors for aliases live there).
                k if k.starts_with("x-") => {}
                _ => return Err(self.unknown(e, "the configuration")),
            }
        }
        let missing = |key: &str| format!("the configuration has no `{key}` (Shadow requires it)");
        let Some(general) = general else { return Err(self.err(root.pos, missing("general"))) };
        self.general(general, &mut spec)?;
        if let Some(e) = experimental {
            for x in self.map(&e.value, "experimental")? {
                let rule = experimental_rule(&x.key).ok_or_else(|| self.unknown(x, "experimental"))?;
                self.apply(&format!("experimental.{}", x.key), x, rule)?;
            }
        }
        let Some(network) = network else { return Err(self.err(root.pos, missing("network"))) };
        let (topology, source) = self.network(network, &mut spec)?;
        let Some(hosts) = hosts else { return Err(self.err(root.pos, missing("hosts"))) };
        let hosts = self.hosts(hosts, &defaults, spec.run.duration)?;
        self.place_hosts(&hosts, &topology, &mut spec)?;
        self.check_model(&spec, &hosts, &source)?;
        Ok(spec)
    }

    fn general(&mut self, e: &Entry, spec: &mut Spec) -> Result<(), SpecError> {
        let mut stop = None;
        for g in self.map(&e.value, "general")? {
            let name = format!("general.{}", g.key);
            match g.key.as_str() {
                "stop_time" => stop = Some(self.time(&g.value, &name)?),
                "seed" => {
                    let seed = self.integer(&g.value, &name)?;
                    spec.run.seed = u32::try_from(seed)
                        .map_err(|_| self.err(g.value.pos, format!("{name} must be in 0..=4294967295, as in Shadow")))?
                        .into();
                }
                "data_directory" => spec.output.dir = PathBuf::from(self.string(&g.value, &name)?),
                k => {
                    let rule = general_rule(k).ok_or_else(|| self.unknown(g, "general"))?;
                    self.apply(&name, g, rule)?;
                }
            }
        }
        let stop = stop.ok_or_else(|| self.err(e.pos, "general has no `stop_time` (Shadow requires it)"))?;
        if stop == SimDuration::ZERO {
            return Err(self.err(e.pos, "general.stop_time must be after 0 s"));
        }
        spec.run.duration = stop;
        Ok(())
    }

    /// `network`: the graph (built here, to check hosts against it) and how it is routed.
    fn network(&mut self, e: &Entry, spec: &mut Spec) -> Result<(Topology, GraphSource), SpecError> {
        let mut graph = None;
        for n in self.map(&e.value, "network")? {
            match n.key.as_str() {
                "graph" => graph = Some(n),
                "use_shortest_path" => {
                    spec.network.use_shortest_path = self.boolean(&n.value, "network.use_shortest_path")?
                }
                _ => return Err(self.unknown(n, "network")),
            }
        }
        let graph = graph.ok_or_else(|| self.err(e.pos, "network has no `graph` (Shadow requires it)"))?;
        let (mut kind, mut inline, mut file) = (None, None, None);
        for g in self.map(&graph.value, "network.graph")? {
            match g.key.as_str() {
                "type" => kind = Some((self.string(&g.value, "network.graph.type")?, g.value.pos)),
                "inline" => inline = Some(g),
                "file" => file = Some(g),
                _ => return Err(self.unknown(g, "network.graph")),
            }
        }
        let (kind, kind_pos) =
            kind.ok_or_else(|| self.err(graph.pos, "network.graph has no `type` (gml or 1_gbit_switch)"))?;
        spec.network.topology = TopologyKind::Gml;
        let source = match (kind.as_str(), inline, file) {
            ("1_gbit_switch", None, None) => {
                spec.network.gml_inline = Some(ONE_GBIT_SWITCH.to_string());
                GraphSource::Builtin(kind_pos)
            }
            ("1_gbit_switch", Some(x), _) | ("1_gbit_switch", None, Some(x)) => {
                return Err(self.err(x.pos, "the built-in 1_gbit_switch graph takes no `inline` or `file`"));
            }
            ("gml", Some(i), None) => {
                let text = self.string(&i.value, "network.graph.inline")?;
                let block = match &i.value.value {
                    Value::Scalar { literal: true, .. } => self.block_start(i.pos.line),
                    _ => None,
                };
                spec.network.gml_inline = Some(text);
                GraphSource::Inline { pos: i.value.pos, block }
            }
            ("gml", None, Some(f)) => {
                let path = self.graph_file(f)?;
                spec.network.gml = Some(path.clone());
                GraphSource::File { path }
            }
            ("gml", Some(x), Some(_)) => {
                return Err(self.err(x.pos, "give the graph `inline` or as a `file`, not both"));
            }
            ("gml", None, None) => {
                return Err(self.err(graph.pos, "a gml graph needs `inline: |` text or `file: { path: … }`"));
            }
            (other, _, _) => {
                return Err(self.err(kind_pos, format!("unknown graph type {other:?}; expected gml or 1_gbit_switch")));
            }
        };
        let (text, origin) = self.graph_text(spec, &source)?;
        let topology = Topology::from_gml(&text, &origin, spec.network.use_shortest_path)
            .map_err(|e| self.topology_error(e, &source))?;
        Ok((topology, source))
    }

    /// The first content line of a literal block whose key (`inline: |`) is on line `line`, and
    /// its indentation.
    fn block_start(&self, line: usize) -> Option<(usize, usize)> {
        let (i, first) = self.text.lines().enumerate().skip(line).find(|(_, l)| !l.trim().is_empty())?;
        Some((i + 1, first.len() - first.trim_start().len()))
    }

    /// `file: { path, compression }`.
    fn graph_file(&mut self, f: &Entry) -> Result<PathBuf, SpecError> {
        let mut path = None;
        for k in self.map(&f.value, "network.graph.file")? {
            match k.key.as_str() {
                "path" => path = Some((self.string(&k.value, "network.graph.file.path")?, k.value.pos)),
                "compression" if k.value.is_null() => {}
                "compression" => {
                    return Err(self.err(
                        k.value.pos,
                        "compressed graphs are not read; decompress it (`xz -dk graph.gml.xz`) and name the .gml file",
                    ));
                }
                _ => return Err(self.unknown(k, "network.graph.file")),
            }
        }
        let (path, _) = path.ok_or_else(|| self.err(f.pos, "network.graph.file has no `path`"))?;
        Ok(expand_home(&path))
    }

    /// The graph's text and the name its errors are given under.
    fn graph_text(&self, spec: &Spec, source: &GraphSource) -> Result<(String, String), SpecError> {
        match source {
            GraphSource::File { path } => {
                let full = self.folder.join(path);
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    SpecError::Model(format!("{}: network.graph.file: reading {}: {e}", self.origin, full.display()))
                })?;
                Ok((text, full.display().to_string()))
            }
            _ => Ok((spec.network.gml_inline.clone().unwrap_or_default(), self.origin.to_string())),
        }
    }

    /// A graph error, placed in the configuration when the graph is written there.
    fn topology_error(&self, e: TopologyError, source: &GraphSource) -> SpecError {
        let (pos, message) = match &e {
            TopologyError::Gml(g, _) => (g.pos, g.message.clone()),
            TopologyError::Attribute { pos, message, .. } => (*pos, message.clone()),
            _ => return self.graph_error(source, e.to_string()),
        };
        match source {
            GraphSource::File { .. } => SpecError::Model(e.to_string()),
            GraphSource::Inline { block: Some((line, indent)), .. } => self.err(
                Pos { line: line + pos.line - 1, column: indent + pos.column },
                format!("in the inline graph: {message}"),
            ),
            GraphSource::Inline { pos: at, .. } | GraphSource::Builtin(at) => {
                self.err(*at, format!("in the inline graph, at its line {} column {}: {message}", pos.line, pos.column))
            }
        }
    }

    /// An error about the graph as a whole, placed at where it is given.
    fn graph_error(&self, source: &GraphSource, message: String) -> SpecError {
        match source {
            GraphSource::File { path } => SpecError::Model(format!("{}: {}: {message}", self.origin, path.display())),
            GraphSource::Inline { pos, .. } | GraphSource::Builtin(pos) => self.err(*pos, message),
        }
    }

    /// `host_option_defaults` or a host's `host_options`.
    fn host_options(&mut self, node: &Node, what: &str) -> Result<HostOptions, SpecError> {
        let mut o = HostOptions::default();
        for k in self.map(node, what)? {
            let name = format!("{what}.{}", k.key);
            match k.key.as_str() {
                "pcap_enabled" => o.pcap = Some(self.boolean(&k.value, &name)?),
                "pcap_capture_size" => self.note(k.pos, format!("`{name}` is ignored: captures hold whole packets")),
                "log_level" => self.note(k.pos, format!("`{name}` is ignored: it sets Shadow's own log of the host")),
                _ => return Err(self.unknown(k, what)),
            }
        }
        Ok(o)
    }

    /// `hosts`: every host and its processes.
    fn hosts(&mut self, e: &Entry, defaults: &HostOptions, stop: SimDuration) -> Result<Vec<Host>, SpecError> {
        let mut hosts = Vec::new();
        for h in self.map(&e.value, "hosts")? {
            check_shadow_host_name(&h.key).map_err(|m| self.err(h.pos, format!("host name {:?}: {m}", h.key)))?;
            hosts.push(self.host(h, defaults, stop)?);
        }
        if hosts.is_empty() {
            return Err(self.err(e.pos, "hosts is empty: there is nothing to run"));
        }
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(hosts)
    }

    fn host(&mut self, h: &Entry, defaults: &HostOptions, stop: SimDuration) -> Result<Host, SpecError> {
        let mut host = Host {
            name: h.key.clone(),
            pos: h.pos,
            node_id: 0,
            node_pos: h.pos,
            ip: None,
            up: None,
            down: None,
            options: defaults.clone(),
            processes: Vec::new(),
        };
        let (mut node, mut processes) = (None, None);
        for k in self.map(&h.value, "a host")? {
            let name = format!("hosts.{}.{}", h.key, k.key);
            match k.key.as_str() {
                "network_node_id" => node = Some((self.integer(&k.value, &name)?, k.value.pos)),
                "processes" => processes = Some(k),
                "ip_addr" if k.value.is_null() => {}
                "ip_addr" => {
                    let text = self.string(&k.value, &name)?;
                    let ip: Ipv4Addr = text
                        .parse()
                        .map_err(|_| self.err(k.value.pos, format!("{name} {text:?} is not an IPv4 address")))?;
                    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
                        return Err(
                            self.err(k.value.pos, format!("{name} {ip} cannot be a host's address (as in Shadow)"))
                        );
                    }
                    host.ip = Some((ip, k.value.pos));
                }
                "bandwidth_up" if k.value.is_null() => {}
                "bandwidth_down" if k.value.is_null() => {}
                "bandwidth_up" => host.up = Some(self.bandwidth(&k.value, &name)?),
                "bandwidth_down" => host.down = Some(self.bandwidth(&k.value, &name)?),
                "host_options" => {
                    let own = self.host_options(&k.value, &name)?;
                    host.options.pcap = own.pcap.or(host.options.pcap);
                }
                _ => return Err(self.unknown(k, &format!("hosts.{}", h.key))),
            }
        }
        let (id, pos) = node.ok_or_else(|| self.err(h.pos, format!("host {:?} has no `network_node_id`", h.key)))?;
        (host.node_id, host.node_pos) = (id, pos);
        let processes = processes
            .ok_or_else(|| self.err(h.pos, format!("host {:?} has no `processes` (Shadow requires it)", h.key)))?;
        let Value::Seq(items) = &processes.value.value else {
            return Err(self.err(processes.value.pos, "processes must be a list"));
        };
        for item in items {
            host.processes.push(self.process(&h.key, item, stop)?);
        }
        Ok(host)
    }

    /// One entry of a host's `processes`.
    fn process(&mut self, host: &str, node: &Node, stop: SimDuration) -> Result<ProcessSpec, SpecError> {
        let mut p = ProcessSpec::new(host, PathBuf::new());
        // Shadow tells every process its host has one CPU (`sched_getaffinity`), and programs
        // size their thread pools from that.
        p.cpus = Some(1);
        let (mut path, mut start_pos, mut stop_at, mut signal) = (None, node.pos, None, None);
        for k in self.map(node, "a process")? {
            let name = format!("hosts.{host}.processes.{}", k.key);
            match k.key.as_str() {
                "path" => path = Some((self.string(&k.value, &name)?, k.value.pos)),
                "args" => p.args = self.args(&k.value, &name)?,
                "environment" => {
                    for v in self.map(&k.value, &name)? {
                        if v.key.contains('=') {
                            return Err(self.err(v.pos, "an environment variable's name cannot hold '='"));
                        }
                        p.env.insert(v.key.clone(), self.string(&v.value, &format!("{name}.{}", v.key))?);
                    }
                }
                "start_time" => {
                    p.start = self.time(&k.value, &name)?;
                    start_pos = k.value.pos;
                }
                "shutdown_time" if k.value.is_null() => {}
                "shutdown_time" => stop_at = Some((self.time(&k.value, &name)?, k.value.pos)),
                "shutdown_signal" => {
                    let text = self.string(&k.value, &name)?;
                    let s = Signal::parse(&text).map_err(|m| self.err(k.value.pos, format!("{name}: {m}")))?;
                    signal = Some((s, k.pos));
                }
                "expected_final_state" => p.expected_exit = self.final_state(&k.value, &name)?,
                _ => return Err(self.unknown(k, &format!("a process of host {host:?}"))),
            }
        }
        let (path, path_pos) = path.ok_or_else(|| self.err(node.pos, "a process needs a `path`"))?;
        p.path = expand_home(&path);
        let resolved = if p.path.components().count() > 1 { self.folder.join(&p.path) } else { p.path.clone() };
        if thermocline_direct::engine::resolve_exe(&resolved).is_none() {
            let how = "a path with a folder is taken from the configuration's folder, a bare name from \
                       /usr/local/bin:/usr/bin:/bin";
            return Err(self.err(path_pos, format!("no such executable {path:?} ({how})")));
        }
        if p.start >= stop {
            return Err(self.err(start_pos, format!("start_time {} must be before general.stop_time {stop}", p.start)));
        }
        match (stop_at, signal) {
            (Some((at, pos)), _) if at <= p.start => {
                return Err(self.err(pos, format!("shutdown_time {at} must be after start_time {}", p.start)));
            }
            (Some((at, pos)), _) if at >= stop => {
                return Err(self.err(pos, format!("shutdown_time {at} must be before general.stop_time {stop}")));
            }
            (Some((at, _)), s) => {
                p.stop = Some(at);
                p.stop_signal = s.map(|(s, _)| s).filter(|s| *s != Signal::default());
            }
            (None, Some((_, pos))) => {
                self.note(pos, "`shutdown_signal` has no effect without a `shutdown_time` (as in Shadow)")
            }
            (None, None) => {}
        }
        Ok(p)
    }

    /// `args`: a string split as a shell would (without expansion), or a list of strings.
    fn args(&self, node: &Node, name: &str) -> Result<Vec<String>, SpecError> {
        match &node.value {
            Value::Seq(items) => items.iter().map(|i| self.string(i, name)).collect(),
            _ if node.is_null() => Ok(Vec::new()),
            Value::Scalar { text, .. } => args::split(text).map_err(|m| self.err(node.pos, format!("{name}: {m}"))),
            Value::Map(_) => Err(self.err(node.pos, format!("{name} must be a string or a list of strings"))),
        }
    }

    /// `expected_final_state`: `running`, `{exited: N}` or `{signaled: SIGNAL}`.
    fn final_state(&self, node: &Node, name: &str) -> Result<ExpectedExit, SpecError> {
        let expected = "`running`, `{exited: N}` or `{signaled: SIGNAME}`";
        match &node.value {
            Value::Scalar { text, .. } if text == "running" => Ok(ExpectedExit::Running),
            Value::Map(entries) if entries.len() == 1 => {
                let e = &entries[0];
                match e.key.as_str() {
                    "exited" => match self.integer(&e.value, name)? {
                        0 => Ok(ExpectedExit::Success),
                        c @ 1..=255 => Ok(ExpectedExit::Code(c as i32)),
                        c => Err(self.err(e.value.pos, format!("{name}: exit code {c} is outside 0-255"))),
                    },
                    "signaled" => {
                        let text = self.string(&e.value, name)?;
                        let n = match text.parse::<i32>() {
                            Ok(n) => n,
                            Err(_) => thermocline_direct::config::signal_number(&text).unwrap_or(0),
                        };
                        if thermocline_direct::config::signal_name(n).is_none() {
                            let m = format!("{name}: unknown signal {text:?}; expected e.g. SIGTERM or 1-31");
                            return Err(self.err(e.value.pos, m));
                        }
                        Ok(ExpectedExit::Signal(n))
                    }
                    _ => Err(self.err(e.pos, format!("{name} must be {expected}"))),
                }
            }
            _ => Err(self.err(node.pos, format!("{name} must be {expected}"))),
        }
    }

    /// Turn the hosts into direct host groups of one and their processes, with their addresses
    /// rewritten where `ip_addr` fixed them.
    fn place_hosts(&mut self, hosts: &[Host], topology: &Topology, spec: &mut Spec) -> Result<(), SpecError> {
        let mut addresses: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            let Some((ip, pos)) = h.ip else { continue };
            if let Some(other) = hosts[..i].iter().find(|o| o.ip.is_some_and(|(a, _)| a == ip)) {
                return Err(self.err(pos, format!("ip_addr {ip} is also host {:?}'s", other.name)));
            }
            // Direct hosts take addresses in name order: the i-th host is the i-th in the plan.
            let given = HostDirectory::ip_of(i as u32);
            addresses.push((ip, given));
            self.note(
                pos,
                format!(
                    "ip_addr {ip} is not honoured: host {:?} has {given} (Thermocline's address plan); its name \
                     resolves to it, and {ip} written in processes' args and environment is rewritten to it \
                     (files the programs read are not)",
                    h.name
                ),
            );
        }
        let pcaps: Vec<bool> = hosts.iter().map(|h| h.options.pcap.unwrap_or(false)).collect();
        spec.output.pcap = pcaps.iter().any(|&p| p);
        if spec.output.pcap && !pcaps.iter().all(|&p| p) {
            let pos = hosts.iter().find(|h| h.options.pcap == Some(true)).map_or(Pos::default(), |h| h.pos);
            self.note(pos, "pcap_enabled is set for some hosts: Thermocline captures the packets of every host");
        }
        for h in hosts {
            let bandwidth = self.bandwidth_of(h, topology)?;
            spec.hosts.push(HostGroupSpec {
                name: h.name.clone(),
                kind: HostKind::Direct,
                count: 1,
                location: Some(h.node_id.to_string()),
                locations: None,
                bandwidth: Some(bandwidth),
                profile: None,
                load: None,
            });
            for p in &h.processes {
                let mut p = p.clone();
                for a in &mut p.args {
                    *a = rewrite_addresses(a, &addresses);
                }
                for v in p.env.values_mut() {
                    *v = rewrite_addresses(v, &addresses);
                }
                spec.processes.push(p);
            }
        }
        Ok(())
    }

    /// A host's bandwidth: its own, else its graph node's (Shadow requires one or the other).
    fn bandwidth_of(&self, h: &Host, topology: &Topology) -> Result<HostBandwidth, SpecError> {
        let node = topology.node(&h.node_id.to_string()).map(|n| &topology.nodes[n as usize]).ok_or_else(|| {
            let ids: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).take(8).collect();
            self.err(
                h.node_pos,
                format!("network node {} is not in the graph (its nodes: {})", h.node_id, ids.join(", ")),
            )
        })?;
        let missing = |dir: &str| {
            self.err(
                h.pos,
                format!(
                    "host {:?} has no bandwidth_{dir} and its node {} no host_bandwidth_{dir} (Shadow requires one)",
                    h.name, h.node_id
                ),
            )
        };
        let up = h.up.or(node.bandwidth_up).ok_or_else(|| missing("up"))?;
        let down = h.down.or(node.bandwidth_down).ok_or_else(|| missing("down"))?;
        Ok(HostBandwidth { up, down })
    }

    /// Build the network model as a run will, placing what fails at the host or graph it is about.
    fn check_model(&self, spec: &Spec, hosts: &[Host], source: &GraphSource) -> Result<(), SpecError> {
        let (text, origin) = self.graph_text(spec, source)?;
        let Err(e) = NetworkModel::build(&spec.network, Some((&text, &origin)), &spec.hosts) else { return Ok(()) };
        match e {
            NetworkError::Directory(thermocline_models::directory::DirectoryError::Group { group, message }) => {
                let pos = hosts.iter().find(|h| h.name == group).map_or(Pos::default(), |h| h.pos);
                Err(self.err(pos, format!("host {group:?}: {message}")))
            }
            NetworkError::Topology(t) => Err(self.topology_error(t, source)),
            other => Err(self.graph_error(source, other.to_string())),
        }
    }
}

/// Shadow's rule for host names (`hostname(7)`): lower-case letters, digits, `-` and `.`, not
/// starting with `-`, at most 253 characters.
fn check_shadow_host_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')) {
        return Err(format!("Shadow allows lower-case letters, digits, '-' and '.', not {c:?}"));
    }
    if name.is_empty() || name.starts_with('-') || name.len() > 253 {
        return Err("a host name is 1 to 253 characters and does not start with '-'".into());
    }
    Ok(())
}

/// `~/…` in a path, from the home folder (as Shadow expands it); other paths unchanged.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// `text` with every IPv4 address of `map` (written whole: not within a longer run of digits and
/// dots) replaced by the address it maps to.
fn rewrite_addresses(text: &str, map: &[(Ipv4Addr, Ipv4Addr)]) -> String {
    if map.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out += &rest[..start];
        let run = &rest[start..];
        let len = run.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(run.len());
        let token = &run[..len];
        match token.parse::<Ipv4Addr>().ok().and_then(|ip| map.iter().find(|(from, _)| *from == ip)) {
            Some((_, to)) => out += &to.to_string(),
            None => out += token,
        }
        rest = &run[len..];
    }
    out + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Imported, String> {
        import(text, "s.yaml", Path::new(".")).map_err(|e| e.to_string())
    }

    const BASE: &str = "general:\n  stop_time: 10s\nnetwork:\n  graph:\n    type: 1_gbit_switch\nhosts:\n";

    #[test]
    fn a_documentation_style_config_becomes_direct_hosts_and_processes() {
        let text = format!(
            "{BASE}  server:\n    network_node_id: 0\n    processes:\n    - path: sleep\n      args: \"100\"\n      \
             start_time: 1\n      shutdown_time: 5 s\n      shutdown_signal: SIGINT\n      expected_final_state: {{signaled: SIGINT}}\n  \
             client.1:\n    network_node_id: 0\n    bandwidth_up: 10 Mbit\n    processes:\n    - path: sh\n      args: [-c, 'exit 3']\n      \
             environment: {{A: \"1\"}}\n      expected_final_state: {{exited: 3}}\n"
        );
        let i = read(&text).unwrap();
        let s = &i.spec;
        assert_eq!(s.run.duration, SimDuration::from_secs(10));
        assert_eq!(s.network.gml_inline.as_deref(), Some(ONE_GBIT_SWITCH));
        assert_eq!(s.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["client.1", "server"]);
        assert_eq!(s.hosts[0].bandwidth.unwrap().up, Bandwidth(10_000_000));
        assert_eq!(s.hosts[0].bandwidth.unwrap().down, Bandwidth(1_000_000_000));
        let (client, server) = (&s.processes[0], &s.processes[1]);
        assert_eq!(client.args, ["-c", "exit 3"]);
        assert_eq!(client.expected_exit, ExpectedExit::Code(3));
        assert_eq!(client.env.get("A").map(String::as_str), Some("1"));
        assert_eq!((server.start, server.stop), (SimDuration::from_secs(1), Some(SimDuration::from_secs(5))));
        assert_eq!(server.stop_signal, Some(Signal(2)));
        assert_eq!(server.expected_exit, ExpectedExit::Signal(2));
        assert!(i.notes.is_empty(), "{:?}", i.notes);
        let again = Spec::parse(&i.to_toml("s.yaml"), "i.toml").unwrap();
        assert_eq!(&again, s);
    }

    #[test]
    fn ignored_keys_are_noted_and_keys_that_would_change_results_refused_where_written() {
        let ok = format!(
            "general:\n  stop_time: 1 min\n  model_unblocked_syscall_latency: true\n  log_level: debug\n  seed: 7\n\
             experimental:\n  use_cpu_pinning: false\n  socket_recv_autotune: true\n{}",
            &BASE[BASE.find("network").unwrap()..]
        ) + "  a:\n    network_node_id: 0\n    processes: []\n";
        let i = read(&ok).unwrap();
        assert_eq!(i.spec.run.seed, 7);
        assert_eq!(i.notes.len(), 4, "{:?}", i.notes);
        assert!(i.notes[0].starts_with("s.yaml:3:3: `general.model_unblocked_syscall_latency` is ignored"));

        let bad = ok.replace("socket_recv_autotune: true", "socket_recv_autotune: false");
        let e = read(&bad).unwrap_err();
        assert!(e.starts_with("s.yaml:8:25: `experimental.socket_recv_autotune` is not supported"), "{e}");
        let e = read(&ok.replace("log_level", "log_levle")).unwrap_err();
        assert!(e.starts_with("s.yaml:4:3: unknown key `log_levle` in general"), "{e}");
        let e = read(&ok.replace("network_node_id: 0", "network_node_id: 3")).unwrap_err();
        assert!(e.starts_with("s.yaml:14:22: network node 3 is not in the graph"), "{e}");
        let e = read(&ok.replace("  a:\n", "  A:\n")).unwrap_err();
        assert!(e.starts_with("s.yaml:13:3: host name \"A\""), "{e}");
        let e = read(&ok.replace("  a:\n", "  \"42\":\n")).unwrap_err();
        assert!(e.contains("42") && e.contains("not all of them numbers"), "{e}");
    }

    #[test]
    fn inline_graph_errors_point_into_the_configuration() {
        let text = "general:\n  stop_time: 10\nnetwork:\n  graph:\n    type: gml\n    inline: |\n      graph [\n        \
                    node [ id 0 ]\n        edge [ source 0 target 0 latency \"5 parsecs\" ]\n      ]\nhosts:\n  a:\n    \
                    network_node_id: 0\n    bandwidth_up: 1 Mbit\n    bandwidth_down: 1 Mbit\n    processes: []\n";
        let e = read(text).unwrap_err();
        assert!(e.starts_with("s.yaml:9:34: in the inline graph:"), "{e}");
        let ok = read(&text.replace("5 parsecs", "5 ms")).unwrap();
        assert!(ok.spec.network.gml_inline.unwrap().contains("latency \"5 ms\""));
        let e = read(&text.replace("5 parsecs", "5 ms").replace("    bandwidth_up: 1 Mbit\n", "")).unwrap_err();
        assert!(e.starts_with("s.yaml:12:3: host \"a\" has no bandwidth_up"), "{e}");
    }

    #[test]
    fn process_times_and_states_are_checked_as_shadow_checks_them() {
        let p = |extra: &str| format!("{BASE}  a:\n    network_node_id: 0\n    processes:\n    - path: sleep\n{extra}");
        let e = read(&p("      start_time: 10 s\n")).unwrap_err();
        assert!(e.starts_with("s.yaml:11:19: start_time 10 s must be before general.stop_time"), "{e}");
        let e = read(&p("      start_time: 2\n      shutdown_time: 1\n")).unwrap_err();
        assert!(e.contains("must be after start_time"), "{e}");
        let e = read(&p("      expected_final_state: {exited: 300}\n")).unwrap_err();
        assert!(e.contains("outside 0-255"), "{e}");
        let e = read(&p("      shutdown_time: 2\n      shutdown_signal: SIGSTOP\n")).unwrap_err();
        assert!(e.contains("stops or continues"), "{e}");
        let e = read(&p("      args: \"'open\"\n")).unwrap_err();
        assert!(e.contains("single quote"), "{e}");
        let e = read(&BASE.replace("1_gbit_switch", "ring")).unwrap_err();
        assert!(e.starts_with("s.yaml:5:11: unknown graph type \"ring\""), "{e}");
        let e = read(&p("").replace("path: sleep", "path: ./no-such-program")).unwrap_err();
        assert!(e.contains("no such executable"), "{e}");
        let ok = read(&p("      shutdown_signal: 9\n")).unwrap();
        assert!(ok.notes[0].contains("no effect without a `shutdown_time`"), "{:?}", ok.notes);
    }

    #[test]
    fn fixed_addresses_are_rewritten_where_written_whole() {
        let map = [(Ipv4Addr::new(11, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))];
        assert_eq!(
            rewrite_addresses("http://11.0.0.1:80/ 111.0.0.1 11.0.0.12", &map),
            "http://10.0.0.2:80/ 111.0.0.1 11.0.0.12"
        );
        let text = format!(
            "{BASE}  b:\n    network_node_id: 0\n    ip_addr: 11.0.0.1\n    processes: []\n  a:\n    network_node_id: 0\n    \
             processes:\n    - path: sh\n      args: -c 'echo 11.0.0.1'\n"
        );
        let i = read(&text).unwrap();
        assert_eq!(i.spec.processes[0].args[1], "echo 10.0.0.2");
        assert!(i.notes[0].contains("ip_addr 11.0.0.1 is not honoured: host \"b\" has 10.0.0.2"), "{:?}", i.notes);
    }
}
