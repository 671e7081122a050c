//! Post throughput through the Rust SDK, for `tigerbench sdk`: CONNS clients
//! with IN_FLIGHT posts each in flight (every post waits for its seq), for
//! WARMUP then SECONDS; prints one JSON line: posts acknowledged in the
//! measured window, per second, latency percentiles, errors.
//!
//!     throughput URL TOKEN ROOM CONNS IN_FLIGHT WARMUP_S SECONDS
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tigerchat::{Client, Options};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 8 {
        eprintln!("usage: throughput URL TOKEN ROOM CONNS IN_FLIGHT WARMUP_S SECONDS");
        std::process::exit(2);
    }
    let (url, token, room) = (a[1].clone(), a[2].clone(), a[3].clone());
    let n = |i: usize| a[i].parse::<u64>().expect("a number");
    let (conns, in_flight, warmup, seconds) = (n(4), n(5), n(6), n(7));
    assert!((1..=512).contains(&conns) && (1..=64).contains(&in_flight) && seconds >= 1 && seconds <= 120 && warmup <= 60);
    let start = Instant::now();
    let from = start + Duration::from_secs(warmup);
    let till = from + Duration::from_secs(seconds);
    let lat: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new())); // microseconds, measured window only
    let errors = Arc::new(AtomicU64::new(0));
    let body = "x".repeat(256);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let mut o = Options::new(url.clone()).token(token.clone());
        o.post_frames_in_flight = 4;
        let client = Client::connect(o).await.expect("connect");
        for w in 0..in_flight {
            let (client, room, body, lat, errors) = (client.clone(), room.clone(), body.clone(), lat.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= till {
                        break;
                    }
                    i += 1;
                    let key = format!("rs-{c}-{w}-{i}");
                    match client.post(&room, &body, Some(&key), 0).await {
                        Ok(_) => {
                            let done = Instant::now();
                            if done >= from && done < till { // as the Go loop: acks that land in the window
                                mine.push(done.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut l = lat.lock().unwrap().clone();
    l.sort_unstable();
    let q = |p: f64| if l.is_empty() { 0.0 } else { l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0 };
    println!(
        "{{\"posts\":{},\"seconds\":{},\"posts_per_second\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{}}}",
        l.len(),
        seconds,
        l.len() as f64 / seconds as f64,
        q(0.50),
        q(0.99),
        errors.load(Relaxed)
    );
    std::process::exit(0);
}
