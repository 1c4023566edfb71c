//! A tunnel's bytes, moved by the kernel: once a CONNECT is decided, what
//! flows through it is opaque to the gate, so each direction is spliced
//! (`splice(2)`) through a pipe from one socket to the other. The bytes
//! never enter the gate's memory: throughput is the kernel's, and an idle
//! tunnel holds no buffer at all. Where the kernel refuses to splice a
//! socket, the tunnel falls back to copying through a small buffer.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::activity::Activity;

/// What a pipe holds at first (the kernel's default), and what it grows
/// to once a direction has moved [`BULK`]: bulk transfers move in bigger
/// steps, while the many small tunnels stay within the kernel's per-user
/// pipe budget (`fs.pipe-user-pages-soft`), which every gate on the
/// machine shares.
const PIPE_FIRST: usize = 64 * 1024;
const PIPE_GROWN: usize = 256 * 1024;
const BULK: usize = 1024 * 1024;
/// The copy buffer where splicing is refused.
const COPY_BUFFER: usize = 16 * 1024;

/// Relays both ways until both sides are done, or nothing moved either
/// way for `idle`.
pub(crate) async fn tunnel(client: TcpStream, upstream: TcpStream, idle: Duration) {
    let activity = Activity::new();
    let both = async {
        if let (Ok(up), Ok(down)) = (Pipe::new(), Pipe::new()) {
            let spliced = tokio::try_join!(
                up.splice(&client, &upstream, &activity),
                down.splice(&upstream, &client, &activity)
            );
            if spliced.is_ok() {
                return;
            }
        }
        copy_both(client, upstream, &activity).await;
    };
    tokio::select! {
        () = both => {}
        () = activity.idle_for(idle) => {}
    }
}

async fn copy_both(client: TcpStream, upstream: TcpStream, activity: &Activity) {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::join!(
        copy(client_read, upstream_write, activity),
        copy(upstream_read, client_write, activity)
    );
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down.
pub(crate) async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    activity: &Activity,
) {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                activity.touch();
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The kernel cannot splice these sockets: the first splice said so,
/// before anything moved, so the tunnel can still be copied instead.
#[derive(Debug)]
struct Refused;

/// One direction's pipe.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Self { read, write })
    }

    /// Moves `from` to `to` until `from` ends or either fails, then shuts
    /// `to`'s sending side, as a copy would.
    async fn splice(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        activity: &Activity,
    ) -> Result<(), Refused> {
        let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
        let mut first = true;
        let mut capacity = PIPE_FIRST;
        let mut moved = 0;
        // Growing is tried once: a refusal would be the same every time.
        let mut growth_tried = false;
        loop {
            let filled = ready(from, Interest::READABLE, || {
                rustix::pipe::splice(from, None, &self.write, None, capacity, flags)
            })
            .await;
            let mut in_pipe = match filled {
                Ok(n) if n > 0 => n,
                Err(err) if first && refused(&err) => return Err(Refused),
                _ => break,
            };
            first = false;
            moved += in_pipe;
            if moved >= BULK && !growth_tried {
                growth_tried = true;
                // Beyond the budget the kernel refuses, and the pipe stays.
                if let Ok(grown) = rustix::pipe::fcntl_setpipe_size(&self.write, PIPE_GROWN) {
                    capacity = grown;
                }
            }
            while in_pipe > 0 {
                let drained = ready(to, Interest::WRITABLE, || {
                    rustix::pipe::splice(&self.read, None, to, None, in_pipe, flags)
                })
                .await;
                match drained {
                    Ok(n) if n > 0 => in_pipe -= n,
                    _ => break,
                }
            }
            if in_pipe > 0 {
                break;
            }
            activity.touch();
        }
        let _ = rustix::net::shutdown(to.as_fd(), rustix::net::Shutdown::Write);
        Ok(())
    }
}

