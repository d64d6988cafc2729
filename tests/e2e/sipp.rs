//! SIPp plays the platform: a UAS that challenges, rings then answers; UACs that call us,
//! cancel, and probe with OPTIONS.

use std::time::Duration;

use homeagent_testkit::{Sipp, require, scenario};

use crate::common::{Ha, WAIT};

#[test]
fn sipp_uas_challenges_rings_and_answers() {
    if !require(&["sipp"]) {
        return;
    }
    let uas = Sipp::spawn(scenario("uas_auth_180_200.xml"), &[]).expect("sipp starts");
    let target = format!("sip:service@{}", uas.addr());
    let mut ha = Ha::start(
        &[
            "call",
            &target,
            "--user",
            "agent01",
            "--codecs",
            "pcmu",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "2",
        ],
        &[("HOMEAGENT_PASSWORD", "agent01pw")],
    );
    ha.event("ringing", WAIT);
    ha.event("established", WAIT);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["codec"], "pcmu");
    let result = uas.wait(WAIT).expect("sipp ends");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    // The second INVITE answered the challenge; the BYE came from us.
    assert!(
        result.messages.contains("Authorization: Digest"),
        "{}",
        result.messages
    );
    assert!(result.messages.contains("BYE sip:"), "{}", result.messages);
}

