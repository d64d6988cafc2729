//! When a media datagram reached the host, not when the media task got round to reading it: a
//! task held up by a busy machine must not take its own lateness for network jitter (the jitter
//! buffer would grow, concealing audio, for nothing). On Linux the kernel stamps each datagram
//! (`SO_TIMESTAMPNS`); elsewhere the time of the read stands in.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

/// Asks the kernel to stamp every datagram's arrival on `socket`; best effort.
pub(crate) fn enable(socket: &UdpSocket) {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        tracing::debug!(%error, "no kernel receive timestamps; using read times");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Waits for one datagram: its length, its sender and when it arrived.
pub(crate) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Instant)> {
    loop {
        socket.readable().await?;
        match try_recv(socket, buf) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            received => return received,
        }
    }
}

/// Reads one waiting datagram without blocking (`WouldBlock` when there is none).
pub(crate) fn try_recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Instant)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        socket.try_io(tokio::io::Interest::READABLE, || {
            linux::recv_stamped(socket.as_raw_fd(), buf)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (n, from) = socket.try_recv_from(buf)?;
        Ok((n, from, Instant::now()))
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{self, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::RawFd;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use nix::sys::time::TimeSpec;

    /// A stamp older than this is not a waiting datagram's: the wall clock was stepped.
    const MAX_AGE: Duration = Duration::from_secs(2);

    pub(super) fn recv_stamped(
        fd: RawFd,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Instant)> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut control = nix::cmsg_space!(TimeSpec);
        let message =
            recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), MsgFlags::empty())
                .map_err(io::Error::from)?;
        let from = message
            .address
            .as_ref()
            .and_then(socket_addr)
            .ok_or_else(|| io::Error::other("datagram without an IP sender"))?;
        let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(stamp) => Some(stamp),
                _ => None,
            })
        });
        let arrival = stamp.and_then(instant_of).unwrap_or_else(Instant::now);
        Ok((message.bytes, from, arrival))
    }

    fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = address.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        address
            .as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }

    /// The monotonic instant of a kernel stamp (wall clock time).
    fn instant_of(stamp: TimeSpec) -> Option<Instant> {
        let since_epoch = Duration::new(
            u64::try_from(stamp.tv_sec()).ok()?,
            u32::try_from(stamp.tv_nsec()).ok()?,
        );
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH + since_epoch)
            .unwrap_or_default();
        if age > MAX_AGE {
            return None;
        }
        Instant::now().checked_sub(age)
    }
}
