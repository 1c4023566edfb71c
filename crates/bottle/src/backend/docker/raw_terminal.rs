//! An exec's terminal, read as the bytes it is, where the engine sends them
//! raw.
//!
//! bollard reads an exec's output as the Docker API's multiplexed frames,
//! except where a read happens to begin with a byte above 2: a guess. Docker
//! frames even a terminal's output when the start request asks for no TTY,
//! as bollard's does, so there the guess is never needed. Podman sends a
//! terminal's bytes raw whatever the request asks, and a read that begins
//! with 0x00, 0x01 or 0x02 is then taken for a frame's header: bytes are
//! lost, and a header's "length" can hold back the rest of the session
//! until it ends. There the exec is started here instead, on a connection
//! of its own, and what comes back is read as it is.

use std::io;

use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper_util::rt::TokioIo;

use super::dial_stdio;
use super::endpoint::Endpoint;
use super::engine::Engine;
use super::exec::{Input, Output};

/// Where a TTY exec on `engine` is to be started here: Podman's endpoint,
/// over its Unix socket, plain TCP or ssh. Docker frames a terminal's
/// output, and Podman behind TLS keeps bollard's reading.
pub(super) fn needed_for(engine: &Engine) -> Option<&Endpoint> {
    Some(&engine.endpoint).filter(|e| engine.identity.is_podman() && e.tls.is_none())
}

/// Starts the exec `id`, whose config asked for a TTY, on a connection of
/// its own to `endpoint`; its output, as raw bytes, and its input.
pub(super) async fn start(
    docker: &Docker,
    endpoint: &Endpoint,
    id: &str,
) -> io::Result<(Output, Input)> {
    let path = format!("/v{}/exec/{id}/start", docker.client_version());
    // Bounded as bollard bounds its calls: an engine that never answers
    // fails the start instead of holding it.
    let within = docker.timeout();
    let started = tokio::time::timeout(within, async {
        if let Some(connected) = endpoint.connect_plain().await {
            upgrade(TokioIo::new(connected?), &path).await
        } else {
            let (stream, said_by_ssh) = dial_stdio::open(&endpoint.host)?;
            upgrade(stream, &path)
                .await
                .map_err(|err| said_by_ssh.last().map_or(err, io::Error::other))
        }
    })
    .await
    .map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the engine did not answer within {} s", within.as_secs()),
        )
    })?
    .map_err(|err| io::Error::new(err.kind(), format!("{err} (at {endpoint})")))?;
    let (read, write) = tokio::io::split(TokioIo::new(started));
    let output = tokio_util::io::ReaderStream::new(read).map(|read| {
        read.map(|message| bollard::container::LogOutput::Console { message })
            .map_err(bollard::errors::Error::from)
    });
    Ok((Box::pin(output), Box::pin(write)))
}

/// Asks for the exec's start on `io` and takes the connection over once
/// the engine switches it to the exec's streams.
async fn upgrade<T>(io: T, path: &str) -> io::Result<hyper::upgrade::Upgraded>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(connection.with_upgrades());
    let request = hyper::Request::post(path)
        .header(HOST, "docker")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "tcp")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"Detach":false,"Tty":true}"#,
        )))
        .map_err(io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        // An engine's refusal is short; what is not is not read.
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 4096).collect();
        let said = tokio::time::timeout(std::time::Duration::from_secs(5), body)
            .await
            .ok()
            .and_then(Result::ok)
            .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        return Err(io::Error::other(format!(
            "the engine did not start the exec ({status}): {said}"
        )));
    }
    hyper::upgrade::on(response).await.map_err(io::Error::other)
}
