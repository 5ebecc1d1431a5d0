//! SIGTERM, SIGINT and SIGHUP end a run cleanly: every program on a direct host is killed with its
//! whole process tree, then `thermocline` exits with 128 + the signal's number. The handler only
//! writes the signal's number to a pipe; a watcher thread does the work. Handlers are reset at
//! `exec`, so the programs thermocline starts keep the default dispositions.

use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the signal pipe (-1 until installed).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; the byte lives on this stack frame.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// Install the handlers and start the watcher thread, which calls `teardown` before exiting.
/// Call once, early in `main`.
pub fn exit_on_termination(teardown: fn()) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    let read = fds[0];
    let watcher = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut byte = 0u8;
        // SAFETY: reads one byte into a local.
        while unsafe { libc::read(read, (&mut byte as *mut u8).cast(), 1) } != 1 {}
        let signal = byte as i32;
        teardown();
        eprintln!("thermocline: stopped by signal {signal}; the run's programs were killed and no result was written");
        std::process::exit(128 + signal);
    });
    if watcher.is_err() {
        return;
    }
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a plain handler that only calls write(2).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}
