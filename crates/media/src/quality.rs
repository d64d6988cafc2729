//! Live call quality: a MOS estimate by the E-model (ITU-T G.107), over a sliding window.
//!
//! The rating is the simplified G.107 form with default values for everything we cannot
//! measure (room noise, loudness ratings, sidetone, echo: the echo canceller is assumed to work):
//!
//! ```text
//! R = 93.2 − Idd(Ta) − Ie,eff + A        (G.107 §7: Ro − Is = 93.2 with the defaults, A = 0)
//! Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)                       (G.107 eq. 7-29)
//! ```
//!
//! `Ta` is the one-way delay we can see: half the RTCP round trip, the jitter-buffer delay and
//! the codec's framing and look-ahead (the sound devices are not included). `Ppl` is the
//! percentage of frames played as concealment (lost, late, or a buffer underrun; frames rebuilt
//! from FEC count as received), `BurstR` the measured burst ratio of those frames.
//! R maps to MOS by G.107 Annex B (eq. B-4). The narrowband scale (max R 93.2, MOS 4.41) is used
//! for every codec: wideband Opus gets no G.107.1 bonus, so the figure is conservative.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::CodecKind;

/// The window [`QualityReport`] covers.
pub const QUALITY_WINDOW: Duration = Duration::from_secs(5);
/// Spacing of the snapshots the window is measured from.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);

/// The call's quality over the last [`QUALITY_WINDOW`] (up to half a second more; or since the
/// start, if shorter).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QualityReport {
    /// The worse of [`Self::local_mos`] and [`Self::remote_mos`] (1.0..=4.5): the call's figure.
    pub mos: f64,
    /// The E-model rating behind [`Self::mos`] (0..=100; 93.2 is a perfect narrowband call).
    pub r_factor: f64,
    /// What we hear: from our loss, concealment, jitter-buffer delay and RTT.
    pub local_mos: f64,
    /// What the remote hears: from the loss it reports about our stream in RTCP; `None` until
    /// it sent a report.
    pub remote_mos: Option<f64>,
    /// Packets of the remote stream lost on the network, over the window.
    pub loss_percent: f64,
    /// Frames we played as concealment (network loss not rebuilt by FEC, late packets, buffer
    /// underruns), over the window.
    pub concealed_percent: f64,
    /// Burst ratio of the concealed frames (1.0 = random loss, more = bursty; G.107 BurstR).
    pub burst_ratio: f64,
    /// Loss the remote reports about our stream (its last RTCP report).
    pub remote_loss_percent: Option<f64>,
    /// RFC 3550 interarrival jitter of the remote stream (current estimate).
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// Mean jitter-buffer delay over the window.
    pub playout_delay_ms: f64,
    /// The one-way delay the rating uses: RTT/2 + playout delay + codec delay.
    pub one_way_delay_ms: f64,
    /// Lost frames rebuilt from in-band FEC, over the window.
    pub fec_recovered: u64,
    /// Frames played as concealment, over the window.
    pub concealed_frames: u64,
    /// The time the figures cover.
    pub window: Duration,
}

/// What the E-model rating is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModelInput {
    pub codec: CodecKind,
    /// Packet (frame) loss after concealment and FEC, percent (G.107 Ppl).
    pub loss_percent: f64,
    /// G.107 BurstR: 1.0 for random loss.
    pub burst_ratio: f64,
    /// Absolute one-way delay in ms (G.107 Ta).
    pub one_way_delay_ms: f64,
}

/// Codec figures for the E-model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor without loss.
    pub ie: f64,
    /// Packet-loss robustness factor.
    pub bpl: f64,
}

