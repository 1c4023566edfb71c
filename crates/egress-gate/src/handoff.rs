//! A listener handed to the gate from another network namespace.
//!
//! Where an engine's networks cannot keep a bottle from the host (Podman's
//! internal networks give the host an address on each), the agent's
//! container has no network at all, only its loopback. A short-lived helper
//! in that namespace binds the gate's port on the loopback and hands the
//! listening socket over a Unix socket, in a directory only it and the gate
//! share. The gate then accepts the agent's connections on that listener
//! and dials out from its own namespace: the listener it holds is the only
//! thing joining the two.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// The word that comes with a listener; any other message is the helper's
/// reason it has none.
const HANDED: &[u8] = b"listener";
/// How long either side waits for the other: less than the CLI waits for
/// the gate to be ready, so that the gate's own reason reaches it.
pub const WITHIN: Duration = Duration::from_secs(10);
/// How often a side that waits for the other looks again.
const POLL: Duration = Duration::from_millis(10);

/// In the agent's namespace: binds `listen`, waits at `socket` for the gate
/// (for `within` at most) and hands it the listener. A bind that fails is
/// told to the gate, whose own error then says why.
pub fn hand_over(listen: SocketAddr, socket: &Path, within: Duration) -> io::Result<()> {
    let _ = std::fs::remove_file(socket);
    let waiting = UnixListener::bind(socket)?;
    // The gate runs as the helper's user, and nothing else mounts this
    // directory: the socket is for that user alone.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let bound = TcpListener::bind(listen);
    let gate = accept_within(&waiting, within)?;
    match bound {
        Ok(listener) => send(&gate, HANDED, Some(listener.as_fd())),
        Err(err) => {
            let reason = format!("cannot listen on {listen} in the agent's container: {err}");
            send(&gate, reason.as_bytes(), None)?;
            Err(err)
        }
    }
}

/// In the gate: connects to the helper at `socket`, trying again until it
/// listens (for `within` at most), and takes the listener it hands over.
/// Dropped, it stops waiting: the gate's dead-man switch must not wait on it.
pub async fn take_over(socket: &Path, within: Duration) -> io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + within;
    let helper = loop {
        match tokio::net::UnixStream::connect(socket).await {
            Ok(helper) => break helper,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(io::Error::new(
                    err.kind(),
                    format!(
                        "no listener was handed over at {} within {} s: {err}",
                        socket.display(),
                        within.as_secs()
                    ),
                ));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let (said, handed) = tokio::time::timeout(within, receive(&helper))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the helper in the agent's container said nothing within {} s",
                    within.as_secs()
                ),
            )
        })??;
    match handed {
        Some(fd) if said == HANDED && is_loopback_listener(&fd) => {
            let listener = TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            Ok(listener)
        }
        Some(_) => Err(io::Error::other(
            "what was handed over is not a TCP socket listening on a loopback address",
        )),
        None if said.is_empty() => Err(io::Error::other(
            "the helper in the agent's container ended without handing a listener over",
        )),
        None => Err(io::Error::other(
            String::from_utf8_lossy(&said).into_owned(),
        )),
    }
}

/// The helper's one message: its words, and the descriptor that came with
/// them, if any.
async fn receive(helper: &tokio::net::UnixStream) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    loop {
        helper.readable().await?;
        let received = helper.try_io(tokio::io::Interest::READABLE, || {
            let mut said = [0u8; 512];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut ancillary = RecvAncillaryBuffer::new(&mut space);
            let received = recvmsg(
                helper,
                &mut [IoSliceMut::new(&mut said)],
                &mut ancillary,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let handed = ancillary.drain().find_map(|message| match message {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            });
            Ok((said[..received.bytes].to_vec(), handed))
        });
        match received {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            received => return received,
        }
    }
}

/// Whether `fd` listens for TCP on a loopback address: the agent's
/// container has nothing else, and a listener on any other address would
/// take connections from somewhere the gate was not meant to serve.
fn is_loopback_listener(fd: &OwnedFd) -> bool {
    use rustix::net::{SocketAddrAny, SocketType, sockopt};
    let bound = rustix::net::getsockname(fd)
        .ok()
        .and_then(|address: SocketAddrAny| SocketAddr::try_from(address).ok());
    sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::STREAM)
        && sockopt::socket_acceptconn(fd).unwrap_or(false)
        && bound.is_some_and(|address| address.ip().is_loopback())
}

