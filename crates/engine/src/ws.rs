//! SIP over WebSocket, client side (RFC 7118): the `sip` subprotocol, one SIP message per
//! WebSocket message (text when it is UTF-8, binary otherwise), WebSocket pings as keepalive.
//! The connection is a flow like a TCP/TLS one: reused for everything, reported when it ends.

use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use homeagent_sip::transaction::Peer;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Frame};

use crate::transport::{CONNECT_TIMEOUT, FlowId, MAX_STREAM_MESSAGE, PONG_TIMEOUT, Received};

/// A `ws://` or `wss://` URL, split into what the connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    pub(crate) secure: bool,
    /// Host name or IP address (an IPv6 address without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, at least `/`.
    pub(crate) path: String,
}

impl WsUrl {
    /// Parses `ws[s]://HOST[:PORT][/PATH]` (default ports 80 and 443).
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected ws://HOST[:PORT]/ or wss://HOST[:PORT]/")?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err("the scheme must be ws or wss"),
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err("user information is not allowed in the URL");
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or("unclosed IPv6 address")?;
                match after {
                    "" => (host, None),
                    port => (host, Some(port.strip_prefix(':').ok_or("bad port")?)),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err("no host");
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or("bad port")?,
            None if secure => 443,
            None => 80,
        };
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            path,
        })
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// Opens the WebSocket on an established TCP (or TLS) `stream` and runs it until it ends:
/// a failed upgrade is reported as `Received::ConnectFailed`, the end as `Received::Closed`.
#[allow(clippy::too_many_arguments)] // one flow's identity, its queue and its settings
pub(crate) async fn run<S>(
    stream: S,
    url: &WsUrl,
    peer: Peer,
    flow: FlowId,
    received: mpsc::Sender<Received>,
    outgoing: mpsc::Receiver<Vec<u8>>,
    keepalive: Option<Duration>,
    tls_name: Option<&ServerName<'static>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |reason: String| Received::ConnectFailed {
        to: peer,
        flow,
        reason,
    };
    let mut request = match url.to_string().into_client_request() {
        Ok(request) => request,
        Err(error) => {
            let _ = received.send(failed(format!("WebSocket: {error}"))).await;
            return;
        }
    };
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_STREAM_MESSAGE))
        .max_frame_size(Some(MAX_STREAM_MESSAGE));
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    let socket = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((socket, _response))) => socket,
        Ok(Err(error)) => {
            let _ = received.send(failed(describe(&error, tls_name))).await;
            return;
        }
        Err(_) => {
            let reason = "WebSocket: the upgrade timed out".to_owned();
            let _ = received.send(failed(reason)).await;
            return;
        }
    };
    let reason = exchange(socket, peer, &received, outgoing, keepalive, tls_name).await;
    let _ = received.send(Received::Closed { peer, flow, reason }).await;
}

/// Carries SIP messages both ways until the WebSocket ends; returns why it ended.
async fn exchange<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    from: Peer,
    received: &mpsc::Sender<Received>,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    keepalive: Option<Duration>,
    tls_name: Option<&ServerName<'static>>,
) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut writer, mut reader) = socket.split();
    let mut ping_sent: Option<tokio::time::Instant> = None;
    loop {
        let idle = async {
            match keepalive {
                Some(interval) if ping_sent.is_none() => tokio::time::sleep(interval).await,
                _ => std::future::pending().await,
            }
        };
        let pong_overdue = async {
            match ping_sent {
                Some(at) => tokio::time::sleep_until(at + PONG_TIMEOUT).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = reader.next() => match frame {
                None => return "closed by the peer".to_owned(),
                Some(Err(error)) => return describe(&error, tls_name),
                Some(Ok(frame)) => {
                    let bytes = match frame {
                        Frame::Text(text) => Vec::from(text.as_str()),
                        Frame::Binary(bytes) => bytes.to_vec(),
                        Frame::Pong(_) => {
                            ping_sent = None;
                            continue;
                        }
                        Frame::Close(_) => return "closed by the peer".to_owned(),
                        // Pings are answered by the library on the next write or flush.
                        Frame::Ping(_) => {
                            if let Err(error) = writer.flush().await {
                                return describe(&error, tls_name);
                            }
                            continue;
                        }
                        Frame::Frame(_) => continue,
                    };
                    // A CRLF keepalive inside a message carries nothing for the phone.
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    // One SIP message per WebSocket message: it is framed like a datagram.
                    if received.send(Received::Datagram { from, bytes }).await.is_err() {
                        return "engine stopped".to_owned();
                    }
                }
            },
            bytes = outgoing.recv() => {
                let Some(bytes) = bytes else {
                    let _ = writer.close().await;
                    return "no longer used".to_owned();
                };
                let frame = match String::from_utf8(bytes) {
                    Ok(text) => Frame::text(text),
                    Err(bytes) => Frame::binary(bytes.into_bytes()),
                };
                if let Err(error) = writer.send(frame).await {
                    return describe(&error, tls_name);
                }
            }
            () = idle => {
                if let Err(error) = writer.send(Frame::Ping(Vec::new().into())).await {
                    return describe(&error, tls_name);
                }
                ping_sent = Some(tokio::time::Instant::now());
            }
            () = pong_overdue => return "keepalive ping not answered".to_owned(),
        }
    }
}

