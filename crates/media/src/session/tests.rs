//! Two sessions back to back on a simulated clock and network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::SmallRng};

use super::*;
use crate::comfort_noise::CN_PAYLOAD_TYPE;
use crate::quality::QUALITY_WINDOW;

const A_ADDR: &str = "192.0.2.1:4000";
const B_ADDR: &str = "192.0.2.2:5000";

fn config(kind: CodecKind, ssrc: u32) -> MediaConfig {
    let mut dtmf = CodecSpec {
        payload_type: 101,
        name: "telephone-event".into(),
        clock_rate: kind.sample_rate(),
        channels: 1,
        fmtp: Some("0-15".into()),
    };
    dtmf.clock_rate = kind.sample_rate();
    MediaConfig {
        codec: kind.default_spec(),
        kind,
        dtmf: Some(dtmf),
        ptime_ms: 20,
        ssrc,
        initial_seq: (ssrc as u16).wrapping_mul(7),
        initial_timestamp: ssrc.wrapping_mul(13),
        cname: format!("{ssrc}@test"),
        wallclock: None,
    }
}

/// A test signal without a short period: three tones with a slow amplitude envelope.
fn signal(n: usize, sample_rate: u32) -> i16 {
    let t = n as f64 / f64::from(sample_rate);
    let envelope = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 1.7 * t).sin();
    let tones = [(310.0, 0.5), (770.0, 0.3), (1230.0, 0.2)]
        .iter()
        .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
        .sum::<f64>();
    (8000.0 * envelope * tones) as i16
}

/// Voiced-speech-like: six harmonics of a gliding 120..220 Hz pitch, in 3 syllables/s. Opus
/// sends FEC for active speech only, and a steady tone soon stops counting as active.
fn speech_like(n: usize, sample_rate: u32) -> i16 {
    use std::f64::consts::PI;
    let t = n as f64 / f64::from(sample_rate);
    let phase = 2.0 * PI * (170.0 * t - 50.0 / (2.0 * PI * 0.7) * (2.0 * PI * 0.7 * t).cos());
    let voice: f64 = (1..=6)
        .map(|k| (f64::from(k) * phase).sin() / f64::from(k))
        .sum();
    let envelope = (2.0 * PI * 3.0 * t).sin().max(0.0).sqrt();
    (6000.0 * envelope * voice) as i16
}

struct Pair {
    /// What a sends: sample index and rate to PCM.
    source: fn(usize, u32) -> i16,
    a: MediaSession,
    b: MediaSession,
    t0: Instant,
    now: Duration,
    one_way: Duration,
    /// Extra random delay, uniform in 0..jitter (reorders packets).
    jitter: Duration,
    loss: f64,
    /// Bursty loss (Gilbert model) instead of `loss`: (p good→bad, r bad→good, in bad).
    burst: Option<(f64, f64, bool)>,
    /// Whether the impairment also applies from b to a (else only a's stream suffers).
    impair_both_ways: bool,
    /// Speech to send instead of `source` (silence after its end).
    speech: Option<Vec<i16>>,
    rng: SmallRng,
    /// (arrival, to_b, bytes)
    in_flight: Vec<(Duration, bool, Vec<u8>)>,
    sent_by_a: Vec<i16>,
    played_by_b: Vec<i16>,
    events_a: Vec<MediaEvent>,
    events_b: Vec<MediaEvent>,
    a_source: SocketAddr,
    /// When in each 20 ms b (and a) pull audio: the audio clock's phase against a's sends.
    pull_phase_ms: usize,
}

