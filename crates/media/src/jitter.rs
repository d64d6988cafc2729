//! Adaptive jitter buffer, pulled one frame at a time by the audio clock.
//!
//! Packets are ordered by (extended) RTP timestamp. Playout starts once the buffered audio
//! reaches the target delay. The buffer steers its playout lag (how long after the fastest
//! packets' arrival a frame plays) toward the spread of recent transit times up to their 98th
//! percentile (window ~5 s; the spread grows at once and shrinks with a ~4 s time constant), plus
//! any look-ahead the floor asks for beyond one frame: about 2 % of packets may come too late
//! and are concealed like a loss. Every 10 pulls (200 ms) it compares the lag the frame at the
//! cursor would have if played now with that: short, it conceals one extra frame (grow); more
//! than a frame (+2 ms) long, it drops one (shrink). Playout moves in whole frames, so the lag
//! lands up to one frame above the spread, depending on the phase of the audio clock against
//! the arrivals. The same rule absorbs clock drift between the sender and the audio device
//! (±100 ppm: one adjustment every ~3 minutes). It never holds more than 1 s of audio.
//!
//! Packets that come too late to play still count in the transit times: they are the ones the
//! target must learn from (ignoring them kept the lag just short of the jitter, and ~3 % of
//! packets late, for seconds).
//!
//! Growing is immediate, and free in a silence: while the remote is in discontinuous
//! transmission, a lag short of the target holds the cursor (the silence plays longer).
//! Frames missing before a packet that ends a silence were not sent, so they play as DTX, not
//! as losses (except the one right before a speech packet: it may be the spurt's lost onset,
//! which that packet's FEC rebuilds).
//!
//! Shrinking prefers silence. Packets the caller marks as speech
//! ([`JitterBuffer::insert_classified`]) are not dropped while a shrink is due: the drop waits
//! for the first frame that is not speech (a silent packet, a hole such as a comfort-noise gap,
//! or a pull in discontinuous transmission), checked at every pull, and happens anyway after
//! [`MAX_SHRINK_DEFERRAL`] so that drift and bursts are still absorbed. Unclassified packets
//! ([`JitterBuffer::insert`]) drop at once.
//!
//! Per profile (8 kHz, 20 ms packets, one minute, four clock phases; tested in
//! `target_delay_converges_per_profile`): clean: target 20 ms (the floor, [`MIN_DELAY`]), lag
//! ≤ 20 ms; ±30 ms uniform jitter (reordering): target 50..60 ms, lag ≤ 72 ms on average over
//! the phases (≥ 59 is needed for ≤ 2 % late), ≤ 2 % of frames concealed, no grow/shrink
//! cycling; 5 % loss + 40 ± 20 ms: target 32..42 ms, lag ≤ 52 ms. The session raises the floor
//! for Opus while the network loses packets (one packet of look-ahead for FEC, as many as the
//! remote's RED copies), which adds to the target.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The lowest target delay unless [`JitterBuffer::set_min_delay`] says otherwise.
pub const MIN_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(1000);
/// The longest a due shrink waits for a frame that is not speech before dropping one anyway.
pub const MAX_SHRINK_DEFERRAL: Duration = Duration::from_millis(1500);
/// Transit samples the target is computed from (about 5 s of 20 ms packets: enough for a 98th
/// percentile).
const WINDOW: usize = 250;
/// The share of packets allowed to arrive too late for their turn (concealed like a loss): the
/// target covers this percentile of the transit times.
const LATE_PERCENTILE: usize = 98;
/// Fraction of the excess spread removed per packet when it shrinks (time constant ~4 s).
const SHRINK_RATE: f64 = 0.005;
/// Extra slack (ms) before dropping a frame, so that measurement noise does not toggle.
const SHRINK_HYSTERESIS_MS: f64 = 2.0;
const ADJUST_EVERY: u32 = 10;
/// A timestamp this far (in seconds) from the playout position restarts the buffer.
const JUMP_SECS: u64 = 10;
/// Consecutive pulls on an empty buffer after which playout stops and buffering restarts.
const IDLE_PULLS: u32 = 10;
/// While the remote is silent on purpose ([`JitterBuffer::set_discontinuous`]) an empty buffer
/// plays [`Playout::Dtx`] for up to this many pulls (1 s at 20 ms; Opus DTX refreshes its
/// comfort noise every 400 ms), then stops as on [`IDLE_PULLS`].
const DTX_IDLE_PULLS: u32 = 50;

/// What to play for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The packet for this frame.
    Frame(Vec<u8>),
    /// The packet is missing (lost, late, or the buffer is growing): conceal one frame.
    Lost,
    /// Not playing (nothing received yet, or the stream stopped): play silence.
    Empty,
    /// No packet is due: the remote stopped sending on purpose (discontinuous transmission,
    /// [`JitterBuffer::set_discontinuous`]). Play comfort noise; not a loss.
    Dtx,
}

