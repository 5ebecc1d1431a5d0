//! End-to-end: real multi-threaded network programs over simulated TCP, unmodified — Debian's
//! curl against `python3 -m http.server` (a thread per request), a Go TCP echo with goroutines,
//! a Node.js HTTP server and client, and eight rust-libp2p gossipsub nodes (tokio multi-thread
//! runtime, TCP, noise, yamux; listening on 0.0.0.0, so their interface watcher asks netlink). Every test checks that repeated runs give the same outputs and
//! digest; the multi-host ones also on two shards.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two direct hosts `server` and `client`, 10 ms apart, 100 Mbit/s each, and `processes`.
fn two_hosts(seconds: u32, processes: &str) -> String {
    lossy_hosts(seconds, 0.0, processes)
}

/// [`two_hosts`] with a packet loss probability on the path.
fn lossy_hosts(seconds: u32, loss: f64, processes: &str) -> String {
    format!(
        r#"
[run]
seed = 3
duration = "{seconds} s"

[network]
topology = "single-switch"
latency = "10 ms"
loss = {loss}

[[hosts]]
name = "server"
kind = "direct"
count = 1
bandwidth = {{ up = "100 Mbit", down = "100 Mbit" }}

[[hosts]]
name = "client"
kind = "direct"
count = 1
bandwidth = {{ up = "100 Mbit", down = "100 Mbit" }}
{processes}"#
    )
}

/// Run `spec` on 1 shard twice and on 2 shards; return the first run's output folder after
/// checking that the digest and each listed host file are the same in all three.
fn repeatable(dir: &Path, spec: &Path, files: &[&str]) -> PathBuf {
    let mut seen: Option<(String, Vec<Vec<u8>>)> = None;
    for (i, shards) in ["1", "1", "2"].into_iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let digest = summary(&out)["digest"].as_str().unwrap().to_string();
        let contents: Vec<Vec<u8>> = files
            .iter()
            .map(|f| std::fs::read(out.join("hosts").join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        match &seen {
            None => seen = Some((digest, contents)),
            Some((d, c)) => {
                assert_eq!(&digest, d, "run {i} ({shards} shards): digest differs");
                for (f, (a, b)) in files.iter().zip(c.iter().zip(&contents)) {
                    assert!(a == b, "run {i} ({shards} shards): {f} differs");
                }
            }
        }
    }
    dir.join("out0")
}

/// A 300 kB body, different in every byte position mod 256.
fn body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// `python3 -m http.server` on `server` serving `www`, and curl on `client` fetching `file.bin`
/// by host name at 2 s.
fn http_processes(www: &Path) -> String {
    format!(
        r#"
[[processes]]
host = "server"
path = "/usr/bin/python3"
args = ["-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "{}"]
expected_exit = "running"

[[processes]]
host = "client"
path = "/usr/bin/curl"
args = ["-sS", "-o", "got.bin", "-w", "%{{http_code}} %{{size_download}} %{{time_total}}\n", "http://server:8000/file.bin"]
start = "2 s"
"#,
        www.display()
    )
}

#[test]
fn a_download_over_a_lossy_path_arrives_intact_with_retransmissions() {
    need("/usr/bin/curl", "curl");
    need("/usr/bin/python3", "python3");
    let dir = scratch("clients-lossy");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("file.bin"), body()).unwrap();
    let clean = write_spec(&dir, "clean.toml", &lossy_hosts(30, 0.0, &http_processes(&www)));
    let lossy = write_spec(&dir, "lossy.toml", &lossy_hosts(30, 0.03, &http_processes(&www)));
    let took = |spec: &Path, name: &str| -> (f64, PathBuf) {
        let out = repeatable(&dir.join(name), spec, &["client/curl.0.stdout", "client/got.bin"]);
        assert_eq!(std::fs::read(out.join("hosts/client/got.bin")).unwrap(), body(), "{name}: the body arrives intact");
        let line = read(out.join("hosts/client/curl.0.stdout"));
        (line.split_whitespace().nth(2).unwrap().parse().unwrap(), out)
    };
    let (clean_s, _) = took(&clean, "clean");
    let (lossy_s, _) = took(&lossy, "lossy");
    // 3 % of the segments are lost each way; each loss costs at least a round trip to repair.
    assert!(lossy_s > clean_s + 0.02, "clean {clean_s} s, lossy {lossy_s} s");
}

#[test]
fn curl_fetches_a_file_from_pythons_threaded_http_server_by_host_name() {
    need("/usr/bin/curl", "curl");
    need("/usr/bin/python3", "python3");
    let dir = scratch("clients-curl");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let body = body();
    std::fs::write(www.join("file.bin"), &body).unwrap();
    let processes = http_processes(&www);
    let spec = write_spec(&dir, "curl.toml", &two_hosts(10, &processes));
    let out = repeatable(&dir, &spec, &["client/curl.0.stdout", "client/got.bin", "server/python3.0.stderr"]);
    assert_eq!(std::fs::read(out.join("hosts/client/got.bin")).unwrap(), body, "the body arrives intact");
    let line = read(out.join("hosts/client/curl.0.stdout"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["200", "300000"], "{line}");
    // 300 kB at 100 Mbit/s is 24 ms on the wire, plus handshake and request round trips of 20 ms.
    let seconds: f64 = words[2].parse().unwrap();
    assert!((0.06..0.5).contains(&seconds), "transfer took {seconds} s of simulated time");
    assert!(read(out.join("hosts/server/python3.0.stderr")).contains("\"GET /file.bin HTTP/1.1\" 200"));
}

const GO_ECHO: &str = r#"
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	if os.Args[1] == "server" {
		ln, err := net.Listen("tcp", ":7000")
		if err != nil {
			panic(err)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				panic(err)
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte("echo " + line))
				}
			}(c)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", os.Args[2])
			if err != nil {
				results[i] = "dial: " + err.Error()
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for j := 0; j < 3; j++ {
				fmt.Fprintf(c, "conn %d msg %d\n", i, j)
				line, err := r.ReadString('\n')
				if err != nil {
					results[i] += "read: " + err.Error()
					return
				}
				results[i] += fmt.Sprintf("[%s at %d ms]", strings.TrimSpace(line), time.Since(start).Milliseconds())
			}
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		fmt.Println(r)
	}
}
"#;

