//! The engine's side of the scenario timeline on direct hosts: building each host's
//! [`Runbook`] and carrying out its [`Command`]s (signals, kills, starts, wipes, timers).

use super::{DirectEngine, resolve_exe};
use crate::DirectError;
use crate::config::ProcessSpec;
use crate::host::ProcState;
use crate::ops::{Command, HostOp, OpKind, Runbook};
use crate::sched::Action;
use std::path::{Path, PathBuf};

/// The data directory's name inside a host's folder: `{datadir}`.
pub(super) const DATA_DIR: &str = "data";

/// Host `h`'s runbook over `procs` (its spec processes; the commands of its `exec` steps are
/// added to them, `as_run` giving each command its host's values), with the first steps due as
/// (time, step).
pub(super) fn runbook(
    ops: &[HostOp],
    h: u32,
    procs: &mut Vec<ProcState>,
    as_run: impl Fn(&ProcessSpec) -> Result<ProcessSpec, String>,
) -> Result<(Runbook, Vec<(u64, usize)>), String> {
    let spec_procs = procs.len();
    let mut steps = Vec::new();
    for (k, op) in ops.iter().enumerate().filter(|(_, op)| op.hosts.contains(&h)) {
        let targets: Vec<usize> = (0..spec_procs).filter(|&p| op.selects(&procs[p].spec)).collect();
        if targets.is_empty() && op.process.is_some() {
            return Err(format!(
                "scenario[{}].process: {:?} is none of the host's [[processes]]",
                op.entry,
                op.process.as_deref().unwrap_or_default()
            ));
        }
        let command = match &op.kind {
            OpKind::Exec { command } => {
                let exe = resolve_exe(&command.path)
                    .ok_or_else(|| format!("scenario[{}].path: executable {:?} not found", op.entry, command.path))?;
                let base = exe.file_name().map_or("command".into(), |f| f.to_string_lossy().into_owned());
                let stem = format!("{base}.{}", procs.len());
                let mut proc = ProcState::new(as_run(command)?, exe, stem);
                proc.scenario = true;
                procs.push(proc);
                Some(procs.len() - 1)
            }
            _ => None,
        };
        steps.push((k, targets, command));
    }
    let names = procs.iter().map(|p| p.stem.clone()).collect();
    let mut book = Runbook::new(ops, names, steps);
    let mut first = Vec::new();
    while let Some(c) = book.poll() {
        if let Command::Begin { at, step } = c {
            first.push((at, step));
        }
    }
    Ok((book, first))
}

impl DirectEngine {
    /// Tell host `h`'s runbook what its processes did (ends, lines), and carry out what it
    /// answers, settling the host again after starts and signals, until it has nothing to do.
    pub(super) fn advance_timeline(&mut self, h: usize) -> Result<(), DirectError> {
        loop {
            let host = &mut self.hosts[h];
            if host.runbook.is_empty() {
                host.exits.clear();
                return Ok(());
            }
            // Lines first: what a process wrote before it ended comes before its end.
            let now = host.now;
            for line in host.logs.take_fresh() {
                host.runbook.line(&self.ops, line.proc, &line.text, now);
            }
            for p in std::mem::take(&mut host.exits) {
                let status = host.procs[p].status;
                host.runbook.exited(&self.ops, p, status, now);
            }
            let mut acted = false;
            while let Some(c) = self.hosts[h].runbook.poll() {
                acted |= self.perform(h, c)?;
            }
            if !acted {
                return Ok(());
            }
            self.settle(h)?;
        }
    }

