//! SIP transports: one UDP socket and one TCP listener on the same address, outgoing TCP
//! connections reused per remote address, stream framing by Content-Length.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use homeagent_sip::message::{Message, parse_stream};
use homeagent_sip::transaction::{Peer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// How long a new TCP connection may take before the request fails.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest SIP message accepted on a stream before the connection is dropped.
const MAX_STREAM_MESSAGE: usize = 64 * 1024;

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
    /// A stream connection we opened could not be established.
    ConnectFailed {
        to: Peer,
        reason: String,
    },
    /// A peer opened a stream connection to us.
    Connected {
        from: Peer,
        sender: mpsc::Sender<Vec<u8>>,
    },
    /// A stream delivered bytes that cannot be framed; the connection was closed.
    StreamError {
        from: Peer,
        reason: String,
    },
}

#[derive(Debug)]
pub(crate) struct Transports {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    connections: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    received: mpsc::Sender<Received>,
}

impl Transports {
    /// Binds UDP and TCP on `bind` (port 0 picks one free for both).
    pub(crate) async fn bind(
        bind: SocketAddr,
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
            connections: HashMap::new(),
            received,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one message; stream transports connect on first use and reuse the connection.
    pub(crate) async fn send(&mut self, to: Peer, bytes: Vec<u8>) -> io::Result<()> {
        match to.transport {
            Transport::Udp => self.udp.send_to(&bytes, to.addr).await.map(|_| ()),
            Transport::Tcp => {
                if let Some(connection) = self.connections.get(&to.addr) {
                    if connection.send(bytes.clone()).await.is_ok() {
                        return Ok(());
                    }
                    self.connections.remove(&to.addr);
                }
                // The connection is made in the background: the phone never waits on it.
                // Messages queue meanwhile; a failure comes back as `Received::ConnectFailed`.
                let sender = connect(to, self.received.clone());
                sender
                    .send(bytes)
                    .await
                    .map_err(|_| io::Error::other("connection closed"))?;
                self.connections.insert(to.addr, sender);
                Ok(())
            }
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("transport {other:?} is not supported yet"),
            )),
        }
    }

    /// Drops a connection that failed, so the next send connects again.
    pub(crate) fn forget(&mut self, addr: SocketAddr) {
        self.connections.remove(&addr);
    }

    /// Registers an accepted connection so replies and requests to that address reuse it.
    pub(crate) fn adopt(&mut self, addr: SocketAddr, sender: mpsc::Sender<Vec<u8>>) {
        self.connections.insert(addr, sender);
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
                let sender = spawn_connection(stream, from, received.clone());
                // The driver learns about the connection with its first message; it then
                // replies over the same connection (see `Driver::remember_connection`).
                if received
                    .send(Received::Connected { from, sender })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "tcp accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Connects to `to` in the background; returns the queue of what to write once connected.
fn connect(to: Peer, received: mpsc::Sender<Received>) -> mpsc::Sender<Vec<u8>> {
    let (sender, outgoing) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                run_connection(stream, to, received, outgoing);
            }
            Ok(Err(error)) => {
                let reason = error.to_string();
                let _ = received.send(Received::ConnectFailed { to, reason }).await;
            }
            Err(_) => {
                let reason = "TCP connect timed out".to_owned();
                let _ = received.send(Received::ConnectFailed { to, reason }).await;
            }
        }
    });
    sender
}

/// Starts the reader and writer of one accepted stream connection; returns the writer's queue.
fn spawn_connection(
    stream: TcpStream,
    from: Peer,
    received: mpsc::Sender<Received>,
) -> mpsc::Sender<Vec<u8>> {
    let (sender, outgoing) = mpsc::channel::<Vec<u8>>(64);
    run_connection(stream, from, received, outgoing);
    sender
}

/// Runs a connection: writes what `outgoing` queues, frames and forwards what arrives.
fn run_connection(
    stream: TcpStream,
    from: Peer,
    received: mpsc::Sender<Received>,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut buffer = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 8192];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
            loop {
                match parse_stream(&buffer) {
                    Ok(Some((message, used))) => {
                        buffer.drain(..used.min(buffer.len()));
                        if received
                            .send(Received::Message { from, message })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) if buffer.len() > MAX_STREAM_MESSAGE => {
                        let reason = "message too large".to_owned();
                        let _ = received.send(Received::StreamError { from, reason }).await;
                        return;
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let _ = received
                            .send(Received::StreamError {
                                from,
                                reason: error.to_string(),
                            })
                            .await;
                        return;
                    }
                }
            }
        }
    });
}
