//! The registration's TCP flow against a scripted registrar on loopback: CRLF keepalive pings
//! when idle, and flow recovery (a new REGISTER at once when the registrar drops the flow).

use std::time::Duration;

use homeagent_engine::core::{PhoneEvent, RegistrationState};
use homeagent_engine::{Engine, EngineEvent, PhoneSettings, SinkSpec, SourceSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// Reads up to the end of one message head (REGISTERs have no body); skips leading CRLFs.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).await.expect("request bytes");
        if bytes.is_empty() && (byte[0] == b'\r' || byte[0] == b'\n') {
            continue;
        }
        bytes.push(byte[0]);
        if bytes.ends_with(b"\r\n\r\n") {
            return String::from_utf8(bytes).expect("text request");
        }
    }
}

/// `200 OK` to a REGISTER: its Via, From, To (tagged), Call-ID, CSeq and Contact.
fn ok(request: &str) -> String {
    let mut response = "SIP/2.0 200 OK\r\n".to_owned();
    for line in request.lines() {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => response += &format!("{line}\r\n"),
            "to" => response += &format!("{line};tag=registrar\r\n"),
            "contact" => response += &format!("{line};expires=600\r\n"),
            _ => {}
        }
    }
    response + "Content-Length: 0\r\n\r\n"
}

async fn start_engine(registrar: String, keepalive: Duration) -> Engine {
    let settings = PhoneSettings {
        bind: "127.0.0.1:0".parse().expect("address"),
        rtp_ports: (41000, 41099),
        audio_in: SourceSpec::Silence,
        audio_out: SinkSpec::Null,
        registrar: Some(registrar),
        user: Some("agent01".into()),
        password: Some("secret".into()),
        keepalive: Some(keepalive),
        ..PhoneSettings::default()
    };
    Engine::start(settings).await.expect("engine starts")
}

async fn registered(events: &mut tokio::sync::mpsc::Receiver<EngineEvent>) {
    timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            if let EngineEvent::Phone(PhoneEvent::Registration(RegistrationState::Registered {
                ..
            })) = event
            {
                return;
            }
        }
        panic!("engine stopped");
    })
    .await
    .expect("registered in time");
}

#[tokio::test]
async fn idle_flow_is_pinged_and_a_dropped_flow_registers_again_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let registrar = format!(
        "sip:127.0.0.1:{};transport=tcp",
        listener.local_addr().expect("address").port()
    );
    let engine = start_engine(registrar, Duration::from_millis(300)).await;
    let (_commands, mut events) = engine.into_channels();

    let (mut flow, _) = timeout(WAIT, listener.accept())
        .await
        .expect("connects")
        .expect("accept");
    let register = timeout(WAIT, read_request(&mut flow))
        .await
        .expect("REGISTER");
    assert!(register.starts_with("REGISTER "), "{register}");
    assert!(register.contains("SIP/2.0/TCP"), "{register}");
    flow.write_all(ok(&register).as_bytes())
        .await
        .expect("reply");
    registered(&mut events).await;

    // Idle: a CRLFCRLF ping; our CRLF pong (and stray CRLFs) are no framing error.
    let mut ping = [0u8; 4];
    timeout(Duration::from_secs(2), flow.read_exact(&mut ping))
        .await
        .expect("a ping within the keepalive interval")
        .expect("ping bytes");
    assert_eq!(&ping, b"\r\n\r\n");
    flow.write_all(b"\r\n").await.expect("pong");
    timeout(Duration::from_secs(2), flow.read_exact(&mut ping))
        .await
        .expect("the flow stays up and is pinged again")
        .expect("ping bytes");
    assert_eq!(&ping, b"\r\n\r\n");

    // The registrar drops the flow: a new connection and REGISTER follow at once, not at the
    // refresh 9.5 minutes later.
    drop(flow);
    let (mut flow, _) = timeout(Duration::from_secs(2), listener.accept())
        .await
        .expect("reconnects at once")
        .expect("accept");
    let again = timeout(WAIT, read_request(&mut flow))
        .await
        .expect("REGISTER again");
    assert!(again.starts_with("REGISTER "), "{again}");
    flow.write_all(ok(&again).as_bytes()).await.expect("reply");
    registered(&mut events).await;
}
