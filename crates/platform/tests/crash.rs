//! Crash safety: a process that queued wrap-ups and was delivering them is killed (`SIGKILL`)
//! mid-way; after a restart, every queued wrap-up reaches the platform and is stored once.
//!
//! The child is this test binary re-executed on the ignored test [`crash_child`].

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use homeagent_platform::{HttpPlatform, Outbox, Wrapup, deliver_pending, spawn_delivery};
use homeagent_testkit::TempDir;
use homeagent_testkit::platform_server::PlatformServer;

const WRAPUPS: usize = 20;
const OUTBOX_VAR: &str = "HOMEAGENT_CRASH_OUTBOX";
const URL_VAR: &str = "HOMEAGENT_CRASH_URL";

#[test]
fn killed_mid_delivery_then_restarted_stores_each_wrapup_exactly_once() {
    let dir = TempDir::new("platform-crash").expect("temp dir");
    let outbox_path = dir.join("outbox.sqlite3");
    let server = PlatformServer::start().expect("server starts");
    // Each wrap-up is stored at once but answered late, so the kill lands between the
    // platform storing one and the child acknowledging it.
    server.set_delay(Duration::from_millis(300));

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OUTBOX_VAR, &outbox_path)
        .env(URL_VAR, server.base_url())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run this test binary");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, announced) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness may print `test crash_child ... ` before the first line.
            if let Some((_, key)) = line.split_once("enqueued ") {
                let _ = lines.send(key.to_owned());
            }
        }
    });

    let start = Instant::now();
    while server.wrapups().len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child delivered nothing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let stored_before_kill = server.wrapups().len();
    // The reader ends at the killed child's end of output.
    let keys: HashSet<String> = announced.iter().collect();
    assert_eq!(
        keys.len(),
        WRAPUPS,
        "the child announced every durable enqueue"
    );
    assert!(
        stored_before_kill < WRAPUPS,
        "killed mid-way, not after the end"
    );

    // Restart: reopen the outbox and deliver what is left.
    server.set_delay(Duration::ZERO);
    let outbox = Outbox::open(&outbox_path).expect("reopen the outbox after a crash");
    let pending = outbox.pending().expect("pending");
    assert!(
        pending.len() >= WRAPUPS - stored_before_kill,
        "nothing acknowledged early"
    );
    let platform = HttpPlatform::new(&server.base_url(), "agent01", None, Duration::from_secs(5))
        .expect("valid URL");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let delivered = runtime
        .block_on(deliver_pending(&outbox, &platform))
        .expect("outbox works");
    assert!(delivered.stopped_by.is_none(), "{:?}", delivered.stopped_by);
    assert_eq!(delivered.remaining, 0);
    assert!(
        delivered.duplicates >= 1,
        "the wrap-up in flight at the kill is answered duplicate"
    );

    let stored = server.wrapups();
    let stored_keys: Vec<&str> = stored.iter().filter_map(|w| w["key"].as_str()).collect();
    let unique: HashSet<String> = stored_keys.iter().map(|&k| k.to_owned()).collect();
    assert_eq!(stored_keys.len(), WRAPUPS, "one stored copy each");
    assert_eq!(unique, keys, "none missing, none foreign");
    let receipts: usize = keys.iter().map(|key| server.receipts(key)).sum();
    assert!(
        receipts > WRAPUPS,
        "some were posted twice ({receipts}) yet stored once"
    );
}

/// The child of the test above: queues the wrap-ups, announces each once durable, delivers,
/// and waits to be killed.
#[test]
#[ignore = "run as a child process by the crash-safety test"]
fn crash_child() {
    let (Some(path), Some(url)) = (std::env::var_os(OUTBOX_VAR), std::env::var(URL_VAR).ok())
    else {
        panic!("{OUTBOX_VAR} and {URL_VAR} must be set");
    };
    let outbox = Arc::new(Outbox::open(path.as_ref()).expect("outbox"));
    let mut stdout = std::io::stdout();
    for i in 0..WRAPUPS {
        let wrapup = Wrapup::new(
            format!("call-{i}"),
            "agent01",
            "sale",
            "crash test",
            i as u64,
        );
        outbox.enqueue(&wrapup).expect("enqueue");
        writeln!(stdout, "enqueued {}", wrapup.key).expect("stdout");
    }
    stdout.flush().expect("stdout");
    let platform = HttpPlatform::new(&url, "agent01", None, Duration::from_secs(5)).expect("URL");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let _delivery = spawn_delivery(outbox, Arc::new(platform));
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    panic!("not killed within 60 s");
}
