//! `ssh-relay` (hidden): runs in the bottle, as the agent's user. It
//! listens on the agent socket that the bottle's ssh is pointed at, and
//! carries each agent request, in frames, over its stdout to the key
//! holder in the claude-bottle that started it, and each answer back from
//! its stdin. It holds no key and decides nothing.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use bottle::ssh::frame::{Decoder, Frame, Kind, MAX_PAYLOAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::error::CommandError;

pub(crate) async fn run(socket: PathBuf) -> Result<ExitCode, CommandError> {
    let failed = |err: std::io::Error| {
        bottle::Error::caused_by(format!("cannot listen on {}", socket.display()), err)
    };
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(failed)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;

    let (to_holder, mut outgoing) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(frame) = outgoing.recv().await {
            if stdout.write_all(&frame.encode()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let ready = Frame {
        connection: 0,
        kind: Kind::Ready,
        payload: Vec::new(),
    };
    let _ = to_holder.send(ready).await;

    let mut connections: HashMap<u32, OwnedWriteHalf> = HashMap::new();
    let mut next = 1u32;
    let mut decoder = Decoder::default();
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    let (closed_tx, mut closed_rx) = mpsc::channel::<u32>(64);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let id = next;
                next = next.wrapping_add(1).max(1);
                let (mut reader, writer) = stream.into_split();
                connections.insert(id, writer);
                let to_holder = to_holder.clone();
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    while let Some(message) = read_message(&mut reader).await {
                        let frame = Frame { connection: id, kind: Kind::Message, payload: message };
                        if to_holder.send(frame).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_holder.send(Frame { connection: id, kind: Kind::Closed, payload: Vec::new() }).await;
                    let _ = closed.send(id).await;
                });
            }
            read = stdin.read(&mut buf) => {
                // The holder went away: so does the relay.
                let Ok(n @ 1..) = read else { break };
                decoder.push(&buf[..n]);
                while let Ok(Some(frame)) = decoder.next_frame() {
                    if let Some(writer) = connections.get_mut(&frame.connection) {
                        let length = u32::try_from(frame.payload.len()).unwrap_or(0).to_be_bytes();
                        if writer.write_all(&length).await.is_err()
                            || writer.write_all(&frame.payload).await.is_err()
                        {
                            connections.remove(&frame.connection);
                        }
                    }
                }
            }
            Some(id) = closed_rx.recv() => {
                connections.remove(&id);
            }
        }
    }
    drop(to_holder);
    writer.abort();
    let _ = std::fs::remove_file(&socket);
    Ok(ExitCode::SUCCESS)
}

/// One agent message (`u32 length`, then that many bytes), or `None` at
/// the end of the connection or on one too large.
async fn read_message(reader: &mut tokio::net::unix::OwnedReadHalf) -> Option<Vec<u8>> {
    let length = reader.read_u32().await.ok()? as usize;
    if length > MAX_PAYLOAD {
        return None;
    }
    let mut message = vec![0u8; length];
    reader.read_exact(&mut message).await.ok()?;
    Some(message)
}
