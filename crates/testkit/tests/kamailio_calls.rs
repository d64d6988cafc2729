//! baresip registers at a real Kamailio and is called through it.

use std::time::Duration;

use homeagent_testkit::peers::baresip::{Baresip, BaresipOpts, SipAccount, Transport};
use homeagent_testkit::{Kamailio, KamailioOpts, require};

const WAIT: Duration = Duration::from_secs(10);

fn account(kamailio: &Kamailio, user: &str, transport: Transport) -> SipAccount {
    SipAccount {
        user: user.into(),
        password: format!("{user}pw"),
        registrar: kamailio.addr(),
        transport,
    }
}

#[test]
fn baresip_calls_baresip_through_kamailio() {
    if !require(&["kamailio", "kamcmd", "baresip", "stdbuf"]) {
        return;
    }
    let kamailio = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    assert!(
        kamailio.ca().is_some_and(|ca| ca.exists()),
        "WITH_TLS makes a CA"
    );
    let bob = Baresip::start(BaresipOpts {
        name: "bob".into(),
        account: Some(account(&kamailio, "bob", Transport::Udp)),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("bob registers");
    let alice = Baresip::start(BaresipOpts {
        name: "alice".into(),
        account: Some(account(&kamailio, "alice", Transport::Tcp)),
        record: false,
        ..BaresipOpts::default()
    })
    .expect("alice registers over TCP");
    let contact = kamailio
        .wait_registered("bob", WAIT)
        .expect("bob in usrloc");
    assert!(contact.contains(&bob.sip_port().to_string()), "{contact}");
    kamailio
        .wait_registered("alice", WAIT)
        .expect("alice in usrloc");

    alice.dial(&bob.aor()).expect("dial");
    alice.wait_established(WAIT).expect("alice established");
    bob.wait_established(WAIT).expect("bob established");
    bob.wait_rtp(WAIT).expect("rtp flows");
    // The INVITE came through the proxy: it carries Kamailio's Record-Route.
    let invite = bob
        .wait_sip(WAIT, "the INVITE", |m| {
            m.incoming && m.method() == Some("INVITE")
        })
        .expect("bob's trace has the INVITE");
    let record_route = invite.header("Record-Route").unwrap_or_default();
    assert!(
        record_route.contains(&kamailio.udp_port().to_string()),
        "{}",
        invite.text
    );
    alice.hangup().expect("hangup");
    bob.wait_log("session closed: ", WAIT)
        .expect("bob gets the BYE");
    assert!(
        kamailio.log().contains("INVITE"),
        "WITH_MSGLOG logs requests"
    );
}
