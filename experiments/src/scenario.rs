//! Scenarios: what happens during a run, as a timeline of `[[scenario]]` entries.
//!
//! - To the network: a partition between two sets of hosts, extra delay, extra loss, each from a
//!   simulated time until another. Known before the run starts, these compile once, in the
//!   network plan, into the rule table ([`thermocline_net::Rules`]) that every shard's engines
//!   consult at the sender: direct hosts and surrogates alike, the same verdicts on any shard
//!   count. Rules only drop or delay, never speed up, so the window length the plan computed
//!   from the network model stays safe.
//! - To direct hosts: signal, stop, start, restart, wipe, run an admin command, each with an
//!   optional wait (the processes exit, a log line appears) and timeout, and chained with
//!   `after`. These compile into [`HostOp`]s that the direct engine of each host's shard carries
//!   out (see `thermocline_direct::ops`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use thermocline_bus::SimDuration;
use thermocline_direct::ops::{HostOp, OpKind, Wait};
use thermocline_direct::{ProcessSpec, Signal};
use thermocline_models::directory::{HostDirectory, HostKind};
use thermocline_models::network::NetworkModel;
use thermocline_models::units::Bandwidth;
use thermocline_net::{Effect, Limit, PathLimit, Rule, Rules};

/// What a `[[scenario]]` entry does: to the traffic it selects, or to the direct hosts it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetAction {
    /// Everything between the two sides is lost (a partition; healed at `until`).
    Partition,
    /// Everything arrives `extra` later.
    Delay,
    /// Each transmission arrives up to `extra` later, drawn uniformly from the sender's stream;
    /// a direct host's packets on a path keep their order.
    Jitter,
    /// Each transmission is lost with probability `rate` (drawn from the sender's stream).
    Loss,
    /// Everything to and from the `hosts` is lost: they are offline (a regional outage, a burst
    /// of identities leaving), back at `until`.
    Offline,
    /// A static route: the traffic goes by way of the host `via` (a private backbone, a path
    /// around a partition), each leg with its own path and rules.
    Route,
    /// The `hosts`' links send at no more than `up` and receive at no more than `down` (a
    /// throttled link), back to their own rates at `until`.
    Bandwidth,
    /// Send `signal` to the hosts' processes.
    Signal,
    /// Stop them: `signal` (SIGTERM), then SIGKILL after `grace` (scaling to 0).
    Stop,
    /// Start those not running, with the same command (scaling back to 1).
    Start,
    /// Stop, then start again.
    Restart,
    /// Stop, empty the data directory (`{datadir}`) but `keep`, then start.
    Wipe,
    /// Run an admin command (`path`, `args`, `env`) on each host.
    Exec,
    /// Freeze the hosts' processes without stopping them (a paused container).
    Pause,
    /// Let paused processes run again.
    Resume,
}

impl NetAction {
    /// Whether it acts on direct hosts rather than on traffic.
    fn on_hosts(self) -> bool {
        !matches!(
            self,
            NetAction::Partition
                | NetAction::Delay
                | NetAction::Jitter
                | NetAction::Loss
                | NetAction::Offline
                | NetAction::Route
                | NetAction::Bandwidth
        )
    }
}

/// What a host step waits for before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// The processes it acts on have all exited.
    Exit,
    /// One of them writes a line containing `line`.
    Log,
}

/// How long a stop waits for the processes to exit before it kills them, when the entry does
/// not say: Kubernetes' default termination grace period.
pub const DEFAULT_GRACE: SimDuration = SimDuration::from_secs(30);

/// One `[[scenario]]` entry: an action on the traffic between two sets of hosts, in force for
/// departures from `at` until `until` (the end of the run when absent).
///
/// The sides are host selectors: a group name (`"eu"`) or a range of a group's indices
/// (`"tail[0..500]"`, hosts `tail0` to `tail499`). `between = [A, B]` acts both ways; `from = A`
/// with `to = B` acts on A's transmissions to B only.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// When it starts (simulated, from the run's start).
    pub at: SimDuration,
    /// When it ends (absent: it lasts to the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<SimDuration>,
    /// What it does.
    pub action: NetAction,
    /// Both ways between these two sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<[String; 2]>,
    /// One way: from this side…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// …to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Extra one-way delay, for `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<SimDuration>,
    /// Loss probability, for `loss` (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `route`: the relay host the traffic goes by way of (a group of one, or `group[i..i+1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `bandwidth`: the upload cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<Bandwidth>,
    /// `bandwidth`: the download cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Bandwidth>,
    /// Host steps: the direct hosts it acts on (a group, or `group[a..b]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// Host steps: the `[[processes]]` it acts on, by path as written or file name (all of the
    /// host's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// A name other steps' `after` refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Begin `at` after the step of this name has ended on the same host (instead of `at` from
    /// the start of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `signal`: the signal; `stop`, `restart`, `wipe`: the first signal (SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// `stop`, `restart`, `wipe`: how long the processes may take to exit before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<SimDuration>,
    /// `wipe`: paths inside the data directory that survive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<PathBuf>>,
    /// `exec`: the command (as a `[[processes]]` path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `exec`: its arguments (with the `[[processes]]` placeholders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// `exec`: extra environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// What the step waits for once it has acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitFor>,
    /// `wait = "log"`: the text the line contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// The longest the step waits, from its beginning, before it ends as timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SimDuration>,
}

