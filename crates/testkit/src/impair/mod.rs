//! A seeded UDP impairment relay for real processes (`ha-impair`), built on [`crate::netem`].
//!
//! # Design
//! `tc netem` is not available on our machines, so the impairment is done in user space,
//! between two network namespaces:
//!
//! ```text
//!  netns A (10.213.0.1/24)            ha-impair               netns B (10.213.0.2/24)
//!  UA A --> tun dev in A --read--> [Relay: netem A->B] --write--> tun dev in B --> UA B
//!  UA A <-- tun dev in A <-write-- [Relay: netem B->A] <--read--- tun dev in B <-- UA B
//! ```
//!
//! `ha-impair` opens two TUN devices and moves one into each namespace (`ip link set DEV
//! netns NS`); the open file descriptors stay attached, so the relay reads every IP packet
//! one namespace sends to the other and writes it, untouched, into the other namespace.
//! The UAs just call each other's address: SIP, SDP and RTP need no change. RTP and RTCP
//! (UDP payload starting with version 2) go through a seeded [`NetEmulator`] per direction;
//! everything else (SIP over UDP or TCP, ICMP) passes at once, unimpaired. IPv6 is dropped.
//!
//! [`Relay`] is the sans-IO core (no clock, no socket); the binary `ha-impair` drives it,
//! and [`lab::Lab`] starts namespaces + `ha-impair` for tests.
//!
//! # Profiles
//! | name | impairment (each direction) | base delay |
//! |---|---|---|
//! | `clean` | none | 0 |
//! | `loss3` | 3 % random loss | 0 |
//! | `loss10` | 10 % random loss | 0 |
//! | `burst10` | 10 % mean loss, Gilbert bursts of 3 packets on average | 0 |
//! | `jitter30` | 30 ± 30 ms delay (uniform; reorders packets sent < 60 ms apart) | 30 ms |
//! | `loss5_jitter40` | 5 % random loss, 40 ± 20 ms delay | 40 ms |
//!
//! `--delay-ms` adds a fixed delay to every profile; the base delay reported is the
//! profile's mean delay plus that.

pub mod lab;
pub mod packet;

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::netem::{Gilbert, Impairment, NetEmulator, NetStats};
use packet::{PacketKind, RtpHeader, Udp, classify};

/// The named impairment profiles of the quality bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A perfect link.
    Clean,
    /// 3 % random loss.
    Loss3,
    /// 10 % random loss.
    Loss10,
    /// 10 % mean loss in Gilbert bursts (mean burst 3 packets).
    Burst10,
    /// 30 ± 30 ms delay: jitter with reordering.
    Jitter30,
    /// 5 % random loss and 40 ± 20 ms delay.
    Loss5Jitter40,
}

impl Profile {
    /// Every profile, in the bench's order.
    pub const ALL: [Profile; 6] = [
        Profile::Clean,
        Profile::Loss3,
        Profile::Loss10,
        Profile::Burst10,
        Profile::Jitter30,
        Profile::Loss5Jitter40,
    ];

    /// Parses a profile name (`loss3`, `jitter30`...).
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Clean => "clean",
            Profile::Loss3 => "loss3",
            Profile::Loss10 => "loss10",
            Profile::Burst10 => "burst10",
            Profile::Jitter30 => "jitter30",
            Profile::Loss5Jitter40 => "loss5_jitter40",
        }
    }

    /// The impairment of one direction, with `extra_delay` added to the profile's delay.
    pub fn impairment(self, extra_delay: Duration) -> Impairment {
        let ms = Duration::from_millis;
        let base = Impairment::default();
        let profile = match self {
            Profile::Clean => base,
            Profile::Loss3 => Impairment { loss: 0.03, ..base },
            Profile::Loss10 => Impairment { loss: 0.10, ..base },
            Profile::Burst10 => Impairment {
                burst: Some(Gilbert::with_mean_loss(0.10, 3.0)),
                ..base
            },
            Profile::Jitter30 => Impairment {
                delay: ms(30),
                jitter: ms(30),
                ..base
            },
            Profile::Loss5Jitter40 => Impairment {
                loss: 0.05,
                delay: ms(40),
                jitter: ms(20),
                ..base
            },
        };
        Impairment {
            delay: profile.delay + extra_delay,
            ..profile
        }
    }

    /// The mean one-way delay of the profile plus `extra_delay` (jitter is symmetric and
    /// never clamped at zero for these profiles).
    pub fn base_delay(self, extra_delay: Duration) -> Duration {
        self.impairment(extra_delay).delay
    }
}

