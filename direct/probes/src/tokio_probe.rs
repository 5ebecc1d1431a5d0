//! A tokio multi-thread runtime under the supervisor: tasks that sleep, message each other over
//! channels, time out, and hand work to the blocking pool. Every line it prints carries the
//! simulated time in milliseconds since start, so a repeatable run prints the same bytes.

use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::time::{sleep, timeout};

fn ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let (tx, mut rx) = mpsc::channel(4);
    for i in 0..4u64 {
        let tx = tx.clone();
        tokio::spawn(async move {
            for k in 0..3 {
                sleep(Duration::from_millis(7 * (i + 1))).await;
                tx.send((i, k, ms(start))).await.expect("receiver alive");
            }
        });
    }
    drop(tx);
    while let Some((i, k, at)) = rx.recv().await {
        println!("task {i} message {k} sent at {at} received at {}", ms(start));
    }

    let (ping_tx, ping_rx) = oneshot::channel();
    let (pong_tx, pong_rx) = oneshot::channel();
    tokio::spawn(async move {
        let n: u32 = ping_rx.await.expect("ping");
        sleep(Duration::from_millis(40)).await;
        pong_tx.send(n + 1).expect("pong");
    });
    ping_tx.send(41).expect("ping");
    println!("pong {} at {}", pong_rx.await.expect("pong"), ms(start));

    let r = timeout(Duration::from_millis(100), std::future::pending::<()>()).await;
    println!("timed out {} at {}", r.is_err(), ms(start));

    let blocking = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(50));
        ms(start)
    });
    println!("blocking pool slept until {} (awaited at {})", blocking.await.expect("join"), ms(start));

    let shared = std::sync::Arc::new((Mutex::new(Vec::new()), Notify::new()));
    let mut handles = Vec::new();
    for i in 0..3u64 {
        let shared = shared.clone();
        handles.push(tokio::spawn(async move {
            shared.1.notified().await;
            sleep(Duration::from_millis(5 * i)).await;
            shared.0.lock().await.push((i, ms(start)));
        }));
    }
    sleep(Duration::from_millis(10)).await;
    shared.1.notify_waiters();
    for h in handles {
        h.await.expect("task");
    }
    let mut log = shared.0.lock().await.clone();
    log.sort();
    println!("notified tasks finished {log:?} end {}", ms(start));
}
