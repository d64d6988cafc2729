//! SRTP with SDES keys (RFC 4568) against baresip 1.0's `srtp` media encryption, both ways:
//! the call is encrypted (the established event names the suite, a capture of the RTP ports
//! shows only random-looking payloads), the audio is scored, and a mandatory policy refuses a
//! plain peer with 488.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, Codec};
use homeagent_testkit::{TempDir, require, score_pesq, wav};

use crate::common::{Ha, PESQ_FLOOR, SPEECH_CALL, WAIT, assert_media_flowed};

/// The speech played each way (shorter than the 21 s reference: two calls per test).
const SPEECH: Duration = Duration::from_secs(8);

fn srtp_baresip(name: &str, mediaenc: Option<&str>) -> Baresip {
    Baresip::start(BaresipOpts {
        name: name.into(),
        codec: Codec::Pcmu,
        mediaenc: mediaenc.map(str::to_owned),
        ..BaresipOpts::default()
    })
    .expect("baresip starts")
}

/// A clip of the PCMU reference speech, `SPEECH` long then silence.
fn speech_clip(dir: &Path) -> std::path::PathBuf {
    let clip = dir.join("speech.wav");
    wav::clip(
        &Codec::Pcmu.speech_wav(),
        &clip,
        SPEECH,
        Duration::from_millis(500),
    )
    .expect("speech clip");
    clip
}

/// tshark capturing UDP on loopback for `ports` (a BPF port range) into a pcap.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(dir: &Path, ports: &str) -> Capture {
        let file = dir.join("rtp.pcap");
        let child = Command::new("tshark")
            .args(["-i", "lo", "-q", "-f"])
            .arg(format!("udp and portrange {ports}"))
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tshark starts");
        // tshark needs a moment before it captures.
        std::thread::sleep(Duration::from_secs(2));
        Capture { child, file }
    }

    /// Stops and returns the captured UDP payloads.
    fn payloads(mut self) -> Vec<Vec<u8>> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let output = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-T", "fields", "-e", "udp.payload"])
            .output()
            .expect("tshark reads the capture");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|hex| {
                let hex = hex.trim();
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .filter(|payload| !payload.is_empty())
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shannon entropy (bits per byte) of the RTP payloads (after the 12-byte header) of the
/// packets that look like RTP (version 2, not RTCP). Encrypted audio is close to 8; clear
/// PCMU speech and silence are far below (measured: 5.5 for a plain call, 8.0 with SRTP).
fn rtp_payload_entropy(packets: &[Vec<u8>]) -> (f64, usize) {
    let mut counts = [0u64; 256];
    let mut total = 0u64;
    let mut rtp = 0;
    for packet in packets {
        let is_rtp = packet.first().is_some_and(|b| b >> 6 == 2)
            // RTCP packet types are 192..=223 (RFC 5761).
            && !packet.get(1).is_some_and(|pt| (192..=223).contains(pt))
            && packet.len() > 12 + 10;
        if !is_rtp {
            continue;
        }
        rtp += 1;
        // Without the auth tag (10 bytes for the 80-bit suites, 16 for GCM): payload only.
        for byte in &packet[12..packet.len() - 10] {
            counts[usize::from(*byte)] += 1;
            total += 1;
        }
    }
    let entropy = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / total as f64;
            -p * p.log2()
        })
        .sum();
    (entropy, rtp)
}

/// Once `peer` got our BYE: what we heard and what it heard both score at least PESQ_FLOOR
/// against `speech` (both sides played it).
fn assert_heard_both_ways(peer: &Baresip, heard: &Path, speech: &Path) {
    peer.wait_closed(WAIT).expect("baresip gets our BYE");
    let ours = score(heard, speech, "we hear baresip");
    let recording = peer.wait_recording(WAIT).expect("baresip's recording");
    let theirs = score(&recording, speech, "baresip hears us");
    assert!(
        ours >= PESQ_FLOOR && theirs >= PESQ_FLOOR,
        "PESQ {ours:.2} / {theirs:.2} below {PESQ_FLOOR}"
    );
}

