//! The network topology: locations (graph nodes) where hosts attach, and the links between them
//! with latency, jitter and loss. Three sources: the measured country-to-country table (RIPE
//! Atlas, embedded), Shadow-compatible GML graphs, and built-ins (one switch; regions with a
//! latency table).

use crate::gml::{self, Pair, Pos, Value};
use crate::units::Bandwidth;
use petgraph::Directed;
use petgraph::graph::{Graph, NodeIndex};
use std::collections::HashMap;

/// The embedded country-to-country round-trip table (see `models/data/README.md`).
pub const COUNTRY_RTT_CSV: &str = include_str!("../data/country_rtt_stat.csv");

/// A location where hosts attach.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name: a country code, a region name, or a GML node id.
    pub name: String,
    /// Default upload bandwidth of hosts here (GML `host_bandwidth_up`).
    pub bandwidth_up: Option<Bandwidth>,
    /// Default download bandwidth of hosts here (GML `host_bandwidth_down`).
    pub bandwidth_down: Option<Bandwidth>,
}

/// A link between two locations (one direction; undirected graphs store both).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Link {
    /// Mean one-way latency, ns.
    pub latency_ns: u64,
    /// Half-width of the symmetric jitter around the mean, ns (0: none).
    pub jitter_ns: u64,
    /// Probability that a packet or message is lost on this link.
    pub loss: f64,
}

/// How paths between locations are found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RouteMode {
    /// Shortest path by latency (Shadow's `use_shortest_path: true`).
    Shortest,
    /// Only direct links (Shadow's `use_shortest_path: false`): every used pair needs a link.
    Direct,
    /// The direct link where one exists, else the shortest path (measured tables: a measured
    /// pair is what the internet does between those two places; a missing pair is routed through
    /// measured ones).
    DirectElseShortest,
}

/// A network topology.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The graph; node weights index `nodes`.
    pub graph: Graph<(), Link, Directed, u32>,
    /// Location details, by node index.
    pub nodes: Vec<Node>,
    /// Node index by name.
    pub by_name: HashMap<String, u32>,
    /// How to route.
    pub mode: RouteMode,
}

/// Why a topology could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// GML syntax.
    #[error("{origin}:{0}", origin = .1)]
    Gml(gml::GmlError, String),
    /// A bad attribute in a GML graph.
    #[error("{origin}:{pos}: {message}")]
    Attribute {
        /// File name.
        origin: String,
        /// Where.
        pos: Pos,
        /// What was expected.
        message: String,
    },
    /// A bad row in a latency table.
    #[error("{origin}:{line}: {message}")]
    Table {
        /// Table name.
        origin: String,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// Anything else wrong with the topology as a whole.
    #[error("{0}")]
    Invalid(String),
}

/// A bandwidth as Shadow writes it: our units, plus a bare number (bits per second), a bare
/// prefix (`"10 M"` = 10 Mbit/s, `"kilo"`, `"mebi"`, …) and prefixes written out before `bit` or
/// `bits` (`"10 kilobits"`). Shared with the Shadow configuration reader.
pub fn shadow_bandwidth(text: &str) -> Result<Bandwidth, crate::units::UnitError> {
    let t = text.trim();
    let unit_at = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == '+')).unwrap_or(t.len());
    let (number, unit) = (t[..unit_at].trim_start_matches('+'), t[unit_at..].trim());
    let unit = unit.strip_suffix("bits").or_else(|| unit.strip_suffix("bit")).unwrap_or(unit);
    let prefix = match unit {
        "" => Some(""),
        "K" | "k" | "kilo" => Some("k"),
        "Ki" | "kibi" => Some("Ki"),
        "M" | "mega" => Some("M"),
        "Mi" | "mebi" => Some("Mi"),
        "G" | "giga" => Some("G"),
        "Gi" | "gibi" => Some("Gi"),
        "T" | "tera" => Some("T"),
        "Ti" | "tebi" => Some("Ti"),
        _ => None,
    };
    match prefix {
        Some(p) => format!("{number} {p}bit").parse(),
        None => format!("{number} {unit}").parse(),
    }
}

