//! The connection to a TURN server over TCP or TLS (RFC 8656 §3.1), for networks where outgoing
//! UDP is blocked: one per media port, opened by the port's keeper (`crate::relay`) and handed
//! to the call with the sockets. The TURN messages of the port's allocation go over it instead of
//! the RTP socket; the relay itself stays UDP. It is not reconnected: once lost (closed, failed,
//! out of step), the relay is lost with it.

use std::net::SocketAddr;
use std::time::Duration;

use homeagent_media::webrtc::TurnStreamFrames;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The TCP connection and TLS handshake, together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write the server does not take within this loses the connection (the call must not stall).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a TURN server is reached.
#[derive(Debug, Clone)]
pub(crate) enum TurnPath {
    /// From each media socket.
    Udp,
    /// One connection per media port.
    Tcp,
    Tls(TlsTarget),
}

/// What a TLS connection to the TURN server needs: our client configuration (system roots and
/// `--ca-file`) and the name its certificate must be valid for (the URI's host).
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub(crate) connector: TlsConnector,
    pub(crate) name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One connection to the TURN server and the messages read from it.
pub(crate) struct TurnStream {
    server: SocketAddr,
    local: SocketAddr,
    /// `None` once lost.
    connection: Option<Connection>,
    frames: TurnStreamFrames,
    buf: Vec<u8>,
}

enum Connection {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for TurnStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.connection {
            Some(Connection::Tcp(_)) => "tcp",
            Some(Connection::Tls(_)) => "tls",
            None => "lost",
        };
        f.debug_struct("TurnStream")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("connection", &kind)
            .finish_non_exhaustive()
    }
}

impl TurnStream {
    /// Connects to `server` over TCP, then TLS with `tls`. The error is one line naming the cause.
    pub(crate) async fn connect(
        server: SocketAddr,
        tls: Option<&TlsTarget>,
    ) -> Result<TurnStream, String> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::open(server, tls))
            .await
            .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
    }

    async fn open(server: SocketAddr, tls: Option<&TlsTarget>) -> Result<TurnStream, String> {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|error| format!("TCP: {error}"))?;
        // Media: no Nagle delay.
        tcp.set_nodelay(true)
            .map_err(|error| format!("TCP: {error}"))?;
        let local = tcp.local_addr().map_err(|error| format!("TCP: {error}"))?;
        let connection = match tls {
            None => Connection::Tcp(tcp),
            Some(target) => {
                let tls = target
                    .connector
                    .connect(target.name.clone(), tcp)
                    .await
                    .map_err(|error| crate::tls::describe_failure(&error, &target.name))?;
                Connection::Tls(Box::new(tls))
            }
        };
        Ok(TurnStream {
            server,
            local,
            connection: Some(connection),
            frames: TurnStreamFrames::new(),
            buf: vec![0; 4096],
        })
    }

    /// The TURN server's address: what the allocation sends to and receives from.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// Our end of the connection.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.connection.is_none()
    }

    /// Writes one message of the allocation (STUN and ChannelData come framed and padded).
    /// Nothing once lost.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            match connection {
                Connection::Tcp(tcp) => tcp.write_all(bytes).await,
                Connection::Tls(tls) => {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                }
            }
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.lose(&format!("write failed: {error}")),
            // Part of a message may have gone: the stream is out of step.
            Err(_) => self.lose("write stalled"),
        }
    }

    /// The next message from the server. `None` when the connection was just lost (closed by
    /// the server, failed, or not TURN framing); pending for ever after that. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.connection.is_none() {
                return std::future::pending().await;
            }
            match self.frames.poll_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(error) => {
                    self.lose(&error.to_string());
                    return None;
                }
            }
            let read = match self.connection.as_mut() {
                None => return std::future::pending().await,
                Some(Connection::Tcp(tcp)) => tcp.read(&mut self.buf).await,
                Some(Connection::Tls(tls)) => tls.read(&mut self.buf).await,
            };
            match read {
                Ok(0) => {
                    self.lose("closed by the server");
                    return None;
                }
                Ok(n) => self.frames.push(self.buf.get(..n).unwrap_or_default()),
                Err(error) => {
                    self.lose(&format!("read failed: {error}"));
                    return None;
                }
            }
        }
    }

    fn lose(&mut self, reason: &str) {
        if self.connection.take().is_some() {
            tracing::warn!(server = %self.server, %reason, "TURN connection lost: relay lost");
        }
    }
}

/// The next message of `stream`, when there is one; pending without.
pub(crate) async fn next_message(stream: Option<&mut TurnStream>) -> Option<Vec<u8>> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A STUN message with 4 bytes of attributes.
    fn stun(id: u8) -> Vec<u8> {
        let mut message = vec![0x01, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
        message.extend_from_slice(&[id; 12]);
        message.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
        message
    }

    async fn pair() -> (TurnStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let (stream, accepted) = tokio::join!(TurnStream::connect(server, None), listener.accept());
        let stream = stream.unwrap();
        assert_eq!(stream.server(), server);
        (stream, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn messages_are_read_whole_and_written_as_given() {
        let (mut stream, mut server) = pair().await;
        // A STUN message in two writes, then ChannelData (3 bytes, padded) and STUN at once.
        let first = stun(1);
        server.write_all(&first[..9]).await.unwrap();
        server.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        server.write_all(&first[9..]).await.unwrap();
        let channel_data = vec![0x40, 0x00, 0x00, 0x03, b'a', b'b', b'c', 0];
        server
            .write_all(&[channel_data.clone(), stun(2)].concat())
            .await
            .unwrap();
        assert_eq!(stream.recv().await, Some(first));
        assert_eq!(stream.recv().await, Some(channel_data));
        assert_eq!(stream.recv().await, Some(stun(2)));

        stream.send(&stun(3)).await;
        let mut got = vec![0; 24];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, stun(3));
        assert!(!stream.is_lost());
    }

    #[tokio::test]
    async fn garbage_or_a_close_loses_the_connection_for_good() {
        let (mut stream, mut server) = pair().await;
        server.write_all(&[0x80, 0x00, 0x00, 0x00]).await.unwrap();
        assert_eq!(stream.recv().await, None, "RTP is not TURN framing");
        assert!(stream.is_lost());
        stream.send(&stun(4)).await;
        let quiet = tokio::time::timeout(Duration::from_millis(100), stream.recv()).await;
        assert!(quiet.is_err(), "pending once lost");

        let (mut stream, server) = pair().await;
        drop(server);
        assert_eq!(stream.recv().await, None, "closed by the server");
        assert!(stream.is_lost());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        drop(listener);
        let error = TurnStream::connect(server, None).await.unwrap_err();
        assert!(error.starts_with("TCP:"), "{error}");
    }
}
