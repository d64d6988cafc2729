//! TURN through coturn where direct UDP between the agents is impossible: each agent lives in a
//! network namespace of its own, with a veth to the host and no route to the other one. The
//! host runs a registrar/proxy (`tests/peers/proxy/`) and coturn on `GATEWAY_A`, which both
//! namespaces reach (B through a host route). ICE must pick a pair through the relay; the
//! speech is scored. The agents reach coturn over UDP, TCP (`?transport=tcp`) or TLS (`turns:`);
//! for TCP and TLS coturn has no UDP listener at all (`--no-udp`) and the agents may send UDP to
//! the SIP port only, so the call goes relay to relay, each agent's media over its connection.

use std::process::Command;
use std::time::Duration;

use homeagent_testkit::peers::homeagent::{HomeagentProcess, homeagent_bin};
use homeagent_testkit::{Mode, Process, TempDir, require, score_pesq, shared_dir, wav};
use serde_json::Value;

use crate::common::WAIT;

/// The host side of A's veth: the registrar and coturn listen here.
const GATEWAY_A: &str = "10.77.1.1";
const AGENT_A: &str = "10.77.1.2";
const GATEWAY_B: &str = "10.77.2.1";
const AGENT_B: &str = "10.77.2.2";
/// A's address after it moves (same network).
const AGENT_A_MOVED: &str = "10.77.1.3";
const SIP_PORT: u16 = 5070;
const TURN_PORT: u16 = 3478;
const TURNS_PORT: u16 = 5349;
const TURN_USER: &str = "agent";
const TURN_PASSWORD: &str = "relay-secret";
const SPEECH: Duration = Duration::from_secs(8);

/// The tests share addresses, ports and namespace names: one at a time.
static NETWORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How the agents reach coturn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnVia {
    Udp,
    Tcp,
    Tls,
}

impl TurnVia {
    fn uri(self) -> String {
        match self {
            TurnVia::Udp => format!("turn:{GATEWAY_A}:{TURN_PORT}"),
            TurnVia::Tcp => format!("turn:{GATEWAY_A}:{TURN_PORT}?transport=tcp"),
            TurnVia::Tls => format!("turns:{GATEWAY_A}:{TURNS_PORT}"),
        }
    }
}

/// The namespace tests one at a time (they share addresses, ports and namespace names; taken
/// before the probe too, which makes a namespace of a fixed name); `None` when a tool is
/// missing or namespaces cannot be made here (outside CI).
fn network_lab(tools: &[&str]) -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = NETWORK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (require(tools) && namespaces_available()).then_some(guard)
}

/// Runs `ip ARGS`, panicking with its error output on failure.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two namespaces, each with a veth to the host; deleted (with their veths) on drop.
struct Namespaces {
    a: String,
    b: String,
    /// The host ends of the veths.
    veths: [String; 2],
}

