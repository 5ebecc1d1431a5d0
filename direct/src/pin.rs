//! Pinning a shard to one CPU: its supervisor thread and every process it launches (children
//! inherit the forking thread's affinity, and the programs' own `sched_setaffinity` is emulated,
//! never passed to the kernel). A forwarded syscall then wakes the supervisor on the CPU the
//! task just ran on instead of across CPUs, which on a VM costs 20–45 µs per call. Pinning
//! changes only wall time, never a result.

use std::io;

/// The CPU for shard `shard`: shards take the CPUs this process may use in turn, so with as
/// many CPUs as shards each shard has its own.
pub fn cpu_for_shard(shard: u32) -> io::Result<usize> {
    let allowed = allowed_cpus()?;
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

/// Pin the calling thread (and so what it forks from now on) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as above; `cpu` is bounds-checked by CPU_SET's callers below.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::other(format!("CPU {cpu} is beyond the CPU set")));
    }
    // SAFETY: `cpu` is within the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
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
}
