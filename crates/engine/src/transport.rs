//! SIP transports: one UDP socket and one TCP listener on the same address; outgoing TCP, TLS
//! and WebSocket (WS, WSS: see [`crate::ws`]) connections ("flows") reused per remote address,
//! for requests and responses both ways; stream framing by Content-Length; RFC 5626 CRLF
//! keepalives on the TCP/TLS flows we open, WebSocket pings on WebSocket ones.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use homeagent_sip::message::{Message, parse_stream};
use homeagent_sip::transaction::{Peer, Transport};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::TlsConnector;

use crate::ws::WsUrl;

/// How long a new TCP connection (and its TLS handshake) may take before the request fails.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest SIP message accepted on a stream before the connection is dropped.
pub(crate) const MAX_STREAM_MESSAGE: usize = 64 * 1024;

/// How long a server that answered a keepalive ping before has to answer the next one
/// (RFC 5626 §4.4.1: 10 s) before the flow counts as broken.
pub(crate) const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Identifies one stream connection, so a late report about an old one is not taken for the
/// current one to the same address.
pub(crate) type FlowId = u64;

static NEXT_FLOW: AtomicU64 = AtomicU64::new(1);

fn new_flow_id() -> FlowId {
    NEXT_FLOW.fetch_add(1, Ordering::Relaxed)
}

/// What the transports deliver to the driver.
#[derive(Debug)]
pub(crate) enum Received {
    Datagram {
        from: Peer,
        bytes: Vec<u8>,
    },
    Message {
        from: Peer,
        message: Message,
    },
    /// A stream connection we opened could not be established (refused, TLS handshake).
    ConnectFailed {
        to: Peer,
        flow: FlowId,
        reason: String,
    },
    /// A peer opened a stream connection to us.
    Connected {
        from: Peer,
        flow: FlowId,
        sender: mpsc::Sender<Vec<u8>>,
    },
    /// A stream connection ended: closed by the peer, unframeable bytes, keepalive
    /// unanswered, or dropped by us.
    Closed {
        peer: Peer,
        flow: FlowId,
        reason: String,
    },
}

