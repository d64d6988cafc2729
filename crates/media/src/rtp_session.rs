//! One RTP session (RFC 3550): our send timeline (SSRC, sequence numbers, timestamps, marker),
//! reception statistics for the remote source (A.1 sequence validation, A.3 loss, A.8 jitter),
//! and the RTCP reports (SR/RR + SDES CNAME, BYE) with round-trip time from LSR/DLSR.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::rtcp::{ReportBlock, RtcpPacket, SenderInfo};
use crate::rtp::RtpPacket;

/// First report soon after the start, so RTT and loss are known early.
const FIRST_REPORT_DELAY: Duration = Duration::from_secs(1);
/// Nominal report interval; each one is randomised within 0.5..1.5 of it (RFC 3550 §6.3.1).
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;
const SEQ_MOD: u32 = 1 << 16;

/// How an incoming RTP packet fits the remote source's sequence (RFC 3550 A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceStatus {
    /// In sequence (or a tolerable gap / misorder).
    Valid,
    /// The source is not yet confirmed by `MIN_SEQUENTIAL` packets in a row.
    Probation,
    /// A large jump: ignored until the next packet confirms the new sequence.
    Bad,
}

/// What [`RtpSession::handle_rtp`] learnt from a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub status: SequenceStatus,
    /// The packet comes from another SSRC than the previous ones (a new remote source).
    pub new_source: bool,
}

/// What [`RtpSession::handle_rtcp`] learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcpUpdate {
    /// The remote sent a new report about us.
    pub report: Option<ReportBlock>,
    /// The remote source said BYE.
    pub bye: bool,
}

#[derive(Debug)]
pub struct RtpSession {
    ssrc: u32,
    cname: String,
    clock_rate: u32,
    epoch: Instant,
    ntp_at_epoch: u64,

    next_sequence: u16,
    next_timestamp: u32,
    talkspurt_start: bool,
    packets_sent: u32,
    octets_sent: u32,
    /// RTP timestamp and time of the last packet sent, to extrapolate the SR's RTP time.
    last_sent: Option<(u32, Instant)>,
    sent_since_report: bool,

    remote: Option<RemoteSource>,
    /// Another SSRC seen while `remote` is confirmed, on probation to replace it.
    candidate: Option<RemoteSource>,
    remote_report: Option<ReportBlock>,
    rtt: Option<Duration>,

    next_report: Instant,
    interval_rng: u32,
}

/// Reception state for the remote SSRC (RFC 3550 A.1 `source`).
#[derive(Debug)]
struct RemoteSource {
    ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    fraction_lost: u8,
    transit: Option<u32>,
    /// Interarrival jitter in timestamp units (A.8), kept unscaled as f64.
    jitter: f64,
    /// Middle 32 bits of the NTP time of the last SR and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

/// Reception statistics of the remote source.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReceptionStats {
    pub ssrc: u32,
    pub packets_received: u32,
    /// Cumulative packets lost (RFC 3550 A.3; negative with duplicates).
    pub packets_lost: i64,
    /// Fraction lost over the last report interval, 0.0..=1.0.
    pub fraction_lost: f64,
    pub jitter_ms: f64,
    pub extended_highest_sequence: u32,
}

