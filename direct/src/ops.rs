//! Operations on direct hosts during a run: the host part of the scenario timeline, what operators
//! do to running nodes — send a signal, stop gracefully (a signal, a grace period, then
//! `SIGKILL`, as `docker stop` or scaling a deployment to 0), start again with the same command
//! (scaling back to 1), restart, wipe the data directory and start again, run an admin command —
//! and wait for a condition (the processes exit, a log line appears) with a timeout before the
//! next step.
//!
//! A [`Runbook`] is one host's share of the timeline, as a sans-IO state machine: the engine tells
//! it when a step is due ([`Runbook::begin`]), when the host's processes start and end, the lines
//! they write ([`crate::logs`]) and when its timers fire; it answers with [`Command`]s (signal,
//! kill, start, wipe, arm a timer, begin a later step) and records what happened as
//! [`OpEvent`]s (the `scenario_events` table). Every input comes from the host's own simulated
//! run, so a runbook does the same on every run and shard count. A step that names `after`
//! begins `at` after that step has ended *on the same host*: each host runs the chain alone.

use crate::config::{ExitStatus, ProcessSpec, Signal};
use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use thermocline_bus::SimDuration;

/// What a step does to the processes it acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Send a signal to the running ones.
    Signal {
        /// The signal.
        signal: Signal,
    },
    /// Stop them: `signal`, then `SIGKILL` to each process tree still running after `grace`.
    Stop {
        /// The first signal (`SIGTERM` by default).
        signal: Signal,
        /// How long they may take to exit before they are killed.
        grace: SimDuration,
    },
    /// Start those not running, with the same command (a new instance appends to the same
    /// stdout and stderr files).
    Start,
    /// Stop, then start once all have exited.
    Restart {
        /// The first signal.
        signal: Signal,
        /// How long they may take to exit before they are killed.
        grace: SimDuration,
    },
    /// Stop, empty the host's data directory (`{datadir}`) except `keep`, then start.
    Wipe {
        /// The first signal.
        signal: Signal,
        /// How long they may take to exit before they are killed.
        grace: SimDuration,
        /// Paths inside the data directory that survive the wipe (snapshots, keys).
        keep: Vec<PathBuf>,
    },
    /// Run a command on the host (an admin CLI talking to the running process); the step goes on
    /// when the command exits.
    Exec {
        /// The command, as a `[[processes]]` entry would give it.
        command: ProcessSpec,
    },
    /// Freeze the running ones (a paused container: `docker pause`, a cgroup freezer): they
    /// run nothing until resumed, while the host's network stack goes on.
    Pause,
    /// Let paused ones run again.
    Resume,
}

impl OpKind {
    /// Its name in the spec (`"stop"`).
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Signal { .. } => "signal",
            OpKind::Stop { .. } => "stop",
            OpKind::Start => "start",
            OpKind::Restart { .. } => "restart",
            OpKind::Wipe { .. } => "wipe",
            OpKind::Exec { .. } => "exec",
            OpKind::Pause => "pause",
            OpKind::Resume => "resume",
        }
    }
}

/// What a step waits for once its action is done, before it ends.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Wait {
    /// Nothing: it ends at once.
    #[default]
    Nothing,
    /// Every process it acts on has exited.
    Exit,
    /// A line containing this text, written by a process it acts on (or its command) after the
    /// step began.
    Log(String),
}

/// One step of the timeline for a range of direct hosts, resolved from the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct HostOp {
    /// Its index among the spec's `[[scenario]]` entries.
    pub entry: usize,
    /// Its `name`, or `scenario[N]`.
    pub label: String,
    /// The hosts it acts on (global ids, all direct).
    pub hosts: Range<u32>,
    /// When it begins: from the start of the run, or from the end of `after` on the same host.
    pub at: SimDuration,
    /// The step (index in the list of steps) whose end it follows.
    pub after: Option<usize>,
    /// The spec processes it acts on: a `[[processes]]` path as written or its file name; all
    /// of the host's when absent.
    pub process: Option<String>,
    /// What it does.
    pub kind: OpKind,
    /// What it waits for.
    pub wait: Wait,
    /// The longest it waits (from its beginning) before it ends anyway, as timed out.
    pub timeout: Option<SimDuration>,
}

