//! A seeded, deterministic network emulator (sans-IO).
//!
//! Packets go in with [`NetEmulator::send`] at a given `now`; each one is dropped, delayed,
//! jittered, reordered or duplicated according to an [`Impairment`], using a small PRNG
//! seeded by the caller. Delivered packets come out of [`NetEmulator::poll_delivery`] once
//! their delivery time has passed; [`NetEmulator::next_delivery`] tells when to poll next.
//! The emulator never reads a clock: the same seed and the same `send` times give the same
//! schedule.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use homeagent_testkit::netem::{Impairment, NetEmulator};
//!
//! let start = Instant::now();
//! let mut net = NetEmulator::new(7, Impairment {
//!     delay: Duration::from_millis(40),
//!     ..Impairment::default()
//! });
//! net.send(start, "hello");
//! assert_eq!(net.poll_delivery(start), None);
//! assert_eq!(net.next_delivery(), Some(start + Duration::from_millis(40)));
//! assert_eq!(net.poll_delivery(start + Duration::from_millis(40)), Some("hello"));
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What the emulated network does to each packet. `Impairment::default()` is a perfect link.
///
/// Steps, in order, for every packet: random loss (`loss`), then burst loss (`burst`, if
/// set; a packet is lost if either drops it), then duplication, then the delivery time:
/// `delay` plus a uniform offset in `[-jitter, +jitter]` (never before `now`), plus
/// `reorder_gap` for the fraction `reorder` of packets. Jitter alone can reorder packets,
/// like a real network; without jitter and reorder, packets keep their order.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Probability (0..=1) that a packet is lost independently of the others.
    pub loss: f64,
    /// Bursty loss (Gilbert–Elliott model), applied on top of `loss`.
    pub burst: Option<Gilbert>,
    /// Base one-way delay.
    pub delay: Duration,
    /// Maximum deviation from `delay`, uniform in `[-jitter, +jitter]`.
    pub jitter: Duration,
    /// Probability (0..=1) that a packet is held back by `reorder_gap` (so later packets
    /// overtake it).
    pub reorder: f64,
    /// Extra delay of a reordered packet.
    pub reorder_gap: Duration,
    /// Probability (0..=1) that a packet is delivered twice (each copy has its own jitter).
    pub duplicate: f64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            burst: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_gap: Duration::from_millis(40),
            duplicate: 0.0,
        }
    }
}

/// Two-state Gilbert–Elliott loss model. The chain moves between a good and a bad state
/// once per packet; each state has its own loss probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Probability of moving from good to bad, per packet.
    pub p: f64,
    /// Probability of moving from bad to good, per packet (mean burst length is `1 / r`).
    pub r: f64,
    /// Loss probability while in the bad state (`1 - h` in the literature).
    pub loss_in_bad: f64,
    /// Loss probability while in the good state (`1 - k`).
    pub loss_in_good: f64,
}

impl Gilbert {
    /// The simple Gilbert model (every packet lost in bad, none in good) with the given
    /// long-run loss rate and mean burst length in packets (`>= 1`).
    pub fn with_mean_loss(loss: f64, mean_burst: f64) -> Gilbert {
        let r = 1.0 / mean_burst.max(1.0);
        let loss = loss.clamp(0.0, 0.999);
        Gilbert {
            p: loss * r / (1.0 - loss),
            r,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
        }
    }

    /// Long-run loss probability of this model.
    pub fn mean_loss(&self) -> f64 {
        let in_bad = if self.p + self.r > 0.0 {
            self.p / (self.p + self.r)
        } else {
            0.0
        };
        in_bad * self.loss_in_bad + (1.0 - in_bad) * self.loss_in_good
    }
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Packets given to `send`.
    pub sent: u64,
    /// Packets dropped (random or burst loss).
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets held back by `reorder`.
    pub reordered: u64,
    /// Packets returned by `poll_delivery`.
    pub delivered: u64,
}

/// The emulator: one direction of a link. Use two for a bidirectional path.
#[derive(Debug)]
pub struct NetEmulator<T> {
    impairment: Impairment,
    rng: SplitMix64,
    in_bad_state: bool,
    /// Min-heap on (delivery time, insertion number): FIFO among equal times.
    queue: BinaryHeap<Reverse<Queued<T>>>,
    next_order: u64,
    stats: NetStats,
}

impl<T: Clone> NetEmulator<T> {
    /// A new emulator; `seed` fixes every random decision.
    pub fn new(seed: u64, impairment: Impairment) -> Self {
        NetEmulator {
            impairment,
            rng: SplitMix64::new(seed),
            in_bad_state: false,
            queue: BinaryHeap::new(),
            next_order: 0,
            stats: NetStats::default(),
        }
    }

    /// Offers a packet to the network at `now`.
    pub fn send(&mut self, now: Instant, packet: T) {
        self.stats.sent += 1;
        if self.decide_loss() {
            self.stats.lost += 1;
            return;
        }
        if self.rng.chance(self.impairment.duplicate) {
            self.stats.duplicated += 1;
            let at = self.delivery_time(now);
            self.enqueue(at, packet.clone());
        }
        let at = self.delivery_time(now);
        self.enqueue(at, packet);
    }

    /// The next packet whose delivery time is `<= now`, earliest first.
    pub fn poll_delivery(&mut self, now: Instant) -> Option<T> {
        let due = self.queue.peek().is_some_and(|Reverse(q)| q.at <= now);
        if !due {
            return None;
        }
        let Reverse(queued) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(queued.packet)
    }

    /// When the earliest queued packet becomes deliverable, if any.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(q)| q.at)
    }

    /// Packets still in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Counters since creation.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The impairment in force.
    pub fn impairment(&self) -> &Impairment {
        &self.impairment
    }

    /// Changes the impairment for packets sent from now on (queued ones keep their time).
    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = impairment;
    }

    fn decide_loss(&mut self) -> bool {
        let random = self.rng.chance(self.impairment.loss);
        let burst = match self.impairment.burst {
            Some(gilbert) => {
                let flip = if self.in_bad_state {
                    gilbert.r
                } else {
                    gilbert.p
                };
                if self.rng.chance(flip) {
                    self.in_bad_state = !self.in_bad_state;
                }
                let loss = if self.in_bad_state {
                    gilbert.loss_in_bad
                } else {
                    gilbert.loss_in_good
                };
                self.rng.chance(loss)
            }
            None => false,
        };
        random || burst
    }

    fn delivery_time(&mut self, now: Instant) -> Instant {
        let jitter = self.impairment.jitter.as_secs_f64();
        let offset = if jitter > 0.0 {
            (self.rng.unit() * 2.0 - 1.0) * jitter
        } else {
            0.0
        };
        let mut delay = (self.impairment.delay.as_secs_f64() + offset).max(0.0);
        if self.rng.chance(self.impairment.reorder) {
            self.stats.reordered += 1;
            delay += self.impairment.reorder_gap.as_secs_f64();
        }
        now + Duration::from_secs_f64(delay)
    }

    fn enqueue(&mut self, at: Instant, packet: T) {
        let order = self.next_order;
        self.next_order += 1;
        self.queue.push(Reverse(Queued { at, order, packet }));
    }
}

#[derive(Debug)]
struct Queued<T> {
    at: Instant,
    order: u64,
    packet: T,
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<T> Eq for Queued<T> {}
impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Queued<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// SplitMix64: tiny, fast, good enough for test schedules, stable across versions.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`. Always consumes one draw, so a schedule depends only on
    /// the seed and the number of packets, not on which probabilities are zero.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}
