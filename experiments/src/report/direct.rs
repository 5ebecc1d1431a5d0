//! The direct-host plots: per process, the syscall mix (`direct_syscalls`), how blocking and
//! readiness calls ended (`direct_wakeups`) and what readiness calls reported
//! (`direct_wait_events`), all from `--syscall-stats`; each host's packets over simulated time
//! from its `hosts/<host>/packets.pcap` (`--pcap`); and the `direct_processes` table. The direct
//! tables hold counts over the whole run, not times: the timelines are the captures'.

use super::chart::{LineChart, Series, ShareBars};
use super::data::{RunFolder, Table};
use super::stats::Bins;
use super::{Figure, ReportError, Section, html};
use std::collections::BTreeMap;
use std::path::Path;

/// Processes (bars) drawn per mix; the rest are named in the note.
const MAX_ROWS: usize = 24;
/// Segments per mix: the largest overall, the rest summed as "other".
const MAX_SEGMENTS: usize = 9;
/// Rows of the processes table.
const MAX_TABLE_ROWS: usize = 200;
/// Hosts drawn in the packet timeline.
const MAX_HOSTS: usize = 8;
/// Time bins of the packet timeline.
const TIME_BINS: usize = 240;

const NO_STATS: &str = "the run was not made with `--syscall-stats`";

/// The direct-host section, or `None` when the run had no direct hosts.
pub fn section(run: &RunFolder) -> Result<Option<Section>, ReportError> {
    let Some(processes) = run.table("direct_processes")? else { return Ok(None) };
    let mut figures = vec![processes_table(&processes)?];
    let mixes = [
        ("syscall-mix", "Syscall mix per process", "direct_syscalls", &["syscall"][..], "calls"),
        ("wakeups", "How blocking and readiness calls ended", "direct_wakeups", &["how", "reason"][..], "calls"),
        (
            "wait-events",
            "Events reported by readiness calls",
            "direct_wait_events",
            &["fd_kind", "events"][..],
            "count",
        ),
    ];
    for (id, title, table, key, value) in mixes {
        let what = Mix { id, title, table, key, value };
        figures.push(match run.table(table)? {
            Some(t) => mix(&t, &what)?,
            None => Figure::absent(id, title, NO_STATS),
        });
    }
    figures.push(packet_timeline(run)?);
    Ok(Some(Section { title: "Direct hosts".into(), figures }))
}

/// The `direct_processes` rows as an HTML table; a count the table does not have (a run from
/// before the column existed) shows as "–".
fn processes_table(t: &Table) -> Result<Figure, ReportError> {
    let text: Vec<Vec<String>> =
        ["host_name", "process", "status", "expected"].iter().map(|c| t.strings(c)).collect::<Result<_, _>>()?;
    let counts = ["syscalls", "tcp_sent_bytes", "tcp_recv_bytes", "udp_sent_bytes", "udp_recv_bytes"];
    let counts: Vec<Option<Vec<u64>>> = counts.iter().map(|c| t.u64s(c).ok()).collect();
    let shown = t.rows().min(MAX_TABLE_ROWS);
    let rows: Vec<Vec<String>> = (0..shown)
        .map(|k| {
            let mut row: Vec<String> = text.iter().map(|c| c[k].clone()).collect();
            row.extend(counts.iter().map(|c| c.as_ref().map_or("–".to_string(), |c| c[k].to_string())));
            row
        })
        .collect();
    let header =
        ["host", "process", "status", "expected", "syscalls", "TCP sent", "TCP received", "UDP sent", "UDP received"];
    let more = if t.rows() > shown { format!(" The first {shown} of {} rows.", t.rows()) } else { String::new() };
    Ok(Figure::html(
        "direct-processes",
        "Processes",
        &format!(
            "Every spec process of every direct host (`direct_processes`): final status, syscalls and payload bytes.{more}"
        ),
        html::table(&header, &rows),
    ))
}

/// One mix plot: its figure, the table it reads, the columns that name a part and the count.
struct Mix {
    id: &'static str,
    title: &'static str,
    table: &'static str,
    key: &'static [&'static str],
    value: &'static str,
}

/// Stacked share bars per (host, binary) of the `value` column split by the `key` columns.
fn mix(t: &Table, m: &Mix) -> Result<Figure, ReportError> {
    let (hosts, binaries) = (t.strings("host_name")?, t.strings("binary")?);
    let keys: Vec<Vec<String>> = m.key.iter().map(|k| t.strings(k)).collect::<Result<_, _>>()?;
    let values = t.u64s(m.value)?;
    // (host, binary) → part → value; part totals over the run.
    let mut rows: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for k in 0..t.rows() {
        let part = keys.iter().map(|c| c[k].as_str()).collect::<Vec<_>>().join(" ");
        *rows.entry((hosts[k].clone(), binaries[k].clone())).or_default().entry(part.clone()).or_insert(0) += values[k];
        *totals.entry(part).or_insert(0) += values[k];
    }
    if rows.is_empty() {
        return Ok(Figure::absent(m.id, m.title, &format!("`{}` has no rows", m.table)));
    }
    let mut by_size: Vec<(String, u64)> = totals.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut segments: Vec<String> = by_size.iter().take(MAX_SEGMENTS).map(|(s, _)| s.clone()).collect();
    let has_other = by_size.len() > MAX_SEGMENTS;
    if has_other {
        segments.push("other".into());
    }
    let mut bars: Vec<(String, Vec<u64>, u64)> = rows
        .into_iter()
        .map(|((host, binary), parts)| {
            let mut v: Vec<u64> =
                segments.iter().take(MAX_SEGMENTS).map(|s| parts.get(s).copied().unwrap_or(0)).collect();
            let total: u64 = parts.values().sum();
            if has_other {
                v.push(total - v.iter().sum::<u64>());
            }
            (format!("{host} · {binary} ({total})"), v, total)
        })
        .collect();
    let more = if bars.len() > MAX_ROWS {
        // The busiest processes, then by name.
        bars.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        format!(" The {MAX_ROWS} busiest of {} (host, binary) pairs.", bars.len())
    } else {
        String::new()
    };
    bars.truncate(MAX_ROWS);
    let share = ShareBars { segments, rows: bars.into_iter().map(|(l, v, _)| (l, v)).collect() };
    Ok(Figure::svg(
        m.id,
        m.title,
        &format!(
            "Per (host, binary), the share of {} by {} (`{}`); the total in brackets.{more}",
            m.value,
            m.key.join(" and "),
            m.table
        ),
        super::chart::share_bars(&share)?,
    ))
}