/// Runs `op` on `stream` once tokio's reactor says it is ready for
/// `interest`, again whenever it would block.
async fn ready(
    stream: &TcpStream,
    interest: Interest,
    mut op: impl FnMut() -> rustix::io::Result<usize>,
) -> io::Result<usize> {
    loop {
        stream.ready(interest).await?;
        match stream.try_io(interest, || op().map_err(io::Error::from)) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
}

/// Whether `err` says splicing is not supported here, rather than that the
/// connection failed.
fn refused(err: &io::Error) -> bool {
    err.raw_os_error().is_some_and(|code| {
        [
            rustix::io::Errno::INVAL,
            rustix::io::Errno::NOSYS,
            rustix::io::Errno::OPNOTSUPP,
        ]
        .iter()
        .any(|refusal| refusal.raw_os_error() == code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Two connected sockets on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    /// A pattern no shift of which repeats within a megabyte, so a lost,
    /// doubled or reordered chunk shows.
    fn pattern(seed: u32, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    /// Client and upstream send at once through `relay`; the client closes
    /// its side first, and the upstream, having read that end, still
    /// sends the rest of its answer.
    async fn both_ways<F, Fut>(relay: F)
    where
        F: FnOnce(TcpStream, TcpStream) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (mut client, gate_client) = pair().await;
        let (gate_upstream, mut upstream) = pair().await;
        let relayed = tokio::spawn(relay(gate_client, gate_upstream));
        let request = pattern(1, 6 << 20);
        let answer = pattern(2, 9 << 20);
        let client_side = async {
            let (mut read, mut write) = client.split();
            let send = async {
                write.write_all(&request).await.unwrap();
                write.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let receive = read.read_to_end(&mut got);
            let ((), received) = tokio::join!(send, receive);
            received.unwrap();
            got
        };
        let upstream_side = async {
            let (mut read, mut write) = upstream.split();
            let (first, rest) = answer.split_at(answer.len() / 3);
            let mut got = Vec::new();
            let receive = async {
                read.read_to_end(&mut got).await.unwrap();
            };
            let ((), ()) = tokio::join!(receive, async {
                write.write_all(first).await.unwrap();
            });
            // The client's end has come through; the answer goes on.
            write.write_all(rest).await.unwrap();
            write.shutdown().await.unwrap();
            got
        };
        let (at_client, at_upstream) = tokio::join!(client_side, upstream_side);
        assert!(at_upstream == request, "the request arrived altered");
        assert!(at_client == answer, "the answer arrived altered");
        relayed.await.unwrap();
    }

    #[tokio::test]
    async fn a_spliced_tunnel_carries_every_byte_both_ways_past_each_close() {
        both_ways(|client, upstream| tunnel(client, upstream, Duration::from_secs(30))).await;
    }

    #[tokio::test]
    async fn tcp_sockets_are_spliced_not_copied() {
        let (mut client, gate_client) = pair().await;
        let (gate_upstream, mut upstream) = pair().await;
        let request = pattern(3, 3 << 20);
        let send = async {
            client.write_all(&request).await.unwrap();
            client.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let pipe = Pipe::new().unwrap();
        let activity = Activity::new();
        let (spliced, (), received) = tokio::join!(
            pipe.splice(&gate_client, &gate_upstream, &activity),
            send,
            upstream.read_to_end(&mut got)
        );
        assert!(spliced.is_ok(), "the kernel refused to splice TCP");
        received.unwrap();
        assert!(got == request, "the bytes arrived altered");
    }

    #[tokio::test]
    async fn a_copied_tunnel_carries_every_byte_both_ways_past_each_close() {
        both_ways(|client, upstream| async move {
            copy_both(client, upstream, &Activity::new()).await;
        })
        .await;
    }

    #[test]
    fn only_an_unsupported_splice_falls_back_to_copying() {
        for errno in [
            rustix::io::Errno::INVAL,
            rustix::io::Errno::NOSYS,
            rustix::io::Errno::OPNOTSUPP,
        ] {
            assert!(refused(&io::Error::from(errno)), "{errno:?}");
        }
        for errno in [
            rustix::io::Errno::CONNRESET,
            rustix::io::Errno::PIPE,
            rustix::io::Errno::AGAIN,
        ] {
            assert!(!refused(&io::Error::from(errno)), "{errno:?}");
        }
    }
}
