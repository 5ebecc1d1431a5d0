//! A direct run's digest and its programs' outputs depend on nothing outside the simulation:
//! not on the output folder's path, not on `--syscall-stats`, not on the shard count.
//!
//! Two hosts, 5 ms apart. On `a`, a Node.js parent forks two `child_process` workers that print
//! random bytes, their pid, working directory, `HOME`, the modification time of a file they
//! wrote, its inode and device numbers and their heap usage, then talk to `b` over TCP and UDP; beside it, starting at the
//! same instant, a Python program prints random bytes, its pid, working directory, the time and
//! a file's modification time, inode and device, and runs a subprocess that prints its own. On `b`, a Python
//! server answers the workers, and the same Python program starts with it at one instant. The
//! run is made four times — two output folders of different lengths, with and without
//! `--syscall-stats`, on one and two shards (threads and processes) — and must give one digest
//! and, byte for byte, the same outputs.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The Node.js parent and, with `worker i`, its workers.
const NODE_PROGRAM: &str = r#"
const { fork } = require('child_process');
const crypto = require('crypto');
const dgram = require('dgram');
const fs = require('fs');
const net = require('net');

function report(tag) {
  const before = Date.now();
  fs.writeFileSync(tag + '.txt', tag);
  const st = fs.statSync(tag + '.txt');
  const mtime = st.mtimeMs;
  const fresh = mtime >= before && mtime <= Date.now();
  console.log(`${tag} random ${crypto.randomBytes(8).toString('hex')} pid ${process.pid} ppid ${process.ppid} ` +
    `cwd ${process.cwd()} home ${process.env.HOME} ino ${st.ino} dev ${st.dev} mtime ${mtime} fresh ${fresh} heap ${process.memoryUsage().heapUsed}`);
}

if (process.argv[2] === 'worker') {
  const i = process.argv[3];
  report('worker' + i);
  const s = net.connect(7000, 'b', () => s.write(`hello ${i}\n`));
  s.on('data', (d) => {
    console.log(`worker${i} tcp ${d.toString().trim()}`);
    s.end();
    const u = dgram.createSocket('udp4');
    u.on('message', (m) => {
      console.log(`worker${i} udp ${m} heap ${process.memoryUsage().heapUsed}`);
      u.close();
    });
    u.send(`ping ${i}`, 7001, 'b');
  });
} else {
  report('parent');
  let done = 0;
  for (const i of ['0', '1']) {
    const w = fork(__filename, ['worker', i], { stdio: 'inherit' });
    w.on('exit', (code) => {
      console.log(`worker${i} exit ${code}`);
      if (++done === 2) console.log(`parent done heap ${process.memoryUsage().heapUsed}`);
    });
  }
}
"#;

/// Started on both hosts at the same instant as another program.
const PYTHON_PROGRAM: &str = r#"
import os, subprocess, sys, time
before = time.time()
with open('misc.txt', 'w') as f:
    f.write('x')
st = os.stat('misc.txt')
print('misc random', os.urandom(8).hex(), 'pid', os.getpid(), 'cwd', os.getcwd(), 'home', os.environ['HOME'],
      'time', before, 'ino', st.st_ino, 'dev', st.st_dev, 'cwd ino', os.stat('.').st_ino, 'mtime', st.st_mtime, 'fresh', before <= st.st_mtime <= time.time(), flush=True)
sub = 'import os, time; print("sub random", os.urandom(4).hex(), "pid", os.getpid(), "ppid", os.getppid(), "time", time.time())'
print(subprocess.run([sys.executable, '-c', sub], capture_output=True, text=True, check=True).stdout.strip())
"#;

/// Host `b`'s server: answers two TCP connections and two datagrams, then exits.
const SERVER_PROGRAM: &str = r#"
import os, selectors, socket
sel = selectors.DefaultSelector()
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(('0.0.0.0', 7000))
tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(('0.0.0.0', 7001))
sel.register(tcp, selectors.EVENT_READ)
sel.register(udp, selectors.EVENT_READ)
answered = 0
while answered < 4:
    for key, _ in sel.select():
        s = key.fileobj
        if s is tcp:
            conn, _ = tcp.accept()
            sel.register(conn, selectors.EVENT_READ)
        elif s is udp:
            data, peer = udp.recvfrom(100)
            udp.sendto(b'pong ' + data + b' ' + os.urandom(4).hex().encode(), peer)
            print('server udp', data.decode(), flush=True)
            answered += 1
        else:
            data = s.recv(100)
            sel.unregister(s)
            if data:
                s.sendall(b'welcome ' + data.strip() + b' ' + os.urandom(4).hex().encode() + b'\n')
                print('server tcp', data.decode().strip(), flush=True)
                answered += 1
            s.close()
print('server done')
"#;