fn score(recording: &Path, reference: &Path, who: &str) -> f64 {
    let score = score_pesq(reference, recording, Codec::Pcmu.pesq_mode())
        .unwrap_or_else(|e| panic!("{who}: {e}"));
    eprintln!("SRTP {who}: PESQ {:.3}", score.pesq);
    score.pesq
}

/// baresip (`mediaenc=srtp-mand`: RTP/SAVP) calls us with SRTP mandatory; we play speech,
/// it plays speech; a capture of our RTP ports sees no clear payload.
#[test]
fn baresip_calls_us_over_srtp_and_the_wire_shows_no_clear_audio() {
    if !require(&["baresip", "stdbuf", "python3", "tshark"]) {
        return;
    }
    let dir = TempDir::new("srtp-in").expect("temp dir");
    let speech = speech_clip(dir.path());
    let alice = srtp_baresip("alice", Some("srtp-mand"));
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--srtp",
            "mandatory",
            "--codecs",
            "pcmu",
            "--audio-in",
            speech.to_str().unwrap_or_default(),
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let capture = Capture::start(dir.path(), &format!("{}-{}", ha.port + 2, ha.port + 9));
    alice.dial(&ha.uri("agent")).expect("dial");
    let established = ha.event("established", WAIT);
    let suite = established["srtp"].as_str().unwrap_or_default().to_owned();
    assert!(
        suite.starts_with("AES_CM_128_HMAC_SHA1") || suite.starts_with("AEAD"),
        "{established}"
    );
    let heard = ha.file("heard.wav");
    let (code, summary) = ha.finish(SPEECH_CALL);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    assert_eq!(
        summary["media_encryption"],
        format!("srtp {suite}"),
        "{summary}"
    );
    let (entropy, packets) = rtp_payload_entropy(&capture.payloads());
    eprintln!("SRTP capture: {packets} RTP packets, payload entropy {entropy:.3} bits/byte");
    assert!(packets > 100, "the capture saw the call: {packets}");
    assert!(
        entropy > 7.8,
        "payloads look like clear audio: {entropy:.3} bits/byte"
    );
    assert_heard_both_ways(&alice, &heard, &speech);
}

/// We call baresip (`mediaenc=srtp`: best-effort SDES) with SRTP preferred: SRTP both ways.
#[test]
fn we_call_baresip_over_srtp() {
    if !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let dir = TempDir::new("srtp-out").expect("temp dir");
    let speech = speech_clip(dir.path());
    let bob = srtp_baresip("bob", Some("srtp"));
    let mut ha = Ha::start(
        &[
            "call",
            &bob.uri(),
            "--srtp",
            "preferred",
            "--codecs",
            "pcmu",
            "--audio-in",
            speech.to_str().unwrap_or_default(),
            "--audio-out",
            "heard.wav",
        ],
        &[],
    );
    let established = ha.event("established", WAIT);
    assert!(established["srtp"].is_string(), "{established}");
    let heard = ha.file("heard.wav");
    let (code, summary) = ha.finish(SPEECH_CALL);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    assert_heard_both_ways(&bob, &heard, &speech);
}

/// SRTP mandatory against a peer without SRTP: its plain offer gets 488, and our RTP/SAVP
/// offer to it does not become a call.
#[test]
fn mandatory_srtp_refuses_a_plain_peer_both_ways() {
    if !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let plain = srtp_baresip("plain", None);
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--srtp",
            "mandatory",
            "--codecs",
            "pcmu",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    plain.dial(&ha.uri("agent")).expect("dial");
    plain
        .wait_log("488", WAIT)
        .expect("baresip is refused with 488");
    let (_, summary) = ha.finish(WAIT);
    assert!(
        summary["calls"][0]["code"] == 488 || summary["reason"].is_string(),
        "{summary}"
    );
    assert!(
        ha.process
            .events()
            .iter()
            .all(|e| e["event"] != "established"),
        "no call was established"
    );

    let mut ha = Ha::start(
        &[
            "call",
            &plain.uri(),
            "--srtp",
            "mandatory",
            "--codecs",
            "pcmu",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let (code, summary) = ha.finish(WAIT);
    assert_ne!(code, 0, "{summary}");
    assert!(
        ha.process
            .events()
            .iter()
            .all(|e| e["event"] != "established"),
        "no call was established: {summary}"
    );
}