impl HostOp {
    /// Whether process `spec` is one this step acts on.
    pub fn selects(&self, spec: &ProcessSpec) -> bool {
        match &self.process {
            None => true,
            Some(name) => {
                spec.path.as_os_str() == name.as_str() || spec.path.file_name().is_some_and(|f| f == name.as_str())
            }
        }
    }
}

/// What the engine must do for a runbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send `signal` to process `proc` (the process the engine started, not its descendants).
    Signal {
        /// The host's process.
        proc: usize,
        /// The signal number.
        signal: i32,
        /// It is meant to end the process (a stop, or a terminating signal): how the process then
        /// ends is the timeline's doing, not checked against its expected exit.
        ends: bool,
    },
    /// `SIGKILL` process `proc` and every descendant of it still running (after a stop, a
    /// container's other processes go with its main one).
    Kill {
        /// The host's process.
        proc: usize,
    },
    /// Start process `proc` (again).
    Start {
        /// The host's process.
        proc: usize,
    },
    /// Freeze process `proc` and its descendants: their system calls wait (and what blocks
    /// them is not looked at again) until [`Command::Resume`].
    Pause {
        /// The host's process.
        proc: usize,
    },
    /// Let process `proc` and its descendants run again.
    Resume {
        /// The host's process.
        proc: usize,
    },
    /// Empty the data directory except these paths.
    Wipe {
        /// Paths inside the data directory to keep.
        keep: Vec<PathBuf>,
    },
    /// Call [`Runbook::timer`] for `step` at `at`.
    Timer {
        /// When (ns).
        at: u64,
        /// The runbook's step.
        step: usize,
    },
    /// Call [`Runbook::begin`] for `step` at `at`.
    Begin {
        /// When (ns).
        at: u64,
        /// The runbook's step.
        step: usize,
    },
}

/// Something a step did or saw, for `scenario_events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpEvent {
    /// When (ns).
    pub time: u64,
    /// The step's index in the list of steps.
    pub op: usize,
    /// What: `begin`, `signal`, `kill`, `exited`, `stopped`, `wipe`, `start`, `exec`, `pause`,
    /// `resume`, `done`, `timeout`, `unfinished` (still under way when the run ended).
    pub what: &'static str,
    /// Which process and how (`gossip-node.0 SIGTERM`), or empty.
    pub detail: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Stopping { killed: bool },
    Exec,
    Waiting,
    Done,
}

/// One step on this host.
#[derive(Clone, Debug)]
struct Step {
    /// Index in the list of steps.
    op: usize,
    /// The host's processes it acts on.
    targets: Vec<usize>,
    /// The host's process that runs its command (`exec`).
    command: Option<usize>,
    phase: Phase,
    /// When it began.
    began: u64,
    /// Its `wait = "log"` line was written while its command ran.
    line_seen: bool,
}

/// One host's share of the timeline (see the module documentation).
#[derive(Debug, Default)]
pub struct Runbook {
    steps: Vec<Step>,
    /// Per host process: running or not.
    running: Vec<bool>,
    /// Per host process: its name in events.
    names: Vec<String>,
    out: VecDeque<Command>,
    /// What happened, in order.
    pub events: Vec<OpEvent>,
}

