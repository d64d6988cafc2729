//! Calls with baresip 1.0, both ways, PCMU and Opus, audio scored with PESQ each way; DTMF;
//! hold and resume seen by the other side.

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, Codec};
use homeagent_testkit::{require, score_pesq, wav};

use crate::common::{Ha, PESQ_FLOOR, SPEECH_CALL, WAIT, assert_media_flowed};

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "pcmu",
        Codec::Opus => "opus",
    }
}

fn baresip(name: &str, codec: Codec, auto_answer: bool) -> Baresip {
    Baresip::start(BaresipOpts {
        name: name.into(),
        codec,
        auto_answer,
        ..BaresipOpts::default()
    })
    .expect("baresip starts")
}

/// Scores `recording` against the speech the other side played; returns the PESQ.
fn score(codec: Codec, recording: &std::path::Path, who: &str) -> f64 {
    let score = score_pesq(&codec.speech_wav(), recording, codec.pesq_mode())
        .unwrap_or_else(|e| panic!("{who}: {e}"));
    eprintln!(
        "{codec:?} {who}: PESQ {:.3} (lag {} ms)",
        score.pesq, score.lag_ms
    );
    score.pesq
}

/// We call baresip, both play the 21 s speech; we hang up when our file ends.
fn we_call_baresip(codec: Codec) {
    if !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let bob = baresip("bob", codec, true);
    let speech = codec.speech_wav();
    let mut ha = Ha::start(
        &[
            "call",
            &bob.uri(),
            "--codecs",
            codec_name(codec),
            "--audio-in",
            speech.to_str().unwrap(),
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let heard = ha.file("heard.wav");
    let (code, summary) = ha.finish(SPEECH_CALL);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, codec_name(codec));
    bob.wait_closed(WAIT).expect("baresip gets our BYE");
    // The recording is clocked like a sound card: as long as the call.
    let info = wav::info(&heard).expect("our recording is a WAV");
    let duration = summary["duration_s"].as_f64().unwrap();
    assert!(
        (info.duration.as_secs_f64() - duration).abs() < 0.5,
        "recording {:?} vs call {duration} s",
        info.duration
    );
    let ours = score(codec, &heard, "we hear baresip");
    let recording = bob.wait_recording(WAIT).expect("baresip's recording");
    let theirs = score(codec, &recording, "baresip hears us");
    assert!(
        ours >= PESQ_FLOOR && theirs >= PESQ_FLOOR,
        "PESQ {ours:.2} / {theirs:.2} below {PESQ_FLOOR}"
    );
}

/// baresip calls us (auto answer); we hang up when our file ends.
fn baresip_calls_us(codec: Codec) {
    if !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let alice = baresip("alice", codec, true);
    let speech = codec.speech_wav();
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--codecs",
            codec_name(codec),
            "--audio-in",
            speech.to_str().unwrap(),
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    alice.dial(&ha.uri("agent")).expect("dial");
    let answered = ha.event("answered", WAIT);
    assert_eq!(answered["auto"], true);
    ha.event("established", WAIT);
    let heard = ha.file("heard.wav");
    let (code, summary) = ha.finish(SPEECH_CALL);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, codec_name(codec));
    alice.wait_closed(WAIT).expect("baresip gets our BYE");
    let ours = score(codec, &heard, "we hear baresip");
    let recording = alice.wait_recording(WAIT).expect("baresip's recording");
    let theirs = score(codec, &recording, "baresip hears us");
    assert!(
        ours >= PESQ_FLOOR && theirs >= PESQ_FLOOR,
        "PESQ {ours:.2} / {theirs:.2} below {PESQ_FLOOR}"
    );
}

#[test]
fn we_call_baresip_pcmu() {
    we_call_baresip(Codec::Pcmu);
}

#[test]
fn we_call_baresip_opus() {
    we_call_baresip(Codec::Opus);
}

#[test]
fn baresip_calls_us_pcmu() {
    baresip_calls_us(Codec::Pcmu);
}

#[test]
fn baresip_calls_us_opus() {
    baresip_calls_us(Codec::Opus);
}

