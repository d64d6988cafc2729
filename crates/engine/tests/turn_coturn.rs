//! TURN against a real coturn on loopback: an allocation from a real UDP socket, then a call
//! whose side `a` can only talk to the TURN server (a firewall), ICE + DTLS-SRTP through the
//! relay and RTP both ways. Skipped (with a message) when `/usr/bin/turnserver` is missing and
//! `CI` is unset.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homeagent_media::webrtc::{
    DtlsIdentity, DtlsRole, RemoteParams, TurnAllocation, TurnServer, TurnState, WebRtcEvent,
    WebRtcTransport,
};
use tokio::net::UdpSocket;

const TURNSERVER: &str = "/usr/bin/turnserver";
const USER: &str = "agent";
const PASSWORD: &str = "turn-secret";

/// The coturn process, killed on drop.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    relay_ports: (u16, u16),
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port()
}

fn start_coturn() -> Option<Coturn> {
    if !Path::new(TURNSERVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{TURNSERVER} is required in CI"
        );
        eprintln!("skipped: {TURNSERVER} not installed (apt install coturn)");
        return None;
    }
    let port = free_udp_port();
    // A relay range of its own per run (tests of other crates may run a coturn too).
    let min_port = 50_000 + (std::process::id() % 1_000) as u16 * 10;
    let relay_ports = (min_port, min_port + 9);
    let pid_file = std::env::temp_dir().join(format!("homeagent-turn-{port}.pid"));
    let child = Command::new(TURNSERVER)
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            &format!("--listening-port={port}"),
            &format!("--min-port={}", relay_ports.0),
            &format!("--max-port={}", relay_ports.1),
            &format!("--user={USER}:{PASSWORD}"),
            "--realm=homeagent",
            "--lt-cred-mech",
            "--no-tls",
            "--no-dtls",
            "--no-tcp-relay",
            "--allow-loopback-peers",
            "--no-cli",
            "--log-file=stdout",
            &format!("--pidfile={}", pid_file.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver starts");
    Some(Coturn {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        relay_ports,
    })
}

fn server(coturn: &Coturn, password: &str) -> TurnServer {
    TurnServer {
        addr: coturn.addr,
        username: USER.to_owned(),
        password: password.to_owned(),
    }
}

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("udp socket")
}

/// Drives one lone allocation on `socket` until it is no longer allocating (or `limit`).
async fn drive_allocation(socket: &UdpSocket, allocation: &mut TurnAllocation, limit: Duration) {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    while *allocation.state() == TurnState::Allocating && Instant::now() < end {
        while let Some((to, bytes)) = allocation.poll_transmit() {
            socket.send_to(&bytes, to).await.expect("send");
        }
        let wait = allocation
            .poll_timeout()
            .map_or(Duration::from_millis(50), |at| {
                at.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(50));
        if let Ok(Ok((n, from))) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            allocation.handle_datagram(Instant::now(), from, &buf[..n]);
        }
        allocation.handle_timeout(Instant::now());
    }
}

async fn allocate(coturn: &Coturn, socket: &UdpSocket, password: &str) -> TurnAllocation {
    let local = socket.local_addr().expect("local address");
    let mut allocation =
        TurnAllocation::start(Instant::now(), server(coturn, password), local).expect("starts");
    // coturn may still be starting: the client retransmits for about 8 s.
    drive_allocation(socket, &mut allocation, Duration::from_secs(15)).await;
    allocation
}

/// One side of the call: its socket and transport; `firewalled` sides exchange datagrams with
/// the TURN server only.
struct Side {
    socket: UdpSocket,
    transport: WebRtcTransport,
    firewall: Option<SocketAddr>,
    events: Vec<WebRtcEvent>,
    received: Vec<Vec<u8>>,
    dropped: usize,
}

impl Side {
    fn connected(&self) -> bool {
        let ice = self
            .events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::IceConnected { .. }));
        let dtls = self
            .events
            .iter()
            .any(|e| matches!(e, WebRtcEvent::DtlsConnected { .. }));
        ice && dtls
    }

    fn allowed(&self, peer: SocketAddr) -> bool {
        self.firewall.is_none_or(|only| only == peer)
    }

    /// Sends what is queued, reads what arrived, runs due timers.
    async fn pump(&mut self) {
        while let Some((to, bytes)) = self.transport.poll_transmit() {
            if self.allowed(to) {
                let _ = self.socket.send_to(&bytes, to).await;
            } else {
                self.dropped += 1;
            }
        }
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = self.socket.try_recv_from(&mut buf) {
            if !self.allowed(from) {
                self.dropped += 1;
                continue;
            }
            if let Some(media) = self
                .transport
                .handle_datagram(Instant::now(), from, &buf[..n])
            {
                self.received.push(media);
            }
        }
        let now = Instant::now();
        if self.transport.poll_timeout().is_some_and(|at| at <= now) {
            self.transport.handle_timeout(now);
        }
        while let Some(event) = self.transport.poll_event() {
            self.events.push(event);
        }
        while let Some((to, bytes)) = self.transport.poll_transmit() {
            if self.allowed(to) {
                let _ = self.socket.send_to(&bytes, to).await;
            } else {
                self.dropped += 1;
            }
        }
    }
}