/// Counters since the buffer was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    pub frames_played: u64,
    pub frames_concealed: u64,
    pub late_dropped: u64,
    pub duplicates: u64,
    /// Frames dropped to shrink the delay toward the target, or past the maximum delay.
    pub frames_dropped: u64,
    pub resets: u64,
    /// Missing frames filled by a redundant copy ([`JitterBuffer::insert_redundant`]) and played.
    pub redundant_played: u64,
    /// Frames of [`Playout::Dtx`]: the remote in discontinuous transmission.
    pub dtx_frames: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    clock_rate: u32,
    /// Packet duration in timestamp units.
    frame: u64,
    ssrc: Option<u32>,
    /// Payload by extended timestamp, and whether it is a redundant copy.
    packets: BTreeMap<u64, (Vec<u8>, bool)>,
    /// Extended timestamps of buffered packets the caller marked as speech.
    speech: BTreeSet<u64>,
    /// A shrink is due (since then) and waits for a frame that is not speech.
    shrink_due_since: Option<Instant>,
    highest: Option<u64>,
    /// Timestamp of the next frame to play; `None` while buffering.
    cursor: Option<u64>,
    /// Where the last playout stopped: older packets are late even while buffering.
    played_until: Option<u64>,
    /// Stalled pulls (conceal without consuming) not yet made up for.
    stalled: u64,
    /// The last pull skipped a missing frame: the next packet may carry its FEC.
    skipped_missing: bool,
    /// The last pull played [`Playout::Dtx`]: frames missing before the next packet were not
    /// sent (the remote's silence goes on), not lost.
    in_dtx: bool,
    empty_pulls: u32,
    /// The newest packet said the remote is silent: an underrun is DTX, not loss.
    discontinuous: bool,
    pulls_since_adjust: u32,
    /// First arrival and its timestamp: the origin of transit times.
    origin: Option<(Instant, u64)>,
    transits: VecDeque<f64>,
    /// Lowest transit time in the window (ms, from the origin).
    min_transit_ms: f64,
    /// [`LATE_PERCENTILE`] of the transit times minus the lowest: grows at once, shrinks
    /// slowly.
    spread_ms: f64,
    target_ms: f64,
    min_delay_ms: f64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// `frame_duration` is the expected packet duration in timestamp units.
    pub fn new(clock_rate: u32, frame_duration: u32) -> Self {
        let frame_duration = u64::from(frame_duration.max(1));
        let mut buffer = Self {
            clock_rate: clock_rate.max(1),
            frame: frame_duration,
            ssrc: None,
            packets: BTreeMap::new(),
            speech: BTreeSet::new(),
            shrink_due_since: None,
            highest: None,
            cursor: None,
            played_until: None,
            stalled: 0,
            skipped_missing: false,
            in_dtx: false,
            empty_pulls: 0,
            discontinuous: false,
            pulls_since_adjust: 0,
            origin: None,
            transits: VecDeque::with_capacity(WINDOW),
            min_transit_ms: 0.0,
            spread_ms: 0.0,
            target_ms: 0.0,
            min_delay_ms: MIN_DELAY.as_secs_f64() * 1000.0,
            stats: JitterStats::default(),
        };
        buffer.target_ms = buffer.floor_ms();
        buffer
    }

    /// Changes the packet duration (timestamp units), e.g. when the remote's ptime differs.
    pub fn set_frame_duration(&mut self, duration: u32) {
        self.frame = u64::from(duration.max(1));
    }

    /// Takes in one received packet, not known to be speech: dropped at once when the buffer
    /// shrinks.
    pub fn insert(&mut self, now: Instant, ssrc: u32, timestamp: u32, payload: &[u8]) {
        self.insert_classified(now, ssrc, timestamp, payload, false);
    }

    /// Takes in one received packet; `speech` says whether it carries speech, which a shrink
    /// avoids dropping for up to [`MAX_SHRINK_DEFERRAL`].
    pub fn insert_classified(
        &mut self,
        now: Instant,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
        speech: bool,
    ) {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.reset();
            }
            self.ssrc = Some(ssrc);
        }
        let mut extended = self.extend(timestamp);
        let jump = JUMP_SECS * u64::from(self.clock_rate);
        if let Some(reference) = self.cursor.or(self.played_until).or(self.highest) {
            if extended.abs_diff(reference) > jump {
                self.reset();
                self.ssrc = Some(ssrc);
                extended = self.extend(timestamp);
            }
        }
        if self
            .cursor
            .or(self.played_until)
            .is_some_and(|position| extended < position)
        {
            // Too late to play, but its transit counts: the packets beyond the current lag
            // are the ones the target must learn from.
            self.measure_transit(now, extended);
            tracing::trace!(at_ms = self.ms_since_origin(now), timestamp, "jitter late");
            self.stats.late_dropped += 1;
            return;
        }
        if let Some((_, redundant)) = self.packets.get_mut(&extended) {
            if *redundant {
                // The original after its redundant copy (reordering): it was not lost.
                *redundant = false;
                if speech {
                    self.speech.insert(extended);
                }
            } else {
                self.stats.duplicates += 1;
            }
            return;
        }
        self.measure_transit(now, extended);
        tracing::trace!(
            at_ms = self.ms_since_origin(now),
            timestamp,
            transit_ms = self.transits.back().copied(),
            min_transit_ms = self.min_transit_ms,
            spread_ms = self.spread_ms,
            speech,
            "jitter insert"
        );
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        self.packets.insert(extended, (payload.to_vec(), false));
        if speech {
            self.speech.insert(extended);
        }
        self.enforce_max_delay();
    }

    /// Takes in a redundant copy of an earlier frame (RFC 2198 RED), after the packet that
    /// carried it went through [`Self::insert`]. It only fills a hole: it is ignored when the
    /// frame is here or its turn has passed; its arrival time says nothing about the network's
    /// jitter. Returns whether it filled a hole.
    pub fn insert_redundant(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> bool {
        if self.ssrc != Some(ssrc) || self.highest.is_none() {
            return false;
        }
        let extended = self.extend(timestamp);
        let too_old = self
            .cursor
            .or(self.played_until)
            .is_some_and(|position| extended < position);
        if too_old || self.packets.contains_key(&extended) {
            return false;
        }
        self.packets.insert(extended, (payload.to_vec(), true));
        true
    }

    /// The frame to play now.
    pub fn pull(&mut self, now: Instant) -> Playout {
        let playout = self.next_playout(now);
        self.in_dtx = playout == Playout::Dtx;
        tracing::trace!(
            at_ms = self.ms_since_origin(now),
            cursor = self.cursor.map(|c| c % (1 << 32)),
            lag_ms = self.cursor.map(|c| self.playout_lag_ms(now, c)),
            target_ms = self.target_ms,
            outcome = match &playout {
                Playout::Frame(_) => "frame",
                Playout::Lost => "lost",
                Playout::Empty => "empty",
                Playout::Dtx => "dtx",
            },
            "jitter pull"
        );
        playout
    }

    fn ms_since_origin(&self, now: Instant) -> f64 {
        self.origin.map_or(0.0, |(at, _)| {
            now.saturating_duration_since(at).as_secs_f64() * 1000.0
        })
    }

    fn next_playout(&mut self, now: Instant) -> Playout {
        self.skipped_missing = false;
        let Some(mut cursor) = self.cursor else {
            return self.start_playout();
        };
        let Some(first) = self.packets.keys().next().copied() else {
            self.empty_pulls += 1;
            if self.discontinuous && self.stalled == 0 && self.empty_pulls <= DTX_IDLE_PULLS {
                // The remote's timeline moves on without packets: so does the cursor, keeping
                // the playout lag for the packet that ends the silence. A lag short of the
                // wanted one grows for free (the silence plays one frame longer); a due shrink
                // skips one frame of the silence.
                if self.playout_lag_ms(now, cursor) < self.wanted_lag_ms() {
                    self.shrink_due_since = None;
                    self.stats.dtx_frames += 1;
                    return Playout::Dtx;
                }
                if self.shrink_due_since.take().is_some() {
                    cursor += self.frame;
                    self.stats.frames_dropped += 1;
                }
                self.cursor = Some(cursor + self.frame);
                self.stats.dtx_frames += 1;
                return Playout::Dtx;
            }
            if self.empty_pulls > IDLE_PULLS.max(DTX_IDLE_PULLS * u32::from(self.discontinuous)) {
                self.played_until = Some(cursor);
                self.cursor = None;
                self.stalled = 0;
                return Playout::Empty;
            }
            // Underrun: conceal without consuming, which adds one frame of delay.
            self.stalled += 1;
            self.stats.frames_concealed += 1;
            return Playout::Lost;
        };
        self.empty_pulls = 0;
        self.pulls_since_adjust += 1;
        // Make up for stalls where the stalled-for packets never came.
        while self.stalled > 0 && first >= cursor + self.frame {
            cursor += self.frame;
            self.stalled -= 1;
        }
        self.stalled = 0;

        if self.pulls_since_adjust >= ADJUST_EVERY {
            self.pulls_since_adjust = 0;
            // How long after the fastest packets' arrival the frame at the cursor plays if it
            // plays now, against how long the target percentile needs (plus look-ahead).
            let slack = self.playout_lag_ms(now, cursor) - self.wanted_lag_ms();
            if slack < 0.0 {
                // Grow: conceal one frame without consuming.
                self.shrink_due_since = None;
                self.cursor = Some(cursor);
                self.stats.frames_concealed += 1;
                return Playout::Lost;
            }
            if slack >= self.frame_ms() + SHRINK_HYSTERESIS_MS {
                // Shrink (or sender clock drift): skip one frame, preferably not speech.
                self.shrink_due_since.get_or_insert(now);
            } else {
                self.shrink_due_since = None;
            }
        }
        if let Some(since) = self.shrink_due_since {
            let speech = first < cursor + self.frame && self.speech.contains(&first);
            if !speech || now.saturating_duration_since(since) >= MAX_SHRINK_DEFERRAL {
                self.shrink_due_since = None;
                if first < cursor + self.frame {
                    self.packets.remove(&first);
                }
                cursor += self.frame;
                self.stats.frames_dropped += 1;
            }
        }
        self.play_at(cursor)
    }

    /// After a [`Playout::Lost`] for a missing packet, the payload of the packet that follows
    /// it, if it is here: its in-band FEC can rebuild the missing one.
    pub fn next_payload(&self) -> Option<&[u8]> {
        if !self.skipped_missing {
            return None;
        }
        let cursor = self.cursor?;
        let (&timestamp, payload) = self.packets.iter().next()?;
        (timestamp < cursor + self.frame).then_some(payload.0.as_slice())
    }

    /// After a [`Playout::Lost`] for a missing packet, the first packet buffered after it and
    /// how many frames after the missing frame's start it starts (1: right after): its deep
    /// redundancy (Opus DRED) may reach back that far.
    pub fn payload_after_loss(&self) -> Option<(usize, &[u8])> {
        if !self.skipped_missing {
            return None;
        }
        let lost = self.cursor?.checked_sub(self.frame)?;
        let (&timestamp, payload) = self.packets.iter().next()?;
        let frames = usize::try_from(timestamp.checked_sub(lost)? / self.frame).ok()?;
        Some((frames, payload.0.as_slice()))
    }

    /// Audio buffered ahead of the playout position.
    pub fn delay(&self) -> Duration {
        let ms = match self.cursor {
            Some(cursor) => self.span_ms(cursor),
            None => self
                .packets
                .keys()
                .next()
                .map_or(0.0, |&first| self.span_ms(first)),
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    /// The delay the buffer is steering toward.
    pub fn target_delay(&self) -> Duration {
        Duration::from_secs_f64(self.target_ms / 1000.0)
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Says whether the newest packet announced silence (an Opus DTX or inactive frame): until
    /// the next packet, running out of packets is discontinuous transmission ([`Playout::Dtx`]:
    /// not concealed, no growth, no restart) rather than loss or an underrun.
    pub fn set_discontinuous(&mut self, discontinuous: bool) {
        self.discontinuous = discontinuous;
    }

    /// Raises (or lowers) the lowest target delay; e.g. FEC needs one packet of look-ahead.
    pub fn set_min_delay(&mut self, delay: Duration) {
        self.min_delay_ms = (delay.as_secs_f64() * 1000.0).min(self.max_ms());
        self.target_ms = self.wanted_lag_ms().clamp(self.floor_ms(), self.max_ms());
    }

    /// Forgets everything but the counters (new source, timestamp jump).
    pub fn reset(&mut self) {
        self.stats.resets += 1;
        self.ssrc = None;
        self.packets.clear();
        self.speech.clear();
        self.shrink_due_since = None;
        self.highest = None;
        self.cursor = None;
        self.played_until = None;
        self.stalled = 0;
        self.skipped_missing = false;
        self.in_dtx = false;
        self.empty_pulls = 0;
        self.discontinuous = false;
        self.origin = None;
        self.transits.clear();
    }

    fn start_playout(&mut self) -> Playout {
        let Some(&first) = self.packets.keys().next() else {
            return Playout::Empty;
        };
        if self.span_ms(first) < self.target_ms {
            return Playout::Empty;
        }
        self.pulls_since_adjust = 0;
        self.empty_pulls = 0;
        self.shrink_due_since = None;
        self.play_at(first)
    }

    fn play_at(&mut self, cursor: u64) -> Playout {
        while self
            .speech
            .first()
            .is_some_and(|&timestamp| timestamp < cursor)
        {
            self.speech.pop_first();
        }
        // Packets before the cursor can no longer play.
        while let Some(entry) = self.packets.first_entry() {
            if *entry.key() >= cursor {
                break;
            }
            entry.remove();
            self.stats.late_dropped += 1;
        }
        let next = self.packets.keys().next().copied();
        if let Some(timestamp) = next.filter(|&timestamp| timestamp < cursor + self.frame) {
            if let Some((payload, redundant)) = self.packets.remove(&timestamp) {
                self.cursor = Some(timestamp + self.frame);
                self.stats.frames_played += 1;
                self.stats.redundant_played += u64::from(redundant);
                return Playout::Frame(payload);
            }
        }
        self.cursor = Some(cursor + self.frame);
        if self.in_dtx && next.is_some_and(|next| !self.may_be_lost_onset(cursor, next)) {
            // A packet after a silence (its end, or a comfort-noise refresh) came before the
            // frames up to it were due: the remote did not send them.
            self.stats.dtx_frames += 1;
            return Playout::Dtx;
        }
        self.skipped_missing = true;
        self.stats.frames_concealed += 1;
        Playout::Lost
    }

    /// Whether the missing frame at `cursor`, in a silence, may be the lost first frame of the
    /// talk spurt that starts right after it at `next`: then it is concealed as a loss, which
    /// lets the in-band FEC of `next` rebuild it.
    fn may_be_lost_onset(&self, cursor: u64, next: u64) -> bool {
        next == cursor + self.frame && self.speech.contains(&next)
    }

    /// Extends a 32-bit timestamp to 64 bits, closest to the highest seen.
    fn extend(&self, timestamp: u32) -> u64 {
        match self.highest {
            // Start one wrap up so timestamps just before the first stay positive.
            None => u64::from(timestamp) + (1 << 32),
            Some(highest) => {
                let delta = i64::from(timestamp.wrapping_sub(highest as u32) as i32);
                highest.saturating_add_signed(delta)
            }
        }
    }

    fn measure_transit(&mut self, now: Instant, timestamp: u64) {
        let (origin_at, origin_ts) = *self.origin.get_or_insert((now, timestamp));
        let arrival_ms = now.saturating_duration_since(origin_at).as_secs_f64() * 1000.0;
        let media_ms = (timestamp as f64 - origin_ts as f64) * 1000.0 / f64::from(self.clock_rate);
        if self.transits.len() == WINDOW {
            self.transits.pop_front();
        }
        self.transits.push_back(arrival_ms - media_ms);

        let mut sorted: Vec<f64> = self.transits.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let min = sorted.first().copied().unwrap_or_default();
        let index = (sorted.len() * LATE_PERCENTILE / 100).min(sorted.len().saturating_sub(1));
        let late = sorted.get(index).copied().unwrap_or_default();
        self.min_transit_ms = min;
        let spread = (late - min).clamp(0.0, self.max_ms());
        if spread > self.spread_ms {
            self.spread_ms = spread;
        } else {
            self.spread_ms -= (self.spread_ms - spread) * SHRINK_RATE;
        }
        self.target_ms = self.wanted_lag_ms().clamp(self.floor_ms(), self.max_ms());
    }

    /// How long after the fastest arrival (the window's lowest transit) the frame at `cursor`
    /// plays when it plays at `now`.
    fn playout_lag_ms(&self, now: Instant, cursor: u64) -> f64 {
        let Some((origin_at, origin_ts)) = self.origin else {
            return 0.0;
        };
        let now_ms = now.saturating_duration_since(origin_at).as_secs_f64() * 1000.0;
        let media_ms = (cursor as f64 - origin_ts as f64) * 1000.0 / f64::from(self.clock_rate);
        now_ms - media_ms - self.min_transit_ms
    }

    /// The playout lag the buffer steers toward: the transit spread up to [`LATE_PERCENTILE`]
    /// plus the look-ahead the floor asks for beyond one frame.
    fn wanted_lag_ms(&self) -> f64 {
        self.spread_ms + (self.floor_ms() - self.frame_ms()).max(0.0)
    }

    fn enforce_max_delay(&mut self) {
        let Some(cursor) = self.cursor.or_else(|| self.packets.keys().next().copied()) else {
            return;
        };
        let mut cursor = cursor;
        while self.span_ms(cursor) > self.max_ms() {
            if let Some(entry) = self.packets.first_entry() {
                if *entry.key() < cursor + self.frame {
                    entry.remove();
                }
            }
            cursor += self.frame;
            self.stats.frames_dropped += 1;
        }
        if self.cursor.is_some() {
            self.cursor = Some(cursor);
        }
    }

    /// Audio from `position` to the end of the newest packet, in ms.
    fn span_ms(&self, position: u64) -> f64 {
        match self.packets.keys().next_back() {
            Some(&last) => {
                (last + self.frame).saturating_sub(position) as f64 * 1000.0
                    / f64::from(self.clock_rate)
            }
            None => 0.0,
        }
    }

    fn frame_ms(&self) -> f64 {
        self.frame as f64 * 1000.0 / f64::from(self.clock_rate)
    }

    fn floor_ms(&self) -> f64 {
        self.min_delay_ms.max(self.frame_ms())
    }

    fn max_ms(&self) -> f64 {
        MAX_DELAY.as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    const FRAME: u32 = 160;

    fn base() -> Instant {
        #[allow(clippy::disallowed_methods)] // Tests need one base instant.
        Instant::now()
    }

    /// Payload carrying the packet index, to check order and uniqueness of playout.
    fn payload(index: u32) -> Vec<u8> {
        index.to_be_bytes().to_vec()
    }

    /// Arrival time of packet `index` on a clean network.
    fn at(t0: Instant, index: u32) -> Instant {
        t0 + Duration::from_millis(u64::from(index) * 20)
    }

    fn index_of(payload: &[u8]) -> u32 {
        u32::from_be_bytes(payload.try_into().unwrap())
    }

    struct Run {
        played: Vec<u32>,
        /// Concealed frames between the first and the last played frame.
        concealed: usize,
        trailing_lost: usize,
        max_delay_ms: f64,
        final_target_ms: f64,
    }

    /// Sends `count` packets every 20 ms through a seeded impaired network (loss, jitter with
    /// reordering, duplicates) and pulls every 20 ms at a phase offset of 7 ms.
    fn simulate(seed: u64, count: u32, loss: f64, jitter_ms: f64, duplicate: f64) -> Run {
        let mut rng = SmallRng::seed_from_u64(seed);
        let t0 = base();
        let mut arrivals: Vec<(Duration, u32)> = Vec::new();
        for index in 0..count {
            if rng.gen_bool(loss) {
                continue;
            }
            let copies = if rng.gen_bool(duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                // Exponential-ish jitter: occasional long delays reorder packets.
                let extra = -jitter_ms * (1.0 - rng.r#gen::<f64>()).ln();
                let at = Duration::from_secs_f64((f64::from(index) * 20.0 + 30.0 + extra) / 1e3);
                arrivals.push((at, index));
            }
        }
        arrivals.sort();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let mut next_arrival = arrivals.iter().peekable();
        let mut run = Run {
            played: Vec::new(),
            concealed: 0,
            trailing_lost: 0,
            max_delay_ms: 0.0,
            final_target_ms: 0.0,
        };
        for tick in 0..(count + 100) {
            let now = Duration::from_millis(u64::from(tick) * 20 + 7);
            while let Some(&&(at, index)) = next_arrival.peek() {
                if at > now {
                    break;
                }
                // Timestamps start near the wrap to exercise extension.
                let timestamp = (u32::MAX - 1000).wrapping_add(index * FRAME);
                buffer.insert(t0 + at, 42, timestamp, &payload(index));
                next_arrival.next();
            }
            match buffer.pull(t0 + now) {
                Playout::Frame(p) => {
                    run.played.push(index_of(&p));
                    run.concealed += std::mem::take(&mut run.trailing_lost);
                }
                Playout::Lost => run.trailing_lost += 1,
                Playout::Empty => {}
                Playout::Dtx => panic!("never set discontinuous"),
            }
            run.max_delay_ms = run.max_delay_ms.max(buffer.delay().as_secs_f64() * 1000.0);
        }
        run.final_target_ms = buffer.target_delay().as_secs_f64() * 1000.0;
        run
    }

    fn assert_strictly_increasing(played: &[u32]) {
        assert!(played.windows(2).all(|w| w[0] < w[1]), "order or duplicate");
    }

    #[test]
    fn clean_network_plays_everything_with_small_delay() {
        let run = simulate(1, 500, 0.0, 0.0, 0.0);
        assert_eq!(run.played, (0..500).collect::<Vec<_>>());
        assert_eq!(run.concealed, 0);
        assert!(run.max_delay_ms <= 40.0, "{}", run.max_delay_ms);
    }

    #[test]
    fn impaired_network_keeps_order_and_bounded_delay() {
        for seed in 0..5 {
            let run = simulate(seed, 1500, 0.05, 15.0, 0.02);
            assert_strictly_increasing(&run.played);
            // 5 % loss plus a few late packets.
            assert!(run.played.len() > 1300, "seed {seed}: {}", run.played.len());
            assert!(
                run.max_delay_ms < 300.0,
                "seed {seed}: {}",
                run.max_delay_ms
            );
            // Exponential jitter with mean 15 ms: p95 ≈ 45 ms, so the target sits well above
            // the floor.
            assert!(
                (40.0..200.0).contains(&run.final_target_ms),
                "seed {seed}: target {}",
                run.final_target_ms
            );
        }
    }

    #[test]
    fn target_shrinks_after_a_jitter_burst() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut at_ms =
            |index: u32, jitter: f64| f64::from(index) * 20.0 + rng.r#gen::<f64>() * jitter;
        let mut targets = Vec::new();
        let mut arrivals: Vec<(f64, u32)> = (0..3000)
            .map(|i| {
                (
                    at_ms(i, if (200..400).contains(&i) { 150.0 } else { 2.0 }),
                    i,
                )
            })
            .collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut arrivals = arrivals.into_iter().peekable();
        for tick in 0..3000u32 {
            let now = f64::from(tick) * 20.0 + 5.0;
            while let Some(&(at, index)) = arrivals.peek() {
                if at > now {
                    break;
                }
                let when = t0 + Duration::from_secs_f64(at / 1e3);
                buffer.insert(when, 1, index * FRAME, &payload(index));
                arrivals.next();
            }
            let _ = buffer.pull(t0 + Duration::from_secs_f64(now / 1e3));
            targets.push(buffer.target_delay().as_secs_f64() * 1000.0);
        }
        assert!(targets[150] < 40.0, "before burst {}", targets[150]);
        assert!(targets[420] > 120.0, "during burst {}", targets[420]);
        assert!(targets[2999] < 40.0, "long after burst {}", targets[2999]);
        assert!(buffer.delay().as_secs_f64() * 1000.0 < 80.0);
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in 0..3 {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        buffer.insert(at(t0, 3), 1, FRAME, &payload(1));
        assert_eq!(buffer.stats().duplicates, 1);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(0)));
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(1)));
        buffer.insert(at(t0, 4), 1, 0, &payload(0));
        assert_eq!(buffer.stats().late_dropped, 1);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(2)));
    }

    #[test]
    fn next_payload_only_after_a_skipped_packet() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in [0, 1, 3] {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(0)));
        assert_eq!(buffer.next_payload(), None);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(1)));
        assert_eq!(buffer.pull(t0), Playout::Lost);
        assert_eq!(buffer.next_payload(), Some(payload(3).as_slice()));
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(3)));
        // Underrun: a stall, not a skipped packet.
        assert_eq!(buffer.pull(t0), Playout::Lost);
        assert_eq!(buffer.next_payload(), None);
    }

    #[test]
    fn after_a_loss_the_next_packet_and_its_distance_are_known() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in [0, 1, 4] {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(0)));
        assert_eq!(buffer.payload_after_loss(), None);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(1)));
        // 2 and 3 lost: packet 4 starts two frames after 2's start, then one after 3's.
        assert_eq!(buffer.pull(t0), Playout::Lost);
        assert_eq!(
            buffer.payload_after_loss(),
            Some((2, payload(4).as_slice()))
        );
        assert_eq!(buffer.pull(t0), Playout::Lost);
        assert_eq!(
            buffer.payload_after_loss(),
            Some((1, payload(4).as_slice()))
        );
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(4)));
        assert_eq!(buffer.payload_after_loss(), None);
    }

    #[test]
    fn redundant_copies_only_fill_holes() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in [0, 1, 3] {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        // Copies of 1 (present), 2 (lost) and 4 (its original comes later).
        assert!(!buffer.insert_redundant(1, FRAME, &payload(99)));
        assert!(buffer.insert_redundant(1, 2 * FRAME, &payload(2)));
        assert!(buffer.insert_redundant(1, 4 * FRAME, &payload(4)));
        assert!(
            !buffer.insert_redundant(2, 5 * FRAME, &payload(5)),
            "other source"
        );
        // The original of 4 arrives after its copy: not a duplicate, not recovered.
        buffer.insert(at(t0, 4), 1, 4 * FRAME, &payload(4));
        let played: Vec<_> = (0..5).map(|_| buffer.pull(t0)).collect();
        assert_eq!(
            played,
            (0..5)
                .map(|i| Playout::Frame(payload(i)))
                .collect::<Vec<_>>()
        );
        // Too late: its turn has passed.
        assert!(!buffer.insert_redundant(1, 3 * FRAME, &payload(3)));
        let stats = buffer.stats();
        assert_eq!((stats.redundant_played, stats.duplicates), (1, 0));
        assert_eq!(stats.frames_concealed, 0);
    }

    #[test]
    fn ssrc_change_and_timestamp_jump_reset() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in 0..3 {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(0)));
        // New SSRC with older timestamps: not late, a new stream.
        buffer.insert(at(t0, 10), 2, 0, &payload(10));
        buffer.insert(at(t0, 11), 2, FRAME, &payload(11));
        assert_eq!(buffer.stats().resets, 1);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(10)));
        // Same SSRC, timestamp 1 hour ahead.
        buffer.insert(at(t0, 20), 2, 8000 * 3600, &payload(20));
        buffer.insert(at(t0, 21), 2, 8000 * 3600 + FRAME, &payload(21));
        assert_eq!(buffer.stats().resets, 2);
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(20)));
    }

    #[test]
    fn stream_pause_goes_idle_then_restarts() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in 0..2 {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        assert!(matches!(buffer.pull(t0), Playout::Frame(_)));
        assert!(matches!(buffer.pull(t0), Playout::Frame(_)));
        let outputs: Vec<_> = (0..15).map(|_| buffer.pull(t0)).collect();
        assert_eq!(outputs[0], Playout::Lost);
        assert_eq!(outputs[14], Playout::Empty);
        // The stream resumes 5 s later in timestamp terms.
        for index in 250..252 {
            buffer.insert(at(t0, index), 1, index * FRAME, &payload(index));
        }
        assert_eq!(buffer.pull(t0), Playout::Frame(payload(250)));
    }

    /// A 400 ms pause after a silent packet (Opus DTX: sequence numbers continuous, timestamps
    /// jump): the pulls play DTX, the cursor keeps the timeline, nothing is concealed, the
    /// buffer neither grows nor restarts, and the packet ending the pause plays on time. The same
    /// pause without the silence flag is an underrun: concealed, then a restart.
    #[test]
    fn dtx_pause_is_neither_loss_nor_underrun() {
        let run = |discontinuous: bool| {
            let t0 = base();
            let mut buffer = JitterBuffer::new(8000, FRAME);
            let mut outputs = Vec::new();
            // Frames 0..10, a pause over 10..30, then frames 30..40: one pull per 20 ms.
            for tick in 0..40u32 {
                let now = at(t0, tick);
                if !(10..30).contains(&tick) {
                    buffer.insert(now, 1, tick * FRAME, &payload(tick));
                    buffer.set_discontinuous(discontinuous && tick == 9);
                }
                outputs.push(buffer.pull(now));
            }
            (outputs, buffer.stats(), buffer.target_delay())
        };
        let (outputs, stats, target) = run(true);
        let dtx = outputs.iter().filter(|o| **o == Playout::Dtx).count();
        assert_eq!(dtx, 20, "{outputs:?}");
        assert_eq!(stats.dtx_frames, 20);
        assert_eq!(stats.frames_concealed, 0, "{outputs:?}");
        assert_eq!(stats.resets, 0);
        assert_eq!(stats.frames_played, 20);
        assert_eq!(target, MIN_DELAY);
        // Each frame plays at the pull it arrives for, before and after the pause.
        assert_eq!(outputs[9], Playout::Frame(payload(9)));
        assert_eq!(outputs[30], Playout::Frame(payload(30)));
        assert!(!outputs.contains(&Playout::Empty) && !outputs.contains(&Playout::Lost));

        let (outputs, stats, _) = run(false);
        assert!(!outputs.contains(&Playout::Dtx));
        assert_eq!(stats.dtx_frames, 0);
        assert!(stats.frames_concealed >= 10, "{stats:?}");
        assert!(outputs[11..30].contains(&Playout::Empty));
    }

    /// Pulls for `ticks` frames, 7 ms into each 20 ms; packet `index` (timestamp
    /// `index × FRAME`) arrives `arrival_ms(index)` after the start, or never (`None`), and says
    /// whether the remote falls silent after it (`silent(index)`). Returns each pull's output.
    fn replay(
        buffer: &mut JitterBuffer,
        ticks: u32,
        arrival_ms: impl Fn(u32) -> Option<u64>,
        silent: impl Fn(u32) -> bool,
    ) -> Vec<Playout> {
        let t0 = base();
        let mut arrivals: Vec<(u64, u32)> = (0..ticks)
            .filter_map(|index| arrival_ms(index).map(|ms| (ms, index)))
            .collect();
        arrivals.sort_unstable();
        let mut arrivals = arrivals.into_iter().peekable();
        let mut outputs = Vec::new();
        for ms in 0..u64::from(ticks) * 20 {
            let now = t0 + Duration::from_millis(ms);
            while let Some((_, index)) = arrivals.next_if(|&(at, _)| at <= ms) {
                let silent = silent(index);
                buffer.insert_classified(now, 1, index * FRAME, &payload(index), !silent);
                buffer.set_discontinuous(silent);
            }
            if ms % 20 == 7 {
                outputs.push(buffer.pull(now));
            }
        }
        outputs
    }

    /// Every tenth packet comes 50 ms after the others, beyond the lag they set: those
    /// transits are the ones the target must learn from (10 % of packets, above the 2 % it
    /// lets come late), so after the first few of them they play in time.
    #[test]
    fn late_packets_teach_the_target() {
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let arrival =
            |index: u32| Some(u64::from(index) * 20 + if index % 10 == 5 { 50 } else { 0 });
        let outputs = replay(&mut buffer, 1000, arrival, |_| false);
        let late = buffer.stats().late_dropped;
        assert!((1..=3).contains(&late), "{:?}", buffer.stats());
        assert!(buffer.target_delay() >= Duration::from_millis(50));
        // From the second second on, every frame plays.
        assert!(
            outputs[50..].iter().all(|o| matches!(o, Playout::Frame(_))),
            "{outputs:?}"
        );
    }

    /// A talk spurt, then its silent hangover, a silence with a comfort-noise refresh every
    /// 400 ms, and a second spurt; from the hangover on, every packet comes 60 ms later. The
    /// buffer learns it from the (late) hangover and grows while the silence lasts, playing it
    /// longer: the second spurt plays whole, with nothing concealed but at most the frame right
    /// before it.
    #[test]
    fn a_silence_grows_the_buffer_for_free() {
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let sent = |index: u32| index < 50 || index == 69 || index == 89 || index >= 100;
        let arrival = |index: u32| {
            sent(index).then(|| u64::from(index) * 20 + if index < 40 { 0 } else { 60 })
        };
        let outputs = replay(&mut buffer, 200, arrival, |index| {
            (39..100).contains(&index)
        });
        let stats = buffer.stats();
        // At most the frame right before the spurt (it may be its lost onset).
        assert!(stats.frames_concealed <= 1, "{stats:?} {outputs:?}");
        assert!(stats.late_dropped <= 3, "{stats:?}");
        assert!(stats.dtx_frames >= 50, "{stats:?}");
        assert!(buffer.target_delay() >= Duration::from_millis(60));
        let second_spurt: Vec<u32> = outputs
            .iter()
            .filter_map(|o| match o {
                Playout::Frame(p) => Some(index_of(p)),
                _ => None,
            })
            .filter(|&index| index >= 100)
            .collect();
        assert_eq!(second_spurt.first(), Some(&100), "{outputs:?}");
        assert!(
            second_spurt.windows(2).all(|w| w[1] == w[0] + 1),
            "{second_spurt:?}"
        );
        assert!(second_spurt.len() >= 95, "{second_spurt:?}");
    }

    /// With 60 ms of look-ahead, a comfort-noise refresh (and the first packet after the
    /// silence) is buffered before the frames up to it are due: those frames were never sent,
    /// so they play as DTX, not as losses. Only the frame right before the spurt is concealed
    /// as a loss: it may be the spurt's lost first frame, which the next one's FEC rebuilds.
    #[test]
    fn frames_before_a_packet_that_ends_a_silence_are_not_lost() {
        let mut buffer = JitterBuffer::new(8000, FRAME);
        buffer.set_min_delay(Duration::from_millis(60));
        let sent = |index: u32| index < 20 || index == 39 || index == 59 || index >= 80;
        let arrival = |index: u32| sent(index).then(|| u64::from(index) * 20);
        let outputs = replay(&mut buffer, 120, arrival, |index| (19..80).contains(&index));
        let stats = buffer.stats();
        assert_eq!(stats.frames_concealed, 1, "{stats:?} {outputs:?}");
        let onset = outputs
            .iter()
            .position(|o| *o == Playout::Frame(payload(80)));
        let lost = outputs.iter().position(|o| *o == Playout::Lost);
        assert_eq!(lost.map(|at| at + 1), onset, "{outputs:?}");
        for index in [39, 59, 81] {
            assert!(
                outputs.contains(&Playout::Frame(payload(index))),
                "{index}: {outputs:?}"
            );
        }
        assert_eq!(stats.dtx_frames, 57, "{stats:?}");
    }

    /// The audio clock stalls for 80 ms during a talk spurt, leaving four frames too many; the
    /// spurt ends with a silent packet and a DTX pause. Told the spurt is speech, the buffer
    /// plays all of it and drops a frame of the pause instead; not told, it drops speech.
    #[test]
    fn due_shrink_waits_for_the_dtx_pause() {
        let run = |classified: bool| {
            let t0 = base();
            let mut buffer = JitterBuffer::new(8000, FRAME);
            let mut played = Vec::new();
            for tick in 0..60u32 {
                let now = at(t0, tick);
                let talking = !(10..40).contains(&tick);
                if talking {
                    buffer.insert_classified(now, 1, tick * FRAME, &payload(tick), classified);
                    buffer.set_discontinuous(tick == 9);
                }
                if (2..6).contains(&tick) {
                    continue;
                }
                if let Playout::Frame(p) = buffer.pull(now) {
                    played.push(index_of(&p));
                }
            }
            (played, buffer.stats())
        };
        // Every frame of both spurts plays, in order and without a gap (the tail of the second
        // is still buffered at the end).
        let no_gap = |played: &[u32]| {
            let last = played.last().copied().unwrap_or_default();
            played.iter().copied().eq((0..10).chain(40..=last))
        };
        let (played, stats) = run(true);
        assert!(no_gap(&played), "{played:?}");
        assert!(played.len() >= 25, "{played:?}");
        assert_eq!(stats.frames_dropped, 1, "{stats:?}");
        assert!(stats.dtx_frames >= 20, "{stats:?}");
        let (played, stats) = run(false);
        assert!(stats.frames_dropped >= 1, "{stats:?}");
        assert!(!no_gap(&played), "{played:?}");
    }

    #[test]
    fn never_holds_more_than_the_maximum() {
        let t0 = base();
        let mut buffer = JitterBuffer::new(8000, FRAME);
        for index in 0..500 {
            buffer.insert(t0, 1, index * FRAME, &payload(index));
        }
        assert!(buffer.delay() <= MAX_DELAY);
        assert!(buffer.stats().frames_dropped >= 450);
    }

    /// What [`simulate_speech`] showed.
    #[derive(Debug)]
    struct SpeechRun {
        /// Frames skipped by the shrink: (index, whether it was speech).
        dropped: Vec<(u32, bool)>,
        /// Buffer delay after each pull, ms.
        delays: Vec<f64>,
        stats: JitterStats,
    }

    impl SpeechRun {
        fn dropped_in_speech(&self) -> usize {
            self.dropped.iter().filter(|(_, speech)| *speech).count()
        }
    }

    /// Sends `count` 20 ms packets on a clean network (30 ms) from a sender whose clock runs
    /// `ppm` fast, so the buffer must shrink by a frame every `1e6 / ppm` frames. `speech` says
    /// which packets carry speech; `classified` whether the buffer is told.
    fn simulate_speech(
        count: u32,
        ppm: f64,
        speech: impl Fn(u32) -> bool,
        classified: bool,
    ) -> SpeechRun {
        let t0 = base();
        let period_ms = 20.0 / (1.0 + ppm * 1e-6);
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let mut run = SpeechRun {
            dropped: Vec::new(),
            delays: Vec::new(),
            stats: JitterStats::default(),
        };
        let mut sent = 0;
        let mut last_played: Option<u32> = None;
        for tick in 0..count {
            let now_ms = f64::from(tick) * 20.0 + 7.0;
            while f64::from(sent) * period_ms + 30.0 <= now_ms {
                let at = t0 + Duration::from_secs_f64((f64::from(sent) * period_ms + 30.0) / 1e3);
                let is_speech = classified && speech(sent);
                buffer.insert_classified(at, 9, sent * FRAME, &payload(sent), is_speech);
                sent += 1;
            }
            if let Playout::Frame(p) = buffer.pull(t0 + Duration::from_secs_f64(now_ms / 1e3)) {
                let index = index_of(&p);
                if let Some(last) = last_played {
                    run.dropped
                        .extend((last + 1..index).map(|skipped| (skipped, speech(skipped))));
                }
                last_played = Some(index);
            }
            run.delays.push(buffer.delay().as_secs_f64() * 1000.0);
        }
        run.stats = buffer.stats();
        run
    }

    /// Speech in 1.2 s talk spurts with 0.6 s pauses, a sender 2000 ppm fast (a frame to drop
    /// every 10 s): told which frames are speech, the buffer drops only pause frames, as many
    /// as without the classification; not told, it drops wherever the shrink falls. With
    /// continuous speech the deferral is bounded: the buffer still shrinks, with a bounded
    /// delay.
    #[test]
    fn shrinks_in_pauses_and_defers_a_bounded_time_in_speech() {
        const FIVE_MINUTES: u32 = 15_000;
        let talk_spurts = |index: u32| index % 90 < 60;
        let told = simulate_speech(FIVE_MINUTES, 2000.0, talk_spurts, true);
        let blind = simulate_speech(FIVE_MINUTES, 2000.0, talk_spurts, false);
        let speech = simulate_speech(FIVE_MINUTES, 2000.0, |_| true, true);
        let settled_max = |run: &SpeechRun| run.delays[500..].iter().copied().fold(0.0, f64::max);
        // 5 minutes at 2000 ppm: 30 frames of drift.
        assert!(told.dropped.len() >= 28, "{:?}", told.stats);
        assert_eq!(told.dropped_in_speech(), 0, "{:?}", told.dropped);
        assert!(settled_max(&told) <= 40.0, "{}", settled_max(&told));
        assert_eq!(told.stats.frames_concealed, 0);
        // Not told: two thirds of the frames are speech, so are most drops.
        assert!(blind.dropped_in_speech() >= 10, "{:?}", blind.dropped);
        // Continuous speech: every drop is speech, after at most the deferral.
        assert!(speech.dropped.len() >= 28, "{:?}", speech.stats);
        assert!(settled_max(&speech) <= 40.0, "{}", settled_max(&speech));
        assert_eq!(speech.stats.frames_concealed, 0);
        // The deferral shows: the shrink waits, so the buffer holds more on average.
        assert!(
            mean(&speech.delays[500..]) > mean(&blind.delays[500..]),
            "deferred {} ms, at once {} ms",
            mean(&speech.delays[500..]),
            mean(&blind.delays[500..])
        );
    }

    /// What a long run through [`simulate_clock`] showed.
    #[derive(Debug)]
    struct ClockRun {
        /// Buffer delay after each pull, ms.
        delays: Vec<f64>,
        /// Target delay after each pull, ms.
        targets: Vec<f64>,
        played: usize,
        /// For each played frame, pull time − send time (ms): the real playout delay.
        offsets: Vec<f64>,
        /// Pulls answered with concealment after playout started (loss, late, underrun, grow).
        concealed: usize,
        stats: JitterStats,
    }

    /// Sends `count` 20 ms packets from a sender whose clock runs `ppm` parts per million fast
    /// (negative: slow) through a network with `base_ms + uniform(−jitter_ms..jitter_ms)` delay
    /// and random loss; the receiver pulls every 20 ms of its own clock.
    fn simulate_clock(
        seed: u64,
        count: u32,
        ppm: f64,
        loss: f64,
        base_ms: f64,
        jitter_ms: f64,
    ) -> ClockRun {
        simulate_clock_phase(seed, count, ppm, loss, base_ms, jitter_ms, 7.0)
    }

    /// [`simulate_clock`] with the receiver pulling at `phase_ms` past each 20 ms tick.
    fn simulate_clock_phase(
        seed: u64,
        count: u32,
        ppm: f64,
        loss: f64,
        base_ms: f64,
        jitter_ms: f64,
        phase_ms: f64,
    ) -> ClockRun {
        let mut rng = SmallRng::seed_from_u64(seed);
        let t0 = base();
        let period_ms = 20.0 / (1.0 + ppm * 1e-6);
        let mut arrivals: Vec<(f64, u32)> = Vec::new();
        for index in 0..count {
            let jitter = (rng.r#gen::<f64>() * 2.0 - 1.0) * jitter_ms;
            if !rng.gen_bool(loss) {
                arrivals.push((f64::from(index) * period_ms + base_ms + jitter, index));
            }
        }
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut buffer = JitterBuffer::new(8000, FRAME);
        let mut next = arrivals.into_iter().peekable();
        let mut run = ClockRun {
            delays: Vec::new(),
            targets: Vec::new(),
            played: 0,
            offsets: Vec::new(),
            concealed: 0,
            stats: JitterStats::default(),
        };
        for tick in 0..count {
            let now_ms = f64::from(tick) * 20.0 + phase_ms;
            while let Some(&(at_ms, index)) = next.peek() {
                if at_ms > now_ms {
                    break;
                }
                let at = t0 + Duration::from_secs_f64(at_ms / 1e3);
                buffer.insert(at, 9, index.wrapping_mul(FRAME), &payload(index));
                next.next();
            }
            match buffer.pull(t0 + Duration::from_secs_f64(now_ms / 1e3)) {
                Playout::Frame(p) => {
                    run.played += 1;
                    run.offsets
                        .push(now_ms - f64::from(index_of(&p)) * period_ms);
                }
                Playout::Lost => run.concealed += 1,
                Playout::Empty => {}
                Playout::Dtx => panic!("never set discontinuous"),
            }
            run.delays.push(buffer.delay().as_secs_f64() * 1000.0);
            run.targets
                .push(buffer.target_delay().as_secs_f64() * 1000.0);
        }
        run.stats = buffer.stats();
        run
    }

    fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len().max(1) as f64
    }

    #[test]
    fn clock_drift_of_100_ppm_stays_bounded_for_10_minutes() {
        // 10 minutes: 100 ppm is 60 ms, three frames, of drift.
        const TEN_MINUTES: u32 = 30_000;
        const MINUTE: usize = 3000;
        for ppm in [100.0, -100.0] {
            let run = simulate_clock(7, TEN_MINUTES, ppm, 0.0, 30.0, 2.0);
            let settled = &run.delays[500..];
            let max = settled.iter().copied().fold(0.0, f64::max);
            assert!(max <= 80.0, "{ppm} ppm: max delay {max} ms, {run:?}");
            let first = mean(&run.delays[500..500 + MINUTE]);
            let last = mean(&run.delays[run.delays.len() - MINUTE..]);
            assert!(
                (last - first).abs() < 15.0,
                "{ppm} ppm: delay {first} ms in minute 1, {last} ms in minute 10"
            );
            // Compensating 3 frames of drift costs a handful of adjustments, not a stream of
            // underruns or drops.
            let adjustments = run.concealed as u64 + run.stats.frames_dropped;
            assert!(
                adjustments <= 6,
                "{ppm} ppm: {adjustments} adjustments, {:?}",
                run.stats
            );
            assert!(
                run.played as u32 >= TEN_MINUTES - 600 - 6,
                "{ppm} ppm: {run:?}"
            );
        }
    }

    /// Per network profile, over a minute and four phases of the receiver's clock against the
    /// sender's: the target delay, the real playout lag (pull time − send time − the fastest
    /// transit), frames late or concealed, and how often the buffer adjusted. The bounds are the
    /// ones the module documentation states.
    #[test]
    fn target_delay_converges_per_profile() {
        const MINUTE: u32 = 3000;
        struct Profile {
            name: &'static str,
            loss: f64,
            base_ms: f64,
            jitter_ms: f64,
            target: std::ops::RangeInclusive<f64>,
            /// Bound on the lag averaged over the phases (one frame of quantisation above the
            /// spread the target covers).
            mean_lag_ms: f64,
            /// Most frames concealed (loss, late, grow) per minute, as a fraction.
            concealed: f64,
        }
        let profiles = [
            Profile {
                name: "clean",
                loss: 0.0,
                base_ms: 30.0,
                jitter_ms: 0.0,
                target: 20.0..=25.0,
                mean_lag_ms: 20.0,
                concealed: 0.001,
            },
            Profile {
                name: "±30 ms jitter",
                loss: 0.0,
                base_ms: 50.0,
                jitter_ms: 30.0,
                target: 50.0..=60.0,
                mean_lag_ms: 72.0,
                concealed: 0.02,
            },
            Profile {
                name: "5 % loss + 40 ± 20 ms",
                loss: 0.05,
                base_ms: 40.0,
                jitter_ms: 20.0,
                target: 32.0..=42.0,
                mean_lag_ms: 52.0,
                concealed: 0.08,
            },
        ];
        for profile in profiles {
            let name = profile.name;
            for seed in 0..3 {
                let mut lags = Vec::new();
                for phase in [0.0, 5.0, 10.0, 15.0] {
                    let run = simulate_clock_phase(
                        seed,
                        MINUTE,
                        0.0,
                        profile.loss,
                        profile.base_ms,
                        profile.jitter_ms,
                        phase,
                    );
                    let target = run.targets.last().copied().unwrap_or_default();
                    assert!(
                        profile.target.contains(&target),
                        "{name} seed {seed} phase {phase}: target {target} ms"
                    );
                    let fraction = run.concealed as f64 / f64::from(MINUTE);
                    assert!(
                        fraction <= profile.concealed,
                        "{name} seed {seed} phase {phase}: concealed {fraction}"
                    );
                    // Settled: no steady grow/shrink cycling.
                    assert!(
                        run.stats.frames_dropped <= 2,
                        "{name} seed {seed} phase {phase}: {:?}",
                        run.stats
                    );
                    let fastest = profile.base_ms - profile.jitter_ms;
                    lags.push(mean(&run.offsets[250..]) - fastest);
                }
                let lag = mean(&lags);
                assert!(
                    lag <= profile.mean_lag_ms,
                    "{name} seed {seed}: lags {lags:?}"
                );
            }
        }
    }
}