impl Pair {
    fn new(kind: CodecKind, one_way: Duration, loss: f64) -> Self {
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        let t0 = Instant::now();
        Self {
            source: signal,
            a: MediaSession::new(config(kind, 0x1111_1111), t0).unwrap(),
            b: MediaSession::new(config(kind, 0x2222_2222), t0).unwrap(),
            t0,
            now: Duration::ZERO,
            one_way,
            jitter: Duration::ZERO,
            loss,
            burst: None,
            impair_both_ways: true,
            speech: None,
            rng: SmallRng::seed_from_u64(5),
            in_flight: Vec::new(),
            sent_by_a: Vec::new(),
            played_by_b: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            a_source: A_ADDR.parse().unwrap(),
            pull_phase_ms: 7,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    /// Runs for `duration` in 1 ms ticks: audio every 20 ms (the audio clocks `pull_phase_ms` out of phase).
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.at();
            let ms = self.now.as_millis() as usize;
            if ms % 20 == 0 {
                let frame = self.a.frame_samples();
                let rate = self.a.sample_rate();
                let start = self.sent_by_a.len();
                let pcm: Vec<i16> = match &self.speech {
                    Some(speech) => (start..start + frame)
                        .map(|n| speech.get(n).copied().unwrap_or(0))
                        .collect(),
                    None => (start..start + frame)
                        .map(|n| (self.source)(n, rate))
                        .collect(),
                };
                self.a.send_audio(now, &pcm);
                self.sent_by_a.extend(pcm);
                self.b.send_audio(now, &vec![0; frame]);
            }
            for (session, to_b) in [(&mut self.a, true), (&mut self.b, false)] {
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
                while let Some(transmit) = session.poll_transmit() {
                    let lost = match &mut self.burst {
                        _ if !to_b && !self.impair_both_ways => false,
                        Some((p, r, bad)) => {
                            *bad = self.rng.gen_bool(if *bad { 1.0 - *r } else { *p });
                            *bad
                        }
                        None => self.rng.gen_bool(self.loss),
                    };
                    if !lost {
                        let extra = self.jitter.mul_f64(self.rng.r#gen::<f64>());
                        let arrival = self.now + self.one_way + extra;
                        self.in_flight.push((arrival, to_b, transmit.bytes));
                    }
                }
            }
            let (due, later) = self
                .in_flight
                .drain(..)
                .partition(|(at, _, _)| *at <= self.now);
            self.in_flight = later;
            for (_, to_b, bytes) in due {
                if to_b {
                    self.b.handle_packet(now, self.a_source, &bytes);
                } else {
                    self.a.handle_packet(now, B_ADDR.parse().unwrap(), &bytes);
                }
            }
            if ms % 20 == self.pull_phase_ms {
                let mut out = vec![1; self.b.frame_samples()];
                self.b.pull_audio(now, &mut out);
                self.played_by_b.extend(out);
                let mut out = vec![1; self.a.frame_samples()];
                self.a.pull_audio(now, &mut out);
            }
            self.events_a
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.events_b
                .extend(std::iter::from_fn(|| self.b.poll_event()));
        }
    }
}

/// Best normalised cross-correlation of `played` against `sent` over lags up to 200 ms, on a
/// 1 s window from 0.5 s; returns (correlation, lag in samples at `rate`). Works at 8 kHz:
/// 48 kHz input is decimated (the test signal stays below 1.3 kHz).
fn best_correlation(sent: &[i16], played: &[i16], rate: usize) -> (f64, usize) {
    let step = rate / 8000;
    let decimate = |s: &[i16]| {
        s.iter()
            .step_by(step)
            .map(|&x| f64::from(x))
            .collect::<Vec<f64>>()
    };
    let (sent, played) = (decimate(sent), decimate(played));
    let (from, max_lag, len) = (4000, 1600, 8000);
    let reference = &sent[from..from + len];
    let energy = |s: &[f64]| s.iter().map(|x| x * x).sum::<f64>();
    let reference_energy = energy(reference);
    (0..max_lag)
        .map(|lag| {
            let candidate = &played[from + lag..from + lag + len];
            let dot: f64 = reference.iter().zip(candidate).map(|(x, y)| x * y).sum();
            let norm = (reference_energy * energy(candidate)).sqrt().max(1.0);
            (dot / norm, lag * step)
        })
        .fold((f64::MIN, 0), |best, c| if c.0 > best.0 { c } else { best })
}

fn carries_audio(kind: CodecKind, min_correlation: f64) {
    let mut pair = Pair::new(kind, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_secs(4));
    let rate = pair.a.sample_rate() as usize;
    let (correlation, lag) = best_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
    let lag_ms = lag * 1000 / rate;
    assert!(
        correlation > min_correlation,
        "{kind}: correlation {correlation}"
    );
    // One-way 30 ms plus 20-60 ms of buffering and the pull phase.
    assert!((30..=120).contains(&lag_ms), "{kind}: lag {lag_ms} ms");

    let sent = pair.a.stats();
    let received = pair.b.stats();
    assert_eq!(sent.packets_sent, 200);
    assert!(
        (198..=200).contains(&received.packets_received),
        "{received:?}"
    );
    assert_eq!(received.packets_lost, 0);
    assert!(received.jitter_ms < 1.0, "{received:?}");
    assert_eq!(received.jitter_buffer.frames_dropped, 0);
    assert_eq!(
        pair.events_b[..2],
        [
            MediaEvent::RemoteSource(0x1111_1111),
            MediaEvent::RemoteAddress(A_ADDR.parse().unwrap())
        ]
    );
    assert_eq!(pair.events_b.len(), 2);
}

#[test]
fn pcmu_pair_carries_audio() {
    carries_audio(CodecKind::Pcmu, 0.98);
}

#[test]
fn pcma_pair_carries_audio() {
    carries_audio(CodecKind::Pcma, 0.98);
}

#[test]
fn opus_pair_carries_audio() {
    carries_audio(CodecKind::Opus, 0.9);
}

#[test]
fn dtmf_digits_arrive_once_each() {
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_millis(500));
    pair.a.send_dtmf(pair.at(), "1234#").unwrap();
    assert!(matches!(
        pair.a.send_dtmf(pair.at(), "9z"),
        Err(MediaError::InvalidDigit(_))
    ));
    pair.run(Duration::from_secs(2));
    let digits: String = pair
        .events_b
        .iter()
        .filter_map(|e| match e {
            MediaEvent::DtmfReceived(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "1234#");
    assert_eq!(pair.a.stats().dtmf_sent, 5);
    assert_eq!(pair.b.stats().dtmf_received, 5);
    // Audio paused for 5 × (100 ms tone + 100 ms gap): about 50 fewer audio packets, while the
    // stream stays one sequence (no loss counted).
    let stats = pair.b.stats();
    assert_eq!(stats.packets_lost, 0);
    assert!(
        pair.a.stats().packets_sent < 125 + 5 * 7,
        "{:?}",
        pair.a.stats()
    );
}

#[test]
fn rtcp_round_trip_time_is_twice_the_one_way_delay() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(40), 0.0);
    pair.run(Duration::from_secs(15));
    for stats in [pair.a.stats(), pair.b.stats()] {
        let rtt = stats.rtt_ms.expect("an RTT after 15 s");
        assert!((rtt - 80.0).abs() < 1.0, "rtt {rtt}");
        assert_eq!(stats.remote_packets_lost, Some(0));
    }
}

#[test]
fn loss_is_concealed_without_gaps() {
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.05);
    pair.run(Duration::from_secs(6));
    let rate = pair.b.sample_rate() as usize;
    let frame = pair.b.frame_samples();
    // After playout starts, every frame has signal: decoded, FEC-rebuilt or concealed.
    let start = rate / 5;
    for (index, frame) in pair.played_by_b[start..].chunks(frame).enumerate() {
        let energy: f64 = frame.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let rms = (energy / frame.len() as f64).sqrt();
        // The envelope dips to 1/5 (rms ≈ 1000); concealment attenuates, silence is 0.
        assert!(rms > 150.0, "silent frame {index}: rms {rms}");
    }
    let stats = pair.b.stats();
    let sent = pair.a.stats().packets_sent as i64;
    assert!(
        (sent / 50..=sent / 10).contains(&stats.packets_lost),
        "{stats:?}"
    );
    assert!(stats.jitter_buffer.frames_concealed > 0);
    assert!(stats.fec_recovered > 0, "{stats:?}");
    // The remote's RTCP reports the loss back; Opus is told to use FEC accordingly.
    assert!(
        pair.a
            .stats()
            .remote_packets_lost
            .is_some_and(|lost| lost > 0)
    );
    let (correlation, _) = best_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
    assert!(correlation > 0.6, "correlation {correlation}");
}

#[test]
fn network_jitter_is_absorbed_with_bounded_delay() {
    for kind in [CodecKind::Pcmu, CodecKind::Opus] {
        let mut pair = Pair::new(kind, Duration::from_millis(30), 0.0);
        pair.jitter = Duration::from_millis(60);
        let mut max_delay_ms: f64 = 0.0;
        for _ in 0..60 {
            pair.run(Duration::from_millis(100));
            max_delay_ms = max_delay_ms.max(pair.b.stats().playout_delay_ms);
        }
        let stats = pair.b.stats();
        // Uniform 0-60 ms delay: RFC 3550 jitter ≈ 20 ms (mean |D| of two uniforms).
        assert!((10.0..30.0).contains(&stats.jitter_ms), "{kind}: {stats:?}");
        assert!(max_delay_ms < 200.0, "{kind}: max delay {max_delay_ms}");
        // The 98th percentile of a 60 ms spread; reordering is not loss, so Opus adds no FEC
        // look-ahead on top.
        assert!(
            (50.0..=62.0).contains(&stats.target_delay_ms),
            "{kind}: {stats:?}"
        );
        let late = stats.jitter_buffer.late_dropped + stats.jitter_buffer.frames_concealed;
        assert!(late < 30, "{kind}: {stats:?}");
        let rate = pair.b.sample_rate() as usize;
        // Each window at its own lag: the delay grows in the first second.
        let correlation = windowed_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
        assert!(correlation > 0.9, "{kind}: correlation {correlation}");
        // Settled: after the first seconds the buffer neither grows nor shrinks.
        assert!(stats.jitter_buffer.frames_dropped <= 1, "{kind}: {stats:?}");
    }
}

