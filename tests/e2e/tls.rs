//! SIP over TLS with Kamailio: registration and calls both ways over one verified TLS flow,
//! and certificates refused with an error naming the cause.

use std::time::Duration;

use homeagent_testkit::peers::kamailio::generate_certificates;
use homeagent_testkit::{Kamailio, KamailioOpts, TempDir, require};

use crate::common::{
    Ha, WAIT, alice_calls_the_registered_agent, assert_media_flowed, print_median_call_setup,
    registered_baresip,
};

/// A certificate problem is reported within this long (no retransmission timers).
const FAST: Duration = Duration::from_secs(5);

fn ca_path(kam: &Kamailio) -> String {
    kam.ca()
        .expect("kamailio started WITH_TLS prints its CA")
        .display()
        .to_string()
}

/// Kamailio saw the REGISTER over TLS: the contact it stored says so, `sips:` for a `sips:`
/// account (RFC 5630), else `;transport=tls`.
fn assert_registered_over_tls(kam: &Kamailio, user: &str, sips_account: bool) {
    let contacts = kam.registered_contacts().expect("kamcmd ul.dump");
    let over_tls = |contact: &str| {
        if sips_account {
            contact.starts_with("sips:") && !contact.contains("transport=")
        } else {
            contact.starts_with("sip:") && contact.contains("transport=tls")
        }
    };
    assert!(
        contacts
            .iter()
            .any(|(aor, contact)| aor == user && over_tls(contact)),
        "{contacts:?}"
    );
}

/// A `sips:` registrar: REGISTER, INVITE, ACK, BYE all on one TLS connection to Kamailio,
/// whose certificate is checked against the test CA and the IP address 127.0.0.1.
#[test]
fn registers_and_calls_through_kamailio_over_tls() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let bob = registered_baresip(&kam, "bob", "bobpw");
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    let target = format!("sip:bob@127.0.0.1:{}", kam.udp_port());
    let ca = ca_path(&kam);
    let mut ha = Ha::start(
        &[
            "call",
            &target,
            "--registrar",
            &registrar,
            "--ca-file",
            &ca,
            "--user",
            "alice",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "3",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    ha.event("registered", WAIT);
    assert_registered_over_tls(&kam, "alice", true);
    // RFC 5626 outbound: the device's instance and reg-id reached the location table.
    let dump = kam.location_dump().expect("kamcmd ul.dump");
    assert!(
        dump.contains("<urn:uuid:") && dump.contains("Reg-Id: 1"),
        "{dump}"
    );
    ha.event("established", WAIT);
    bob.wait_established(WAIT)
        .expect("bob answered through kamailio");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["transport"], "tls", "{summary}");
    assert_media_flowed(&summary, "pcmu");
    bob.wait_closed(WAIT)
        .expect("the BYE went through kamailio");
    // WITH_MSGLOG logs "RX <proto> <source> -> <listener>" and the message.
    let log = kam.log();
    assert!(
        log.split("RX ")
            .any(|entry| entry.starts_with("tls ") && entry.contains("\nINVITE sip:bob@")),
        "kamailio did not get the INVITE over TLS"
    );
}

/// An INVITE that Kamailio sends down the registered TLS flow is answered on it.
#[test]
fn kamailio_delivers_calls_over_the_tls_flow() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let registrar = format!("sip:127.0.0.1:{};transport=tls", kam.tls_port());
    let ca = ca_path(&kam);
    let summary = alice_calls_the_registered_agent(&kam, &registrar, &ca, |kam| {
        assert_registered_over_tls(kam, "agent01", false)
    });
    assert_eq!(summary["transport"], "tls", "{summary}");
}

/// Registers with `registrar` (CA file `ca` if any) and expects a fast failure whose reason
/// contains `cause`, then exit status 5.
fn fails_fast(registrar: &str, ca: Option<&str>, cause: &str) {
    let extra: Vec<&str> = ca.map(|ca| vec!["--ca-file", ca]).unwrap_or_default();
    fails_fast_with(registrar, &extra, cause);
}

/// [`fails_fast`] with any extra arguments.
fn fails_fast_with(registrar: &str, extra: &[&str], cause: &str) {
    let mut args = vec![
        "listen",
        "--registrar",
        registrar,
        "--user",
        "alice",
        "--audio-in",
        "silence",
        "--audio-out",
        "null",
    ];
    args.extend_from_slice(extra);
    let mut ha = Ha::start(&args, &[("HOMEAGENT_PASSWORD", "alicepw")]);
    let failed = ha.event("registration_failed", FAST);
    let reason = failed["reason"].as_str().unwrap_or_default();
    eprintln!("registration_failed: {reason}");
    assert!(reason.contains(cause), "{failed}");
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 5, "{summary}");
}

/// Without the test CA, Kamailio's certificate chains to nothing we trust.
#[test]
fn untrusted_certificate_is_refused_with_its_cause() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    fails_fast(&registrar, None, "certificate of \"127.0.0.1\" not trusted");
}

