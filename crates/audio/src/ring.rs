//! Fixed-capacity sample ring between a device callback and the driver thread.
//!
//! It lives behind a `Mutex` held for one copy of a few hundred samples (no allocation, no
//! I/O under the lock), which is short enough for a real-time callback and far simpler than a
//! lock-free ring that could also drop its oldest samples.
//!
//! The reader side behaves like a small jitter buffer: after it runs dry it plays silence
//! until `prefill` samples are queued again, so the bursts of the two clocks (device
//! periods, driver frames) do not turn into a stream of tiny underruns.

#[derive(Debug)]
pub(crate) struct SampleRing {
    buffer: Box<[f32]>,
    /// Index of the oldest sample.
    head: usize,
    len: usize,
    /// Samples needed before reading resumes after the ring ran dry.
    prefill: usize,
    /// Above this many queued samples a read first drops the backlog down to `prefill`,
    /// so a stall of either side does not leave a permanent extra delay.
    max_level: usize,
    primed: bool,
    pub(crate) underruns: u64,
    pub(crate) dropped: u64,
}

impl SampleRing {
    /// `capacity` must exceed `max_level`, which must exceed `prefill`; out-of-order values
    /// are raised to keep that true.
    pub(crate) fn new(capacity: usize, prefill: usize, max_level: usize) -> Self {
        let max_level = max_level.max(prefill + 1);
        let capacity = capacity.max(max_level + 1);
        Self {
            buffer: vec![0.0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            prefill,
            max_level,
            primed: false,
            underruns: 0,
            dropped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Plays out whatever is queued, even below the prefill (end of stream).
    pub(crate) fn drain(&mut self) {
        self.primed = true;
    }

    /// Appends samples; when full, the oldest ones are overwritten (and counted as dropped).
    pub(crate) fn write(&mut self, samples: impl IntoIterator<Item = f32>) {
        let capacity = self.buffer.len();
        for sample in samples {
            let tail = (self.head + self.len) % capacity;
            // `tail` < capacity by the modulo.
            self.buffer[tail] = sample;
            if self.len == capacity {
                self.head = (self.head + 1) % capacity;
                self.dropped += 1;
            } else {
                self.len += 1;
            }
        }
    }

    /// Hands exactly `n` samples to `put`, oldest first: queued audio, or silence while the
    /// ring is refilling after running dry.
    pub(crate) fn read(&mut self, n: usize, mut put: impl FnMut(f32)) {
        if self.len > self.max_level {
            let excess = self.len - self.prefill;
            self.head = (self.head + excess) % self.buffer.len();
            self.len -= excess;
            self.dropped += excess as u64;
        }
        if !self.primed && self.len >= self.prefill.max(1) {
            self.primed = true;
        }
        let mut served = 0;
        if self.primed {
            let capacity = self.buffer.len();
            let take = n.min(self.len);
            for _ in 0..take {
                // `head` < capacity: it only ever advances modulo capacity.
                put(self.buffer[self.head]);
                self.head = (self.head + 1) % capacity;
            }
            self.len -= take;
            served = take;
            if take < n {
                self.primed = false;
                self.underruns += 1;
            }
        }
        for _ in served..n {
            put(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ring: &mut SampleRing, n: usize) -> Vec<f32> {
        let mut out = Vec::new();
        ring.read(n, |s| out.push(s));
        out
    }

    #[test]
    fn waits_for_prefill_then_plays_in_order() {
        let mut ring = SampleRing::new(16, 4, 12);
        ring.write([1.0, 2.0, 3.0]);
        assert_eq!(read(&mut ring, 2), [0.0, 0.0]);
        assert_eq!(ring.len(), 3);
        ring.write([4.0]);
        assert_eq!(read(&mut ring, 2), [1.0, 2.0]);
        assert_eq!(read(&mut ring, 1), [3.0]);
        assert_eq!(ring.underruns, 0);
    }

    #[test]
    fn underrun_pads_with_silence_and_reprimes() {
        let mut ring = SampleRing::new(16, 2, 12);
        ring.write([1.0, 2.0, 3.0]);
        assert_eq!(read(&mut ring, 5), [1.0, 2.0, 3.0, 0.0, 0.0]);
        assert_eq!(ring.underruns, 1);
        ring.write([4.0]);
        assert_eq!(read(&mut ring, 1), [0.0], "refilling");
        ring.write([5.0]);
        assert_eq!(read(&mut ring, 2), [4.0, 5.0]);
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut ring = SampleRing::new(4, 1, 3);
        ring.write((1..=6).map(|i| i as f32));
        assert_eq!(ring.dropped, 2);
        assert_eq!(ring.len(), 4);
        // The backlog (4 > max_level 3) is trimmed to the prefill: only the newest stays.
        assert_eq!(read(&mut ring, 1), [6.0]);
        assert_eq!(ring.dropped, 5);
    }

    #[test]
    fn wraps_around() {
        let mut ring = SampleRing::new(5, 1, 4);
        for round in 0..10 {
            let base = round as f32 * 3.0;
            ring.write([base, base + 1.0, base + 2.0]);
            assert_eq!(read(&mut ring, 3), [base, base + 1.0, base + 2.0]);
        }
        assert_eq!(ring.dropped, 0);
        assert_eq!(ring.underruns, 0);
    }
}