#[test]
fn hold_stops_rtp_but_not_rtcp_and_resume_marks_a_talkspurt() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(10), 0.0);
    pair.run(Duration::from_secs(1));
    pair.a.set_sending(false);
    pair.run(Duration::from_millis(100));
    let before = pair.a.stats().packets_sent;
    pair.run(Duration::from_secs(6));
    assert_eq!(pair.a.stats().packets_sent, before);
    assert!(pair.b.stats().rtt_ms.is_some(), "RTCP kept flowing");
    pair.a.set_sending(true);
    // Capture a's next RTP packet.
    let now = pair.at() + Duration::from_millis(20);
    pair.a.send_audio(now, &vec![0; 160]);
    let mut transmit = pair.a.poll_transmit().unwrap();
    while transmit.rtcp {
        transmit = pair.a.poll_transmit().unwrap();
    }
    let packet = RtpPacket::parse(&transmit.bytes).unwrap();
    assert!(packet.marker);
}

#[test]
fn source_address_change_is_reported() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(10), 0.0);
    pair.run(Duration::from_millis(200));
    // A stray datagram with a plausible header from elsewhere does not move the stream.
    let stray = RtpPacket {
        marker: false,
        payload_type: 0,
        sequence: 1,
        timestamp: 1,
        ssrc: 0xBAD,
        csrcs: vec![],
        extension: None,
        payload: &[0xFF; 160],
    };
    let mut bytes = Vec::new();
    stray.write(&mut bytes);
    pair.b
        .handle_packet(pair.at(), "203.0.113.9:7000".parse().unwrap(), &bytes);
    pair.a_source = "198.51.100.7:6000".parse().unwrap();
    pair.run(Duration::from_millis(200));
    let addresses: Vec<_> = pair
        .events_b
        .iter()
        .filter_map(|e| match e {
            MediaEvent::RemoteAddress(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, [A_ADDR, "198.51.100.7:6000"]);
}

#[test]
fn config_is_validated() {
    #[allow(clippy::disallowed_methods)] // Tests need one base instant.
    let now = Instant::now();
    let mut bad = config(CodecKind::Opus, 1);
    bad.ptime_ms = 25;
    assert!(matches!(
        MediaSession::new(bad, now),
        Err(MediaError::Ptime { .. })
    ));
    let mut bad = config(CodecKind::Pcmu, 1);
    bad.codec.clock_rate = 16000;
    assert!(matches!(
        MediaSession::new(bad, now),
        Err(MediaError::ClockRate { .. })
    ));
    let mut no_dtmf = config(CodecKind::Pcma, 1);
    no_dtmf.dtmf = None;
    let mut session = MediaSession::new(no_dtmf, now).unwrap();
    assert!(matches!(
        session.send_dtmf(now, "1"),
        Err(MediaError::DtmfNotNegotiated)
    ));
    assert_eq!(
        (session.sample_rate(), session.frame_samples()),
        (8000, 160)
    );
}

#[test]
fn random_datagrams_never_panic() {
    #[allow(clippy::disallowed_methods)] // Tests need one base instant.
    let t0 = Instant::now();
    let mut session = MediaSession::new(config(CodecKind::Opus, 1), t0).unwrap();
    let source: SocketAddr = B_ADDR.parse().unwrap();
    let mut rng = SmallRng::seed_from_u64(99);
    let mut out = vec![0; session.frame_samples()];
    for i in 0..50_000u32 {
        let now = t0 + Duration::from_millis(u64::from(i));
        let len = rng.gen_range(0..200);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        if i % 3 == 0 && len >= 12 {
            // A consistent source with random payloads.
            let sequence = (i / 3) as u16;
            bytes[..12].copy_from_slice(&[0x80, 111, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
            bytes[2..4].copy_from_slice(&sequence.to_be_bytes());
            bytes[4..8].copy_from_slice(&(u32::from(sequence) * 960).to_be_bytes());
        } else if len >= 12 {
            // Mostly plausible headers: version 2, our payload types, RTCP types.
            bytes[0] = 0x80 | (bytes[0] & 0x3F);
            bytes[1] = match rng.gen_range(0..4) {
                0 => 111,
                1 => 101 | (bytes[1] & 0x80),
                2 => rng.gen_range(200..=204),
                _ => bytes[1],
            };
        }
        session.handle_packet(now, source, &bytes);
        if i % 20 == 0 {
            session.pull_audio(now, &mut out);
            session.handle_timeout(now);
            while session.poll_transmit().is_some() {}
            while session.poll_event().is_some() {}
        }
    }
    let stats = session.stats();
    assert!(stats.packets_discarded > 0);
    assert!(stats.packets_received > 0);
}

#[test]
fn quality_of_a_clean_call_is_high() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_secs(12));
    let report = pair.b.quality(pair.at());
    assert!((4.3..=4.45).contains(&report.mos), "{report:?}");
    assert!(
        (QUALITY_WINDOW..QUALITY_WINDOW + Duration::from_millis(600)).contains(&report.window),
        "{report:?}"
    );
    assert_eq!(report.loss_percent, 0.0);
    assert_eq!(report.concealed_frames, 0);
    assert!(report.remote_mos.is_some_and(|m| m > 4.3), "{report:?}");
    assert_eq!(report.remote_loss_percent, Some(0.0));
    let rtt = report.rtt_ms.expect("RTT after 12 s");
    assert!((rtt - 60.0).abs() < 1.0, "{report:?}");
    // 30 ms network + buffer + 20 ms framing.
    assert!(
        (50.0..120.0).contains(&report.one_way_delay_ms),
        "{report:?}"
    );
}

#[test]
fn quality_drops_with_loss_and_recovers_in_the_window() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_secs(3));
    let clean = pair.b.quality(pair.at());
    pair.loss = 0.05;
    pair.run(Duration::from_secs(10));
    let lossy = pair.b.quality(pair.at());
    assert!((2.0..9.0).contains(&lossy.loss_percent), "{lossy:?}");
    assert!(lossy.concealed_frames > 5, "{lossy:?}");
    // G.711 + PLC at ~5 % random loss: MOS ≈ 3.9 for each direction.
    assert!(lossy.local_mos < clean.local_mos - 0.3, "{lossy:?}");
    assert!((3.4..4.15).contains(&lossy.local_mos), "{lossy:?}");
    assert!(lossy.remote_mos.is_some_and(|m| m < 4.3), "{lossy:?}");
    assert!(lossy.mos <= lossy.local_mos);
    pair.loss = 0.0;
    pair.run(Duration::from_secs(6));
    let after = pair.b.quality(pair.at());
    assert_eq!(after.concealed_frames, 0, "{after:?}");
    assert!(after.local_mos > 4.3, "{after:?}");
    // The cumulative stats keep the loss.
    assert!(pair.b.stats().packets_lost > 5);
}

/// Normalised correlation of everything played from 1 s on with what was sent, aligned at the
/// lag [`best_correlation`] finds: a PESQ-free quality proxy.
fn aligned_correlation(sent: &[i16], played: &[i16], rate: usize) -> f64 {
    let (_, lag) = best_correlation(sent, played, rate);
    let end = (played.len() - lag).min(sent.len()) - rate / 2;
    let (mut dot, mut sent_energy, mut played_energy) = (0.0, 0.0, 0.0);
    for n in rate..end {
        let (x, y) = (f64::from(sent[n]), f64::from(played[n + lag]));
        dot += x * y;
        sent_energy += x * x;
        played_energy += y * y;
    }
    dot / (sent_energy * played_energy).sqrt().max(1.0)
}

