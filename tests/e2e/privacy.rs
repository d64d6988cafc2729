//! Secrets and personal data stay out of logs and files: a full agent cycle (registration with
//! digest auth, the platform's log-in, an ACD call from a full phone number with its customer
//! card, a wrap-up delivered, the exit) at trace log level, then every log line and every file
//! the app wrote is searched for the password, the tokens, the numbers and the customer.

use std::path::{Path, PathBuf};

use homeagent_testkit::crm_server::{CrmMode, CrmServer};
use homeagent_testkit::platform_server::PlatformServer;
use homeagent_testkit::{Kamailio, KamailioOpts, Sipp, TempDir, require, scenario};

use crate::common::{Ha, WAIT};

const PASSWORD: &str = "agent01pw";
const PLATFORM_TOKEN: &str = "platform-token-5f2c9e";
const CRM_TOKEN: &str = "crm-token-8b1d7a";
/// What must never show: the secrets, the caller's and the called number (digits beyond the
/// last four), the customer's name and id.
const CALLER_DIGITS: &str = "12345678";
const CALLED_DIGITS: &str = "87654321";
const CUSTOMER_NAME: &str = "Honorine Vasseur";

#[test]
fn a_full_cycle_at_trace_level_leaves_no_secret_number_or_customer_in_logs_or_files() {
    if !require(&["sipp", "kamailio"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio");
    let crm = CrmServer::start().expect("CRM");
    crm.set_mode(CrmMode::Ok(serde_json::json!({
        "name": CUSTOMER_NAME,
        "customer_id": "CUST-99417",
    })));
    let platform = PlatformServer::start().expect("platform");
    platform.require_token(PLATFORM_TOKEN);
    // Everything the app may write goes under here (HOME and the XDG dirs).
    let home = TempDir::new("privacy-home").expect("temp dir");
    let env = |name: &str| home.path().join(name).display().to_string();
    let (config, data, state, cache) = (env("config"), env("data"), env("state"), env("cache"));
    let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
    let context_url = format!("{}/customers?phone={{from}}", crm.base_url());
    let crm_auth = format!("Authorization: Bearer {CRM_TOKEN}");
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "agent01",
            "--calls",
            "1",
            "--platform",
            "127.0.0.1",
            "--context-url",
            &context_url,
            "--platform-api",
            &platform.base_url(),
            "--agent",
            "agent01",
            "--wrapup",
            "SALE:rappel le 12",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
            "--log-level",
            "trace",
        ],
        &[
            ("HOMEAGENT_PASSWORD", PASSWORD),
            ("HOMEAGENT_PLATFORM_TOKEN", PLATFORM_TOKEN),
            ("HOMEAGENT_CONTEXT_AUTH", &crm_auth),
            ("HOME", home.path().to_str().unwrap_or_default()),
            ("XDG_CONFIG_HOME", &config),
            ("XDG_DATA_HOME", &data),
            ("XDG_STATE_HOME", &state),
            ("XDG_CACHE_HOME", &cache),
        ],
    );
    ha.event("registered", WAIT);
    let peer = format!("127.0.0.1:{}", ha.port);
    let result = Sipp::run(
        scenario("acd_full_numbers.xml"),
        &["-s", "+33187654321", &peer],
    )
    .expect("sipp runs");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    let context = ha.event("context", WAIT);
    assert_eq!(context["fields"]["name"], CUSTOMER_NAME, "{context}");
    ha.process
        .wait_event(
            |e| e["event"] == "wrapup_delivered" && e["pending"] == 0,
            WAIT,
        )
        .expect("wrap-up delivered");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    // The cycle really happened: the secrets were used, the customer was looked up.
    assert_eq!(platform.wrapups().len(), 1);
    let lookups = crm.requests();
    assert!(
        lookups.iter().any(|r| r
            .headers
            .iter()
            .any(|(name, value)| name == "authorization" && value.contains(CRM_TOKEN))),
        "{lookups:?}"
    );

    let lines = ha.process.process().lines();
    let (events, log): (Vec<&str>, Vec<&str>) = lines
        .iter()
        .map(String::as_str)
        .partition(|line| line.starts_with('{'));
    assert!(log.len() > 100, "trace logging is on: {} lines", log.len());
    let secrets = [PASSWORD, PLATFORM_TOKEN, CRM_TOKEN];
    let personal = [CALLER_DIGITS, CALLED_DIGITS, CUSTOMER_NAME, "CUST-99417"];
    for line in &log {
        for needle in secrets.iter().chain(&personal) {
            assert!(!line.contains(needle), "the log shows {needle:?}: {line}");
        }
    }
    // The JSON events are the program's output to its driver (the caller's number and the
    // card belong there), but never a secret.
    for line in &events {
        for needle in &secrets {
            assert!(!line.contains(needle), "an event shows {needle:?}: {line}");
        }
    }
    let mut files = Vec::new();
    collect_files(home.path(), &mut files);
    collect_files(ha.process.dir(), &mut files);
    // The harness's own capture of stdout/stderr is the log checked above.
    files.retain(|path| path.file_name().is_none_or(|name| name != "homeagent.log"));
    assert!(
        files.iter().any(|path| path.starts_with(&data)),
        "the outbox is under XDG_DATA_HOME: {files:?}"
    );
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for needle in secrets.iter().chain(&personal) {
            assert!(
                !text.contains(needle),
                "{} holds {needle:?}",
                path.display()
            );
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}
