//! Benchmark: queue 1,000 wrap-ups while the platform is down, bring it up, and time how long
//! the delivery task takes to drain the outbox (each wrap-up posted, stored once, acknowledged).
//!
//! `cargo run -p homeagent-platform --example outbox_drain --release`
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeagent_platform::{HttpPlatform, Outbox, Wrapup, spawn_delivery};
use homeagent_testkit::TempDir;
use homeagent_testkit::platform_server::PlatformServer;

const COUNT: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = TempDir::new("outbox-drain")?;
    let server = PlatformServer::start()?;
    server.set_available(false);
    let outbox = Arc::new(Outbox::open(&dir.join("outbox.sqlite3"))?);
    let platform = Arc::new(HttpPlatform::new(
        &server.base_url(),
        "agent01",
        None,
        Duration::from_secs(5),
    )?);

    let start = Instant::now();
    let mut keys = HashSet::new();
    for i in 0..COUNT {
        let wrapup = Wrapup::new(
            format!("call-{i}@bench"),
            "agent01",
            "sale",
            "benchmark note",
            i as u64,
        );
        outbox.enqueue(&wrapup)?;
        keys.insert(wrapup.key);
    }
    let enqueued = start.elapsed();

    let delivery = spawn_delivery(outbox.clone(), platform);
    // Let it fail against the unavailable platform and start backing off.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.set_available(true);
    let up = Instant::now();
    delivery.kick();
    let mut remaining = delivery.remaining();
    tokio::time::timeout(Duration::from_secs(120), remaining.wait_for(|&n| n == 0)).await??;
    let drained = up.elapsed();

    let stored: HashSet<String> = server
        .wrapups()
        .iter()
        .filter_map(|w| w["key"].as_str().map(str::to_owned))
        .collect();
    if stored != keys || server.wrapups().len() != COUNT {
        return Err(format!(
            "stored {} of {COUNT} (unique {})",
            server.wrapups().len(),
            stored.len()
        )
        .into());
    }
    println!(
        "enqueue: {COUNT} wrap-ups in {:.0} ms ({:.2} ms each, durable)",
        enqueued.as_secs_f64() * 1e3,
        enqueued.as_secs_f64() * 1e3 / COUNT as f64
    );
    println!(
        "drain after the platform came back: {COUNT} delivered, each stored once, in {:.0} ms \
         ({:.0} wrap-ups/s)",
        drained.as_secs_f64() * 1e3,
        COUNT as f64 / drained.as_secs_f64()
    );
    Ok(())
}
