//! Registration with Kamailio (digest auth) and calls routed through it, over UDP and TCP.

use homeagent_testkit::{Kamailio, KamailioOpts, Sipp, require, scenario};

use crate::common::{Ha, WAIT, assert_media_flowed, registered_baresip};

fn kamailio() -> Kamailio {
    Kamailio::start(KamailioOpts::default()).expect("kamailio starts")
}

fn registers_and_calls_through(transport: &str) {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = kamailio();
    let bob = registered_baresip(&kam, "bob", "bobpw");
    let registrar = format!("sip:127.0.0.1:{};transport={transport}", kam.udp_port());
    let target = format!("sip:bob@127.0.0.1:{}", kam.udp_port());
    let mut ha = Ha::start(
        &[
            "call",
            &target,
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "3",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    let registered = ha.event("registered", WAIT);
    assert!(
        registered["expires"].as_u64().unwrap_or(0) >= 10,
        "{registered}"
    );
    ha.event("established", WAIT);
    bob.wait_established(WAIT)
        .expect("bob answered through kamailio");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    bob.wait_closed(WAIT)
        .expect("the BYE went through kamailio");
}

#[test]
fn registers_and_calls_through_kamailio_over_udp() {
    registers_and_calls_through("udp");
}

#[test]
fn registers_and_calls_through_kamailio_over_tcp() {
    registers_and_calls_through("tcp");
}

#[test]
fn kamailio_delivers_calls_to_a_registered_listener() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = kamailio();
    let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--registrar",
            &registrar,
            "--user",
            "agent01",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "3",
        ],
        &[("HOMEAGENT_PASSWORD", "agent01pw")],
    );
    ha.event("registered", WAIT);
    let alice = registered_baresip(&kam, "alice", "alicepw");
    alice
        .dial(&format!("sip:agent01@127.0.0.1:{}", kam.udp_port()))
        .expect("dial");
    let incoming = ha.event("incoming", WAIT);
    assert!(
        incoming["from"].as_str().unwrap_or("").contains("alice"),
        "{incoming}"
    );
    ha.event("established", WAIT);
    alice.wait_established(WAIT).expect("alice established");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    alice.wait_closed(WAIT).expect("alice gets the BYE");
}

#[test]
fn wrong_password_exits_with_status_5() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = kamailio();
    let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
    let secret = "N0t-Al1ce-Pw";
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
            "--log-level",
            "trace",
        ],
        &[("HOMEAGENT_PASSWORD", secret)],
    );
    let failed = ha.event("registration_failed", WAIT);
    assert_eq!(failed["code"], 401, "{failed}");
    let (code, _, output) = ha.finish_with_output(WAIT);
    assert_eq!(code, 5);
    assert!(
        output.contains("REGISTER"),
        "trace logging shows the SIP exchange"
    );
    assert!(
        !output.contains(secret),
        "the password leaked into the output"
    );
}

/// Kamailio offering SHA-256 digest (RFC 8760) and, separately, digest without qop.
#[test]
fn registers_with_sha256_and_without_qop() {
    if !require(&["kamailio"]) {
        return;
    }
    for flag in ["WITH_SHA256", "WITHOUT_QOP"] {
        let kam = Kamailio::start(KamailioOpts {
            flags: vec![flag.into(), "WITH_MSGLOG".into()],
            ..KamailioOpts::default()
        })
        .expect("kamailio starts");
        let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
        let mut ha = Ha::start(
            &[
                "listen",
                "--registrar",
                &registrar,
                "--user",
                "agent01",
                "--audio-in",
                "silence",
                "--audio-out",
                "null",
            ],
            &[("HOMEAGENT_PASSWORD", "agent01pw")],
        );
        ha.event("registered", WAIT);
        let contacts = kam.registered_contacts().expect("kamcmd ul.dump");
        assert!(
            contacts.iter().any(|(user, _)| user == "agent01"),
            "{flag}: {contacts:?}"
        );
        ha.command(r#"{"command":"shutdown"}"#);
        let (code, _) = ha.finish(WAIT);
        assert_eq!(code, 0, "{flag}");
        ha.event("unregistered", WAIT);
        let contacts = kam.registered_contacts().expect("kamcmd ul.dump");
        assert!(
            !contacts.iter().any(|(user, _)| user == "agent01"),
            "{flag}: still bound after exit: {contacts:?}"
        );
        let log = kam.log();
        if flag == "WITH_SHA256" {
            assert!(
                log.contains("algorithm=SHA-256"),
                "the challenge was not SHA-256"
            );
        }
    }
}

#[test]
fn sigterm_unregisters_before_exit() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = kamailio();
    let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "bob",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "bobpw")],
    );
    ha.event("registered", WAIT);
    let pid = ha.process.process().pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, _) = ha.finish(WAIT);
    assert_eq!(code, 0);
    ha.event("unregistered", WAIT);
    let contacts = kam.registered_contacts().expect("kamcmd ul.dump");
    assert!(
        !contacts.iter().any(|(user, _)| user == "bob"),
        "still bound: {contacts:?}"
    );
}

/// A registrar that refuses the TCP connection is reported at once (not after timer F), and
/// the listener exits with status 5.
#[test]
fn unreachable_tcp_registrar_fails_fast() {
    let closed = homeagent_testkit::ports::free_port();
    let registrar = format!("sip:127.0.0.1:{closed};transport=tcp");
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    let failed = ha.event("registration_failed", std::time::Duration::from_secs(5));
    assert!(
        failed["reason"].as_str().unwrap_or("").contains("reach"),
        "{failed}"
    );
    let (code, _) = ha.finish(WAIT);
    assert_eq!(code, 5);
}

/// A SIP scanner on another address (127.0.0.2) probes the registered agent directly: its
/// OPTIONS and its INVITE get no answer at all and nothing rings; the registrar's address
/// (127.0.0.1) still gets its answer.
#[test]
fn a_scanner_that_is_not_the_platform_gets_no_ring_and_no_answer() {
    if !require(&["kamailio", "sipp"]) {
        return;
    }
    let kam = kamailio();
    let registrar = format!("sip:127.0.0.1:{}", kam.udp_port());
    let ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "agent01",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "agent01pw")],
    );
    ha.event("registered", WAIT);
    let agent = format!("127.0.0.1:{}", ha.port);
    let scanner = ["-i", "127.0.0.2", "-timeout", "4s", "-s", "100", &agent];
    for probe in ["uac_options.xml", "uac_basic.xml"] {
        let result = Sipp::run(scenario(probe), &scanner).expect("sipp runs");
        assert!(!result.success, "{probe}: the scanner got an answer");
        assert!(
            !result.messages.contains("SIP/2.0 "),
            "{probe}: no response of any kind:\n{}",
            result.messages
        );
    }
    assert!(
        ha.process.events().iter().all(|e| e["event"] != "incoming"),
        "nothing rang: {:?}",
        ha.process.events()
    );
    // The same probe from the registrar's address is answered: the filter, not a dead phone.
    let trusted = Sipp::run(scenario("uac_options.xml"), &["-s", "100", &agent]).expect("sipp");
    assert!(trusted.success, "{}\n{}", trusted.output, trusted.errors);
}