async fn pump_until(sides: &mut [Side; 2], limit: Duration, done: impl Fn(&[Side; 2]) -> bool) {
    let end = Instant::now() + limit;
    while !done(sides) && Instant::now() < end {
        for side in sides.iter_mut() {
            side.pump().await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// An Opus RTP packet (payload type 111) numbered `seq`.
fn rtp_packet(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    homeagent_media::rtp::RtpPacket {
        marker: false,
        payload_type: 111,
        sequence: seq,
        timestamp: u32::from(seq) * 960,
        ssrc: 0x1234_5678,
        csrcs: Vec::new(),
        extension: None,
        payload,
    }
    .write(&mut packet);
    packet
}

#[tokio::test]
async fn coturn_allocation_and_call_through_the_relay() {
    let Some(coturn) = start_coturn() else {
        return;
    };

    // A wrong password is refused (and reported, not retried forever).
    let socket_wrong = socket().await;
    let refused = allocate(&coturn, &socket_wrong, "wrong").await;
    assert!(
        matches!(refused.state(), TurnState::Failed(reason) if reason.contains("401")),
        "{:?}",
        refused.state()
    );

    // The allocation is made before the call, on the socket the call will use.
    let socket_a = socket().await;
    let host_a = socket_a.local_addr().expect("address");
    let allocation = allocate(&coturn, &socket_a, PASSWORD).await;
    let TurnState::Allocated { relayed, mapped } = allocation.state().clone() else {
        panic!("not allocated: {:?}", allocation.state());
    };
    assert_eq!(relayed.ip(), coturn.addr.ip());
    assert!(
        (coturn.relay_ports.0..=coturn.relay_ports.1).contains(&relayed.port()),
        "{relayed} in the relay range"
    );
    assert_eq!(mapped, Some(host_a));
    let sdp_candidate = allocation.candidate(host_a).expect("candidate");
    assert!(
        sdp_candidate.contains(&format!("{} {} typ relay", relayed.ip(), relayed.port())),
        "{sdp_candidate}"
    );

    let identity = DtlsIdentity::generate().expect("identity");
    let now = Instant::now();
    let mut transport_a =
        WebRtcTransport::with_identity(now, &[host_a], &identity, None, true).expect("a");
    transport_a
        .attach_relay(now, allocation)
        .expect("relay attached");
    assert!(transport_a.local_candidates().contains(&sdp_candidate));
    let socket_b = socket().await;
    let host_b = socket_b.local_addr().expect("address");
    let mut transport_b =
        WebRtcTransport::with_identity(now, &[host_b], &identity, None, false).expect("b");
    let params = |t: &WebRtcTransport| RemoteParams {
        credentials: t.local_credentials().clone(),
        candidates: t.local_candidates(),
        fingerprint: t.fingerprint().clone(),
        ice_lite: false,
    };
    let (params_a, params_b) = (params(&transport_a), params(&transport_b));
    transport_b
        .set_remote(now, params_a, DtlsRole::Server, false)
        .expect("b set_remote");
    transport_a
        .set_remote(now, params_b, DtlsRole::Client, true)
        .expect("a set_remote");

    let side = |socket, transport, firewall| Side {
        socket,
        transport,
        firewall,
        events: Vec::new(),
        received: Vec::new(),
        dropped: 0,
    };
    let mut sides = [
        side(socket_a, transport_a, Some(coturn.addr)),
        side(socket_b, transport_b, None),
    ];
    pump_until(&mut sides, Duration::from_secs(15), |s| {
        s[0].connected() && s[1].connected()
    })
    .await;
    assert!(
        sides[0].connected() && sides[1].connected(),
        "not connected: a {:?}, b {:?}",
        sides[0].events,
        sides[1].events
    );
    let (local, remote) = sides[0].transport.selected_pair().expect("a's pair");
    assert_eq!(local, format!("relay {relayed} udp"));
    assert_eq!(remote, format!("host {host_b} udp"));
    assert!(
        sides[0].dropped > 0,
        "the direct path was tried and blocked"
    );

    let (mut sent_by_a, mut sent_by_b) = (Vec::new(), Vec::new());
    for seq in 1..=50u16 {
        let from_a = rtp_packet(seq, format!("from a #{seq}").as_bytes());
        let from_b = rtp_packet(seq, format!("from b #{seq}").as_bytes());
        let now = Instant::now();
        sides[0]
            .transport
            .send_media(now, &from_a, false)
            .expect("a sends");
        sides[1]
            .transport
            .send_media(now, &from_b, false)
            .expect("b sends");
        sent_by_a.push(from_a);
        sent_by_b.push(from_b);
        for side in sides.iter_mut() {
            side.pump().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pump_until(&mut sides, Duration::from_secs(3), |s| {
        s[0].received.len() >= 50 && s[1].received.len() >= 50
    })
    .await;
    assert_eq!(sides[1].received, sent_by_a);
    assert_eq!(sides[0].received, sent_by_b);
    assert!(matches!(
        sides[0].transport.relay_state(),
        Some(TurnState::Allocated { .. })
    ));

    // Handed back after the call and released at the server.
    let mut allocation = sides[0].transport.detach_relay().expect("allocation back");
    allocation.close(Instant::now());
    while let Some((to, bytes)) = allocation.poll_transmit() {
        sides[0].socket.send_to(&bytes, to).await.expect("send");
    }
}
