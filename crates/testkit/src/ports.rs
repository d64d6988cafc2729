//! Port allocation that parallel tests (threads and processes) do not collide on.
//!
//! A process-wide counter walks the range 10000..32000 (below Linux's ephemeral range)
//! from a start derived from the PID, in steps of 10; a candidate is taken only if every
//! requested offset is free for both UDP and TCP on 127.0.0.1 at that moment.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

const LOW: u32 = 10_000;
const HIGH: u32 = 32_000;
const STEP: u32 = 10;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A base port `p` such that every `p + offset` is free (UDP and TCP) on 127.0.0.1.
///
/// Keep `offsets` below 10 (the block size): a larger offset reaches into another block,
/// which another test may have reserved but not yet bound. Panics only if the whole range is taken, which means the
/// machine is broken rather than the test.
pub fn reserve(offsets: &[u16]) -> u16 {
    let slots = (HIGH - LOW) / STEP;
    let start = (std::process::id() * 7919) % slots;
    for _ in 0..slots {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = LOW + ((start + n) % slots) * STEP;
        // Fits in u16: base < HIGH < 65535 - 1000.
        let base = base as u16;
        if offsets.iter().all(|off| is_free(base + off)) {
            return base;
        }
    }
    panic!("no free port block in {LOW}..{HIGH}");
}

/// One free port (UDP and TCP).
pub fn free_port() -> u16 {
    reserve(&[0])
}

/// True if `port` can be bound for UDP and TCP on 127.0.0.1 right now.
pub fn is_free(port: u16) -> bool {
    let addr = (Ipv4Addr::LOCALHOST, port);
    UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
}
