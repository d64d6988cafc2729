//! Two phones calling each other over a simulated network on a simulated clock.
//!
//! Deterministic: every run with the same seed sends the same packets at the same times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use homeagent_core::sip::message::{Message, Method, Request, Response};
use homeagent_core::sip::transaction::{Peer, Transport};
use homeagent_core::{
    Account, AgentState, AnswerMode, CallId, CodecKind, Command, Direction, EndReason, IceConfig,
    Input, MediaCommand, Output, Phone, PhoneConfig, PhoneEvent, RegistrationState, SrtpPolicy,
};
use homeagent_testkit::netem::{Impairment, NetEmulator};

struct Node {
    phone: Phone,
    peer: Peer,
    events: Vec<PhoneEvent>,
    media: Vec<MediaCommand>,
}

/// A tiny in-memory registrar: challenges once per REGISTER, then accepts.
struct Registrar {
    peer: Peer,
    challenged: bool,
    requests: Vec<Request>,
    /// Where requests seem to come from (a NAT in front of the phone): answered as the top
    /// Via's `received` and `rport`.
    nat: Option<SocketAddr>,
}

struct World {
    now: Instant,
    nodes: Vec<Node>,
    registrar: Option<Registrar>,
    net: NetEmulator<(Peer, Peer, Vec<u8>)>,
}

fn peer(ip: [u8; 4]) -> Peer {
    Peer {
        addr: SocketAddr::from((ip, 5060)),
        transport: Transport::Udp,
    }
}

