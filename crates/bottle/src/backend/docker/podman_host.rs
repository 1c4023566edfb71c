//! What Podman says of its own host through its own API (`libpod/info`):
//! whether its service is rootless, and its cgroups version.
//!
//! Its Docker API does not say that it is rootless. On cgroups v1 it also
//! claims every limit controller there, although a rootless service keeps
//! none of a container's limits. `doctor` asks here so that it can say a
//! start will be refused before one is tried. The call is one GET on the
//! same socket, port or ssh link as the Docker API.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header::HOST;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::dial_stdio;
use super::endpoint::Endpoint;

/// How long the answer may take: it is read from files Podman holds.
const WITHIN: Duration = Duration::from_secs(10);
/// More than Podman's info ever is; what is larger is not read.
const AT_MOST: usize = 1 << 20;

/// The facts of Podman's host that decide whether a bottle's limits hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodmanHost {
    pub(super) rootless: bool,
    /// `v1` or `v2`, as Podman names it.
    pub(super) cgroup_version: String,
}

impl PodmanHost {
    /// Whether Podman keeps none of a container's limits: rootless on
    /// cgroups v1, where it drops them with only a warning from its own CLI.
    pub(super) fn drops_limits(&self) -> bool {
        self.rootless && self.cgroup_version == "v1"
    }
}

#[derive(Deserialize)]
struct Info {
    host: Host,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Host {
    cgroup_version: String,
    security: Security,
}

#[derive(Deserialize)]
struct Security {
    rootless: bool,
}

/// Asks Podman at `endpoint`. Returns `None` behind TLS, where a
/// connection of its own is not made here.
pub(super) async fn ask(endpoint: &Endpoint) -> Option<io::Result<PodmanHost>> {
    if endpoint.tls.is_some() {
        return None;
    }
    let asked = async {
        let body = if let Some(connected) = endpoint.connect_plain().await {
            get(TokioIo::new(connected?)).await?
        } else {
            let (stream, said_by_ssh) = dial_stdio::open(&endpoint.host)?;
            get(stream)
                .await
                .map_err(|err| said_by_ssh.last().map_or(err, io::Error::other))?
        };
        parse(&body)
    };
    Some(
        tokio::time::timeout(WITHIN, asked)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} s", WITHIN.as_secs()),
                ))
            }),
    )
}

fn parse(body: &[u8]) -> io::Result<PodmanHost> {
    let info: Info = serde_json::from_slice(body)
        .map_err(|err| io::Error::other(format!("its info is not what Podman gives: {err}")))?;
    Ok(PodmanHost {
        rootless: info.host.security.rootless,
        cgroup_version: info.host.cgroup_version,
    })
}

async fn get<T>(io: T) -> io::Result<Bytes>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(connection);
    // Podman serves its own API under any version it has.
    let request = hyper::Request::get("/v4.0.0/libpod/info")
        .header(HOST, "podman")
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    let status = response.status();
    if !status.is_success() {
        return Err(io::Error::other(format!("its info was refused ({status})")));
    }
    Limited::new(response.into_body(), AT_MOST)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rootless_podman_on_cgroups_v1_drops_limits() {
        let info = |rootless: bool, version: &str| {
            parse(
                format!(
                    r#"{{"host":{{"cgroupVersion":"{version}","security":{{"rootless":{rootless},"seccompEnabled":true}}}},"store":{{}}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert!(info(true, "v1").drops_limits());
        assert!(!info(true, "v2").drops_limits());
        assert!(!info(false, "v1").drops_limits());
        assert!(parse(b"{\"host\":{}}").is_err());
    }
}
