//! Calls with linphonec (liblinphone 5.1).

use homeagent_testkit::peers::linphonec::log;
use homeagent_testkit::{Linphonec, require};

use crate::common::{Ha, WAIT};

#[test]
fn we_call_linphonec() {
    if !require(&["linphonec", "stdbuf"]) {
        return;
    }
    let linphone = Linphonec::start(0, true).expect("linphonec starts");
    let target = format!("sip:linphone@127.0.0.1:{}", linphone.sip_port());
    let mut ha = Ha::start(
        &[
            "call",
            &target,
            "--codecs",
            "pcmu,opus",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "4",
        ],
        &[],
    );
    ha.event("established", WAIT);
    linphone
        .wait_log(log::CONNECTED, WAIT)
        .expect("linphonec connected");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["codec"], "pcmu");
    // linphonec sends RTP only when it finds a sound card; we always send ours.
    assert!(
        summary["packets_sent"].as_u64().unwrap_or(0) > 100,
        "{summary}"
    );
    linphone
        .wait_log(log::MEDIA, WAIT)
        .expect("linphonec set up its media towards us");
    linphone
        .wait_log(log::ENDED, WAIT)
        .expect("linphonec sees the end");
}