/// The timeline, compiled: the rule table for the traffic, the steps for direct hosts.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// What every engine applies to transmissions at the sender.
    pub rules: Rules,
    /// What the direct engines do to their hosts.
    pub ops: Vec<HostOp>,
}

/// Compile the timeline, resolving selectors against `dir` and host steps against
/// `processes`. Errors name the entry's key (`scenario[1].between`), so the CLI can point at it
/// in the spec.
pub fn compile(entries: &[ScenarioSpec], net: &NetworkModel, processes: &[ProcessSpec]) -> Result<Timeline, String> {
    let mut ops = Vec::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.action.on_hosts()) {
        ops.push(host_op(i, e, entries, &ops, &net.directory, processes)?);
    }
    let rules = net_rules(entries, net)?;
    Ok(Timeline { rules, ops })
}

/// The rule table of the traffic entries.
fn net_rules(entries: &[ScenarioSpec], net: &NetworkModel) -> Result<Rules, String> {
    let dir = &net.directory;
    let (mut rules, mut limits, mut paths) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| !e.action.on_hosts()) {
        let key = |k: &str| format!("scenario[{i}].{k}");
        let host_keys = [
            ("hosts", e.hosts.is_some() && !matches!(e.action, NetAction::Offline | NetAction::Bandwidth)),
            ("process", e.process.is_some()),
            ("name", e.name.is_some()),
            ("after", e.after.is_some()),
            ("signal", e.signal.is_some()),
            ("grace", e.grace.is_some()),
            ("keep", e.keep.is_some()),
            ("path", e.path.is_some()),
            ("args", e.args.is_some()),
            ("env", e.env.is_some()),
            ("wait", e.wait.is_some()),
            ("line", e.line.is_some()),
            ("timeout", e.timeout.is_some()),
        ];
        if let Some((k, _)) = host_keys.iter().find(|(_, set)| *set) {
            return Err(format!("{} does not apply to action = {:?}, which acts on traffic", key(k), e.action));
        }
        let start = e.at.as_nanos();
        let end = e.until.map_or(u64::MAX, |u| u.as_nanos());
        if end <= start {
            return Err(format!("{} must be later than at ({})", key("until"), e.at));
        }
        if let (NetAction::Bandwidth, Some(hosts)) = (e.action, &e.hosts) {
            limits.extend(limit(net, e, hosts, start..end, &key)?);
            continue;
        }
        if let Some((k, _)) = [("up", e.up.is_some()), ("down", e.down.is_some())]
            .into_iter()
            .find(|(_, set)| *set && e.action != NetAction::Bandwidth)
        {
            return Err(format!("{} does not apply to action = {:?}", key(k), e.action));
        }
        let acts = if e.action == NetAction::Bandwidth {
            Acts::PathLimit(path_rate(e, &key)?)
        } else {
            Acts::Effect(effect(e, dir, &key)?)
        };
        let sides = match (&e.hosts, &e.between, &e.from, &e.to) {
            (Some(hosts), None, None, None) if e.action == NetAction::Offline => {
                let all = 0..dir.len();
                let mut sides = Vec::new();
                for r in select_sides(net, hosts, &key("hosts"))? {
                    sides.push((r.clone(), all.clone()));
                    sides.push((all.clone(), r));
                }
                sides
            }
            (_, _, _, _) if e.action == NetAction::Offline => {
                return Err(format!(
                    "{} names the hosts that go offline with `hosts` (a group, a range or GROUP@LOCATION), \
                     not `between`, `from` or `to`",
                    key("action")
                ));
            }
            (None, Some([a, b]), None, None) => {
                let (a, b) = (select_sides(net, a, &key("between"))?, select_sides(net, b, &key("between"))?);
                let mut sides = Vec::new();
                for x in &a {
                    for y in &b {
                        sides.push((x.clone(), y.clone()));
                        sides.push((y.clone(), x.clone()));
                    }
                }
                sides
            }
            (None, None, Some(from), Some(to)) => {
                let (from, to) = (select_sides(net, from, &key("from"))?, select_sides(net, to, &key("to"))?);
                from.iter().flat_map(|f| to.iter().map(move |t| (f.clone(), t.clone()))).collect()
            }
            _ => {
                let or_hosts = if e.action == NetAction::Bandwidth {
                    " (or, to limit hosts' links, the hosts with `hosts`)"
                } else {
                    ""
                };
                return Err(format!(
                    "{} names the traffic it acts on with `between = [A, B]` (both ways) or `from = A` and \
                     `to = B` (one way), not both or neither{or_hosts}",
                    key("action")
                ));
            }
        };
        for (from, to) in sides {
            match acts {
                Acts::Effect(effect) => rules.push(Rule { from, to, during: start..end, effect }),
                Acts::PathLimit(bps) => paths.push(PathLimit { from, to, during: start..end, bps }),
            }
        }
    }
    Ok(Rules::new(rules).with_limits(limits).with_path_limits(paths))
}

/// What a traffic entry does to the traffic it selects.
#[derive(Copy, Clone)]
enum Acts {
    /// Something to each transmission.
    Effect(Effect),
    /// Each sender's transmissions to the other side at no more than this rate, bit/s.
    PathLimit(u64),
}