#[test]
fn opus_fec_recovers_lost_frames_and_improves_the_audio() {
    let run = |fec: bool| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.10);
        pair.rng = SmallRng::seed_from_u64(10);
        pair.source = speech_like;
        pair.a.set_inband_fec(fec);
        pair.run(Duration::from_secs(12));
        let rate = pair.b.sample_rate() as usize;
        let correlation = aligned_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
        (pair.b.stats(), pair.a.stats(), correlation)
    };
    let (with_fec, sender, with) = run(true);
    let (without_fec, _, without) = run(false);
    // Same seed, same losses.
    assert_eq!(with_fec.packets_lost, without_fec.packets_lost);
    assert!(with_fec.packets_lost > 40, "{with_fec:?}");
    // Most losses are single: their frame comes back from the next packet, unless it fell in
    // a pause between syllables (Opus protects active speech only).
    assert!(
        with_fec.fec_recovered as i64 > with_fec.packets_lost / 3,
        "{with_fec:?}"
    );
    assert_eq!(without_fec.fec_recovered, 0, "{without_fec:?}");
    assert!(with > without + 0.02, "with FEC {with}, without {without}");
    // The remote saw ~10 % loss: the encoder protects for it.
    assert!(
        (5..=MAX_LOSS_PERCENT).contains(&sender.expected_loss_percent),
        "{sender:?}"
    );
}

#[test]
fn expected_loss_rises_at_once_and_falls_after_two_reports() {
    #[allow(clippy::disallowed_methods)] // Tests need one base instant.
    let t0 = Instant::now();
    let mut loss = ExpectedLoss::new(t0);
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    assert_eq!(loss.percent, INITIAL_LOSS_PERCENT);
    // Early clean reports do not drop the start-of-call protection.
    assert_eq!(loss.report(at(1), 0), None);
    assert_eq!(loss.report(at(6), 0), None);
    assert_eq!(loss.percent, INITIAL_LOSS_PERCENT);
    // 20 % (51/256) raises it at once.
    assert_eq!(loss.report(at(7), 51), Some(20));
    assert_eq!(loss.report(at(8), 255), Some(MAX_LOSS_PERCENT));
    // One low report is not enough; a high one in between resets the count.
    assert_eq!(loss.report(at(12), 13), None);
    assert_eq!(loss.report(at(17), 255), None);
    assert_eq!(loss.report(at(22), 13), None);
    assert_eq!(loss.report(at(27), 5), Some(6));
    assert_eq!(loss.report(at(32), 0), None);
    assert_eq!(loss.report(at(37), 0), Some(MIN_LOSS_PERCENT));
}

#[test]
fn opus_keeps_fec_look_ahead_only_while_the_network_loses_packets() {
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_secs(5));
    let clean = pair.b.stats();
    assert!(clean.target_delay_ms <= 30.0, "{clean:?}");
    assert!(pair.b.quality(pair.at()).playout_delay_ms <= 30.0);
    pair.loss = 0.05;
    pair.run(Duration::from_secs(5));
    let lossy = pair.b.stats();
    assert!(lossy.target_delay_ms >= 40.0, "{lossy:?}");
    assert!(lossy.fec_recovered > 0, "{lossy:?}");
    pair.loss = 0.0;
    pair.run(Duration::from_secs(15));
    // Still within the hold time after the last loss.
    assert!(pair.b.stats().target_delay_ms >= 40.0);
    pair.run(Duration::from_secs(20));
    let recovered = pair.b.stats();
    assert!(recovered.target_delay_ms <= 30.0, "{recovered:?}");
    assert!(
        pair.b.quality(pair.at()).playout_delay_ms <= 45.0,
        "{:?}",
        pair.b.quality(pair.at())
    );
}

#[test]
fn comfort_noise_fills_the_remote_silence() {
    let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.0);
    pair.run(Duration::from_secs(1));
    // a goes silent: one CN packet (level 60 dBov, white), then nothing for a second.
    let now = pair.at();
    let timestamp = pair.a.rtp.next_timestamp();
    let bytes = pair
        .a
        .rtp
        .send_packet(now, CN_PAYLOAD_TYPE, false, timestamp, &[60]);
    pair.a
        .transmits
        .push_back(MediaTransmit { rtcp: false, bytes });
    pair.a.set_sending(false);
    let silence_from = pair.played_by_b.len();
    pair.run(Duration::from_secs(1));
    pair.a.set_sending(true);
    pair.run(Duration::from_secs(1));
    // Skip the buffered tail of the speech, then the silence must be noise at about −60 dBov.
    let silence = &pair.played_by_b[silence_from + 800..silence_from + 7200];
    let rms =
        (silence.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / silence.len() as f64).sqrt();
    let dbov = -20.0 * (rms / 32767.0).log10();
    assert!((57.0..63.0).contains(&dbov), "{dbov} dBov");
    let stats = pair.b.stats();
    assert!(stats.comfort_noise_frames >= 40, "{stats:?}");
    // CN is part of the sequence: no loss, nothing discarded.
    assert_eq!((stats.packets_lost, stats.packets_discarded), (0, 0));
    // Speech resumed and plays again.
    let tail = &pair.played_by_b[pair.played_by_b.len() - 1600..];
    assert!(tail.iter().any(|&s| s.abs() > 2000));
}

/// Mean over 0.5 s windows (one a second, from 2 s on) of the best normalised correlation of
/// `played` against `sent`, each window at its own lag (0..200 ms): robust to the playout delay
/// changing.
fn windowed_correlation(sent: &[i16], played: &[i16], rate: usize) -> f64 {
    let step = rate / 8000;
    let decimate = |s: &[i16]| {
        s.iter()
            .step_by(step)
            .map(|&x| f64::from(x))
            .collect::<Vec<f64>>()
    };
    let (sent, played) = (decimate(sent), decimate(played));
    let (window, max_lag) = (4000, 1600);
    let energy = |s: &[f64]| s.iter().map(|x| x * x).sum::<f64>();
    let starts: Vec<usize> = (16000..)
        .step_by(8000)
        .take_while(|start| start + window + max_lag <= played.len().min(sent.len() + max_lag))
        .filter(|start| start + window <= sent.len())
        .collect();
    let best = |start: usize| {
        let reference = &sent[start..start + window];
        let reference_energy = energy(reference);
        (0..max_lag)
            .map(|lag| {
                let candidate = &played[start + lag..start + lag + window];
                let dot: f64 = reference.iter().zip(candidate).map(|(x, y)| x * y).sum();
                dot / (reference_energy * energy(candidate)).sqrt().max(1.0)
            })
            .fold(f64::MIN, f64::max)
    };
    starts.iter().map(|&start| best(start)).sum::<f64>() / starts.len().max(1) as f64
}