#[test]
fn sipp_uac_calls_us_and_hangs_up() {
    if !require(&["sipp"]) {
        return;
    }
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let peer = format!("127.0.0.1:{}", ha.port);
    let result = Sipp::run(scenario("uac_basic.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["reason"], "remote_hangup");
    assert_eq!(summary["codec"], "pcmu");
}

#[test]
fn sipp_uac_cancels_while_we_ring() {
    if !require(&["sipp"]) {
        return;
    }
    let mut ha = Ha::start(
        &[
            "listen",
            "--calls",
            "1",
            "--answer",
            "manual",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let peer = format!("127.0.0.1:{}", ha.port);
    let result = Sipp::run(scenario("uac_cancel.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    assert!(
        result.messages.contains("SIP/2.0 487"),
        "{}",
        result.messages
    );
    let ended = ha.event("ended", WAIT);
    assert_eq!(ended["reason"], "remote_cancelled");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "a cancelled call is not our failure: {summary}");
}

#[test]
fn options_are_answered() {
    if !require(&["sipp"]) {
        return;
    }
    let mut ha = Ha::start(
        &["listen", "--audio-in", "silence", "--audio-out", "null"],
        &[],
    );
    let peer = format!("127.0.0.1:{}", ha.port);
    let result =
        Sipp::run(scenario("uac_options.xml"), &["-s", "agent", &peer]).expect("sipp runs");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    assert!(
        result.messages.contains("Allow: INVITE"),
        "{}",
        result.messages
    );
    ha.command(r#"{"command":"shutdown"}"#);
    let (code, _) = ha.finish(WAIT);
    assert_eq!(code, 0);
}

#[test]
fn malformed_request_gets_400_and_the_phone_keeps_working() {
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
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let bad = format!(
        "INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad1\r\nFrom: <sip:x@{local}>;tag=1\r\n\
         To: <sip:agent@127.0.0.1>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\nContent-Length: 5000\r\n\r\nv=0\r\n"
    );
    socket
        .send_to(bad.as_bytes(), ("127.0.0.1", ha.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("an answer to the malformed request");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 400 "), "{answer}");
    // Garbage and a malformed response are dropped; the phone still answers a call.
    socket
        .send_to(b"\x00\x01garbage\xff", ("127.0.0.1", ha.port))
        .unwrap();
    socket
        .send_to(
            b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
            ("127.0.0.1", ha.port),
        )
        .unwrap();
    let peer = format!("127.0.0.1:{}", ha.port);
    if require(&["sipp"]) {
        let result =
            Sipp::run(scenario("uac_basic.xml"), &["-s", "agent", &peer]).expect("sipp runs");
        assert!(
            result.success,
            "sipp failed:\n{}\n{}",
            result.output, result.errors
        );
        let (code, _) = ha.finish(WAIT);
        assert_eq!(code, 0);
    }
}

/// agent01 (password agent01pw for the peers that challenge) calls `target`: PCMU, a tone,
/// nothing recorded; `extra` options appended.
fn agent_calls(target: &str, extra: &[&str]) -> Ha {
    let mut args = vec![
        "call",
        target,
        "--user",
        "agent01",
        "--codecs",
        "pcmu",
        "--audio-in",
        "tone:440",
        "--audio-out",
        "null",
    ];
    args.extend_from_slice(extra);
    Ha::start(&args, &[("HOMEAGENT_PASSWORD", "agent01pw")])
}

#[test]
fn blind_transfer_with_refer_ends_our_call_once_the_target_answers() {
    if !require(&["sipp"]) {
        return;
    }
    let uas = Sipp::spawn(scenario("uas_transferee.xml"), &[]).expect("sipp starts");
    let mut ha = agent_calls(&format!("sip:customer@{}", uas.addr()), &[]);
    ha.event("established", WAIT);
    ha.command(r#"{"command":"transfer","call":1,"target":"sip:supervisor@127.0.0.1"}"#);
    let transferred = ha.event("transferred", WAIT);
    assert_eq!(transferred["target"], "sip:supervisor@127.0.0.1");
    let ended = ha.event("ended", WAIT);
    assert_eq!(ended["reason"], "transferred", "{ended}");
    assert_eq!(ended["normal"], true, "{ended}");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    let result = uas.wait(WAIT).expect("sipp ends");
    assert!(
        result.success,
        "sipp failed:\n{}\n{}",
        result.output, result.errors
    );
    assert!(
        result
            .messages
            .contains("Refer-To: <sip:supervisor@127.0.0.1>"),
        "{}",
        result.messages
    );
}

#[test]
fn transfer_of_a_call_not_connected_fails_and_the_call_goes_on() {
    if !require(&["sipp"]) {
        return;
    }
    let uas = Sipp::spawn(scenario("uas_auth_180_200.xml"), &[]).expect("sipp starts");
    let target = format!("sip:service@{}", uas.addr());
    let mut ha = agent_calls(&target, &["--hangup-after", "3"]);
    ha.event("ringing", WAIT);
    // Ringing, not connected yet: refused at once.
    ha.command(r#"{"command":"transfer","call":1,"target":"sip:supervisor@127.0.0.1"}"#);
    let failed = ha.event("transfer_failed", WAIT);
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not connected"),
        "{failed}"
    );
    ha.event("established", WAIT);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert!(uas.wait(WAIT).expect("sipp ends").success);
}

#[test]
fn attended_transfer_hands_the_customer_to_the_consulted_party_with_replaces() {
    if !require(&["sipp"]) {
        return;
    }
    let customer = Sipp::spawn(scenario("uas_transferee.xml"), &[]).expect("sipp starts");
    let supervisor = Sipp::spawn(scenario("uas_auth_180_200.xml"), &[]).expect("sipp starts");
    let mut ha = agent_calls(&format!("sip:customer@{}", customer.addr()), &[]);
    ha.event("established", WAIT);
    // The agent consults the supervisor on a second call, then connects the two.
    ha.command(&format!(
        r#"{{"command":"call","uri":"sip:supervisor@{}"}}"#,
        supervisor.addr()
    ));
    ha.process
        .wait_event(|e| e["event"] == "established" && e["call"] == 2, WAIT)
        .expect("consultation call up");
    ha.command(r#"{"command":"attended_transfer","call":1,"consultation":2}"#);
    let transferred = ha.event("transferred", WAIT);
    assert_eq!(transferred["call"], 1, "{transferred}");
    let ended = ha.event("ended", WAIT);
    assert_eq!(ended["reason"], "transferred", "{ended}");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    let customer = customer.wait(WAIT).expect("customer sipp ends");
    assert!(
        customer.success,
        "sipp failed:\n{}\n{}",
        customer.output, customer.errors
    );
    // Refer-To: the supervisor's Contact with the consultation dialog to replace.
    let refer_to = customer
        .messages
        .lines()
        .find(|line| line.starts_with("Refer-To:"))
        .unwrap_or_default()
        .to_owned();
    assert!(refer_to.contains("?Replaces="), "{refer_to}");
    assert!(refer_to.contains("%3Bto-tag%3D"), "{refer_to}");
    assert!(refer_to.contains("%3Bfrom-tag%3D"), "{refer_to}");
    assert!(supervisor.wait(WAIT).expect("supervisor sipp ends").success);
}

/// Behind a NAT: the registrar (sipp) answers that our REGISTER came from 203.0.113.7:40000;
/// we register again at once with that public address as Contact (sipp checks it).
#[test]
fn behind_a_nat_the_public_address_becomes_the_contact() {
    if !require(&["sipp"]) {
        return;
    }
    let registrar = Sipp::spawn(scenario("registrar_behind_nat.xml"), &[]).expect("sipp starts");
    let uri = format!("sip:{}", registrar.addr());
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &uri,
            "--user",
            "agent01",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "agent01pw")],
    );
    let result = registrar.wait(WAIT).expect("sipp ends");
    assert!(
        result.success,
        "the second REGISTER must carry the public Contact:\n{}\n{}",
        result.output, result.errors
    );
    ha.command(r#"{"command":"shutdown"}"#);
    let _ = ha.finish(WAIT);
}

/// `--stun` against a real STUN server (coturn, STUN only): at start the agent learns where its
/// SIP socket is seen (here, on loopback, its own address: no NAT to correct). A server that
/// does not answer only costs a warning: the phone starts anyway.
#[test]
fn stun_against_coturn_learns_where_the_sip_socket_is_seen() {
    if !require(&["turnserver"]) {
        return;
    }
    let dir = homeagent_testkit::TempDir::new("coturn").expect("temp dir");
    let stun_port = homeagent_testkit::ports::reserve(&[0]);
    let mut command = std::process::Command::new("turnserver");
    command
        .args([
            "-n",
            "--stun-only",
            "--no-auth",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
        ])
        .args([
            "-L",
            "127.0.0.1",
            "-p",
            &stun_port.to_string(),
            "-l",
            "stdout",
        ]);
    let coturn =
        homeagent_testkit::Process::spawn("coturn", command, &dir.path().join("coturn.log"), false)
            .expect("coturn starts");
    std::thread::sleep(Duration::from_millis(500));
    let server = format!("127.0.0.1:{stun_port}");
    let ha = Ha::start(
        &[
            "listen",
            "--stun",
            &server,
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    let seen = ha
        .process
        .process()
        .wait_log("STUN: our SIP socket is seen", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", coturn.lines().join("\n")));
    assert!(
        seen.contains(&format!("127.0.0.1:{}", ha.port)),
        "mapped to our SIP socket: {seen}"
    );
    drop(coturn);
    // Nobody answers: a warning, and the phone starts.
    let silent = format!("127.0.0.1:{}", homeagent_testkit::ports::reserve(&[0]));
    let ha = Ha::start(
        &[
            "listen",
            "--stun",
            &silent,
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[],
    );
    ha.process
        .process()
        .wait_log("STUN server did not answer", WAIT)
        .expect("the silent server is reported");
}
