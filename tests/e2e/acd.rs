//! The contact-center workflow through the CLI contract: sipp plays the ACD, a real HTTP CRM
//! (`CrmServer`) answers the context lookups, a real HTTP platform (`PlatformServer`,
//! `docs/platform-api.yaml`) takes the agent's state and the wrap-ups.

use std::time::{Duration, Instant};

use homeagent_testkit::crm_server::{CrmMode, CrmServer};
use homeagent_testkit::platform_server::PlatformServer;
use homeagent_testkit::{Sipp, TempDir, require, scenario};

use crate::common::{Ha, WAIT};

/// The CRM's customer.
fn customer() -> serde_json::Value {
    serde_json::json!({"name": "Jeanne Martin", "tier": "gold", "open_tickets": 2})
}

/// The time between sipp sending the INVITE and receiving the 200, from its message trace
/// (`----- 2026-11-26 20:40:01.123456` headers before each message).
fn invite_to_200(messages: &str) -> Option<Duration> {
    let mut stamp = None;
    let mut sent_invite = None;
    for line in messages.lines() {
        if line.starts_with("-----") {
            let time = line.split_whitespace().last()?;
            let mut parts = time.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            let seconds = h.parse::<f64>().ok()? * 3600.0
                + m.parse::<f64>().ok()? * 60.0
                + s.parse::<f64>().ok()?;
            stamp = Some(seconds);
            continue;
        }
        if line.starts_with("INVITE ") && sent_invite.is_none() {
            sent_invite = stamp;
        }
        if line.starts_with("SIP/2.0 200") && sent_invite.is_some() {
            let (from, to) = (sent_invite?, stamp?);
            return Some(Duration::from_secs_f64((to - from).max(0.0)));
        }
    }
    None
}

