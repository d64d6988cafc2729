//! Real baresip ↔ baresip calls on loopback (no registrar): audio both ways scored with
//! PESQ, DTMF, hold/resume. Skipped with a notice if baresip is not installed.

use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, Codec};
use homeagent_testkit::{TempDir, require, score_pesq, wav};

const WAIT: Duration = Duration::from_secs(10);
const SPEECH: Duration = Duration::from_secs(7);
const CALL: Duration = Duration::from_millis(8500);

fn call_and_score(codec: Codec) {
    if !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let dir = TempDir::new("pesq").expect("temp dir");
    // 7 s of speech then silence: aufile hangs up when its file ends.
    let clip = dir.join("clip.wav");
    wav::clip(&codec.speech_wav(), &clip, SPEECH, Duration::from_secs(60)).expect("clip");
    let reference = dir.join("reference.wav");
    wav::clip(&codec.speech_wav(), &reference, SPEECH, Duration::ZERO).expect("reference");

    let start = |name: &str| {
        Baresip::start(BaresipOpts {
            name: name.into(),
            codec,
            source: Some(clip.clone()),
            ..BaresipOpts::default()
        })
        .expect("baresip starts")
    };
    let alice = start("alice");
    let bob = start("bob");
    alice.dial(&bob.uri()).expect("dial");
    bob.wait_incoming(WAIT).expect("bob sees the call");
    alice.wait_established(WAIT).expect("alice established");
    bob.wait_established(WAIT).expect("bob established");
    bob.wait_rtp(WAIT).expect("bob receives rtp");
    std::thread::sleep(CALL);
    alice.hangup().expect("hangup");
    alice.wait_closed(WAIT).expect("alice closed");
    bob.wait_closed(WAIT).expect("bob closed (BYE received)");

    for (who, peer) in [("bob hears alice", &bob), ("alice hears bob", &alice)] {
        let recording = peer.wait_recording(WAIT).expect("a complete recording");
        let info = wav::info(&recording).expect("recording is a WAV");
        let score = score_pesq(&reference, &recording, codec.pesq_mode()).expect("pesq");
        eprintln!(
            "{codec:?} {who}: PESQ {:.3} ({:?}, lag {} ms, {:.1} s at {} Hz x{})",
            score.pesq,
            codec.pesq_mode(),
            score.lag_ms,
            info.duration.as_secs_f64(),
            info.rate,
            info.channels
        );
        assert_eq!(info.rate, codec.rate());
        assert!(info.duration > SPEECH, "recording too short: {info:?}");
        assert!(
            score.pesq >= 3.0,
            "{who}: PESQ {} below the sanity floor",
            score.pesq
        );
    }
}

#[test]
fn pcmu_call_both_ways_scores_above_floor() {
    call_and_score(Codec::Pcmu);
}

#[test]
fn opus_call_both_ways_scores_above_floor() {
    call_and_score(Codec::Opus);
}

#[test]
fn dtmf_and_hold_are_seen_by_the_peer() {
    if !require(&["baresip", "stdbuf"]) {
        return;
    }
    let alice = Baresip::start(BaresipOpts {
        name: "alice".into(),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("alice starts");
    let bob = Baresip::start(BaresipOpts {
        name: "bob".into(),
        auto_answer: false,
        record: false,
        ..BaresipOpts::default()
    })
    .expect("bob starts");
    alice.dial(&bob.uri()).expect("dial");
    let incoming = bob.wait_incoming(WAIT).expect("bob rings");
    assert!(incoming.contains("Incoming call from"), "{incoming}");
    bob.accept().expect("accept");
    alice.wait_established(WAIT).expect("established");
    bob.wait_rtp(WAIT).expect("rtp");

    alice.send_dtmf("19#*").expect("dtmf");
    bob.wait_log(r"received event: '\*'", WAIT)
        .expect("last digit");
    assert_eq!(bob.received_dtmf(), "19#*");
    assert_eq!(alice.received_dtmf(), "");

    alice.hold().expect("hold");
    let hold = bob.wait_hold_received(WAIT).expect("bob sees hold");
    assert!(hold.text.contains("a=sendonly"), "{}", hold.text);
    alice.resume().expect("resume");
    let resume = bob.wait_resume_received(WAIT).expect("bob sees resume");
    assert!(resume.text.contains("a=sendrecv"), "{}", resume.text);
    // Bob's side of the trace: his answers are outgoing, the re-INVITEs incoming.
    let invites: Vec<_> = bob
        .sip_messages()
        .into_iter()
        .filter(|m| m.incoming && m.method() == Some("INVITE"))
        .collect();
    assert_eq!(invites.len(), 3, "initial INVITE + hold + resume");

    bob.hangup().expect("hangup");
    alice
        .wait_log("session closed: ", WAIT)
        .expect("alice gets BYE");
}