/// One side of the relay: the namespace a packet was read from or is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Namespace A.
    A,
    /// Namespace B.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A packet to write into the namespace `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to write it.
    pub to: Side,
    /// The IP packet, unchanged.
    pub packet: Vec<u8>,
}

/// The sans-IO relay: feed packets with [`Relay::handle_packet`], write what
/// [`Relay::poll_transmit`] returns, and come back at [`Relay::poll_timeout`].
#[derive(Debug)]
pub struct Relay {
    start: Instant,
    a_to_b: Direction,
    b_to_a: Direction,
}

#[derive(Debug)]
struct Direction {
    net: NetEmulator<Queued>,
    /// Not media: forwarded at once.
    passthrough: VecDeque<Vec<u8>>,
    passed: u64,
    dropped: u64,
    flows: Vec<FlowReport>,
}

#[derive(Debug, Clone)]
struct Queued {
    flow: usize,
    packet: Vec<u8>,
}

impl Relay {
    /// A relay started at `start`; direction A→B uses `seed`, B→A a seed derived from it.
    pub fn new(start: Instant, seed: u64, impairment: Impairment) -> Relay {
        Relay {
            start,
            a_to_b: Direction::new(seed, impairment.clone()),
            b_to_a: Direction::new(seed ^ 0x9e37_79b9_7f4a_7c15, impairment),
        }
    }

    /// A packet read from `from`'s device at `now`.
    pub fn handle_packet(&mut self, now: Instant, from: Side, packet: Vec<u8>) {
        let at_ms = self.ms(now);
        let direction = self.direction(from);
        let (udp, rtp) = match classify(&packet) {
            PacketKind::Rtp(udp, header) => (udp, Some(header)),
            PacketKind::Rtcp(udp) => (udp, None),
            PacketKind::Other if packet.first().is_some_and(|b| b >> 4 != 4) => {
                direction.dropped += 1;
                return;
            }
            PacketKind::OtherUdp(_) | PacketKind::Other => {
                direction.passed += 1;
                direction.passthrough.push_back(packet);
                return;
            }
        };
        let flow = direction.flow(udp, rtp, at_ms);
        let lost_before = direction.net.stats().lost;
        direction.net.send(now, Queued { flow, packet });
        if direction.net.stats().lost > lost_before
            && let Some(f) = direction.flows.get_mut(flow)
        {
            f.lost += 1;
        }
    }

    /// The next packet to write now, if any: unimpaired traffic first, then media whose
    /// delivery time has come (A→B before B→A).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let at_ms = self.ms(now);
        for (to, direction) in [(Side::B, &mut self.a_to_b), (Side::A, &mut self.b_to_a)] {
            if let Some(packet) = direction.passthrough.pop_front() {
                return Some(Transmit { to, packet });
            }
            if let Some(queued) = direction.net.poll_delivery(now) {
                if let Some(flow) = direction.flows.get_mut(queued.flow) {
                    flow.delivered += 1;
                    flow.first_delivered_ms.get_or_insert(at_ms);
                }
                return Some(Transmit {
                    to,
                    packet: queued.packet,
                });
            }
        }
        None
    }

    /// When to call [`Relay::poll_transmit`] next (earliest queued delivery).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.a_to_b.net.next_delivery(),
            self.b_to_a.net.next_delivery(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The counters so far.
    pub fn report(&self) -> RelayReport {
        RelayReport {
            a_to_b: self.a_to_b.report(),
            b_to_a: self.b_to_a.report(),
        }
    }

    fn direction(&mut self, from: Side) -> &mut Direction {
        match from {
            Side::A => &mut self.a_to_b,
            Side::B => &mut self.b_to_a,
        }
    }

    fn ms(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }
}

impl Direction {
    fn new(seed: u64, impairment: Impairment) -> Direction {
        Direction {
            net: NetEmulator::new(seed, impairment),
            passthrough: VecDeque::new(),
            passed: 0,
            dropped: 0,
            flows: Vec::new(),
        }
    }