#[test]
fn red_recovers_bursts_that_fec_alone_cannot() {
    let run = |red: bool| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
        pair.rng = SmallRng::seed_from_u64(11);
        pair.burst = gilbert(0.10, 3.0);
        pair.source = speech_like;
        if red {
            pair.a.set_red(Some(63));
            pair.b.set_red(Some(63));
        }
        pair.run(Duration::from_secs(12));
        let rate = pair.b.sample_rate() as usize;
        let correlation = windowed_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
        (pair.b.stats(), pair.a.stats(), correlation)
    };
    let (with_red, sender, with) = run(true);
    let (without_red, plain_sender, without) = run(false);
    // Same seed, same losses: about 10 % in bursts.
    assert_eq!(with_red.packets_lost, without_red.packets_lost);
    assert!((40..=120).contains(&with_red.packets_lost), "{with_red:?}");
    assert_eq!(without_red.red_recovered, 0);
    // Two copies per packet once the remote reports the loss: most lost frames come back,
    // bursts of three included.
    assert!(
        with_red.red_recovered as i64 > with_red.packets_lost / 2,
        "{with_red:?}"
    );
    assert!(
        with_red.jitter_buffer.frames_concealed < without_red.jitter_buffer.frames_concealed / 2,
        "{with_red:?} vs {without_red:?}"
    );
    // Fewer, shorter gaps for a lower bitrate: better on balance.
    assert!(with > without, "with RED {with}, without {without}");
    // RED costs bits, within reason: five copies of at most 48 kbit/s with their DRED (this
    // signal pauses).
    let kbits = |stats: &MediaStats| stats.octets_sent as f64 * 8.0 / 12.0 / 1000.0;
    assert!(kbits(&sender) < 250.0, "{sender:?}");
    assert!(kbits(&sender) > kbits(&plain_sender), "{sender:?}");
}

#[test]
fn plain_packets_still_play_where_red_is_accepted() {
    // a sends plain Opus (no RED negotiated on its side); b accepts RED too.
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
    pair.burst = gilbert(0.10, 2.0);
    pair.b.set_red(Some(100));
    pair.run(Duration::from_secs(6));
    let stats = pair.b.stats();
    assert_eq!(stats.red_recovered, 0);
    assert_eq!(stats.packets_discarded, 0);
    assert!(stats.fec_recovered > 0, "{stats:?}");
    assert!(stats.jitter_buffer.frames_played > 250, "{stats:?}");
}

/// PCMU has no in-band FEC: with RED negotiated, a copy of the previous frame in each packet
/// brings most randomly lost frames back (the first ones of the call included: it starts
/// protected), at the cost of one more 64 kbit/s stream.
#[test]
fn pcmu_red_recovers_random_loss() {
    let run = |red: bool| {
        let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.10);
        pair.rng = SmallRng::seed_from_u64(9);
        pair.source = speech_like;
        if red {
            pair.a.set_red(Some(122));
            pair.b.set_red(Some(122));
        }
        pair.run(Duration::from_secs(12));
        let rate = pair.b.sample_rate() as usize;
        let correlation = windowed_correlation(&pair.sent_by_a, &pair.played_by_b, rate);
        (
            pair.a.red_copies,
            pair.b.stats(),
            pair.a.stats(),
            correlation,
        )
    };
    let (copies, with_red, sender, with) = run(true);
    let (_, without_red, plain_sender, without) = run(false);
    assert_eq!(copies, 1, "one copy under random loss");
    assert_eq!(with_red.packets_lost, without_red.packets_lost);
    assert!((40..=100).contains(&with_red.packets_lost), "{with_red:?}");
    assert_eq!(without_red.red_recovered, 0);
    // A frame comes back unless the packet after it is lost too (about 1 in 10).
    assert!(
        with_red.red_recovered as i64 > with_red.packets_lost * 2 / 3,
        "{with_red:?}"
    );
    assert!(
        with_red.jitter_buffer.frames_concealed < without_red.jitter_buffer.frames_concealed / 2,
        "{with_red:?} vs {without_red:?}"
    );
    assert!(with > without, "with RED {with}, without {without}");
    // Twice the bits: 64 kbit/s of PCMU plus one copy, and the RED headers.
    let kbits = |stats: &MediaStats| stats.octets_sent as f64 * 8.0 / 12.0 / 1000.0;
    assert!(kbits(&plain_sender) < 70.0, "{plain_sender:?}");
    assert!(
        (120.0..140.0).contains(&kbits(&sender)),
        "{} kbit/s",
        kbits(&sender)
    );
}

/// PCMU with RED: bursty loss reported gets two copies; a clean path, once the remote's
/// reports show it, none (the call's first seconds go protected with one).
#[test]
fn pcmu_red_copies_follow_the_reported_loss() {
    let copies_after = |burst: Option<(f64, f64, bool)>, loss: f64, seconds: u64| {
        let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), loss);
        pair.rng = SmallRng::seed_from_u64(3);
        pair.burst = burst;
        pair.impair_both_ways = false;
        pair.a.set_red(Some(122));
        pair.b.set_red(Some(122));
        pair.run(Duration::from_secs(seconds));
        pair.a.red_copies
    };
    assert_eq!(copies_after(None, 0.0, 1), 1, "protected from the start");
    assert_eq!(copies_after(None, 0.0, 20), 0, "clean path");
    assert_eq!(copies_after(None, 0.10, 20), 1, "random loss");
    assert_eq!(copies_after(gilbert(0.10, 3.0), 0.0, 20), 2, "bursty loss");
}

#[test]
fn red_follows_the_loss_pattern_the_remote_reports_on_our_stream() {
    // Only a's stream is impaired: a sees no loss on b's stream, so the pattern of its own
    // losses can only come from b's reports.
    let copies_after = |burst: Option<(f64, f64, bool)>, loss: f64| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), loss);
        pair.rng = SmallRng::seed_from_u64(3);
        pair.burst = burst;
        pair.impair_both_ways = false;
        pair.a.set_red(Some(63));
        pair.b.set_red(Some(63));
        pair.run(Duration::from_secs(20));
        assert_eq!(pair.a.stats().packets_lost, 0);
        (pair.a.red_copies, pair.a.remote_mean_run)
    };
    let (clean_copies, clean_run) = copies_after(None, 0.0);
    assert_eq!(clean_copies, 0, "mean run {clean_run:?}");
    let (bursty_copies, bursty_run) = copies_after(gilbert(0.10, 3.0), 0.0);
    assert_eq!(
        bursty_copies,
        red::MAX_DISTANCE as u8,
        "mean run {bursty_run:?}"
    );
    assert!(bursty_run.is_some_and(|run| run > 2.0), "{bursty_run:?}");
    let (random_copies, random_run) = copies_after(None, 0.10);
    assert_eq!(random_copies, 0, "mean run {random_run:?}");
    assert!(random_run.is_some_and(|run| run < 1.4), "{random_run:?}");
}