#[test]
fn dtmf_reaches_baresip_as_the_right_digits() {
    if !require(&["baresip", "stdbuf"]) {
        return;
    }
    let bob = Baresip::start(BaresipOpts {
        name: "bob".into(),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("baresip");
    let mut ha = Ha::start(
        &[
            "call",
            &bob.uri(),
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--dtmf",
            "159#*0",
            "--hangup-after",
            "5",
        ],
        &[],
    );
    let sent = ha.event("dtmf_sent", WAIT);
    assert_eq!(sent["digits"], "159#*0");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    bob.wait_log(r"received event: '0' \(end=1\)", WAIT)
        .expect("last digit");
    assert_eq!(bob.received_dtmf(), "159#*0");
}

#[test]
fn dtmf_from_baresip_is_reported() {
    if !require(&["baresip", "stdbuf"]) {
        return;
    }
    let alice = Baresip::start(BaresipOpts {
        name: "alice".into(),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("baresip");
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    alice.dial(&ha.uri("agent")).expect("dial");
    ha.event("established", WAIT);
    alice.wait_rtp(WAIT).expect("rtp both ways");
    alice.send_dtmf("42#").expect("dtmf");
    ha.process
        .wait_event(|e| e["event"] == "dtmf" && e["digit"] == "#", WAIT)
        .expect("the last digit");
    let digits: String = ha
        .process
        .events()
        .iter()
        .filter(|e| e["event"] == "dtmf")
        .filter_map(|e| e["digit"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(digits, "42#");
    alice.hangup().expect("hangup");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
}

#[test]
fn hold_and_resume_both_ways_with_baresip() {
    if !require(&["baresip", "stdbuf"]) {
        return;
    }
    let bob = Baresip::start(BaresipOpts {
        name: "bob".into(),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("baresip");
    let mut ha = Ha::start(
        &[
            "call",
            &bob.uri(),
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
        ],
        &[],
    );
    ha.event("established", WAIT);
    bob.wait_rtp(WAIT).expect("rtp");
    // We hold: baresip receives a sendonly re-INVITE, then sendrecv.
    ha.command(r#"{"command":"hold","call":1}"#);
    let hold = bob.wait_hold_received(WAIT).expect("baresip sees our hold");
    assert!(hold.text.contains("a=sendonly"), "{}", hold.text);
    ha.command(r#"{"command":"resume","call":1}"#);
    let resume = bob
        .wait_resume_received(WAIT)
        .expect("baresip sees our resume");
    assert!(resume.text.contains("a=sendrecv"), "{}", resume.text);
    // baresip holds us: we report it.
    bob.hold().expect("baresip hold");
    let held = ha
        .process
        .wait_event(|e| e["event"] == "hold" && e["local"] == false, WAIT)
        .expect("hold event");
    assert_eq!(held["call"], 1);
    bob.resume().expect("baresip resume");
    ha.process
        .wait_event(|e| e["event"] == "resume" && e["local"] == false, WAIT)
        .expect("resume event");
    ha.command(r#"{"command":"hangup","call":1}"#);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    bob.wait_closed(WAIT).expect("baresip gets the BYE");
}

#[test]
fn busy_callee_gives_exit_status_3() {
    let callee = Ha::start(
        &[
            "listen",
            "--answer",
            "reject",
            "--calls",
            "1",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let uri = callee.uri("agent");
    let mut caller = Ha::start(
        &["call", &uri, "--audio-in", "silence", "--audio-out", "null"],
        &[],
    );
    let (code, summary) = caller.finish(WAIT);
    assert_eq!(code, 3, "{summary}");
    assert_eq!(summary["reason"], "busy");
}

#[test]
fn unanswered_call_gives_exit_status_4() {
    let callee = Ha::start(
        &[
            "listen",
            "--answer",
            "manual",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let uri = callee.uri("agent");
    let mut caller = Ha::start(
        &[
            "call",
            &uri,
            "--timeout",
            "2",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    callee.event("incoming", WAIT);
    let (code, summary) = caller.finish(WAIT);
    assert_eq!(code, 4, "{summary}");
    assert_eq!(summary["reason"], "timeout");
    let ended = callee.event("ended", WAIT);
    assert_eq!(ended["reason"], "remote_cancelled");
}

/// PCMA (baresip here offers only PCMU/Opus): two homeagents, the WAV each way scored.
#[test]
fn pcma_between_two_homeagents() {
    if !require(&["python3"]) {
        return;
    }
    let speech = Codec::Pcmu.speech_wav();
    let speech = speech.to_str().unwrap();
    let mut callee = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--codecs",
            "pcma",
            "--audio-in",
            speech,
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let uri = callee.uri("agent");
    let mut caller = Ha::start(
        &[
            "call",
            &uri,
            "--codecs",
            "pcma,pcmu",
            "--audio-in",
            speech,
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let (code, summary) = caller.finish(SPEECH_CALL);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcma");
    let (code, _) = callee.finish(WAIT);
    assert_eq!(code, 0);
    for (who, ha) in [
        ("PCMA: caller hears callee", &caller),
        ("PCMA: callee hears caller", &callee),
    ] {
        let pesq = score(Codec::Pcmu, &ha.file("heard.wav"), who);
        assert!(pesq >= PESQ_FLOOR, "{who}: PESQ {pesq:.2}");
    }
}
