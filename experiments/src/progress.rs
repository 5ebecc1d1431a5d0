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

/// A progress bar that appears once a run has taken more than a second.
pub struct ProgressDisplay {
    counters: Arc<ProgressCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Start watching a run that ends at simulated time `end`; hidden when `enabled` is false or
    /// stderr is not a terminal.
    pub fn start(end: SimTime, enabled: bool) -> Self {
        let counters = Arc::new(ProgressCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let (counters, stop) = (counters.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(1) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let bar = ProgressBar::with_draw_target(Some(end.as_nanos()), ProgressDrawTarget::stderr());
                bar.set_style(ProgressStyle::with_template("{bar:30} {msg}").expect("valid template"));
                while !stop.load(Ordering::Relaxed) {
                    let sim = counters.sim_ns.load(Ordering::Relaxed).min(end.as_nanos());
                    let events = counters.events.load(Ordering::Relaxed);
                    let wall = started.elapsed().as_secs_f64();
                    bar.set_position(sim);
                    bar.set_message(format!(
                        "sim {:.3}/{} · wall {:.1} s · {:.2} M ev/s",
                        sim as f64 / 1e9,
                        SimDuration::from_nanos(end.as_nanos()),
                        wall,
                        events as f64 / wall / 1e6
                    ));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
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
