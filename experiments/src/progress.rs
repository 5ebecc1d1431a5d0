//! Progress of a long run on the terminal: simulated time, wall time and events per second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thermocline_bus::{ProgressSink, ShardId, SimDuration, SimTime};

/// Counters the window loop updates; read by the display thread.
#[derive(Default)]
pub struct ProgressCounters {
    sim_ns: AtomicU64,
    events: AtomicU64,
}

impl ProgressSink for ProgressCounters {
    fn window_done(&self, _shard: ShardId, reached: SimTime, events: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        if !reached.is_never() {
            self.sim_ns.fetch_max(reached.as_nanos(), Ordering::Relaxed);
        }
    }
}

/// How a run shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing.
    Off,
    /// A bar on the terminal (none if stderr is not one), once the run has taken a second.
    Bar,
    /// A line on stderr at every interval of wall time, terminal or not (batch jobs).
    Lines(Duration),
}

/// Progress as one line: simulated time reached, wall time, the real-time factor, events per
/// second, and the wall time left if the rest runs at the pace so far.
pub fn progress_line(sim_ns: u64, end_ns: u64, wall: Duration, events: u64) -> String {
    let wall_s = wall.as_secs_f64();
    let done = sim_ns.min(end_ns);
    let eta = if done == 0 {
        "eta unknown".to_string()
    } else {
        let left = wall_s * (end_ns - done) as f64 / done as f64;
        format!("eta {}", wall_text(left))
    };
    format!(
        "sim {:.3}/{} ({:.1} %) · wall {:.1} s · {:.2}x real time · {:.2} M ev/s · {eta}",
        done as f64 / 1e9,
        SimDuration::from_nanos(end_ns),
        done as f64 * 100.0 / end_ns.max(1) as f64,
        wall_s,
        if done == 0 { 0.0 } else { wall_s * 1e9 / done as f64 },
        events as f64 / wall_s.max(1e-9) / 1e6
    )
}

/// Seconds of wall time as "42 s", "3 min 5 s" or "2 h 10 min".
fn wall_text(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// A run's progress display: see [`ProgressMode`].
pub struct ProgressDisplay {
    counters: Arc<ProgressCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Start watching a run that ends at simulated time `end`.
    pub fn start(end: SimTime, mode: ProgressMode) -> Self {
        let counters = Arc::new(ProgressCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match mode {
            ProgressMode::Off => None,
            ProgressMode::Bar => {
                let (counters, stop) = (counters.clone(), stop.clone());
                Some(std::thread::spawn(move || show_bar(&counters, &stop, end)))
            }
            ProgressMode::Lines(every) => {
                let (counters, stop) = (counters.clone(), stop.clone());
                Some(std::thread::spawn(move || log_lines(&counters, &stop, end, every)))
            }
        };
        ProgressDisplay { counters, stop, thread }
    }

    /// The sink to hand to the window loop.
    pub fn sink(&self) -> &ProgressCounters {
        &self.counters
    }

    /// Remove the bar.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleep until `until` or until `stop` is set; whether the time came.
fn wait(stop: &AtomicBool, until: Instant) -> bool {
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
    }
    !stop.load(Ordering::Relaxed)
}

fn show_bar(counters: &ProgressCounters, stop: &AtomicBool, end: SimTime) {
    let started = Instant::now();
    if !wait(stop, started + Duration::from_secs(1)) {
        return;
    }
    let bar = ProgressBar::with_draw_target(Some(end.as_nanos()), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{bar:30} {msg}").expect("valid template"));
    while !stop.load(Ordering::Relaxed) {
        let sim = counters.sim_ns.load(Ordering::Relaxed).min(end.as_nanos());
        bar.set_position(sim);
        bar.set_message(progress_line(sim, end.as_nanos(), started.elapsed(), counters.events.load(Ordering::Relaxed)));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn log_lines(counters: &ProgressCounters, stop: &AtomicBool, end: SimTime, every: Duration) {
    let started = Instant::now();
    let mut next = started + every;
    while wait(stop, next) {
        let sim = counters.sim_ns.load(Ordering::Relaxed);
        let line = progress_line(sim, end.as_nanos(), started.elapsed(), counters.events.load(Ordering::Relaxed));
        eprintln!("progress: {line}");
        next += every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_extrapolates_the_pace_so_far() {
        // A quarter of 400 s simulated in 50 s of wall time: 150 s to go.
        let line = progress_line(100_000_000_000, 400_000_000_000, Duration::from_secs(50), 5_000_000);
        assert!(line.starts_with("sim 100.000/400 s (25.0 %) · wall 50.0 s · 0.50x real time"), "{line}");
        assert!(line.ends_with("eta 2 min 30 s"), "{line}");
        assert_eq!(wall_text(7_262.0), "2 h 1 min");
        assert_eq!(wall_text(59.4), "59 s");
        assert!(progress_line(0, 10, Duration::from_secs(1), 0).ends_with("eta unknown"));
    }
}