/// The rate of `bandwidth` entry `e` on traffic (`between`, or `from` and `to`): each sender's
/// transmissions to the other side at no more than `up`.
fn path_rate(e: &ScenarioSpec, key: &dyn Fn(&str) -> String) -> Result<u64, String> {
    let stray = [
        ("down", e.down.is_some()),
        ("extra", e.extra.is_some()),
        ("rate", e.rate.is_some()),
        ("via", e.via.is_some()),
    ];
    if let Some((k, _)) = stray.into_iter().find(|(_, set)| *set) {
        return Err(format!(
            "{} does not apply to action = \"bandwidth\" on traffic, whose `up` limits each sender's transmissions to the other side",
            key(k)
        ));
    }
    match e.up {
        None => Err(format!(
            "{} needs `up`: the rate of each sender's transmissions to the other side (\"10 Mbit\")",
            key("action")
        )),
        Some(b) if b.0 == 0 => {
            Err(format!("{} must be above 0 (a path that carries nothing is a partition)", key("up")))
        }
        Some(b) => Ok(b.0),
    }
}

/// The bandwidth limits of `bandwidth` entry `e` on `hosts`, in force `during`: one per range of
/// the hosts it names.
fn limit(
    net: &NetworkModel,
    e: &ScenarioSpec,
    hosts: &str,
    during: Range<u64>,
    key: &dyn Fn(&str) -> String,
) -> Result<Vec<Limit>, String> {
    let stray = [
        ("between", e.between.is_some()),
        ("from", e.from.is_some()),
        ("to", e.to.is_some()),
        ("extra", e.extra.is_some()),
        ("rate", e.rate.is_some()),
        ("via", e.via.is_some()),
    ];
    if let Some((k, _)) = stray.into_iter().find(|(_, set)| *set) {
        return Err(format!(
            "{} does not apply to action = \"bandwidth\" with `hosts`, which limits their links (a limit on traffic names it with `between`, or `from` and `to`, instead)",
            key(k)
        ));
    }
    if e.up.is_none() && e.down.is_none() {
        return Err(format!("{} needs `up`, `down` or both (\"10 Mbit\")", key("action")));
    }
    if let Some((k, _)) = [("up", e.up), ("down", e.down)].into_iter().find(|(_, b)| b.is_some_and(|b| b.0 == 0)) {
        return Err(format!("{} must be above 0 (a link that sends nothing is a partition)", key(k)));
    }
    Ok(select_sides(net, hosts, &key("hosts"))?
        .into_iter()
        .map(|r| Limit { hosts: r, during: during.clone(), up_bps: e.up.map(|b| b.0), down_bps: e.down.map(|b| b.0) })
        .collect())
}

/// The host step of entry `i` (`e`); `done` are the steps of the entries before it.
fn host_op(
    i: usize,
    e: &ScenarioSpec,
    entries: &[ScenarioSpec],
    done: &[HostOp],
    dir: &HostDirectory,
    processes: &[ProcessSpec],
) -> Result<HostOp, String> {
    let key = |k: &str| format!("scenario[{i}].{k}");
    let net_keys = [
        ("until", e.until.is_some()),
        ("between", e.between.is_some()),
        ("from", e.from.is_some()),
        ("to", e.to.is_some()),
        ("extra", e.extra.is_some()),
        ("rate", e.rate.is_some()),
        ("via", e.via.is_some()),
        ("up", e.up.is_some()),
        ("down", e.down.is_some()),
    ];
    if let Some((k, _)) = net_keys.iter().find(|(_, set)| *set) {
        return Err(format!("{} does not apply to action = {:?}, which acts on hosts", key(k), e.action));
    }
    let selector = e.hosts.as_deref().ok_or_else(|| format!("{} names the direct hosts it acts on", key("hosts")))?;
    let hosts = select(dir, selector, &key("hosts"))?;
    let group = &dir.groups[dir.block_of(hosts.start).group as usize];
    if group.spec.kind != HostKind::Direct {
        return Err(format!("{}: group {:?} is not kind = \"direct\"", key("hosts"), group.spec.name));
    }
    let own: Vec<&ProcessSpec> = processes.iter().filter(|p| p.host == group.spec.name).collect();
    let probe = HostOp {
        entry: i,
        label: e.name.clone().unwrap_or_else(|| format!("scenario[{i}]")),
        hosts,
        at: e.at,
        after: None,
        process: e.process.clone(),
        kind: OpKind::Start,
        wait: Wait::Nothing,
        timeout: e.timeout,
    };
    if e.process.is_some() && !own.iter().any(|p| probe.selects(p)) {
        let names: Vec<String> = own.iter().map(|p| format!("{:?}", p.path)).collect();
        return Err(format!(
            "{}: {:?} is none of group {:?}'s [[processes]] ({})",
            key("process"),
            e.process.as_deref().unwrap_or_default(),
            group.spec.name,
            names.join(", ")
        ));
    }
    if let Some(name) = &e.name
        && entries[..i].iter().any(|o| o.name.as_ref() == Some(name))
    {
        return Err(format!("{}: another step is already named {name:?}", key("name")));
    }
    let after = match &e.after {
        Some(name) if e.name.as_ref() == Some(name) => {
            return Err(format!("{}: a step cannot follow itself ({name:?})", key("after")));
        }
        None => None,
        Some(name) => Some(after_step(name, i, entries, done, &probe.hosts, &key("after"))?),
    };
    let kind = op_kind(e, &key)?;
    let wait = match (e.wait, &e.line) {
        (None, None) => Wait::Nothing,
        (Some(WaitFor::Exit), None) => Wait::Exit,
        (Some(WaitFor::Log), Some(text)) if !text.is_empty() => Wait::Log(text.clone()),
        (Some(WaitFor::Log), _) => {
            return Err(format!("{} gives the (non-empty) text wait = \"log\" waits for", key("line")));
        }
        (_, Some(_)) => return Err(format!("{} goes with wait = \"log\"", key("line"))),
    };
    if matches!(kind, OpKind::Stop { .. }) && matches!(wait, Wait::Log(_)) {
        return Err(format!("{}: a stopped process writes no more lines; a stop waits for \"exit\"", key("wait")));
    }
    if e.timeout.is_some() && wait == Wait::Nothing && !matches!(kind, OpKind::Exec { .. }) {
        return Err(format!("{} bounds a wait: give wait = \"exit\" or \"log\"", key("timeout")));
    }
    Ok(HostOp { after, kind, wait, ..probe })
}

