//! Two network namespaces joined through `ha-impair`, for real-process tests.
//!
//! ```no_run
//! use std::time::Duration;
//! use homeagent_testkit::impair::{Profile, Side, lab::{Lab, LabOpts}};
//!
//! if !homeagent_testkit::impair::lab::require_lab() {
//!     return Ok(());
//! }
//! let mut lab = Lab::start(&LabOpts { profile: Profile::Loss3, ..LabOpts::default() })?;
//! // Run a UA in each namespace: `ip netns exec NS program args...`.
//! let argv = lab.argv(Side::A, "/usr/bin/true", &[]);
//! // ... the UA in A calls sip:bob@10.213.0.2 ...
//! let report = lab.stop()?;
//! eprintln!("lost A->B: {}", report.a_to_b.media.lost);
//! # Ok::<(), homeagent_testkit::TestkitError>(())
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Profile, RelayReport, Side};
use crate::process::Process;
use crate::tempdir::TempDir;
use crate::{Result, TestkitError};

/// Address of namespace A's end (its TUN device).
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// Address of namespace B's end.
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start a [`Lab`].
#[derive(Debug, Clone)]
pub struct LabOpts {
    /// Impairment of RTP/RTCP, both directions.
    pub profile: Profile,
    /// Seed of A→B (B→A derives from it).
    pub seed: u64,
    /// Fixed delay added to the profile's.
    pub extra_delay: Duration,
    /// The relay exits by itself after this.
    pub max_lifetime: Duration,
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts {
            profile: Profile::Clean,
            seed: 1,
            extra_delay: Duration::ZERO,
            max_lifetime: Duration::from_secs(300),
        }
    }
}

/// Namespaces A and B (deleted on drop) and the `ha-impair` relay between them.
#[derive(Debug)]
pub struct Lab {
    relay: Process,
    ns_a: String,
    ns_b: String,
    base_delay: Duration,
    // Dropped after `relay` (field order).
    _dir: TempDir,
}

impl Lab {
    /// Creates the two namespaces, starts `ha-impair` between them and waits until the
    /// link is up.
    pub fn start(opts: &LabOpts) -> Result<Lab> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "haq{}x{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let (ns_a, ns_b) = (format!("{id}a"), format!("{id}b"));
        let dir = TempDir::new(&format!("impair-{id}"))?;
        run_ip(&["netns", "add", &ns_a])?;
        if let Err(e) = run_ip(&["netns", "add", &ns_b]) {
            let _ = run_ip(&["netns", "del", &ns_a]);
            return Err(e);
        }
        let mut command = Command::new(ha_impair_bin()?);
        command.args([
            "--ns-a",
            &ns_a,
            "--ns-b",
            &ns_b,
            "--profile",
            opts.profile.name(),
            "--seed",
            &opts.seed.to_string(),
            "--delay-ms",
            &opts.extra_delay.as_millis().to_string(),
            "--duration",
            &opts.max_lifetime.as_secs_f64().to_string(),
        ]);
        let spawned = Process::spawn("ha-impair", command, &dir.join("ha-impair.log"), true);
        let lab = match spawned {
            Ok(relay) => Lab {
                relay,
                ns_a,
                ns_b,
                base_delay: opts.profile.base_delay(opts.extra_delay),
                _dir: dir,
            },
            Err(e) => {
                let _ = run_ip(&["netns", "del", &ns_a]);
                let _ = run_ip(&["netns", "del", &ns_b]);
                return Err(e);
            }
        };
        lab.relay.wait_log(r#""event":"ready""#, START_TIMEOUT)?;
        Ok(lab)
    }

    /// The namespace of `side`.
    pub fn netns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.ns_a,
            Side::B => &self.ns_b,
        }
    }

    /// The address of `side` inside its namespace.
    pub fn addr(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        }
    }

    /// The profile's mean one-way delay plus the extra delay.
    pub fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// `ip netns exec NS program args...`: the argument vector that runs `program` in
    /// `side`'s namespace (give `"ip"` as the program to spawn).
    pub fn argv(&self, side: Side, program: &str, args: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = ["netns", "exec", self.netns(side), program]
            .into_iter()
            .map(str::to_owned)
            .collect();
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// Stops the relay (a `stop` line on its stdin) and returns its counters.
    pub fn stop(&mut self) -> Result<RelayReport> {
        self.relay.send_line("stop")?;
        self.relay.wait_exit(START_TIMEOUT)?;
        let summary = self
            .relay
            .lines()
            .into_iter()
            .rev()
            .find(|l| l.contains(r#""event":"summary""#))
            .ok_or_else(|| TestkitError::Failed {
                what: "ha-impair".into(),
                detail: "no summary line".into(),
                tail: self.relay.tail(20),
            })?;
        serde_json::from_str(&summary).map_err(|e| TestkitError::Parse {
            what: "ha-impair summary".into(),
            detail: format!("{e}: {summary}"),
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.relay.terminate();
        let _ = run_ip(&["netns", "del", &self.ns_a]);
        let _ = run_ip(&["netns", "del", &self.ns_b]);
    }
}

/// Why a [`Lab`] cannot run here, if it cannot: not root, no `/dev/net/tun`, no `ip`, or
/// `ip netns add` fails.
pub fn unavailable() -> Option<String> {
    if !crate::installed("ip") {
        return Some("`ip` (iproute2) not installed".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    let probe = format!("haqprobe{}", std::process::id());
    match run_ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = run_ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!(
            "cannot create a network namespace (root needed): {e}"
        )),
    }
}

/// For tests that need a [`Lab`]: true if namespaces and TUN work here. Otherwise prints
/// a `SKIP` notice and returns false; but panics if `HOMEAGENT_REQUIRE_PEERS=1`.
pub fn require_lab() -> bool {
    let Some(reason) = unavailable() else {
        return true;
    };
    let notice = format!("SKIP: no impairment lab: {reason}");
    let required = std::env::var("HOMEAGENT_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(!required, "{notice} (HOMEAGENT_REQUIRE_PEERS=1)");
    eprintln!("{notice}");
    false
}

/// The built `ha-impair` binary: `$HA_IMPAIR_BIN`, else `ha-impair` in the target profile
/// dir of the running executable (`target/<profile>/deps/x` → `target/<profile>/`).
pub fn ha_impair_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HA_IMPAIR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|source| TestkitError::Io {
        context: "current_exe".into(),
        source,
    })?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("ha-impair"))
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| TestkitError::Failed {
            what: "ha_impair_bin".into(),
            detail: format!(
                "no ha-impair binary in {candidates:?}: run `cargo build -p homeagent-testkit` \
                 or set HA_IMPAIR_BIN"
            ),
            tail: String::new(),
        })
}

fn run_ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| TestkitError::Spawn {
            what: "ip".into(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestkitError::Failed {
        what: format!("ip {}", args.join(" ")),
        detail: output.status.to_string(),
        tail: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
