//! DTMF as RTP telephone events (RFC 4733): a paced sender and a receiver that reports each
//! digit once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Default tone length and the pause before the next digit.
pub const DEFAULT_TONE: Duration = Duration::from_millis(100);
pub const DEFAULT_GAP: Duration = Duration::from_millis(100);
/// Interval between the packets of one event.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// Volume (power level, -dBm0) sent with every event.
const VOLUME: u8 = 10;
const END_PACKETS: usize = 3;

/// The RFC 4733 event code of a DTMF digit (`0-9 * # A-D`, case-insensitive).
pub fn event_code(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        d @ 'A'..='D' => d as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The digit for an RFC 4733 event code (0..=15).
pub fn digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// A digit that is not DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a DTMF digit (0-9 * # A-D)")]
pub struct InvalidDigit(pub char);

/// One telephone-event RTP packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub payload: [u8; 4],
}

/// Plays queued digits one after another: a start packet with the marker bit, duration updates
/// every 20 ms, then three end packets, all with the event's timestamp.
#[derive(Debug)]
pub struct DtmfSender {
    clock_rate: u32,
    tone: Duration,
    gap: Duration,
    queue: VecDeque<u8>,
    state: SenderState,
    /// Timestamp and length (timestamp units) of the last event, so the next one is later.
    last_event: Option<(u32, u32)>,
}

#[derive(Debug)]
enum SenderState {
    Idle,
    /// Waiting until `at` to start the next queued digit (or go idle).
    Waiting {
        at: Instant,
    },
    Tone {
        event: u8,
        timestamp: u32,
        started: Instant,
        next_at: Instant,
        packets: u32,
    },
}

impl DtmfSender {
    /// `clock_rate` is the telephone-event clock rate (the same as the audio codec's).
    pub fn new(clock_rate: u32) -> Self {
        Self::with_timing(clock_rate, DEFAULT_TONE, DEFAULT_GAP)
    }

    pub fn with_timing(clock_rate: u32, tone: Duration, gap: Duration) -> Self {
        Self {
            clock_rate,
            tone: tone.max(PACKET_INTERVAL),
            gap,
            queue: VecDeque::new(),
            state: SenderState::Idle,
            last_event: None,
        }
    }

    /// Queues `digits`; none is queued if one is invalid.
    pub fn enqueue(&mut self, now: Instant, digits: &str) -> Result<(), InvalidDigit> {
        let codes = digits
            .chars()
            .map(|d| event_code(d).ok_or(InvalidDigit(d)))
            .collect::<Result<Vec<_>, _>>()?;
        self.queue.extend(codes);
        if matches!(self.state, SenderState::Idle) && !self.queue.is_empty() {
            self.state = SenderState::Waiting { at: now };
        }
        Ok(())
    }

    /// True while a digit plays, its trailing gap runs, or digits wait: audio is suppressed.
    pub fn is_busy(&self) -> bool {
        !matches!(self.state, SenderState::Idle)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SenderState::Idle => None,
            SenderState::Waiting { at } => Some(at),
            SenderState::Tone { next_at, .. } => Some(next_at),
        }
    }

    /// Emits the packets due at `now`. `timestamp` is the sender's current RTP timestamp, used
    /// for a new event.
    pub fn handle_timeout(&mut self, now: Instant, timestamp: u32) -> Vec<DtmfPacket> {
        let mut packets = Vec::new();
        while self.poll_timeout().is_some_and(|at| at <= now) {
            match self.state {
                SenderState::Idle => break,
                SenderState::Waiting { at } => self.start_next(at, timestamp, &mut packets),
                SenderState::Tone {
                    event,
                    timestamp,
                    started,
                    next_at,
                    packets: sent,
                } => {
                    let tone_units = self.units(self.tone);
                    let duration = self.units(PACKET_INTERVAL * (sent + 1)).min(tone_units);
                    if duration >= tone_units {
                        for _ in 0..END_PACKETS {
                            packets.push(packet(false, timestamp, event, true, duration));
                        }
                        self.state = SenderState::Waiting {
                            at: started + self.tone + self.gap,
                        };
                    } else {
                        packets.push(packet(false, timestamp, event, false, duration));
                        self.state = SenderState::Tone {
                            event,
                            timestamp,
                            started,
                            next_at: next_at + PACKET_INTERVAL,
                            packets: sent + 1,
                        };
                    }
                }
            }
        }
        packets
    }

    fn start_next(&mut self, at: Instant, timestamp: u32, packets: &mut Vec<DtmfPacket>) {
        let Some(event) = self.queue.pop_front() else {
            self.state = SenderState::Idle;
            return;
        };
        // A new event needs a new timestamp even if the audio timeline did not move.
        let timestamp = match self.last_event {
            Some((last, length)) => {
                let earliest = last.wrapping_add(length).wrapping_add(self.units(self.gap));
                if (timestamp.wrapping_sub(earliest) as i32) < 0 {
                    earliest
                } else {
                    timestamp
                }
            }
            None => timestamp,
        };
        let tone_units = self.units(self.tone);
        self.last_event = Some((timestamp, tone_units));
        let duration = self.units(PACKET_INTERVAL).min(tone_units);
        packets.push(packet(true, timestamp, event, false, duration));
        self.state = SenderState::Tone {
            event,
            timestamp,
            started: at,
            next_at: at + PACKET_INTERVAL,
            packets: 1,
        };
    }

    fn units(&self, duration: Duration) -> u32 {
        (duration.as_secs_f64() * f64::from(self.clock_rate)).round() as u32
    }
}