fn accept_within(waiting: &UnixListener, within: Duration) -> io::Result<UnixStream> {
    waiting.set_nonblocking(true)?;
    let deadline = Instant::now() + within;
    loop {
        match waiting.accept() {
            Ok((gate, _)) => {
                gate.set_nonblocking(false)?;
                return Ok(gate);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(POLL);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the gate did not come for its listener within {} s",
                        within.as_secs()
                    ),
                ));
            }
            Err(err) => return Err(err),
        }
    }
}

fn send(to: &UnixStream, said: &[u8], fd: Option<std::os::fd::BorrowedFd<'_>>) -> io::Result<()> {
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    }
    sendmsg(
        to,
        &[IoSlice::new(said)],
        &mut ancillary,
        SendFlags::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn socket_in(dir: &Path) -> std::path::PathBuf {
        dir.join("handoff.sock")
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("egress-gate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The helper's side, on a thread of its own.
    fn helper(listen: SocketAddr, socket: &Path) -> std::thread::JoinHandle<io::Result<()>> {
        let socket = socket.to_owned();
        std::thread::spawn(move || hand_over(listen, &socket, Duration::from_secs(5)))
    }

    /// A port free a moment ago.
    fn free_port() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn the_listener_handed_over_accepts_what_connects_to_the_helpers_port() {
        let dir = temp_dir("handed");
        let socket = socket_in(&dir);
        let listen = free_port();
        let helper = helper(listen, &socket);
        let listener = take_over(&socket, Duration::from_secs(5)).await.unwrap();
        helper.join().unwrap().unwrap();
        assert_eq!(listener.local_addr().unwrap(), listen);
        // The helper is gone; what it bound is the gate's now.
        let mut client = std::net::TcpStream::connect(listen).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_port_the_helper_cannot_bind_is_the_gates_error() {
        let dir = temp_dir("taken");
        let socket = socket_in(&dir);
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = taken.local_addr().unwrap();
        let helper = helper(listen, &socket);
        let err = take_over(&socket, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(helper.join().unwrap().is_err());
        assert!(
            err.to_string().starts_with(&format!(
                "cannot listen on {listen} in the agent's container"
            )),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn with_no_helper_the_gate_gives_up_naming_the_socket() {
        let dir = temp_dir("absent");
        let socket = socket_in(&dir);
        let err = take_over(&socket, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "no listener was handed over at {}",
                socket.display()
            )),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// What the gate makes of `handed`, handed over by an impostor helper.
    async fn taken_from_impostor(
        name: &str,
        handed: impl FnOnce() -> OwnedFd + Send + 'static,
    ) -> io::Error {
        let dir = temp_dir(name);
        let socket = socket_in(&dir);
        let waiting = UnixListener::bind(&socket).unwrap();
        let impostor = std::thread::spawn(move || {
            let (gate, _) = waiting.accept().unwrap();
            send(&gate, HANDED, Some(handed().as_fd())).unwrap();
        });
        let err = take_over(&socket, Duration::from_secs(5))
            .await
            .unwrap_err();
        impostor.join().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        err
    }

    #[tokio::test]
    async fn a_listener_on_an_address_other_than_loopback_is_refused() {
        let err =
            taken_from_impostor("wide", || TcpListener::bind("0.0.0.0:0").unwrap().into()).await;
        assert_eq!(
            err.to_string(),
            "what was handed over is not a TCP socket listening on a loopback address"
        );
    }

    #[tokio::test]
    async fn a_socket_that_is_not_a_tcp_listener_is_refused() {
        // A connected socket, not a listening one.
        let err = taken_from_impostor("wrong", || UnixStream::pair().unwrap().0.into()).await;
        assert_eq!(
            err.to_string(),
            "what was handed over is not a TCP socket listening on a loopback address"
        );
    }
}
