//! The registration's WebSocket flow (RFC 7118) against a scripted registrar on loopback: the
//! `sip` subprotocol, a `.invalid` Via and Contact, WebSocket pings when idle, and flow recovery
//! (a new connection and REGISTER at once when the registrar drops the WebSocket).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use homeagent_engine::core::{PhoneEvent, RegistrationState};
use homeagent_engine::{Engine, EngineEvent, PhoneSettings, SinkSpec, SourceSpec};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(5);

/// Accepts one WebSocket that asks for the `sip` subprotocol.
async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("connects")
        .expect("accept");
    // The callback's signature is tungstenite's (its error is a whole HTTP response).
    #[allow(clippy::result_large_err)]
    let answer = |request: &Request, mut response: Response| {
        let asked = request.headers().get("Sec-WebSocket-Protocol");
        assert_eq!(asked.and_then(|v| v.to_str().ok()), Some("sip"));
        let value = HeaderValue::from_static("sip");
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(stream, answer)
        .await
        .expect("upgrade")
}

/// The next SIP message, answering pings meanwhile; `None` for a ping when `pings` is set.
async fn next_message(socket: &mut WebSocketStream<TcpStream>, pings: bool) -> Option<String> {
    loop {
        match timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Ping(_))) if pings => return None,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
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
async fn idle_websocket_is_pinged_and_a_dropped_one_registers_again_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let port = listener.local_addr().expect("address").port();
    let settings = PhoneSettings {
        bind: "127.0.0.1:0".parse().expect("address"),
        rtp_ports: (41100, 41199),
        audio_in: SourceSpec::Silence,
        audio_out: SinkSpec::Null,
        registrar: Some("sip:example.com".into()),
        ws_url: Some(format!("ws://127.0.0.1:{port}/sip")),
        user: Some("agent01".into()),
        password: Some("secret".into()),
        keepalive: Some(Duration::from_millis(300)),
        ..PhoneSettings::default()
    };
    let engine = Engine::start(settings).await.expect("engine starts");
    let (_commands, mut events) = engine.into_channels();

    let mut socket = accept(&listener).await;
    let register = next_message(&mut socket, false).await.expect("REGISTER");
    assert!(
        register.starts_with("REGISTER sip:example.com SIP/2.0\r\n"),
        "{register}"
    );
    let via = register
        .lines()
        .find(|l| l.starts_with("Via:"))
        .expect("Via");
    assert!(
        via.starts_with("Via: SIP/2.0/WS ") && via.contains(".invalid;"),
        "{via}"
    );
    let contact = register
        .lines()
        .find(|l| l.starts_with("Contact:"))
        .expect("Contact");
    assert!(contact.contains(".invalid;transport=ws>"), "{contact}");
    socket
        .send(Message::text(ok(&register)))
        .await
        .expect("reply");
    registered(&mut events).await;

    // Idle: a WebSocket ping, answered (by the library), and another one later.
    for _ in 0..2 {
        let ping = timeout(Duration::from_secs(2), next_message(&mut socket, true)).await;
        assert_eq!(ping.expect("a ping within the keepalive interval"), None);
    }

    // The registrar drops the WebSocket: a new one and a REGISTER follow at once, not at the
    // refresh 9.5 minutes later.
    drop(socket);
    let mut socket = timeout(Duration::from_secs(2), accept(&listener))
        .await
        .expect("reconnects at once");
    let again = next_message(&mut socket, false)
        .await
        .expect("REGISTER again");
    assert!(again.starts_with("REGISTER "), "{again}");
    socket.send(Message::text(ok(&again))).await.expect("reply");
    registered(&mut events).await;
}
