//! Kamailio 5.6 registrar + proxy from `shared/peers/kamailio`, on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tempdir::TempDir;
use crate::{Result, TestkitError, ports};

/// How to start a [`Kamailio`]. Default: TLS and WebSocket listeners, MD5 digest.
#[derive(Debug, Clone)]
pub struct KamailioOpts {
    /// Feature defines (`KAM_FLAGS`): `WITH_TLS`, `WITH_WEBSOCKET`, `WITH_SHA256`,
    /// `WITHOUT_QOP`, `WITH_AUTH_403`, `WITHOUT_AUTH`, `WITH_MSGLOG`.
    pub flags: Vec<String>,
    /// Kamailio log level (`KAM_DEBUG`, 2 = info, 3 = debug).
    pub debug: u8,
    /// `KAM_CERT_DIR`: a directory with `ca.crt`, `server.crt`, `server.key` to use instead
    /// of a fresh test CA (see [`generate_certificates`]).
    pub cert_dir: Option<PathBuf>,
    /// The TLS listener demands a client certificate signed by the test CA (mutual TLS).
    pub require_client_certificate: bool,
}

impl Default for KamailioOpts {
    fn default() -> Self {
        KamailioOpts {
            flags: vec![
                "WITH_TLS".into(),
                "WITH_WEBSOCKET".into(),
                "WITH_MSGLOG".into(),
            ],
            debug: 2,
            cert_dir: None,
            require_client_certificate: false,
        }
    }
}

/// A running Kamailio. Users: alice/alicepw, bob/bobpw, agent01/agent01pw (any domain).
#[derive(Debug)]
pub struct Kamailio {
    peer_dir: PathBuf,
    run_dir: PathBuf,
    pid: u32,
    udp_port: u16,
    tls_port: u16,
    ws_port: u16,
    wss_port: u16,
    ca: Option<PathBuf>,
    log: PathBuf,
    ctl: String,
    stopped: bool,
    // Dropped last (field order): holds the peer copy and the run dir.
    _dir: TempDir,
}