/// The step named `name` that entry `i`'s `after` refers to: an earlier entry's, on the same
/// hosts.
fn after_step(
    name: &str,
    i: usize,
    entries: &[ScenarioSpec],
    done: &[HostOp],
    hosts: &Range<u32>,
    key: &str,
) -> Result<usize, String> {
    let Some(k) = done.iter().position(|o| entries[o.entry].name.as_deref() == Some(name)) else {
        let later = entries[i..].iter().any(|e| e.name.as_deref() == Some(name));
        return Err(match later {
            true => format!("{key}: step {name:?} must come before this entry"),
            false => format!("{key}: no earlier host step is named {name:?}"),
        });
    };
    if done[k].hosts != *hosts {
        return Err(format!("{key}: step {name:?} acts on other hosts; `after` chains steps on the same hosts"));
    }
    Ok(k)
}

/// The host action of entry `e`, checking that it has the keys its action takes.
fn op_kind(e: &ScenarioSpec, key: &dyn Fn(&str) -> String) -> Result<OpKind, String> {
    let stops = matches!(e.action, NetAction::Stop | NetAction::Restart | NetAction::Wipe);
    let stray = [
        ("signal", e.signal.is_some() && !(stops || e.action == NetAction::Signal)),
        ("grace", e.grace.is_some() && !stops),
        ("keep", e.keep.is_some() && e.action != NetAction::Wipe),
        ("path", e.path.is_some() && e.action != NetAction::Exec),
        ("args", e.args.is_some() && e.action != NetAction::Exec),
        ("env", e.env.is_some() && e.action != NetAction::Exec),
        ("wait", e.wait.is_some() && e.action == NetAction::Pause),
    ];
    if let Some((k, _)) = stray.iter().find(|(_, s)| *s) {
        return Err(format!("{} does not apply to action = {:?}", key(k), e.action));
    }
    let signal = e.signal.unwrap_or_default();
    let grace = e.grace.unwrap_or(DEFAULT_GRACE);
    Ok(match e.action {
        NetAction::Signal => OpKind::Signal {
            signal: e.signal.ok_or_else(|| format!("{} is needed by action = \"signal\"", key("signal")))?,
        },
        NetAction::Stop => OpKind::Stop { signal, grace },
        NetAction::Restart => OpKind::Restart { signal, grace },
        NetAction::Wipe => {
            let keep = e.keep.clone().unwrap_or_default();
            let outside = |k: &&PathBuf| {
                k.as_os_str().is_empty() || k.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
            };
            if let Some(bad) = keep.iter().find(outside) {
                return Err(format!("{}: {bad:?} is not a path inside the data directory", key("keep")));
            }
            OpKind::Wipe { signal, grace, keep }
        }
        NetAction::Exec => {
            let path = e.path.clone().ok_or_else(|| format!("{} is needed by action = \"exec\"", key("path")))?;
            if thermocline_direct::engine::resolve_exe(&path).is_none() {
                return Err(format!("{}: executable {path:?} not found", key("path")));
            }
            let mut command = ProcessSpec::new(String::new(), path);
            command.args = e.args.clone().unwrap_or_default();
            command.env = e.env.clone().unwrap_or_default();
            OpKind::Exec { command }
        }
        NetAction::Start => OpKind::Start,
        NetAction::Pause => OpKind::Pause,
        NetAction::Resume => OpKind::Resume,
        NetAction::Partition
        | NetAction::Delay
        | NetAction::Jitter
        | NetAction::Loss
        | NetAction::Offline
        | NetAction::Route
        | NetAction::Bandwidth => {
            return Err(format!("{} acts on traffic, not on hosts", key("action")));
        }
    })
}

