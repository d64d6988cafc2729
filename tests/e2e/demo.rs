//! `homeagent demo` with no configuration: the training customer calls and the call carries
//! audio, all on loopback.

use std::time::Duration;

use crate::common::{Ha, WAIT};

#[test]
fn demo_delivers_training_calls_without_configuration() {
    let ha = Ha::start(
        &[
            "demo",
            "--every",
            "1",
            "--length",
            "2",
            "--audio-in",
            "tone:300",
            "--audio-out",
            "null",
        ],
        &[],
    );
    ha.event("incoming", WAIT);
    let established = ha.event("established", WAIT);
    assert_eq!(established["codec"], "opus");
    let ended = ha.event("ended", WAIT);
    assert!(
        ended["stats"]["packets_received"].as_u64().unwrap_or(0) > 20,
        "{ended}"
    );
    // A second training call follows.
    ha.process
        .wait_event(
            |e| e["event"] == "incoming" && e["call"] == 2,
            Duration::from_secs(10),
        )
        .expect("a second training call");
}
