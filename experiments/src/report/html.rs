//! The page around the plots: inline CSS, the summary table, one `<section>` per plot family
//! and one `<figure data-plot="…">` per plot. No script, no external resource.

use super::{Body, Figure, Section};
use crate::output::{ArrivalFigures, Summary, TopicFigures};
use thermocline_bus::SimDuration;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:60rem;\
padding:0 1rem;color:#222;background:#fff}h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;\
border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1rem;margin:0 0 .3rem}\
figure{margin:1.2rem 0 1.8rem}figcaption{font-size:.9rem;color:#444;margin-bottom:.4rem}svg{max-width:100%;height:auto;\
display:block}table{border-collapse:collapse;font-size:.88rem;margin:.4rem 0}td,th{border:1px solid #ddd;\
padding:.2rem .5rem;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
code{font-size:.85em;background:#f4f4f4;padding:0 .2em}p.absent{color:#777;font-style:italic;margin:.2rem 0}\
.sub{color:#666;margin-top:0}table.kv th{background:none;font-weight:normal;color:#555}";

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A note escaped, with `backticked` names set as code.
fn note(text: &str) -> String {
    let mut out = String::new();
    for (k, part) in escape(text).split('`').enumerate() {
        if k % 2 == 1 {
            out += &format!("<code>{part}</code>");
        } else {
            out += part;
        }
    }
    out
}

/// An HTML table of `rows` under `header`; cells that are numbers are right-aligned.
pub fn table<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in header {
        out += &format!("<th>{}</th>", escape(h));
    }
    out += "</tr>\n";
    for row in rows {
        out += "<tr>";
        for cell in row {
            let cell = cell.as_ref();
            let numeric = cell.chars().next().is_some_and(|c| c.is_ascii_digit())
                && cell.chars().all(|c| c.is_ascii_digit() || " .,%".contains(c));
            let class = if numeric { " class=\"n\"" } else { "" };
            out += &format!("<td{class}>{}</td>", escape(cell));
        }
        out += "</tr>\n";
    }
    out + "</table>"
}

/// A two-column table of (name, value) rows, names as row headers.
fn key_values(rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table class=\"kv\">\n");
    for row in rows {
        out += &format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(&row[0]), escape(&row[1]));
    }
    out + "</table>"
}

/// The run's figures from `summary.json`, as (name, value) rows.
fn summary_rows(s: &Summary) -> Vec<Vec<String>> {
    let runahead = s.runahead_ns.map_or("unbounded (1 shard)".into(), |ns| SimDuration::from_nanos(ns).to_string());
    let cut: u64 = s.cut_events.iter().flatten().sum();
    let mut rows = vec![
        ["experiment", &s.name].map(String::from).to_vec(),
        vec!["digest".into(), s.digest.clone()],
        vec!["seed".into(), s.seed.to_string()],
        vec!["simulated".into(), SimDuration::from_nanos(s.sim_time_ns).to_string()],
        vec!["wall".into(), format!("{:.3} s", s.wall_s)],
        vec!["events".into(), format!("{} ({:.2} M/s)", s.events, s.events_per_s / 1e6)],
        vec!["shards".into(), format!("{} on {}", s.shards, s.backend)],
        vec!["windows".into(), format!("{} (runahead {runahead})", s.windows)],
        vec!["cross-shard events".into(), cut.to_string()],
        vec!["barrier idle".into(), format!("{:.1} %", s.barrier_idle_fraction * 100.0)],
        vec!["version".into(), s.version.clone()],
    ];
    if let Some(g) = &s.gossip {
        rows.push(vec!["identities".into(), g.identities.to_string()]);
        rows.push(vec!["bytes sent per node".into(), format!("{:.1} KiB", g.bytes_sent_per_node / 1024.0)]);
    }
    rows
}