/// The rule effect of entry `e`, checking that it has the one value its action takes.
fn effect(e: &ScenarioSpec, dir: &HostDirectory, key: &dyn Fn(&str) -> String) -> Result<Effect, String> {
    let (extra, rate, via) = (e.extra.map(|_| "extra"), e.rate.map(|_| "rate"), e.via.as_ref().map(|_| "via"));
    let stray = match e.action {
        NetAction::Partition | NetAction::Offline => extra.or(rate).or(via),
        NetAction::Delay | NetAction::Jitter => rate.or(via),
        NetAction::Route => extra.or(rate),
        _ => extra.or(via),
    };
    if let Some(name) = stray {
        return Err(format!("{} does not apply to action = {:?}", key(name), e.action));
    }
    Ok(match e.action {
        NetAction::Partition | NetAction::Offline => Effect::Drop,
        NetAction::Delay => {
            let extra = e.extra.ok_or_else(|| format!("{} is needed by action = \"delay\"", key("extra")))?;
            Effect::Delay(extra.as_nanos())
        }
        NetAction::Jitter => {
            let extra = e.extra.ok_or_else(|| format!("{} is needed by action = \"jitter\"", key("extra")))?;
            if extra.as_nanos() == 0 {
                return Err(format!("{} must be above 0 for action = \"jitter\"", key("extra")));
            }
            Effect::Jitter(extra.as_nanos())
        }
        NetAction::Route => {
            let via = e.via.as_deref().ok_or_else(|| format!("{} is needed by action = \"route\"", key("via")))?;
            let relay = select(dir, via, &key("via"))?;
            if relay.len() != 1 {
                return Err(format!(
                    "{}: {via:?} names {} hosts; a route goes by way of one (a group of one, or GROUP[I..I+1])",
                    key("via"),
                    relay.len()
                ));
            }
            Effect::Via(relay.start)
        }
        _ => {
            let rate = e.rate.ok_or_else(|| format!("{} is needed by action = \"loss\"", key("rate")))?;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(format!("{} must be above 0 and at most 1, not {rate}", key("rate")));
            }
            Effect::Loss(rate)
        }
    })
}

/// The host id ranges a traffic selector names: what [`select`] takes, or `GROUP@LOCATION` (or
/// `GROUP[a..b]@LOCATION`) for the hosts of a group (or of a range of it) placed at a location: a
/// country, region or node of the topology.
fn select_sides(net: &NetworkModel, selector: &str, key: &str) -> Result<Vec<Range<u32>>, String> {
    let Some((name, location)) = selector.split_once('@') else {
        return Ok(vec![select(&net.directory, selector, key)?]);
    };
    let dir = &net.directory;
    let within = select(dir, name, key)?;
    let group = dir.block_of(within.start).group;
    let node = net
        .topology
        .node(location)
        .ok_or_else(|| format!("{key}: {selector:?} names no location {location:?} of the topology"))?;
    let mut ranges: Vec<Range<u32>> = Vec::new();
    for b in dir.blocks.iter().filter(|b| b.group == group && b.node == node) {
        // The block's hosts within the selected range (`tail[0..500]@DE`).
        let (first, end) = (b.first.max(within.start), (b.first + b.count).min(within.end));
        if first >= end {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if last.end == first => last.end = end,
            _ => ranges.push(first..end),
        }
    }
    if ranges.is_empty() {
        return Err(format!("{key}: {selector:?}: group {name:?} has no hosts at {location}"));
    }
    Ok(ranges)
}