/// Before the remote's first loss report (1 s in), bursts seen on its stream (often the same
/// link) already turn RED on: the call's first seconds are protected too.
#[test]
fn red_protects_before_the_first_report_when_bursts_are_seen() {
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
    pair.rng = SmallRng::seed_from_u64(1);
    pair.burst = gilbert(0.20, 3.0);
    pair.a.set_red(Some(63));
    pair.b.set_red(Some(63));
    pair.run(Duration::from_millis(900));
    assert_eq!(pair.a.red_reports_seen, 0, "no report yet");
    assert!(
        pair.a.loss_runs.runs >= 1.0 && pair.a.loss_runs.mean_run() >= BURSTY_MEAN_RUN,
        "a burst seen: {:?}",
        pair.a.loss_runs
    );
    assert_eq!(pair.a.red_copies, red::MAX_DISTANCE as u8);
    // b receives the copies: its look-ahead waits for them (no more: the DRED they carry
    // only rebuilds what is still due).
    pair.run(Duration::from_millis(600));
    assert_eq!(pair.b.lookahead_frames, red::MAX_DISTANCE as u32);
}

/// Without RED negotiated, loss in bursts reported on our stream turns on Opus DRED: the
/// receiver rebuilds most of each burst from the packet after it. Random loss does not.
#[test]
fn dred_rebuilds_bursts_when_red_is_not_negotiated() {
    let run = |burst: Option<(f64, f64, bool)>, loss: f64| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), loss);
        pair.rng = SmallRng::seed_from_u64(5);
        pair.burst = burst;
        pair.impair_both_ways = false;
        pair.run(Duration::from_secs(20));
        (pair.a.dred_on, pair.b.stats())
    };
    let (on, bursty) = run(gilbert(0.10, 3.0), 0.0);
    assert!(on, "DRED on for bursts");
    assert_eq!(bursty.red_recovered, 0);
    // Rebuilt: most losses once DRED is on (it starts after the first reports).
    assert!(
        bursty.dred_recovered * 2 > bursty.packets_lost as u64,
        "{} of {} lost frames rebuilt",
        bursty.dred_recovered,
        bursty.packets_lost
    );
    let (on, random) = run(None, 0.10);
    assert!(!on, "no DRED for random loss");
    assert_eq!(random.dred_recovered, 0);
}

/// With RED negotiated, bursty loss turns Opus DRED on as well: every copy carries its own
/// deep redundancy, so the oldest copy in a packet rebuilds frames further back than RED
/// reaches. Without loss, neither.
#[test]
fn red_copies_carry_dred_under_bursts() {
    let oldest_copy_reach = |burst: Option<(f64, f64, bool)>| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
        pair.rng = SmallRng::seed_from_u64(11);
        pair.burst = burst;
        pair.source = speech_like;
        pair.a.set_red(Some(63));
        pair.b.set_red(Some(63));
        pair.run(Duration::from_secs(12));
        // One more frame of speech: its packet, as sent.
        let start = pair.sent_by_a.len();
        let pcm: Vec<i16> = (start..start + pair.a.frame_samples())
            .map(|n| speech_like(n, 48_000))
            .collect();
        let now = pair.at() + Duration::from_millis(20);
        pair.a.send_audio(now, &pcm);
        let transmit = std::iter::from_fn(|| pair.a.poll_transmit())
            .find(|transmit| !transmit.rtcp)
            .unwrap();
        let packet = RtpPacket::parse(&transmit.bytes).unwrap();
        let oldest = if packet.payload_type == 63 {
            red::parse(packet.payload).unwrap()[0].payload.to_vec()
        } else {
            packet.payload.to_vec()
        };
        let mut decoder = homeagent_opus::DredDecoder::new().unwrap();
        let mut dred = homeagent_opus::Dred::new().unwrap();
        let reach = decoder.parse(&mut dred, &oldest, 48_000, 48_000).unwrap();
        (
            pair.a.dred_on,
            pair.a.red_copies,
            packet.payload_type,
            reach,
        )
    };
    let (dred_on, copies, payload_type, reach) = oldest_copy_reach(gilbert(0.10, 3.0));
    assert!(dred_on, "DRED on with RED ({copies} copies)");
    assert_eq!(copies, red::MAX_DISTANCE as u8);
    assert_eq!(payload_type, 63, "a RED packet");
    // The oldest copy reaches at least two frames before itself.
    assert!(
        reach >= 2 * 960,
        "DRED in the oldest copy reaches {reach} samples"
    );
    let (dred_on, copies, payload_type, reach) = oldest_copy_reach(None);
    assert!(!dred_on);
    assert_eq!(copies, 0);
    assert_eq!(
        payload_type,
        CodecKind::Opus.default_spec().payload_type,
        "plain Opus on a clean path"
    );
    assert_eq!(reach, 0);
}

/// Gilbert loss with mean `loss` and mean burst length `mean_burst` (packets).
fn gilbert(loss: f64, mean_burst: f64) -> Option<(f64, f64, bool)> {
    let r = 1.0 / mean_burst;
    Some((r * loss / (1.0 - loss), r, false))
}

/// The bench's impairment profiles, in memory: (name, one-way ms, uniform extra jitter ms,
/// random loss, bursty loss).
type Profile = (&'static str, u64, u64, f64, Option<(f64, f64)>);
const PROFILES: [Profile; 6] = [
    ("clean", 30, 0, 0.0, None),
    ("loss3", 30, 0, 0.03, None),
    ("loss10", 30, 0, 0.10, None),
    ("burst10", 30, 0, 0.0, Some((0.10, 3.0))),
    ("jitter30", 30, 60, 0.0, None),
    ("loss5_jitter40", 20, 40, 0.05, None),
];

fn read_wav_16bit_mono(path: &str) -> Option<Vec<i16>> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        bytes
            .get(44..)?
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    )
}

