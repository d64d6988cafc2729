//! Delivering the outbox: retries with backoff while the platform is down, refusals kept aside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use homeagent_platform::{
    HttpPlatform, Outbox, PlatformError, Wrapup, deliver_pending, spawn_delivery,
};
use homeagent_testkit::TempDir;
use homeagent_testkit::platform_server::PlatformServer;

fn platform(server: &PlatformServer) -> Arc<HttpPlatform> {
    let platform = HttpPlatform::new(&server.base_url(), "agent01", None, Duration::from_secs(5))
        .expect("the test server's URL is valid");
    Arc::new(platform)
}

fn wrapups(count: usize) -> Vec<Wrapup> {
    (0..count)
        .map(|i| Wrapup::new(format!("call-{i}"), "agent01", "sale", "", 1_000 + i as u64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_then_up_delivers_each_exactly_once_with_backoff() {
    let dir = TempDir::new("platform-backoff").expect("temp dir");
    let outbox = Arc::new(Outbox::open(&dir.join("outbox.sqlite3")).expect("outbox"));
    let server = PlatformServer::start().expect("server starts");
    server.set_available(false);
    let sent = wrapups(3);
    for wrapup in &sent {
        outbox.enqueue(wrapup).expect("enqueue");
    }

    // Default backoff: attempts at about 0 s, 0.5 s, then 1.5 s.
    let delivery = spawn_delivery(outbox.clone(), platform(&server));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        server.receipts(&sent[0].key),
        2,
        "two attempts in 1.2 s, not a busy loop"
    );
    assert!(server.wrapups().is_empty());
    let (attempts, last_error) = outbox
        .attempts(&sent[0].key)
        .expect("attempts")
        .expect("pending");
    assert_eq!(attempts, 2);
    assert!(last_error.is_some_and(|e| e.contains("503")));

    server.set_available(true);
    let up = Instant::now();
    let mut remaining = delivery.remaining();
    tokio::time::timeout(
        Duration::from_secs(5),
        remaining.wait_for(|&n| n == 0 && server.wrapups().len() == 3),
    )
    .await
    .expect("delivered within the next backoff step")
    .expect("delivery task alive");
    assert!(
        up.elapsed() >= Duration::from_millis(150),
        "waited for the backoff step: {:?}",
        up.elapsed()
    );

    let stored: Vec<String> = server
        .wrapups()
        .iter()
        .filter_map(|w| w["key"].as_str().map(str::to_owned))
        .collect();
    let keys: Vec<String> = sent.iter().map(|w| w.key.clone()).collect();
    assert_eq!(stored, keys, "all stored once, in order");
    assert_eq!(server.receipts(&sent[0].key), 3);
    assert_eq!(server.receipts(&sent[1].key), 1);
    assert_eq!(outbox.pending_count().expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_delivers_a_new_wrapup_at_once() {
    let dir = TempDir::new("platform-kick").expect("temp dir");
    let outbox = Arc::new(Outbox::open(&dir.join("outbox.sqlite3")).expect("outbox"));
    let server = PlatformServer::start().expect("server starts");
    let delivery = spawn_delivery(outbox.clone(), platform(&server));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let wrapup = Wrapup::new("call-k", "agent01", "sale", "", 7);
    outbox.enqueue(&wrapup).expect("enqueue");
    delivery.kick();
    let start = Instant::now();
    while server.wrapups().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not delivered after a kick"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.receipts(&wrapup.key), 1);

    // Once the handle is dropped, nothing is delivered any more.
    drop(delivery);
    let late = Wrapup::new("call-l", "agent01", "sale", "", 8);
    outbox.enqueue(&late).expect("enqueue");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.receipts(&late.key), 0);
}

#[tokio::test]
async fn a_refused_wrapup_is_kept_aside_and_not_retried() {
    let dir = TempDir::new("platform-rejected").expect("temp dir");
    let outbox = Outbox::open(&dir.join("outbox.sqlite3")).expect("outbox");
    let server = PlatformServer::start().expect("server starts");
    let platform = platform(&server);
    // The test server refuses an empty disposition with 422.
    let refused = Wrapup::new("call-r", "agent01", "", "", 1);
    let good = Wrapup::new("call-g", "agent01", "sale", "", 2);
    outbox.enqueue(&refused).expect("enqueue");
    outbox.enqueue(&good).expect("enqueue");

    let delivered = deliver_pending(&outbox, &platform)
        .await
        .expect("outbox works");
    assert_eq!(
        (delivered.created, delivered.rejected, delivered.remaining),
        (1, 1, 0)
    );
    assert!(delivered.stopped_by.is_none());
    let again = deliver_pending(&outbox, &platform)
        .await
        .expect("outbox works");
    assert_eq!((again.created, again.rejected), (0, 0));

    assert_eq!(server.receipts(&refused.key), 1, "not retried");
    let rejected = outbox.rejected().expect("rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!((&rejected[0].wrapup, rejected[0].status), (&refused, 422));
}

#[tokio::test]
async fn a_refused_token_keeps_wrapups_pending() {
    let dir = TempDir::new("platform-token").expect("temp dir");
    let outbox = Outbox::open(&dir.join("outbox.sqlite3")).expect("outbox");
    let server = PlatformServer::start().expect("server starts");
    server.require_token("expected");
    let wrapup = Wrapup::new("call-t", "agent01", "sale", "", 1);
    outbox.enqueue(&wrapup).expect("enqueue");

    let delivered = deliver_pending(&outbox, &platform(&server))
        .await
        .expect("outbox works");
    assert!(matches!(
        delivered.stopped_by,
        Some(PlatformError::Unauthorized { status: 401 })
    ));
    assert_eq!(delivered.remaining, 1);
    assert!(outbox.rejected().expect("rejected").is_empty());
}