/// The host ids a selector names: a group, or `group[a..b]` for its indices `a` to `b - 1`.
pub(crate) fn select(dir: &HostDirectory, selector: &str, key: &str) -> Result<Range<u32>, String> {
    let (name, indices) = match selector.split_once('[') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(']').ok_or_else(|| format!("{key}: {selector:?} lacks its closing ]"))?;
            let parsed =
                inner.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            let (a, b): (u32, u32) = parsed.ok_or_else(|| {
                format!("{key}: {selector:?} should be GROUP or GROUP[FIRST..END] with indices, e.g. \"{name}[0..10]\"")
            })?;
            (name, Some(a..b))
        }
        None => (selector, None),
    };
    let group = dir.groups.iter().find(|g| g.spec.name == name).ok_or_else(|| {
        let names: Vec<&str> = dir.groups.iter().map(|g| g.spec.name.as_str()).collect();
        format!("{key}: no hosts group named {name:?} (the groups are {})", names.join(", "))
    })?;
    let count = group.spec.count;
    let Some(r) = indices else { return Ok(group.first..group.first + count) };
    if r.start >= r.end || r.end > count {
        return Err(format!("{key}: {selector:?} is not a non-empty range of the group's {count} indices"));
    }
    Ok(group.first + r.start..group.first + r.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_models::network::{NetworkModel, NetworkSpec, TopologyKind};

    fn directory() -> NetworkModel {
        crate::test_support::switch_network("[[hosts]]\nname = \"a\"\ncount = 10\n[[hosts]]\nname = \"b\"\ncount = 5\n")
    }

    fn entries(toml_text: &str) -> Vec<ScenarioSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            scenario: Vec<ScenarioSpec>,
        }
        toml::from_str::<Doc>(toml_text).unwrap().scenario
    }

    /// Why `text`'s entries are refused on [`directory`].
    fn refusal(text: &str) -> String {
        compile(&entries(text), &directory(), &[]).unwrap_err()
    }

    #[test]
    fn a_partition_between_two_groups_drops_both_ways_within_its_window_only() {
        let dir = directory();
        let rules = compile(
            &entries(
                "[[scenario]]\nat = \"10 s\"\nuntil = \"20 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\n",
            ),
            &dir,
            &[],
        )
        .unwrap()
        .rules;
        let s = 1_000_000_000;
        assert!(rules.verdict(0, 10, 10 * s).drop && rules.verdict(14, 9, 15 * s).drop, "both ways");
        assert!(!rules.verdict(0, 10, 10 * s - 1).drop && !rules.verdict(0, 10, 20 * s).drop, "[at, until)");
        assert!(!rules.verdict(0, 9, 15 * s).drop && !rules.verdict(10, 14, 15 * s).drop, "within a side");
    }

    #[test]
    fn one_way_delay_and_loss_on_index_ranges() {
        let dir = directory();
        let text = "[[scenario]]\nat = \"0 s\"\naction = \"delay\"\nfrom = \"a[0..2]\"\nto = \"b\"\nextra = \"100 ms\"\n\
                    [[scenario]]\nat = \"0 s\"\naction = \"loss\"\nfrom = \"b[4..5]\"\nto = \"a\"\nrate = 1.0\n";
        let rules = compile(&entries(text), &dir, &[]).unwrap().rules;
        assert_eq!(rules.verdict(1, 12, u64::MAX - 1).delay_ns, 100_000_000, "to the end of the run");
        assert_eq!(rules.verdict(2, 12, 0).delay_ns, 0, "a[2] is outside a[0..2]");
        assert_eq!(rules.verdict(12, 1, 0).delay_ns, 0, "one way");
        assert!(rules.verdict(14, 0, 0).loss > 0 && rules.verdict(13, 0, 0).loss == 0);
        let jitter = "[[scenario]]\nat = \"1 s\"\naction = \"jitter\"\nbetween = [\"a\", \"b\"]\nextra = \"20 ms\"\n";
        let rules = compile(&entries(jitter), &dir, &[]).unwrap().rules;
        assert_eq!(
            (rules.verdict(1, 12, 1_000_000_000).jitter_ns, rules.verdict(12, 1, 2_000_000_000).jitter_ns),
            (20_000_000, 20_000_000)
        );
        assert_eq!(rules.verdict(1, 12, 999_999_999).jitter_ns, 0, "from `at` on");
    }

    #[test]
    fn a_route_goes_by_way_of_one_host_on_the_traffic_it_selects() {
        let net = directory();
        let e = entries(
            "[[scenario]]\nat = \"1 s\"\naction = \"route\"\nfrom = \"a[0..2]\"\nto = \"b\"\nvia = \"a[9..10]\"\n",
        );
        let rules = compile(&e, &net, &[]).unwrap().rules;
        assert_eq!(rules.verdict(1, 12, 1_000_000_000).via, Some(9));
        assert_eq!(rules.verdict(12, 1, 1_000_000_000).via, None, "one way");
        assert_eq!(rules.verdict(1, 12, 999_999_999).via, None, "not before at");
        let err = refusal;
        let base = "[[scenario]]\nat = \"1 s\"\naction = \"route\"\nfrom = \"a\"\nto = \"b\"\n";
        assert!(err(base).contains("scenario[0].via is needed"), "{}", err(base));
        assert!(err(&format!("{base}via = \"b\"\n")).contains("names 5 hosts"));
        assert!(err(&format!("{base}via = \"c\"\n")).contains("no hosts group named \"c\""));
        assert!(
            err(&format!("{base}via = \"b[1..2]\"\nextra = \"1 s\"\n")).contains("scenario[0].extra does not apply")
        );
        let delay = "[[scenario]]\nat = \"1 s\"\naction = \"delay\"\nextra = \"1 s\"\nfrom = \"a\"\nto = \"b\"\nvia = \"b[1..2]\"\n";
        assert!(err(delay).contains("scenario[0].via does not apply"), "{}", err(delay));
    }

    #[test]
    fn a_bandwidth_entry_on_traffic_limits_each_senders_path() {
        let net = directory();
        let e = entries(
            "[[scenario]]\nat = \"1 s\"\naction = \"bandwidth\"\nbetween = [\"a[0..2]\", \"b\"]\nup = \"3 Mbit\"\n",
        );
        let rules = compile(&e, &net, &[]).unwrap().rules;
        assert_eq!(rules.path_limit(1, 12, 1_000_000_000).map(|l| l.1), Some(3_000_000));
        assert_eq!(rules.path_limit(12, 1, 1_000_000_000).map(|l| l.1), Some(3_000_000), "both ways");
        assert_eq!(rules.path_limit(2, 12, 1_000_000_000), None, "a2 is not named");
        assert_eq!(rules.up_bps(1, 1_000_000_000, 100), 100, "the hosts' links are not limited");
        let err = refusal;
        let base = "[[scenario]]\nat = \"1 s\"\naction = \"bandwidth\"\nfrom = \"a\"\nto = \"b\"\n";
        assert!(err(base).contains("scenario[0].action needs `up`"), "{}", err(base));
        assert!(
            err(&format!("{base}up = \"1 Mbit\"\ndown = \"1 Mbit\"\n")).contains("scenario[0].down does not apply")
        );
        let both = "[[scenario]]\nat = \"1 s\"\naction = \"bandwidth\"\nhosts = \"a\"\nto = \"b\"\nup = \"1 Mbit\"\n";
        assert!(err(both).contains("scenario[0].to does not apply"), "{}", err(both));
    }

    #[test]
    fn a_bandwidth_entry_limits_its_hosts_links_in_its_window() {
        let net = directory();
        let e = entries(
            "[[scenario]]\nat = \"1 s\"\nuntil = \"2 s\"\naction = \"bandwidth\"\nhosts = \"b[1..3]\"\nup = \"1 Mbit\"\n",
        );
        let rules = compile(&e, &net, &[]).unwrap().rules;
        assert!(rules.is_empty(), "no rule on transmissions");
        assert_eq!(rules.up_bps(11, 1_500_000_000, 100_000_000), 1_000_000);
        assert_eq!(rules.down_bps(11, 1_500_000_000, 100_000_000), 100_000_000, "no download cap given");
        assert_eq!(rules.up_bps(10, 1_500_000_000, 100_000_000), 100_000_000, "b0 is not named");
        assert_eq!(rules.up_bps(11, 2_000_000_000, 100_000_000), 100_000_000, "ended");
        let err = refusal;
        let base = "[[scenario]]\nat = \"1 s\"\naction = \"bandwidth\"\n";
        assert!(err(&format!("{base}up = \"1 Mbit\"\n")).contains("the hosts with `hosts`"));
        assert!(err(&format!("{base}hosts = \"a\"\n")).contains("needs `up`, `down`"));
        assert!(err(&format!("{base}hosts = \"a\"\nup = \"0 bit\"\n")).contains("scenario[0].up must be above 0"));
        assert!(
            err(&format!("{base}hosts = \"a\"\nup = \"1 Mbit\"\nto = \"b\"\n"))
                .contains("scenario[0].to does not apply")
        );
        let delay = "[[scenario]]\nat = \"1 s\"\naction = \"delay\"\nextra = \"1 s\"\nfrom = \"a\"\nto = \"b\"\nup = \"1 Mbit\"\n";
        assert!(err(delay).contains("scenario[0].up does not apply"), "{}", err(delay));
    }

    #[test]
    fn bad_entries_are_errors_naming_their_key() {
        let cases = [
            ("at = \"5 s\"\nuntil = \"5 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]", "scenario[0].until"),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a\", \"c\"]", "no hosts group named \"c\""),
            ("at = \"0 s\"\naction = \"partition\"\nfrom = \"a\"", "scenario[0].action names the traffic"),
            ("at = \"0 s\"\naction = \"delay\"\nbetween = [\"a\", \"b\"]", "scenario[0].extra is needed"),
            ("at = \"0 s\"\naction = \"jitter\"\nbetween = [\"a\", \"b\"]", "scenario[0].extra is needed"),
            ("at = \"0 s\"\naction = \"jitter\"\nbetween = [\"a\", \"b\"]\nextra = \"0 s\"", "must be above 0"),
            (
                "at = \"0 s\"\naction = \"jitter\"\nbetween = [\"a\", \"b\"]\nextra = \"1 ms\"\nrate = 0.5",
                "scenario[0].rate does not apply",
            ),
            ("at = \"0 s\"\naction = \"loss\"\nbetween = [\"a\", \"b\"]\nrate = 1.5", "scenario[0].rate must be"),
            (
                "at = \"0 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\nrate = 0.5",
                "scenario[0].rate does not apply",
            ),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a[3..11]\", \"b\"]", "of the group's 10 indices"),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a[x]\", \"b\"]", "GROUP[FIRST..END]"),
        ];
        for (body, expected) in cases {
            let err = refusal(&format!("[[scenario]]\n{body}\n"));
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn host_steps_resolve_and_chain_on_their_hosts() {
        let text = "[[hosts]]\nname = \"a\"\ncount = 3\n[[hosts]]\nname = \"d\"\nkind = \"direct\"\ncount = 4\n";
        #[derive(serde::Deserialize)]
        struct Hosts {
            hosts: Vec<thermocline_models::directory::HostGroupSpec>,
        }
        let hosts: Hosts = toml::from_str(text).unwrap();
        let spec = NetworkSpec { topology: TopologyKind::SingleSwitch, ..NetworkSpec::default() };
        let dir = NetworkModel::build(&spec, None, &hosts.hosts).unwrap();
        let procs = [ProcessSpec::new("d", "/usr/bin/node"), ProcessSpec::new("d", "sh")];
        let first = dir.directory.groups.iter().find(|g| g.spec.name == "d").unwrap().first;
        let ok = "[[scenario]]\nname = \"s\"\nat = \"1 s\"\nhosts = \"d[1..3]\"\naction = \"stop\"\nprocess = \"node\"\n\
                  wait = \"exit\"\ntimeout = \"5 s\"\n\
                  [[scenario]]\nafter = \"s\"\nat = \"2 s\"\nhosts = \"d[1..3]\"\naction = \"start\"\nwait = \"log\"\nline = \"up\"\n";
        let t = compile(&entries(ok), &dir, &procs).unwrap();
        assert!(t.rules.is_empty());
        assert_eq!((t.ops[0].hosts.clone(), t.ops[0].process.as_deref()), (first + 1..first + 3, Some("node")));
        assert_eq!(
            (t.ops[1].after, &t.ops[1].wait, t.ops[1].label.as_str()),
            (Some(0), &Wait::Log("up".into()), "scenario[1]")
        );
        let step = |body: &str| format!("[[scenario]]\nat = \"1 s\"\nhosts = \"d\"\n{body}\n");
        let named = step("name = \"x\"\naction = \"start\"");
        let cases = [
            (
                step("action = \"start\"\nprocess = \"nginx\""),
                "scenario[0].process: \"nginx\" is none of group \"d\"'s",
            ),
            (
                step("action = \"stop\"").replace("\"d\"", "\"a\""),
                "scenario[0].hosts: group \"a\" is not kind = \"direct\"",
            ),
            (format!("{named}{named}"), "scenario[1].name: another step is already named \"x\""),
            (step("name = \"x\"\nafter = \"x\"\naction = \"start\""), "a step cannot follow itself"),
            (format!("{}{named}", step("after = \"x\"\naction = \"start\"")), "must come before this entry"),
            (step("after = \"y\"\naction = \"start\""), "no earlier host step is named \"y\""),
            (step("action = \"stop\"\nwait = \"log\"\nline = \"bye\""), "a stop waits for \"exit\""),
            (step("action = \"start\"\ntimeout = \"5 s\""), "scenario[0].timeout bounds a wait"),
            (step("action = \"signal\""), "scenario[0].signal is needed"),
            (step("action = \"stop\"\nkeep = [\"x\"]"), "scenario[0].keep does not apply"),
            (step("action = \"wipe\"\nkeep = [\"../x\"]"), "is not a path inside the data directory"),
            (step("action = \"start\"\npath = \"sh\""), "scenario[0].path does not apply"),
            (step("action = \"exec\"\npath = \"no-such-program-here\""), "scenario[0].path: executable"),
            (step("action = \"start\"\nextra = \"1 s\""), "scenario[0].extra does not apply to action = Start"),
            (
                "[[scenario]]\nat = \"0 s\"\naction = \"loss\"\nbetween = [\"a\", \"d\"]\nrate = 0.5\nhosts = \"d\"\n"
                    .into(),
                "scenario[0].hosts does not apply",
            ),
            (step("action = \"start\"\nwait = \"log\""), "scenario[0].line gives the (non-empty) text"),
        ];
        for (body, expected) in cases {
            let err = compile(&entries(&body), &dir, &procs).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn hosts_at_a_location_go_offline_both_ways_with_everyone() {
        let text = "[[hosts]]\nname = \"tail\"\ncount = 40\nlocations = { eu = 0.5, us = 0.5 }\n\
                    [[hosts]]\nname = \"b\"\ncount = 2\nlocation = \"us\"\n";
        #[derive(serde::Deserialize)]
        struct Hosts {
            hosts: Vec<thermocline_models::directory::HostGroupSpec>,
        }
        let hosts: Hosts = toml::from_str(text).unwrap();
        let spec: NetworkSpec = toml::from_str(
            "topology = \"regions\"\n[regions]\nnames = [\"eu\", \"us\"]\nlatency = [[\"5 ms\", \"40 ms\"], [\"40 ms\", \"5 ms\"]]\n",
        )
        .unwrap();
        let net = NetworkModel::build(&spec, None, &hosts.hosts).unwrap();
        let dir = &net.directory;
        let eu = net.topology.node("eu").unwrap();
        let at = |h: u32| dir.block_of(h).node == eu;
        let rules = compile(
            &entries("[[scenario]]\nat = \"10 s\"\nuntil = \"20 s\"\naction = \"offline\"\nhosts = \"tail@eu\"\n"),
            &net,
            &[],
        )
        .unwrap()
        .rules;
        let s = 1_000_000_000;
        let tail = dir.groups.iter().find(|g| g.spec.name == "tail").unwrap();
        let (eu_host, us_host) = (
            (tail.first..tail.first + 40).find(|&h| at(h)).unwrap(),
            (tail.first..tail.first + 40).find(|&h| !at(h)).unwrap(),
        );
        let other = dir.groups.iter().find(|g| g.spec.name == "b").unwrap().first;
        assert!(rules.verdict(eu_host, other, 15 * s).drop && rules.verdict(other, eu_host, 15 * s).drop);
        assert!(rules.verdict(eu_host, us_host, 15 * s).drop, "cut from its own group too");
        assert!(!rules.verdict(us_host, other, 15 * s).drop && !rules.verdict(eu_host, other, 20 * s).drop);
        // A range and a location: only the range's hosts placed there.
        let narrow = compile(
            &entries("[[scenario]]\nat = \"0 s\"\naction = \"offline\"\nhosts = \"tail[5..30]@eu\"\n"),
            &net,
            &[],
        )
        .unwrap()
        .rules;
        for h in tail.first..tail.first + 40 {
            assert_eq!(
                narrow.verdict(h, other, 0).drop,
                (tail.first + 5..tail.first + 30).contains(&h) && at(h),
                "host {h}"
            );
            assert_eq!(rules.verdict(h, other, 15 * s).drop, at(h), "host {h}: every tail host in eu, no other");
        }
        for (body, expected) in [
            ("hosts = \"tail@mars\"", "names no location \"mars\""),
            ("hosts = \"b@eu\"", "group \"b\" has no hosts at eu"),
            ("between = [\"tail\", \"b\"]", "names the hosts that go offline with `hosts`"),
        ] {
            let text = format!("[[scenario]]\nat = \"0 s\"\naction = \"offline\"\n{body}\n");
            let err = compile(&entries(&text), &net, &[]).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
