//! The bottle's gate container: on the egress network and, as `gate`, on
//! the internal one, at the address the internal network set aside for it;
//! or, where the agent has no network, on the agent's loopback (`reach`).
//! The agent container starts while the gate does, but claude runs only
//! once the gate says it listens; a gate that never does fails the launch
//! and takes the agent's container with it.

use egress_gate::event::GateEvent;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig,
    NetworkConnectRequest,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, LogsOptions,
    StartContainerOptions,
};
use futures_util::StreamExt;
use tracing::{Instrument as _, info_span};

use super::ledger::{Created, Ledger};
use super::reach::Reach;
use crate::error::{Error, Result};
use crate::lifecycle::labels::{self, InstanceLabels, Role};
use crate::plan::Plan;
use crate::settings::{GATE_IMAGE, GATE_NETWORKS};

/// The name the gate answers to on the internal network.
pub(super) const ALIAS: &str = "gate";
pub(super) const PORT: u16 = 3128;
/// Where the agent reaches a gate on its loopback.
const LOOPBACK: &str = "127.0.0.1";
const READY_WITHIN: Duration = Duration::from_secs(15);
const FLUSHED_WITHIN: Duration = Duration::from_secs(5);
/// What the engine keeps of the gate's log, in each of two files.
const LOG_FILE_SIZE: &str = "8m";
/// The most of the gate's log read back, a little over what it keeps.
const MAX_LOG_READ: usize = 20 << 20;
/// How much of the log the stage directory's copy keeps: its start, which
/// the engine's rotation loses first.
const LOG_KEPT: u64 = 32 << 20;
/// How long the gate's report of refused names may take.
const REPORT_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// A started gate: its container, and the stdin that keeps it alive.
pub(super) struct Gate {
    pub(super) id: String,
    stdin: GateControl,
    log_copy: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.log_copy.abort();
    }
}

/// The gate's stdin: its dead-man switch, and where it is told to flush
/// its log or to log a decision made outside it.
#[derive(Clone)]
pub(super) struct GateControl(
    std::sync::Arc<tokio::sync::Mutex<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>>,
);

impl GateControl {
    /// Sends one line; whether it went.
    pub(super) async fn line(&self, line: &str) -> bool {
        let mut stdin = self.0.lock().await;
        stdin.write_all(line.as_bytes()).await.is_ok()
            && stdin.write_all(b"\n").await.is_ok()
            && stdin.flush().await.is_ok()
    }
}

impl Gate {
    pub(super) fn control(&self) -> GateControl {
        self.stdin.clone()
    }

    /// What it decided, counted in its memory, and what it refused, names
    /// in full: its report, read by an exec in its container, whose output
    /// goes nowhere but here.
    pub(super) async fn report(&self, docker: &Docker) -> Result<egress_gate::Report> {
        let executable = docker
            .inspect_container(&self.id, None)
            .await
            .ok()
            .and_then(|c| c.config?.entrypoint?.into_iter().next())
            .ok_or_else(|| Error::new("the gate names no executable"))?;
        let mut out = Vec::new();
        let (code, said) = super::exec::piped(
            docker,
            &self.id,
            GATE_USER,
            vec![executable, "gate-report".to_owned()],
            vec![],
            None,
            Some(&mut out),
            Some(REPORT_WITHIN),
        )
        .await?;
        if code != 0 {
            return Err(Error::new(format!(
                "the gate's report failed: {}",
                said.trim()
            )));
        }
        serde_json::from_slice(&out)
            .map_err(|err| Error::caused_by("the gate's report does not read as one", err))
    }

    /// Its whole log, once every decision made so far is in it: the gate
    /// writes its log off the request path, and says when it has caught
    /// up. A gate that does not say so within a few seconds gives what
    /// its log holds by then.
    pub(super) async fn drained_log(&self, docker: &Docker) -> Result<Vec<GateEvent>> {
        if self.stdin.line("flush").await {
            let mut said = String::new();
            let followed = follow_until(docker, &self.id, FLUSHED_WITHIN, &mut said, |e| {
                e.is_flushed()
            })
            .await;
            if followed == Followed::Seen {
                return Ok(said.lines().filter_map(GateEvent::parse).collect());
            }
        }
        log(docker, &self.id).await
    }
}