fn write_wav_16bit_mono(path: &std::path::Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Not a test: the in-memory counterpart of `bench/quality_bench.sh` (ours→ours Opus). Sends
/// the 21 s reference speech (`HOMEAGENT_SPEECH`, default `../shared/audio/speech48k.wav`)
/// through each profile (only `HOMEAGENT_PROFILE` if set) with seed 7 (`HOMEAGENT_SEED`) and
/// the receiver's audio clock 7 ms after the sender's (`HOMEAGENT_PHASE`, 0..20), once with
/// plain Opus and once with RED negotiated, writes what b played (`plain/ha-PROFILE.wav`,
/// `red/ha-PROFILE.wav`) under `HOMEAGENT_SPEECH_OUT` (default the temp dir) and prints the
/// receiver's figures; score the WAVs with `../shared/scripts/score.py REF DEG wb`.
///
/// `cargo test -p homeagent-media --release speech_figures -- --ignored --nocapture`
#[test]
#[ignore = "writes WAVs for PESQ; needs the shared speech file"]
#[allow(clippy::print_stdout)] // Printing figures is its point.
fn speech_figures() {
    let path = std::env::var("HOMEAGENT_SPEECH")
        .unwrap_or_else(|_| "../../../shared/audio/speech48k.wav".to_owned());
    let Some(speech) = read_wav_16bit_mono(&path) else {
        eprintln!("no speech at {path}");
        return;
    };
    let out = std::env::var("HOMEAGENT_SPEECH_OUT")
        .map_or_else(|_| std::env::temp_dir(), std::path::PathBuf::from);
    let seed = std::env::var("HOMEAGENT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(7);
    let phase = std::env::var("HOMEAGENT_PHASE")
        .ok()
        .and_then(|phase| phase.parse().ok())
        .map_or(7, |phase: usize| phase % 20);
    let only = std::env::var("HOMEAGENT_PROFILE").ok();
    for ((name, one_way, jitter, loss, burst), red) in PROFILES
        .into_iter()
        .filter(|profile| only.as_deref().is_none_or(|only| only == profile.0))
        .flat_map(|profile| [(profile, false), (profile, true)])
    {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(one_way), loss);
        if red {
            pair.a.set_red(Some(63));
            pair.b.set_red(Some(63));
        }
        pair.rng = SmallRng::seed_from_u64(seed);
        pair.jitter = Duration::from_millis(jitter);
        pair.burst = burst.and_then(|(loss, mean)| gilbert(loss, mean));
        pair.speech = Some(speech.clone());
        pair.pull_phase_ms = phase;
        let mut delays = Vec::new();
        for _ in 0..225 {
            pair.run(Duration::from_millis(100));
            delays.push(pair.b.quality(pair.at()).playout_delay_ms);
        }
        let mode = if red { "red" } else { "plain" };
        let dir = out.join(mode);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("ha-{name}.wav"));
        write_wav_16bit_mono(&file, 48000, &pair.played_by_b);
        let stats = pair.b.stats();
        let sent = pair.a.stats();
        let mean_delay = delays[20..].iter().sum::<f64>() / (delays.len() - 20) as f64;
        println!(
            "{mode:5} {name:15} lost {:4} fec {:4} red {:4} dred {:4} concealed {:4} late {:3} delay {:5.1} ms \
             target {:5.1} ms  tx {:5.1} kbit/s  {}",
            stats.packets_lost,
            stats.fec_recovered,
            stats.red_recovered,
            stats.dred_recovered,
            stats.jitter_buffer.frames_concealed,
            stats.jitter_buffer.late_dropped,
            mean_delay,
            stats.target_delay_ms,
            sent.octets_sent as f64 * 8.0 / 22.5 / 1000.0,
            file.display()
        );
    }
}

/// 2 s of speech-like sound, 2 s of faint noise (about −66 dBov), 2 s of speech-like again.
fn talk_pause_talk(n: usize, sample_rate: u32) -> i16 {
    let second = n / sample_rate as usize;
    if (2..4).contains(&second) {
        // A cheap hash as noise: deterministic, flat, amplitude ±30.
        let hash = (n as u32).wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x5bd1_e995;
        return (hash % 61) as i16 - 30;
    }
    speech_like(n, sample_rate)
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

/// Opus DTX end to end: a pause is not sent (far fewer bytes), the receiver plays libopus's
/// comfort noise through it without counting loss, growing or restarting its buffer, and the
/// speech after it comes through as before.
#[test]
fn opus_dtx_skips_silence_and_the_receiver_fills_it_with_comfort_noise() {
    let run = |dtx: bool| {
        let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
        pair.source = talk_pause_talk;
        pair.a.set_dtx(dtx);
        pair.run(Duration::from_secs(6));
        pair
    };
    let with = run(true);
    let without = run(false);
    let (sent, received) = (with.a.stats(), with.b.stats());
    let plain = without.a.stats();
    // 100 frames of pause; SILK enters DTX after 200 ms and refreshes every 400 ms.
    assert!(sent.dtx_frames_sent >= 50, "{sent:?}");
    assert_eq!(plain.dtx_frames_sent, 0);
    assert_eq!(sent.packets_sent + sent.dtx_frames_sent, 300);
    assert!(
        sent.octets_sent < plain.octets_sent * 3 / 4,
        "{sent:?} {plain:?}"
    );
    // The receiver: pauses in the stream are DTX, not loss nor underrun.
    assert!(received.dtx_frames_received >= 45, "{received:?}");
    assert_eq!(received.packets_lost, 0);
    assert!(received.jitter_buffer.frames_concealed <= 2, "{received:?}");
    assert_eq!(received.jitter_buffer.resets, 0);
    assert!(received.target_delay_ms <= 40.0, "{received:?}");
    let quality = with.b.quality(with.at());
    assert_eq!(quality.concealed_frames, 0, "{quality:?}");
    // During the pause (past the buffered tail of the speech): comfort noise, not digital
    // silence, and faint.
    let rate = 48_000;
    let pause = &with.played_by_b[rate * 2 + rate / 2..rate * 4];
    let level = rms(pause);
    assert!(
        pause.iter().filter(|&&s| s != 0).count() > pause.len() / 2,
        "digital silence"
    );
    assert!((1.0..300.0).contains(&level), "comfort noise rms {level}");
    // The speech after the pause is as intact as without DTX.
    let resumed = |pair: &Pair| {
        let from = rate * 4;
        best_correlation(&pair.sent_by_a[from..], &pair.played_by_b[from..], rate).0
    };
    let (dtx_correlation, plain_correlation) = (resumed(&with), resumed(&without));
    assert!(
        dtx_correlation > 0.8 && dtx_correlation > plain_correlation - 0.05,
        "{dtx_correlation} vs {plain_correlation}"
    );
}

/// On the wire: DTX frames leave a timestamp gap with continuous sequence numbers, and the
/// first packet after the gap carries the marker bit (a new talkspurt).
#[test]
fn opus_dtx_gap_keeps_sequence_numbers_and_marks_the_talkspurt() {
    let mut pair = Pair::new(CodecKind::Opus, Duration::from_millis(30), 0.0);
    pair.a.set_dtx(true);
    let t0 = pair.at();
    let frame = pair.a.frame_samples();
    let mut packets = Vec::new();
    for index in 0..80usize {
        let now = t0 + Duration::from_millis(20 * index as u64);
        let pcm: Vec<i16> = (index * frame..(index + 1) * frame)
            .map(|n| {
                if (20..60).contains(&index) {
                    0
                } else {
                    speech_like(n, 48_000)
                }
            })
            .collect();
        pair.a.send_audio(now, &pcm);
        while let Some(transmit) = pair.a.poll_transmit() {
            let packet = RtpPacket::parse(&transmit.bytes).unwrap();
            packets.push((packet.sequence, packet.timestamp, packet.marker));
        }
    }
    assert!(packets.len() < 70, "{} packets", packets.len());
    let mut gaps = 0;
    for pair in packets.windows(2) {
        let ((seq0, ts0, _), (seq1, ts1, marker)) = (pair[0], pair[1]);
        assert_eq!(seq1, seq0.wrapping_add(1));
        let step = ts1.wrapping_sub(ts0);
        assert_eq!(step % 960, 0);
        assert_eq!(marker, step > 960, "marker only after a gap");
        gaps += usize::from(step > 960);
    }
    assert!(gaps >= 1);
}

/// G.711 with RFC 3389 CN negotiated: the pause goes out as a few CN packets (far fewer bytes),
/// the receiver plays faint comfort noise through it, and the speech after it is intact.
#[test]
fn g711_pause_is_sent_as_comfort_noise_and_played_as_such() {
    let run = |comfort_noise: bool| {
        let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.0);
        pair.source = talk_pause_talk;
        if comfort_noise {
            pair.a.set_comfort_noise(Some(CN_PAYLOAD_TYPE));
            pair.b.set_comfort_noise(Some(CN_PAYLOAD_TYPE));
        }
        pair.run(Duration::from_secs(6));
        pair
    };
    let with = run(true);
    let without = run(false);
    let (sent, received, plain) = (with.a.stats(), with.b.stats(), without.a.stats());
    // 2.17 s of pause (the last syllable ends 1/6 s early): 200 ms of hangover, then ~98
    // frames replaced by a CN packet every 200 ms (plus level moves).
    assert!((85..=100).contains(&sent.dtx_frames_sent), "{sent:?}");
    assert!((8..=30).contains(&sent.comfort_noise_sent), "{sent:?}");
    assert_eq!(plain.comfort_noise_sent + plain.dtx_frames_sent, 0);
    assert_eq!(
        sent.packets_sent,
        300 - sent.dtx_frames_sent + sent.comfort_noise_sent
    );
    assert!(
        sent.octets_sent < plain.octets_sent * 3 / 4,
        "{sent:?} {plain:?}"
    );
    // Received: CN, not loss; played as noise.
    assert_eq!((received.packets_lost, received.packets_discarded), (0, 0));
    assert!(received.comfort_noise_frames >= 80, "{received:?}");
    assert!(received.jitter_buffer.frames_concealed <= 2, "{received:?}");
    assert_eq!(received.jitter_buffer.resets, 0);
    let rate = 8000;
    let pause = &with.played_by_b[rate * 2 + rate / 2..rate * 4];
    let level = rms(pause);
    assert!(
        pause.iter().filter(|&&s| s != 0).count() > pause.len() / 2,
        "digital silence"
    );
    // The source's pause is about −65 dBov (RMS ≈ 18).
    assert!((8.0..40.0).contains(&level), "comfort noise rms {level}");
    let resumed = |pair: &Pair| {
        let from = rate * 4;
        best_correlation(&pair.sent_by_a[from..], &pair.played_by_b[from..], rate).0
    };
    let (cn_correlation, plain_correlation) = (resumed(&with), resumed(&without));
    assert!(
        cn_correlation > 0.9 && cn_correlation > plain_correlation - 0.02,
        "{cn_correlation} vs {plain_correlation}"
    );
}