/// A WebSocket failure as one line naming the cause (TLS causes as the TLS transport names
/// them).
fn describe(error: &tungstenite::Error, tls_name: Option<&ServerName<'static>>) -> String {
    match error {
        tungstenite::Error::Io(io) => match tls_name {
            Some(name) => crate::tls::describe_failure(io, name),
            None => io.to_string(),
        },
        tungstenite::Error::Http(response) => format!(
            "WebSocket: the server refused the upgrade (HTTP {})",
            response.status()
        ),
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        ) => "WebSocket: the server does not speak the sip subprotocol".to_owned(),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "closed by the peer".to_owned()
        }
        other => format!("WebSocket: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transports;
    use homeagent_sip::transaction::Transport;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    const OPTIONS: &str = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    const OK: &str = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

    /// A WebSocket server on loopback that answers the upgrade with `subprotocol`, then
    /// returns the first message it gets and sends `replies`, then closes.
    async fn server(
        subprotocol: Option<&'static str>,
        replies: Vec<Frame>,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<Option<(Option<String>, Frame)>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut asked = None;
            // The callback's signature is tungstenite's (its error is a whole HTTP response).
            #[allow(clippy::result_large_err)]
            let answer = |request: &Request, mut response: Response| {
                asked = request
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if let Some(protocol) = subprotocol {
                    let value = HeaderValue::from_static(protocol);
                    response
                        .headers_mut()
                        .insert("Sec-WebSocket-Protocol", value);
                }
                Ok(response)
            };
            let mut socket = tokio_tungstenite::accept_hdr_async(stream, answer)
                .await
                .ok()?;
            let first = socket.next().await?.ok()?;
            for reply in replies {
                socket.send(reply).await.ok()?;
            }
            socket.close(None).await.ok()?;
            Some((asked, first))
        });
        (addr, task)
    }

    async fn transports() -> (Transports, mpsc::Receiver<Received>) {
        let (sender, received) = mpsc::channel(16);
        let tls = crate::tls::client_config(&crate::TlsSettings::default()).unwrap();
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let transports = Transports::bind(bind, tls, None, sender).await.unwrap();
        (transports, received)
    }

    async fn next(received: &mut mpsc::Receiver<Received>) -> Received {
        tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("something arrives")
            .expect("the transports are alive")
    }

    #[tokio::test]
    async fn one_sip_message_per_websocket_message_both_ways() {
        let replies = vec![
            Frame::binary(b"\xff\xfe not SIP".to_vec()),
            Frame::text("\r\n\r\n"),
            Frame::text(OK),
        ];
        let (addr, server) = server(Some("sip"), replies).await;
        let (mut transports, mut received) = transports().await;
        let to = Peer {
            addr,
            transport: Transport::Ws,
        };
        transports
            .send(to, OPTIONS.as_bytes().to_vec())
            .await
            .unwrap();
        // Bad bytes are passed on as one message (the phone drops what does not parse); the
        // CRLF keepalive is not.
        for expected in [&b"\xff\xfe not SIP"[..], OK.as_bytes()] {
            match next(&mut received).await {
                Received::Datagram { from, bytes } => {
                    assert_eq!(from, to);
                    assert_eq!(bytes, expected);
                }
                other => panic!("{other:?}"),
            }
        }
        match next(&mut received).await {
            Received::Closed { peer, reason, .. } => {
                assert_eq!(peer, to);
                assert_eq!(reason, "closed by the peer");
            }
            other => panic!("{other:?}"),
        }
        let (asked, first) = server.await.unwrap().expect("the server got a message");
        assert_eq!(asked.as_deref(), Some("sip"));
        assert_eq!(first, Frame::text(OPTIONS));
    }

    #[tokio::test]
    async fn a_server_without_the_sip_subprotocol_is_refused() {
        let (addr, _server) = server(None, Vec::new()).await;
        let (mut transports, mut received) = transports().await;
        let to = Peer {
            addr,
            transport: Transport::Ws,
        };
        transports
            .send(to, OPTIONS.as_bytes().to_vec())
            .await
            .unwrap();
        match next(&mut received).await {
            Received::ConnectFailed { reason, .. } => {
                assert!(reason.contains("sip subprotocol"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls() {
        let url = WsUrl::parse("wss://sbc.example.com:8443/").unwrap();
        assert_eq!(
            (url.secure, url.host.as_str(), url.port, url.path.as_str()),
            (true, "sbc.example.com", 8443, "/")
        );
        let url = WsUrl::parse("WS://127.0.0.1:8080").unwrap();
        assert_eq!(
            (url.secure, url.port, url.path.as_str()),
            (false, 8080, "/")
        );
        assert_eq!(url.to_string(), "ws://127.0.0.1:8080/");
        let url = WsUrl::parse("wss://[::1]/sip?x=1#frag").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 443));
        assert_eq!(url.to_string(), "wss://[::1]:443/sip?x=1");
        assert_eq!(WsUrl::parse("ws://h?a").unwrap().path, "/?a");
        for bad in [
            "http://h/",
            "h:80",
            "ws:///",
            "ws://h:0/",
            "ws://h:x/",
            "ws://u@h/",
            "ws://[::1/",
            "ws://[::1]x/",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