/// A duration as Shadow writes it: our units, plus a bare number (seconds), `m` (minutes), `hr`,
/// the Greek-mu spelling of µs, and sub-second units written out (`"10 milliseconds"`). Shared
/// with the Shadow configuration reader.
pub fn shadow_duration(text: &str) -> Result<thermocline_bus::SimDuration, thermocline_bus::time::DurationParseError> {
    let t = text.trim().trim_start_matches('+');
    let unit_at = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(t.len());
    let (number, unit) = (&t[..unit_at], t[unit_at..].trim());
    let unit = match unit {
        "" => "s",
        "m" => "min",
        "hr" | "hrs" => "h",
        "μs" | "microsecond" | "microseconds" => "us",
        "nanosecond" | "nanoseconds" => "ns",
        "millisecond" | "milliseconds" => "ms",
        u => u,
    };
    format!("{number} {unit}").parse()
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round().max(0.0) as u64
}

impl Topology {
    fn empty(mode: RouteMode) -> Self {
        Topology { graph: Graph::default(), nodes: Vec::new(), by_name: HashMap::new(), mode }
    }

    fn add_node(&mut self, node: Node) -> u32 {
        let i = self.graph.add_node(()).index() as u32;
        self.by_name.insert(node.name.clone(), i);
        self.nodes.push(node);
        i
    }

