use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::message::{Uri, generate_branch};

fn start() -> Instant {
    #[allow(clippy::disallowed_methods)] // Tests need one base instant.
    Instant::now()
}

fn peer(addr: &str, transport: Transport) -> Peer {
    Peer {
        addr: addr.parse::<SocketAddr>().unwrap(),
        transport,
    }
}

fn udp(addr: &str) -> Peer {
    peer(addr, Transport::Udp)
}

fn request(method: Method, branch: &str, via_extra: &str) -> Request {
    let mut r = Request::new(method.clone(), Uri::sip(Some("bob"), "192.0.2.9", None));
    r.headers.push(
        "Via",
        format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}{via_extra}"),
    );
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", "<sip:alice@a.example>;tag=ft");
    r.headers.push("To", "<sip:bob@b.example>");
    r.headers.push("Call-ID", "call-1");
    r.headers.push("CSeq", format!("1 {method}"));
    r
}

fn drain_transmits(layer: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| layer.poll_transmit()).collect()
}

fn drain_events(layer: &mut TransactionLayer) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

/// Runs the clock until `until`, returning the offsets (ms from `t0`) of every transmit
/// and the events seen.
fn run(
    layer: &mut TransactionLayer,
    t0: Instant,
    until: Duration,
) -> (Vec<u128>, Vec<TransactionEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > t0 + until {
            break;
        }
        layer.handle_timeout(at);
        for _ in drain_transmits(layer) {
            sent.push((at - t0).as_millis());
        }
        events.extend(drain_events(layer));
    }
    (sent, events)
}

#[test]
fn client_invite_timer_a_doubles_then_b_times_out() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(
            t0,
            udp("192.0.2.9:5060"),
            request(Method::Invite, &generate_branch(1), ""),
        )
        .unwrap();
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(60));
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        events,
        vec![
            TransactionEvent::Timeout { id },
            TransactionEvent::Terminated { id }
        ]
    );
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn client_non_invite_timer_e_caps_at_t2_then_f() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let id = layer
        .send_request(
            t0,
            udp("192.0.2.9:5060"),
            request(Method::Options, &generate_branch(2), ""),
        )
        .unwrap();
    drain_transmits(&mut layer);
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(60));
    assert_eq!(
        sent,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(events.first(), Some(&TransactionEvent::Timeout { id }));
}

#[test]
fn configurable_t1() {
    let t0 = start();
    let timers = TimerConfig {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(250),
        t4: Duration::from_secs(1),
    };
    let mut layer = TransactionLayer::new(timers);
    layer
        .send_request(
            t0,
            udp("192.0.2.9:5060"),
            request(Method::Bye, &generate_branch(3), ""),
        )
        .unwrap();
    drain_transmits(&mut layer);
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(10));
    assert_eq!(&sent[..4], &[100, 300, 550, 800]);
    // Timer F = 64·T1 = 6.4 s.
    assert!(events.contains(&TransactionEvent::Timeout {
        id: TransactionId(1)
    }));
    assert!(sent.iter().all(|&ms| ms < 6400));
}

#[test]
fn provisional_moves_non_invite_to_t2_retransmits() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request(Method::Register, &generate_branch(4), "");
    let id = layer
        .send_request(t0, udp("192.0.2.9:5060"), req.clone())
        .unwrap();
    drain_transmits(&mut layer);
    let trying = Response::from_request(&req, 100, "", None);
    layer.handle_message(
        t0 + Duration::from_millis(10),
        udp("192.0.2.9:5060"),
        trying.into(),
    );
    assert!(matches!(
        drain_events(&mut layer).as_slice(),
        [TransactionEvent::Response { id: got, response }] if *got == id && response.status == 100
    ));
    let (sent, _) = run(&mut layer, t0, Duration::from_secs(13));
    assert_eq!(sent, vec![4010, 8010, 12010]);
}