/// On the wire: CN packets during the silence, speech resumes with the marker bit, sequence
/// numbers stay continuous; a session without CN negotiated never sends payload type 13.
#[test]
fn g711_comfort_noise_on_the_wire_and_never_unnegotiated() {
    let packets = |comfort_noise: bool| {
        let mut pair = Pair::new(CodecKind::Pcma, Duration::from_millis(30), 0.0);
        if comfort_noise {
            pair.a.set_comfort_noise(Some(CN_PAYLOAD_TYPE));
        }
        let t0 = pair.at();
        let mut packets = Vec::new();
        for index in 0..150usize {
            let now = t0 + Duration::from_millis(20 * index as u64);
            let pcm: Vec<i16> = (index * 160..(index + 1) * 160)
                .map(|n| {
                    if (50..100).contains(&index) {
                        (n % 7) as i16 * 4 - 12
                    } else {
                        speech_like(n, 8000)
                    }
                })
                .collect();
            pair.a.send_audio(now, &pcm);
            while let Some(transmit) = pair.a.poll_transmit() {
                let packet = RtpPacket::parse(&transmit.bytes).unwrap();
                packets.push((
                    packet.sequence,
                    packet.timestamp,
                    packet.marker,
                    packet.payload_type,
                    packet.payload.to_vec(),
                ));
            }
        }
        packets
    };
    let with = packets(true);
    let cn: Vec<_> = with.iter().filter(|p| p.3 == CN_PAYLOAD_TYPE).collect();
    assert!((4..=12).contains(&cn.len()), "{} CN packets", cn.len());
    for packet in &cn {
        // One level byte: the pause is about −70 dBov.
        assert_eq!(packet.4.len(), 1);
        assert!((60..=80).contains(&packet.4[0]), "level {}", packet.4[0]);
        assert!(!packet.2);
    }
    for pair in with.windows(2) {
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1));
    }
    // The first audio packet after the CN carries the marker; its timestamp follows the pause.
    let last_cn = with.iter().rposition(|p| p.3 == CN_PAYLOAD_TYPE).unwrap();
    let resumed = &with[last_cn + 1];
    assert_eq!(resumed.3, 8);
    assert!(resumed.2);
    assert_eq!(resumed.1.wrapping_sub(with[0].1), 100 * 160);
    // The marker: on the first packet of the stream and on the one after the pause only.
    assert!(with[0].2);
    assert_eq!(with.iter().filter(|p| p.2).count(), 2);

    let without = packets(false);
    assert_eq!(without.len(), 150);
    assert!(without.iter().all(|p| p.3 == 8));
}

/// 1.2 s talk spurts of [`signal`] and 0.6 s of digital silence.
fn talk_spurts(n: usize, sample_rate: u32) -> i16 {
    let ms = n * 1000 / sample_rate as usize;
    if ms % 1800 < 1200 {
        signal(n, sample_rate)
    } else {
        0
    }
}

/// After a 4 s jitter burst (0..100 ms) the network calms and the jitter buffer sheds its extra
/// delay. G.711 carries no silence flag: the session judges each packet by its level, so with
/// talk spurts every drop falls in a pause (the frame played in place of the dropped one is
/// quiet); with a continuous signal the bounded deferral still sheds the delay.
#[test]
fn g711_jitter_buffer_shrinks_in_the_pauses() {
    let run = |source: fn(usize, u32) -> i16| {
        let mut pair = Pair::new(CodecKind::Pcmu, Duration::from_millis(30), 0.0);
        pair.source = source;
        pair.jitter = Duration::from_millis(200);
        let (mut in_speech, mut in_pause) = (0, 0);
        let mut dropped = 0;
        for step in 0..1000 {
            if step == 200 {
                pair.jitter = Duration::ZERO;
            }
            // One pull per 20 ms step.
            pair.run(Duration::from_millis(20));
            let now_dropped = pair.b.stats().jitter_buffer.frames_dropped;
            if now_dropped > dropped && step >= 200 {
                let frame = &pair.played_by_b[pair.played_by_b.len() - 160..];
                if rms(frame) > 300.0 {
                    in_speech += 1;
                } else {
                    in_pause += 1;
                }
            }
            dropped = now_dropped;
        }
        (in_speech, in_pause, pair.b.stats())
    };
    // 200 ms of jitter to shed: several frames.
    let (in_speech, in_pause, stats) = run(talk_spurts);
    assert_eq!(in_speech, 0, "{in_pause} in pauses, {stats:?}");
    assert!(in_pause >= 5, "{stats:?}");
    assert!(stats.playout_delay_ms <= 40.0, "{stats:?}");
    // Without pauses every drop is speech, and the delay is shed all the same.
    let (in_speech, in_pause, stats) = run(signal);
    assert_eq!(in_pause, 0);
    assert!(in_speech >= 5, "{stats:?}");
    assert!(stats.playout_delay_ms <= 40.0, "{stats:?}");
}