impl Namespaces {
    fn create() -> Namespaces {
        let tag = std::process::id() % 100_000;
        let namespaces = Namespaces {
            a: format!("ha-turn-a-{tag}"),
            b: format!("ha-turn-b-{tag}"),
            veths: [format!("hta{tag}"), format!("htb{tag}")],
        };
        for (ns, host_ip, agent_ip, veth) in [
            (&namespaces.a, GATEWAY_A, AGENT_A, &namespaces.veths[0]),
            (&namespaces.b, GATEWAY_B, AGENT_B, &namespaces.veths[1]),
        ] {
            let inside = format!("{veth}n");
            ip(&["netns", "add", ns]);
            ip(&["link", "add", veth, "type", "veth", "peer", "name", &inside]);
            ip(&["link", "set", &inside, "netns", ns]);
            ip(&["addr", "add", &format!("{host_ip}/24"), "dev", veth]);
            ip(&["link", "set", veth, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{agent_ip}/24"),
                "dev",
                &inside,
            ]);
            ip(&["-n", ns, "link", "set", &inside, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // B reaches the servers on GATEWAY_A (a host address) through its own gateway; no route
        // leads from one agent to the other.
        ip(&[
            "-n",
            &namespaces.b,
            "route",
            "add",
            &format!("{GATEWAY_A}/32"),
            "via",
            GATEWAY_B,
        ]);
        namespaces
    }
}

impl Namespaces {
    /// Both agents may send UDP to the SIP port only (a home network blocking outgoing UDP):
    /// the TURN server is reachable over TCP/TLS alone, and its relay ports not at all.
    fn block_udp_but_sip(&self) {
        let sip = SIP_PORT.to_string();
        for ns in [&self.a, &self.b] {
            ip(&[
                "-n", ns, "rule", "add", "pref", "100", "ipproto", "udp", "dport", &sip, "lookup",
                "main",
            ]);
            ip(&[
                "-n", ns, "rule", "add", "pref", "101", "ipproto", "udp", "prohibit",
            ]);
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            // Deleting the namespace deletes the veth pair with it.
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        // The veths go with their namespace, a moment later: the next test makes them again.
        for _ in 0..50 {
            let gone = self.veths.iter().all(|veth| {
                !Command::new("ip")
                    .args(["link", "show", veth])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether network namespaces can be made here (root); in CI they must.
fn namespaces_available() -> bool {
    let probe = format!("ha-probe-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: cannot create network namespaces (root needed)"
    );
    eprintln!("SKIP: cannot create network namespaces (not root)");
    false
}

fn kamailio_proxy(dir: &TempDir) -> Process {
    let listen = format!("{GATEWAY_A}:{SIP_PORT}");
    let config = std::fs::read_to_string(
        homeagent_testkit::repo_dir().join("tests/peers/proxy/kamailio.cfg"),
    )
    .expect("proxy config")
    .replace("KAM_LISTEN", &listen);
    let path = dir.join("kamailio.cfg");
    std::fs::write(&path, config).expect("config written");
    let mut command = Command::new("kamailio");
    command
        .args(["-DD", "-E", "-f"])
        .arg(&path)
        .arg("-Y")
        .arg(dir.path())
        .arg("-w")
        .arg(dir.path());
    let process = Process::spawn("kamailio-proxy", command, &dir.join("kamailio.log"), false)
        .expect("kamailio starts");
    // Its UDP socket is up (a REGISTER sent a moment early is retransmitted anyway).
    process
        .wait_log("SO_RCVBUF is finally", WAIT)
        .expect("kamailio listening");
    process
}

/// coturn on `GATEWAY_A` with only the listener `via` needs (over TLS with a certificate of
/// `certs`' CA for `GATEWAY_A`).
fn coturn(dir: &TempDir, via: TurnVia, certs: &std::path::Path) -> Process {
    let mut command = Command::new("turnserver");
    command
        .args(["-n", "-v", "--no-cli", "--no-dtls", "--lt-cred-mech"])
        .args(["--realm", "homeagent.test", "--user"])
        .arg(format!("{TURN_USER}:{TURN_PASSWORD}"))
        .args(["--listening-ip", GATEWAY_A, "--relay-ip", GATEWAY_A])
        .args(["--listening-port", &TURN_PORT.to_string()])
        .args(["--tls-listening-port", &TURNS_PORT.to_string()])
        .args(["--min-port", "49160", "--max-port", "49200", "-l", "stdout"]);
    match via {
        TurnVia::Udp => command.arg("--no-tls"),
        TurnVia::Tcp => command.args(["--no-udp", "--no-tls"]),
        TurnVia::Tls => command
            .args(["--no-udp", "--no-tcp", "--cert"])
            .arg(certs.join("server.crt"))
            .arg("--pkey")
            .arg(certs.join("server.key")),
    };
    let process =
        Process::spawn("coturn", command, &dir.join("coturn.log"), false).expect("coturn starts");
    std::thread::sleep(Duration::from_millis(500));
    process
}

/// `homeagent ARGS` inside the namespace `ns`, bound to `addr`, registered as `user`.
/// `turn`: the TURN server's URI, `None` for none.
fn agent_in(
    ns: &str,
    addr: &str,
    user: &str,
    turn: Option<&str>,
    args: &[&str],
) -> HomeagentProcess {
    let program = homeagent_bin().expect("homeagent built");
    let registrar = format!("sip:{GATEWAY_A}:{SIP_PORT}");
    let bind = format!("{addr}:5060");
    let mut all = vec!["netns", "exec", ns, program.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    all.extend([
        "--registrar",
        &registrar,
        "--user",
        user,
        "--bind",
        &bind,
        "--rtp-ports",
        "40000-40019",
        "--ice",
        "on",
        "--turn-user",
        TURN_USER,
        "--json",
        "--log-level",
        "info",
    ]);
    if let Some(turn) = turn {
        all.extend(["--turn", turn]);
    }
    let agent = HomeagentProcess::spawn_program(
        std::path::Path::new("ip"),
        &all,
        &[
            // This registrar does no authentication.
            ("HOMEAGENT_PASSWORD", "unused"),
            ("HOMEAGENT_TURN_PASSWORD", TURN_PASSWORD),
        ],
    )
    .expect("homeagent starts in its namespace");
    agent
        .wait_event(|e| e["event"] == "registered", WAIT)
        .unwrap_or_else(|e| panic!("{user} not registered: {e}: {:?}", agent.events()));
    agent
}

/// The most packets coturn sent a client over one session (its `usage: … sp=N` lines; with
/// `--no-udp`, every session is a TCP or TLS connection).
fn most_sent_over_a_connection(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains(": usage:"))
        .filter_map(|line| {
            let sent = line
                .split(", ")
                .find_map(|field| field.strip_prefix("sp="))?;
            sent.trim().parse().ok()
        })
        .max()
        .unwrap_or(0)
}

fn summary_of(agent: &HomeagentProcess) -> Value {
    agent
        .events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {:?}", agent.events()))
}

#[test]
fn a_call_between_namespaces_without_a_route_goes_through_the_turn_relay() {
    call_through_the_relay(TurnVia::Udp);
}

#[test]
fn over_tcp_where_outgoing_udp_is_blocked_the_call_goes_relay_to_relay() {
    call_through_the_relay(TurnVia::Tcp);
}

#[test]
fn over_tls_with_the_test_ca_where_outgoing_udp_is_blocked_too() {
    call_through_the_relay(TurnVia::Tls);
}

/// A calls B through coturn reached `via`; the speech B hears is scored.
fn call_through_the_relay(via: TurnVia) {
    let Some(_network) = network_lab(&["kamailio", "turnserver", "ip"]) else {
        return;
    };
    let dir = TempDir::new("turn-netns").expect("temp dir");
    let certs = dir.join("certs");
    let ca_file = certs.join("ca.crt");
    let turn = via.uri();
    let mut options = Vec::new();
    if via == TurnVia::Tls {
        homeagent_testkit::peers::kamailio::generate_certificates(
            &certs,
            &[&format!("IP:{GATEWAY_A}")],
        )
        .expect("test CA and coturn certificate");
        options.extend(["--ca-file", ca_file.to_str().expect("utf-8 path")]);
    }
    let namespaces = Namespaces::create();
    if via != TurnVia::Udp {
        namespaces.block_udp_but_sip();
    }
    // No direct path: A has no route to B at all.
    let direct = Command::new("ip")
        .args(["-n", &namespaces.a, "route", "get", AGENT_B])
        .output()
        .expect("ip runs");
    assert!(!direct.status.success(), "A has a route to B");
    let _kamailio = kamailio_proxy(&dir);
    let coturn = coturn(&dir, via, &certs);

    let speech = dir.join("speech.wav");
    wav::clip(
        &shared_dir().join("audio").join("speech48k.wav"),
        &speech,
        SPEECH,
        Duration::from_millis(500),
    )
    .expect("speech clip");
    // ICE nominates a relay-only pair after about 2 s: the speech starts after that.
    let played = dir.join("played.wav");
    wav::with_lead(&speech, &played, Duration::from_secs(4)).expect("speech with a lead");
    let heard = dir.join("heard.wav");
    let bob_args = [
        "listen",
        "--calls",
        "1",
        "--audio-in",
        "silence",
        "--audio-out",
        heard.to_str().expect("utf-8 path"),
    ];
    let mut bob = agent_in(
        &namespaces.b,
        AGENT_B,
        "bob",
        Some(&turn),
        &[&bob_args[..], &options].concat(),
    );
    let target = format!("sip:bob@{GATEWAY_A}:{SIP_PORT}");
    // Alice calls as soon as she is registered: her first media ports waited for their relays
    // at start, so her offer carries a relay candidate (the relay to relay path needs it).
    let alice_args = [
        "call",
        &target,
        "--audio-in",
        played.to_str().expect("utf-8 path"),
        "--audio-out",
        "null",
    ];
    let mut alice = agent_in(
        &namespaces.a,
        AGENT_A,
        "alice",
        Some(&turn),
        &[&alice_args[..], &options].concat(),
    );
    let ice = alice
        .wait_event(|e| e["event"] == "ice_connected", WAIT)
        .unwrap_or_else(|e| panic!("no ICE connection: {e}: {:?}", alice.events()));
    let pair = format!("{} {}", ice["local"], ice["remote"]);
    assert!(pair.contains("relay"), "not through the relay: {ice}");
    if via != TurnVia::Udp {
        assert!(
            ice["local"]
                .as_str()
                .is_some_and(|l| l.starts_with("relay "))
                && ice["remote"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("relay ")),
            "relay to relay without UDP: {ice}"
        );
    }
    assert!(pair.contains(GATEWAY_A), "{ice}");
    let status = alice
        .wait_exit(SPEECH + WAIT + Duration::from_secs(4))
        .expect("alice hangs up");
    assert!(status.success(), "{:?}", alice.events());
    bob.wait_exit(WAIT).expect("bob ends after one call");
    let summary = summary_of(&alice);
    assert!(
        summary["media_encryption"]
            .as_str()
            .is_some_and(|e| e.starts_with("dtls-srtp")),
        "{summary}"
    );
    assert!(
        summary["packets_sent"].as_u64().unwrap_or(0) > 300,
        "{summary}"
    );
    if via != TurnVia::Udp {
        // The sessions closed with the agents: coturn tells what went over their connections.
        std::thread::sleep(Duration::from_millis(300));
        drop(coturn);
        let log = std::fs::read_to_string(dir.join("coturn.log")).expect("coturn log");
        let tls = log.contains("method=TLSv1");
        assert_eq!(tls, via == TurnVia::Tls, "TLS sessions in coturn's log");
        let sent = most_sent_over_a_connection(&log);
        assert!(
            sent > 300,
            "relayed packets over the busiest connection: {sent}"
        );
    }
    let score = score_pesq(&speech, &heard, Mode::Wb).expect("pesq");
    eprintln!(
        "A -> B through the TURN relay reached over {via:?} ({pair}): PESQ-WB {:.2}",
        score.pesq
    );
    assert!(score.pesq >= 3.0, "{:?}", score.json);
}

/// The laptop changes address mid-call (bound to every interface, as by default): the agent
/// notices within seconds, registers its new Contact and restarts ICE; the call goes on over a
/// new pair (a second `ice_connected`) and media keeps flowing both ways.
#[test]
fn a_new_address_mid_call_restarts_ice_and_the_call_goes_on() {
    let Some(_network) = network_lab(&["kamailio", "turnserver", "ip"]) else {
        return;
    };
    let dir = TempDir::new("turn-move").expect("temp dir");
    let namespaces = Namespaces::create();
    let _kamailio = kamailio_proxy(&dir);
    let _coturn = coturn(&dir, TurnVia::Udp, &dir.join("certs"));
    let turn = TurnVia::Udp.uri();
    let mut bob = agent_in(
        &namespaces.b,
        AGENT_B,
        "bob",
        Some(&turn),
        &[
            "listen",
            "--calls",
            "1",
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
        ],
    );
    let target = format!("sip:bob@{GATEWAY_A}:{SIP_PORT}");
    let mut alice = agent_in(
        &namespaces.a,
        "0.0.0.0",
        "alice",
        Some(&turn),
        &[
            "call",
            &target,
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
            "--hangup-after",
            "25",
        ],
    );
    let first = alice
        .wait_event(|e| e["event"] == "ice_connected", WAIT)
        .unwrap_or_else(|e| panic!("no ICE connection: {e}: {:?}", alice.events()));
    assert!(
        first["local"]
            .as_str()
            .is_some_and(|l| l.contains(AGENT_A) || l.starts_with("relay ")),
        "{first}"
    );
    let mark = alice.process().mark();
    // The old address goes, then a new one comes (deleting a primary address would take a
    // secondary of the same subnet with it).
    let inside = format!("{}n", namespaces.veths[0]);
    for (action, address) in [("del", AGENT_A), ("add", AGENT_A_MOVED)] {
        let address = format!("{address}/24");
        ip(&[
            "-n",
            &namespaces.a,
            "addr",
            action,
            &address,
            "dev",
            &inside,
        ]);
    }
    let (_, registered) = alice
        .wait_event_from(mark, |e| e["event"] == "registered", WAIT)
        .unwrap_or_else(|e| {
            panic!(
                "no new registration: {e}: {:?}\n{}",
                alice.events(),
                alice.process().tail(40)
            )
        });
    let (_, second) = alice
        .wait_event_from(mark, |e| e["event"] == "ice_connected", WAIT + WAIT)
        .unwrap_or_else(|e| panic!("no ICE restart: {e}: {:?}", alice.events()));
    eprintln!("after the move: {registered} then {second}");
    let status = alice.wait_exit(WAIT + WAIT).expect("alice hangs up");
    assert!(status.success(), "{:?}", alice.events());
    bob.wait_exit(WAIT).expect("bob ends after one call");
    let summary = summary_of(&alice);
    // 25 s at 50 packets/s; the move comes 2-3 s in and costs up to 5 s (noticing it) plus the
    // re-INVITE and ICE: more than 12 s of audio means media came back over the new pair.
    for field in ["packets_sent", "packets_received"] {
        assert!(
            summary[field].as_u64().unwrap_or(0) > 600,
            "{field}: {summary}"
        );
    }
    let bob_summary = summary_of(&bob);
    assert!(
        bob_summary["packets_received"].as_u64().unwrap_or(0) > 600,
        "{bob_summary}"
    );
}

/// Without a relay there is no path at all: ICE fails, the agent says why and hangs up (a
/// silent call would leave the customer waiting), and the call ends for both.
#[test]
fn without_any_path_ice_fails_and_the_call_is_hung_up() {
    let Some(_network) = network_lab(&["kamailio", "ip"]) else {
        return;
    };
    let dir = TempDir::new("turn-none").expect("temp dir");
    let namespaces = Namespaces::create();
    let _kamailio = kamailio_proxy(&dir);
    let mut bob = agent_in(
        &namespaces.b,
        AGENT_B,
        "bob",
        None,
        &[
            "listen",
            "--calls",
            "1",
            "--audio-in",
            "silence",
            "--audio-out",
            "null",
        ],
    );
    let target = format!("sip:bob@{GATEWAY_A}:{SIP_PORT}");
    let started = std::time::Instant::now();
    let mut alice = agent_in(
        &namespaces.a,
        AGENT_A,
        "alice",
        None,
        &[
            "call",
            &target,
            "--audio-in",
            "tone:440",
            "--audio-out",
            "null",
        ],
    );
    alice
        .wait_exit(Duration::from_secs(90))
        .expect("the call ends by itself");
    eprintln!(
        "ICE failure to hang-up: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    bob.wait_exit(WAIT).expect("bob sees the call end");
    // Both sides fail at about the same time: whichever notices first hangs up.
    let events: Vec<Value> = alice.events().into_iter().chain(bob.events()).collect();
    assert!(
        !events.iter().any(|e| e["event"] == "ice_connected"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("ICE/DTLS"))),
        "{events:?}"
    );
    let summary = summary_of(&alice);
    assert!(
        summary["reason"] == "local_hangup" || summary["reason"] == "remote_hangup",
        "{summary}"
    );
}
