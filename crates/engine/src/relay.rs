//! TURN relays for the media ports kept ready: the allocation is made when the port is bound,
//! so its relay candidate can be in a call's first SDP, and kept alive until a call takes the
//! port (the call's ICE transport then drives it). The server is reached from the port's RTP
//! socket, or over a TCP/TLS connection of the port's own ([`TurnStream`]), handed to the call
//! too.

use std::net::SocketAddr;

use homeagent_media::webrtc::{TurnAllocation, TurnServer, TurnState};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::media::MediaSockets;
use crate::turn_stream::{self, TurnPath, TurnStream};

/// The TURN server ready ports allocate on, and how it is reached.
#[derive(Debug, Clone)]
pub(crate) struct RelayServer {
    pub(crate) server: TurnServer,
    pub(crate) path: TurnPath,
}

/// A media port pair bound and waiting for a call.
#[derive(Debug)]
pub(crate) enum ReadyPort {
    Plain(MediaSockets),
    /// A keeper task owns the sockets and the TURN allocation; ask it for them.
    Relayed(mpsc::Sender<oneshot::Sender<MediaSockets>>),
}

impl ReadyPort {
    /// The sockets for a call (with the allocation, when it is up).
    pub(crate) async fn take(self) -> Option<MediaSockets> {
        match self {
            ReadyPort::Plain(sockets) => Some(sockets),
            ReadyPort::Relayed(keeper) => {
                let (reply, sockets) = oneshot::channel();
                keeper.send(reply).await.ok()?;
                sockets.await.ok()
            }
        }
    }
}

/// A ready port's relay has settled: `(media port, its a=candidate value)`, `None` when
/// there is none (yet): the allocation failed, or did not finish within [`SETTLE`]. A candidate
/// may follow a `None`.
pub(crate) type RelayCandidate = (u16, Option<String>);

/// How long a new port waits for its relay before calls may use it without one: long enough
/// for a TURN server on the way (a few round trips, a TLS handshake), short enough that a dead
/// server does not hold calls up for its 8-40 s of retries.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Allocates on `relay` (from the port's RTP socket, or over a connection of its own) and keeps
/// the allocation alive until a call takes the sockets. `host`: our host candidate's address (the
/// relay candidate's `raddr`).
pub(crate) fn keep(
    port: u16,
    sockets: MediaSockets,
    relay: RelayServer,
    host: SocketAddr,
    candidates: mpsc::Sender<RelayCandidate>,
) -> ReadyPort {
    let (keeper, requests) = mpsc::channel(1);
    tokio::spawn(run(port, sockets, relay, host, candidates, requests));
    ReadyPort::Relayed(keeper)
}