impl CodecImpairment {
    pub fn of(codec: CodecKind) -> Self {
        match codec {
            // ITU-T G.113 Appendix I, Table I.1 (Ie = 0) and Table I.3: G.711 with the
            // Appendix I PLC under random loss, Bpl = 25.1 (without PLC it is 4.3, the G.107
            // default). Our PLC follows Appendix I.
            CodecKind::Pcmu | CodecKind::Pcma => Self { ie: 0.0, bpl: 25.1 },
            // Opus has no ITU-T planning values. Chosen conservatively: Ie = 0 because at
            // 32 kbit/s wideband it is at least as clean as G.711 on the narrowband scale (we
            // claim no wideband advantage), and Bpl = 20, below G.711+PLC's 25.1 and close to
            // the 19.0 G.113 gives G.729A's model-based concealment: no credit is taken for
            // Opus's PLC being better; FEC shows up instead as fewer concealed frames.
            CodecKind::Opus => Self { ie: 0.0, bpl: 20.0 },
        }
    }
}

/// G.107 default R for a clean narrowband connection (Ro − Is with the Table 3 defaults).
const R_DEFAULT: f64 = 93.2;

/// The E-model transmission rating R for `input` (advantage factor A = 0).
pub fn r_factor(input: &EModelInput) -> f64 {
    let impairment = CodecImpairment::of(input.codec);
    let ppl = input.loss_percent.clamp(0.0, 100.0);
    let burst_ratio = input.burst_ratio.max(1.0);
    let ie_eff = impairment.ie
        + (95.0 - impairment.ie) * ppl / (ppl / burst_ratio + impairment.bpl).max(f64::EPSILON);
    (R_DEFAULT - delay_impairment(input.one_way_delay_ms) - ie_eff).clamp(0.0, 100.0)
}

/// G.107 Idd (eq. 7-27 and 7-28 with the default mT = 100 ms, sT = 1): no impairment up to
/// 100 ms one way, then rising (3 at 200 ms, 24 at 400 ms). Talker and listener echo (Idte,
/// Idle) are taken as zero: the echo canceller is assumed to work.
pub fn delay_impairment(one_way_delay_ms: f64) -> f64 {
    const MT_MS: f64 = 100.0;
    if one_way_delay_ms <= MT_MS {
        return 0.0;
    }
    let x = (one_way_delay_ms / MT_MS).log2();
    let sixth = |v: f64| v.powf(1.0 / 6.0);
    25.0 * (sixth(1.0 + x.powi(6)) - 3.0 * sixth(1.0 + (x / 3.0).powi(6)) + 2.0)
}

/// G.107 Annex B (eq. B-4): MOS (conversational quality, 1.0..=4.5) from R.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        // The cubic dips just below 1 for R < 6.5: clamp.
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).max(1.0)
    }
}

/// The codec's own delay: one packet of framing plus the encoder look-ahead (Opus: 6.5 ms,
/// RFC 6716 §2; G.711: none).
pub fn codec_delay_ms(codec: CodecKind, ptime_ms: u32) -> f64 {
    let lookahead = match codec {
        CodecKind::Opus => 6.5,
        CodecKind::Pcmu | CodecKind::Pcma => 0.0,
    };
    f64::from(ptime_ms) + lookahead
}

/// Cumulative counters the window is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Counters {
    /// Frames played from a packet (or rebuilt from FEC).
    pub(crate) good_frames: u64,
    /// Frames played as concealment.
    pub(crate) concealed_frames: u64,
    /// Runs of concealed frames (transitions good → concealed).
    pub(crate) bursts: u64,
    pub(crate) fec_recovered: u64,
    /// Remote-stream packets expected and received (RFC 3550 A.3), per source.
    pub(crate) expected: i64,
    pub(crate) received: i64,
    /// Sum of the jitter-buffer delay sampled at every pulled frame, and the count.
    pub(crate) delay_sum_ms: f64,
    pub(crate) delay_samples: u64,
}

/// Keeps the counters and their recent snapshots.
#[derive(Debug)]
pub(crate) struct QualityMonitor {
    counters: Counters,
    last_concealed: bool,
    snapshots: VecDeque<(Instant, Counters)>,
    started: Instant,
}