pub(super) struct GateSpec<'a> {
    pub(super) image: &'a str,
    /// The internal network's name and the gate's address there, chosen
    /// with the network; `None` where the agent reaches the gate on its
    /// loopback.
    pub(super) internal: Option<(&'a str, &'a str)>,
    pub(super) egress: &'a str,
    pub(super) extra_networks: &'a [String],
    pub(super) dns: Option<&'a str>,
    /// Where its log is copied as it comes (the stage directory).
    pub(super) log_copy: &'a std::path::Path,
}

/// The gate runs as nobody.
pub(super) const GATE_USER: &str = "65534:65534";

/// The gate's argv: what it listens on and what the plan lets through.
fn gate_args(plan: &Plan, spec: &GateSpec<'_>) -> Vec<String> {
    let mut args = spec.reach().gate_listen_args();
    for entry in &plan.egress.allowlist {
        args.extend(["--allow".to_owned(), entry.clone()]);
    }
    for entry in &plan.egress.private {
        args.extend(["--private".to_owned(), entry.clone()]);
    }
    for ssh in &plan.ssh {
        args.extend(["--ssh".to_owned(), format!("{}:{}", ssh.hostname, ssh.port)]);
    }
    for expected in crate::claude_traffic::EXPECTED {
        args.extend(["--expected".to_owned(), expected.name.to_owned()]);
    }
    if let Some(dns) = spec.dns {
        args.extend(["--dns".to_owned(), dns.to_owned()]);
    }
    args
}

impl GateSpec<'_> {
    fn reach(&self) -> Reach {
        if self.internal.is_some() {
            Reach::InternalNetwork
        } else {
            Reach::Loopback
        }
    }
}

/// A gate created and on its networks, not yet started.
pub(super) struct CreatedGate {
    pub(super) id: String,
    /// Where the agent reaches it.
    address: String,
    /// The internal network's name, where the gate is on one.
    internal: Option<String>,
    /// What it was created with, to be read back (`limits::held`).
    limits: super::limits::Limits,
    stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// Its stdout as it writes it, before any log driver: the copy's source.
    output: Output,
    log_copy: std::path::PathBuf,
}

type Output = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
            + Send,
    >,
>;