fn spec(dir: &Path) -> PathBuf {
    let node = need("/usr/bin/node", "nodejs");
    let python = need("/usr/bin/python3", "python3");
    for (name, text) in [("node.js", NODE_PROGRAM), ("misc.py", PYTHON_PROGRAM), ("server.py", SERVER_PROGRAM)] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let script = |name: &str| dir.join(name).display().to_string();
    let process = |host: &str, path: &str, script: String, start: &str| {
        format!("[[processes]]\nhost = \"{host}\"\npath = \"{path}\"\nargs = [\"{script}\"]\nstart = \"{start}\"\n")
    };
    let text = [
        "[run]\nseed = 21\nduration = \"30 s\"\n[network]\ntopology = \"single-switch\"\nlatency = \"5 ms\"\n".to_string(),
        "[[hosts]]\nname = \"a\"\nkind = \"direct\"\ncount = 1\n[[hosts]]\nname = \"b\"\nkind = \"direct\"\ncount = 1\n".into(),
        process("a", &node, script("node.js"), "1 s"),
        process("a", &python, script("misc.py"), "1 s"),
        process("b", &python, script("server.py"), "500 ms"),
        process("b", &python, script("misc.py"), "500 ms"),
    ]
    .concat();
    write_spec(dir, "spec.toml", &text)
}

/// What a run left: its digest and every program's stdout and stderr, by file name.
struct Run {
    label: String,
    digest: String,
    outputs: Vec<(String, String)>,
}

fn run(spec: &Path, out: &Path, stats: bool, shards: u32, backend: &str) -> Run {
    let shards = shards.to_string();
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--shards",
        &shards,
        "--backend",
        backend,
    ];
    if stats {
        args.push("--syscall-stats");
    }
    run_ok(&args);
    let mut outputs = Vec::new();
    for host in ["a", "b"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(out.join("hosts").join(host))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "stdout" || x == "stderr"))
            .collect();
        files.sort();
        for f in files {
            outputs.push((format!("{host}/{}", f.file_name().unwrap().to_string_lossy()), read(f)));
        }
    }
    let stats = if stats { " --syscall-stats" } else { "" };
    let label = format!("--out {} --shards {shards} --backend {backend}{stats}", out.display());
    Run { label, digest: summary(out)["digest"].as_str().unwrap().to_string(), outputs }
}

/// The words after `key` on every line of `text` that has it.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.by_ref().find(|w| *w == key)?;
            words.next()
        })
        .collect()
}

fn output<'a>(run: &'a Run, file: &str) -> &'a str {
    &run.outputs.iter().find(|(f, _)| f == file).unwrap_or_else(|| panic!("{file} in {:?}", run.outputs)).1
}

/// What the programs print is what a simulated host shows: its own folder's fixed path, pids of
/// its own, file times in simulated time, a random stream per process.
fn check_contents(run: &Run) {
    let node = output(run, "a/node.0.stdout");
    let misc_a = output(run, "a/python3.1.stdout");
    let server = output(run, "b/python3.0.stdout");
    let misc_b = output(run, "b/python3.1.stdout");
    for who in ["parent", "worker0", "worker1"] {
        assert!(node.lines().any(|l| l.starts_with(&format!("{who} random"))), "{who} reported:\n{node}");
    }
    for i in ["0", "1"] {
        assert!(node.contains(&format!("worker{i} tcp welcome hello {i} ")), "TCP answer to worker {i}:\n{node}");
        assert!(node.contains(&format!("worker{i} udp pong ping {i} ")), "UDP answer to worker {i}:\n{node}");
        assert!(node.contains(&format!("worker{i} exit 0")), "{node}");
    }
    assert!(server.ends_with("server done\n"), "{server}");
    let all = [node, misc_a, misc_b].concat();
    let fresh = values(&all, "fresh");
    assert_eq!(fresh.len(), 5, "every program checked a file it wrote:\n{all}");
    assert!(
        fresh.iter().all(|f| *f == "true" || *f == "True"),
        "mtime between the times read around the write:\n{all}"
    );
    let mut random = values(&all, "random");
    assert_eq!(random.len(), 7, "{all}");
    random.sort_unstable();
    random.dedup();
    assert_eq!(random.len(), 7, "every process draws its own bytes:\n{all}");
    let start = 946_684_800u64; // the default start date, 2000-01-01
    for t in values(&all, "mtime") {
        let s: f64 = t.parse().unwrap();
        let s = if s > 1e11 { s / 1000.0 } else { s }; // Node gives ms
        assert!((start as f64..start as f64 + 30.0).contains(&s), "a file time in simulated time: {t}\n{all}");
    }
    assert_eq!(values(node, "cwd"), ["/run/thermocline/a"; 3], "{node}");
    assert_eq!(values(misc_b, "cwd"), ["/run/thermocline/b"], "{misc_b}");
    assert_eq!(values(misc_b, "home"), ["/run/thermocline/b"], "{misc_b}");
    let mut pids: Vec<u32> = values(&all, "pid").iter().map(|p| p.parse().unwrap()).collect();
    pids.sort_unstable();
    assert!(pids.iter().all(|&p| p < 1000), "pids of the host's own namespace: {pids:?}\n{all}");
}

