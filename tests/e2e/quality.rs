//! Call quality over an impaired network: two `homeagent` processes in two network
//! namespaces joined by `ha-impair` (3 % random loss on RTP/RTCP, seeded), 10 s of speech,
//! PESQ-WB of what the callee heard against a floor below the bench's figure.

use std::path::Path;
use std::time::Duration;

use homeagent_testkit::impair::lab::{Lab, LabOpts, require_lab};
use homeagent_testkit::impair::{Profile, Side};
use homeagent_testkit::{HomeagentProcess, Mode, TempDir, homeagent_bin, require, score_pesq, wav};

use crate::common::WAIT;

/// `bench/quality_bench.sh` measured ours→ours Opus PESQ-WB 3.70 at 3 % loss (seed 7, 21 s);
/// a real regression (no concealment at all) falls well below this floor.
const LOSS3_PESQ_FLOOR: f64 = 3.2;
const SPEECH: Duration = Duration::from_secs(10);

/// `homeagent ARGS... --bind ADDR:5060 --rtp-ports 20000-20009 --json` inside `side`'s
/// namespace.
fn homeagent_in(lab: &Lab, side: Side, args: &[&str]) -> HomeagentProcess {
    let bin = homeagent_bin().expect("homeagent binary");
    let bind = format!("{}:5060", lab.addr(side));
    let mut all = args.to_vec();
    all.extend(["--bind", &bind, "--rtp-ports", "20000-20009", "--json"]);
    let argv = lab.argv(side, bin.to_str().expect("utf-8 path"), &all);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let ha = HomeagentProcess::spawn_program(Path::new("ip"), &argv, &[]).expect("spawn");
    ha.wait_event(|e| e["event"] == "ready", WAIT)
        .unwrap_or_else(|e| panic!("{side:?} not ready: {e}"));
    ha
}

fn summary(ha: &mut HomeagentProcess, who: &str) -> serde_json::Value {
    let status = ha.wait_exit(Duration::from_secs(60)).expect("exits");
    let events = ha.events();
    let summary = events.iter().rev().find(|e| e["event"] == "summary");
    let summary = summary.unwrap_or_else(|| panic!("{who}: no summary: {events:?}"));
    assert_eq!(status.code(), Some(0), "{who}: {summary}");
    summary.clone()
}

#[test]
fn opus_over_3_percent_loss_keeps_its_pesq() {
    if !require(&["python3", "ip"]) || !require_lab() {
        return;
    }
    let dir = TempDir::new("quality").expect("temp dir");
    let profile = Profile::Loss3;
    let reference = dir.join("speech.wav");
    let callee_source = dir.join("callee.wav");
    let full = homeagent_testkit::shared_dir().join("audio/speech48k.wav");
    wav::clip(&full, &reference, SPEECH, Duration::ZERO).expect("clip");
    wav::clip(&full, &callee_source, SPEECH, Duration::from_secs(60)).expect("clip");
    let mut lab = Lab::start(&LabOpts {
        profile,
        seed: 7,
        max_lifetime: Duration::from_secs(120),
        ..LabOpts::default()
    })
    .expect("lab starts");

    let mut callee = homeagent_in(
        &lab,
        Side::B,
        &[
            "listen",
            "--calls",
            "1",
            "--codecs",
            "opus",
            "--audio-in",
            callee_source.to_str().unwrap(),
            "--audio-out",
            "heard.wav",
            "--hangup-after",
            "60",
        ],
    );
    let uri = format!("sip:agent@{}:5060", lab.addr(Side::B));
    let mut caller = homeagent_in(
        &lab,
        Side::A,
        &[
            "call",
            &uri,
            "--codecs",
            "opus",
            "--audio-in",
            reference.to_str().unwrap(),
            "--audio-out",
            "null",
        ],
    );
    let caller_summary = summary(&mut caller, "caller");
    let callee_summary = summary(&mut callee, "callee");
    let report = lab.stop().expect("relay report");
    eprintln!("caller {caller_summary}\ncallee {callee_summary}");

    // The impairment really applied to the media, both ways, and SIP went through.
    for (name, direction) in [("A->B", &report.a_to_b), ("B->A", &report.b_to_a)] {
        let media = direction.media;
        let loss = media.lost as f64 / media.sent.max(1) as f64;
        assert!(media.sent > 400, "{name}: too few packets: {media:?}");
        assert!(
            (0.01..0.06).contains(&loss),
            "{name}: loss {loss}: {media:?}"
        );
        assert!(direction.passed > 0, "{name}: no SIP passed");
    }
    let received = callee_summary["packets_received"].as_u64().unwrap_or(0);
    assert!(received > 400, "{callee_summary}");
    // The live quality events saw the loss, and FEC repaired some of it.
    let quality: Vec<serde_json::Value> = callee
        .events()
        .into_iter()
        .filter(|e| e["event"] == "quality")
        .collect();
    assert!(!quality.is_empty(), "no quality event in a 10 s call");
    let lossy = quality
        .iter()
        .any(|q| q["loss_percent"].as_f64().is_some_and(|l| l > 0.5));
    assert!(
        lossy,
        "quality events do not show the 3 % loss: {quality:?}"
    );
    let fec: u64 = quality
        .iter()
        .filter_map(|q| q["fec_recovered"].as_u64())
        .sum();
    assert!(fec > 0, "no frame rebuilt from FEC: {quality:?}");
    let mos = callee_summary["mos"].as_f64().unwrap_or(0.0);
    assert!(
        (1.0..4.4).contains(&mos),
        "MOS {mos} for a lossy call: {callee_summary}"
    );

    let heard = callee.dir().join("heard.wav");
    let score = score_pesq(&reference, &heard, Mode::Wb).expect("PESQ");
    eprintln!(
        "ours->ours Opus over {}: PESQ-WB {:.3} (lag {} ms, relay lost {}/{} A->B)",
        profile.name(),
        score.pesq,
        score.lag_ms,
        report.a_to_b.media.lost,
        report.a_to_b.media.sent
    );
    assert!(
        score.pesq >= LOSS3_PESQ_FLOOR,
        "PESQ-WB {:.2} below {LOSS3_PESQ_FLOOR} at 3 % loss",
        score.pesq
    );
}
