//! `qos-node`: an ingress node that takes ed25519-signed transactions over UDP from many sources
//! and verifies them at a fixed rate, best-scored sources first (see [`ingress`]). It prints one
//! line per second of what it received, verified and dropped, and a total at the end.
//!
//! The verification rate is the node's own budget (a batch every `--batch-every`), not its
//! CPU: under the simulator a program's computing takes no simulated time, so a node whose
//! throughput is bounded by CPU states its bound.

mod ingress;

use anyhow::{Context, Result};
use clap::Parser;
use ingress::{Counts, Ingress};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Command line.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8000")]
    listen: SocketAddr,
    /// Transactions the queue holds (at least 1).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    capacity: u32,
    /// Transactions verified per batch.
    #[arg(long, default_value_t = 40)]
    batch: usize,
    /// Milliseconds between batches.
    #[arg(long, default_value_t = 10)]
    batch_every: u64,
    /// Score sources by their failed signatures (`on`) or not (`off`).
    #[arg(long, default_value = "on")]
    scoring: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

fn line(second: u64, c: &Counts, queued: usize) -> String {
    format!(
        "t={second} received={} malformed={} dropped={} good={} bad={} queued={queued}",
        c.received, c.malformed, c.dropped, c.good, c.bad
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scoring = match args.scoring.as_str() {
        "on" => true,
        "off" => false,
        other => anyhow::bail!("--scoring takes on or off, not {other:?}"),
    };
    let socket = UdpSocket::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let size: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with a pointer to a c_int that lives across the call.
    let set = unsafe {
        let p = &size as *const libc::c_int as *const libc::c_void;
        libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, p, size_of::<libc::c_int>() as u32)
    };
    if set != 0 {
        eprintln!("warning: SO_RCVBUF of {size} bytes refused: {}", std::io::Error::last_os_error());
    }
    socket.set_nonblocking(true)?;
    let mut q = Ingress::new(args.capacity as usize, scoring);
    let start = Instant::now();
    let every = Duration::from_millis(args.batch_every.max(1));
    let mut next_batch = start + every;
    let mut next_report = 1;
    let mut buf = vec![0u8; 2048];
    let end = start + Duration::from_secs(args.seconds);
    println!(
        "listening on {} scoring={} capacity={} verify={}/{}ms",
        args.listen, args.scoring, args.capacity, args.batch, args.batch_every
    );
    while Instant::now() < end {
        loop {
            match socket.recv_from(&mut buf) {
                Ok((n, SocketAddr::V4(from))) => q.receive(*from.ip(), &buf[..n]),
                Ok(_) => q.receive_unscored(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("receiving"),
            }
        }
        let now = Instant::now();
        if now >= next_batch {
            q.verify_batch(args.batch);
            next_batch += every;
        }
        while now.duration_since(start) >= Duration::from_secs(next_report) {
            println!("{}", line(next_report, &q.counts, q.queued()));
            next_report += 1;
        }
        std::thread::sleep(next_batch.saturating_duration_since(Instant::now()));
    }
    println!("total {}", line(args.seconds, &q.counts, q.queued()));
    Ok(())
}