impl RtpSession {
    /// `initial_sequence` and `initial_timestamp` should be random (RFC 3550 §5.1); the caller
    /// supplies them. `wallclock` is the wall-clock time at `now`, used for SR NTP times; without
    /// it NTP times count from the session start.
    pub fn new(
        now: Instant,
        ssrc: u32,
        initial_sequence: u16,
        initial_timestamp: u32,
        clock_rate: u32,
        cname: String,
        wallclock: Option<SystemTime>,
    ) -> Self {
        let ntp_at_epoch = wallclock
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| ntp_from_duration(d + Duration::from_secs(NTP_UNIX_OFFSET_SECS)))
            // A non-zero start keeps LSR values non-zero ("no SR received" is 0).
            .unwrap_or(1 << 32);
        Self {
            ssrc,
            cname,
            clock_rate: clock_rate.max(1),
            epoch: now,
            ntp_at_epoch,
            next_sequence: initial_sequence,
            next_timestamp: initial_timestamp,
            talkspurt_start: true,
            packets_sent: 0,
            octets_sent: 0,
            last_sent: None,
            sent_since_report: false,
            remote: None,
            candidate: None,
            remote_report: None,
            rtt: None,
            next_report: now + FIRST_REPORT_DELAY,
            interval_rng: ssrc | 1,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The RTP timestamp the next media frame gets.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Packetizes one media frame at the current timeline position and advances the timeline by
    /// `duration` timestamp units. The first packet of a talkspurt carries the marker bit.
    pub fn send_media(
        &mut self,
        now: Instant,
        payload_type: u8,
        duration: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let marker = std::mem::take(&mut self.talkspurt_start);
        let timestamp = self.next_timestamp;
        self.next_timestamp = self.next_timestamp.wrapping_add(duration);
        self.send_packet(now, payload_type, marker, timestamp, payload)
    }

    /// Advances the timeline by `duration` timestamp units without sending (silence, hold, or
    /// audio replaced by DTMF); the next media packet starts a talkspurt.
    pub fn skip(&mut self, duration: u32) {
        self.next_timestamp = self.next_timestamp.wrapping_add(duration);
        self.talkspurt_start = true;
    }

    /// Packetizes a packet with an explicit timestamp and marker (DTMF events), without moving
    /// the timeline.
    pub fn send_packet(
        &mut self,
        now: Instant,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let packet = RtpPacket {
            marker,
            payload_type,
            sequence: self.next_sequence,
            timestamp,
            ssrc: self.ssrc,
            csrcs: Vec::new(),
            extension: None,
            payload,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        self.last_sent = Some((timestamp, now));
        self.sent_since_report = true;
        let mut bytes = Vec::with_capacity(12 + payload.len());
        packet.write(&mut bytes);
        bytes
    }

    /// Updates reception statistics with an incoming RTP packet. Once a remote source is
    /// confirmed, another SSRC replaces it only after its own probation (two packets in
    /// sequence); until then its packets are [`SequenceStatus::Probation`] and not
    /// [`Self::remote_ssrc`].
    pub fn handle_rtp(&mut self, now: Instant, packet: &RtpPacket<'_>) -> Received {
        let arrival = self.media_clock(now);
        let current = self.remote.as_ref().map(|r| (r.ssrc, r.probation > 0));
        let (source, new_source) = match current {
            Some((ssrc, _)) if ssrc == packet.ssrc => (&mut self.remote, false),
            // No source yet, or the current one was never confirmed: take the new one.
            None | Some((_, true)) => {
                self.remote = Some(RemoteSource::new(packet.ssrc, packet.sequence));
                (&mut self.remote, true)
            }
            Some((_, false)) => {
                if self
                    .candidate
                    .as_ref()
                    .is_none_or(|c| c.ssrc != packet.ssrc)
                {
                    self.candidate = Some(RemoteSource::new(packet.ssrc, packet.sequence));
                }
                (&mut self.candidate, false)
            }
        };
        let Some(source) = source.as_mut() else {
            return Received {
                status: SequenceStatus::Bad,
                new_source: false,
            };
        };
        let status = source.update_sequence(packet.sequence);
        if status != SequenceStatus::Bad {
            source.update_jitter(arrival, packet.timestamp);
        }
        if self.candidate.as_ref().is_some_and(|c| c.probation == 0) {
            // The candidate passed probation: it is the remote source now.
            self.remote = self.candidate.take();
            return Received {
                status,
                new_source: true,
            };
        }
        Received { status, new_source }
    }

    /// The SSRC of the confirmed (or first) remote source.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.remote.as_ref().map(|r| r.ssrc)
    }

    /// Takes in a parsed RTCP compound packet from the remote.
    pub fn handle_rtcp(&mut self, now: Instant, packets: &[RtcpPacket]) -> RtcpUpdate {
        let mut update = RtcpUpdate::default();
        for packet in packets {
            let reports = match packet {
                RtcpPacket::SenderReport {
                    ssrc,
                    info,
                    reports,
                } => {
                    if let Some(remote) = self.remote.as_mut().filter(|r| r.ssrc == *ssrc) {
                        remote.last_sr = Some(((info.ntp_time >> 16) as u32, now));
                    }
                    reports
                }
                RtcpPacket::ReceiverReport { reports, .. } => reports,
                RtcpPacket::Bye { ssrcs, .. } => {
                    update.bye |= self
                        .remote
                        .as_ref()
                        .is_some_and(|r| ssrcs.contains(&r.ssrc));
                    continue;
                }
                _ => continue,
            };
            for report in reports.iter().filter(|r| r.ssrc == self.ssrc) {
                self.remote_report = Some(*report);
                update.report = Some(*report);
                if report.last_sr != 0 {
                    let arrival = (self.ntp(now) >> 16) as u32;
                    let rtt = arrival
                        .wrapping_sub(report.last_sr)
                        .wrapping_sub(report.delay_since_last_sr);
                    // A wrapped (negative) or absurd value means a bogus report.
                    if rtt < 60 << 16 {
                        self.rtt = Some(Duration::from_secs_f64(f64::from(rtt) / 65536.0));
                    }
                }
            }
        }
        update
    }

    /// When the next RTCP report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_report
    }