fn packet(marker: bool, timestamp: u32, event: u8, end: bool, duration: u32) -> DtmfPacket {
    let duration = duration.min(u32::from(u16::MAX)) as u16;
    let [high, low] = duration.to_be_bytes();
    DtmfPacket {
        marker,
        timestamp,
        payload: [event, u8::from(end) << 7 | VOLUME, high, low],
    }
}

/// Reports each received event once: on its first end packet, or when a new event starts
/// before the previous one's end packets arrived.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// RTP timestamp of the last event reported.
    current: Option<u32>,
    digits: VecDeque<char>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in one telephone-event payload with its RTP timestamp.
    ///
    /// A digit is reported on the first packet of its event (a new timestamp), not on its end:
    /// some senders (baresip 1.0) never send the end packets of the last digit, and an agent
    /// script or IVR wants the digit as soon as it starts.
    pub fn handle(&mut self, timestamp: u32, payload: &[u8]) {
        let Some(&[event, _, _, _]) = payload.first_chunk::<4>() else {
            return;
        };
        match self.current {
            // More packets (updates, ends, retransmissions) of the event already reported.
            Some(current) if current == timestamp => {}
            // Late packets of an older event.
            Some(current) if (timestamp.wrapping_sub(current) as i32) < 0 => {}
            _ => {
                self.report(event);
                self.current = Some(timestamp);
            }
        }
    }

    /// The next received digit.
    pub fn poll_digit(&mut self) -> Option<char> {
        self.digits.pop_front()
    }

    fn report(&mut self, event: u8) {
        if let Some(d) = digit(event) {
            self.digits.push_back(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Instant {
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        Instant::now()
    }

    #[test]
    fn codes_round_trip() {
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(digit(event_code(d).unwrap()), Some(d));
        }
        assert_eq!(event_code('a'), Some(12));
        assert_eq!(event_code('x'), None);
        assert_eq!(digit(16), None);
    }

    /// Runs the sender on a 10 ms clock; returns (time offset ms, packet).
    fn run(sender: &mut DtmfSender, t0: Instant, until_ms: u64) -> Vec<(u64, DtmfPacket)> {
        let mut out = Vec::new();
        for ms in (0..until_ms).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            // The audio timeline advances 8 units per ms from 1000.
            let timestamp = 1000 + ms as u32 * 8;
            for p in sender.handle_timeout(now, timestamp) {
                out.push((ms, p));
            }
        }
        out
    }

    #[test]
    fn sender_paces_one_event() {
        let t0 = base();
        let mut sender = DtmfSender::new(8000);
        assert!(sender.enqueue(t0, "5x").is_err());
        assert!(!sender.is_busy());
        sender.enqueue(t0, "5").unwrap();
        assert!(sender.is_busy());
        let packets = run(&mut sender, t0, 400);
        assert!(!sender.is_busy());
        let times: Vec<u64> = packets.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [0, 20, 40, 60, 80, 80, 80]);
        let durations: Vec<u16> = packets
            .iter()
            .map(|(_, p)| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert!(packets[0].1.marker && packets[1..].iter().all(|(_, p)| !p.marker));
        assert!(packets.iter().all(|(_, p)| p.timestamp == 1000));
        assert!(packets.iter().all(|(_, p)| p.payload[0] == 5));
        let ends = packets.iter().filter(|(_, p)| p.payload[1] & 0x80 != 0);
        assert_eq!(ends.count(), 3);
        assert_eq!(packets[0].1.payload[1], VOLUME);
    }

    #[test]
    fn digits_follow_each_other_with_distinct_timestamps() {
        let t0 = base();
        let mut sender = DtmfSender::new(8000);
        sender.enqueue(t0, "12").unwrap();
        let mut starts = Vec::new();
        for ms in (0..600).step_by(10) {
            // The audio timeline is frozen: the sender must still advance timestamps.
            for p in sender.handle_timeout(t0 + Duration::from_millis(ms), 1000) {
                if p.marker {
                    starts.push((ms, p.timestamp, p.payload[0]));
                }
            }
        }
        assert_eq!(starts, [(0, 1000, 1), (200, 1000 + 1600, 2)]);
    }

    #[test]
    fn receiver_reports_once_even_with_lost_end_packets() {
        let t0 = base();
        let mut sender = DtmfSender::new(8000);
        sender.enqueue(t0, "1234#").unwrap();
        let packets = run(&mut sender, t0, 2000);
        let mut receiver = DtmfReceiver::new();
        let mut last_timestamp = None;
        for (_, p) in &packets {
            let end = p.payload[1] & 0x80 != 0;
            // Drop every end packet of digit '3': reported when '4' starts.
            if end && p.payload[0] == 3 {
                continue;
            }
            receiver.handle(p.timestamp, &p.payload);
            // Replay an old packet now and then: ignored.
            if let Some(old) = last_timestamp.filter(|&t| t != p.timestamp) {
                receiver.handle(old, &[1, 0x80 | VOLUME, 3, 32]);
            }
            last_timestamp = Some(p.timestamp);
        }
        let digits: String = std::iter::from_fn(|| receiver.poll_digit()).collect();
        assert_eq!(digits, "1234#");
        receiver.handle(0, &[1, 2]);
        assert_eq!(receiver.poll_digit(), None);
    }
}