impl World {
    fn new(seed: u64, impairment: Impairment, configs: Vec<PhoneConfig>) -> Self {
        #[allow(clippy::disallowed_methods)] // the simulated clock's origin
        let now = Instant::now();
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                let peer = config.local;
                let mut phone = Phone::new(config, seed + i as u64, now);
                for port in [20000u16, 20002, 20004] {
                    phone.handle_input(Input::MediaPortReady(port));
                }
                Node {
                    phone,
                    peer,
                    events: Vec::new(),
                    media: Vec::new(),
                }
            })
            .collect();
        Self {
            now,
            nodes,
            registrar: None,
            net: NetEmulator::new(seed, impairment),
        }
    }

    fn command(&mut self, node: usize, command: Command) {
        let now = self.now;
        self.nodes[node]
            .phone
            .handle_input(Input::Command(now, command));
    }

    /// Runs until `until` (simulated) or until `done` holds.
    fn run(&mut self, limit: Duration, done: impl Fn(&World) -> bool) {
        let end = self.now + limit;
        loop {
            let mut next = end;
            for i in 0..self.nodes.len() {
                loop {
                    match self.nodes[i].phone.poll_output() {
                        Output::Transmit(t) => {
                            let from = self.nodes[i].peer;
                            self.net.send(self.now, (from, t.to, t.message.to_bytes()));
                        }
                        Output::Event(e) => self.nodes[i].events.push(e),
                        Output::Media(m) => self.nodes[i].media.push(m),
                        Output::Timeout(t) => {
                            if let Some(t) = t {
                                next = next.min(t);
                            }
                            break;
                        }
                    }
                }
            }
            if done(self) || self.now >= end {
                return;
            }
            if let Some(t) = self.net.next_delivery() {
                next = next.min(t);
            }
            self.now = next.max(self.now);
            while let Some((from, to, bytes)) = self.net.poll_delivery(self.now) {
                self.deliver(from, to, bytes);
            }
            let now = self.now;
            for node in &mut self.nodes {
                node.phone.handle_input(Input::Timeout(now));
            }
        }
    }

    fn deliver(&mut self, from: Peer, to: Peer, bytes: Vec<u8>) {
        let now = self.now;
        if let Some(node) = self.nodes.iter_mut().find(|n| n.peer.addr == to.addr) {
            node.phone
                .handle_input(Input::Datagram { now, from, bytes });
            return;
        }
        if let Some(registrar) = &mut self.registrar {
            if registrar.peer.addr == to.addr {
                if let Some(reply) = registrar.handle(&bytes) {
                    let reply = (registrar.peer, from, reply.to_bytes());
                    self.net.send(now, reply);
                }
            }
        }
    }

    fn events(&self, node: usize) -> &[PhoneEvent] {
        &self.nodes[node].events
    }

    fn ended(&self, node: usize) -> Option<EndReason> {
        self.events(node).iter().find_map(|e| match e {
            PhoneEvent::Ended { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    fn established(&self, node: usize) -> bool {
        self.events(node)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Established { .. }))
    }
}

impl Registrar {
    fn handle(&mut self, bytes: &[u8]) -> Option<Response> {
        let Ok(Message::Request(mut request)) = Message::parse(bytes) else {
            return None;
        };
        if let (Some(nat), Some(mut via)) = (self.nat, request.headers.via()) {
            via.params.set("received", Some(&nat.ip().to_string()));
            via.params.set("rport", Some(&nat.port().to_string()));
            request.headers.set_via(&via);
        }
        self.requests.push(request.clone());
        if request.method == Method::Publish {
            // A presence server: takes every publication, the ETag numbered by CSeq.
            let mut r = Response::from_request(&request, 200, "OK", Some("pub"));
            let cseq = request.headers.cseq().map_or(0, |c| c.seq);
            r.headers.push("SIP-ETag", format!("etag-{cseq}"));
            r.headers.push("Expires", "600");
            return Some(r);
        }
        if request.method == Method::Options {
            return Some(Response::from_request(&request, 200, "OK", Some("opt")));
        }
        if request.method != Method::Register {
            return None;
        }
        let authorized = request.headers.get("Authorization").is_some();
        if !authorized {
            self.challenged = true;
            let mut r = Response::from_request(&request, 401, "Unauthorized", Some("reg"));
            r.headers.push(
                "WWW-Authenticate",
                r#"Digest realm="test", nonce="abc123", qop="auth", algorithm=MD5"#,
            );
            return Some(r);
        }
        let mut r = Response::from_request(&request, 200, "OK", Some("reg"));
        if let Some(contact) = request.headers.get("Contact") {
            r.headers.push("Contact", contact.to_owned());
        }
        Some(r)
    }
}

/// The account `user` (password `secret`) at the registrar 10.0.0.100.
/// One phone (`config`) and the in-memory registrar at `registrar` (behind a NAT that maps
/// the phone to `nat`, if any).
fn world_at_registrar(
    seed: u64,
    config: PhoneConfig,
    registrar: Peer,
    nat: Option<std::net::SocketAddr>,
) -> World {
    let mut world = World::new(seed, Impairment::default(), vec![config]);
    world.registrar = Some(Registrar {
        peer: registrar,
        challenged: false,
        requests: Vec::new(),
        nat,
    });
    world
}

fn account_at_registrar(user: &str) -> Account {
    Account {
        registrar: "sip:10.0.0.100".into(),
        proxy: peer([10, 0, 0, 100]),
        domain: "10.0.0.100".into(),
        user: user.into(),
        auth_user: None,
        password: "secret".into(),
        expires: 120,
    }
}

fn two_phones(answer: AnswerMode) -> Vec<PhoneConfig> {
    let a = PhoneConfig::new(peer([10, 0, 0, 1]));
    let mut b = PhoneConfig::new(peer([10, 0, 0, 2]));
    b.answer = answer;
    vec![a, b]
}

fn dial(world: &mut World) {
    let to = world.nodes[1].peer;
    world.command(
        0,
        Command::Call {
            uri: "sip:bob@10.0.0.2".into(),
            next_hop: Some(to),
        },
    );
}

#[test]
fn call_answer_and_hang_up() {
    let mut world = World::new(
        1,
        Impairment {
            delay: Duration::from_millis(20),
            ..Default::default()
        },
        two_phones(AnswerMode::Auto),
    );
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| {
        w.established(0) && w.established(1)
    });
    assert!(world.established(0), "caller: {:?}", world.events(0));
    assert!(world.established(1), "callee: {:?}", world.events(1));
    // Both sides started media towards each other's RTP port.
    for node in 0..2 {
        let started = world.nodes[node].media.iter().any(|m| matches!(m, MediaCommand::Start { media, .. } if media.direction == Direction::SendRecv));
        assert!(started, "node {node} media: {:?}", world.nodes[node].media);
    }
    world.command(0, Command::Hangup { call: CallId(1) });
    world.run(Duration::from_secs(5), |w| w.ended(1).is_some());
    assert_eq!(world.ended(0), Some(EndReason::LocalHangup));
    assert_eq!(world.ended(1), Some(EndReason::RemoteHangup));
    assert!(
        world.nodes[1]
            .media
            .iter()
            .any(|m| matches!(m, MediaCommand::Stop { .. }))
    );
}

#[test]
fn call_survives_a_lossy_network() {
    // 30 % loss each way: retransmissions (timers A, E, G) must carry the call through.
    let impairment = Impairment {
        loss: 0.3,
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        ..Default::default()
    };
    for seed in 1..=5 {
        let mut world = World::new(seed, impairment.clone(), two_phones(AnswerMode::Auto));
        dial(&mut world);
        world.run(Duration::from_secs(30), |w| {
            w.established(0) && w.established(1)
        });
        assert!(
            world.established(0) && world.established(1),
            "seed {seed}: {:?} / {:?}",
            world.events(0),
            world.events(1)
        );
        world.command(1, Command::Hangup { call: CallId(1) });
        world.run(Duration::from_secs(40), |w| w.ended(0).is_some());
        assert_eq!(world.ended(0), Some(EndReason::RemoteHangup), "seed {seed}");
    }
}

#[test]
fn rejected_call_reports_busy() {
    let mut world = World::new(2, Impairment::default(), two_phones(AnswerMode::Reject));
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| w.ended(0).is_some());
    assert_eq!(world.ended(0), Some(EndReason::Busy));
    assert_eq!(world.ended(1), Some(EndReason::Declined));
}