#[test]
fn the_platforms_call_answers_itself_and_the_customer_card_follows() {
    if !require(&["sipp"]) {
        return;
    }
    let crm = CrmServer::start().expect("CRM server");
    crm.set_mode(CrmMode::Ok(customer()));
    let template = format!(
        "{}/customers?from={{from}}&id={{header:X-Customer-Id}}",
        crm.base_url()
    );
    let ha = listen(&[
        "--calls",
        "1",
        "--platform",
        "127.0.0.1",
        "--context-url",
        &template,
    ]);
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("acd_autoanswer.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    let answered = ha.event("answered", WAIT);
    assert_eq!(answered["auto"], true, "{answered}");
    let delay = invite_to_200(&result.messages).expect("INVITE and 200 in sipp's trace");
    eprintln!("ACD INVITE → 200 OK: {} µs", delay.as_micros());
    assert!(
        delay < Duration::from_millis(500),
        "answered after {delay:?}"
    );
    let context = ha.event("context", WAIT);
    assert_eq!(context["fields"]["name"], "Jeanne Martin", "{context}");
    assert_eq!(context["fields"]["tier"], "gold", "{context}");
    // The same card as an ordered list of rows.
    let rows = context["rows"].as_array().expect("rows");
    let fields = context["fields"].as_object().expect("fields");
    assert_eq!(rows.len(), fields.len(), "{context}");
    for row in rows {
        let label = row["label"].as_str().expect("label");
        assert_eq!(fields.get(label), Some(&row["value"]), "{context}");
    }
    assert!(context.get("error").is_none(), "{context}");
    // The CRM got the templated lookup: the header's value URL-encoded.
    let requests = crm.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let query = &requests[0].path_and_query;
    assert!(query.starts_with("/customers?from=sipp&id="), "{query}");
    assert!(query.ends_with("id=C-42%20%26%20co"), "{query}");
}

#[test]
fn a_crm_that_fails_gives_a_context_error_and_the_call_goes_on() {
    if !require(&["sipp"]) {
        return;
    }
    let crm = CrmServer::start().expect("CRM server");
    crm.set_mode(CrmMode::Slow(Duration::from_secs(5)));
    let template = format!("{}/customers?id={{header:X-Customer-Id}}", crm.base_url());
    let mut ha = listen(&[
        "--calls",
        "1",
        "--platform",
        "127.0.0.1",
        "--context-url",
        &template,
        "--context-timeout",
        "0.3",
    ]);
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("acd_autoanswer.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    let context = ha.event("context", WAIT);
    assert!(context["error"].is_string(), "{context}");
    assert!(context.get("fields").is_none(), "{context}");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
}

#[test]
fn a_caller_that_is_not_the_platform_only_rings() {
    if !require(&["sipp"]) {
        return;
    }
    // The platform is another port: sipp's INVITE asks for auto-answer, in vain.
    let ha = listen(&["--calls", "1", "--platform", "127.0.0.1:9"]);
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("acd_not_platform.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    let ended = ha.event("ended", WAIT);
    assert_eq!(ended["reason"], "remote_cancelled", "{ended}");
    let answered = ha
        .process
        .events()
        .into_iter()
        .filter(|e| e["event"] == "answered")
        .count();
    assert_eq!(answered, 0);
}

#[test]
fn a_not_ready_agent_refuses_the_platforms_call_and_the_platform_is_told() {
    if !require(&["sipp"]) {
        return;
    }
    let platform = PlatformServer::start().expect("platform server");
    let dir = TempDir::new("acd-not-ready").expect("temp dir");
    let outbox = dir.path().join("outbox.sqlite");
    let mut ha = listen(&[
        "--calls",
        "1",
        "--platform",
        "127.0.0.1",
        "--platform-api",
        &platform.base_url(),
        "--agent",
        "agent07",
        "--outbox",
        outbox.to_str().unwrap_or_default(),
    ]);
    ha.command(r#"{"command":"set_agent_state","state":"not_ready","reason":"pause"}"#);
    let state = ha
        .process
        .wait_event(
            |e| e["event"] == "agent_state" && e["state"] != "ready",
            WAIT,
        )
        .expect("not ready");
    assert_eq!(state["state"], "not_ready");
    assert_eq!(state["reason"], "pause");
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("acd_refused.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    let ended = ha.event("ended", WAIT);
    assert_eq!(ended["code"], 480, "{ended}");
    let told = |platform: &PlatformServer| {
        platform
            .states()
            .into_iter()
            .find(|s| s["state"] == "not_ready")
    };
    let deadline = Instant::now() + WAIT;
    while told(&platform).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let not_ready = told(&platform).expect("the platform was told");
    assert_eq!(not_ready["reason"], "pause");
    assert_eq!(not_ready["agent"], "agent07");
    // In order: the platform's last word is the agent's last state.
    let states = platform.states();
    assert_eq!(
        states.last().map(|s| s["state"].clone()),
        Some("not_ready".into()),
        "{states:?}"
    );
    assert!(
        platform
            .sessions()
            .iter()
            .any(|(agent, on)| agent == "agent07" && *on)
    );
    let (code, _) = ha.finish(WAIT);
    assert!(code == 0 || code == 3, "exit {code}");
    // It logged out when it stopped.
    let sessions = platform.sessions();
    assert!(
        sessions
            .iter()
            .any(|(agent, on)| agent == "agent07" && !*on),
        "{sessions:?}"
    );
}

/// The platform (a supervisor) sets the agent not ready: the phone follows and says so.
#[test]
fn a_state_pushed_by_the_platform_applies_to_the_agent() {
    let platform = PlatformServer::start().expect("platform server");
    let dir = TempDir::new("acd-pushed").expect("temp dir");
    let outbox = dir.path().join("outbox.sqlite");
    let ha = listen(&[
        "--platform",
        "127.0.0.1",
        "--platform-api",
        &platform.base_url(),
        "--agent",
        "agent09",
        "--outbox",
        outbox.to_str().unwrap_or_default(),
    ]);
    // The event stream opens after the login: push until the agent follows.
    let pushed = serde_json::json!({"state": "not_ready", "reason": "supervisor"});
    let deadline = Instant::now() + WAIT;
    let followed = loop {
        platform.push_state("agent09", pushed.clone());
        let seen = ha.process.wait_event(
            |e| e["event"] == "agent_state" && e["state"] == "not_ready",
            Duration::from_millis(300),
        );
        if let Ok(event) = seen {
            break Some(event);
        }
        if Instant::now() > deadline {
            break None;
        }
    };
    let followed = followed.expect("the agent follows the platform");
    assert_eq!(followed["reason"], "supervisor");
}

/// `--wrapup` with the platform down: the wrap-up is stored, the agent's app is killed (-9)
/// before the platform could acknowledge; at the next start, with the platform back, it is
/// delivered; the platform holds exactly one copy.
#[test]
fn a_wrapup_survives_a_crash_while_the_platform_is_down_and_arrives_once() {
    if !require(&["sipp"]) {
        return;
    }
    let platform = PlatformServer::start().expect("platform server");
    platform.set_available(false);
    let dir = TempDir::new("acd-wrapup").expect("temp dir");
    let outbox = dir.path().join("outbox.sqlite");
    let outbox = outbox.to_str().unwrap_or_default().to_owned();
    let args = |calls: &'static str| {
        vec![
            "listen".to_owned(),
            "--calls".into(),
            calls.into(),
            "--platform".into(),
            "127.0.0.1".into(),
            "--platform-api".into(),
            platform.base_url(),
            "--wrapup".into(),
            "SALE:contrat signé".into(),
            "--outbox".into(),
            outbox.clone(),
            "--audio-in".into(),
            "silence".into(),
            "--audio-out".into(),
            "null".into(),
        ]
    };
    let first_args = args("2");
    let first: Vec<&str> = first_args.iter().map(String::as_str).collect();
    let ha = Ha::start(&first, &[]);
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("acd_autoanswer.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    let queued = ha.event("wrapup_queued", WAIT);
    assert_eq!(queued["disposition"], "SALE");
    let key = queued["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(key.len(), 32, "{queued}");
    // Crash: no clean exit, the platform never acknowledged.
    let pid = ha.process.process().pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    drop(ha);
    assert!(platform.wrapups().is_empty(), "the platform was down");
    // Back up; the agent starts the app again: the outbox is delivered at start.
    platform.set_available(true);
    let second_args = args("1");
    let second: Vec<&str> = second_args.iter().map(String::as_str).collect();
    let ha = Ha::start(&second, &[]);
    let delivered = ha
        .process
        .wait_event(
            |e| e["event"] == "wrapup_delivered" && e["pending"] == 0,
            WAIT,
        )
        .expect("delivered after the restart");
    assert_eq!(delivered["pending"], 0);
    let stored = platform.wrapups();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["key"], key.as_str());
    assert_eq!(stored[0]["disposition"], "SALE");
    assert_eq!(stored[0]["note"], "contrat signé");
    // A later call's wrap-up goes straight through, once.
    let result = Sipp::run(
        scenario("acd_autoanswer.xml"),
        &["-s", "agent", &peer_of(&ha)],
    )
    .expect("sipp");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    let deadline = Instant::now() + WAIT;
    while platform.wrapups().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stored = platform.wrapups();
    assert_eq!(
        stored.len(),
        2,
        "{stored:?}\nevents: {:?}",
        ha.process.events()
    );
    // One copy each: the first wrap-up was stored once (its retries answered duplicate).
    let keys: std::collections::BTreeSet<&str> =
        stored.iter().filter_map(|w| w["key"].as_str()).collect();
    assert_eq!(keys.len(), 2, "{stored:?}");
    assert!(keys.contains(key.as_str()));
}

/// `homeagent listen` with silence in and out, plus `args`.
fn listen(args: &[&str]) -> Ha {
    let mut all = vec!["listen"];
    all.extend_from_slice(args);
    all.extend(["--audio-in", "silence", "--audio-out", "null"]);
    Ha::start(&all, &[])
}

fn peer_of(ha: &Ha) -> String {
    format!("127.0.0.1:{}", ha.port)
}

/// SIP-only mode against a registrar that takes presence (a real Kamailio with its presence
/// modules): a watcher subscribed to the agent sees `open` while ready, then `closed` once
/// the agent goes not ready.
#[test]
fn a_watcher_sees_the_agents_state_as_presence_at_the_registrar() {
    if !require(&["sipp", "kamailio"]) {
        return;
    }
    let presence = PresenceRegistrar::start();
    let registrar = format!("sip:127.0.0.1:{}", presence.port);
    // The registrar does not authenticate: any password.
    let ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "agent01",
            "--platform",
            "127.0.0.1",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "unused")],
    );
    ha.event("registered", WAIT);
    let registrar_addr = format!("127.0.0.1:{}", presence.port);
    let watcher = Sipp::spawn(
        scenario("presence_watcher.xml"),
        &["-s", "agent01", &registrar_addr],
    )
    .expect("sipp watches");
    // Let the first NOTIFY (ready) reach the watcher before the state changes.
    std::thread::sleep(Duration::from_secs(1));
    ha.command(r#"{"command":"set_agent_state","state":"not_ready","reason":"pause"}"#);
    let result = watcher.wait(WAIT).expect("sipp ends");
    assert!(
        result.success,
        "{}\n{}\n{}",
        result.output,
        result.errors,
        presence.log()
    );
}

/// A Kamailio registrar with presence (`tests/peers/presence/`), on loopback, stopped on drop.
struct PresenceRegistrar {
    port: u16,
    process: homeagent_testkit::Process,
    _dir: TempDir,
}

impl PresenceRegistrar {
    fn start() -> Self {
        let dir = TempDir::new("presence-registrar").expect("temp dir");
        let peer = homeagent_testkit::repo_dir().join("tests/peers/presence");
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).expect("db dir");
        std::fs::copy(peer.join("db/version"), db.join("version")).expect("version table");
        // The presence tables' schemas as Kamailio ships them.
        for table in ["presentity", "active_watchers", "watchers", "xcap"] {
            std::fs::copy(
                std::path::Path::new("/usr/share/kamailio/dbtext/kamailio").join(table),
                db.join(table),
            )
            .expect("presence table schema");
        }
        let port = homeagent_testkit::ports::reserve(&[0]);
        let config = std::fs::read_to_string(peer.join("kamailio.cfg"))
            .expect("config")
            .replace("KAM_PORT", &port.to_string())
            .replace("KAM_CTL", &dir.path().join("ctl").display().to_string())
            .replace("KAM_DB", &db.display().to_string());
        let config_path = dir.path().join("kamailio.cfg");
        std::fs::write(&config_path, config).expect("config written");
        let mut command = std::process::Command::new("kamailio");
        command
            .args(["-DD", "-E", "-f"])
            .arg(&config_path)
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path());
        let process = homeagent_testkit::Process::spawn(
            "kamailio-presence",
            command,
            &dir.path().join("kamailio.log"),
            false,
        )
        .expect("kamailio starts");
        process
            .wait_log("io_listen_loop|ready to accept", WAIT)
            .expect("kamailio ready");
        Self {
            port,
            process,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.process.lines().join("\n")
    }
}