/// Packets per simulated second of each host with a capture.
fn packet_timeline(run: &RunFolder) -> Result<Figure, ReportError> {
    let (id, title) = ("packet-timeline", "Packets over simulated time per host");
    let mut captures: Vec<(String, Vec<u64>)> = Vec::new();
    let hosts = run.dir().join("hosts");
    let mut names: Vec<String> = match std::fs::read_dir(&hosts) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    for name in names {
        let path = hosts.join(&name).join("packets.pcap");
        if path.is_file() {
            captures.push((name, capture_times(&path)?));
        }
    }
    if captures.is_empty() {
        return Ok(Figure::absent(id, title, "no packet captures (the run was not made with `--pcap`)"));
    }
    let total = captures.len();
    captures.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    captures.truncate(MAX_HOSTS);
    captures.sort_by(|a, b| a.0.cmp(&b.0));
    let end = run.summary.sim_time_ns;
    let series = captures
        .into_iter()
        .map(|(name, times)| {
            let mut bins = Bins::new(end, TIME_BINS);
            for t in times {
                bins.add(t, 1.0);
            }
            let per_s = 1e9 / bins.width();
            let points = (0..TIME_BINS).map(|i| (bins.start(i) as f64 / 1e9, bins.sums[i] * per_s)).collect();
            Series { name, points }
        })
        .collect();
    let more = if total > MAX_HOSTS { format!(" The {MAX_HOSTS} busiest of {total} hosts.") } else { String::new() };
    Figure::line(
        id,
        title,
        &format!(
            "Packets each host sent and received per simulated second, from its capture (`hosts/<host>/packets.pcap`).{more}"
        ),
        &LineChart::new("simulated time (s)", "packets per simulated s", series),
        "the captures hold no packets",
    )
}

/// The simulated time (ns) of every record of the pcap file at `path`.
fn capture_times(path: &Path) -> Result<Vec<u64>, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    pcap_times(&bytes).map_err(|why| ReportError::Capture { path: path.to_path_buf(), why })
}

/// The record times of a classic pcap file (either byte order, micro- or nanosecond stamps).
/// A file cut short ends at its last whole record; any other malformation is an error.
pub fn pcap_times(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let word = |at: usize, le: bool| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let magic = word(0, true).ok_or("shorter than a pcap header")?;
    let (le, frac_ns) = match magic {
        0xa1b2_c3d4 => (true, 1000),
        0xa1b2_3c4d => (true, 1),
        0xd4c3_b2a1 => (false, 1000),
        0x4d3c_b2a1 => (false, 1),
        other => return Err(format!("not a pcap file (magic {other:#010x})")),
    };
    if bytes.len() < 24 {
        return Err("shorter than a pcap header".into());
    }
    let mut times = Vec::new();
    let mut at = 24usize;
    while at + 16 <= bytes.len() {
        let (sec, frac, caplen) = match (word(at, le), word(at + 4, le), word(at + 8, le)) {
            (Some(s), Some(f), Some(c)) => (s, f, c as usize),
            _ => break,
        };
        let next = at.checked_add(16 + caplen).ok_or("record length overflows")?;
        if next > bytes.len() {
            break;
        }
        times.push(u64::from(sec) * 1_000_000_000 + u64::from(frac) * frac_ns);
        at = next;
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(records: &[(u64, usize)]) -> Vec<u8> {
        let mut out = thermocline_direct::pcap::file_header().to_vec();
        for &(ns, len) in records {
            out.extend(thermocline_direct::pcap::record_header(ns, len));
            out.extend(vec![0u8; len]);
        }
        out
    }

    #[test]
    fn capture_times_are_read_back_and_a_cut_file_ends_early() {
        let bytes = capture(&[(1_500_000_000, 40), (2_000_001_000, 60)]);
        assert_eq!(pcap_times(&bytes).unwrap(), [1_500_000_000, 2_000_001_000]);
        assert_eq!(pcap_times(&bytes[..bytes.len() - 1]).unwrap(), [1_500_000_000]);
    }

    #[test]
    fn malformed_captures_are_errors_not_panics() {
        assert!(pcap_times(b"").is_err());
        assert!(pcap_times(b"GIF89a..........................").is_err());
        let mut bytes = capture(&[(0, 4)]);
        bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pcap_times(&bytes).unwrap(), Vec::<u64>::new());
    }
}
