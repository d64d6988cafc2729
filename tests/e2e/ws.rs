//! SIP over WebSocket (RFC 7118) with Kamailio: registration and calls both ways over one WS or
//! WSS connection, media in plain RTP to a baresip that Kamailio reaches over UDP.

use std::time::Duration;

use homeagent_testkit::{Kamailio, KamailioOpts, require};

use crate::common::{
    Ha, WAIT, alice_calls_the_registered_agent, assert_media_flowed, print_median_call_setup,
    print_median_setup_until, registered_baresip,
};

/// Kamailio stored our registration as a WebSocket flow, with the RFC 7118 `.invalid` host.
fn assert_registered_over_ws(kam: &Kamailio, user: &str) {
    let contacts = kam.registered_contacts().expect("kamcmd ul.dump");
    assert!(
        contacts.iter().any(|(aor, contact)| aor == user
            && contact.contains(".invalid")
            && contact.contains("transport=ws")),
        "{contacts:?}"
    );
}

/// Kamailio got a message starting with `start_line` over `proto`: WITH_MSGLOG logs
/// "RX [reply ]<proto> …" and the message.
fn assert_received_over(kam: &Kamailio, proto: &str, start_line: &str) {
    let log = kam.log();
    assert!(
        log.split("RX ").any(|entry| {
            let entry = entry.strip_prefix("reply ").unwrap_or(entry);
            entry.starts_with(&format!("{proto} ")) && entry.contains(&format!("\n{start_line}"))
        }),
        "kamailio did not get {start_line:?} over {proto}"
    );
}

/// Calls a UDP baresip through Kamailio with the agent on a WebSocket: REGISTER, INVITE, ACK
/// and BYE go over the one connection; media flows both ways.
fn calls_out_over(secure: bool) {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let bob = registered_baresip(&kam, "bob", "bobpw");
    let (scheme, port) = if secure {
        ("wss", kam.wss_port())
    } else {
        ("ws", kam.ws_port())
    };
    let url = format!("{scheme}://127.0.0.1:{port}/");
    let target = format!("sip:bob@127.0.0.1:{}", kam.udp_port());
    let ca = kam
        .ca()
        .expect("kamailio started WITH_TLS prints its CA")
        .display()
        .to_string();
    let mut ha = Ha::start(
        &[
            "call",
            &target,
            "--registrar",
            "sip:127.0.0.1",
            "--ws-url",
            &url,
            "--ca-file",
            &ca,
            "--user",
            "alice",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "3",
            // baresip speaks plain RTP: no ICE/DTLS offer (the default over WebSocket).
            "--ice",
            "off",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    ha.event("registered", WAIT);
    assert_registered_over_ws(&kam, "alice");
    ha.event("established", WAIT);
    bob.wait_established(WAIT)
        .expect("bob answered through kamailio");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["transport"], scheme, "{summary}");
    assert_media_flowed(&summary, "pcmu");
    bob.wait_closed(WAIT)
        .expect("the BYE went through kamailio");
    assert_received_over(&kam, scheme, "INVITE sip:bob@");
    assert_received_over(&kam, scheme, "BYE sip:");
}

#[test]
fn registers_and_calls_over_ws() {
    calls_out_over(false);
}

#[test]
fn registers_and_calls_over_wss_with_the_ca_file() {
    calls_out_over(true);
}

/// A registrar URI with `;transport=wss` (no --ws-url): baresip calls the agent, Kamailio sends
/// the INVITE down the registered WebSocket, and it is answered on it.
#[test]
fn kamailio_delivers_calls_over_the_websocket() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let registrar = format!("sip:127.0.0.1:{};transport=wss", kam.wss_port());
    let ca = kam
        .ca()
        .expect("kamailio started WITH_TLS prints its CA")
        .display()
        .to_string();
    let summary = alice_calls_the_registered_agent(&kam, &registrar, &ca, |kam| {
        assert_registered_over_ws(kam, "agent01")
    });
    assert_eq!(summary["transport"], "wss", "{summary}");
    // Our 200 OK to the INVITE went up the WebSocket.
    assert_received_over(&kam, "wss", "SIP/2.0 200 OK");
}

/// WSS without the test CA: the certificate error is named as for SIP over TLS, at once.
#[test]
fn wss_without_the_ca_is_refused_with_its_cause() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let url = format!("wss://127.0.0.1:{}/", kam.wss_port());
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            "sip:127.0.0.1",
            "--ws-url",
            &url,
            "--user",
            "alice",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    let failed = ha.event("registration_failed", Duration::from_secs(5));
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("certificate of \"127.0.0.1\" not trusted"),
        "{failed}"
    );
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 5, "{summary}");
    assert_eq!(summary["transport"], "wss", "{summary}");
}

/// Figure: call set-up time through Kamailio over WSS and WS (command written to the phone's
/// stdin → `established` printed, baresip answering at once), median of 20 calls over one
/// registered WebSocket.
#[test]
fn call_setup_time_over_wss_and_ws() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let bob = registered_baresip(&kam, "bob", "bobpw");
    let ca = kam
        .ca()
        .expect("kamailio started WITH_TLS prints its CA")
        .display()
        .to_string();
    let target = format!("sip:bob@127.0.0.1:{}", kam.udp_port());
    for (name, port) in [("wss", kam.wss_port()), ("ws", kam.ws_port())] {
        let url = format!("{name}://127.0.0.1:{port}/");
        // baresip speaks plain RTP: no ICE/DTLS offer (the default over WebSocket).
        let ha = registered_over_ws(&url, &ca, ("alice", "alicepw"), &["--ice", "off"]);
        print_median_call_setup(ha, &target, name);
    }
    drop(bob);
}

/// Figure: call set-up time over WSS with ICE + DTLS-SRTP, agent to agent through Kamailio
/// (command on stdin → `ice_connected`: DTLS done over the pair ICE chose), median of 20.
#[test]
fn call_setup_time_over_wss_with_ice_and_dtls() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let ca = kam
        .ca()
        .expect("kamailio started WITH_TLS prints its CA")
        .display()
        .to_string();
    let url = format!("wss://127.0.0.1:{}/", kam.wss_port());
    let mut bob = registered_over_ws(&url, &ca, ("bob", "bobpw"), &[]);
    let alice = registered_over_ws(&url, &ca, ("alice", "alicepw"), &[]);
    print_median_setup_until(alice, "sip:bob@127.0.0.1", "wss", "ice_connected");
    let ice = bob.event("ice_connected", WAIT);
    assert!(
        ice["srtp"].as_str().is_some_and(|s| s.contains("AES")),
        "{ice}"
    );
    bob.command(r#"{"command":"shutdown"}"#);
    let (code, summary) = bob.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert!(
        summary["media_encryption"]
            .as_str()
            .is_some_and(|e| e.starts_with("dtls-srtp ")),
        "{summary}"
    );
}

/// `homeagent listen` as `user` (with its password) registered at Kamailio over the WebSocket
/// `url` (trusting `ca`), sending a tone, with `extra` arguments.
fn registered_over_ws(url: &str, ca: &str, (user, password): (&str, &str), extra: &[&str]) -> Ha {
    let mut args = vec![
        "listen",
        "--registrar",
        "sip:127.0.0.1",
        "--ws-url",
        url,
        "--ca-file",
        ca,
        "--user",
        user,
        "--audio-in",
        "tone:440",
        "--audio-out",
        "null",
    ];
    args.extend_from_slice(extra);
    let ha = Ha::start(&args, &[("HOMEAGENT_PASSWORD", password)]);
    ha.event("registered", WAIT);
    ha
}