/// Creates the gate (recorded in `ledger`) and joins it to its networks.
pub(super) async fn create(
    docker: &Docker,
    plan: &Plan,
    spec: &GateSpec<'_>,
    labels: &InstanceLabels,
    ledger: &mut Ledger,
) -> Result<CreatedGate> {
    let failed = |what: &str, err: crate::error::Cause| {
        Error::caused_by(format!("the egress gate {what}"), err)
    };
    let args = gate_args(plan, spec);
    let ipv6 = uses_ipv6(docker, spec).await;
    let host_config = HostConfig {
        mounts: spec.reach().gate_mounts(labels),
        ..host_config(plan, spec, ipv6)
    };
    let limits = super::limits::Limits::of(&host_config);
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("{}-gate", plan.instance)),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(spec.image.to_owned()),
                cmd: Some(args),
                user: Some(GATE_USER.into()),
                labels: Some(labels.for_role(Role::Gate)),
                attach_stdin: Some(true),
                open_stdin: Some(true),
                stdin_once: Some(true),
                host_config: Some(host_config),
                ..Default::default()
            },
        )
        .instrument(info_span!("container"))
        .await
        .map_err(|err| {
            failed("could not be created", err.into())
                .hint(format!("check {} (the gate image)", GATE_IMAGE.name))
        })?;
    ledger.record(Created::Container(created.id.clone()));
    let join = |aliases: Option<Vec<String>>, address: Option<&str>| NetworkConnectRequest {
        container: created.id.clone(),
        endpoint_config: Some(EndpointSettings {
            aliases,
            ipam_config: address.map(|address| EndpointIpamConfig {
                ipv4_address: Some(address.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    if let Some((internal, address)) = spec.internal {
        docker
            .connect_network(internal, join(Some(vec![ALIAS.to_owned()]), Some(address)))
            .instrument(info_span!("connect"))
            .await
            .map_err(|err| failed("could not join the internal network", err.into()))?;
    }
    for network in spec.extra_networks {
        docker
            .connect_network(network, join(None, None))
            .await
            .map_err(|err| {
                Error::caused_by(format!("the gate cannot join the network `{network}`"), err).hint(
                    format!(
                        "{} names existing Docker networks, separated by commas",
                        GATE_NETWORKS.name
                    ),
                )
            })?;
    }
    let attached = docker
        .attach_container(
            &created.id,
            Some(AttachContainerOptions {
                stdin: true,
                stdout: true,
                stream: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|err| failed("could not be attached", err.into()))?;
    Ok(CreatedGate {
        id: created.id,
        address: spec
            .internal
            .map_or(LOOPBACK, |(_, address)| address)
            .to_owned(),
        internal: spec.internal.map(|(name, _)| name.to_owned()),
        limits,
        stdin: attached.input,
        output: attached.output,
        log_copy: spec.log_copy.to_owned(),
    })
}

impl CreatedGate {
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    pub(super) fn limits(&self) -> super::limits::Limits {
        self.limits
    }

    /// Starts the gate and waits until it listens where the agent was
    /// told it does.
    pub(super) async fn start(self, docker: &Docker) -> Result<Gate> {
        docker
            .start_container(&self.id, None::<StartContainerOptions>)
            .instrument(info_span!("start"))
            .await
            .map_err(|err| {
                Error::caused_by("the egress gate could not start", err)
                    .hint(format!("check {} (the gate image)", GATE_IMAGE.name))
            })?;
        wait_ready(docker, &self.id)
            .instrument(info_span!("ready"))
            .await?;
        let Some(internal) = &self.internal else {
            return Ok(self.started());
        };
        let address = internal_address(docker, &self.id, internal)
            .instrument(info_span!("address"))
            .await?;
        if address != self.address {
            return Err(Error::new(format!(
                "the egress gate is at {address} on the bottle's network, not at {} as asked; \
                 the bottle was not started",
                self.address
            ))
            .hint("the engine did not give the gate the address it was asked to; report it with `claude-bottle doctor`"));
        }
        Ok(self.started())
    }

    fn started(self) -> Gate {
        Gate {
            id: self.id,
            stdin: GateControl(std::sync::Arc::new(tokio::sync::Mutex::new(self.stdin))),
            log_copy: tokio::spawn(keep_log(self.output, self.log_copy)),
        }
    }
}

/// Copies the gate's stdout, as it writes it, to `path` (the stage
/// directory's), up to [`LOG_KEPT`]: `logs` reads it there, whatever the
/// engine's log driver has rotated away (or, following a rotation, lost
/// or repeated).
async fn keep_log(mut output: Output, path: std::path::PathBuf) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .ok();
    let mut kept = 0;
    // Read to the end whatever becomes of the file: an attached stream
    // that is not read holds the gate's output back.
    while let Some(Ok(chunk)) = output.next().await {
        let LogOutput::StdOut { message } = chunk else {
            continue;
        };
        kept += message.len() as u64;
        if kept > LOG_KEPT
            || file
                .as_mut()
                .is_some_and(|f| f.write_all(&message).is_err())
        {
            file = None;
        }
    }
}

/// How following the gate's output ended.
#[derive(Debug, PartialEq, Eq)]
enum Followed {
    Seen,
    Ended,
    TimedOut,
}

/// Follows the gate's output into `said` (stdout and stderr, as they come)
/// until a line of it is an event `wanted` picks, for `within` at most.
async fn follow_until(
    docker: &Docker,
    id: &str,
    within: Duration,
    said: &mut String,
    wanted: impl Fn(&GateEvent) -> bool,
) -> Followed {
    let mut logs = docker.logs(
        id,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let seen = async {
        // Each line is looked at once, as it completes.
        let mut line = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            let text = chunk.to_string();
            if said.len() < MAX_LOG_READ {
                said.push_str(&text);
            }
            for piece in text.split_inclusive('\n') {
                line.push_str(piece);
                if !line.ends_with('\n') {
                    continue;
                }
                if GateEvent::parse(line.trim_end()).is_some_and(|e| wanted(&e)) {
                    return Followed::Seen;
                }
                line.clear();
            }
        }
        if GateEvent::parse(&line).is_some_and(|e| wanted(&e)) {
            return Followed::Seen;
        }
        Followed::Ended
    };
    tokio::time::timeout(within, seen)
        .await
        .unwrap_or(Followed::TimedOut)
}

/// Waits for the gate's `ready` line; a gate that exits or stays silent
/// fails the launch (fail closed).
async fn wait_ready(docker: &Docker, id: &str) -> Result<()> {
    let mut said = String::new();
    match follow_until(docker, id, READY_WITHIN, &mut said, GateEvent::is_ready).await {
        Followed::Seen => Ok(()),
        outcome => {
            let why = if outcome == Followed::TimedOut {
                "did not get ready in time"
            } else {
                "exited before it was ready"
            };
            Err(
                Error::new(format!("the egress gate {why}; the bottle was not started")).hint(
                    format!(
                        "check {} (the gate image); the gate said: {}",
                        GATE_IMAGE.name,
                        said.trim()
                    ),
                ),
            )
        }
    }
}

/// The gate's container: no capabilities, a read-only root, bounded
/// memory, processes, CPU and log, and no IPv6 unless a network it joins
/// for the user has it.
fn host_config(plan: &Plan, spec: &GateSpec<'_>, ipv6: bool) -> HostConfig {
    HostConfig {
        sysctls: (!ipv6).then(super::no_ipv6),
        network_mode: Some(spec.egress.to_owned()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        readonly_rootfs: Some(true),
        memory: Some(256 << 20),
        pids_limit: Some(256),
        nano_cpus: Some(plan.limits.gate_nano_cpus()),
        // A busy or hostile agent makes decisions without end;
        // the engine keeps only the newest of them.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(
                [
                    ("max-size".to_owned(), LOG_FILE_SIZE.to_owned()),
                    ("max-file".to_owned(), "2".to_owned()),
                ]
                .into(),
            ),
        }),
        auto_remove: Some(true),
        ..Default::default()
    }
}

/// Whether a network named in `CLAUDE_BOTTLE_GATE_NETWORKS` has IPv6:
/// then the gate keeps it, to reach services there.
async fn uses_ipv6(docker: &Docker, spec: &GateSpec<'_>) -> bool {
    for network in spec.extra_networks {
        let inspected = docker
            .inspect_network(
                network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await;
        if inspected.is_ok_and(|n| n.enable_ipv6 == Some(true)) {
            return true;
        }
    }
    false
}

/// The container's address on `network`.
async fn internal_address(docker: &Docker, id: &str, network: &str) -> Result<String> {
    docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|c| {
            // Keyed by name; `network` may be its name or its ID.
            c.network_settings?
                .networks?
                .into_iter()
                .find(|(name, e)| name == network || e.network_id.as_deref() == Some(network))?
                .1
                .ip_address
        })
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::new("the egress gate has no address on the bottle's network"))
}

/// The gate's decision log so far.
pub(super) async fn log(docker: &Docker, id: &str) -> Result<Vec<GateEvent>> {
    let mut logs = docker.logs(
        id,
        Some(LogsOptions {
            stdout: true,
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(chunk) = logs.next().await {
        match chunk {
            Ok(LogOutput::StdOut { message }) if text.len() < MAX_LOG_READ => {
                text.push_str(&String::from_utf8_lossy(&message));
            }
            Ok(_) => {}
            Err(err) => return Err(Error::caused_by("cannot read the gate's log", err)),
        }
    }
    Ok(text.lines().filter_map(GateEvent::parse).collect())
}

/// The running container of `instance` that plays `role`.
pub(super) async fn find_running(
    docker: &Docker,
    instance: &str,
    role: Role,
    scope: &[(String, String)],
) -> Result<String> {
    let mut wanted = vec![
        format!("{}={instance}", labels::INSTANCE),
        format!("{}={}", labels::ROLE, role.as_str()),
    ];
    wanted.extend(scope.iter().map(|(k, v)| format!("{k}={v}")));
    let found = super::containers::list(
        docker,
        ListContainersOptions {
            filters: Some(HashMap::from([("label".to_owned(), wanted)])),
            ..Default::default()
        },
    )
    .await
    .map_err(|err| Error::caused_by("cannot list the engine's containers", err))?;
    found.into_iter().find_map(|c| c.id).ok_or_else(|| {
        Error::new(format!("no running instance named {instance}"))
            .hint("`claude-bottle list` shows the instances there are")
    })
}
