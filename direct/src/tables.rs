//! Result tables of direct hosts, as Arrow IPC streams.

use crate::engine::DirectEngine;
use arrow_schema::{ArrowError, DataType, Field};
use thermocline_bus::Table;
use thermocline_models::metrics::{str_col, table, u32_col, u64_col};

/// `direct_processes` (one row per spec process per host: host, host_name, process, path,
/// status, expected, syscalls, udp_sent_bytes, udp_recv_bytes, tcp_sent_bytes, tcp_recv_bytes,
/// max_rss_bytes; TCP counts payload bytes handed to and taken from the sockets, and the peak
/// RSS is a measurement of the machine, not part of the digest) and, with `--syscall-stats`,
/// `direct_syscalls` (host, host_name, binary, syscall, nr, calls).
pub(crate) fn tables(e: &DirectEngine) -> Result<Vec<Table>, ArrowError> {
    let rows: Vec<_> = e.hosts.iter().flat_map(|h| h.procs.iter().map(move |p| (h, p))).collect();
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
    let mut out = vec![processes];
    if e.opts.syscall_stats {
        let rows: Vec<_> =
            e.hosts.iter().flat_map(|h| h.stats.iter().map(move |((b, nr), c)| (h, b.clone(), *nr, *c))).collect();
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
    }
    Ok(out)
}
