//! Pinning a shard to one CPU: its supervisor thread and every process it launches (children
//! inherit the forking thread's affinity, and the programs' own `sched_setaffinity` is emulated,
//! never passed to the kernel). A forwarded syscall then wakes the supervisor on the CPU the
//! task just ran on instead of across CPUs, which on a VM costs 20–45 µs per call. Pinning
//! changes only wall time, never a result.

use std::io;
use std::sync::OnceLock;

/// The CPU for shard `shard`: shards take the CPUs this process may use in turn, so with as
/// many CPUs as shards each shard has its own.
pub fn cpu_for_shard(shard: u32) -> io::Result<usize> {
    let allowed = process_cpus()?;
    if allowed.is_empty() {
        return Err(io::Error::other("no CPU allowed"));
    }
    Ok(allowed[shard as usize % allowed.len()])
}

/// The CPUs the calling thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size given.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading bits of an initialised set within its size.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// The CPUs this process could use when it first asked: what shards are spread over. Not the
/// calling thread's own set, which a pinned thread has narrowed to one CPU (a thread that ran a
/// shard and then starts another run's shards would otherwise put them all on its CPU, and its
/// children inherit the narrowed set).
pub fn process_cpus() -> io::Result<&'static [usize]> {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    if let Some(cpus) = CPUS.get() {
        return Ok(cpus);
    }
    let cpus = allowed_cpus()?;
    Ok(CPUS.get_or_init(|| cpus))
}

/// Let the calling thread run on every CPU of [`process_cpus`] again.
pub fn unpin_current_thread() -> io::Result<()> {
    set_affinity(process_cpus()?)
}

/// Pin the calling thread (and so what it forks from now on) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    set_affinity(&[cpu])
}

/// Let the calling thread run on `cpus` only.
fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::other(format!("CPU {cpu} is beyond the CPU set")));
        }
        // SAFETY: `cpu` is within the set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_runs_only_on_its_cpu_and_shards_share_cpus_in_turn() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        assert_eq!(cpu_for_shard(0).unwrap(), allowed[0]);
        assert_eq!(cpu_for_shard(allowed.len() as u32).unwrap(), allowed[0]);
        let last = *allowed.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
    }

    #[test]
    fn shards_spread_over_the_process_cpus_even_from_a_pinned_thread_which_unpins() {
        let all = process_cpus().unwrap().to_vec();
        std::thread::spawn(move || {
            pin_current_thread(all[0]).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [all[0]]);
            let shards: Vec<usize> = (0..all.len() as u32).map(|s| cpu_for_shard(s).unwrap()).collect();
            assert_eq!(shards, all, "one CPU per shard, though this thread has one");
            unpin_current_thread().unwrap();
            assert_eq!(allowed_cpus().unwrap(), all);
        })
        .join()
        .unwrap();
    }
}
