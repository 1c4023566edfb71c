//! Talking to the engine: connect, negotiate the API version, ask.

use std::time::Duration;

use bollard::Docker;

use crate::error::{Error, Result};
use crate::settings::DOCKER_HOST;

/// How long an engine may take to answer before it counts as absent.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Connects as `DOCKER_HOST` says (the local socket by default).
pub(super) async fn connect() -> Result<Docker> {
    // Every call is bounded: a hung engine fails the command, with a
    // message, instead of holding it for good.
    let docker = Docker::connect_with_defaults()
        .map_err(|err| unreachable(&err))?
        .with_timeout(crate::settings::engine_timeout()?);
    tokio::time::timeout(ANSWER_WITHIN, docker.negotiate_version())
        .await
        .map_err(|_| unreachable(&"no answer within 5 s"))?
        .map_err(|err| unreachable(&err))
}

/// The engine, and what it says of itself in one `info`.
#[derive(Debug)]
pub(super) struct Engine {
    pub(super) docker: Docker,
    /// The runtimes it has registered, sorted.
    pub(super) runtimes: Vec<String>,
    /// As the engine names it: `x86_64`, `aarch64`, ...
    pub(super) architecture: String,
}

/// Connects and asks the engine about itself.
pub(super) async fn ask() -> Result<Engine> {
    let docker = connect().await?;
    let info = tokio::time::timeout(ANSWER_WITHIN, docker.info())
        .await
        .map_err(|_| unreachable(&"no answer within 5 s"))?
        .map_err(|err| unreachable(&err))?;
    let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
    runtimes.sort();
    Ok(Engine {
        docker,
        runtimes,
        architecture: info.architecture.unwrap_or_default(),
    })
}

fn unreachable(detail: &dyn std::fmt::Display) -> Error {
    Error::new(format!("no Docker engine answers ({detail})")).hint(format!(
        "start Docker, or set {} to the engine's address",
        DOCKER_HOST.name
    ))
}
