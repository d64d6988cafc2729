//! Two transaction layers talking over a simulated lossy UDP link, driving a whole call
//! (INVITE, 180, 200, ACK, BYE) with dialogs on both sides. Every message crosses the link
//! as bytes, so the printer and parser are exercised too.

use std::time::{Duration, Instant};

use homeagent_sip::dialog::Dialog;
use homeagent_sip::message::{NameAddr, Via, generate_branch, generate_call_id, generate_tag};
use homeagent_sip::transaction::{
    Peer, TimerConfig, TransactionEvent, TransactionLayer, Transport,
};
use homeagent_sip::{Method, Request, Response, Uri};

struct Node {
    layer: TransactionLayer,
    addr: Peer,
    events: Vec<TransactionEvent>,
}

struct Pair {
    alice: Node,
    bob: Node,
    now: Instant,
    /// Indices (in sending order) of datagrams the link drops.
    drops: Vec<usize>,
    sent: usize,
    /// (sender is alice, first line) of every delivered datagram.
    delivered: Vec<(bool, String)>,
}

impl Pair {
    fn new(drops: Vec<usize>) -> Pair {
        let node = |addr: &str| Node {
            layer: TransactionLayer::new(TimerConfig::default()),
            addr: Peer {
                addr: addr.parse().unwrap(),
                transport: Transport::Udp,
            },
            events: Vec::new(),
        };
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        let now = Instant::now();
        Pair {
            alice: node("192.0.2.1:5060"),
            bob: node("192.0.2.2:5060"),
            now,
            drops,
            sent: 0,
            delivered: Vec::new(),
        }
    }

    /// Moves every pending datagram across the link until both sides are quiet.
    fn deliver(&mut self) {
        loop {
            let (from_alice, transmit) = match self.alice.layer.poll_transmit() {
                Some(t) => (true, t),
                None => match self.bob.layer.poll_transmit() {
                    Some(t) => (false, t),
                    None => break,
                },
            };
            let index = self.sent;
            self.sent += 1;
            if self.drops.contains(&index) {
                continue;
            }
            let bytes = transmit.message.to_bytes();
            let first_line = String::from_utf8_lossy(&bytes)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            self.delivered.push((from_alice, first_line));
            let (src, dst) = if from_alice {
                (self.alice.addr, &mut self.bob)
            } else {
                (self.bob.addr, &mut self.alice)
            };
            assert_eq!(transmit.to.addr, dst.addr.addr, "sent to the right place");
            dst.layer.handle_datagram(self.now, src, &bytes);
        }
        self.alice
            .events
            .extend(std::iter::from_fn(|| self.alice.layer.poll_event()));
        self.bob
            .events
            .extend(std::iter::from_fn(|| self.bob.layer.poll_event()));
    }