    fn link(&mut self, a: u32, b: u32, link: Link, both_ways: bool) {
        self.graph.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), link);
        if both_ways && a != b {
            self.graph.add_edge(NodeIndex::new(b as usize), NodeIndex::new(a as usize), link);
        }
    }

    /// Number of locations.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no locations.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The location named `name`.
    pub fn node(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// One location with one link to itself: every pair of hosts is `latency` apart.
    pub fn single_switch(latency_ns: u64, loss: f64) -> Self {
        let mut t = Topology::empty(RouteMode::Direct);
        let n = t.add_node(Node { name: "switch".into(), bandwidth_up: None, bandwidth_down: None });
        t.link(n, n, Link { latency_ns, jitter_ns: 0, loss }, false);
        t
    }

    /// Named regions with a full one-way latency matrix (`latency_ns[i][j]`, diagonal = within a
    /// region), routed directly.
    pub fn regions(names: &[String], latency_ns: &[Vec<u64>]) -> Result<Self, TopologyError> {
        let n = names.len();
        if n == 0 || latency_ns.len() != n || latency_ns.iter().any(|row| row.len() != n) {
            return Err(TopologyError::Invalid(format!(
                "network.regions: latency must be a {n} x {n} matrix, one row and column per region"
            )));
        }
        let mut t = Topology::empty(RouteMode::Direct);
        for name in names {
            if t.by_name.contains_key(name) {
                return Err(TopologyError::Invalid(format!("network.regions: region {name:?} is listed twice")));
            }
            t.add_node(Node { name: name.clone(), bandwidth_up: None, bandwidth_down: None });
        }
        for (i, row) in latency_ns.iter().enumerate() {
            for (j, &l) in row.iter().enumerate() {
                t.link(i as u32, j as u32, Link { latency_ns: l, jitter_ns: 0, loss: 0.0 }, false);
            }
        }
        Ok(t)
    }

    /// The measured country table: one location per country, one link per measured pair.
    ///
    /// Mean one-way latency = `rtt_avg / 2`; jitter = a symmetric triangular spread of half-width
    /// `min(rtt_std / 2, mean / 2)` when `jitter` is true (the measured std is dominated by long
    /// tails; the cap keeps one-way delays within [mean/2, 3·mean/2]). Countries without a
    /// same-country measurement get the median of the measured ones. Unmeasured pairs are routed
    /// through measured ones. See docs/network.md.
    pub fn country_table(csv: &str, origin: &str, jitter: bool) -> Result<Self, TopologyError> {
        let mut t = Topology::empty(RouteMode::DirectElseShortest);
        let bad = |line: usize, message: String| TopologyError::Table { origin: origin.to_string(), line, message };
        let mut lines = csv.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim() == "cty1,cty2,rtt_cnt,rtt_avg,rtt_std,rtt_min,rtt_max" => {}
            _ => return Err(bad(1, "expected the header cty1,cty2,rtt_cnt,rtt_avg,rtt_std,rtt_min,rtt_max".into())),
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 7 {
                return Err(bad(i + 1, format!("expected 7 fields, found {}", f.len())));
            }
            let num = |k: usize, what: &str| -> Result<f64, TopologyError> {
                // A pair measured by one ping has no spread: an empty std is zero.
                if k == 4 && f[k].trim().is_empty() {
                    return Ok(0.0);
                }
                f[k].trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| bad(i + 1, format!("{what} {:?} is not a non-negative number", f[k])))
            };
            let (avg, std) = (num(3, "rtt_avg")?, num(4, "rtt_std")?);
            let (a, b) = (f[0].trim().to_string(), f[1].trim().to_string());
            if a.is_empty() || b.is_empty() {
                return Err(bad(i + 1, "empty country code".into()));
            }
            rows.push((a, b, avg, std));
        }
        let mut names: Vec<&String> = rows.iter().flat_map(|(a, b, _, _)| [a, b]).collect();
        names.sort();
        names.dedup();
        for name in names.iter().map(|s| s.to_string()).collect::<Vec<_>>() {
            t.add_node(Node { name, bandwidth_up: None, bandwidth_down: None });
        }
        let link_of = |avg: f64, std: f64| {
            let mean = ms_to_ns(avg / 2.0);
            let half = if jitter { ms_to_ns(std / 2.0).min(mean / 2) } else { 0 };
            Link { latency_ns: mean, jitter_ns: half, loss: 0.0 }
        };
        let mut has_self = vec![false; t.len()];
        let mut self_links = Vec::new();
        for (a, b, avg, std) in &rows {
            let (ia, ib) = (t.by_name[a.as_str()], t.by_name[b.as_str()]);
            let link = link_of(*avg, *std);
            if ia == ib {
                has_self[ia as usize] = true;
                self_links.push(link);
            }
            t.link(ia, ib, link, true);
        }
        if !self_links.is_empty() {
            self_links.sort_by_key(|l| (l.latency_ns, l.jitter_ns));
            let median = self_links[self_links.len() / 2];
            for (i, has) in has_self.iter().enumerate() {
                if !has {
                    t.link(i as u32, i as u32, median, false);
                }
            }
        }
        Ok(t)
    }

    /// The embedded RIPE Atlas country table.
    pub fn ripe_countries(jitter: bool) -> Self {
        Topology::country_table(COUNTRY_RTT_CSV, "country_rtt_stat.csv", jitter).expect("the embedded table is valid")
    }

    /// A Shadow-compatible GML graph. `origin` names the file in errors.
    pub fn from_gml(text: &str, origin: &str, use_shortest_path: bool) -> Result<Self, TopologyError> {
        let at = |pos: Pos, message: String| TopologyError::Attribute { origin: origin.to_string(), pos, message };
        let top = gml::parse(text).map_err(|e| TopologyError::Gml(e, origin.to_string()))?;
        let graph = match top.iter().find(|p| p.key == "graph") {
            Some(Pair { value: Value::List(items), .. }) => items,
            Some(p) => return Err(at(p.pos, "`graph` must be a [ list ]".into())),
            None => return Err(at(Pos { line: 1, column: 1 }, "no `graph [ … ]` in the file".into())),
        };
        let mut directed = false;
        let mut t = Topology::empty(if use_shortest_path { RouteMode::Shortest } else { RouteMode::Direct });
        let mut ids: HashMap<i64, u32> = HashMap::new();
        let int = |p: &Pair| match &p.value {
            Value::Int(i) => Ok(*i),
            _ => Err(at(p.pos, format!("`{}` must be an integer", p.key))),
        };
        let bandwidth = |p: &Pair| match &p.value {
            Value::Str(s) => match shadow_bandwidth(s) {
                Ok(b) if b.0 == 0 => Err(at(p.pos, format!("`{}` must be positive (0 would mean unlimited)", p.key))),
                Ok(b) => Ok(b),
                Err(e) => Err(at(p.pos, format!("`{}`: {e}", p.key))),
            },
            _ => Err(at(p.pos, format!("`{}` must be a string such as \"100 Mbit\"", p.key))),
        };
        // Nodes first (edges may precede them in the file).
        for item in graph {
            match (item.key.as_str(), &item.value) {
                ("directed", _) => directed = int(item)? != 0,
                ("node", Value::List(attrs)) => {
                    let mut id = None;
                    let mut node = Node { name: String::new(), bandwidth_up: None, bandwidth_down: None };
                    for a in attrs {
                        match a.key.as_str() {
                            "id" => id = Some(int(a)?),
                            "host_bandwidth_up" => node.bandwidth_up = Some(bandwidth(a)?),
                            "host_bandwidth_down" => node.bandwidth_down = Some(bandwidth(a)?),
                            _ => {}
                        }
                    }
                    let id = id.ok_or_else(|| at(item.pos, "node without an `id`".into()))?;
                    if ids.contains_key(&id) {
                        return Err(at(item.pos, format!("node id {id} is used twice")));
                    }
                    node.name = id.to_string();
                    ids.insert(id, t.add_node(node));
                }
                ("node", _) | ("edge", Value::Int(_) | Value::Real(_) | Value::Str(_)) => {
                    return Err(at(item.pos, format!("`{}` must be a [ list ]", item.key)));
                }
                _ => {}
            }
        }
        for item in graph {
            let ("edge", Value::List(attrs)) = (item.key.as_str(), &item.value) else { continue };
            let (mut source, mut target, mut latency, mut jitter, mut loss) = (None, None, None, (0u64, None), 0.0f64);
            for a in attrs {
                match a.key.as_str() {
                    "source" => source = Some((int(a)?, a.pos)),
                    "target" => target = Some((int(a)?, a.pos)),
                    "latency" | "jitter" => {
                        let Value::Str(s) = &a.value else {
                            return Err(at(a.pos, format!("`{}` must be a string such as \"10 ms\"", a.key)));
                        };
                        let d = shadow_duration(s).map_err(|e| at(a.pos, format!("`{}`: {e}", a.key)))?;
                        if a.key == "latency" {
                            latency = Some((d.as_nanos(), a.pos));
                        } else {
                            jitter = (d.as_nanos(), Some(a.pos));
                        }
                    }
                    "packet_loss" => {
                        let p = match a.value {
                            Value::Real(r) => r,
                            Value::Int(i) => i as f64,
                            _ => return Err(at(a.pos, "`packet_loss` must be a number in [0, 1]".into())),
                        };
                        if !(0.0..=1.0).contains(&p) {
                            return Err(at(a.pos, format!("`packet_loss` {p} is outside [0, 1]")));
                        }
                        loss = p;
                    }
                    _ => {}
                }
            }
            let node_of = |v: Option<(i64, Pos)>, what: &str| -> Result<u32, TopologyError> {
                let (id, pos) = v.ok_or_else(|| at(item.pos, format!("edge without a `{what}`")))?;
                ids.get(&id).copied().ok_or_else(|| at(pos, format!("edge {what} {id} is not a node id")))
            };
            let (s, d) = (node_of(source, "source")?, node_of(target, "target")?);
            let (latency_ns, pos) = latency.ok_or_else(|| at(item.pos, "edge without a `latency`".into()))?;
            if latency_ns == 0 {
                return Err(at(pos, "`latency` must be positive: it bounds the runahead".into()));
            }
            if let (jitter_ns, Some(jpos)) = jitter
                && jitter_ns > latency_ns
            {
                // A delay is never negative: a jitter wider than the latency cannot be modelled.
                let message = format!("`jitter` ({jitter_ns} ns) is larger than `latency` ({latency_ns} ns)");
                return Err(at(jpos, message));
            }
            t.link(s, d, Link { latency_ns, jitter_ns: jitter.0, loss }, !directed);
        }
        if t.is_empty() {
            return Err(at(Pos { line: 1, column: 1 }, "the graph has no nodes".into()));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Routes;

    /// Shadow's own routing test graph (shadow/shadow, src/main/network/graph/mod.rs,
    /// `test_shortest_path`; BSD-3-Clause, the Shadow developers), where the shortest path is
    /// not always the direct edge. `{}` is `directed`.
    const SHADOW_SHORTEST_PATH_TEST: &str = "graph [
  directed {}
  node [
    id 0
  ]
  node [
    id 1
  ]
  node [
    id 2
  ]
  edge [
    source 0
    target 0
    latency \"3333 ns\"
  ]
  edge [
    source 1
    target 1
    latency \"5555 ns\"
  ]
  edge [
    source 2
    target 2
    latency \"7777 ns\"
  ]
  edge [
    source 0
    target 1
    latency \"3 ns\"
  ]
  edge [
    source 1
    target 0
    latency \"5 ns\"
  ]
  edge [
    source 0
    target 2
    latency \"7 ns\"
  ]
  edge [
    source 2
    target 1
    latency \"11 ns\"
  ]
]
";

    fn latencies(directed: u32) -> Vec<Vec<u64>> {
        let t = Topology::from_gml(&SHADOW_SHORTEST_PATH_TEST.replace("{}", &directed.to_string()), "shadow.gml", true)
            .unwrap();
        let r = Routes::compute(&t, &[0, 1, 2]).unwrap();
        (0..3).map(|a| (0..3).map(|b| r.path(a, b).latency_ns).collect()).collect()
    }

    #[test]
    fn routes_shadows_test_graph_as_shadow_does() {
        // Expected values are the assertions of Shadow's test.
        assert_eq!(latencies(1), vec![vec![3333, 3, 7], vec![5, 5555, 12], vec![16, 11, 7777]]);
        assert_eq!(latencies(0), vec![vec![3333, 3, 7], vec![3, 5555, 10], vec![7, 10, 7777]]);
    }

    #[test]
    fn shadow_docs_example_graph_parses() {
        // The example of Shadow's network graph specification (shadow.github.io, network_graph_spec).
        let text = "graph [\n  directed 0\n  node [\n    id 0\n    label \"node at 1.2.3.4\"\n    host_bandwidth_down \"100 Mbit\"\n    host_bandwidth_up \"100 Mbit\"\n  ]\n  edge [\n    source 0\n    target 0\n    label \"path from 1.2.3.4 to 1.2.3.4\"\n    latency \"10 ms\"\n    jitter \"0 ms\"\n    packet_loss 0.0\n  ]\n]\n";
        let t = Topology::from_gml(text, "spec.gml", true).unwrap();
        assert_eq!(t.nodes[0].bandwidth_down, Some(Bandwidth(100_000_000)));
        let r = Routes::compute(&t, &[0]).unwrap();
        assert_eq!(r.path(0, 0).latency_ns, 10_000_000);
    }

    #[test]
    fn loss_combines_along_the_path_and_ties_prefer_lower_loss() {
        let g = "graph [\n directed 0\n node [ id 0 ]\n node [ id 1 ]\n node [ id 2 ]\n node [ id 3 ]\n edge [ source 0 target 1 latency \"5 ms\" packet_loss 0.1 ]\n edge [ source 1 target 2 latency \"5 ms\" packet_loss 0.2 ]\n edge [ source 0 target 3 latency \"5 ms\" packet_loss 0.5 ]\n edge [ source 3 target 2 latency \"5 ms\" packet_loss 0.5 ]\n edge [ source 0 target 0 latency \"1 ms\" ]\n edge [ source 2 target 2 latency \"1 ms\" ]\n]\n";
        let t = Topology::from_gml(g, "t.gml", true).unwrap();
        let r = Routes::compute(&t, &[0, 2]).unwrap();
        let p = r.path(0, 2);
        assert_eq!(p.latency_ns, 10_000_000);
        assert!((p.loss - (1.0 - 0.9 * 0.8)).abs() < 1e-12, "{}", p.loss);
    }

    #[test]
    fn shadow_unit_spellings_are_read() {
        assert_eq!(shadow_bandwidth("10 M").unwrap(), Bandwidth(10_000_000));
        assert_eq!(shadow_bandwidth("1024").unwrap(), Bandwidth(1024));
        assert_eq!(shadow_bandwidth("2 Gibit").unwrap(), Bandwidth(2 << 30));
        assert_eq!(shadow_duration("2").unwrap().as_nanos(), 2_000_000_000);
        assert_eq!(shadow_duration("1 m").unwrap().as_nanos(), 60_000_000_000);
        assert_eq!(shadow_duration("5 μs").unwrap().as_nanos(), 5_000);
        assert_eq!(shadow_duration("10 milliseconds").unwrap().as_nanos(), 10_000_000);
        assert_eq!(shadow_duration("3 hrs").unwrap().as_nanos(), 3 * 3_600_000_000_000);
        assert_eq!(shadow_bandwidth("10 kilobits").unwrap(), Bandwidth(10_000));
        assert_eq!(shadow_bandwidth("100 Mbits").unwrap(), Bandwidth(100_000_000));
        assert_eq!(shadow_bandwidth("1 Gbit").unwrap(), Bandwidth(1_000_000_000));
        assert_eq!(shadow_bandwidth("128 bits").unwrap(), Bandwidth(128));
    }

    #[test]
    fn a_wide_jitter_and_a_zero_bandwidth_are_refused_where_they_are_written() {
        let edge = |jitter: &str| {
            format!(
                "graph [\n  node [\n    id 0\n  ]\n  edge [\n    source 0\n    target 0\n    latency \"10 ms\"\n    jitter \"{jitter}\"\n  ]\n]\n"
            )
        };
        assert!(Topology::from_gml(&edge("10 ms"), "g.gml", true).is_ok());
        let zero = edge("0 ms").replace("id 0\n", "id 0\n    host_bandwidth_up \"0 Mbit\"\n");
        let err = Topology::from_gml(&zero, "g.gml", true).unwrap_err().to_string();
        assert!(err.contains("g.gml:4:") && err.contains("must be positive"), "{err}");
        let err = Topology::from_gml(&edge("11 ms"), "g.gml", true).unwrap_err().to_string();
        assert!(err.contains("g.gml:9:") && err.contains("larger than `latency`"), "{err}");
    }

    #[test]
    fn gml_errors_say_where_and_what() {
        let e = Topology::from_gml(
            "graph [\n node [ id 0 ]\n edge [ source 0 target 1 latency \"1 ms\" ]\n]",
            "x.gml",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.gml:3:"), "{e}");
        assert!(e.contains("edge target 1 is not a node id"), "{e}");
        let e = Topology::from_gml(
            "graph [\n node [ id 0 ]\n edge [ source 0 target 0 latency \"0 ms\" ]\n]",
            "x.gml",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be positive"), "{e}");
        let e = Topology::from_gml(
            "graph [\n node [ id 0 ]\n edge [ source 0 target 0 latency \"fast\" ]\n]",
            "x.gml",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.gml:3:"), "{e}");
        let e = Topology::from_gml("graph [\n node [ id 0 \n", "x.gml", true).unwrap_err().to_string();
        assert!(e.contains("unterminated list"), "{e}");
        let e = Topology::from_gml("graph [\n node [ id 0 host_bandwidth_up \"9 Mfurlong\" ]\n]", "x.gml", true)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.gml:2:") && e.contains("host_bandwidth_up"), "{e}");
    }

    #[test]
    fn country_table_latency_matches_the_measurements() {
        let t = Topology::ripe_countries(true);
        assert_eq!(t.len(), 173);
        let (de, us) = (t.node("DE").unwrap(), t.node("US").unwrap());
        let r = Routes::compute(&t, &[de, us]).unwrap();
        // DE–US: rtt_avg 113.63 ms, rtt_std 147.7 ms → one-way 56.81 ms, half-width capped at 28.41 ms.
        let p = r.path(de, us);
        assert_eq!(p.latency_ns, 56_814_865);
        assert_eq!(p.jitter_ns, 56_814_865 / 2);
        let none = Topology::ripe_countries(false);
        assert_eq!(Routes::compute(&none, &[de, us]).unwrap().path(de, us).jitter_ns, 0);
    }
}