async fn run(
    port: u16,
    mut sockets: MediaSockets,
    relay: RelayServer,
    host: SocketAddr,
    candidates: mpsc::Sender<RelayCandidate>,
    mut requests: mpsc::Receiver<oneshot::Sender<MediaSockets>>,
) {
    let server_addr = relay.server.addr;
    let settle = tokio::time::sleep(SETTLE);
    tokio::pin!(settle);
    let mut settled = false;
    let tls = match &relay.path {
        TurnPath::Udp => None,
        TurnPath::Tcp => Some(None),
        TurnPath::Tls(target) => Some(Some(target)),
    };
    let mut stream = None;
    if let Some(tls) = tls {
        // A call may want the port while the connection is still being made.
        let connecting = TurnStream::connect(server_addr, tls);
        tokio::pin!(connecting);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    if let Some(reply) = request {
                        let _ = reply.send(sockets);
                    }
                    return;
                }
                () = &mut settle, if !settled => {
                    settled = true;
                    let _ = candidates.send((port, None)).await;
                }
                connected = &mut connecting => match connected {
                    Ok(connected) => {
                        stream = Some(connected);
                        break;
                    }
                    Err(reason) => {
                        tracing::warn!(port, server = %server_addr, %reason, "cannot connect to the TURN server: no relay");
                        return hand_over(port, sockets, requests, &candidates, settled).await;
                    }
                },
            }
        }
    }
    let local = match (&stream, sockets.rtp.local_addr()) {
        (Some(stream), _) => stream.local(),
        (None, Ok(local)) if local.ip().is_unspecified() => {
            SocketAddr::new(host.ip(), local.port())
        }
        (None, Ok(local)) => local,
        (None, Err(error)) => {
            tracing::warn!(%error, "media socket without an address: no TURN relay");
            return hand_over(port, sockets, requests, &candidates, settled).await;
        }
    };
    let now = Instant::now().into_std();
    let started = match &stream {
        Some(_) => TurnAllocation::start_over_stream(now, relay.server, local),
        None => TurnAllocation::start(now, relay.server, local),
    };
    let mut allocation = match started {
        Ok(allocation) => allocation,
        Err(error) => {
            tracing::warn!(%error, server = %server_addr, "cannot allocate a TURN relay");
            return hand_over(port, sockets, requests, &candidates, settled).await;
        }
    };
    let mut announced = false;
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some((to, bytes)) = allocation.poll_transmit() {
            match stream.as_mut() {
                Some(stream) => stream.send(&bytes).await,
                None => {
                    if let Err(error) = sockets.rtp.send_to(&bytes, to).await {
                        tracing::debug!(%error, %to, "TURN send");
                    }
                }
            }
        }
        if stream.as_ref().is_some_and(TurnStream::is_lost) {
            return hand_over(port, sockets, requests, &candidates, settled).await;
        }
        match allocation.state() {
            TurnState::Allocated { relayed, .. } if !announced => {
                announced = true;
                tracing::info!(port, %relayed, over = ?relay.path, "TURN relay allocated");
                settled = true;
                let _ = candidates.send((port, allocation.candidate(host))).await;
            }
            TurnState::Failed(reason) => {
                tracing::warn!(port, server = %server_addr, %reason, "TURN relay failed");
                return hand_over(port, sockets, requests, &candidates, settled).await;
            }
            _ => {}
        }
        let deadline = allocation.poll_timeout().map(Instant::from_std);
        tokio::select! {
            request = requests.recv() => {
                let Some(reply) = request else { return };
                if allocation.relayed().is_some() {
                    sockets.relay = Some(Box::new(allocation));
                    sockets.turn_stream = stream.map(Box::new);
                }
                let _ = reply.send(sockets);
                return;
            }
            message = turn_stream::next_message(stream.as_mut()) => match message {
                Some(message) => {
                    allocation.handle_datagram(Instant::now().into_std(), server_addr, &message);
                }
                None => return hand_over(port, sockets, requests, &candidates, settled).await,
            },
            () = &mut settle, if !settled => {
                settled = true;
                let _ = candidates.send((port, None)).await;
            }
            received = sockets.rtp.recv_from(&mut buf) => {
                // Over a connection, nothing on the socket is the server's. Anything but the
                // server (early ICE checks) is dropped: they are repeated.
                if let (Ok((n, from)), None) = (received, &stream) {
                    allocation.handle_datagram(
                        Instant::now().into_std(),
                        from,
                        buf.get(..n).unwrap_or_default(),
                    );
                }
            }
            _ = sleep_until(deadline) => allocation.handle_timeout(Instant::now().into_std()),
        }
    }
}

/// Without a relay: says so (unless the port was announced already) and waits to hand the
/// plain sockets to a call.
async fn hand_over(
    port: u16,
    sockets: MediaSockets,
    mut requests: mpsc::Receiver<oneshot::Sender<MediaSockets>>,
    candidates: &mpsc::Sender<RelayCandidate>,
    settled: bool,
) {
    if !settled {
        let _ = candidates.send((port, None)).await;
    }
    if let Some(reply) = requests.recv().await {
        let _ = reply.send(sockets);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
