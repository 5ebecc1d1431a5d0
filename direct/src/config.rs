//! What a spec says about direct hosts: the processes to run and the simulated start date.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use thermocline_bus::SimDuration;
use thermocline_models::units::Size;

/// One `[[processes]]` entry: a program run on every host of a direct host group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The `[[hosts]]` group (of `kind = "direct"`) whose every host runs this process.
    pub host: String,
    /// The executable: a path (relative paths are taken from the spec's folder), or a bare name
    /// looked up in `/usr/local/bin:/usr/bin:/bin`.
    pub path: PathBuf,
    /// Arguments after `argv[0]`. Each host of the group gets its own values of the
    /// placeholders `{host}`, `{index}`, `{count}`, `{ip}` and `{datadir}` (see [`expand`]).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (the environment is otherwise fixed, see `docs/direct.md`);
    /// values may use the same placeholders as `args`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// When the process starts, in simulated time.
    #[serde(default)]
    pub start: SimDuration,
    /// How the process must end: an exit code, a signal name (`"SIGTERM"`), or `"running"` for a
    /// process that is still running at the end of the run (it is then terminated).
    #[serde(default)]
    pub expected_exit: ExpectedExit,
    /// Trap `rdtsc` (default): the program reads simulated time from the TSC. `false` lets a
    /// program read the machine's TSC (not repeatable); it no longer makes syscalls cheaper,
    /// since the supervisor takes the mode of the task it answers (see `docs/direct.md`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trap_rdtsc: bool,
    /// Preemption budget: a thread of this process that uses this much CPU time without making
    /// a notified syscall is stopped and yields, as if it had called `sched_yield`, with this
    /// much simulated time charged when nothing else can run. For programs whose threads spin
    /// (a spinlock waiting for a thread that is not scheduled would otherwise hang the run);
    /// where a spinning thread is stopped depends on the machine's speed, so such runs are
    /// repeatable only as far as the program's spinning does not show. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<SimDuration>,
    /// Simulated CPU time charged for each notified syscall of this process (and its
    /// descendants) that the supervisor answers without blocking; a task that has made a
    /// millisecond's worth in a row without blocking waits it off before its next call (see
    /// [`crate::latency`]). Default 1 µs; `"0 s"` turns the rule off, and a program that then
    /// busy-waits on the clock with syscalls never sees time move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall_latency: Option<SimDuration>,
    /// The disk quota of the hosts this process runs on: what the host's processes may write to
    /// files, in all (see [`crate::disk`]); writes beyond it fail with `ENOSPC`, as on a full
    /// disk. A host's quota is the smallest its processes give, 1 GiB if none gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_quota: Option<Size>,
    /// When to send `stop_signal` to the process, in simulated time (Shadow's `shutdown_time`):
    /// servers that must end before the run does, and clients stopped mid-transfer. A process
    /// that has already ended is not signalled; its descendants are not signalled either (as in
    /// Shadow: the signal goes to the process the spec started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<SimDuration>,
    /// The signal sent at `stop` (default `SIGTERM`; Shadow's `shutdown_signal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
    /// CPUs the process (and its descendants) is told the host has: `sched_getaffinity` and
    /// `/sys/devices/system/cpu/{online,possible,present}` (hence `nproc`, glibc's `get_nprocs`,
    /// Rust's `available_parallelism`, Go's `GOMAXPROCS`, Node's worker pools). Programs size their
    /// thread pools from it; threads still run one at a time. 1 to 64, default
    /// [`DEFAULT_CPUS`]; Shadow tells every process 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
}

/// CPUs a process is told its host has unless its spec says otherwise ([`ProcessSpec::cpus`]).
pub const DEFAULT_CPUS: u32 = 2;

/// The most CPUs a process may be told of (one `sched_getaffinity` word).
pub const MAX_CPUS: u32 = 64;