#[test]
fn a_go_tcp_echo_with_goroutines_runs_over_simulated_tcp() {
    if Command::new("go").arg("version").output().is_err() {
        panic!("this test needs a Go toolchain (apt-get install golang-go)");
    }
    let dir = scratch("clients-go");
    std::fs::write(dir.join("echo.go"), GO_ECHO).unwrap();
    let exe = dir.join("echo");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(dir.join("echo.go"))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build");
    assert!(out.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let processes = format!(
        r#"
[[processes]]
host = "server"
path = "{exe}"
args = ["server"]
expected_exit = "running"

[[processes]]
host = "client"
path = "{exe}"
args = ["client", "server:7000"]
start = "1 s"
"#,
        exe = exe.display()
    );
    let spec = write_spec(&dir, "go.toml", &two_hosts(5, &processes));
    let out = repeatable(&dir, &spec, &["client/echo.0.stdout"]);
    let text = read(out.join("hosts/client/echo.0.stdout"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (i, line) in lines.iter().enumerate() {
        for j in 0..3 {
            assert!(line.contains(&format!("[echo conn {i} msg {j} at ")), "{text}");
        }
        // Connecting takes a round trip (20 ms) and each echo another.
        let times: Vec<u64> =
            line.split(" at ").skip(1).map(|t| t.split(' ').next().unwrap().parse().unwrap()).collect();
        for (j, t) in times.iter().enumerate() {
            assert!(*t >= 20 * (j as u64 + 2), "message {j} of connection {i} at {t} ms: {text}");
        }
    }
}

const NODE_SERVER: &str = r#"
const http = require('http');
let n = 0;
http.createServer((req, res) => {
  n += 1;
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello ${req.url} number ${n} at ${Date.now()}\n`);
}).listen(8080, () => console.log('listening'));
"#;

const NODE_CLIENT: &str = r#"
const http = require('http');
const start = Date.now();
function get(path) {
  return new Promise((resolve, reject) => {
    http.get({ host: 'server', port: 8080, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()} after ${Date.now() - start} ms`));
    }).on('error', reject);
  });
}
(async () => {
  for (const p of ['/a', '/b', '/c']) console.log(await get(p));
  const all = await Promise.all(['/x', '/y'].map(get));
  console.log(all.length, 'in parallel');
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn a_node_js_http_server_answers_a_node_js_client() {
    need("/usr/bin/node", "nodejs");
    let dir = scratch("clients-node");
    std::fs::write(dir.join("server.js"), NODE_SERVER).unwrap();
    std::fs::write(dir.join("client.js"), NODE_CLIENT).unwrap();
    let processes = format!(
        r#"
[[processes]]
host = "server"
path = "/usr/bin/node"
args = ["{server}"]
expected_exit = "running"

[[processes]]
host = "client"
path = "/usr/bin/node"
args = ["{client}"]
start = "2 s"
"#,
        server = dir.join("server.js").display(),
        client = dir.join("client.js").display()
    );
    let spec = write_spec(&dir, "node.toml", &two_hosts(10, &processes));
    let out = repeatable(&dir, &spec, &["client/node.0.stdout", "server/node.0.stdout"]);
    let text = read(out.join("hosts/client/node.0.stdout"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (i, p) in ["/a", "/b", "/c"].iter().enumerate() {
        assert!(lines[i].starts_with(&format!("200 hello {p} number {} at ", i + 1)), "{text}");
    }
    assert_eq!(lines[3], "2 in parallel");
    assert_eq!(read(out.join("hosts/server/node.0.stdout")), "listening\n");
}

#[test]
fn eight_rust_libp2p_gossipsub_nodes_form_a_mesh_and_all_get_every_block() {
    let node = gossip_node();
    let dir = scratch("clients-libp2p");
    let book: Vec<String> = (0..8).map(|i| format!("node{i}:9000")).collect();
    let spec = write_spec(
        &dir,
        "libp2p.toml",
        &format!(
            r#"
[run]
seed = 8
duration = "40 s"

[network]
topology = "single-switch"
latency = "20 ms"

[[hosts]]
name = "node"
kind = "direct"
count = 8
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[[processes]]
host = "node"
path = "{node}"
args = ["--index", "{{index}}", "--nodes", "{{count}}", "--peer", "{book}", "--dial", "3",
        "--genesis", "6", "--slot", "4", "--slots", "8", "--size", "102400"]
"#,
            node = node.display(),
            book = book.join(",")
        ),
    );
    let files: Vec<String> = (0..8).map(|i| format!("node{i}/gossip-node.0.stdout")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = repeatable(&dir, &spec, &files);
    for i in 0..8 {
        let text = read(out.join(format!("hosts/node{i}/gossip-node.0.stdout")));
        assert!(text.contains(&format!("publish slot={i} peers=")), "node{i} published its block: {text}");
        assert!(text.ends_with(&format!("done node={i} received=7 expected=7\n")), "node{i}: {text}");
        // A 100 KiB block takes 16 ms to leave a 50 Mbit/s host, and the path is 20 ms long.
        for delay in recv_delays(&text) {
            assert!(delay >= 36_000, "node{i}: {delay} µs");
        }
    }
}

/// The `delay_us` of every block a gossip-node's log `text` says it received.
fn recv_delays(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with("recv "))
        .map(|l| l.rsplit("delay_us=").next().unwrap().parse().unwrap())
        .collect()
}

/// The median `delay_us` of the blocks nodes 1 and 2 of a line of three received, with
/// gossip-node's `--validation-delay` at `ms`.
fn line_of_three_delays(dir: &Path, ms: u32) -> [u64; 2] {
    let node = gossip_node();
    let ms = ms.to_string();
    let args = [
        "--index",
        "{index}",
        "--nodes",
        "3",
        "--peer",
        "node0:9000,node1:9000,node2:9000",
        "--graph-text",
        "1;2;",
        "--proposers",
        "0,0,0,0",
        "--genesis",
        "4",
        "--slot",
        "2",
        "--slots",
        "4",
        "--size",
        "1000",
        "--validation-delay",
        &ms,
    ];
    let spec = SpecBuilder::switch(8, "14 s", "10 ms")
        .direct_group("node", 3, "1 Gbit", "")
        .process("node", node.to_str().unwrap(), &args, "0 s", "")
        .write(dir, &format!("line-{ms}.toml"));
    let out = dir.join(format!("out-{ms}"));
    run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    [1, 2].map(|i| {
        let text = read(out.join(format!("hosts/node{i}/gossip-node.0.stdout")));
        assert!(text.ends_with(&format!("done node={i} received=4 expected=4\n")), "node{i}: {text}");
        let mut delays = recv_delays(&text);
        delays.sort_unstable();
        delays[delays.len() / 2]
    })
}

#[test]
fn gossip_nodes_validation_delay_holds_each_message_before_it_is_forwarded() {
    let dir = scratch("clients-validation");
    let [first0, second0] = line_of_three_delays(&dir, 0);
    let [first, second] = line_of_three_delays(&dir, 50);
    // Node 1 hears node 0 at once and holds the block 50 ms before passing it to node 2.
    assert!(first.abs_diff(first0) < 1_000, "node1: {first0} µs, then {first} µs");
    let held = second.checked_sub(second0);
    assert!(held.is_some_and(|d| (49_000..52_000).contains(&d)), "node2: {second0} µs, then {second} µs");
}

#[test]
fn bench_direct_reports_its_figures_as_json() {
    gossip_node();
    let out = run_ok(&["bench", "direct", "--nodes", "3", "--slots", "2", "--size", "20000", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench direct --json prints JSON");
    assert_eq!(v["nodes"], 3);
    assert_eq!((v["blocks_received"].as_u64(), v["blocks_expected"].as_u64()), (Some(4), Some(4)), "{v}");
    assert!(v["rss_per_node_bytes_mean"].as_f64().unwrap() > 1e6, "{v}");
    assert!(v["wall_s_per_simulated_minute"].as_f64().unwrap() > 0.0);
    assert!(v["events"].as_u64().unwrap() > 0 && v["digest"].as_str().unwrap().len() == 64, "{v}");
}

/// A stand-in for a Shadow installation, for the plumbing of `bench direct --shadow`: it answers
/// `--version`, reads the configuration it is given, and writes what Shadow would for each host
/// in it (a node stdout with one block) and Shadow's syscall-count log line; or fails.
fn fake_shadow(dir: &Path, fail: bool) -> PathBuf {
    let path = dir.join(if fail { "shadow-failing" } else { "shadow" });
    let body = if fail {
        "echo 'ERROR: process node1.gossip-node exited with status 3, expected 0'; exit 1".to_string()
    } else {
        r#"data="$2"; config="$3"
grep -q 'parallelism: 1' "$config" || { echo "no parallelism in $config"; exit 2; }
for h in $(sed -n 's/^  \(node[0-9]*\):$/\1/p' "$config"); do
  mkdir -p "$data/hosts/$h"
  printf 'recv slot=0 publisher=0 via=1 delay_us=100000\ndone node=x received=1 expected=1\n' > "$data/hosts/$h/gossip-node.1000.stdout"
done
echo '00:00:01.0 [INFO] [main] Global syscall counts: {epoll_wait:7, futex:3}'"#
            .to_string()
    };
    let script =
        format!("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Shadow v0.0.0 (stand-in)'; exit 0; fi\n{body}\n");
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

#[test]
fn bench_direct_runs_the_shadow_config_in_both_and_reports_the_ratio() {
    gossip_node();
    let dir = scratch("bench-direct-shadow");
    let shadow = fake_shadow(&dir, false);
    let out = run_ok(&[
        "bench",
        "direct",
        "--nodes",
        "3",
        "--slots",
        "2",
        "--size",
        "20000",
        "--rounds",
        "2",
        "--json",
        "--shadow",
        shadow.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench direct --json prints JSON");
    assert_eq!(v["workload"], "shadow-config", "{v}");
    assert_eq!((v["blocks_received"].as_u64(), v["blocks_expected"].as_u64()), (Some(4), Some(4)), "{v}");
    assert_eq!(v["wall_s_per_simulated_minute_spread"]["rounds"].as_array().unwrap().len(), 2, "{v}");
    let s = &v["shadow"];
    assert_eq!(s["version"], "Shadow v0.0.0 (stand-in)", "{v}");
    assert_eq!((s["blocks_received"].as_u64(), s["blocks_expected"].as_u64()), (Some(3), Some(3)), "{v}");
    assert_eq!(s["delay_p50_ms"].as_f64(), Some(100.0), "{v}");
    assert_eq!(s["syscalls"][0], serde_json::json!({"syscall": "epoll_wait", "calls": 7}), "{v}");
    let ratio = v["thermocline_over_shadow"]["median"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{v}");

    let failing = fake_shadow(&dir, true);
    let out = run_with_deadline(
        &["bench", "direct", "--nodes", "2", "--slots", "1", "--json", "--shadow", failing.to_str().unwrap()],
        std::time::Duration::from_secs(300),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("exited with status 3") && err.contains("shadow.log"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