    /// Carry out `c` for host `h`; whether its processes changed (the host must settle).
    fn perform(&mut self, h: usize, c: Command) -> Result<bool, DirectError> {
        match c {
            Command::Signal { proc, signal, ends } => {
                self.hosts[h].procs[proc].touched |= ends;
                if signal == libc::SIGKILL {
                    self.hosts[h].procs[proc].paused = false; // it ends a frozen process too
                }
                self.stop(h, proc, signal);
            }
            Command::Kill { proc } => self.kill_tree(h, proc),
            Command::Pause { proc } => self.hosts[h].procs[proc].paused = true,
            Command::Resume { proc } => {
                let host = &mut self.hosts[h];
                host.procs[proc].paused = false;
                host.progress += 1;
            }
            Command::Start { proc } => {
                if self.hosts[h].procs[proc].status != crate::config::ExitStatus::Running {
                    self.start(h, proc)?;
                }
            }
            Command::Wipe { keep } => {
                let host = &mut self.hosts[h];
                let data = host.dir.join(DATA_DIR);
                wipe(&data, &keep).map_err(|e| DirectError::Io(format!("wiping {}", data.display()), e))?;
                host.disk.freed();
                return Ok(false);
            }
            Command::Timer { at, step } => {
                self.push_local(h, at, Action::OpTimer(step));
                return Ok(false);
            }
            Command::Begin { at, step } => {
                self.push_local(h, at, Action::OpBegin(step));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Host `h`'s traffic source `i` sends its datagram due now, and is due again at its next
    /// departure.
    pub(super) fn send_from_source(&mut self, h: usize, i: usize) {
        let now = self.hosts[h].now;
        let (datagram, next) = self.hosts[h].sources[i].next(&self.sources, now);
        let from = (self.hosts[h].ip, datagram.from_port);
        let packet = thermocline_net::udp::encode(from, (*datagram.to.ip(), datagram.to.port()), &datagram.payload);
        crate::nic::transmit(&mut self.cx(h), packet);
        if let Some(at) = next {
            self.push_local(h, at, Action::SourceSend(i));
        }
    }

    /// `SIGKILL` every running task of host `h`'s process `proc` and of its descendants.
    fn kill_tree(&mut self, h: usize, proc: usize) {
        let host = &mut self.hosts[h];
        host.procs[proc].touched = true;
        // SIGKILL ends a frozen process too: its tasks are looked at again to see them die.
        host.procs[proc].paused = false;
        let mut groups: Vec<i32> = host
            .tasks
            .values()
            .filter(|t| t.proc == proc && !matches!(t.state, crate::host::TaskState::Exited))
            .map(|t| t.tgid)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for tgid in groups {
            // SAFETY: signalling a managed task's process, not yet reaped.
            unsafe { libc::kill(tgid, libc::SIGKILL) };
        }
        host.progress += 1;
        host.signal_hint = true;
    }
}

/// Empty `dir` except the paths `keep` (relative to it; a kept folder keeps all it holds, and the
/// folders on the way to a kept path stay). A missing `dir` is made.
fn wipe(dir: &Path, keep: &[PathBuf]) -> std::io::Result<()> {
    if !dir.exists() {
        return std::fs::create_dir_all(dir);
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = PathBuf::from(entry.file_name());
        if keep.contains(&name) {
            continue;
        }
        let inner: Vec<PathBuf> =
            keep.iter().filter_map(|k| k.strip_prefix(&name).ok().map(Path::to_path_buf)).collect();
        let path = entry.path();
        let is_dir = entry.file_type()?.is_dir();
        if is_dir && !inner.is_empty() {
            wipe(&path, &inner)?;
        } else if is_dir {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Add what a host's traffic sources sent to its digest record (nothing without sources).
pub(super) fn digest_sources(sources: &[crate::sources::Source], record: &mut Vec<u8>) {
    if sources.is_empty() {
        return;
    }
    record.extend_from_slice(b"sources\0");
    for s in sources {
        for n in [s.plan as u64, s.sent, s.bytes, s.invalid] {
            record.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Add what host `runbook`'s steps did to its digest record (nothing without steps, so runs
/// without a timeline keep their digests).
pub(super) fn digest_record(runbook: &Runbook, record: &mut Vec<u8>) {
    if runbook.events.is_empty() {
        return;
    }
    record.extend_from_slice(b"scenario\0");
    for e in &runbook.events {
        record.extend_from_slice(&e.time.to_be_bytes());
        record.extend_from_slice(&(e.op as u64).to_be_bytes());
        record.extend_from_slice(e.what.as_bytes());
        record.push(0);
        record.extend_from_slice(e.detail.as_bytes());
        record.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wipe_keeps_the_named_paths_and_the_folders_on_their_way() {
        let dir = std::env::temp_dir().join(format!("thermocline-wipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["chain/db", "chain/snapshots", "keys"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["chain/db/000001.ldb", "chain/snapshots/s1", "keys/k", "peers.json"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        wipe(&dir, &[PathBuf::from("chain/snapshots"), PathBuf::from("keys")]).unwrap();
        let mut left: Vec<String> = walk(&dir);
        left.sort();
        assert_eq!(left, ["chain", "chain/snapshots", "chain/snapshots/s1", "keys", "keys/k"]);
        wipe(&dir, &[]).unwrap();
        assert!(walk(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
        wipe(&dir, &[]).unwrap();
        assert!(dir.is_dir(), "a missing data directory is made");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                out.extend(walk(&p).into_iter().map(|s| format!("{}/{s}", p.file_name().unwrap().to_string_lossy())));
            }
        }
        out
    }
}