    /// Advances the clock to the next timer of either side.
    fn step(&mut self) -> bool {
        let next = [
            self.alice.layer.poll_timeout(),
            self.bob.layer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        self.alice.layer.handle_timeout(self.now);
        self.bob.layer.handle_timeout(self.now);
        self.deliver();
        true
    }

    /// Steps until `pred` holds on the events, or fails after `limit` of simulated time.
    fn run_until(&mut self, limit: Duration, pred: impl Fn(&Pair) -> bool) {
        let deadline = self.now + limit;
        self.deliver();
        while !pred(self) {
            assert!(self.now < deadline, "condition not reached in time");
            assert!(self.step(), "nothing left to do");
        }
    }
}

fn via(node: &Node, random: u64) -> Via {
    let addr = node.addr.addr;
    Via::new(
        "UDP",
        &addr.ip().to_string(),
        Some(addr.port()),
        &generate_branch(random),
    )
}

fn contact(node: &Node, user: &str) -> NameAddr {
    let addr = node.addr.addr;
    NameAddr::new(Uri::sip(
        Some(user),
        &addr.ip().to_string(),
        Some(addr.port()),
    ))
}

fn invite(pair: &Pair) -> Request {
    let mut r = Request::new(Method::Invite, "sip:bob@192.0.2.2:5060".parse().unwrap());
    r.headers.push("Via", via(&pair.alice, 1).to_string());
    r.headers.push("Max-Forwards", "70");
    let mut from = NameAddr::new("sip:alice@a.example".parse().unwrap());
    from.set_tag(&generate_tag(11));
    r.headers.push("From", from.to_string());
    r.headers.push("To", "<sip:bob@b.example>");
    r.headers.push("Call-ID", generate_call_id([5, 6]));
    r.headers.push("CSeq", "1 INVITE");
    r.headers
        .push("Contact", contact(&pair.alice, "alice").to_string());
    r.headers.push("Content-Type", "application/sdp");
    r.body = b"v=0\r\n".to_vec();
    r
}

fn take_request(
    node: &mut Node,
    method: Method,
) -> Option<(homeagent_sip::transaction::TransactionId, Request)> {
    let pos = node.events.iter().position(
        |e| matches!(e, TransactionEvent::Request { request, .. } if request.method == method),
    )?;
    match node.events.remove(pos) {
        TransactionEvent::Request { id, request, .. } => Some((id, request)),
        _ => None,
    }
}

fn responses(node: &Node) -> Vec<u16> {
    node.events
        .iter()
        .filter_map(|e| match e {
            TransactionEvent::Response { response, .. } => Some(response.status),
            _ => None,
        })
        .collect()
}

/// Runs a whole call; `drops` are the indices (in sending order) of lost datagrams.
fn call(drops: Vec<usize>) -> Pair {
    let mut pair = Pair::new(drops);
    let invite = invite(&pair);
    let alice_tx = pair
        .alice
        .layer
        .send_request(pair.now, pair.bob.addr, invite.clone())
        .unwrap();

    // Bob sees the INVITE (possibly after Timer A) and rings.
    pair.run_until(Duration::from_secs(10), |p| {
        p.bob
            .events
            .iter()
            .any(|e| matches!(e, TransactionEvent::Request { .. }))
    });
    let (bob_tx, received) = take_request(&mut pair.bob, Method::Invite).unwrap();
    assert_eq!(received.body, invite.body);
    let bob_tag = generate_tag(22);
    let mut bob_dialog = Dialog::uas(&received, &bob_tag, Some(contact(&pair.bob, "bob"))).unwrap();
    let mut ringing = Response::from_request(&received, 180, "", Some(&bob_tag));
    ringing
        .headers
        .push("Contact", contact(&pair.bob, "bob").to_string());
    pair.bob
        .layer
        .send_response(pair.now, bob_tx, ringing)
        .unwrap();
    pair.run_until(Duration::from_secs(10), |p| {
        responses(&p.alice).contains(&180)
    });

    // Alice builds the early dialog; Bob answers.
    let ringing = pair
        .alice
        .events
        .iter()
        .find_map(|e| match e {
            TransactionEvent::Response { id, response } if response.status == 180 => {
                assert_eq!(*id, alice_tx);
                Some(response.clone())
            }
            _ => None,
        })
        .unwrap();
    let mut alice_dialog = Dialog::uac(&invite, &ringing).unwrap();
    let mut ok = Response::from_request(&received, 200, "", Some(&bob_tag));
    ok.headers
        .push("Contact", contact(&pair.bob, "bob").to_string());
    pair.bob.layer.send_response(pair.now, bob_tx, ok).unwrap();
    bob_dialog.confirm();
    pair.run_until(Duration::from_secs(10), |p| {
        responses(&p.alice).contains(&200)
    });

    // Alice ACKs every 2xx she gets (RFC 6026: retransmissions reach the TU).
    let oks: Vec<Response> = pair
        .alice
        .events
        .iter()
        .filter_map(|e| match e {
            TransactionEvent::Response { response, .. } if response.status == 200 => {
                Some(response.clone())
            }
            _ => None,
        })
        .collect();
    alice_dialog.receive_response(&oks[0]).unwrap();
    assert_eq!(alice_dialog.id.remote_tag, bob_tag);
    assert_eq!(alice_dialog.remote_target.user.as_deref(), Some("bob"));
    let ack = alice_dialog.ack_for_2xx(1, &via(&pair.alice, 2));
    pair.alice.layer.send_stateless(pair.bob.addr, ack.into());
    pair.run_until(Duration::from_secs(10), |p| {
        p.bob.events.iter().any(|e| {
            matches!(
                e,
                TransactionEvent::Ack {
                    invite: Some(_),
                    ..
                }
            )
        })
    });
    assert!(bob_dialog.receive_request(&ack_seen(&pair.bob)).is_ok());

    // Alice hangs up inside the dialog.
    let bye = alice_dialog.request(Method::Bye, &via(&pair.alice, 3));
    let bye_tx = pair
        .alice
        .layer
        .send_request(pair.now, pair.bob.addr, bye)
        .unwrap();
    pair.run_until(Duration::from_secs(10), |p| {
        p.bob.events.iter().any(|e| matches!(e, TransactionEvent::Request { request, .. } if request.method == Method::Bye))
    });
    let (bye_server, bye_in) = take_request(&mut pair.bob, Method::Bye).unwrap();
    bob_dialog.receive_request(&bye_in).unwrap();
    let bye_ok = Response::from_request(&bye_in, 200, "", None);
    pair.bob
        .layer
        .send_response(pair.now, bye_server, bye_ok)
        .unwrap();
    pair.run_until(Duration::from_secs(10), |p| {
        p.alice.events.iter().any(|e| matches!(e, TransactionEvent::Response { id, response } if *id == bye_tx && response.status == 200))
    });

    // Let every transaction run out.
    while pair.step() {}
    for node in [&pair.alice, &pair.bob] {
        assert!(
            !node.events.iter().any(|e| matches!(
                e,
                TransactionEvent::Timeout { .. } | TransactionEvent::NoAck { .. }
            )),
            "{:?}",
            node.events
        );
        assert_eq!(node.layer.poll_timeout(), None);
    }
    pair
}

fn ack_seen(node: &Node) -> Request {
    node.events
        .iter()
        .find_map(|e| match e {
            TransactionEvent::Ack { request, .. } => Some(request.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn clean_call() {
    let pair = call(Vec::new());
    let lines: Vec<&str> = pair.delivered.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "INVITE sip:bob@192.0.2.2:5060 SIP/2.0",
            "SIP/2.0 100 Trying",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK",
            "ACK sip:bob@192.0.2.2:5060 SIP/2.0",
            "BYE sip:bob@192.0.2.2:5060 SIP/2.0",
            "SIP/2.0 200 OK",
        ]
    );
}

#[test]
fn call_survives_lost_invite_and_lost_200() {
    // 0: INVITE lost → Timer A resends it (1); 2: 100, 3: 180; 4: 200 lost → Bob
    // retransmits the 2xx (5) until the ACK arrives.
    let pair = call(vec![0, 4]);
    let lines: Vec<&str> = pair.delivered.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines[0], "INVITE sip:bob@192.0.2.2:5060 SIP/2.0");
    assert_eq!(lines[1], "SIP/2.0 100 Trying");
    assert_eq!(lines[2], "SIP/2.0 180 Ringing");
    assert_eq!(lines[3], "SIP/2.0 200 OK");
    assert_eq!(lines[4], "ACK sip:bob@192.0.2.2:5060 SIP/2.0");
    assert_eq!(pair.sent - pair.delivered.len(), 2, "both losses happened");
    // Exactly one INVITE and one ACK reached Bob; the 2xx got through once.
    assert_eq!(lines.iter().filter(|l| l.starts_with("INVITE")).count(), 1);
    assert_eq!(lines.iter().filter(|l| l.starts_with("ACK")).count(), 1);
}
