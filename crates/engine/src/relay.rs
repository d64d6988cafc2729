//! TURN relays for the media ports kept ready: the allocation is made when the port is bound,
//! so its relay candidate can be in a call's first SDP, and kept alive until a call takes the
//! port (the call's ICE transport then drives it).

use std::net::SocketAddr;

use homeagent_media::webrtc::{TurnAllocation, TurnServer, TurnState};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::media::MediaSockets;

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

/// A relay candidate ready for the phone: `(media port, a=candidate value)`.
pub(crate) type RelayCandidate = (u16, String);

/// Allocates on `server` from the port's RTP socket and keeps the allocation alive until a call
/// takes the sockets. `host`: our host candidate's address (the relay candidate's `raddr`).
pub(crate) fn keep(
    port: u16,
    sockets: MediaSockets,
    server: TurnServer,
    host: SocketAddr,
    candidates: mpsc::Sender<RelayCandidate>,
) -> ReadyPort {
    let (keeper, requests) = mpsc::channel(1);
    tokio::spawn(run(port, sockets, server, host, candidates, requests));
    ReadyPort::Relayed(keeper)
}

async fn run(
    port: u16,
    mut sockets: MediaSockets,
    server: TurnServer,
    host: SocketAddr,
    candidates: mpsc::Sender<RelayCandidate>,
    mut requests: mpsc::Receiver<oneshot::Sender<MediaSockets>>,
) {
    let server_addr = server.addr;
    let local = match sockets.rtp.local_addr() {
        Ok(local) if local.ip().is_unspecified() => SocketAddr::new(host.ip(), local.port()),
        Ok(local) => local,
        Err(error) => {
            tracing::warn!(%error, "media socket without an address: no TURN relay");
            return hand_over(sockets, requests).await;
        }
    };
    let mut allocation = match TurnAllocation::start(Instant::now().into_std(), server, local) {
        Ok(allocation) => allocation,
        Err(error) => {
            tracing::warn!(%error, server = %server_addr, "cannot allocate a TURN relay");
            return hand_over(sockets, requests).await;
        }
    };
    let mut announced = false;
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some((to, bytes)) = allocation.poll_transmit() {
            if let Err(error) = sockets.rtp.send_to(&bytes, to).await {
                tracing::debug!(%error, %to, "TURN send");
            }
        }
        match allocation.state() {
            TurnState::Allocated { relayed, .. } if !announced => {
                announced = true;
                tracing::info!(port, %relayed, "TURN relay allocated");
                if let Some(candidate) = allocation.candidate(host) {
                    let _ = candidates.send((port, candidate)).await;
                }
            }
            TurnState::Failed(reason) => {
                tracing::warn!(port, server = %server_addr, %reason, "TURN relay failed");
                return hand_over(sockets, requests).await;
            }
            _ => {}
        }
        let deadline = allocation.poll_timeout().map(Instant::from_std);
        tokio::select! {
            request = requests.recv() => {
                let Some(reply) = request else { return };
                if allocation.relayed().is_some() {
                    sockets.relay = Some(Box::new(allocation));
                }
                let _ = reply.send(sockets);
                return;
            }
            received = sockets.rtp.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    // Anything but the server (early ICE checks) is dropped: they are repeated.
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

/// Without a relay: waits to hand the plain sockets to a call.
async fn hand_over(
    sockets: MediaSockets,
    mut requests: mpsc::Receiver<oneshot::Sender<MediaSockets>>,
) {
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
