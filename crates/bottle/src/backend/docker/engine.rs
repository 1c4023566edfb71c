//! Talking to the engine: choose it, connect, negotiate the API version,
//! ask what it is.

use std::fmt;
use std::time::Duration;

use bollard::Docker;

use super::dial_stdio;
use super::endpoint::{self, Endpoint};
use crate::error::{Error, Result};
use crate::settings::{DOCKER_CONTEXT, DOCKER_HOST};

/// How long connecting to an engine may take before it counts as absent.
/// Once connected, a busy engine is slow, not absent: Podman serving
/// several starts at once takes seconds to answer even `version`, so the
/// answer gets the time every engine call gets (`CLAUDE_BOTTLE_ENGINE_TIMEOUT`).
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// Over ssh the connection is the login, and the first answer waits for it.
const SSH_ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Connects to the engine the environment chooses, as the docker CLI
/// would.
pub(super) async fn connect() -> Result<Docker> {
    Ok(reach().await?.1)
}

/// The engine the environment chooses, connected; where nothing chooses
/// one and no Docker engine answers at the local socket, Podman's socket
/// that answers first (rootless, then rootful), else Docker's error.
async fn reach() -> Result<(Endpoint, Docker)> {
    let endpoint = chosen()?;
    let docker_error = match connect_to(&endpoint).await {
        Ok(docker) => return Ok((endpoint, docker)),
        Err(err) if endpoint.chosen_by == endpoint::ChosenBy::Default => err,
        Err(err) => return Err(err),
    };
    for podman in endpoint::podman_sockets(&|name| std::env::var(name).ok()) {
        if let Ok(docker) = connect_to(&podman).await {
            return Ok((podman, docker));
        }
    }
    Err(docker_error)
}

pub(super) fn chosen() -> Result<Endpoint> {
    endpoint::choose(&|name| std::env::var(name).ok())
}

/// How long the engine may take to answer once connected, never longer
/// than any call is given. Over ssh the first answer waits for the login
/// as well; over TLS, which is not probed (a bare connection would be a
/// failed handshake in the engine's log), it must come as soon as a
/// connection would.
fn answer_within(endpoint: &Endpoint, call_timeout: Duration) -> Duration {
    if endpoint.host.starts_with("ssh://") {
        SSH_ANSWER_WITHIN.min(call_timeout)
    } else if endpoint.tls.is_some() {
        CONNECT_WITHIN.min(call_timeout)
    } else {
        call_timeout
    }
}

/// Connects to the engine's socket or plain port and lets go: whether
/// anything is there, told within `CONNECT_WITHIN`. Over ssh and TLS the
/// first answer tells it (`answer_within`).
async fn connects(endpoint: &Endpoint) -> std::io::Result<()> {
    let connect = async {
        let connected = endpoint.connect_plain().await;
        connected.map_or(Ok(()), |connected| connected.map(drop))
    };
    tokio::time::timeout(CONNECT_WITHIN, connect)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                no_answer_within(CONNECT_WITHIN),
            ))
        })
}