#[test]
fn client_invite_acks_failure_and_absorbs_retransmissions() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let mut invite = request(Method::Invite, &generate_branch(5), "");
    invite.headers.push("Route", "<sip:proxy.example;lr>");
    let to = udp("192.0.2.9:5060");
    let id = layer.send_request(t0, to, invite.clone()).unwrap();
    drain_transmits(&mut layer);
    let busy = Response::from_request(&invite, 486, "", Some("remote"));
    for _ in 0..2 {
        layer.handle_message(t0 + Duration::from_millis(100), to, busy.clone().into());
        let sent = drain_transmits(&mut layer);
        assert_eq!(sent.len(), 1);
        let Message::Request(ack) = &sent[0].message else {
            panic!("expected ACK");
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(sent[0].to, to);
        assert_eq!(ack.uri, invite.uri);
        assert_eq!(
            ack.headers.via().unwrap().branch(),
            Some(generate_branch(5).as_str())
        );
        assert_eq!(ack.headers.to().unwrap().tag(), Some("remote"));
        assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
        assert_eq!(ack.headers.cseq().unwrap().seq, 1);
        assert_eq!(ack.headers.routes().len(), 1);
    }
    let events = drain_events(&mut layer);
    assert_eq!(events.len(), 1, "retransmitted 486 is not reported twice");
    // Timer D (32 s) ends it; no retransmission meanwhile.
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(events, vec![TransactionEvent::Terminated { id }]);
}

#[test]
fn client_invite_reports_every_2xx_until_timer_m() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request(Method::Invite, &generate_branch(6), "");
    let to = udp("192.0.2.9:5060");
    let id = layer.send_request(t0, to, invite.clone()).unwrap();
    drain_transmits(&mut layer);
    let ok = Response::from_request(&invite, 200, "", Some("r"));
    layer.handle_message(t0, to, ok.clone().into());
    layer.handle_message(t0 + Duration::from_secs(1), to, ok.into());
    let events = drain_events(&mut layer);
    assert_eq!(events.len(), 2);
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "the TU sends the ACK for 2xx"
    );
    let (_, events) = run(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(events, vec![TransactionEvent::Terminated { id }]);
}

#[test]
fn no_retransmission_over_tcp() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let to = peer("192.0.2.9:5060", Transport::Tcp);
    let id = layer
        .send_request(t0, to, request(Method::Invite, &generate_branch(7), ""))
        .unwrap();
    let opts = request(Method::Options, &generate_branch(8), "");
    let id2 = layer.send_request(t0, to, opts.clone()).unwrap();
    assert_eq!(drain_transmits(&mut layer).len(), 2);
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    // Timer K is zero on a reliable transport.
    layer.handle_message(
        t0,
        to,
        Response::from_request(&opts, 200, "", Some("x")).into(),
    );
    assert_eq!(
        drain_events(&mut layer)[1..],
        [TransactionEvent::Terminated { id: id2 }]
    );
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(
        events,
        vec![
            TransactionEvent::Timeout { id },
            TransactionEvent::Terminated { id }
        ]
    );
}