/// A not-ready agent refuses the platform's calls (480), a busy one too (486); a ready agent
/// gets the platform's call answered by itself (forced delivery), then after-call work.
#[test]
fn the_agent_state_decides_which_platform_calls_come_in() {
    let mut configs = two_phones(AnswerMode::Manual);
    configs[1].acd.platform = vec![(peer([10, 0, 0, 1]).addr.ip(), None)];
    configs[1].acd.auto_answer_all = true;
    configs[1].acd.wrapup.max_time = Duration::from_secs(30);
    let mut world = World::new(4, Impairment::default(), configs);
    let not_ready = AgentState::NotReady {
        reason: "pause".into(),
    };
    world.command(
        1,
        Command::SetAgentState {
            state: not_ready.clone(),
        },
    );
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| w.ended(0).is_some());
    let refused = world.events(0).iter().find_map(|e| match e {
        PhoneEvent::Ended { code, .. } => *code,
        _ => None,
    });
    assert_eq!(refused, Some(480), "{:?}", world.events(0));
    // Ready: the platform's call is answered at once, by itself.
    world.nodes[0].events.clear();
    world.nodes[1].events.clear();
    world.command(
        1,
        Command::SetAgentState {
            state: AgentState::Ready,
        },
    );
    dial(&mut world);
    world.run(Duration::from_secs(3), |w| w.established(0));
    assert!(
        world
            .events(1)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Answered { auto: true, .. }))
    );
    let states = |world: &World| -> Vec<AgentState> {
        world
            .events(1)
            .iter()
            .filter_map(|e| match e {
                PhoneEvent::AgentState { state } => Some(state.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(states(&world), [AgentState::Ready, AgentState::OnCall]);
    world.command(0, Command::Hangup { call: CallId(2) });
    world.run(Duration::from_secs(3), |w| w.ended(1).is_some());
    assert_eq!(states(&world).last(), Some(&AgentState::AfterCallWork));
    // The wrap-up is done: ready again.
    world.command(1, Command::WrapupDone);
    world.run(Duration::from_millis(10), |_| false);
    assert_eq!(states(&world).last(), Some(&AgentState::Ready));
}

#[test]
fn caller_cancels_while_ringing() {
    let mut world = World::new(
        3,
        Impairment {
            delay: Duration::from_millis(10),
            ..Default::default()
        },
        two_phones(AnswerMode::Manual),
    );
    dial(&mut world);
    world.run(Duration::from_secs(2), |w| {
        w.events(0)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Ringing { .. }))
    });
    assert!(
        world
            .events(1)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Incoming { .. }))
    );
    world.command(0, Command::Hangup { call: CallId(1) });
    world.run(Duration::from_secs(5), |w| w.ended(1).is_some());
    assert_eq!(world.ended(0), Some(EndReason::Cancelled));
    assert_eq!(world.ended(1), Some(EndReason::RemoteCancelled));
}

#[test]
fn manual_answer_then_hold_and_resume() {
    let mut world = World::new(
        4,
        Impairment {
            delay: Duration::from_millis(10),
            ..Default::default()
        },
        two_phones(AnswerMode::Manual),
    );
    dial(&mut world);
    world.run(Duration::from_secs(2), |w| {
        w.events(1)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Incoming { .. }))
    });
    world.command(1, Command::Answer { call: CallId(1) });
    world.run(Duration::from_secs(2), |w| {
        w.established(0) && w.established(1)
    });
    assert!(
        world
            .events(1)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Answered { auto: false, .. }))
    );
    world.command(0, Command::Hold { call: CallId(1) });
    world.run(Duration::from_secs(2), |w| {
        w.events(1).iter().any(|e| {
            matches!(
                e,
                PhoneEvent::Hold {
                    local: false,
                    on: true,
                    ..
                }
            )
        })
    });
    assert!(
        world.events(1).iter().any(|e| matches!(
            e,
            PhoneEvent::Hold {
                local: false,
                on: true,
                ..
            }
        )),
        "{:?}",
        world.events(1)
    );
    // The held side stops sending; the holder stops both ways (the agent's mic is cut).
    let held = world.nodes[1].media.iter().rev().find_map(|m| match m {
        MediaCommand::Update { media, .. } => Some(media.direction),
        _ => None,
    });
    assert_eq!(held, Some(Direction::RecvOnly));
    let holder = world.nodes[0].media.iter().rev().find_map(|m| match m {
        MediaCommand::Update { media, .. } => Some(media.direction),
        _ => None,
    });
    assert_eq!(holder, Some(Direction::Inactive));
    world.command(0, Command::Resume { call: CallId(1) });
    world.run(Duration::from_secs(2), |w| {
        w.events(1).iter().any(|e| {
            matches!(
                e,
                PhoneEvent::Hold {
                    local: false,
                    on: false,
                    ..
                }
            )
        })
    });
    let resumed = world.nodes[1].media.iter().rev().find_map(|m| match m {
        MediaCommand::Update { media, .. } => Some(media.direction),
        _ => None,
    });
    assert_eq!(resumed, Some(Direction::SendRecv));
}