fn family_row(name: &str, f: &TopicFigures) -> Vec<String> {
    vec![
        name.to_string(),
        f.messages.to_string(),
        format!("{:.4} %", f.reliability * 100.0),
        format!("{:.1}", f.p50_ms),
        format!("{:.1}", f.p95_ms),
        format!("{:.1}", f.p99_ms),
        format!("{:.2}", f.duplicates_per_delivery),
    ]
}

fn arrival_row(name: &str, f: &ArrivalFigures) -> Vec<String> {
    vec![
        name.to_string(),
        f.nodes.to_string(),
        f.received.to_string(),
        format!("{:.4} %", f.reliability * 100.0),
        format!("{:.1}", f.p50_ms),
        format!("{:.1}", f.p95_ms),
    ]
}

/// The summary tables: the run, then its gossip figures per family and hot/cold.
fn summary(s: &Summary) -> String {
    let mut out = key_values(&summary_rows(s));
    if let Some(g) = &s.gossip {
        let rows: Vec<Vec<String>> = g.by_family.iter().map(|(n, f)| family_row(n, f)).collect();
        let header = ["topic family", "messages", "delivered", "p50 ms", "p95 ms", "p99 ms", "duplicates per delivery"];
        out += &format!("\n<h3>Delivery per topic family</h3>\n{}", table(&header, &rows));
        let mut rows = vec![arrival_row("cold (surrogates)", &g.cold)];
        rows.extend(g.hot.as_ref().map(|h| arrival_row("hot (real clients)", h)));
        let header = ["beacon_block at", "nodes", "received", "delivered", "p50 ms", "p95 ms"];
        out += &format!("\n<h3>Blocks at surrogates and real clients</h3>\n{}", table(&header, &rows));
    }
    out
}

fn figure(f: &Figure) -> String {
    let id = escape(&f.id);
    let caption = format!("<figcaption><h3>{}</h3>{}</figcaption>", escape(&f.title), note(&f.note));
    match &f.body {
        Body::Svg(svg) => format!("<figure data-plot=\"{id}\">{caption}\n{svg}</figure>\n"),
        Body::Html(fragment) => format!("<figure data-table=\"{id}\">{caption}\n{fragment}</figure>\n"),
        Body::Absent(why) => format!(
            "<figure data-plot=\"{id}\" data-absent=\"\"><h3>{}</h3><p class=\"absent\">Not in this run: {}.</p></figure>\n",
            escape(&f.title),
            note(why)
        ),
    }
}

/// The whole page.
pub fn page(s: &Summary, sections: &[Section]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{name}: thermocline report</title><style>{STYLE}</style></head>\n<body>\n\
         <h1>{name}</h1><p class=\"sub\">thermocline {version} · {backend}, {shards} shard(s) · digest <code>{digest}</code></p>\n\
         <section id=\"summary\"><h2>Summary</h2>\n{summary}\n</section>\n",
        name = escape(&s.name),
        version = escape(&s.version),
        backend = escape(&s.backend),
        shards = s.shards,
        digest = escape(&s.digest),
        summary = summary(s),
    );
    for section in sections {
        out += &format!("<section><h2>{}</h2>\n", escape(&section.title));
        for f in &section.figures {
            out += &figure(f);
        }
        out += "</section>\n";
    }
    out + "</body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_names_are_code() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
        assert_eq!(note("from `gossip_nodes` <x>"), "from <code>gossip_nodes</code> &lt;x&gt;");
    }

    #[test]
    fn numbers_are_right_aligned_in_tables() {
        let t = table(&["a", "b"], &[vec!["x", "1,234"]]);
        assert!(t.contains("<td>x</td><td class=\"n\">1,234</td>"), "{t}");
    }

    #[test]
    fn an_absent_figure_says_why_and_draws_nothing() {
        let f = figure(&Figure::absent("cut-matrix", "Cut matrix", "one shard"));
        assert!(f.contains("data-absent") && f.contains("Not in this run: one shard.") && !f.contains("<svg"));
    }
}