impl ProcessSpec {
    /// `path` on host group `host` with every other setting at its spec default (no
    /// arguments, started at time zero, expected to exit 0, `rdtsc` trapped).
    pub fn new(host: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            host: host.into(),
            path: path.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            start: SimDuration::ZERO,
            expected_exit: ExpectedExit::Success,
            trap_rdtsc: true,
            preempt: None,
            syscall_latency: None,
            disk_quota: None,
            stop: None,
            stop_signal: None,
            cpus: None,
        }
    }

    /// The CPUs the process is told of ([`ProcessSpec::cpus`], or [`DEFAULT_CPUS`]).
    pub fn cpu_count(&self) -> u32 {
        self.cpus.unwrap_or(DEFAULT_CPUS)
    }
}

/// Per-host values of the placeholders in a process's `args` and `env`.
#[derive(Clone, Debug)]
pub struct HostVars<'a> {
    /// `{host}`: the host's name (`node3`).
    pub host: &'a str,
    /// `{index}`: its index within its group, from 0.
    pub index: u32,
    /// `{count}`: the number of hosts in its group.
    pub count: u32,
    /// `{ip}`: its IPv4 address.
    pub ip: std::net::Ipv4Addr,
    /// `{datadir}`: its data directory as its programs see it (kept across a restart, emptied by
    /// a wipe).
    pub datadir: &'a str,
}

/// Replace `{host}`, `{index}`, `{count}`, `{ip}` and `{datadir}` in `text` with `vars`, so one spec line can
/// start a different node on every host of a group (`--index {index}`). Nothing else is touched:
/// arguments are full of other braces (curl's `-w '%{http_code}'`, JSON, Go templates), which
/// pass through unchanged.
pub fn expand(text: &str, vars: &HostVars<'_>) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    text.replace("{host}", vars.host)
        .replace("{index}", &vars.index.to_string())
        .replace("{count}", &vars.count.to_string())
        .replace("{ip}", &vars.ip.to_string())
        .replace("{datadir}", vars.datadir)
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// How a process is expected to end.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ExpectedExit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Still running when the run ends.
    Running,
    /// Default: exit code 0.
    #[default]
    Success,
}

impl ExpectedExit {
    /// Whether `actual` is what was expected.
    pub fn matches(self, actual: ExitStatus) -> bool {
        match (self, actual) {
            (ExpectedExit::Success, ExitStatus::Code(0)) => true,
            (ExpectedExit::Code(a), ExitStatus::Code(b)) => a == b,
            (ExpectedExit::Signal(a), ExitStatus::Signal(b)) => a == b,
            (ExpectedExit::Running, ExitStatus::Running) => true,
            _ => false,
        }
    }
}

/// How a process ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal (not counting the end-of-run termination).
    Signal(i32),
    /// Still running at the end of the run.
    Running,
    /// Never started (the run ended before its start time).
    NotStarted,
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "{}", signal_name(*s).unwrap_or("signal")),
            ExitStatus::Running => f.write_str("running"),
            ExitStatus::NotStarted => f.write_str("not started"),
        }
    }
}

impl fmt::Display for ExpectedExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedExit::Success => f.write_str("exit 0"),
            ExpectedExit::Code(c) => write!(f, "exit {c}"),
            ExpectedExit::Signal(s) => write!(f, "{}", signal_name(*s).unwrap_or("signal")),
            ExpectedExit::Running => f.write_str("running"),
        }
    }
}

/// Linux's standard signals (1-31) by name, as `signal(7)` lists them.
const SIGNALS: [(&str, i32); 31] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// The name of signal `n` (1-31).
pub fn signal_name(n: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(_, v)| *v == n).map(|(k, _)| *k)
}

/// The number of the signal named `name` (`"SIGTERM"`: upper case, with the `SIG` prefix).
pub fn signal_number(name: &str) -> Option<i32> {
    SIGNALS.iter().find(|(k, _)| *k == name).map(|(_, n)| *n)
}

