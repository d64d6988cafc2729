//! Seeded network emulator: loss rate, determinism, bursts, jitter bounds, reorder, duplicates.

use std::time::{Duration, Instant};

use homeagent_testkit::netem::{Gilbert, Impairment, NetEmulator};

const PACKETS: u32 = 10_000;
const PTIME: Duration = Duration::from_millis(20);

/// Sends `PACKETS` numbered packets every 20 ms and drains everything; returns
/// (packet number, delivery time) in delivery order.
fn run(seed: u64, impairment: Impairment) -> (Vec<(u32, Instant)>, Instant) {
    let start = Instant::now();
    let mut net = NetEmulator::new(seed, impairment);
    let mut out = Vec::new();
    let mut drain = |net: &mut NetEmulator<u32>, now: Instant| {
        while let Some(p) = net.poll_delivery(now) {
            out.push((p, now));
        }
    };
    for n in 0..PACKETS {
        let now = start + PTIME * n;
        drain(&mut net, now);
        net.send(now, n);
        // Deliver at the exact due time of anything due before the next send.
        while let Some(at) = net.next_delivery() {
            if at >= now + PTIME {
                break;
            }
            drain(&mut net, at);
        }
    }
    while let Some(at) = net.next_delivery() {
        drain(&mut net, at);
    }
    assert_eq!(net.in_flight(), 0);
    (out, start)
}

fn loss_rate(delivered: &[(u32, Instant)]) -> f64 {
    1.0 - delivered.len() as f64 / f64::from(PACKETS)
}

/// Lengths of runs of consecutive missing packet numbers.
fn loss_bursts(delivered: &[(u32, Instant)]) -> Vec<u32> {
    let mut got = vec![false; PACKETS as usize];
    for (n, _) in delivered {
        got[*n as usize] = true;
    }
    let mut bursts = Vec::new();
    let mut run = 0;
    for ok in got {
        if ok {
            if run > 0 {
                bursts.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    if run > 0 {
        bursts.push(run);
    }
    bursts
}

fn mean(v: &[u32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn perfect_link_delivers_everything_in_order() {
    let (out, _) = run(1, Impairment::default());
    let order: Vec<u32> = out.iter().map(|(n, _)| *n).collect();
    assert_eq!(order, (0..PACKETS).collect::<Vec<_>>());
}

#[test]
fn random_loss_rate_is_within_tolerance() {
    for (seed, loss) in [(1, 0.03), (2, 0.10), (3, 0.30)] {
        let (out, _) = run(
            seed,
            Impairment {
                loss,
                ..Impairment::default()
            },
        );
        let measured = loss_rate(&out);
        assert!(
            (measured - loss).abs() < 0.01 + loss * 0.1,
            "seed {seed}: asked {loss}, measured {measured}"
        );
    }
}

#[test]
fn same_seed_same_schedule_other_seed_differs() {
    let impairment = Impairment {
        loss: 0.05,
        jitter: Duration::from_millis(30),
        delay: Duration::from_millis(50),
        reorder: 0.02,
        duplicate: 0.01,
        ..Impairment::default()
    };
    let (a, start_a) = run(42, impairment.clone());
    let (b, start_b) = run(42, impairment.clone());
    let (c, start_c) = run(43, impairment);
    let rel = |v: &[(u32, Instant)], s: Instant| -> Vec<(u32, Duration)> {
        v.iter().map(|(n, t)| (*n, *t - s)).collect()
    };
    assert_eq!(rel(&a, start_a), rel(&b, start_b));
    assert_ne!(rel(&a, start_a), rel(&c, start_c));
}

#[test]
fn gilbert_bursts_are_longer_than_random_loss() {
    let (random, _) = run(
        5,
        Impairment {
            loss: 0.05,
            ..Impairment::default()
        },
    );
    let gilbert = Gilbert::with_mean_loss(0.05, 4.0);
    assert!((gilbert.mean_loss() - 0.05).abs() < 1e-9);
    let (bursty, _) = run(
        5,
        Impairment {
            burst: Some(gilbert),
            ..Impairment::default()
        },
    );
    let random_mean = mean(&loss_bursts(&random));
    let bursty_mean = mean(&loss_bursts(&bursty));
    assert!(
        (loss_rate(&bursty) - 0.05).abs() < 0.02,
        "gilbert loss {}",
        loss_rate(&bursty)
    );
    assert!(random_mean < 1.3, "random mean burst {random_mean}");
    assert!(
        bursty_mean > 2.5 && bursty_mean > 2.0 * random_mean,
        "gilbert mean burst {bursty_mean} vs random {random_mean}"
    );
}

#[test]
fn delay_and_jitter_bounds_are_respected() {
    let delay = Duration::from_millis(60);
    let jitter = Duration::from_millis(25);
    let (out, start) = run(
        9,
        Impairment {
            delay,
            jitter,
            ..Impairment::default()
        },
    );
    assert_eq!(out.len(), PACKETS as usize);
    let mut min = Duration::MAX;
    let mut max = Duration::ZERO;
    let mut reordered = 0;
    let mut last = 0;
    for (n, at) in &out {
        let sent = start + PTIME * *n;
        let latency = *at - sent;
        min = min.min(latency);
        max = max.max(latency);
        if *n < last {
            reordered += 1;
        }
        last = last.max(*n);
    }
    // Float rounding of Duration::from_secs_f64 is below a microsecond.
    let slack = Duration::from_micros(1);
    assert!(min + slack >= delay - jitter, "min latency {min:?}");
    assert!(max <= delay + jitter + slack, "max latency {max:?}");
    // The spread is actually used, not collapsed onto the mean.
    assert!(
        min < delay - jitter / 2 && max > delay + jitter / 2,
        "{min:?}..{max:?}"
    );
    // 50 ms of spread over a 20 ms interval must reorder some packets.
    assert!(reordered > 0);
}

#[test]
fn reorder_and_duplicate_rates() {
    let (out, _) = run(
        11,
        Impairment {
            reorder: 0.05,
            duplicate: 0.02,
            reorder_gap: Duration::from_millis(45),
            ..Impairment::default()
        },
    );
    let extra = out.len() as f64 - f64::from(PACKETS);
    let dup_rate = extra / f64::from(PACKETS);
    assert!((dup_rate - 0.02).abs() < 0.008, "duplicate rate {dup_rate}");
    let mut overtaken = 0;
    let mut last = 0;
    for (n, _) in &out {
        if *n < last {
            overtaken += 1;
        }
        last = last.max(*n);
    }
    let rate = f64::from(overtaken) / f64::from(PACKETS);
    assert!((rate - 0.05).abs() < 0.015, "reorder rate {rate}");
}