#[test]
fn unanswered_call_times_out_with_cancel() {
    let mut configs = two_phones(AnswerMode::Manual);
    configs[0].no_answer_timeout = Duration::from_secs(3);
    let mut world = World::new(5, Impairment::default(), configs);
    dial(&mut world);
    world.run(Duration::from_secs(10), |w| {
        w.ended(0).is_some() && w.ended(1).is_some()
    });
    assert_eq!(world.ended(0), Some(EndReason::Timeout));
    assert_eq!(world.ended(1), Some(EndReason::RemoteCancelled));
}

#[test]
fn nobody_there_times_out() {
    let mut world = World::new(6, Impairment::default(), two_phones(AnswerMode::Auto));
    world.command(
        0,
        Command::Call {
            uri: "sip:ghost@10.0.0.9".into(),
            next_hop: Some(peer([10, 0, 0, 9])),
        },
    );
    world.run(Duration::from_secs(40), |w| w.ended(0).is_some());
    assert_eq!(world.ended(0), Some(EndReason::Timeout));
}

#[test]
fn registers_with_digest_and_unregisters_on_shutdown() {
    let registrar = peer([10, 0, 0, 100]);
    let mut config = PhoneConfig::new(peer([10, 0, 0, 1]));
    config.account = Some(account_at_registrar("alice"));
    let mut world = world_at_registrar(7, config, registrar, None);
    let registered = |w: &World| {
        w.events(0).iter().any(|e| {
            matches!(
                e,
                PhoneEvent::Registration(RegistrationState::Registered { .. })
            )
        })
    };
    world.run(Duration::from_secs(5), registered);
    assert!(registered(&world), "{:?}", world.events(0));
    let r = world.registrar.as_ref().unwrap();
    assert!(r.challenged);
    let auth = r
        .requests
        .last()
        .unwrap()
        .headers
        .get("Authorization")
        .unwrap()
        .to_owned();
    assert!(
        auth.contains("username=\"alice\"")
            && auth.contains("nonce=\"abc123\"")
            && auth.contains("qop=auth"),
        "{auth}"
    );
    // Refreshed before the 120 s expire.
    let before = world.registrar.as_ref().unwrap().requests.len();
    world.run(Duration::from_secs(100), |_| false);
    assert!(
        world.registrar.as_ref().unwrap().requests.len() > before,
        "no refresh"
    );
    world.command(0, Command::Shutdown);
    world.run(Duration::from_secs(10), |w| {
        w.events(0).contains(&PhoneEvent::Stopped)
    });
    assert!(
        world
            .events(0)
            .contains(&PhoneEvent::Registration(RegistrationState::Unregistered))
    );
    assert!(world.events(0).contains(&PhoneEvent::Stopped));
    let last = world
        .registrar
        .as_ref()
        .unwrap()
        .requests
        .last()
        .unwrap()
        .clone();
    assert_eq!(last.headers.get("Expires"), Some("0"));
}

