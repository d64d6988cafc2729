//! A small deterministic generator for tags, branches, Call-IDs and cnonces.
//!
//! Seeded by the driver (from the OS in production, fixed in tests) so the phone stays
//! deterministic. Not for cryptographic keys.

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// splitmix64
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}