impl Runbook {
    /// The runbook of a host whose processes are named `names`, for `steps`: (the step's index
    /// in `ops`, the processes it acts on, the process of its command). Returns it with the
    /// commands that begin the steps that follow no other.
    pub fn new(ops: &[HostOp], names: Vec<String>, steps: Vec<(usize, Vec<usize>, Option<usize>)>) -> Self {
        let running = vec![false; names.len()];
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|(op, targets, command)| Step { op, targets, command, phase: Phase::Idle, began: 0, line_seen: false })
            .collect();
        let mut book = Runbook { steps, running, names, out: VecDeque::new(), events: Vec::new() };
        for (s, step) in book.steps.iter().enumerate() {
            let op = &ops[step.op];
            if op.after.is_none() {
                book.out.push_back(Command::Begin { at: op.at.as_nanos(), step: s });
            }
        }
        book
    }

    /// Whether it has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The next command for the engine.
    pub fn poll(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// Process `proc` has started.
    pub fn started(&mut self, proc: usize) {
        if let Some(r) = self.running.get_mut(proc) {
            *r = true;
        }
    }

    /// Step `s` is due at `now`: act.
    pub fn begin(&mut self, ops: &[HostOp], s: usize, now: u64) {
        let Some(step) = self.steps.get(s) else { return };
        if step.phase != Phase::Idle {
            return;
        }
        let op = &ops[step.op];
        self.steps[s].began = now;
        self.event(now, s, "begin", String::new());
        if let Some(t) = op.timeout {
            self.out.push_back(Command::Timer { at: now.saturating_add(t.as_nanos()), step: s });
        }
        match &op.kind {
            OpKind::Signal { signal } => {
                let ends = matches!(signal.0, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGKILL);
                self.signal(s, signal.0, ends, now);
                self.enter_wait(ops, s, now);
            }
            OpKind::Stop { signal, grace } | OpKind::Restart { signal, grace } | OpKind::Wipe { signal, grace, .. } => {
                if self.signal(s, signal.0, true, now) == 0 {
                    self.stopped(ops, s, now);
                } else {
                    self.steps[s].phase = Phase::Stopping { killed: false };
                    self.out.push_back(Command::Timer { at: now.saturating_add(grace.as_nanos()), step: s });
                }
            }
            OpKind::Start => {
                self.start(s, now);
                self.enter_wait(ops, s, now);
            }
            OpKind::Pause | OpKind::Resume => {
                // A resume also clears a pause that outlived its instance (a paused process
                // stopped, or started again, since), so nothing stays frozen by mistake.
                let pause = op.kind == OpKind::Pause;
                for p in self.steps[s].targets.clone() {
                    if self.running[p] {
                        self.event(now, s, op.kind.name(), self.names[p].clone());
                    }
                    if self.running[p] || !pause {
                        self.out.push_back(if pause {
                            Command::Pause { proc: p }
                        } else {
                            Command::Resume { proc: p }
                        });
                    }
                }
                self.enter_wait(ops, s, now);
            }
            OpKind::Exec { .. } => match self.steps[s].command {
                Some(p) if !self.running[p] => {
                    self.steps[s].phase = Phase::Exec;
                    self.event(now, s, "exec", self.names[p].clone());
                    self.out.push_back(Command::Start { proc: p });
                }
                _ => self.enter_wait(ops, s, now),
            },
        }
    }

    /// Process `proc` has ended with `status`. Every step it concerns sees the exit as it was
    /// before any of them acts on it (a restart that starts the process again does not make a
    /// stop of the same process wait for the new instance).
    pub fn exited(&mut self, ops: &[HostOp], proc: usize, status: ExitStatus, now: u64) {
        if let Some(r) = self.running.get_mut(proc) {
            *r = false;
        }
        let mut moved = Vec::new();
        for s in 0..self.steps.len() {
            let step = &self.steps[s];
            let acts_on = step.targets.contains(&proc) || step.command == Some(proc);
            if !acts_on || matches!(step.phase, Phase::Idle | Phase::Done) {
                continue;
            }
            self.event(now, s, "exited", format!("{} {status}", self.names[proc]));
            let step = &self.steps[s];
            let all_down = step.targets.iter().all(|&p| !self.running[p]);
            match step.phase {
                Phase::Stopping { .. } => {
                    // What it started goes with it, as a container's processes do.
                    if step.targets.contains(&proc) {
                        self.out.push_back(Command::Kill { proc });
                    }
                    if all_down {
                        moved.push(s);
                    }
                }
                Phase::Exec if step.command == Some(proc) => moved.push(s),
                Phase::Waiting if all_down && ops[step.op].wait == Wait::Exit => moved.push(s),
                _ => {}
            }
        }
        for s in moved {
            match self.steps[s].phase {
                Phase::Stopping { .. } => self.stopped(ops, s, now),
                Phase::Exec => self.enter_wait(ops, s, now),
                _ => self.done(ops, s, now, "done"),
            }
        }
    }

    /// Process `proc` wrote the line `text` (at or before `now`). A step waiting for a line
    /// takes one written after it began — while its command runs, or once it waits; a restart's
    /// or a wipe's, one written after it started the processes again.
    pub fn line(&mut self, ops: &[HostOp], proc: usize, text: &str, now: u64) {
        for s in 0..self.steps.len() {
            let step = &self.steps[s];
            if !matches!(step.phase, Phase::Exec | Phase::Waiting)
                || !(step.targets.contains(&proc) || step.command == Some(proc))
            {
                continue;
            }
            let Wait::Log(wanted) = &ops[step.op].wait else { continue };
            if !text.contains(wanted.as_str()) {
                continue;
            }
            match step.phase {
                Phase::Exec => self.steps[s].line_seen = true,
                _ => self.done(ops, s, now, "done"),
            }
        }
    }

    /// Step `s`'s timer fires: the grace period is over (kill what still runs) or the step has
    /// waited its timeout. A timeout ends a step as timed out, killing a command still running,
    /// but does not cut a stop short: a stop still waiting for its grace period goes on (kill,
    /// then start for a restart or a wipe), and the step ends as timed out when it would wait.
    pub fn timer(&mut self, ops: &[HostOp], s: usize, now: u64) {
        let Some(step) = self.steps.get(s) else { return };
        let timed_out = ops[step.op].timeout.is_some_and(|t| step.began.saturating_add(t.as_nanos()) <= now);
        match step.phase {
            Phase::Stopping { killed: false } if !timed_out || step.began.saturating_add(self.grace(ops, s)) <= now => {
                self.steps[s].phase = Phase::Stopping { killed: true };
                for p in self.steps[s].targets.clone() {
                    if self.running[p] {
                        self.event(now, s, "kill", self.names[p].clone());
                        self.out.push_back(Command::Kill { proc: p });
                    }
                }
            }
            Phase::Exec if timed_out => {
                if let Some(p) = self.steps[s].command.filter(|&p| self.running[p]) {
                    self.event(now, s, "kill", self.names[p].clone());
                    self.out.push_back(Command::Kill { proc: p });
                }
                self.done(ops, s, now, "timeout");
            }
            Phase::Waiting if timed_out => self.done(ops, s, now, "timeout"),
            _ => {}
        }
    }

    /// The run has ended: steps still under way say so.
    pub fn finish(&mut self, now: u64) {
        for s in 0..self.steps.len() {
            if !matches!(self.steps[s].phase, Phase::Idle | Phase::Done) {
                self.event(now, s, "unfinished", String::new());
            }
        }
    }

    /// Step `s`'s grace period, ns (0 for steps that do not stop).
    fn grace(&self, ops: &[HostOp], s: usize) -> u64 {
        match &ops[self.steps[s].op].kind {
            OpKind::Stop { grace, .. } | OpKind::Restart { grace, .. } | OpKind::Wipe { grace, .. } => grace.as_nanos(),
            _ => 0,
        }
    }

    /// Signal the running targets of `s` (`ends`: to end them); how many were signalled.
    fn signal(&mut self, s: usize, signal: i32, ends: bool, now: u64) -> usize {
        let name = crate::config::signal_name(signal).unwrap_or("signal");
        let mut n = 0;
        for p in self.steps[s].targets.clone() {
            if self.running[p] {
                self.event(now, s, "signal", format!("{} {name}", self.names[p]));
                self.out.push_back(Command::Signal { proc: p, signal, ends });
                n += 1;
            }
        }
        n
    }

    /// Start the targets of `s` that are not running.
    fn start(&mut self, s: usize, now: u64) {
        for p in self.steps[s].targets.clone() {
            if !self.running[p] {
                self.event(now, s, "start", self.names[p].clone());
                self.out.push_back(Command::Start { proc: p });
                self.running[p] = true;
            }
        }
    }

    /// Every target of a stopping step `s` has exited.
    fn stopped(&mut self, ops: &[HostOp], s: usize, now: u64) {
        self.event(now, s, "stopped", String::new());
        match &ops[self.steps[s].op].kind {
            OpKind::Restart { .. } => self.start(s, now),
            OpKind::Wipe { keep, .. } => {
                self.event(now, s, "wipe", String::new());
                self.out.push_back(Command::Wipe { keep: keep.clone() });
                self.start(s, now);
            }
            _ => {}
        }
        self.enter_wait(ops, s, now);
    }

    /// Step `s` has acted: wait for its condition, or end (as timed out if its timeout has
    /// passed while it stopped its processes).
    fn enter_wait(&mut self, ops: &[HostOp], s: usize, now: u64) {
        let step = &self.steps[s];
        let op = &ops[step.op];
        let all_down = step.targets.iter().all(|&p| !self.running[p]);
        let met = match &op.wait {
            Wait::Nothing => true,
            Wait::Exit => all_down,
            Wait::Log(_) => step.line_seen,
        };
        if met {
            self.done(ops, s, now, "done");
        } else if op.timeout.is_some_and(|t| step.began.saturating_add(t.as_nanos()) <= now) {
            self.done(ops, s, now, "timeout");
        } else {
            self.steps[s].phase = Phase::Waiting;
        }
    }

    /// Step `s` ends (`done` or `timeout`): the steps that follow it on this host are due.
    fn done(&mut self, ops: &[HostOp], s: usize, now: u64, how: &'static str) {
        self.steps[s].phase = Phase::Done;
        self.event(now, s, how, String::new());
        let op = self.steps[s].op;
        for (d, step) in self.steps.iter().enumerate() {
            let next = &ops[step.op];
            if next.after == Some(op) {
                self.out.push_back(Command::Begin { at: now.saturating_add(next.at.as_nanos()), step: d });
            }
        }
    }

    fn event(&mut self, time: u64, s: usize, what: &'static str, detail: String) {
        self.events.push(OpEvent { time, op: self.steps[s].op, what, detail });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn op(kind: OpKind, at: u64, after: Option<usize>, wait: Wait, timeout: Option<u64>) -> HostOp {
        HostOp {
            entry: 0,
            label: "step".into(),
            hosts: 0..1,
            at: SimDuration::from_nanos(at),
            after,
            process: None,
            kind,
            wait,
            timeout: timeout.map(SimDuration::from_nanos),
        }
    }

    fn stop(grace: u64) -> OpKind {
        OpKind::Stop { signal: Signal(libc::SIGTERM), grace: SimDuration::from_nanos(grace) }
    }

    fn commands(book: &mut Runbook) -> Vec<Command> {
        std::iter::from_fn(|| book.poll()).collect()
    }

    fn whats(book: &Runbook) -> Vec<(u64, &'static str)> {
        book.events.iter().map(|e| (e.time, e.what)).collect()
    }

    /// A runbook of one host with processes `node` (0) and `cli` (1), every step acting on
    /// `node` and `exec` steps running `cli`.
    fn book(ops: &[HostOp]) -> Runbook {
        let steps = (0..ops.len()).map(|i| (i, vec![0], matches!(ops[i].kind, OpKind::Exec { .. }).then_some(1)));
        let mut b = Runbook::new(ops, vec!["node.0".into(), "cli.1".into()], steps.collect());
        b.started(0);
        b
    }

    #[test]
    fn a_pause_freezes_the_running_targets_and_a_resume_lets_them_go() {
        let ops = [
            op(OpKind::Pause, 10 * S, None, Wait::Nothing, None),
            op(OpKind::Resume, 5 * S, Some(0), Wait::Log("back".into()), Some(20 * S)),
        ];
        let mut b = book(&ops);
        commands(&mut b);
        b.begin(&ops, 0, 10 * S);
        assert_eq!(commands(&mut b), [Command::Pause { proc: 0 }, Command::Begin { at: 15 * S, step: 1 }]);
        b.begin(&ops, 1, 15 * S);
        assert_eq!(commands(&mut b), [Command::Timer { at: 35 * S, step: 1 }, Command::Resume { proc: 0 }]);
        b.line(&ops, 0, "I am back", 16 * S);
        let events: Vec<(u64, &str, &str)> = b.events.iter().map(|e| (e.time, e.what, e.detail.as_str())).collect();
        assert_eq!(
            events,
            [
                (10 * S, "begin", ""),
                (10 * S, "pause", "node.0"),
                (10 * S, "done", ""),
                (15 * S, "begin", ""),
                (15 * S, "resume", "node.0"),
                (16 * S, "done", "")
            ]
        );
        let mut idle = book(&ops);
        idle.exited(&ops, 0, ExitStatus::Code(0), S);
        commands(&mut idle);
        idle.begin(&ops, 0, 10 * S);
        assert!(!commands(&mut idle).iter().any(|c| matches!(c, Command::Pause { .. })), "nothing runs to pause");
    }

    #[test]
    fn a_graceful_stop_signals_then_ends_when_the_process_exits_and_begins_what_follows() {
        let ops = [
            op(stop(30 * S), 10 * S, None, Wait::Nothing, None),
            op(OpKind::Start, 5 * S, Some(0), Wait::Nothing, None),
        ];
        let mut b = book(&ops);
        assert_eq!(commands(&mut b), [Command::Begin { at: 10 * S, step: 0 }]);
        b.begin(&ops, 0, 10 * S);
        assert_eq!(
            commands(&mut b),
            [Command::Signal { proc: 0, signal: libc::SIGTERM, ends: true }, Command::Timer { at: 40 * S, step: 0 }]
        );
        b.exited(&ops, 0, ExitStatus::Code(0), 12 * S);
        assert_eq!(commands(&mut b), [Command::Kill { proc: 0 }, Command::Begin { at: 17 * S, step: 1 }]);
        b.timer(&ops, 0, 40 * S);
        assert!(commands(&mut b).is_empty(), "a stale grace timer kills nothing");
        b.begin(&ops, 1, 17 * S);
        assert_eq!(commands(&mut b), [Command::Start { proc: 0 }]);
        assert_eq!(
            whats(&b),
            [
                (10 * S, "begin"),
                (10 * S, "signal"),
                (12 * S, "exited"),
                (12 * S, "stopped"),
                (12 * S, "done"),
                (17 * S, "begin"),
                (17 * S, "start"),
                (17 * S, "done")
            ]
        );
    }

    #[test]
    fn a_process_that_ignores_the_signal_is_killed_after_the_grace_period_then_restarted() {
        let kind = OpKind::Restart { signal: Signal(libc::SIGINT), grace: SimDuration::from_nanos(5 * S) };
        let ops = [op(kind, 0, None, Wait::Nothing, None)];
        let mut b = book(&ops);
        commands(&mut b);
        b.begin(&ops, 0, S);
        commands(&mut b);
        b.timer(&ops, 0, 6 * S);
        assert_eq!(commands(&mut b), [Command::Kill { proc: 0 }]);
        b.exited(&ops, 0, ExitStatus::Signal(libc::SIGKILL), 6 * S);
        assert_eq!(commands(&mut b), [Command::Kill { proc: 0 }, Command::Start { proc: 0 }]);
        assert_eq!(b.events.iter().find(|e| e.what == "exited").map(|e| e.detail.as_str()), Some("node.0 SIGKILL"));
    }

    #[test]
    fn a_stop_of_a_process_that_is_not_running_ends_at_once_and_a_wipe_keeps_its_paths() {
        let keep = vec![PathBuf::from("snapshots")];
        let kind =
            OpKind::Wipe { signal: Signal(libc::SIGTERM), grace: SimDuration::from_nanos(S), keep: keep.clone() };
        let ops = [op(kind, 0, None, Wait::Nothing, None)];
        let mut b = book(&ops);
        commands(&mut b);
        b.exited(&ops, 0, ExitStatus::Code(1), 0);
        b.begin(&ops, 0, 2 * S);
        assert_eq!(commands(&mut b), [Command::Wipe { keep }, Command::Start { proc: 0 }]);
    }

    #[test]
    fn an_admin_command_then_a_wait_for_exit_with_a_timeout() {
        let ops = [op(OpKind::Exec { command: ProcessSpec::new("g", "cli") }, 0, None, Wait::Exit, Some(20 * S))];
        let mut b = book(&ops);
        commands(&mut b);
        b.begin(&ops, 0, S);
        assert_eq!(commands(&mut b), [Command::Timer { at: 21 * S, step: 0 }, Command::Start { proc: 1 }]);
        b.started(1);
        b.exited(&ops, 1, ExitStatus::Code(0), 2 * S);
        assert!(b.events.iter().all(|e| e.what != "done"), "the node still runs");
        b.exited(&ops, 0, ExitStatus::Code(0), 9 * S);
        assert_eq!(b.events.last().map(|e| (e.time, e.what)), Some((9 * S, "done")));

        let mut b = book(&ops);
        b.begin(&ops, 0, S);
        b.started(1);
        b.exited(&ops, 1, ExitStatus::Code(0), 2 * S);
        b.timer(&ops, 0, 21 * S);
        assert_eq!(b.events.last().map(|e| (e.time, e.what)), Some((21 * S, "timeout")));
    }

    #[test]
    fn a_start_waits_for_its_log_line_from_its_own_processes_only() {
        let ops = [op(OpKind::Start, 0, None, Wait::Log("synced".into()), None)];
        let mut b = book(&ops);
        b.exited(&ops, 0, ExitStatus::Code(0), 0);
        b.begin(&ops, 0, S);
        b.line(&ops, 1, "synced", 2 * S);
        b.line(&ops, 0, "not yet", 3 * S);
        assert!(b.events.iter().all(|e| e.what != "done"));
        b.line(&ops, 0, "head synced to 42", 4 * S);
        assert_eq!(b.events.last().map(|e| (e.time, e.what)), Some((4 * S, "done")));
    }

    #[test]
    fn a_restart_and_a_stop_of_the_same_process_both_see_its_exit_and_the_new_instance_survives() {
        let restart = OpKind::Restart { signal: Signal(libc::SIGTERM), grace: SimDuration::from_nanos(10 * S) };
        let ops = [op(restart, S, None, Wait::Nothing, None), op(stop(10 * S), S, None, Wait::Nothing, None)];
        let mut b = book(&ops);
        commands(&mut b);
        b.begin(&ops, 0, S);
        b.begin(&ops, 1, S);
        commands(&mut b);
        b.exited(&ops, 0, ExitStatus::Code(0), 2 * S);
        assert!(commands(&mut b).contains(&Command::Start { proc: 0 }));
        b.timer(&ops, 1, 11 * S);
        assert!(commands(&mut b).is_empty(), "the stop ended with the exit; it kills no new instance");
        assert_eq!(b.events.iter().filter(|e| e.what == "done").count(), 2);
    }

    #[test]
    fn a_timeout_shorter_than_the_grace_period_does_not_cut_a_restart_short() {
        let restart = OpKind::Restart { signal: Signal(libc::SIGTERM), grace: SimDuration::from_nanos(30 * S) };
        let ops = [op(restart, 0, None, Wait::Log("ready".into()), Some(10 * S))];
        let mut b = book(&ops);
        commands(&mut b);
        b.begin(&ops, 0, 0);
        commands(&mut b);
        b.timer(&ops, 0, 10 * S);
        assert!(commands(&mut b).is_empty(), "the timeout waits for the grace period");
        b.timer(&ops, 0, 30 * S);
        assert_eq!(commands(&mut b), [Command::Kill { proc: 0 }]);
        b.exited(&ops, 0, ExitStatus::Signal(libc::SIGKILL), 30 * S);
        assert!(commands(&mut b).contains(&Command::Start { proc: 0 }), "restarted after the kill");
        assert_eq!(b.events.last().map(|e| e.what), Some("timeout"), "and ends as timed out");
    }

    #[test]
    fn a_line_written_while_the_admin_command_runs_counts_and_a_timed_out_command_is_killed() {
        let exec = OpKind::Exec { command: ProcessSpec::new("g", "cli") };
        let ops = [op(exec, 0, None, Wait::Log("draining".into()), Some(5 * S))];
        let mut b = book(&ops);
        b.begin(&ops, 0, S);
        b.started(1);
        b.line(&ops, 0, "draining now", 2 * S);
        b.exited(&ops, 1, ExitStatus::Code(0), 3 * S);
        assert_eq!(b.events.last().map(|e| (e.time, e.what)), Some((3 * S, "done")));

        let mut b = book(&ops);
        b.begin(&ops, 0, S);
        b.started(1);
        commands(&mut b);
        b.timer(&ops, 0, 6 * S);
        assert_eq!(commands(&mut b), [Command::Kill { proc: 1 }]);
        assert_eq!(b.events.last().map(|e| e.what), Some("timeout"));
        b.finish(9 * S);
        assert_eq!(b.events.last().map(|e| e.what), Some("timeout"), "nothing unfinished");
    }
}