/// SIP-only contact-center mode: the agent's state is published as presence once registered
/// (`open` when ready), and again with the platform's ETag when it changes (`closed`).
#[test]
fn the_agent_state_is_published_as_presence() {
    let registrar = peer([10, 0, 0, 100]);
    let mut config = PhoneConfig::new(peer([10, 0, 0, 1]));
    config.account = Some(account_at_registrar("alice"));
    config.acd.publish_presence = true;
    let mut world = world_at_registrar(7, config, registrar, None);
    let publishes = |w: &World| -> Vec<Request> {
        w.registrar
            .as_ref()
            .map(|r| {
                r.requests
                    .iter()
                    .filter(|q| q.method == Method::Publish)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    world.run(Duration::from_secs(5), |w| !publishes(w).is_empty());
    let first = publishes(&world);
    assert_eq!(first.len(), 1, "one publication once registered");
    let body = String::from_utf8_lossy(&first[0].body).into_owned();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert_eq!(first[0].headers.get("Event"), Some("presence"));
    assert_eq!(first[0].headers.get("SIP-If-Match"), None);
    world.command(
        0,
        Command::SetAgentState {
            state: AgentState::NotReady {
                reason: "pause".into(),
            },
        },
    );
    world.run(Duration::from_secs(2), |w| publishes(w).len() >= 2);
    let second = publishes(&world);
    assert_eq!(second.len(), 2);
    let body = String::from_utf8_lossy(&second[1].body).into_owned();
    assert!(body.contains("<basic>closed</basic>"), "{body}");
    assert!(body.contains("not_ready (pause)"), "{body}");
    let etag = second[1].headers.get("SIP-If-Match").unwrap_or_default();
    assert!(etag.starts_with("etag-"), "{etag}");
}

#[test]
fn malformed_request_gets_400_and_no_call() {
    let mut world = World::new(8, Impairment::default(), two_phones(AnswerMode::Auto));
    let garbage = b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\nv=0\r\n".to_vec();
    let now = world.now;
    world.nodes[1].phone.handle_input(Input::Datagram {
        now,
        from: peer([10, 0, 0, 1]),
        bytes: garbage,
    });
    // Past the agent's starting state.
    let mut out = world.nodes[1].phone.poll_output();
    while let Output::Event(PhoneEvent::AgentState { .. }) = out {
        out = world.nodes[1].phone.poll_output();
    }
    match out {
        Output::Transmit(t) => match t.message {
            Message::Response(r) => assert_eq!(r.status, 400),
            other => panic!("expected a 400, got {other:?}"),
        },
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(world.events(1).is_empty());
}

#[test]
fn two_calls_at_once_stay_independent() {
    let mut configs = two_phones(AnswerMode::Auto);
    configs.push(PhoneConfig::new(peer([10, 0, 0, 3])));
    let mut world = World::new(
        9,
        Impairment {
            delay: Duration::from_millis(5),
            ..Default::default()
        },
        configs,
    );
    dial(&mut world);
    world.run(Duration::from_secs(2), |w| w.established(0));
    let b = world.nodes[1].peer;
    world.command(
        2,
        Command::Call {
            uri: "sip:bob@10.0.0.2".into(),
            next_hop: Some(b),
        },
    );
    world.run(Duration::from_secs(2), |w| w.established(2));
    assert!(world.established(2), "{:?}", world.events(2));
    // A vanishes (laptop closed): B's BYE for call 1 goes unanswered, so call 1 lingers
    // while B holds call 2. The answer to that re-INVITE must reach call 2: only then can
    // B resume.
    world.nodes[0].peer = peer([10, 0, 0, 99]);
    world.command(1, Command::Hangup { call: CallId(1) });
    world.command(1, Command::Hold { call: CallId(2) });
    world.run(Duration::from_secs(40), |_| false);
    assert!(world.events(2).iter().any(|e| matches!(
        e,
        PhoneEvent::Hold {
            local: false,
            on: true,
            ..
        }
    )));
    world.command(1, Command::Resume { call: CallId(2) });
    let resumed = |w: &World| {
        w.events(2).iter().any(|e| {
            matches!(
                e,
                PhoneEvent::Hold {
                    local: false,
                    on: false,
                    ..
                }
            )
        })
    };
    world.run(Duration::from_secs(2), resumed);
    assert!(resumed(&world), "{:?}", world.events(2));
    assert_eq!(
        world.ended(2),
        None,
        "C's call ended: {:?}",
        world.events(2)
    );
    let b_ended: Vec<CallId> = world
        .events(1)
        .iter()
        .filter_map(|e| match e {
            PhoneEvent::Ended { call, .. } => Some(*call),
            _ => None,
        })
        .collect();
    assert_eq!(b_ended, vec![CallId(1)]);
}

/// An INVITE without SDP (late offer): we offer in the 200 OK and take the answer from the ACK.
#[test]
fn late_offer_is_answered_in_the_ack() {
    use homeagent_core::sip::message::Request;
    use homeagent_media::sdp::{LocalMedia, SessionDescription, create_answer};

    let mut world = World::new(10, Impairment::default(), two_phones(AnswerMode::Auto));
    let caller = peer([10, 0, 0, 1]);
    let invite = "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlate1\r\n\
        From: <sip:pbx@10.0.0.1>;tag=pbx1\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: late-offer-1\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:pbx@10.0.0.1:5060>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let now = world.now;
    world.nodes[1].phone.handle_input(Input::Datagram {
        now,
        from: caller,
        bytes: invite.as_bytes().to_vec(),
    });
    let mut ok = None;
    loop {
        match world.nodes[1].phone.poll_output() {
            Output::Transmit(t) => {
                if let Message::Response(r) = t.message {
                    if r.status == 200 {
                        ok = Some(r);
                    }
                }
            }
            Output::Event(e) => world.nodes[1].events.push(e),
            Output::Media(m) => world.nodes[1].media.push(m),
            Output::Timeout(_) => break,
        }
    }
    let ok = ok.expect("a 200 OK");
    let offer = SessionDescription::parse_bytes(&ok.body).expect("the 200 OK carries our offer");
    let pbx = LocalMedia {
        addr: "10.0.0.1".parse().unwrap(),
        port: 40000,
        codecs: vec![CodecKind::Pcmu],
        dtmf: false,
        direction: Direction::SendRecv,
        ptime_ms: 20,
        session_id: 1,
        session_version: 1,
        srtp: None,
        ice: None,
    };
    let (answer, _) = create_answer(&offer, &pbx).expect("answerable");
    let to = ok.headers.get("To").unwrap().to_owned();
    let mut ack = Request::new(Method::Ack, "sip:bob@10.0.0.2:5060".parse().unwrap());
    for (name, value) in [
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKlate2"),
        ("From", "<sip:pbx@10.0.0.1>;tag=pbx1"),
        ("To", to.as_str()),
        ("Call-ID", "late-offer-1"),
        ("CSeq", "1 ACK"),
        ("Max-Forwards", "70"),
        ("Content-Type", "application/sdp"),
    ] {
        ack.headers.push(name, value);
    }
    ack.body = answer.to_string().into_bytes();
    let now = world.now;
    world.nodes[1].phone.handle_input(Input::Datagram {
        now,
        from: caller,
        bytes: ack.to_bytes(),
    });
    world.run(Duration::from_millis(100), |_| false);
    assert!(world.established(1), "{:?}", world.events(1));
    let started = world.nodes[1].media.iter().find_map(|m| match m {
        MediaCommand::Start { media, .. } => Some(media.clone()),
        _ => None,
    });
    let media = started.expect("media started from the ACK's answer");
    assert_eq!(media.kind, CodecKind::Pcmu);
    assert_eq!(
        media.remote_rtp,
        "10.0.0.1:40000".parse::<std::net::SocketAddr>().unwrap()
    );
}

#[test]
fn transfer_refused_by_the_other_party_leaves_the_call_up() {
    let mut world = World::new(
        6,
        Impairment {
            delay: Duration::from_millis(10),
            ..Default::default()
        },
        two_phones(AnswerMode::Auto),
    );
    // Not connected yet: refused at once, nothing sent.
    dial(&mut world);
    world.command(
        0,
        Command::Transfer {
            call: CallId(1),
            target: "sip:supervisor@10.0.0.9".into(),
        },
    );
    world.run(Duration::from_millis(5), |w| {
        w.events(0)
            .iter()
            .any(|e| matches!(e, PhoneEvent::TransferFailed { .. }))
    });
    let refused_early = world.events(0).iter().any(|e| {
        matches!(e, PhoneEvent::TransferFailed { reason, .. } if reason.contains("not connected"))
    });
    assert!(refused_early, "{:?}", world.events(0));
    world.run(Duration::from_secs(3), |w| {
        w.established(0) && w.established(1)
    });
    // Our phone does not accept being transferred (405): the transferor is told, the call
    // goes on.
    world.command(
        0,
        Command::Transfer {
            call: CallId(1),
            target: "sip:supervisor@10.0.0.9".into(),
        },
    );
    world.run(Duration::from_secs(3), |w| {
        w.events(0)
            .iter()
            .filter(|e| matches!(e, PhoneEvent::TransferFailed { .. }))
            .count()
            == 2
    });
    let refused = world
        .events(0)
        .iter()
        .any(|e| matches!(e, PhoneEvent::TransferFailed { reason, .. } if reason.contains("405")));
    assert!(refused, "{:?}", world.events(0));
    assert_eq!(world.ended(0), None);
    assert_eq!(world.ended(1), None);
    world.command(0, Command::Hangup { call: CallId(1) });
    world.run(Duration::from_secs(3), |w| w.ended(1).is_some());
    assert_eq!(world.ended(1), Some(EndReason::RemoteHangup));
}

/// SRTP (SDES): two phones that want it agree on a suite with mirrored keys, fresh per call
/// side; a phone that requires it refuses a plain caller with 488.
/// What `node`'s first media start negotiated.
fn started_media(world: &World, node: usize) -> homeagent_core::MediaParams {
    world.nodes[node]
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Start { media, .. } => Some(media.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("node {node} starts no media: {:?}", world.nodes[node].media))
}

#[test]
fn srtp_is_negotiated_between_phones_and_mandatory_refuses_plain() {
    let mut phones = two_phones(AnswerMode::Auto);
    phones[0].srtp = SrtpPolicy::Preferred;
    phones[1].srtp = SrtpPolicy::Mandatory;
    let mut world = World::new(3, Impairment::default(), phones);
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| {
        w.established(0) && w.established(1)
    });
    let keys = |node: usize| {
        started_media(&world, node)
            .srtp
            .unwrap_or_else(|| panic!("node {node} starts SRTP media"))
    };
    let (caller, callee) = (keys(0), keys(1));
    assert_eq!(caller.suite, callee.suite);
    assert_eq!(caller.local_key, callee.remote_key);
    assert_eq!(caller.remote_key, callee.local_key);
    assert_ne!(caller.local_key, callee.local_key, "each side its own key");
    assert!(world.events(0).iter().any(
        |e| matches!(e, PhoneEvent::Established { srtp: Some(suite), .. } if *suite == caller.suite)
    ));

    let mut phones = two_phones(AnswerMode::Auto);
    phones[1].srtp = SrtpPolicy::Mandatory;
    let mut world = World::new(4, Impairment::default(), phones);
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| w.ended(0).is_some());
    assert!(!world.established(0) && !world.established(1));
    let refused = world.events(0).iter().any(|e| {
        matches!(
            e,
            PhoneEvent::Ended {
                code: Some(488),
                ..
            }
        )
    });
    assert!(refused, "488: {:?}", world.events(0));
}

/// ICE + DTLS between two phones: the offerer controls ICE, the roles of DTLS are opposite, each
/// side's credentials reach the other, and mandatory SRTP is satisfied by DTLS-SRTP. Without a
/// DTLS certificate the answerer refuses the ICE offer with 488.
#[test]
fn ice_and_dtls_are_negotiated_between_phones() {
    let mut phones = two_phones(AnswerMode::Auto);
    for (phone, fingerprint) in phones.iter_mut().zip(["sha-256 AA:01", "sha-256 BB:02"]) {
        phone.ice = IceConfig {
            dtls_fingerprint: Some(fingerprint.to_owned()),
            offer: true,
        };
    }
    phones[1].srtp = SrtpPolicy::Mandatory;
    let mut world = World::new(5, Impairment::default(), phones.clone());
    // The caller's first port has a TURN relay.
    let relay = "3 1 udp 16777215 192.0.2.50 49152 typ relay raddr 10.0.0.1 rport 20000";
    world.nodes[0].phone.handle_input(Input::RelayCandidate {
        port: 20000,
        candidate: relay.to_owned(),
    });
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| {
        w.established(0) && w.established(1)
    });
    let ice = |node: usize| {
        started_media(&world, node)
            .ice
            .unwrap_or_else(|| panic!("node {node} starts ICE"))
    };
    let (caller, callee) = (ice(0), ice(1));
    assert!(caller.controlling && !callee.controlling);
    assert_ne!(caller.dtls_client, callee.dtls_client);
    assert!(
        callee.dtls_client,
        "the answerer of an actpass offer is the DTLS client"
    );
    assert_eq!(
        (&caller.local_ufrag, &caller.local_pwd),
        (&callee.remote_ufrag, &callee.remote_pwd)
    );
    assert_eq!(
        (&callee.local_ufrag, &callee.local_pwd),
        (&caller.remote_ufrag, &caller.remote_pwd)
    );
    assert_ne!(caller.local_ufrag, callee.local_ufrag);
    assert!(
        caller.local_pwd.len() >= 22,
        "RFC 8445: 128 bits of password"
    );
    assert_eq!(caller.remote_fingerprint, "sha-256 BB:02");
    assert_eq!(callee.remote_fingerprint, "sha-256 AA:01");
    assert_eq!(
        callee.remote_candidates.len(),
        2,
        "{:?}",
        callee.remote_candidates
    );
    assert!(callee.remote_candidates[0].ends_with("typ host"));
    assert_eq!(callee.remote_candidates[1], relay);
    assert_eq!(caller.remote_candidates.len(), 1, "the callee has no relay");

    // The caller's network changes: ICE restarts with new credentials on both sides (a
    // re-offer keeping the DTLS roles), the media of both gets them.
    let now = world.now;
    world.nodes[0].phone.handle_input(Input::NetworkChanged {
        now,
        local_ip: None,
    });
    let updated = |w: &World, node: usize| {
        w.nodes[node].media.iter().rev().find_map(|m| match m {
            MediaCommand::Update { media, .. } => media.ice.clone(),
            _ => None,
        })
    };
    world.run(Duration::from_secs(5), |w| {
        updated(w, 0).is_some() && updated(w, 1).is_some()
    });
    let (caller2, callee2) = (
        updated(&world, 0).expect("caller's media updated"),
        updated(&world, 1).expect("callee's media updated"),
    );
    assert_ne!(caller2.local_ufrag, caller.local_ufrag, "new credentials");
    assert_ne!(
        callee2.local_ufrag, callee.local_ufrag,
        "the answerer restarts too"
    );
    assert_eq!(callee2.remote_ufrag, caller2.local_ufrag);
    assert_eq!(caller2.remote_ufrag, callee2.local_ufrag);
    assert_eq!(
        (caller2.dtls_client, callee2.dtls_client),
        (caller.dtls_client, callee.dtls_client),
        "DTLS roles kept"
    );
    assert!(world.established(0) && world.established(1));

    phones[1].ice.dtls_fingerprint = None;
    let mut world = World::new(6, Impairment::default(), phones);
    dial(&mut world);
    world.run(Duration::from_secs(5), |w| w.ended(0).is_some());
    assert!(!world.established(0));
    let refused = world.events(0).iter().any(|e| {
        matches!(
            e,
            PhoneEvent::Ended {
                code: Some(488),
                ..
            }
        )
    });
    assert!(refused, "488: {:?}", world.events(0));
}

/// A registered agent takes new requests only from its registrar's host and the platform's:
/// a stranger's INVITE gets no answer and rings nothing (a SIP scanner learns nothing);
/// from a platform host, or with the filter off, the call comes in.
#[test]
fn requests_from_strangers_are_ignored_by_a_registered_agent() {
    // (platform hosts, filter on, expected to ring)
    let cases = [
        (vec!["10.0.0.50"], true, false),
        (vec!["10.0.0.50", "10.0.0.1"], true, true),
        (vec![], false, true),
    ];
    for (platform, filter, rings) in cases {
        let mut phones = two_phones(AnswerMode::Auto);
        phones[1].account = Some(account_at_registrar("bob"));
        phones[1].acd.platform = platform
            .iter()
            .map(|ip| (ip.parse().unwrap(), Some(5999)))
            .collect();
        phones[1].inbound_filter = filter;
        let mut world = World::new(5, Impairment::default(), phones);
        dial(&mut world);
        world.run(Duration::from_secs(40), |w| {
            w.ended(0).is_some() || w.established(0)
        });
        let rang = world
            .events(1)
            .iter()
            .any(|e| matches!(e, PhoneEvent::Incoming { .. }));
        assert_eq!(rang, rings, "{platform:?} {filter}: {:?}", world.events(1));
        if rings {
            assert!(world.established(0), "{:?}", world.events(0));
        } else {
            // No response at all: the caller's INVITE times out.
            assert_eq!(
                world.ended(0),
                Some(EndReason::Timeout),
                "{:?}",
                world.events(0)
            );
        }
    }
}

/// Behind a NAT: the registrar's answers say where our requests come from (RFC 3581); the
/// phone registers again at once with that public address as Contact.
#[test]
fn the_public_address_the_registrar_sees_becomes_the_contact() {
    let registrar = peer([10, 0, 0, 100]);
    let mut config = PhoneConfig::new(peer([192, 168, 1, 20]));
    config.account = Some(account_at_registrar("alice"));
    let mut world = world_at_registrar(
        8,
        config,
        registrar,
        Some("203.0.113.7:40000".parse().unwrap()),
    );
    let contacts = |w: &World| -> Vec<String> {
        w.registrar
            .as_ref()
            .unwrap()
            .requests
            .iter()
            .filter_map(|r| r.headers.get("Contact").map(str::to_owned))
            .collect()
    };
    world.run(Duration::from_secs(5), |w| {
        contacts(w).iter().any(|c| c.contains("203.0.113.7:40000"))
            && w.events(0)
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        PhoneEvent::Registration(RegistrationState::Registered { .. })
                    )
                })
                .count()
                >= 2
    });
    let all = contacts(&world);
    assert!(
        all.first().is_some_and(|c| c.contains("192.168.1.20")),
        "{all:?}"
    );
    assert!(
        all.last()
            .is_some_and(|c| c.contains("sip:alice@203.0.113.7:40000")),
        "{all:?}"
    );
    // The NAT binding is kept open: an OPTIONS to the registrar every 25 s.
    let options = |w: &World| {
        w.registrar
            .as_ref()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.method == Method::Options)
            .count()
    };
    assert_eq!(options(&world), 0);
    let start = world.now;
    world.run(Duration::from_secs(60), |_| false);
    assert!(world.now >= start + Duration::from_secs(59));
    assert_eq!(options(&world), 2, "keepalives in 60 s");
}

