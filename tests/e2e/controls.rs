//! In-call controls through the API's stdin commands, between two `homeagent` processes.

use std::time::Duration;

use crate::common::{Ha, WAIT, levels};

#[test]
fn mute_sends_silence_and_unmute_brings_the_voice_back() {
    let mut callee = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--audio-in",
            "silence",
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let heard = callee.file("heard.wav");
    let mut caller = Ha::start(
        &[
            "call",
            &callee.uri("agent"),
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "7",
        ],
        &[],
    );
    caller.event("established", WAIT);
    std::thread::sleep(Duration::from_secs(2));
    caller.command(r#"{"command":"mute","call":1,"muted":true}"#);
    let muted = caller.event("muted", WAIT);
    assert_eq!(muted["muted"], true, "{muted}");
    std::thread::sleep(Duration::from_secs(2));
    caller.command(r#"{"command":"mute","call":1,"muted":false}"#);
    caller
        .process
        .wait_event(|e| e["event"] == "muted" && e["muted"] == false, WAIT)
        .expect("unmuted");
    let (code, summary) = caller.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    let (code, summary) = callee.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    // The tone (-12 dBFS), at least a second of near silence, the tone again.
    let levels = levels(&heard);
    let loud = |l: &f64| *l > -25.0;
    let first_loud = levels.iter().position(loud).expect("the tone is heard");
    let quiet_run = levels[first_loud..]
        .iter()
        .position(|l| *l < -45.0)
        .map(|start| first_loud + start)
        .expect("silence while muted");
    let quiet_len = levels[quiet_run..]
        .iter()
        .take_while(|l| **l < -45.0)
        .count();
    assert!(
        quiet_len >= 10,
        "muted for {quiet_len} x 100 ms: {levels:?}"
    );
    assert!(
        levels[quiet_run + quiet_len..]
            .iter()
            .filter(|l| loud(l))
            .count()
            >= 10,
        "the tone comes back after unmute: {levels:?}"
    );
}
