//! `ha-impair`: a seeded impairment relay between two network namespaces (see
//! `homeagent_testkit::impair` for the design). Run as root:
//!
//! ```text
//! ip netns add qa; ip netns add qb
//! ha-impair --ns-a qa --ns-b qb --profile loss3 --seed 7 --duration 60 &
//! ip netns exec qb baresip ...            # listens on 10.213.0.2
//! ip netns exec qa homeagent call sip:bob@10.213.0.2:5060 --bind 10.213.0.1:5060 ...
//! ```
//!
//! Prints one JSON line `{"event":"ready",...}` once both TUN ends are up, and one
//! `{"event":"summary",...}` line (counters per direction and per media flow) when it
//! exits: after `--duration`, or when a line `stop` arrives on stdin (end of stdin is
//! ignored). It creates the TUN devices in its own namespace, moves them into the two
//! namespaces, and they disappear when it exits.

use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use homeagent_testkit::impair::{Profile, Relay, Side};

/// Seeded UDP impairment relay between two network namespaces (RTP/RTCP impaired, other
/// traffic forwarded unimpaired).
#[derive(Debug, Parser)]
#[command(name = "ha-impair")]
struct Args {
    /// Network namespace of side A (must exist).
    #[arg(long)]
    ns_a: String,
    /// Network namespace of side B (must exist).
    #[arg(long)]
    ns_b: String,
    /// clean | loss3 | loss10 | burst10 | jitter30 | loss5_jitter40.
    #[arg(long, default_value = "clean")]
    profile: String,
    /// Seed of the A→B schedule (B→A derives from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fixed one-way delay added to the profile's, ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Address of A's end.
    #[arg(long, default_value = "10.213.0.1")]
    addr_a: Ipv4Addr,
    /// Address of B's end.
    #[arg(long, default_value = "10.213.0.2")]
    addr_b: Ipv4Addr,
    /// Prefix length of the shared subnet.
    #[arg(long, default_value_t = 24)]
    prefix: u8,
}

enum Message {
    Packet(Side, Instant, Vec<u8>),
    Stop(&'static str),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(profile) = Profile::from_name(&args.profile) else {
        eprintln!("ha-impair: unknown profile {:?}", args.profile);
        return ExitCode::from(2);
    };
    match run(&args, profile) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ha-impair: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, profile: Profile) -> Result<(), String> {
    let extra = Duration::from_millis(args.delay_ms);
    let tag = std::process::id();
    let dev_a = open_end(&format!("haq{tag}a"), &args.ns_a, args.addr_a, args.prefix)?;
    let dev_b = open_end(&format!("haq{tag}b"), &args.ns_b, args.addr_b, args.prefix)?;
    let start = Instant::now();
    let unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let mut relay = Relay::new(start, args.seed, profile.impairment(extra));
    emit(&serde_json::json!({
        "event": "ready",
        "profile": profile.name(),
        "seed": args.seed,
        "base_delay_ms": profile.base_delay(extra).as_secs_f64() * 1000.0,
        "ns_a": args.ns_a, "addr_a": args.addr_a,
        "ns_b": args.ns_b, "addr_b": args.addr_b,
        "start_unix_ms": unix_ms,
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let readers = [(Side::A, dev_a.clone()), (Side::B, dev_b.clone())]
        .map(|(side, dev)| spawn_reader(side, dev, tx.clone(), stop.clone()));
    spawn_stdin_watch(tx);

    let deadline = start + Duration::from_secs_f64(args.duration.max(0.0));
    let reason = loop {
        let now = Instant::now();
        while let Some(transmit) = relay.poll_transmit(now) {
            let dev = match transmit.to {
                Side::A => &dev_a,
                Side::B => &dev_b,
            };
            // A full device queue or a vanished namespace: the packet is lost, as on a
            // real network; the counters still say it was delivered by the emulator.
            let _ = dev.send(&transmit.packet);
        }
        if now >= deadline {
            break "duration";
        }
        let wake = relay.poll_timeout().map_or(deadline, |t| t.min(deadline));
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Message::Packet(side, at, packet)) => relay.handle_packet(at, side, packet),
            Ok(Message::Stop(why)) => break why,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break "readers ended",
        }
    };
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.join();
    }
    let report = relay.report();
    let mut summary = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    if let Some(object) = summary.as_object_mut() {
        object.insert("event".into(), "summary".into());
        object.insert("reason".into(), reason.into());
        object.insert("profile".into(), profile.name().into());
        object.insert("seed".into(), args.seed.into());
        let base = profile.base_delay(extra).as_secs_f64() * 1000.0;
        object.insert("base_delay_ms".into(), base.into());
        let ran = start.elapsed().as_secs_f64();
        object.insert("duration_s".into(), ran.into());
    }
    emit(&summary);
    Ok(())
}

/// Creates a TUN device, moves it into `netns`, gives it `addr/prefix` and brings it (and
/// the namespace's loopback) up.
fn open_end(
    name: &str,
    netns: &str,
    addr: Ipv4Addr,
    prefix: u8,
) -> Result<Arc<tun::Device>, String> {
    let mut config = tun::Configuration::default();
    config.tun_name(name).platform_config(|p| {
        // We configure it with `ip` once it is in its namespace.
        p.ensure_root_privileges(false);
    });
    let device = tun::create(&config).map_err(|e| format!("cannot create TUN {name}: {e}"))?;
    let cidr = format!("{addr}/{prefix}");
    ip(&["link", "set", name, "netns", netns])?;
    ip(&["-n", netns, "addr", "add", &cidr, "dev", name])?;
    ip(&["-n", netns, "link", "set", name, "up"])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    Ok(Arc::new(device))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn spawn_reader(
    side: Side,
    device: Arc<tun::Device>,
    tx: mpsc::Sender<Message>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            match device.recv_timeout(&mut buf, Duration::from_millis(100)) {
                Ok(n) => {
                    let packet = buf.get(..n).unwrap_or_default().to_vec();
                    if tx
                        .send(Message::Packet(side, Instant::now(), packet))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("ha-impair: reading side {side:?}: {e}");
                    let _ = tx.send(Message::Stop("device error"));
                    return;
                }
            }
        }
    })
}

/// A line `stop` on stdin ends the run; end of stdin does not (it may be /dev/null).
fn spawn_stdin_watch(tx: mpsc::Sender<Message>) {
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "stop" => {
                    let _ = tx.send(Message::Stop("stop"));
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
}

#[allow(clippy::print_stdout)] // the binary's output is its JSON lines
fn emit(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