    /// The index of the packet's flow, created on its first packet.
    fn flow(&mut self, udp: Udp, rtp: Option<RtpHeader>, at_ms: f64) -> usize {
        let index = match self
            .flows
            .iter()
            .position(|f| f.src == udp.src && f.dst == udp.dst)
        {
            Some(index) => index,
            None => {
                self.flows.push(FlowReport {
                    src: udp.src,
                    dst: udp.dst,
                    rtcp: rtp.is_none(),
                    first_ms: at_ms,
                    first_rtp_timestamp: rtp.map(|h| h.timestamp),
                    ssrc: rtp.map(|h| h.ssrc),
                    first_delivered_ms: None,
                    sent: 0,
                    lost: 0,
                    delivered: 0,
                });
                self.flows.len() - 1
            }
        };
        if let Some(flow) = self.flows.get_mut(index) {
            flow.sent += 1;
        }
        index
    }

    fn report(&self) -> DirectionReport {
        DirectionReport {
            media: self.net.stats().into(),
            passed: self.passed,
            dropped: self.dropped,
            flows: self.flows.clone(),
        }
    }
}

/// What the relay did, per direction. `ha-impair` prints it as JSON on exit
/// (`{"event":"summary", ..., "a_to_b": {...}, "b_to_a": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayReport {
    /// Packets from namespace A to B.
    pub a_to_b: DirectionReport,
    /// Packets from namespace B to A.
    pub b_to_a: DirectionReport,
}

/// One direction's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionReport {
    /// RTP and RTCP through the emulator.
    pub media: MediaCounters,
    /// Other packets forwarded unimpaired (SIP...).
    pub passed: u64,
    /// Packets dropped because they are not IPv4.
    pub dropped: u64,
    /// One entry per UDP media flow (source, destination), in order of first packet.
    pub flows: Vec<FlowReport>,
}

/// [`NetStats`] as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaCounters {
    /// Packets read.
    pub sent: u64,
    /// Packets dropped by the emulator.
    pub lost: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Packets held back by `reorder`.
    pub reordered: u64,
    /// Packets written.
    pub delivered: u64,
}

impl From<NetStats> for MediaCounters {
    fn from(s: NetStats) -> Self {
        MediaCounters {
            sent: s.sent,
            lost: s.lost,
            duplicated: s.duplicated,
            reordered: s.reordered,
            delivered: s.delivered,
        }
    }
}

/// One media flow. Times are milliseconds since the relay started, so flows of the two
/// directions share a clock: the bench uses the first RTP packet of each flow to place
/// the sender's and the receiver's audio on one time line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowReport {
    /// Sender.
    pub src: SocketAddrV4,
    /// Receiver.
    pub dst: SocketAddrV4,
    /// RTCP (true) or RTP.
    pub rtcp: bool,
    /// When its first packet was read.
    pub first_ms: f64,
    /// RTP timestamp of its first packet.
    pub first_rtp_timestamp: Option<u32>,
    /// SSRC of its first packet.
    pub ssrc: Option<u32>,
    /// When its first packet was written to the other side.
    pub first_delivered_ms: Option<f64>,
    /// Packets read.
    pub sent: u64,
    /// Packets dropped.
    pub lost: u64,
    /// Packets written (duplicates included).
    pub delivered: u64,
}