/// A signal a spec sends to a process: written as a name (`"SIGINT"`) or a number (1-31).
/// Signals that stop or continue a process (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`, `SIGTTOU`,
/// `SIGCONT`) are refused: a stopped process would hold the run with no time passing for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// The signal numbered `n`, if a spec may send it (see [`Signal`]).
    pub fn new(n: i32) -> Result<Signal, String> {
        let Some(name) = signal_name(n) else {
            return Err(format!("signal {n} is not one of Linux's standard signals 1-31"));
        };
        if matches!(n, 18..=22) {
            return Err(format!("{name} stops or continues a process, which direct hosts do not model"));
        }
        Ok(Signal(n))
    }

    /// The signal named `name` (`"SIGTERM"`) or numbered by the decimal text `name` (`"15"`).
    pub fn parse(name: &str) -> Result<Signal, String> {
        match name.parse::<i32>() {
            Ok(n) => Signal::new(n),
            Err(_) => Signal::new(signal_number(name).ok_or_else(|| {
                format!("unknown signal {name:?}; expected a name such as \"SIGTERM\" (upper case, with SIG) or 1-31")
            })?),
        }
    }
}

impl Default for Signal {
    /// `SIGTERM`, as Shadow's `shutdown_signal` defaults to.
    fn default() -> Self {
        Signal(libc::SIGTERM)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(signal_name(self.0).unwrap_or("SIGTERM"))
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Signal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signal name such as \"SIGTERM\" or a number 1-31")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Signal, E> {
                Signal::new(i32::try_from(v).unwrap_or(0)).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Signal, E> {
                Signal::new(i32::try_from(v).unwrap_or(0)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Signal, E> {
                let n = signal_number(v).ok_or_else(|| {
                    E::custom(format!("unknown signal {v:?}; expected a name such as \"SIGTERM\" or a number 1-31"))
                })?;
                Signal::new(n).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ExpectedExit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedExit::Success => s.serialize_i64(0),
            ExpectedExit::Code(c) => s.serialize_i64(*c as i64),
            ExpectedExit::Signal(n) => s.serialize_str(signal_name(*n).unwrap_or("SIGTERM")),
            ExpectedExit::Running => s.serialize_str("running"),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectedExit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExpectedExit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit code 0-255, a signal name such as \"SIGTERM\", or \"running\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExpectedExit, E> {
                match v {
                    0 => Ok(ExpectedExit::Success),
                    1..=255 => Ok(ExpectedExit::Code(v as i32)),
                    _ => Err(E::custom(format!("exit code {v} is outside 0-255"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExpectedExit, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExpectedExit, E> {
                if v == "running" {
                    return Ok(ExpectedExit::Running);
                }
                SIGNALS.iter().find(|(k, _)| *k == v).map(|(_, n)| ExpectedExit::Signal(*n)).ok_or_else(|| {
                    E::custom(format!(
                        "unknown expected exit {v:?}; expected an exit code, \"running\" or a signal name \
                         (SIGHUP, SIGINT, SIGKILL, SIGTERM, …: upper case, with SIG)"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A simulated calendar date: nanoseconds since the Unix epoch, written in specs as an RFC 3339
/// UTC timestamp, e.g. `"2000-01-01T00:00:00Z"` (quoted).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StartDate(pub u64);

impl Default for StartDate {
    /// 2000-01-01T00:00:00Z, as Shadow uses.
    fn default() -> Self {
        StartDate(946_684_800 * 1_000_000_000)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl FromStr for StartDate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid date {s:?}; expected an RFC 3339 UTC time like \"2000-01-01T00:00:00Z\"");
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' {
            return Err(bad());
        }
        if b[16] != b':' || *b.last().ok_or_else(bad)? != b'Z' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
            let t = s.get(r).ok_or_else(bad)?;
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        let frac = &s[19..s.len() - 1];
        let mut nanos = 0u64;
        if !frac.is_empty() {
            let digits = frac.strip_prefix('.').ok_or_else(bad)?;
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            nanos = digits.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - digits.len() as u32);
        }
        if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
            return Err(bad());
        }
        let days = days_from_civil(y, mo, d);
        if civil_from_days(days) != (y, mo, d) {
            return Err(bad());
        }
        let secs = days as u64 * 86_400 + h as u64 * 3600 + mi as u64 * 60 + se as u64;
        secs.checked_mul(1_000_000_000).and_then(|n| n.checked_add(nanos)).map(StartDate).ok_or_else(bad)
    }
}

impl fmt::Display for StartDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let t = secs % 86_400;
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)?;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Serialize for StartDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StartDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Run-wide settings of direct hosts.
#[derive(Clone, Debug)]
pub struct DirectOptions {
    /// Output directory: host working directories go to `<out_dir>/hosts/<name>/`.
    pub out_dir: PathBuf,
    /// The simulated calendar date at time zero.
    pub start_date: StartDate,
    /// Count every syscall of every binary (all syscalls are then notified, which is slower).
    pub syscall_stats: bool,
    /// The shim shared object preloaded into managed processes.
    pub shim: PathBuf,
    /// Write every host's packets to `<out_dir>/hosts/<name>/packets.pcap`.
    pub pcap: bool,
    /// The CPU this shard's supervisor and its processes are pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// Print notes about this machine that do not change results (`thermocline run --verbose`):
    /// that CPUID faulting is not available.
    pub verbose: bool,
    /// Receive interrupt coalescing window of every host's network card, ns (0: off; the
    /// spec's `[network] rx_coalesce`, see `nic::hold`).
    pub rx_coalesce_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_by_name_or_number_and_stop_signals_refused() {
        assert_eq!(Signal::parse("SIGINT"), Ok(Signal(2)));
        assert_eq!(Signal::parse("9"), Ok(Signal(9)));
        assert!(Signal::parse("sigterm").unwrap_err().contains("unknown signal"));
        assert!(Signal::parse("SIGSTOP").unwrap_err().contains("stops or continues"));
        assert!(Signal::parse("34").unwrap_err().contains("1-31"));
        #[derive(Deserialize, Serialize)]
        struct T {
            s: Signal,
        }
        let t: T = serde_json::from_str(r#"{"s": "SIGUSR2"}"#).unwrap();
        assert_eq!(t.s, Signal(12));
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"s":"SIGUSR2"}"#);
        assert_eq!(serde_json::from_str::<T>(r#"{"s": 15}"#).unwrap().s, Signal(15));
        assert!(serde_json::from_str::<T>(r#"{"s": "SIGCONT"}"#).is_err());
        assert_eq!(signal_name(31), Some("SIGSYS"));
    }

    #[test]
    fn placeholders_expand_per_host_and_other_braces_pass_through() {
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 4);
        let vars = HostVars { host: "node3", index: 3, count: 8, ip, datadir: "/run/thermocline/node3/data" };
        assert_eq!(
            expand("--index {index} of {count} on {host} at {ip} in {datadir}", &vars),
            "--index 3 of 8 on node3 at 10.0.0.4 in /run/thermocline/node3/data"
        );
        assert_eq!(
            expand("%{http_code} {{.Name}} {\"a\": 1} {nodes}", &vars),
            "%{http_code} {{.Name}} {\"a\": 1} {nodes}"
        );
        assert_eq!(expand("{host}{host}", &vars), "node3node3");
    }

    #[test]
    fn dates_parse_and_print_exactly() {
        assert_eq!("1970-01-01T00:00:00Z".parse::<StartDate>().unwrap().0, 0);
        assert_eq!(StartDate::default().to_string(), "2000-01-01T00:00:00Z");
        let d: StartDate = "2026-01-01T12:34:56.5Z".parse().unwrap();
        assert_eq!(d.0, 1_767_270_896_500_000_000);
        assert_eq!(d.to_string(), "2026-01-01T12:34:56.5Z");
        for bad in ["2026-02-30T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00+01:00", "x", "2026-01-01T24:00:00Z"] {
            assert!(bad.parse::<StartDate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn expected_exit_matches() {
        assert!(ExpectedExit::Success.matches(ExitStatus::Code(0)));
        assert!(!ExpectedExit::Success.matches(ExitStatus::Code(1)));
        assert!(ExpectedExit::Signal(15).matches(ExitStatus::Signal(15)));
        assert!(ExpectedExit::Running.matches(ExitStatus::Running));
        assert!(!ExpectedExit::Running.matches(ExitStatus::NotStarted));
    }
}
