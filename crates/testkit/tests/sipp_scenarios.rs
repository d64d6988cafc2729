//! The sipp scenarios of `tests/scenarios/` against real baresip and linphonec peers.
//! Skipped with a notice if the programs are not installed.

use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts};
use homeagent_testkit::{Linphonec, Sipp, require, scenario};

const WAIT: Duration = Duration::from_secs(10);

fn baresip(name: &str, auto_answer: bool) -> Baresip {
    Baresip::start(BaresipOpts {
        name: name.into(),
        auto_answer,
        record: false,
        ..BaresipOpts::default()
    })
    .expect("baresip starts")
}

#[test]
fn uac_basic_calls_baresip() {
    if !require(&["sipp", "baresip", "stdbuf"]) {
        return;
    }
    let bob = baresip("bob", true);
    let target = format!("127.0.0.1:{}", bob.sip_port());
    let result = Sipp::run(scenario("uac_basic.xml"), &["-s", "bob", &target]).expect("sipp");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    assert!(
        result.messages.contains("SIP/2.0 200"),
        "{}",
        result.messages
    );
    bob.wait_established(WAIT).expect("bob established");
    bob.wait_log("session closed: ", WAIT)
        .expect("bob got the BYE");
}

#[test]
fn uac_options_gets_200_from_baresip() {
    if !require(&["sipp", "baresip", "stdbuf"]) {
        return;
    }
    let bob = baresip("bob", true);
    let target = format!("127.0.0.1:{}", bob.sip_port());
    let result = Sipp::run(scenario("uac_options.xml"), &["-s", "bob", &target]).expect("sipp");
    assert!(result.success, "{}\n{}", result.output, result.errors);
}

#[test]
fn uac_cancel_cancels_a_ringing_baresip() {
    if !require(&["sipp", "baresip", "stdbuf"]) {
        return;
    }
    let bob = baresip("bob", false);
    let target = format!("127.0.0.1:{}", bob.sip_port());
    let result = Sipp::run(scenario("uac_cancel.xml"), &["-s", "bob", &target]).expect("sipp");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    assert!(
        result.messages.contains("SIP/2.0 487"),
        "{}",
        result.messages
    );
    bob.wait_incoming(WAIT).expect("bob rang");
    bob.wait_closed(WAIT).expect("bob saw the CANCEL");
    assert!(
        bob.process()
            .wait_log(baresip_established(), Duration::ZERO)
            .is_err()
    );
}

fn baresip_established() -> &'static str {
    homeagent_testkit::peers::baresip::log::ESTABLISHED
}

/// The authenticating UAS: baresip with the right password gets through 401 → 180 → 200.
#[test]
fn uas_auth_accepts_a_valid_digest_and_rejects_a_bad_one() {
    if !require(&["sipp", "baresip", "stdbuf"]) {
        return;
    }
    for (password, should_pass) in [("agent01pw", true), ("wrong", false)] {
        let uas = Sipp::spawn(scenario("uas_auth_180_200.xml"), &[]).expect("sipp uas");
        let caller = Baresip::start(BaresipOpts {
            name: "agent01".into(),
            password: Some(password.into()),
            record: false,
            ..BaresipOpts::default()
        })
        .expect("baresip starts");
        caller
            .dial(&format!("sip:service@{}", uas.addr()))
            .expect("dial");
        if should_pass {
            caller.wait_log("180 Ringing", WAIT).expect("180");
            caller.wait_established(WAIT).expect("established");
            let answer = uas
                .wait_message("Authorization: Digest", WAIT)
                .expect("trace");
            assert!(answer.contains("Authorization"));
            std::thread::sleep(Duration::from_millis(500));
            caller.hangup().expect("hangup");
            let result = uas.wait(WAIT).expect("sipp ends");
            assert!(result.success, "{}\n{}", result.output, result.errors);
            assert!(
                result.messages.contains("SIP/2.0 401"),
                "{}",
                result.messages
            );
        } else {
            caller
                .wait_log("403 Forbidden", WAIT)
                .expect("403 for a bad digest");
            let result = uas.wait(WAIT).expect("sipp ends");
            assert!(!result.success, "a bad digest must fail the scenario");
        }
    }
}

#[test]
fn linphonec_answers_a_sipp_call() {
    if !require(&["sipp", "linphonec", "stdbuf"]) {
        return;
    }
    let linphone = Linphonec::start(0, true).expect("linphonec starts");
    let target = format!("127.0.0.1:{}", linphone.sip_port());
    let result = Sipp::run(scenario("uac_basic.xml"), &["-s", "linphone", &target]).expect("sipp");
    assert!(result.success, "{}\n{}", result.output, result.errors);
    linphone
        .wait_log(homeagent_testkit::peers::linphonec::log::CONNECTED, WAIT)
        .expect("linphonec connected");
    linphone
        .wait_log(homeagent_testkit::peers::linphonec::log::ENDED, WAIT)
        .expect("linphonec saw the BYE");
}

#[test]
fn linphonec_manual_answer_and_terminate() {
    if !require(&["sipp", "linphonec", "stdbuf"]) {
        return;
    }
    let linphone = Linphonec::start(0, false).expect("linphonec starts");
    let target = format!("127.0.0.1:{}", linphone.sip_port());
    // uac_cancel needs the callee to keep ringing: linphonec without -a does.
    let result = Sipp::run(scenario("uac_cancel.xml"), &["-s", "linphone", &target]).expect("sipp");
    linphone
        .wait_log(homeagent_testkit::peers::linphonec::log::INCOMING, WAIT)
        .expect("linphonec rang");
    assert!(result.success, "{}\n{}", result.output, result.errors);
}

#[test]
fn linphonec_calls_baresip_and_hangs_up() {
    if !require(&["linphonec", "baresip", "stdbuf"]) {
        return;
    }
    let bob = baresip("bob", true);
    let linphone = Linphonec::start(0, false).expect("linphonec starts");
    linphone.call(&bob.uri()).expect("call");
    bob.wait_established(WAIT).expect("bob answered linphonec");
    linphone
        .wait_log(homeagent_testkit::peers::linphonec::log::CONNECTED, WAIT)
        .expect("linphonec connected");
    linphone.terminate().expect("terminate");
    bob.wait_log("session closed: ", WAIT)
        .expect("bob got linphonec's BYE");
}