/// One pulled frame's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameOutcome {
    Decoded,
    FecRecovered,
    Concealed,
}

impl QualityMonitor {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            counters: Counters::default(),
            last_concealed: false,
            snapshots: VecDeque::new(),
            started: now,
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    pub(crate) fn record_frame(&mut self, outcome: FrameOutcome, delay_ms: f64) {
        let counters = &mut self.counters;
        counters.delay_sum_ms += delay_ms;
        counters.delay_samples += 1;
        match outcome {
            FrameOutcome::Decoded | FrameOutcome::FecRecovered => {
                counters.good_frames += 1;
                if outcome == FrameOutcome::FecRecovered {
                    counters.fec_recovered += 1;
                }
                self.last_concealed = false;
            }
            FrameOutcome::Concealed => {
                counters.concealed_frames += 1;
                if !self.last_concealed {
                    counters.bursts += 1;
                }
                self.last_concealed = true;
            }
        }
    }

    /// Takes a snapshot when one is due; `expected`/`received` are the remote stream's
    /// cumulative packet counts.
    pub(crate) fn snapshot(&mut self, now: Instant, expected: i64, received: i64) {
        self.counters.expected = expected;
        self.counters.received = received;
        let due = self
            .snapshots
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= SNAPSHOT_EVERY);
        if !due {
            return;
        }
        self.snapshots.push_back((now, self.counters));
        // Keep one snapshot older than the window: it is the window's start.
        while self
            .snapshots
            .get(1)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= QUALITY_WINDOW)
        {
            self.snapshots.pop_front();
        }
    }

    /// The counters at the start of the window ending at `now`, and when that was.
    pub(crate) fn window_start(&self, now: Instant) -> (Instant, Counters) {
        let start = self
            .snapshots
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= QUALITY_WINDOW)
            .or_else(|| self.snapshots.front())
            .copied();
        start.unwrap_or((self.started, Counters::default()))
    }
}

/// Figures over one window, from the counters at both ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WindowFigures {
    pub(crate) loss_percent: f64,
    pub(crate) concealed_percent: f64,
    pub(crate) burst_ratio: f64,
    pub(crate) playout_delay_ms: Option<f64>,
    pub(crate) fec_recovered: u64,
    pub(crate) concealed_frames: u64,
}

