//! Dev-only test kit for Homeagent: a seeded network emulator ([`netem`]) and helpers that
//! start real SIP peers on loopback ([`peers`]) for the end-to-end tests.
#![forbid(unsafe_code)]

pub mod netem;