impl RelayReport {
    /// The first RTP flow from `from` to the other side.
    pub fn rtp_flow(&self, from: Side) -> Option<&FlowReport> {
        let direction = match from {
            Side::A => &self.a_to_b,
            Side::B => &self.b_to_a,
        };
        direction.flows.iter().find(|f| !f.rtcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_packet(payload: &[u8], src_port: u16, dst_port: u16) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![0x45, 0, 0, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend([10, 213, 0, 1, 10, 213, 0, 2]);
        p.extend(src_port.to_be_bytes());
        p.extend(dst_port.to_be_bytes());
        p.extend([0, 8 + payload.len() as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut payload = vec![0x80, 111];
        payload.extend(seq.to_be_bytes());
        payload.extend((u32::from(seq) * 960).to_be_bytes());
        payload.extend(7u32.to_be_bytes());
        payload.extend([0u8; 20]);
        udp_packet(&payload, 20000, 20002)
    }

    /// Runs `packets` media packets A→B, 20 ms apart, through a relay; returns it and
    /// the delivered packets with their delivery times (ms).
    fn run(profile: Profile, seed: u64, packets: u16) -> (Relay, Vec<(f64, Vec<u8>)>) {
        #[allow(clippy::disallowed_methods)] // test base instant
        let start = Instant::now();
        let mut relay = Relay::new(start, seed, profile.impairment(Duration::ZERO));
        let mut out = Vec::new();
        let mut drain = |relay: &mut Relay, now: Instant| {
            while let Some(t) = relay.poll_transmit(now) {
                assert_eq!(t.to, Side::B);
                out.push(((now - start).as_secs_f64() * 1000.0, t.packet));
            }
        };
        for ms in 0..(u64::from(packets) * 20 + 1000) {
            let now = start + Duration::from_millis(ms);
            if ms % 20 == 0 && ms / 20 < u64::from(packets) {
                relay.handle_packet(now, Side::A, rtp((ms / 20) as u16));
            }
            drain(&mut relay, now);
        }
        (relay, out)
    }

    #[test]
    fn every_profile_has_a_name_and_the_losses_it_claims() {
        for profile in Profile::ALL {
            assert_eq!(Profile::from_name(profile.name()), Some(profile));
            let (relay, out) = run(profile, 3, 5000);
            let report = relay.report();
            let media = report.a_to_b.media;
            assert_eq!(media.sent, 5000);
            assert_eq!(media.delivered as usize, out.len());
            assert_eq!(media.sent, media.lost + media.delivered);
            let loss = media.lost as f64 / media.sent as f64;
            let expected = match profile {
                Profile::Loss3 => 0.03,
                Profile::Loss10 | Profile::Burst10 => 0.10,
                Profile::Loss5Jitter40 => 0.05,
                Profile::Clean | Profile::Jitter30 => 0.0,
            };
            assert!((loss - expected).abs() < 0.02, "{profile:?}: loss {loss}");
            let flow = report.rtp_flow(Side::A).expect("one flow");
            assert_eq!((flow.sent, flow.lost), (media.sent, media.lost));
            assert_eq!(flow.first_rtp_timestamp, Some(0));
            assert_eq!(report.rtp_flow(Side::B), None);
        }
        assert_eq!(Profile::from_name("lossy"), None);
    }

    #[test]
    fn jitter_delays_and_reorders_around_the_base_delay() {
        let (_, out) = run(Profile::Jitter30, 9, 2000);
        let delays: Vec<f64> = out
            .iter()
            .map(|(at, p)| {
                let seq = u16::from_be_bytes([p[30], p[31]]);
                at - f64::from(seq) * 20.0
            })
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 30.0).abs() < 3.0, "mean delay {mean}");
        assert!(delays.iter().all(|d| (0.0..=61.0).contains(d)));
        let seqs: Vec<u16> = out
            .iter()
            .map(|(_, p)| u16::from_be_bytes([p[30], p[31]]))
            .collect();
        let reordered = seqs.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(reordered > 100, "only {reordered} reorderings");
        assert_eq!(
            Profile::Jitter30
                .base_delay(Duration::from_millis(10))
                .as_millis(),
            40
        );
    }

    #[test]
    fn signalling_passes_at_once_and_ipv6_is_dropped() {
        #[allow(clippy::disallowed_methods)] // test base instant
        let start = Instant::now();
        let mut relay = Relay::new(start, 1, Profile::Loss10.impairment(Duration::from_secs(1)));
        let sip = udp_packet(b"SIP/2.0 200 OK\r\n\r\n", 5060, 5060);
        relay.handle_packet(start, Side::B, sip.clone());
        relay.handle_packet(start, Side::B, vec![0x60; 48]);
        relay.handle_packet(start, Side::A, rtp(1));
        assert_eq!(
            relay.poll_transmit(start),
            Some(Transmit {
                to: Side::A,
                packet: sip
            })
        );
        assert_eq!(relay.poll_transmit(start), None);
        let report = relay.report();
        assert_eq!((report.b_to_a.passed, report.b_to_a.dropped), (1, 1));
        let due = relay.poll_timeout().expect("media queued");
        assert_eq!(due, start + Duration::from_secs(1));
        assert_eq!(relay.poll_transmit(due).map(|t| t.to), Some(Side::B));
        let json = serde_json::to_string(&relay.report()).expect("serialises");
        let back: RelayReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, relay.report());
    }

    #[test]
    fn same_seed_same_schedule() {
        let (_, first) = run(Profile::Loss5Jitter40, 42, 500);
        let (_, again) = run(Profile::Loss5Jitter40, 42, 500);
        let (_, other) = run(Profile::Loss5Jitter40, 43, 500);
        assert_eq!(first, again);
        assert_ne!(first, other);
    }
}