#[derive(Debug)]
struct Flow {
    id: FlowId,
    sender: mpsc::Sender<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Transports {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    flows: HashMap<SocketAddr, Flow>,
    received: mpsc::Sender<Received>,
    tls: Arc<ClientConfig>,
    /// The name each TLS peer's certificate must be valid for (the URI host it was resolved
    /// from); a peer missing here is checked against its IP address.
    tls_names: HashMap<SocketAddr, ServerName<'static>>,
    /// The URL of each WebSocket server; a server missing here is `ws(s)://IP:PORT/`.
    ws_urls: HashMap<SocketAddr, WsUrl>,
    keepalive: Option<Duration>,
}

impl Transports {
    /// Binds UDP and TCP on `bind` (port 0 picks one free for both).
    pub(crate) async fn bind(
        bind: SocketAddr,
        tls: Arc<ClientConfig>,
        keepalive: Option<Duration>,
        received: mpsc::Sender<Received>,
    ) -> io::Result<Self> {
        let (udp, tcp) = bind_pair(bind).await?;
        let local = udp.local_addr()?;
        let udp = Arc::new(udp);
        tokio::spawn(read_udp(udp.clone(), received.clone()));
        tokio::spawn(accept_tcp(tcp, received.clone()));
        Ok(Self {
            udp,
            local,
            flows: HashMap::new(),
            received,
            tls,
            tls_names: HashMap::new(),
            ws_urls: HashMap::new(),
            keepalive,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The certificate of the TLS server at `addr` must be valid for `name`.
    pub(crate) fn expect_tls_name(&mut self, addr: SocketAddr, name: ServerName<'static>) {
        self.tls_names.insert(addr, name);
    }

    /// The WebSocket server at `addr` is reached with `url` (its host in the `Host` header, its
    /// path in the request line).
    pub(crate) fn expect_websocket(&mut self, addr: SocketAddr, url: WsUrl) {
        self.ws_urls.insert(addr, url);
    }

    /// Sends one message; stream transports connect on first use and reuse the connection.
    /// Sends a raw datagram from the SIP socket (STUN).
    pub(crate) async fn send_datagram(&self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        self.udp.send_to(bytes, to).await.map(|_| ())
    }

    pub(crate) async fn send(&mut self, to: Peer, bytes: Vec<u8>) -> io::Result<()> {
        match to.transport {
            Transport::Udp => self.udp.send_to(&bytes, to.addr).await.map(|_| ()),
            Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                if let Some(flow) = self.flows.get(&to.addr) {
                    if flow.sender.send(bytes.clone()).await.is_ok() {
                        return Ok(());
                    }
                    self.flows.remove(&to.addr);
                }
                // The connection is made in the background: the phone never waits on it.
                // Messages queue meanwhile; a failure comes back as `Received::ConnectFailed`.
                let secure = matches!(to.transport, Transport::Tls | Transport::Wss);
                let tls = secure.then(|| {
                    let name = self
                        .tls_names
                        .get(&to.addr)
                        .cloned()
                        .unwrap_or_else(|| ServerName::IpAddress(to.addr.ip().into()));
                    (TlsConnector::from(self.tls.clone()), name)
                });
                let websocket = matches!(to.transport, Transport::Ws | Transport::Wss).then(|| {
                    self.ws_urls
                        .get(&to.addr)
                        .cloned()
                        .unwrap_or_else(|| WsUrl {
                            secure,
                            host: to.addr.ip().to_string(),
                            port: to.addr.port(),
                            path: "/".to_owned(),
                        })
                });
                let id = new_flow_id();
                let sender = connect(
                    to,
                    id,
                    tls,
                    websocket,
                    self.keepalive,
                    self.received.clone(),
                );
                sender
                    .send(bytes)
                    .await
                    .map_err(|_| io::Error::other("connection closed"))?;
                self.flows.insert(to.addr, Flow { id, sender });
                Ok(())
            }
        }
    }

    /// Drops the connection `flow` to `addr` (failed or closed), so the next send connects
    /// again; true if it was the current one.
    pub(crate) fn forget(&mut self, addr: SocketAddr, flow: FlowId) -> bool {
        if self.flows.get(&addr).is_some_and(|f| f.id == flow) {
            self.flows.remove(&addr);
            return true;
        }
        false
    }

    /// Registers an accepted connection so replies and requests to that address reuse it.
    pub(crate) fn adopt(&mut self, addr: SocketAddr, flow: FlowId, sender: mpsc::Sender<Vec<u8>>) {
        self.flows.insert(addr, Flow { id: flow, sender });
    }
}

/// Binds UDP and TCP to the same port; with port 0, retries until both get the same one.
async fn bind_pair(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if bind.port() != 0 {
        let udp = UdpSocket::bind(bind).await?;
        let tcp = TcpListener::bind(bind).await?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(bind).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

async fn read_udp(socket: Arc<UdpSocket>, received: mpsc::Sender<Received>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let Some(bytes) = buf.get(..n) else { continue };
                // CRLF keepalives (RFC 5626) carry nothing for the phone.
                if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                    continue;
                }
                let from = Peer {
                    addr: from,
                    transport: Transport::Udp,
                };
                if received
                    .send(Received::Datagram {
                        from,
                        bytes: bytes.to_vec(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port unreachable and friends surface here on Linux; keep reading.
            Err(error) => tracing::debug!(%error, "udp receive"),
        }
    }
}

async fn accept_tcp(listener: TcpListener, received: mpsc::Sender<Received>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let from = Peer {
                    addr,
                    transport: Transport::Tcp,
                };
                let flow = new_flow_id();
                let (sender, outgoing) = mpsc::channel::<Vec<u8>>(64);
                // The peer keeps its own flow alive: no pings from us.
                tokio::spawn(run_flow(
                    stream,
                    from,
                    flow,
                    received.clone(),
                    outgoing,
                    None,
                    None,
                ));
                // The driver learns about the connection with its first message; it then
                // replies over the same connection (see `Driver::remember_connection`).
                if received
                    .send(Received::Connected { from, flow, sender })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "tcp accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Connects to `to` (TCP, then the TLS handshake when `tls` is given, then the WebSocket
/// upgrade when `websocket` is given) in the background; returns the queue of what to write
/// once connected.
fn connect(
    to: Peer,
    flow: FlowId,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    websocket: Option<WsUrl>,
    keepalive: Option<Duration>,
    received: mpsc::Sender<Received>,
) -> mpsc::Sender<Vec<u8>> {
    let (sender, outgoing) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        let failed = |reason: String| Received::ConnectFailed { to, flow, reason };
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let _ = received.send(failed(error.to_string())).await;
                return;
            }
            Err(_) => {
                let _ = received
                    .send(failed("TCP connect timed out".to_owned()))
                    .await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some((connector, name)) = tls else {
            return match websocket {
                Some(url) => {
                    crate::ws::run(stream, &url, to, flow, received, outgoing, keepalive, None)
                        .await
                }
                None => run_flow(stream, to, flow, received, outgoing, keepalive, None).await,
            };
        };
        let handshake = connector.connect(name.clone(), stream);
        match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => {
                let name = Some(&name);
                match websocket {
                    Some(url) => {
                        crate::ws::run(stream, &url, to, flow, received, outgoing, keepalive, name)
                            .await
                    }
                    None => run_flow(stream, to, flow, received, outgoing, keepalive, name).await,
                }
            }
            Ok(Err(error)) => {
                let reason = crate::tls::describe_failure(&error, &name);
                let _ = received.send(failed(reason)).await;
            }
            Err(_) => {
                let reason = "TLS: the handshake timed out".to_owned();
                let _ = received.send(failed(reason)).await;
            }
        }
    });
    sender
}

/// Runs one stream connection until it ends: writes what `outgoing` queues (and keepalive
/// pings when idle), frames and forwards what arrives, then reports `Received::Closed`.
async fn run_flow<S>(
    stream: S,
    peer: Peer,
    flow: FlowId,
    received: mpsc::Sender<Received>,
    outgoing: mpsc::Receiver<Vec<u8>>,
    keepalive: Option<Duration>,
    tls_name: Option<&ServerName<'static>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let pong = Notify::new();
    let reason = tokio::select! {
        reason = read_flow(reader, peer, &received, &pong, tls_name) => reason,
        reason = write_flow(writer, outgoing, keepalive, &pong) => reason,
    };
    let _ = received.send(Received::Closed { peer, flow, reason }).await;
}

/// Frames messages until the stream ends; returns why it ended. CRLFs between messages are
/// keepalives (a lone CRLF is the answer to our ping). Over TLS, an error names its cause (with
/// TLS 1.3 a server refusing our client certificate says so only after the handshake).
async fn read_flow<R: AsyncRead>(
    reader: R,
    from: Peer,
    received: &mpsc::Sender<Received>,
    pong: &Notify,
    tls_name: Option<&ServerName<'static>>,
) -> String {
    tokio::pin!(reader);
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => return "closed by the peer".to_owned(),
            Err(error) => {
                return match tls_name {
                    Some(name) => crate::tls::describe_failure(&error, name),
                    None => error.to_string(),
                };
            }
            Ok(n) => n,
        };
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            let crlfs = buffer
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if crlfs > 0 {
                buffer.drain(..crlfs);
                pong.notify_one();
            }
            match parse_stream(&buffer) {
                Ok(Some((message, used))) => {
                    buffer.drain(..used.min(buffer.len()));
                    if received
                        .send(Received::Message { from, message })
                        .await
                        .is_err()
                    {
                        return "engine stopped".to_owned();
                    }
                }
                Ok(None) if buffer.len() > MAX_STREAM_MESSAGE => {
                    return "message too large".to_owned();
                }
                Ok(None) => break,
                Err(error) => return format!("unframeable bytes: {error}"),
            }
        }
    }
}