    /// Returns a compound report when one is due, and schedules the next.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_report {
            return None;
        }
        // xorshift32 seeded by the (random) SSRC: interval factor in 0.5..1.5.
        let mut x = self.interval_rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.interval_rng = x;
        let factor = 0.5 + f64::from(x) / f64::from(u32::MAX);
        self.next_report = now + REPORT_INTERVAL.mul_f64(factor);
        Some(self.report(now, false))
    }

    /// A final compound report ending with BYE.
    pub fn bye(&mut self, now: Instant) -> Vec<u8> {
        self.report(now, true)
    }

    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// Round-trip time from the last report about us that echoed one of our SRs.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The last reception report the remote sent about our stream.
    pub fn remote_report(&self) -> Option<ReportBlock> {
        self.remote_report
    }

    pub fn reception(&self) -> Option<ReceptionStats> {
        let remote = self.remote.as_ref()?;
        Some(ReceptionStats {
            ssrc: remote.ssrc,
            packets_received: remote.received,
            packets_lost: i64::from(remote.expected()) - i64::from(remote.received),
            fraction_lost: f64::from(remote.fraction_lost) / 256.0,
            jitter_ms: remote.jitter * 1000.0 / f64::from(self.clock_rate),
            extended_highest_sequence: remote.extended_max(),
        })
    }

    fn report(&mut self, now: Instant, bye: bool) -> Vec<u8> {
        let ntp = self.ntp(now);
        let mut reports = Vec::new();
        if let Some(remote) = self.remote.as_mut() {
            reports.push(remote.report_block(now));
        }
        let mut packets = Vec::with_capacity(3);
        if std::mem::take(&mut self.sent_since_report) {
            let rtp_time = self.last_sent.map_or(self.next_timestamp, |(ts, at)| {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                ts.wrapping_add((elapsed * f64::from(self.clock_rate)) as u32)
            });
            packets.push(RtcpPacket::SenderReport {
                ssrc: self.ssrc,
                info: SenderInfo {
                    ntp_time: ntp,
                    rtp_time,
                    packet_count: self.packets_sent,
                    octet_count: self.octets_sent,
                },
                reports,
            });
        } else {
            packets.push(RtcpPacket::ReceiverReport {
                ssrc: self.ssrc,
                reports,
            });
        }
        packets.push(RtcpPacket::SourceDescription(vec![(
            self.ssrc,
            Some(self.cname.clone()),
        )]));
        if bye {
            packets.push(RtcpPacket::Bye {
                ssrcs: vec![self.ssrc],
                reason: None,
            });
        }
        let mut bytes = Vec::new();
        packets.iter().for_each(|p| p.write(&mut bytes));
        bytes
    }

    /// Our NTP time (32.32 fixed point) at `now`.
    fn ntp(&self, now: Instant) -> u64 {
        self.ntp_at_epoch
            .wrapping_add(ntp_from_duration(now.saturating_duration_since(self.epoch)))
    }

    /// Arrival time in RTP timestamp units (wrapping), for the jitter estimate.
    fn media_clock(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.epoch);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        units as u32
    }
}