impl Kamailio {
    /// Copies `shared/peers/kamailio` to a temp dir and runs its `start.sh start` with free
    /// ports; returns once Kamailio answers OPTIONS (start.sh waits at most 15 s).
    pub fn start(opts: KamailioOpts) -> Result<Kamailio> {
        let dir = TempDir::new("kamailio")?;
        let peer_dir = dir.join("peer");
        copy_dir(
            &crate::shared_dir().join("peers").join("kamailio"),
            &peer_dir,
        )?;
        if opts.require_client_certificate {
            require_client_certificate(&peer_dir.join("tls.cfg"))?;
        }
        let run_dir = dir.join("run");
        // UDP+TCP on P, TLS P+1, WS P+2, WSS P+3.
        let base = ports::reserve(&[0, 1, 2, 3]);
        let mut start = Command::new("bash");
        if let Some(cert_dir) = &opts.cert_dir {
            start.env("KAM_CERT_DIR", cert_dir);
        }
        let output = start
            .arg(peer_dir.join("start.sh"))
            .arg("start")
            .env("KAM_ADDR", "127.0.0.1")
            .env("KAM_UDP_PORT", base.to_string())
            .env("KAM_TLS_PORT", (base + 1).to_string())
            .env("KAM_WS_PORT", (base + 2).to_string())
            .env("KAM_WSS_PORT", (base + 3).to_string())
            .env("KAM_FLAGS", opts.flags.join(" "))
            .env("KAM_DEBUG", opts.debug.to_string())
            .env("KAM_RUN_DIR", &run_dir)
            .env("KAM_STOP_TIMEOUT", "5")
            .output()
            .map_err(|source| TestkitError::Spawn {
                what: "kamailio start.sh".into(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let var = |name: &str| {
            stdout.lines().find_map(|l| {
                let value = l.strip_prefix(name)?.strip_prefix('=')?;
                Some(value.trim_matches(['\'', '"']).to_owned())
            })
        };
        let pid = var("KAM_PID").and_then(|p| p.parse().ok());
        let (true, Some(pid)) = (output.status.success(), pid) else {
            return Err(TestkitError::Failed {
                what: "kamailio start.sh".into(),
                detail: output.status.to_string(),
                tail: format!("{stdout}{stderr}"),
            });
        };
        Ok(Kamailio {
            peer_dir,
            pid,
            udp_port: base,
            tls_port: base + 1,
            ws_port: base + 2,
            wss_port: base + 3,
            ca: var("KAM_CA").map(PathBuf::from),
            log: var("KAM_LOG")
                .map(PathBuf::from)
                .unwrap_or_else(|| run_dir.join("kamailio.log")),
            ctl: var("KAM_CTL").unwrap_or_default(),
            run_dir,
            stopped: false,
            _dir: dir,
        })
    }

    /// UDP and TCP port.
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// TCP port (same as UDP).
    pub fn tcp_port(&self) -> u16 {
        self.udp_port
    }

    /// TLS port (with `WITH_TLS`).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// WS port (with `WITH_WEBSOCKET`): `ws://127.0.0.1:PORT/`, subprotocol `sip`.
    pub fn ws_port(&self) -> u16 {
        self.ws_port
    }

    /// WSS port (with both).
    pub fn wss_port(&self) -> u16 {
        self.wss_port
    }

    /// `127.0.0.1:UDP_PORT`: the registrar / outbound proxy and the AOR domain to use.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }

    /// The test CA that signed the TLS certificate (with `WITH_TLS`).
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// Kamailio's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The PID of the main Kamailio process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Registered contacts as (AOR user, contact URI), from `kamcmd ul.dump`.
    pub fn registered_contacts(&self) -> Result<Vec<(String, String)>> {
        Ok(parse_ul_dump(&self.location_dump()?))
    }

    /// `kamcmd ul.dump` as text: every binding with its fields (Instance, Reg-Id, …).
    pub fn location_dump(&self) -> Result<String> {
        let output = Command::new("kamcmd")
            .args(["-s", &self.ctl, "ul.dump"])
            .output()
            .map_err(|source| TestkitError::Spawn {
                what: "kamcmd".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(TestkitError::Failed {
                what: "kamcmd ul.dump".into(),
                detail: output.status.to_string(),
                tail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Waits until `user` has a registered contact; returns the contact URI.
    pub fn wait_registered(&self, user: &str, timeout: Duration) -> Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let contacts = self.registered_contacts()?;
            if let Some((_, contact)) = contacts.into_iter().find(|(aor, _)| aor == user) {
                return Ok(contact);
            }
            if std::time::Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: "kamailio".into(),
                    waiting_for: format!("a registration of {user}"),
                    waited: timeout,
                    tail: tail(&self.log(), 30),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops Kamailio (`start.sh stop`: SIGTERM by PID, SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = Command::new("bash")
            .arg(self.peer_dir.join("start.sh"))
            .arg("stop")
            .arg(&self.run_dir)
            .env("KAM_STOP_TIMEOUT", "5")
            .output();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `shared/peers/kamailio/gen-certs.sh OUT SAN...`: a throw-away CA (`OUT/ca.crt`) and a
/// server certificate signed by it for the given subject alternative names (e.g.
/// `DNS:wrong.example`), for [`KamailioOpts::cert_dir`].
pub fn generate_certificates(out: &Path, sans: &[&str]) -> Result<()> {
    let script = crate::shared_dir()
        .join("peers")
        .join("kamailio")
        .join("gen-certs.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(out)
        .args(sans)
        .output()
        .map_err(|source| TestkitError::Spawn {
            what: "gen-certs.sh".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(TestkitError::Failed {
            what: "gen-certs.sh".into(),
            detail: output.status.to_string(),
            tail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Turns on `verify_certificate` and `require_certificate` in the `[server:default]` profile.
fn require_client_certificate(tls_cfg: &Path) -> Result<()> {
    let io = |context: &str| {
        let context = format!("{context} {}", tls_cfg.display());
        move |source| TestkitError::Io { context, source }
    };
    let text = std::fs::read_to_string(tls_cfg).map_err(io("read"))?;
    let mut server = false;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                server = line.starts_with("[server:");
            }
            match line.split_once(" = ") {
                Some((key @ ("verify_certificate" | "require_certificate"), _)) if server => {
                    format!("{key} = yes")
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    std::fs::write(tls_cfg, edited.join("\n") + "\n").map_err(io("write"))
}

/// `kamcmd ul.dump` prints nested `AoR: alice` ... `Address: sip:alice@...` entries.
fn parse_ul_dump(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut aor = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("AoR:") {
            aor = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("Address:")
            && let Some(aor) = &aor
        {
            out.push((aor.clone(), value.trim().to_owned()));
        }
    }
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let io = |context: String| move |source| TestkitError::Io { context, source };
    std::fs::create_dir_all(to).map_err(io(format!("create {}", to.display())))?;
    let entries = std::fs::read_dir(from).map_err(io(format!("read {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("read {}", from.display())))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(io(format!("copy to {}", target.display())))?;
            // shared/ is read-only: make the copy writable.
            if let Ok(meta) = std::fs::metadata(&target) {
                let mut perms = meta.permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                let _ = std::fs::set_permissions(&target, perms);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ul_dump_lists_aor_and_contacts() {
        let text = "{\n\tDomain: location\n\tAoRs: {\n\t\tAoR: alice\n\t\tHashID: 1\n\t\tContacts: {\n\t\t\tContact: {\n\t\t\t\tAddress: sip:alice@127.0.0.1:2000\n\t\t\t\tExpires: 299\n\t\t\t}\n\t\t}\n\t\tAoR: bob\n\t\tContacts: {\n\t\t\tContact: {\n\t\t\t\tAddress: sip:bob@127.0.0.1:3000;transport=tcp\n";
        assert_eq!(
            super::parse_ul_dump(text),
            vec![
                ("alice".to_owned(), "sip:alice@127.0.0.1:2000".to_owned()),
                (
                    "bob".to_owned(),
                    "sip:bob@127.0.0.1:3000;transport=tcp".to_owned()
                ),
            ]
        );
    }
}
