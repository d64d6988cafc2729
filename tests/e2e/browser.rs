//! A real WebRTC endpoint: headless Chromium + JsSIP (`shared/peers/browser`) through the
//! WebSocket Kamailio of that peer. Today it proves the harness (browser ↔ browser); the
//! helper at the end is how a test makes the browser call the agent.

use std::path::Path;
use std::time::{Duration, Instant};

use homeagent_testkit::browser::{
    BrowserUa, BrowserUaOpts, CallStats, KamailioWs, KamailioWsOpts, Role, require_browser,
};
use homeagent_testkit::{Mode, TempDir, score_pesq, shared_dir, wav};

/// The first Chromium launch on a cold disk cache took 8.4 s; later ones ~0.2 s.
const REGISTERED: Duration = Duration::from_secs(40);
const ESTABLISHED: Duration = Duration::from_secs(15);
/// Speech sent: the first 9 s of `speech48k.wav`, after the UA's 1.5 s of leading silence.
const SPEECH: Duration = Duration::from_secs(9);
const TALK: Duration = Duration::from_secs(12);
/// Browser ↔ browser scored 3.80–4.12 (median 4.06) in the peer's README; a loose floor.
const BROWSER_PESQ_FLOOR: f64 = 3.0;

#[test]
fn browser_calls_browser_through_kamailio_ws() {
    if !require_browser() {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("browser-e2e").expect("temp dir");
    let speech = dir.join("speech.wav");
    wav::clip(
        &shared_dir().join("audio").join("speech48k.wav"),
        &speech,
        SPEECH,
        Duration::ZERO,
    )
    .expect("clip speech48k.wav");
    let kam = KamailioWs::start(KamailioWsOpts::default()).expect("kamailio-ws starts");

    let mut callee_opts = BrowserUaOpts::new("sip:web1@127.0.0.1", &kam.ws_url(), Role::Answer);
    callee_opts.record = true;
    let mut callee = BrowserUa::start(callee_opts).expect("callee starts");
    callee
        .wait_event("registered", REGISTERED)
        .expect("callee registered");

    let target = Role::Call("sip:web1@127.0.0.1".into());
    let mut caller_opts = BrowserUaOpts::new("sip:web2@127.0.0.1", &kam.ws_url(), target);
    caller_opts.mic = Some(speech.clone());
    caller_opts.duration = Some(TALK);
    caller_opts.sdp = true;
    let mut caller = BrowserUa::start(caller_opts).expect("caller starts");
    caller
        .wait_event("established", REGISTERED + ESTABLISHED)
        .expect("caller established");
    callee
        .wait_event("established", ESTABLISHED)
        .expect("callee established");

    let caller_exit = caller.finish(TALK + WAIT_END).expect("caller exits");
    let callee_exit = callee.finish(WAIT_END).expect("callee exits");
    assert_eq!(caller_exit.code, 0, "caller: {:?}", caller_exit.events);
    assert_eq!(callee_exit.code, 0, "callee: {:?}", callee_exit.events);
    for (side, exit) in [("caller", &caller_exit), ("callee", &callee_exit)] {
        let stats = exit
            .stats()
            .unwrap_or_else(|| panic!("{side}: no stats: {:?}", exit.events));
        assert_secure_opus_flowed(side, &stats);
    }
    let offer = std::fs::read_to_string(caller.sdp_dir().expect("sdp").join("local-offer.sdp"))
        .expect("caller wrote its offer");
    assert!(offer.contains("a=fingerprint:sha-256"), "{offer}");

    let recording = callee.recording().expect("callee records");
    let score = score_pesq(&speech, recording, Mode::Wb).expect("pesq");
    eprintln!(
        "browser -> browser: PESQ-WB {:.2} (lag {:.0} ms), {:.1} s",
        score.pesq,
        score.lag_ms,
        started.elapsed().as_secs_f64()
    );
    assert!(score.pesq >= BROWSER_PESQ_FLOOR, "{:?}", score.json);
}

/// After `--duration` the UA sends BYE, stops Chromium and exits within a few seconds.
const WAIT_END: Duration = Duration::from_secs(20);

/// The call was DTLS-SRTP protected, used Opus, and carried RTP (12 s at 50 packets/s).
fn assert_secure_opus_flowed(side: &str, stats: &CallStats) {
    assert_eq!(
        stats.dtls_state.as_deref(),
        Some("connected"),
        "{side}: {}",
        stats.json
    );
    assert!(
        stats
            .srtp_cipher
            .as_deref()
            .is_some_and(|c| c.starts_with("SRTP_")),
        "{side}: {}",
        stats.json
    );
    assert!(
        stats.codecs.iter().any(|c| c.starts_with("audio/opus/")),
        "{side}: {}",
        stats.json
    );
    assert!(
        stats.packets_received > 300 && stats.packets_sent > 300,
        "{side}: {}",
        stats.json
    );
}

/// How a test makes the browser call the agent: `sip:web1@127.0.0.1` registers at `kam` and
/// calls `sip:agent@127.0.0.1`, sending `mic` (after 1.5 s of silence) and recording what it
/// hears, then hangs up `talk` after the call is established.
///
/// The agent side, for the test to add before calling this: a `homeagent` registered as
/// `agent` at the same Kamailio, over UDP (`--registrar sip:127.0.0.1:{kam.udp_port()}`) or
/// WebSocket (`--ws-url {kam.ws_url()}`), no password (this Kamailio does no auth), answering
/// with ICE + DTLS-SRTP + rtcp-mux (the browser's offer demands them). Then:
///
/// ```ignore
/// let mut browser = browser_calls_agent(&kam, &speech, Duration::from_secs(12));
/// browser.wait_event("established", Duration::from_secs(40))?;
/// let exit = browser.finish(Duration::from_secs(40))?;      // code 0: it hung up itself
/// let stats = exit.stats().expect("stats");                // dtls_state, srtp_cipher, packets
/// let heard = browser.recording().expect("recording");     // what the agent sent, 48 kHz
/// let offer = browser.sdp_dir().expect("sdp").join("local-offer.sdp");
/// ```
#[allow(dead_code)]
pub fn browser_calls_agent(kam: &KamailioWs, mic: &Path, talk: Duration) -> BrowserUa {
    let mut opts = BrowserUaOpts::new(
        "sip:web1@127.0.0.1",
        &kam.ws_url(),
        Role::Call("sip:agent@127.0.0.1".into()),
    );
    opts.mic = Some(mic.to_owned());
    opts.record = true;
    opts.sdp = true;
    opts.duration = Some(talk);
    opts.timeout = talk + Duration::from_secs(60);
    BrowserUa::start(opts).expect("browser starts")
}