#[test]
fn server_invite_absorbs_retransmissions_and_retransmits_failure() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let invite = request(Method::Invite, &generate_branch(9), "");
    layer.handle_message(t0, from, invite.clone().into());
    let events = drain_events(&mut layer);
    let [
        TransactionEvent::Request {
            id, request: got, ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    let id = *id;
    let sent = drain_transmits(&mut layer);
    assert!(matches!(&sent[0].message, Message::Response(r) if r.status == 100));
    // A retransmitted INVITE: no new event, 100 resent.
    layer.handle_message(t0 + Duration::from_millis(500), from, invite.clone().into());
    assert!(drain_events(&mut layer).is_empty());
    assert_eq!(drain_transmits(&mut layer).len(), 1);

    let busy = Response::from_request(got, 486, "", Some("local"));
    layer
        .send_response(t0 + Duration::from_secs(1), id, busy)
        .unwrap();
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    layer.handle_message(
        t0 + Duration::from_millis(1100),
        from,
        invite.clone().into(),
    );
    let resent = drain_transmits(&mut layer);
    assert!(matches!(&resent[0].message, Message::Response(r) if r.status == 486));
    // Timer G from t0+1 s: +0.5, +1.5, +3.5, then capped at T2.
    let (sent, _) = run(&mut layer, t0, Duration::from_secs(12));
    assert_eq!(sent, vec![1500, 2500, 4500, 8500]);
    // The ACK (same branch) ends retransmissions and is absorbed; Timer I ends it.
    let mut ack = invite.clone();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    ack.headers.set("To", "<sip:bob@b.example>;tag=local");
    layer.handle_message(t0 + Duration::from_secs(12), from, ack.into());
    assert!(drain_events(&mut layer).is_empty());
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(events, vec![TransactionEvent::Terminated { id }]);
}

#[test]
fn server_invite_timer_h_without_ack() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let invite = request(Method::Invite, &generate_branch(10), "");
    layer.handle_message(t0, from, invite.clone().into());
    drain_events(&mut layer);
    let id = TransactionId(1);
    layer
        .send_response(t0, id, Response::from_request(&invite, 404, "", Some("l")))
        .unwrap();
    let (_, events) = run(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(
        events,
        vec![
            TransactionEvent::Timeout { id },
            TransactionEvent::Terminated { id }
        ]
    );
}

#[test]
fn server_2xx_retransmitted_until_ack() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let invite = request(Method::Invite, &generate_branch(11), "");
    layer.handle_message(t0, from, invite.clone().into());
    drain_events(&mut layer);
    drain_transmits(&mut layer);
    let id = TransactionId(1);
    let ok = Response::from_request(&invite, 200, "", Some("l"));
    layer.send_response(t0, id, ok).unwrap();
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    let (sent, _) = run(&mut layer, t0, Duration::from_secs(8));
    assert_eq!(sent, vec![500, 1500, 3500, 7500]);
    // A retransmitted INVITE is absorbed in Accepted.
    layer.handle_message(t0 + Duration::from_secs(8), from, invite.clone().into());
    assert!(drain_transmits(&mut layer).is_empty());
    // ACK with its own branch, matched by dialog.
    let mut ack = request(Method::Ack, &generate_branch(99), "");
    ack.headers.set("To", "<sip:bob@b.example>;tag=l");
    layer.handle_message(t0 + Duration::from_secs(9), from, ack.clone().into());
    let events = drain_events(&mut layer);
    assert!(matches!(
        events.as_slice(),
        [TransactionEvent::Ack { invite: Some(got), .. }] if *got == id
    ));
    layer.handle_message(t0 + Duration::from_secs(9), from, ack.into());
    assert!(drain_events(&mut layer).is_empty(), "repeated ACK absorbed");
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(events, vec![TransactionEvent::Terminated { id }]);
}

#[test]
fn server_2xx_without_ack_reports_no_ack() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let invite = request(Method::Invite, &generate_branch(12), "");
    layer.handle_message(t0, from, invite.clone().into());
    let id = TransactionId(1);
    layer
        .send_response(t0, id, Response::from_request(&invite, 200, "", Some("l")))
        .unwrap();
    drain_events(&mut layer);
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(40));
    assert_eq!(sent.last(), Some(&31500));
    assert_eq!(
        events,
        vec![
            TransactionEvent::NoAck { id },
            TransactionEvent::Terminated { id }
        ]
    );
}

#[test]
fn server_non_invite_absorbs_and_resends_final() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let options = request(Method::Options, &generate_branch(13), "");
    layer.handle_message(t0, from, options.clone().into());
    assert_eq!(drain_events(&mut layer).len(), 1);
    assert!(
        drain_transmits(&mut layer).is_empty(),
        "no automatic 100 for non-INVITE"
    );
    layer.handle_message(t0, from, options.clone().into());
    assert!(drain_events(&mut layer).is_empty());
    assert!(drain_transmits(&mut layer).is_empty(), "absorbed in Trying");
    let id = TransactionId(1);
    layer
        .send_response(t0, id, Response::from_request(&options, 200, "", Some("l")))
        .unwrap();
    drain_transmits(&mut layer);
    layer.handle_message(t0 + Duration::from_secs(1), from, options.clone().into());
    assert!(drain_events(&mut layer).is_empty());
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    assert_eq!(
        layer.send_response(t0, id, Response::from_request(&options, 200, "", None)),
        Err(SendError::InvalidState)
    );
    // Timer J = 64·T1.
    let (sent, events) = run(&mut layer, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(events, vec![TransactionEvent::Terminated { id }]);
}