impl WindowFigures {
    pub(crate) fn between(start: &Counters, end: &Counters) -> Self {
        // A new remote source restarts the packet counts: then the window starts at zero.
        let (expected, received) = if end.expected < start.expected {
            (end.expected, end.received)
        } else {
            (end.expected - start.expected, end.received - start.received)
        };
        let loss_percent = if expected > 0 {
            ((expected - received) as f64 * 100.0 / expected as f64).clamp(0.0, 100.0)
        } else {
            0.0
        };
        let good = end.good_frames.saturating_sub(start.good_frames);
        let concealed = end.concealed_frames.saturating_sub(start.concealed_frames);
        let bursts = end.bursts.saturating_sub(start.bursts);
        let frames = good + concealed;
        let concealed_ratio = if frames > 0 {
            concealed as f64 / frames as f64
        } else {
            0.0
        };
        // G.107 BurstR: the mean observed burst length over the mean for random loss at the
        // same rate, 1 / (1 − p).
        let burst_ratio = if bursts > 0 && concealed_ratio < 1.0 {
            (concealed as f64 / bursts as f64 * (1.0 - concealed_ratio)).max(1.0)
        } else {
            1.0
        };
        let delay_samples = end.delay_samples.saturating_sub(start.delay_samples);
        let playout_delay_ms = (delay_samples > 0)
            .then(|| (end.delay_sum_ms - start.delay_sum_ms) / delay_samples as f64);
        Self {
            loss_percent,
            concealed_percent: concealed_ratio * 100.0,
            burst_ratio,
            playout_delay_ms,
            fec_recovered: end.fec_recovered.saturating_sub(start.fec_recovered),
            concealed_frames: concealed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mos(codec: CodecKind, loss_percent: f64, burst_ratio: f64, delay_ms: f64) -> f64 {
        mos_from_r(r_factor(&EModelInput {
            codec,
            loss_percent,
            burst_ratio,
            one_way_delay_ms: delay_ms,
        }))
    }

    #[test]
    fn clean_g711_is_about_4_4() {
        let clean = mos(CodecKind::Pcmu, 0.0, 1.0, 60.0);
        assert!((4.38..=4.42).contains(&clean), "{clean}");
        assert!(
            (r_factor(&EModelInput {
                codec: CodecKind::Pcma,
                loss_percent: 0.0,
                burst_ratio: 1.0,
                one_way_delay_ms: 60.0
            }) - 93.2)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn loss_lowers_the_score_and_bursts_lower_it_more() {
        let one = mos(CodecKind::Pcmu, 1.0, 1.0, 60.0);
        let five = mos(CodecKind::Pcmu, 5.0, 1.0, 60.0);
        let five_bursty = mos(CodecKind::Pcmu, 5.0, 3.0, 60.0);
        let twenty = mos(CodecKind::Pcmu, 20.0, 1.0, 60.0);
        // G.711 + PLC at 5 % random loss: Ie,eff = 95 · 5 / 30.1 ≈ 15.8, R ≈ 77, MOS ≈ 3.9.
        assert!((4.25..4.4).contains(&one), "{one}");
        assert!((3.7..4.0).contains(&five), "{five}");
        assert!(five_bursty < five - 0.05, "{five_bursty} vs {five}");
        assert!(twenty < 2.8, "{twenty}");
        // Opus is rated more conservatively for the same concealed loss.
        assert!(mos(CodecKind::Opus, 5.0, 1.0, 60.0) < five);
    }

    #[test]
    fn delay_costs_only_past_100_ms() {
        assert_eq!(delay_impairment(80.0), 0.0);
        assert!((delay_impairment(200.0) - 3.05).abs() < 0.05);
        assert!((delay_impairment(400.0) - 24.1).abs() < 0.2);
        let slow = mos(CodecKind::Pcmu, 0.0, 1.0, 400.0);
        assert!((3.4..3.9).contains(&slow), "{slow}");
    }

    #[test]
    fn mos_mapping_is_monotonic_and_bounded() {
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        let values: Vec<f64> = (0..=100).map(|r| mos_from_r(f64::from(r))).collect();
        assert!(values.windows(2).all(|w| w[1] >= w[0]));
        assert!((mos_from_r(50.0) - 2.58).abs() < 0.01);
    }

    #[test]
    fn window_figures_measure_loss_and_bursts() {
        let start = Counters::default();
        // 100 frames: 90 good, 10 concealed in 2 bursts of 5.
        let end = Counters {
            good_frames: 90,
            concealed_frames: 10,
            bursts: 2,
            fec_recovered: 3,
            expected: 100,
            received: 87,
            delay_sum_ms: 4000.0,
            delay_samples: 100,
        };
        let figures = WindowFigures::between(&start, &end);
        assert!((figures.loss_percent - 13.0).abs() < 1e-9);
        assert!((figures.concealed_percent - 10.0).abs() < 1e-9);
        // Mean burst 5 frames; random loss at 10 % would give 1 / 0.9.
        assert!((figures.burst_ratio - 4.5).abs() < 1e-9);
        assert_eq!(figures.playout_delay_ms, Some(40.0));
        assert_eq!((figures.fec_recovered, figures.concealed_frames), (3, 10));
        // A new source (counts restart) does not give negative loss.
        let restarted = Counters {
            expected: 10,
            received: 10,
            ..end
        };
        assert_eq!(WindowFigures::between(&end, &restarted).loss_percent, 0.0);
    }
}