/// An address learned before the start (STUN) is the Contact from the first REGISTER on.
#[test]
fn a_public_address_known_at_start_is_the_first_contact() {
    let registrar = peer([10, 0, 0, 100]);
    let mut config = PhoneConfig::new(peer([192, 168, 1, 20]));
    config.public_addr = Some("203.0.113.9:41000".parse().unwrap());
    config.account = Some(account_at_registrar("alice"));
    let mut world = world_at_registrar(9, config, registrar, None);
    world.run(Duration::from_secs(2), |w| {
        !w.registrar.as_ref().unwrap().requests.is_empty()
    });
    let first = &world.registrar.as_ref().unwrap().requests[0];
    let contact = first.headers.get("Contact").unwrap_or_default();
    assert!(contact.contains("sip:alice@203.0.113.9:41000"), "{contact}");
    // A registrar that says nothing of where it sees us does not undo it.
    world.run(Duration::from_secs(5), |_| false);
    let last = world.registrar.as_ref().unwrap().requests.last().unwrap();
    assert!(
        last.headers
            .get("Contact")
            .is_some_and(|c| c.contains("203.0.113.9:41000")),
        "{last:?}"
    );
}

/// The laptop moved to another network: with the new local address, the phone registers its
/// new Contact at once (an unchanged address changes nothing).
#[test]
fn a_new_local_address_is_registered_at_once() {
    let registrar = peer([10, 0, 0, 100]);
    let mut config = PhoneConfig::new(peer([192, 168, 1, 20]));
    config.account = Some(account_at_registrar("alice"));
    let mut world = world_at_registrar(10, config, registrar, None);
    world.run(Duration::from_secs(2), |w| {
        w.events(0).iter().any(|e| {
            matches!(
                e,
                PhoneEvent::Registration(RegistrationState::Registered { .. })
            )
        })
    });
    let requests = |w: &World| w.registrar.as_ref().unwrap().requests.len();
    let before = requests(&world);
    let now = world.now;
    world.nodes[0].phone.handle_input(Input::NetworkChanged {
        now,
        local_ip: Some("192.168.1.20".parse().unwrap()),
    });
    world.run(Duration::from_secs(1), |_| false);
    assert_eq!(requests(&world), before, "same address: no new REGISTER");

    let now = world.now;
    world.nodes[0].phone.handle_input(Input::NetworkChanged {
        now,
        local_ip: Some("10.20.30.40".parse().unwrap()),
    });
    world.run(Duration::from_secs(1), |w| requests(w) > before);
    let last = world.registrar.as_ref().unwrap().requests.last().unwrap();
    let contact = last.headers.get("Contact").unwrap_or_default();
    assert!(contact.contains("sip:alice@10.20.30.40:"), "{contact}");
}
