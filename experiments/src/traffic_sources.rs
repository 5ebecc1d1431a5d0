//! `[[traffic_sources]]`: hosts that send datagrams at a rate without a program (floods and load
//! for ingress experiments), checked and resolved against the host directory into the plans the
//! direct engines follow (see `thermocline_direct::sources`).

use std::net::SocketAddrV4;
use thermocline_direct::sources::{Payload, SourcePlan, TrafficSourceSpec};
use thermocline_models::directory::{HostDirectory, HostKind};
use thermocline_wire::tx::OVERHEAD;

/// The most datagrams a second one source host may send.
pub const MAX_RATE: f64 = 1e6;
/// IPv4 and UDP headers: what a datagram adds to its payload on the uplink.
const HEADERS: u64 = 28;

/// Resolve `entries` against `dir`; `programs` are the groups that run `[[processes]]`. Errors
/// name the entry's key (`traffic_sources[0].rate`).
pub fn compile(
    entries: &[TrafficSourceSpec],
    dir: &HostDirectory,
    programs: &[&str],
) -> Result<Vec<SourcePlan>, String> {
    entries.iter().enumerate().map(|(i, e)| plan(i, e, dir, programs)).collect()
}

fn plan(i: usize, e: &TrafficSourceSpec, dir: &HostDirectory, programs: &[&str]) -> Result<SourcePlan, String> {
    let key = |k: &str| format!("traffic_sources[{i}].{k}");
    let hosts = crate::scenario::select(dir, &e.host, &key("host"))?;
    let group = &dir.groups[dir.block_of(hosts.start).group as usize];
    if group.spec.kind != HostKind::Direct {
        return Err(format!("{}: group {:?} is not kind = \"direct\"", key("host"), group.spec.name));
    }
    if programs.contains(&group.spec.name.as_str()) {
        return Err(format!(
            "{}: group {:?} runs [[processes]]; traffic sources are hosts without a program (give them a group of their own)",
            key("host"),
            group.spec.name
        ));
    }
    if e.port == 0 {
        return Err(format!("{} must be a port from 1 to 65535", key("port")));
    }
    if e.to.is_empty() {
        return Err(format!("{} names at least one target, as \"GROUP:PORT\"", key("to")));
    }
    let mut targets = Vec::new();
    for t in &e.to {
        let (selector, port) =
            t.rsplit_once(':').ok_or_else(|| format!("{}: {t:?} is not \"GROUP:PORT\"", key("to")))?;
        let port: u16 =
            port.parse().ok().filter(|&p| p > 0).ok_or_else(|| format!("{}: {port:?} is not a port", key("to")))?;
        let to = crate::scenario::select(dir, selector, &key("to"))?;
        if dir.kind_of(to.start) != HostKind::Direct {
            return Err(format!(
                "{}: {selector:?} is not a group of direct hosts (sources send to programs)",
                key("to")
            ));
        }
        targets.extend(to.map(|h| SocketAddrV4::new(HostDirectory::ip_of(h), port)));
    }
    if !(e.rate.is_finite() && e.rate > 0.0 && e.rate <= MAX_RATE) {
        return Err(format!(
            "{} must be above 0 and at most {MAX_RATE} datagrams per second, not {}",
            key("rate"),
            e.rate
        ));
    }
    let floor = match e.payload {
        Payload::Tx => OVERHEAD as u32,
        Payload::Stamp => thermocline_direct::sources::STAMP_LEN as u32,
        Payload::Random => 1,
    };
    let sizes = e.size.range(floor).map_err(|m| format!("{} {m}", key("size")))?;
    // A source faster than its uplink would queue datagrams without end: refuse it.
    let up = hosts.clone().map(|h| dir.block_of(h).bandwidth.up.0).min().unwrap_or(0);
    let needs = e.rate * ((u64::from(sizes.1) + HEADERS) * 8) as f64;
    if up > 0 && needs > up as f64 {
        return Err(format!(
            "{}: {} datagrams a second of up to {} bytes need {:.0} bit/s, more than the hosts' upload of {up} bit/s",
            key("rate"),
            e.rate,
            sizes.1,
            needs
        ));
    }
    if !(0.0..=1.0).contains(&e.invalid) {
        return Err(format!("{} must be within 0 and 1, not {}", key("invalid"), e.invalid));
    }
    if e.invalid > 0.0 && e.payload != Payload::Tx {
        return Err(format!("{} needs payload = \"tx\" (only transactions have signatures)", key("invalid")));
    }
    let stop = e.stop.map_or(u64::MAX, |s| s.as_nanos());
    if stop <= e.start.as_nanos() {
        return Err(format!("{} must be later than start ({})", key("stop"), e.start));
    }
    Ok(SourcePlan {
        entry: i,
        hosts,
        targets,
        gap_ns: ((1e9 / e.rate).round() as u64).max(1),
        sizes,
        payload: e.payload,
        invalid: e.invalid,
        spacing: e.spacing,
        start: e.start.as_nanos(),
        stop,
        port: e.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> HostDirectory {
        let text = "[[hosts]]\nname = \"src\"\nkind = \"direct\"\ncount = 4\n\
                    [[hosts]]\nname = \"node\"\nkind = \"direct\"\ncount = 2\n\
                    [[hosts]]\nname = \"tail\"\ncount = 3\n";
        crate::test_support::switch_network(text).directory
    }

    fn entry(body: &str) -> Vec<TrafficSourceSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            traffic_sources: Vec<TrafficSourceSpec>,
        }
        toml::from_str::<Doc>(&format!("[[traffic_sources]]\n{body}\n")).unwrap().traffic_sources
    }

    #[test]
    fn a_source_group_resolves_to_its_hosts_and_targets() {
        let dir = directory();
        let plans = compile(
            &entry("host = \"src[1..3]\"\nto = [\"node:8000\"]\nrate = 2000.0\nsize = { fixed = 300 }\npayload = \"tx\"\ninvalid = 0.5"),
            &dir,
            &["node"],
        )
        .unwrap();
        let p = &plans[0];
        let node = dir.groups.iter().find(|g| g.spec.name == "node").unwrap().first;
        let src = dir.groups.iter().find(|g| g.spec.name == "src").unwrap().first;
        assert_eq!(p.hosts, src + 1..src + 3);
        assert_eq!(p.targets, [node, node + 1].map(|h| SocketAddrV4::new(HostDirectory::ip_of(h), 8000)));
        assert_eq!((p.gap_ns, p.sizes, p.stop), (500_000, (300, 300), u64::MAX));
    }

    #[test]
    fn bad_entries_name_their_key() {
        let dir = directory();
        let ok = "to = [\"node:8000\"]\nrate = 10.0\nsize = { fixed = 300 }";
        let cases = [
            (format!("host = \"tail\"\n{ok}"), "traffic_sources[0].host: group \"tail\" is not kind = \"direct\""),
            (format!("host = \"nope\"\n{ok}"), "traffic_sources[0].host: no hosts group named \"nope\""),
            ("host = \"src\"\nto = [\"node\"]\nrate = 10.0\nsize = { fixed = 300 }".into(), "is not \"GROUP:PORT\""),
            ("host = \"src\"\nto = [\"node:0\"]\nrate = 10.0\nsize = { fixed = 300 }".into(), "is not a port"),
            ("host = \"src\"\nto = [\"node:1\"]\nrate = 0.0\nsize = { fixed = 300 }".into(), "traffic_sources[0].rate"),
            (
                "host = \"src\"\nto = [\"node:1\"]\nrate = 1.0\nsize = { fixed = 50 }\npayload = \"tx\"".into(),
                "size sizes must lie",
            ),
            (format!("host = \"src\"\n{ok}\ninvalid = 0.5"), "needs payload = \"tx\""),
            (format!("host = \"src\"\n{ok}\nstart = \"5 s\"\nstop = \"5 s\""), "traffic_sources[0].stop"),
            (format!("host = \"node\"\n{ok}"), "group \"node\" runs [[processes]]"),
            (format!("host = \"src\"\n{ok}\nport = 0"), "traffic_sources[0].port"),
            (
                "host = \"src\"\nto = [\"tail:1\"]\nrate = 1.0\nsize = { fixed = 300 }".into(),
                "is not a group of direct hosts",
            ),
            (
                "host = \"src\"\nto = [\"node:1\"]\nrate = 100000.0\nsize = { fixed = 300 }".into(),
                "more than the hosts' upload",
            ),
        ];
        for (body, expected) in cases {
            let err = compile(&entry(&body), &dir, &["node"]).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