/// Writes queued messages; after `keepalive` without writing, sends a CRLFCRLF ping. Once the
/// server has answered a ping, a ping unanswered for [`PONG_TIMEOUT`] ends the flow (a server
/// that never answers them still gets them: they keep NAT bindings open).
async fn write_flow<W: AsyncWrite>(
    writer: W,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    keepalive: Option<Duration>,
    pong: &Notify,
) -> String {
    tokio::pin!(writer);
    let mut answers_pings = false;
    let mut ping_sent: Option<tokio::time::Instant> = None;
    loop {
        let idle = async {
            match keepalive {
                // While a ping waits for its answer, the next one waits too (unless this
                // server never answers them).
                Some(interval) if ping_sent.is_none() || !answers_pings => {
                    tokio::time::sleep(interval).await
                }
                _ => std::future::pending().await,
            }
        };
        let pong_overdue = async {
            match ping_sent {
                Some(at) if answers_pings => tokio::time::sleep_until(at + PONG_TIMEOUT).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            bytes = outgoing.recv() => {
                let Some(bytes) = bytes else {
                    return "no longer used".to_owned();
                };
                if let Err(error) = writer.write_all(&bytes).await {
                    return error.to_string();
                }
            }
            () = pong.notified() => {
                if ping_sent.take().is_some() {
                    answers_pings = true;
                }
            }
            () = idle => {
                if let Err(error) = writer.write_all(b"\r\n\r\n").await {
                    return error.to_string();
                }
                if let Err(error) = writer.flush().await {
                    return error.to_string();
                }
                ping_sent = Some(tokio::time::Instant::now());
            }
            () = pong_overdue => return "keepalive ping not answered".to_owned(),
        }
        if let Err(error) = writer.flush().await {
            return error.to_string();
        }
    }
}