async fn connect_to(endpoint: &Endpoint) -> Result<Docker> {
    let unreachable = |detail: &dyn fmt::Display| unreachable(endpoint, detail);
    // Every call is bounded: a hung engine fails the command, with a
    // message, instead of holding it for good.
    let timeout = crate::settings::engine_timeout()?;
    let secs = timeout.as_secs();
    let version = bollard::API_DEFAULT_VERSION;
    let mut ssh_errors = None;
    let docker = match &endpoint.tls {
        _ if endpoint.host.starts_with("ssh://") => {
            dial_stdio::connect(&endpoint.host, secs).map(|(docker, errors)| {
                ssh_errors = Some(errors);
                docker
            })
        }
        Some(tls) => {
            for file in [&tls.ca, &tls.cert, &tls.key] {
                if !file.exists() {
                    return Err(Error::new(format!(
                        "the engine at {endpoint} is reached over TLS, but {} is missing",
                        file.display()
                    ))
                    .hint("put the engine's ca.pem and the client's cert.pem and key.pem there"));
                }
            }
            Docker::connect_with_ssl(&endpoint.host, &tls.key, &tls.cert, &tls.ca, secs, version)
        }
        None if endpoint.host.starts_with("unix://") => {
            Docker::connect_with_unix(&endpoint.host, secs, version)
        }
        None => Docker::connect_with_http(&endpoint.host, secs, version),
    }
    .map_err(|err| unreachable(&err))?
    .with_timeout(timeout);
    connects(endpoint).await.map_err(|err| unreachable(&err))?;
    let within = answer_within(endpoint, timeout);
    let negotiated = tokio::time::timeout(within, docker.negotiate_version()).await;
    let said_by_ssh = || ssh_errors.as_ref().and_then(dial_stdio::SshErrors::last);
    match negotiated {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(err)) => Err(unreachable(
            &said_by_ssh().unwrap_or_else(|| failed_answer(&err, within)),
        )),
        Err(_) => Err(unreachable(
            &said_by_ssh().unwrap_or_else(|| no_answer_within(within)),
        )),
    }
}

fn no_answer_within(within: Duration) -> String {
    format!("no answer within {} s", within.as_secs())
}

/// Why a call got no answer: its time ran out (bollard's own bound, the
/// same as `within`, says only "Timeout error"), or the error's root.
fn failed_answer(err: &bollard::errors::Error, within: Duration) -> String {
    if matches!(err, bollard::errors::Error::RequestTimeoutError) {
        no_answer_within(within)
    } else {
        innermost(err)
    }
}

/// Awaits one call of the engine, within the time it is given to answer
/// (`docker` holds the time every call gets).
async fn answered<T>(
    endpoint: &Endpoint,
    docker: &Docker,
    call: impl std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
) -> Result<T> {
    let within = answer_within(endpoint, docker.timeout());
    tokio::time::timeout(within, call)
        .await
        .map_err(|_| unreachable(endpoint, &no_answer_within(within)))?
        .map_err(|err| unreachable(endpoint, &failed_answer(&err, within)))
}

/// The engine, and what it says of itself in one `info` and one `version`.
#[derive(Debug)]
pub(super) struct Engine {
    pub(super) docker: Docker,
    /// Where it is, and how it is reached.
    pub(super) endpoint: Endpoint,
    /// The runtimes it has registered, sorted. Podman lists every one its
    /// configuration names, installed or not.
    pub(super) runtimes: Vec<String>,
    /// The engine's own ID (Docker's `info`), empty where it gives none.
    pub(super) id: String,
    /// The name of the host it runs on, as it says.
    pub(super) host_name: String,
    /// Each runtime's executable, as the engine's configuration names it
    /// (a path on the engine's host, or a name on its `PATH`).
    pub(super) runtime_paths: std::collections::BTreeMap<String, String>,
    /// The one a container gets when it names none.
    pub(super) default_runtime: Option<String>,
    /// As the engine names it: `x86_64`, `aarch64`, ...
    pub(super) architecture: String,
    /// Where it keeps images and containers, on its own host.
    pub(super) root_dir: Option<String>,
    /// The limits its `info` says it can hold (Podman's claims all).
    pub(super) limit_controllers: LimitControllers,
    pub(super) identity: Identity,
}

/// Which of a container's limits the engine says its kernel can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LimitControllers {
    pub(super) memory: bool,
    pub(super) pids: bool,
    pub(super) cpus: bool,
}

/// Which engine this is, for the plan and `list`: "Docker Engine 26.1.5
/// (API 1.45) at tcp://… (TLS), context `big`".
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) product: String,
    pub(super) version: String,
    pub(super) api_version: String,
    pub(super) endpoint: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (API {}) at {}",
            self.product, self.version, self.api_version, self.endpoint
        )
    }
}

impl Engine {
    /// The runtimes it offers a container.
    pub(super) fn offered(&self) -> super::runtime::Offered<'_> {
        super::runtime::Offered {
            registered: &self.runtimes,
            default: self.default_runtime.as_deref(),
        }
    }
}