/// Whether hosts get namespaces (root, not turned off): only then do programs see fixed paths
/// and pids of their own, so that outputs can be the same whatever `--out` is.
fn namespaces_available() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let off = std::env::var_os("THERMOCLINE_DIRECT_NAMESPACES").is_some_and(|v| v == "0");
    if !root || off {
        eprintln!("skipped: fixed paths and pids of its own for a direct host need namespaces (root)");
    }
    root && !off
}

#[test]
fn neither_the_output_path_nor_syscall_stats_nor_shards_change_the_digest_or_any_output() {
    if !namespaces_available() {
        return;
    }
    let dir = scratch("direct-digest");
    let spec = spec(&dir);
    let short = dir.join("o");
    let long = dir.join("a-much-longer-output-folder-name/nested/deeper");
    let runs = [
        run(&spec, &short, false, 1, "threads"),
        run(&spec, &long, false, 2, "threads"),
        run(&spec, &dir.join("q"), true, 2, "processes"),
        run(&spec, &long.with_file_name("deepest-of-all-the-folders"), true, 1, "threads"),
    ];
    check_contents(&runs[0]);
    for r in &runs[1..] {
        let names = |r: &Run| r.outputs.iter().map(|o| o.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(r), names(&runs[0]), "{}", r.label);
        for ((file, text), (_, first)) in r.outputs.iter().zip(&runs[0].outputs) {
            assert_eq!(text, first, "{file} with {} differs from {}", r.label, runs[0].label);
        }
        assert_eq!(r.digest, runs[0].digest, "{} against {}", r.label, runs[0].label);
    }
}

/// A spec of one direct host `t` running `python3 -c program arg` at 1 s for each `arg`.
fn python_spec(dir: &Path, name: &str, program: &str, args: &[&str]) -> PathBuf {
    let python = need("/usr/bin/python3", "python3");
    let mut text = String::from(
        "[run]\nseed = 3\nduration = \"10 s\"\n[network]\ntopology = \"single-switch\"\n\
         [[hosts]]\nname = \"t\"\nkind = \"direct\"\ncount = 1\n",
    );
    for arg in args {
        text += &format!(
            "[[processes]]\nhost = \"t\"\npath = {python:?}\nargs = [\"-c\", {program:?}, {arg:?}]\nstart = \"1 s\"\n"
        );
    }
    write_spec(dir, name, &text)
}

/// The stdout of each process of host `t`, and the digest, of a run of `spec` into `out`.
fn outputs(spec: &Path, out: &Path, extra: &[&str], processes: usize) -> (Vec<String>, String) {
    let mut args = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    run_ok(&args);
    let texts = (0..processes).map(|i| read(out.join(format!("hosts/t/python3.{i}.stdout")))).collect();
    (texts, summary(out)["digest"].as_str().unwrap().to_string())
}

/// Calls the supervisor does not emulate (`getppid`) are told to it only with `--syscall-stats`;
/// they must then run as without it: not charged syscall latency (5,000 of them would cost 5 ms
/// of simulated time), and no scheduling point between the processes that start together.
#[test]
fn calls_only_counted_for_syscall_stats_take_no_simulated_time() {
    let dir = scratch("direct-digest-stats");
    let program = "import os, sys, time\nt0 = time.monotonic()\nfor _ in range(5000):\n    os.getppid()\n\
                   print(sys.argv[1], 'elapsed %.6f' % (time.monotonic() - t0), os.urandom(8).hex())";
    let spec = python_spec(&dir, "spec.toml", program, &["a", "b", "c"]);
    let (plain, plain_digest) = outputs(&spec, &dir.join("plain"), &[], 3);
    let (stats, stats_digest) = outputs(&spec, &dir.join("stats"), &["--syscall-stats"], 3);
    for text in &plain {
        assert!(text.contains(" elapsed 0.000000 "), "no notified call in the loop: no time passes\n{text}");
    }
    assert_eq!(stats, plain, "--syscall-stats changes what the programs see");
    assert_eq!(stats_digest, plain_digest);
}

/// Each process draws from a stream of its own: what one process draws does not move what
/// another one, started at the same instant on the same host, gets.
#[test]
fn a_process_draws_the_same_bytes_however_much_its_neighbours_draw() {
    let dir = scratch("direct-digest-streams");
    let program = "import os, sys\nfor _ in range(int(sys.argv[1])):\n    os.urandom(16)\n\
                   with open('/dev/urandom', 'rb') as f:\n    print(os.urandom(8).hex(), f.read(8).hex())";
    let few = python_spec(&dir, "few.toml", program, &["1", "0"]);
    let many = python_spec(&dir, "many.toml", program, &["300", "0"]);
    let (few, _) = outputs(&few, &dir.join("few"), &[], 2);
    let (many, _) = outputs(&many, &dir.join("many"), &[], 2);
    assert_ne!(few[0], many[0], "the first process drew more before printing");
    assert_eq!(few[1], many[1], "the second process's bytes do not depend on the first's draws");
    assert_ne!(few[0], few[1], "two processes, two streams");
}