fn ntp_from_duration(duration: Duration) -> u64 {
    let fraction = (u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000;
    (duration.as_secs() << 32).wrapping_add(fraction)
}

impl RemoteSource {
    /// A.1 `init_seq` plus probation for a newly seen source.
    fn new(ssrc: u32, sequence: u16) -> Self {
        let mut source = Self {
            ssrc,
            max_seq: sequence.wrapping_sub(1),
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            fraction_lost: 0,
            transit: None,
            jitter: 0.0,
            last_sr: None,
        };
        source.init_sequence(sequence);
        source.max_seq = sequence.wrapping_sub(1);
        source
    }

    fn init_sequence(&mut self, sequence: u16) {
        self.base_seq = u32::from(sequence);
        self.max_seq = sequence;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.1 `update_seq`.
    fn update_sequence(&mut self, sequence: u16) -> SequenceStatus {
        let delta = sequence.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if sequence == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = sequence;
                if self.probation == 0 {
                    // Count the probation packets too: they were in sequence.
                    self.init_sequence(sequence);
                    let first = sequence.wrapping_sub(MIN_SEQUENTIAL as u16 - 1);
                    if first > sequence {
                        // Probation straddled a wrap: the current packet is in the next cycle.
                        self.cycles = SEQ_MOD;
                    }
                    self.base_seq = u32::from(first);
                    self.received = MIN_SEQUENTIAL;
                    return SequenceStatus::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = sequence;
            }
            return SequenceStatus::Probation;
        }
        if delta < MAX_DROPOUT {
            if sequence < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = sequence;
        } else if delta <= (SEQ_MOD as u16).wrapping_sub(MAX_MISORDER) {
            // Note: the comparison above uses u16 arithmetic: 65536 - 100 = 65436.
            if u32::from(sequence) == self.bad_seq {
                // Two sequential packets after a jump: the other side restarted.
                self.init_sequence(sequence);
            } else {
                self.bad_seq = u32::from(sequence.wrapping_add(1));
                return SequenceStatus::Bad;
            }
        }
        // Otherwise: a duplicate or reordered packet, counted below.
        self.received = self.received.wrapping_add(1);
        SequenceStatus::Valid
    }

    /// RFC 3550 A.8, with `arrival` in RTP timestamp units.
    fn update_jitter(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        if self.received == 0 && self.probation > 0 {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// RFC 3550 A.3: builds our report block about this source and starts a new interval.
    fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        self.fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                (lsr, (ntp_from_duration(delay) >> 16) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: self.fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: self.extended_max(),
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::parse_compound;

    fn base() -> Instant {
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        Instant::now()
    }

    fn session(now: Instant, ssrc: u32) -> RtpSession {
        RtpSession::new(now, ssrc, 65530, 4_294_967_000, 8000, "a@b".into(), None)
    }

    #[test]
    fn numbering_wraps_and_marks_talkspurts() {
        let t0 = base();
        let mut tx = session(t0, 1);
        let mut packets = Vec::new();
        for _ in 0..10 {
            packets.push(tx.send_media(t0, 0, 160, &[0; 160]));
        }
        tx.skip(1600);
        packets.push(tx.send_media(t0, 0, 160, &[0; 160]));
        let parsed: Vec<_> = packets
            .iter()
            .map(|p| RtpPacket::parse(p).unwrap())
            .collect();
        assert_eq!(parsed[0].sequence, 65530);
        assert_eq!(parsed[6].sequence, 0);
        assert_eq!(parsed[1].timestamp, 4_294_967_160);
        assert_eq!(parsed[2].timestamp, 24); // wrapped
        assert!(parsed[0].marker && !parsed[1].marker && !parsed[9].marker);
        assert!(parsed[10].marker);
        assert_eq!(
            parsed[10].timestamp.wrapping_sub(parsed[9].timestamp),
            160 + 1600
        );
    }

    /// Receives `sequences` sent every 20 ms, arriving with the given extra delays (ms).
    fn receive(rx: &mut RtpSession, t0: Instant, sequences: &[(u16, u64)]) {
        for &(sequence, delay_ms) in sequences {
            let index = u64::from(sequence.wrapping_sub(65000));
            let bytes = RtpPacket {
                marker: false,
                payload_type: 0,
                sequence,
                timestamp: (index * 160) as u32,
                ssrc: 9,
                csrcs: vec![],
                extension: None,
                payload: &[0; 160],
            };
            let mut buf = Vec::new();
            bytes.write(&mut buf);
            let arrival = t0 + Duration::from_millis(index * 20 + delay_ms);
            rx.handle_rtp(arrival, &RtpPacket::parse(&buf).unwrap());
        }
    }

    #[test]
    fn counts_loss_across_wrap_and_estimates_jitter() {
        let t0 = base();
        let mut rx = session(t0, 2);
        // 1000 packets from 65000 (wrapping), every 10th lost, alternating 0/10 ms delay.
        let sequences: Vec<(u16, u64)> = (0..1000u16)
            .filter(|i| i % 10 != 5)
            .map(|i| (65000u16.wrapping_add(i), u64::from(i % 2) * 10))
            .collect();
        receive(&mut rx, t0, &sequences);
        let stats = rx.reception().unwrap();
        assert_eq!(stats.packets_received, 900);
        assert_eq!(stats.packets_lost, 100);
        assert_eq!(stats.extended_highest_sequence, 65536 + 463);
        // |D| is 10 ms (80 units) between most neighbours: jitter converges near 10 ms.
        assert!(
            (7.0..11.0).contains(&stats.jitter_ms),
            "{}",
            stats.jitter_ms
        );
        let block = rx.remote.as_mut().unwrap().report_block(t0);
        assert_eq!(block.cumulative_lost, 100);
        assert_eq!(block.fraction_lost, 25); // 10 % of 256
    }

    #[test]
    fn probation_across_wrap_counts_no_loss() {
        let t0 = base();
        let mut rx = session(t0, 2);
        receive(&mut rx, t0, &[(65535, 0), (0, 0), (1, 0)]);
        let stats = rx.reception().unwrap();
        assert_eq!((stats.packets_received, stats.packets_lost), (3, 0));
    }

    #[test]
    fn a_stray_ssrc_does_not_replace_the_confirmed_source() {
        let t0 = base();
        let mut rx = session(t0, 2);
        receive(&mut rx, t0, &[(65000, 0), (65001, 0), (65002, 0)]);
        let stray = |ssrc: u32, sequence: u16| {
            let mut bytes = Vec::new();
            RtpPacket {
                marker: false,
                payload_type: 0,
                sequence,
                timestamp: 0,
                ssrc,
                csrcs: vec![],
                extension: None,
                payload: &[],
            }
            .write(&mut bytes);
            bytes
        };
        let bytes = stray(77, 500);
        let received = rx.handle_rtp(t0, &RtpPacket::parse(&bytes).unwrap());
        assert_eq!(received.status, SequenceStatus::Probation);
        assert!(!received.new_source);
        assert_eq!(rx.remote_ssrc(), Some(9));
        receive(&mut rx, t0, &[(65003, 0)]);
        assert_eq!(rx.reception().unwrap().packets_received, 4);
        // A second in-sequence packet confirms the new source.
        let bytes = stray(77, 501);
        let received = rx.handle_rtp(t0, &RtpPacket::parse(&bytes).unwrap());
        assert_eq!(received.status, SequenceStatus::Valid);
        assert!(received.new_source);
        assert_eq!(rx.remote_ssrc(), Some(77));
    }

    #[test]
    fn duplicates_and_misorder_do_not_count_as_loss() {
        let t0 = base();
        let mut rx = session(t0, 2);
        let sequences = [(65000, 0), (65001, 0), (65003, 0), (65002, 0), (65004, 0)];
        receive(&mut rx, t0, &sequences);
        assert_eq!(rx.reception().unwrap().packets_lost, 0);
        receive(&mut rx, t0, &[(65004, 0)]);
        assert_eq!(rx.reception().unwrap().packets_lost, -1);
    }

    #[test]
    fn rtt_from_sender_and_receiver_reports() {
        let t0 = base();
        let one_way = Duration::from_millis(35);
        let mut a = session(t0, 1);
        let mut b = session(t0 + Duration::from_millis(3), 2);
        // b must know a as a remote source for its report block.
        let rtp = a.send_media(t0, 0, 160, &[0; 160]);
        b.handle_rtp(t0 + one_way, &RtpPacket::parse(&rtp).unwrap());
        let sr = a.handle_timeout(t0 + FIRST_REPORT_DELAY).unwrap();
        let sr_arrival = t0 + FIRST_REPORT_DELAY + one_way;
        b.handle_rtcp(sr_arrival, &parse_compound(&sr).unwrap());
        // b answers 400 ms later.
        let rr = b
            .handle_timeout(sr_arrival + Duration::from_millis(400))
            .unwrap();
        let packets = parse_compound(&rr).unwrap();
        assert!(matches!(
            packets[1],
            RtcpPacket::SourceDescription(ref c) if c[0].1.as_deref() == Some("a@b")
        ));
        let update = a.handle_rtcp(sr_arrival + Duration::from_millis(400) + one_way, &packets);
        assert_eq!(update.report.unwrap().ssrc, 1);
        let rtt = a.rtt().unwrap().as_secs_f64() * 1000.0;
        assert!((rtt - 70.0).abs() < 0.2, "rtt {rtt}");
        assert!(b.rtt().is_none());
    }

    #[test]
    fn reports_are_periodic_and_bye_is_recognised() {
        let t0 = base();
        let mut a = session(t0, 1);
        assert_eq!(a.poll_timeout(), t0 + FIRST_REPORT_DELAY);
        assert!(a.handle_timeout(t0).is_none());
        let mut at = a.poll_timeout();
        for _ in 0..20 {
            assert!(a.handle_timeout(at).is_some());
            let interval = a.poll_timeout() - at;
            assert!(interval >= REPORT_INTERVAL / 2 && interval <= REPORT_INTERVAL * 3 / 2);
            at = a.poll_timeout();
        }
        let mut b = session(t0, 2);
        let rtp = a.send_media(t0, 0, 160, &[0; 160]);
        b.handle_rtp(t0, &RtpPacket::parse(&rtp).unwrap());
        let bye = a.bye(t0);
        assert!(b.handle_rtcp(t0, &parse_compound(&bye).unwrap()).bye);
    }
}
