//! Result tables of direct hosts, as Arrow IPC streams.

use crate::config::DirectOptions;
use crate::host::Host;
use crate::ops::HostOp;
use crate::sources::SourcePlan;
use arrow_schema::{ArrowError, DataType, Field};
use thermocline_bus::Table;
use thermocline_models::metrics::{GossipArrivals, str_col, table, u32_col, u64_col};

/// `direct_processes` (one row per spec process per host: host, host_name, process, path,
/// status, expected, syscalls, udp_sent_bytes, udp_recv_bytes, tcp_sent_bytes, tcp_recv_bytes,
/// max_rss_bytes; TCP counts payload bytes handed to and taken from the sockets, and the peak
/// RSS is a measurement of the machine, not part of the digest) and, with `--syscall-stats`,
/// `direct_syscalls` (host, host_name, binary, syscall, nr, calls) and [`wait_tables`]'s; in a run where boundary
/// identities sent this shard's hosts stream marks, [`hot_tables`]'s too.
pub(crate) fn tables(
    hosts: &[Host],
    opts: &DirectOptions,
    ops: &[HostOp],
    sources: &[SourcePlan],
) -> Result<Vec<Table>, ArrowError> {
    let rows: Vec<_> = hosts.iter().flat_map(|h| h.procs.iter().map(move |p| (h, p))).collect();
    let processes = table(
        "direct_processes",
        vec![
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("process", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("expected", DataType::Utf8, false),
            Field::new("syscalls", DataType::UInt64, false),
            Field::new("udp_sent_bytes", DataType::UInt64, false),
            Field::new("udp_recv_bytes", DataType::UInt64, false),
            Field::new("tcp_sent_bytes", DataType::UInt64, false),
            Field::new("tcp_recv_bytes", DataType::UInt64, false),
            Field::new("max_rss_bytes", DataType::UInt64, false),
        ],
        vec![
            u32_col(rows.iter().map(|(h, _)| h.id)),
            str_col(rows.iter().map(|(h, _)| h.name.clone())),
            str_col(rows.iter().map(|(_, p)| p.stem.clone())),
            str_col(rows.iter().map(|(_, p)| p.exe.display().to_string())),
            str_col(rows.iter().map(|(_, p)| p.status.to_string())),
            str_col(rows.iter().map(|(_, p)| p.spec.expected_exit.to_string())),
            u64_col(rows.iter().map(|(_, p)| p.syscalls)),
            u64_col(rows.iter().map(|(_, p)| p.udp_sent)),
            u64_col(rows.iter().map(|(_, p)| p.udp_recv)),
            u64_col(rows.iter().map(|(_, p)| p.tcp_sent)),
            u64_col(rows.iter().map(|(_, p)| p.tcp_recv)),
            u64_col(rows.iter().map(|(_, p)| p.max_rss)),
        ],
    )?;
    let mut out = vec![processes, log_table(hosts)?];
    if hosts.iter().any(|h| !h.runbook.events.is_empty()) {
        out.push(event_table(hosts, ops)?);
    }
    if hosts.iter().any(|h| !h.sources.is_empty()) {
        out.push(source_table(hosts, sources)?);
    }
    if opts.syscall_stats {
        let rows: Vec<_> =
            hosts.iter().flat_map(|h| h.stats.iter().map(move |((b, nr), c)| (h, b.clone(), *nr, *c))).collect();
        let syscalls = table(
            "direct_syscalls",
            vec![
                Field::new("host", DataType::UInt32, false),
                Field::new("host_name", DataType::Utf8, false),
                Field::new("binary", DataType::Utf8, false),
                Field::new("syscall", DataType::Utf8, false),
                Field::new("nr", DataType::UInt64, false),
                Field::new("calls", DataType::UInt64, false),
            ],
            vec![
                u32_col(rows.iter().map(|r| r.0.id)),
                str_col(rows.iter().map(|r| r.0.name.clone())),
                str_col(rows.iter().map(|r| r.1.clone())),
                str_col(rows.iter().map(|r| crate::sysnames::name(r.2).unwrap_or("private").to_string())),
                u64_col(rows.iter().map(|r| r.2 as u64)),
                u64_col(rows.iter().map(|r| r.3)),
            ],
        )?;
        out.push(syscalls);
        out.extend(wait_tables(hosts)?);
    }
    if hosts.iter().any(|h| h.marks.received > 0) {
        out.extend(hot_tables(hosts, opts)?);
    }
    Ok(out)
}

/// `direct_logs`: every line the hosts' processes wrote to stdout and stderr (time_ns, host,
/// host_name, process, stream, line), per host in the order written (see [`crate::logs`]); a host
/// that wrote more than [`crate::logs::LOG_CAP`] bytes of lines ends with a row of stream
/// `dropped` saying how many were not kept.
fn log_table(hosts: &[Host]) -> Result<Table, ArrowError> {
    let mut rows: Vec<(u64, &Host, String, &str, String)> = Vec::new();
    for h in hosts {
        for l in &h.logs.lines {
            rows.push((l.time, h, h.procs[l.proc].stem.clone(), l.stream.name(), l.text.clone()));
        }
        if h.logs.dropped > 0 {
            let note =
                format!("{} more lines past the {} MiB kept per host", h.logs.dropped, crate::logs::LOG_CAP >> 20);
            rows.push((h.now, h, String::new(), "dropped", note));
        }
    }
    table(
        "direct_logs",
        vec![
            Field::new("time_ns", DataType::UInt64, false),
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("process", DataType::Utf8, false),
            Field::new("stream", DataType::Utf8, false),
            Field::new("line", DataType::Utf8, false),
        ],
        vec![
            u64_col(rows.iter().map(|r| r.0)),
            u32_col(rows.iter().map(|r| r.1.id)),
            str_col(rows.iter().map(|r| r.1.name.clone())),
            str_col(rows.iter().map(|r| r.2.clone())),
            str_col(rows.iter().map(|r| r.3.to_string())),
            str_col(rows.iter().map(|r| r.4.clone())),
        ],
    )
}

/// `scenario_events`: what each timeline step did on each host (time_ns, host, host_name,
/// entry — its index among `[[scenario]]` —, step — its name —, action, event, detail), per host
/// in order (see [`crate::ops`]).
fn event_table(hosts: &[Host], ops: &[HostOp]) -> Result<Table, ArrowError> {
    let rows: Vec<_> = hosts.iter().flat_map(|h| h.runbook.events.iter().map(move |e| (h, e))).collect();
    table(
        "scenario_events",
        vec![
            Field::new("time_ns", DataType::UInt64, false),
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("entry", DataType::UInt32, false),
            Field::new("step", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
            Field::new("event", DataType::Utf8, false),
            Field::new("detail", DataType::Utf8, false),
        ],
        vec![
            u64_col(rows.iter().map(|(_, e)| e.time)),
            u32_col(rows.iter().map(|(h, _)| h.id)),
            str_col(rows.iter().map(|(h, _)| h.name.clone())),
            u32_col(rows.iter().map(|(_, e)| ops[e.op].entry as u32)),
            str_col(rows.iter().map(|(_, e)| ops[e.op].label.clone())),
            str_col(rows.iter().map(|(_, e)| ops[e.op].kind.name().to_string())),
            str_col(rows.iter().map(|(_, e)| e.what.to_string())),
            str_col(rows.iter().map(|(_, e)| e.detail.clone())),
        ],
    )
}

/// `traffic_sources`: what each source host sent (host, host_name, entry — its index among
/// `[[traffic_sources]]` —, sent, bytes — UDP payload —, invalid — transactions with a bad
/// signature).
fn source_table(hosts: &[Host], plans: &[SourcePlan]) -> Result<Table, ArrowError> {
    let rows: Vec<_> = hosts.iter().flat_map(|h| h.sources.iter().map(move |s| (h, s))).collect();
    table(
        "traffic_sources",
        vec![
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("entry", DataType::UInt32, false),
            Field::new("sent", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("invalid", DataType::UInt64, false),
        ],
        vec![
            u32_col(rows.iter().map(|(h, _)| h.id)),
            str_col(rows.iter().map(|(h, _)| h.name.clone())),
            u32_col(rows.iter().map(|(_, s)| plans[s.plan].entry as u32)),
            u64_col(rows.iter().map(|(_, s)| s.sent)),
            u64_col(rows.iter().map(|(_, s)| s.bytes)),
            u64_col(rows.iter().map(|(_, s)| s.invalid)),
        ],
    )
}

/// `direct_wakeups` (host, host_name, binary, syscall, how, reason, calls) and
/// `direct_wait_events` (host, host_name, binary, syscall, how, fd_kind, events, count): how
/// readiness and blocked calls ended and why, and the events readiness calls reported (see
/// [`crate::waits`]).
fn wait_tables(hosts: &[Host]) -> Result<Vec<Table>, ArrowError> {
    let name = |nr: i64| crate::sysnames::name(nr).unwrap_or("private").to_string();
    let ends: Vec<_> = hosts
        .iter()
        .filter_map(|h| h.waits.as_ref().map(|w| (h, w)))
        .flat_map(|(h, w)| w.ends.iter().map(move |((b, nr, how, why), c)| (h, b, *nr, *how, why, *c)))
        .collect();
    let wakeups = table(
        "direct_wakeups",
        vec![
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("binary", DataType::Utf8, false),
            Field::new("syscall", DataType::Utf8, false),
            Field::new("how", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("calls", DataType::UInt64, false),
        ],
        vec![
            u32_col(ends.iter().map(|r| r.0.id)),
            str_col(ends.iter().map(|r| r.0.name.clone())),
            str_col(ends.iter().map(|r| r.1.clone())),
            str_col(ends.iter().map(|r| name(r.2))),
            str_col(ends.iter().map(|r| r.3.name())),
            str_col(ends.iter().map(|r| r.4.clone())),
            u64_col(ends.iter().map(|r| r.5)),
        ],
    )?;
    let events: Vec<_> = hosts
        .iter()
        .filter_map(|h| h.waits.as_ref().map(|w| (h, w)))
        .flat_map(|(h, w)| w.events.iter().map(move |((b, nr, how, kind, bits), c)| (h, b, *nr, *how, *kind, bits, *c)))
        .collect();
    let wait_events = table(
        "direct_wait_events",
        vec![
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("binary", DataType::Utf8, false),
            Field::new("syscall", DataType::Utf8, false),
            Field::new("how", DataType::Utf8, false),
            Field::new("fd_kind", DataType::Utf8, false),
            Field::new("events", DataType::Utf8, false),
            Field::new("count", DataType::UInt64, false),
        ],
        vec![
            u32_col(events.iter().map(|r| r.0.id)),
            str_col(events.iter().map(|r| r.0.name.clone())),
            str_col(events.iter().map(|r| r.1.clone())),
            str_col(events.iter().map(|r| name(r.2))),
            str_col(events.iter().map(|r| r.3.name())),
            str_col(events.iter().map(|r| r.4)),
            str_col(events.iter().map(|r| r.5.clone())),
            u64_col(events.iter().map(|r| r.6)),
        ],
    )?;
    Ok(vec![wakeups, wait_events])
}

/// `gossip_arrivals` rows of real clients (`hot` true; one per host and message a boundary
/// identity sent it, at the instant its stack had delivered the message's last byte to the
/// socket; see [`crate::marks`]), by host then message key; and `hot_marks` (per host: marks
/// received, arrivals, duplicates, marks dropped and still waiting at the end).
fn hot_tables(hosts: &[Host], opts: &DirectOptions) -> Result<Vec<Table>, ArrowError> {
    let mut rows = GossipArrivals::default();
    for h in hosts {
        let client =
            h.procs.first().and_then(|p| p.exe.file_name()).map_or(String::new(), |f| f.to_string_lossy().into());
        for (key, a) in &h.marks.arrivals {
            let n = &a.note;
            rows.slot.push(n.slot);
            rows.slot_start_ns.push(n.slot_start_ns);
            rows.topic.push(n.topic.clone());
            rows.message_id.push(*key);
            rows.node.push(h.id);
            rows.name.push(h.name.clone());
            rows.implementation.push(client.clone());
            rows.arrival_ns.push(a.time);
            rows.since_publish_ns.push(a.time.saturating_sub(n.published_ns));
            rows.hops.push(u32::from(n.hops));
            rows.from_peer.push(n.sender);
            rows.duplicates.push(a.duplicates);
        }
    }
    let marks = table(
        "hot_marks",
        vec![
            Field::new("host", DataType::UInt32, false),
            Field::new("host_name", DataType::Utf8, false),
            Field::new("marks", DataType::UInt64, false),
            Field::new("arrivals", DataType::UInt64, false),
            Field::new("duplicates", DataType::UInt64, false),
            Field::new("dropped", DataType::UInt64, false),
            Field::new("waiting", DataType::UInt64, false),
        ],
        vec![
            u32_col(hosts.iter().map(|h| h.id)),
            str_col(hosts.iter().map(|h| h.name.clone())),
            u64_col(hosts.iter().map(|h| h.marks.received)),
            u64_col(hosts.iter().map(|h| h.marks.arrivals.len() as u64)),
            u64_col(hosts.iter().map(|h| h.marks.arrivals.values().map(|a| u64::from(a.duplicates)).sum())),
            u64_col(hosts.iter().map(|h| h.marks.dropped)),
            u64_col(hosts.iter().map(|h| h.marks.pending() as u64)),
        ],
    )?;
    Ok(vec![rows.table(true, opts.start_date.0)?, marks])
}