/// A CA that IT installed in the system's certificate store (here: `SSL_CERT_FILE`, which the
/// store honours) is trusted without `--ca-file`.
#[test]
fn a_ca_in_the_system_store_is_trusted() {
    if !require(&["kamailio"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    let ca = ca_path(&kam);
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw"), ("SSL_CERT_FILE", &ca)],
    );
    ha.event("registered", WAIT);
    assert_registered_over_tls(&kam, "alice", true);
    ha.command(r#"{"command":"shutdown"}"#);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
}

/// A certificate from a trusted CA, but for another name than the one we connect to.
#[test]
fn certificate_for_another_host_is_refused_with_its_cause() {
    if !require(&["kamailio", "openssl"]) {
        return;
    }
    let (_certs, cert_dir) = test_certificates("wrong-host-certs", "DNS:wrong.example");
    let kam = kamailio_with_certificates(&cert_dir);
    let registrar = format!("sip:127.0.0.1:{};transport=tls", kam.tls_port());
    let ca = cert_dir.join("ca.crt").display().to_string();
    fails_fast(
        &registrar,
        Some(&ca),
        "certificate not valid for name \"127.0.0.1\"",
    );
}

/// Re-signs `dir/server.key` with `dir`'s CA as a certificate for 127.0.0.1 that expired in 2021
/// (`openssl ca` sets any validity period; `openssl x509 -req` cannot before OpenSSL 3.4).
fn sign_expired_certificate(dir: &std::path::Path) {
    let script = r#"set -euo pipefail
cd "$1"
printf '%s\n' '[ca]' 'default_ca = test' '[test]' 'database = index.txt' 'new_certs_dir = .' \
  'serial = serial' 'default_md = sha256' 'policy = any' '[any]' 'commonName = supplied' \
  '[server]' 'subjectAltName = IP:127.0.0.1' 'extendedKeyUsage = serverAuth' > ca.cnf
: > index.txt
echo 1000 > serial
openssl req -new -key server.key -subj /CN=127.0.0.1 -out server.csr 2>/dev/null
openssl ca -batch -config ca.cnf -keyfile ca.key -cert ca.crt -in server.csr \
  -out server.crt -startdate 20200101000000Z -enddate 20210101000000Z -extensions server \
  2>/dev/null
"#;
    run_openssl_script(script, &[dir.as_os_str()]);
}

/// Runs a bash `script` with `args` as `$1`…; panics when it fails.
fn run_openssl_script(script: &str, args: &[&std::ffi::OsStr]) {
    let status = std::process::Command::new("bash")
        .args(["-c", script, "openssl-script"])
        .args(args)
        .status()
        .expect("bash runs");
    assert!(status.success(), "openssl script failed: {script}");
}

/// A throw-away CA and a server certificate for `san` in `<temp dir>/certs` (the temp dir
/// lives as long as the returned guard).
fn test_certificates(name: &str, san: &str) -> (TempDir, std::path::PathBuf) {
    let certs = TempDir::new(name).expect("temp dir");
    let cert_dir = certs.join("certs");
    generate_certificates(&cert_dir, &[san]).expect("gen-certs.sh");
    (certs, cert_dir)
}

/// Kamailio (TLS) with the certificates of `cert_dir` (see `generate_certificates`).
fn kamailio_with_certificates(cert_dir: &std::path::Path) -> Kamailio {
    Kamailio::start(KamailioOpts {
        cert_dir: Some(cert_dir.to_owned()),
        ..KamailioOpts::default()
    })
    .expect("kamailio starts")
}

/// A certificate for the right address from a trusted CA, but out of date.
#[test]
fn expired_certificate_is_refused_with_its_cause() {
    if !require(&["kamailio", "openssl"]) {
        return;
    }
    let (_certs, cert_dir) = test_certificates("expired-certs", "IP:127.0.0.1");
    sign_expired_certificate(&cert_dir);
    let kam = kamailio_with_certificates(&cert_dir);
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    let ca = cert_dir.join("ca.crt").display().to_string();
    fails_fast(
        &registrar,
        Some(&ca),
        "certificate of \"127.0.0.1\" expired",
    );
}

/// Writes `dir/crl.pem`, the CA's revocation list, revoking `dir/server.crt` first when
/// `revoke`.
fn write_crl(dir: &std::path::Path, revoke: bool) {
    let script = r#"set -euo pipefail
cd "$1"
printf '%s\n' '[ca]' 'default_ca = test' '[test]' 'database = index.txt' \
  'crlnumber = crlnumber' 'default_md = sha256' 'default_crl_days = 30' > crl.cnf
[ -f index.txt ] || : > index.txt
[ -f crlnumber ] || echo 1000 > crlnumber
if [ "$2" = revoke ]; then
  openssl ca -batch -config crl.cnf -keyfile ca.key -cert ca.crt -revoke server.crt 2>/dev/null
fi
openssl ca -batch -config crl.cnf -keyfile ca.key -cert ca.crt -gencrl -out crl.pem 2>/dev/null
"#;
    let mode = if revoke { "revoke" } else { "keep" };
    run_openssl_script(script, &[dir.as_os_str(), mode.as_ref()]);
}

/// With the CA's revocation list (`--crl-file`), a revoked server certificate is refused with
/// its cause; the same CA's list without it lets the agent register.
#[test]
fn revoked_certificate_is_refused_with_its_cause() {
    if !require(&["kamailio", "openssl"]) {
        return;
    }
    let (_certs, cert_dir) = test_certificates("revoked-certs", "IP:127.0.0.1");
    let kam = kamailio_with_certificates(&cert_dir);
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    let ca = cert_dir.join("ca.crt").display().to_string();
    let crl = cert_dir.join("crl.pem").display().to_string();

    write_crl(&cert_dir, false);
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--ca-file",
            &ca,
            "--crl-file",
            &crl,
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    ha.event("registered", WAIT);
    ha.command(r#"{"command":"shutdown"}"#);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");

    write_crl(&cert_dir, true);
    fails_fast_with(
        &registrar,
        &["--ca-file", &ca, "--crl-file", &crl],
        "certificate of \"127.0.0.1\" revoked",
    );
}

/// Figure: call set-up time through Kamailio (command written to the phone's stdin →
/// `established` printed, with baresip answering at once), median of 20 calls over one
/// registered flow, TLS against UDP on the same machine.
#[test]
fn call_setup_time_over_tls_and_udp() {
    if !require(&["kamailio", "baresip", "stdbuf"]) {
        return;
    }
    let kam = Kamailio::start(KamailioOpts::default()).expect("kamailio starts");
    let bob = registered_baresip(&kam, "bob", "bobpw");
    let ca = ca_path(&kam);
    let target = format!("sip:bob@127.0.0.1:{}", kam.udp_port());
    for (name, registrar) in [
        ("tls", format!("sips:127.0.0.1:{}", kam.tls_port())),
        ("udp", kam_udp_registrar(&kam)),
    ] {
        let ha = Ha::start(
            &[
                "listen",
                "--registrar",
                &registrar,
                "--ca-file",
                &ca,
                "--user",
                "alice",
                "--audio-in",
                "silence",
                "--audio-out",
                "null",
            ],
            &[("HOMEAGENT_PASSWORD", "alicepw")],
        );
        ha.event("registered", WAIT);
        print_median_call_setup(ha, &target, name);
    }
    drop(bob);
}

fn kam_udp_registrar(kam: &Kamailio) -> String {
    format!("sip:{}", kam.addr())
}

/// Signs a client certificate for `alice` with `dir`'s CA: `dir/client.crt`, `dir/client.key`.
fn sign_client_certificate(dir: &std::path::Path) {
    let script = r#"set -euo pipefail
cd "$1"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout client.key -out client.csr -subj /CN=alice 2>/dev/null
printf '%s\n' 'basicConstraints=CA:FALSE' 'extendedKeyUsage=clientAuth' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out client.crt -days 30 -extfile client.ext 2>/dev/null
"#;
    let status = std::process::Command::new("bash")
        .args(["-c", script, "sign-client"])
        .arg(dir)
        .status()
        .expect("bash runs");
    assert!(status.success(), "openssl x509 -req failed");
}

/// Mutual TLS: a Kamailio that demands a client certificate refuses us without one (the
/// cause is named) and registers us with the one its CA signed.
#[test]
fn client_certificate_is_presented_when_demanded() {
    if !require(&["kamailio", "openssl"]) {
        return;
    }
    let (_certs, cert_dir) = test_certificates("mutual-tls-certs", "IP:127.0.0.1");
    sign_client_certificate(&cert_dir);
    let kam = Kamailio::start(KamailioOpts {
        cert_dir: Some(cert_dir.clone()),
        require_client_certificate: true,
        ..KamailioOpts::default()
    })
    .expect("kamailio starts");
    let registrar = format!("sips:127.0.0.1:{}", kam.tls_port());
    let ca = cert_dir.join("ca.crt").display().to_string();
    fails_fast(&registrar, Some(&ca), "refused");

    let cert = cert_dir.join("client.crt").display().to_string();
    let key = cert_dir.join("client.key").display().to_string();
    let mut ha = Ha::start(
        &[
            "listen",
            "--registrar",
            &registrar,
            "--ca-file",
            &ca,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--user",
            "alice",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
        &[("HOMEAGENT_PASSWORD", "alicepw")],
    );
    ha.event("registered", WAIT);
    assert_registered_over_tls(&kam, "alice", true);
    ha.command(r#"{"command":"shutdown"}"#);
    let (code, summary) = ha.finish(WAIT);
    assert_eq!(code, 0, "{summary}");
}