#[test]
fn cancel_is_answered_and_reported() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let branch = generate_branch(14);
    let invite = request(Method::Invite, &branch, "");
    layer.handle_message(t0, from, invite.clone().into());
    drain_events(&mut layer);
    drain_transmits(&mut layer);
    let cancel = request(Method::Cancel, &branch, "");
    layer.handle_message(t0, from, cancel.clone().into());
    let sent = drain_transmits(&mut layer);
    assert!(
        matches!(&sent[..], [Transmit { message: Message::Response(r), .. }]
        if r.status == 200 && r.headers.cseq().unwrap().method == Method::Cancel)
    );
    let events = drain_events(&mut layer);
    assert!(matches!(events.as_slice(),
        [TransactionEvent::Cancelled { invite, .. }] if *invite == TransactionId(1)));
    // Retransmitted CANCEL: 200 again, no new event.
    layer.handle_message(t0, from, cancel.into());
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    assert!(drain_events(&mut layer).is_empty());
    // CANCEL for an unknown INVITE gets 481.
    let stray = request(Method::Cancel, &generate_branch(15), "");
    layer.handle_message(t0, from, stray.into());
    let sent = drain_transmits(&mut layer);
    assert!(
        matches!(&sent[..], [Transmit { message: Message::Response(r), .. }] if r.status == 481)
    );
    assert!(drain_events(&mut layer).is_empty());
}

#[test]
fn responses_follow_via_received_and_rport() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    // rport: response goes to the source address and port.
    let nat = udp("203.0.113.7:40000");
    layer.handle_message(
        t0,
        nat,
        request(Method::Options, &generate_branch(16), ";rport").into(),
    );
    let events = drain_events(&mut layer);
    let [
        TransactionEvent::Request {
            id,
            request: req,
            from,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(*from, nat);
    let via = req.headers.via().unwrap();
    assert_eq!(via.received(), Some("203.0.113.7"));
    assert_eq!(via.rport(), Some(Some(40000)));
    layer
        .send_response(t0, *id, Response::from_request(req, 200, "", Some("t")))
        .unwrap();
    let sent = drain_transmits(&mut layer);
    assert_eq!(sent[0].to, nat);
    let Message::Response(resp) = &sent[0].message else {
        panic!()
    };
    assert_eq!(resp.headers.via().unwrap().rport(), Some(Some(40000)));

    // No rport: received IP, sent-by port.
    layer.handle_message(
        t0,
        nat,
        request(Method::Options, &generate_branch(17), "").into(),
    );
    let events = drain_events(&mut layer);
    let [
        TransactionEvent::Request {
            id, request: req, ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    layer
        .send_response(t0, *id, Response::from_request(req, 200, "", Some("t")))
        .unwrap();
    assert_eq!(drain_transmits(&mut layer)[0].to, udp("203.0.113.7:5060"));

    // TCP: back over the connection it came from.
    let tcp = peer("203.0.113.7:50123", Transport::Tcp);
    layer.handle_message(
        t0,
        tcp,
        request(Method::Options, &generate_branch(18), "").into(),
    );
    let events = drain_events(&mut layer);
    let [
        TransactionEvent::Request {
            id, request: req, ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    layer
        .send_response(t0, *id, Response::from_request(req, 200, "", Some("t")))
        .unwrap();
    assert_eq!(drain_transmits(&mut layer)[0].to, tcp);
}

#[test]
fn malformed_datagrams() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let from = udp("192.0.2.1:5060");
    let mut bad = request(Method::Invite, &generate_branch(19), "");
    bad.headers.set("CSeq", "1 BYE");
    layer.handle_datagram(t0, from, &bad.to_bytes());
    let sent = drain_transmits(&mut layer);
    assert!(
        matches!(&sent[..], [Transmit { message: Message::Response(r), to }]
        if r.status == 400 && *to == from)
    );
    assert!(drain_events(&mut layer).is_empty());
    layer.handle_datagram(t0, from, b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n");
    layer.handle_datagram(t0, from, b"\x00\xff garbage");
    assert!(drain_transmits(&mut layer).is_empty());
    assert!(drain_events(&mut layer).is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn send_errors() {
    let t0 = start();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let to = udp("192.0.2.9:5060");
    let mut no_via = request(Method::Invite, "x", "");
    no_via.headers.remove("Via");
    assert_eq!(
        layer.send_request(t0, to, no_via),
        Err(SendError::MissingBranch)
    );
    let ack = request(Method::Ack, &generate_branch(20), "");
    assert_eq!(layer.send_request(t0, to, ack), Err(SendError::Ack));
    let resp = Response::from_request(&request(Method::Invite, "b", ""), 200, "", None);
    assert_eq!(
        layer.send_response(t0, TransactionId(42), resp),
        Err(SendError::UnknownTransaction)
    );
}