impl Identity {
    /// Podman serving the Docker API: it names its first component
    /// "Podman Engine".
    pub(super) fn is_podman(&self) -> bool {
        self.product.starts_with("Podman")
    }

    fn of(endpoint: &Endpoint, version: bollard::models::SystemVersion) -> Self {
        // A dockerd names its first component "Engine"; Podman "Podman Engine".
        let product = match version.components.iter().flatten().next() {
            Some(first) if first.name != "Engine" && !first.name.is_empty() => first.name.clone(),
            _ => "Docker Engine".to_owned(),
        };
        Self {
            product,
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            endpoint: endpoint.to_string(),
        }
    }
}

/// Connects and asks the engine about itself.
pub(super) async fn ask() -> Result<Engine> {
    let (endpoint, docker) = reach().await?;
    let (info, version) = answered(&endpoint, &docker, async {
        tokio::try_join!(docker.info(), docker.version())
    })
    .await?;
    let runtime_paths: std::collections::BTreeMap<String, String> = info
        .runtimes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, runtime)| (name, runtime.path.unwrap_or_default()))
        .collect();
    Ok(Engine {
        docker,
        id: info.id.unwrap_or_default(),
        host_name: info.name.unwrap_or_default(),
        runtimes: runtime_paths.keys().cloned().collect(),
        runtime_paths,
        default_runtime: info.default_runtime,
        architecture: info.architecture.unwrap_or_default(),
        root_dir: info.docker_root_dir,
        // An engine that does not say is taken at its word elsewhere: a
        // start reads the limits back.
        limit_controllers: LimitControllers {
            memory: info.memory_limit.unwrap_or(true),
            pids: info.pids_limit.unwrap_or(true),
            cpus: info.cpu_cfs_quota.unwrap_or(true),
        },
        identity: Identity::of(&endpoint, version),
        endpoint,
    })
}

/// The root of an error's chain: "Connection refused (os error 111)"
/// rather than the client's "client error (Connect)" around it.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .last()
        .map_or_else(String::new, ToString::to_string)
}

fn unreachable(endpoint: &Endpoint, detail: &dyn fmt::Display) -> Error {
    let error = Error::new(format!("no Docker engine answers at {endpoint} ({detail})"));
    match &endpoint.chosen_by {
        endpoint::ChosenBy::Default => error.hint(format!(
            "start Docker (or Podman's service: `podman system service`), or set {} (or {}) \
             to the engine to use",
            DOCKER_HOST.name, DOCKER_CONTEXT.name
        )),
        endpoint::ChosenBy::Podman { .. } => error.hint(format!(
            "start Podman's service (`podman system service`), or set {} to the engine to use",
            DOCKER_HOST.name
        )),
        endpoint::ChosenBy::DockerHost => error.hint(format!(
            "start that engine, or correct or unset {}",
            DOCKER_HOST.name
        )),
        endpoint::ChosenBy::Context { name, .. } => error.hint(format!(
            "start the engine of the context `{name}`, or choose another with \
             `docker context use` or {}",
            DOCKER_CONTEXT.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{SystemVersion, SystemVersionComponents};

    fn identity(first_component: &str) -> Identity {
        let version = SystemVersion {
            version: Some("4.3.1".into()),
            api_version: Some("1.41".into()),
            components: Some(vec![SystemVersionComponents {
                name: first_component.into(),
                version: "4.3.1".into(),
                details: None,
            }]),
            ..Default::default()
        };
        let endpoint = endpoint::choose(&|name| {
            (name == "DOCKER_HOST").then(|| "unix:///run/podman/podman.sock".to_owned())
        })
        .unwrap();
        Identity::of(&endpoint, version)
    }

    #[test]
    fn podman_is_told_from_docker_by_its_first_component() {
        let podman = identity("Podman Engine");
        assert!(podman.is_podman());
        assert_eq!(podman.product, "Podman Engine");
        let docker = identity("Engine");
        assert!(!docker.is_podman());
        assert_eq!(docker.product, "Docker Engine");
    }
}
