//! The real device path (cpal → PulseAudio) in a call: our microphone is the virtual `vmic`
//! (fed with speech by `paplay`), our speaker the virtual `vspeaker` (recorded by `parec`).
//! Needs the virtual devices of `shared/scripts/virtual-audio.sh` (`.ci/run` starts them).
//! The two call tests are real-time audio measurements: CPU contention from the other tests
//! would skew them (the echo canceller cannot converge when the devices are starved), so they
//! are `#[ignore]`d in the parallel run and `scripts/test-all.sh` runs them afterwards, alone:
//! `cargo test -p homeagent-e2e -- --ignored --test-threads=1`.

use std::process::{Command, Stdio};
use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, Codec};
use homeagent_testkit::{HomeagentProcess, TempDir, require, score_pesq};

use crate::common::{Ha, SOUND_SERVER, WAIT, virtual_devices};

#[test]
fn devices_lists_the_virtual_microphone_and_speaker() {
    if !virtual_devices() {
        return;
    }
    let mut devices =
        HomeagentProcess::spawn(&["devices", "--json"], &[]).expect("homeagent devices");
    let status = devices.wait_exit(WAIT).expect("exits");
    assert!(status.success());
    let names: Vec<String> = devices
        .events()
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        names.iter().any(|n| n == "vspeaker") && names.iter().any(|n| n == "vmic"),
        "{names:?}"
    );
}

#[test]
#[ignore = "real-time audio: run alone, without other load (scripts/test-all.sh does)"]
fn call_through_the_virtual_microphone_and_speaker() {
    if !virtual_devices() || !require(&["baresip", "stdbuf", "python3"]) {
        return;
    }
    let _server = SOUND_SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let codec = Codec::Opus;
    let dir = TempDir::new("devices").expect("temp dir");
    // baresip talks after 3 s: an idle PulseAudio null sink needs about 2 s to start playing a
    // new stream (a real sound card does not), which would cut the start of the speech.
    let padded = dir.join("bob.wav");
    let status = Command::new("sox")
        .arg(codec.speech_wav())
        .arg(&padded)
        .args(["pad", "3", "60"])
        .status()
        .expect("sox");
    assert!(status.success());
    let bob = Baresip::start(BaresipOpts {
        name: "bob".into(),
        codec,
        source: Some(padded),
        ..BaresipOpts::default()
    })
    .expect("baresip");
    // What our speaker plays, as the agent's headset would.
    let heard = dir.join("speaker.wav");
    let mut recorder = Command::new("parec")
        .args([
            "-d",
            "vspeaker.monitor",
            "--file-format=wav",
            "--channels=1",
            "--rate=48000",
            "--format=s16le",
        ])
        .arg(&heard)
        .stderr(Stdio::null())
        .spawn()
        .expect("parec");
    let mut ha = Ha::start(
        &[
            "call",
            &bob.uri(),
            "--codecs",
            "opus",
            "--audio-in",
            "device:vmic",
            "--audio-out",
            "device:vspeaker",
            "--hangup-after",
            "28",
            // The raw device path: both sides talk at once for 21 s with no echo path, where
            // echo suppression would eat the near end (see the echo test below).
            "--echo-cancellation",
            "off",
            "--noise-suppression",
            "off",
            "--gain-control",
            "off",
        ],
        &[],
    );
    ha.event("established", WAIT);
    // The agent speaks into the microphone once the capture stream runs.
    std::thread::sleep(Duration::from_secs(1));
    let mut player = Command::new("paplay")
        .args(["-d", "vmic_src"])
        .arg(codec.speech_wav())
        .spawn()
        .expect("paplay");
    let (code, summary) = ha.finish(Duration::from_secs(45));
    let _ = player.wait();
    let _ = recorder.kill();
    let _ = recorder.wait();
    assert_eq!(code, 0, "{summary}");
    let sent = bob.wait_recording(WAIT).expect("baresip's recording");
    let mic = score_pesq(&codec.speech_wav(), &sent, codec.pesq_mode())
        .expect("pesq of the microphone path");
    let speaker = score_pesq(&codec.speech_wav(), &heard, codec.pesq_mode())
        .expect("pesq of the speaker path");
    eprintln!(
        "device path: microphone → baresip PESQ {:.3}, baresip → speaker PESQ {:.3}",
        mic.pesq, speaker.pesq
    );
    // The device path adds resampling and PulseAudio buffering to the network path (measured
    // 3.9-4.4 each way).
    assert!(
        mic.pesq >= 3.5 && speaker.pesq >= 3.5,
        "microphone {:.2}, speaker {:.2}",
        mic.pesq,
        speaker.pesq
    );
}

/// The agent's speaker leaks into the microphone (a PulseAudio loopback from `vspeaker` into
/// the mic, 60 ms late) while the agent is silent: with echo cancellation the customer hears
/// (almost) nothing back; without it, their own voice.
#[test]
#[ignore = "real-time audio: run alone, without other load (scripts/test-all.sh does)"]
fn echo_from_the_speaker_is_cancelled() {
    if !virtual_devices() || !require(&["baresip", "stdbuf", "sox"]) {
        return;
    }
    let _server = SOUND_SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let loopback = Command::new("pactl")
        .args([
            "load-module",
            "module-loopback",
            "source=vspeaker.monitor",
            "sink=vmic_src",
            "latency_msec=60",
        ])
        .output()
        .expect("pactl");
    assert!(
        loopback.status.success(),
        "{}",
        String::from_utf8_lossy(&loopback.stderr)
    );
    let module = String::from_utf8_lossy(&loopback.stdout).trim().to_owned();
    let echo_energy = |cancellation: &str| -> f64 {
        let bob = Baresip::start(BaresipOpts {
            name: "bob".into(),
            codec: Codec::Opus,
            ..BaresipOpts::default()
        })
        .expect("baresip");
        let mut ha = Ha::start(
            &[
                "call",
                &bob.uri(),
                "--codecs",
                "opus",
                "--audio-in",
                "device:vmic",
                "--audio-out",
                "device:vspeaker",
                "--hangup-after",
                "16",
                "--echo-cancellation",
                cancellation,
            ],
            &[],
        );
        let (code, summary) = ha.finish(Duration::from_secs(40));
        assert_eq!(code, 0, "{summary}");
        let recording = bob.wait_recording(WAIT).expect("baresip's recording");
        // What came back to the customer after 4 s of convergence (and the null sink's start).
        let dir = TempDir::new("echo").expect("temp dir");
        let tail = dir.join("tail.wav");
        let status = Command::new("sox")
            .arg(&recording)
            .arg(&tail)
            .args(["remix", "1", "trim", "4", "10"])
            .status()
            .expect("sox");
        assert!(status.success());
        homeagent_testkit::wav::info(&tail).expect("wav").rms
    };
    let without = echo_energy("off");
    let with = echo_energy("on");
    let _ = Command::new("pactl")
        .args(["unload-module", &module])
        .status();
    let reduction_db = 20.0 * (without.max(1e-9) / with.max(1e-9)).log10();
    eprintln!(
        "echo heard by the customer: {without:.5} RMS without cancellation, {with:.5} with: -{reduction_db:.1} dB"
    );
    assert!(
        without > 0.003,
        "the loopback echo path did not carry the customer's voice back ({without})"
    );
    assert!(
        reduction_db >= 20.0,
        "echo reduced by only {reduction_db:.1} dB"
    );
}
