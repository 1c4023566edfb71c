//! How the agent's container reaches its gate, by engine.
//!
//! On Docker the agent is on an internal network of its own, where the gate
//! has an address: Docker gives that network's bridge no address on the
//! host (`inhibit_ipv4`) and drops what would leave it. Podman's internal
//! networks give the host an address on each (netavark ignores
//! `inhibit_ipv4`, and the bottle's hosts file names it
//! `host.containers.internal`), so a bottle there would reach every service
//! the host listens on. On Podman the agent's container therefore has no
//! network at all: a helper started in its namespace binds the gate's port
//! on its loopback and hands the listener to the gate
//! (`egress_gate::handoff`), through a volume only the two of them mount.

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};

use super::gate::{GATE_USER, PORT};
use super::ledger::{Created, Ledger};
use crate::error::{Error, Result};
use crate::lifecycle::labels::{InstanceLabels, Role};

/// Where the gate and the helper share the handoff's socket.
const HANDOFF_DIR: &str = "/run/gate";
const HANDOFF_SOCKET: &str = "/run/gate/handoff.sock";

/// How the agent reaches its gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// On the bottle's internal network, at the gate's address there.
    InternalNetwork,
    /// On the agent's own loopback, in a container with no network.
    Loopback,
}

impl Reach {
    pub(super) fn on(podman: bool) -> Self {
        if podman {
            Self::Loopback
        } else {
            Self::InternalNetwork
        }
    }

    /// The gate's own argv, where it listens.
    pub(super) fn gate_listen_args(self) -> Vec<String> {
        match self {
            Self::InternalNetwork => vec!["--listen".into(), format!("0.0.0.0:{PORT}")],
            Self::Loopback => vec!["--listen-from".into(), HANDOFF_SOCKET.into()],
        }
    }

    /// The gate's mounts: the handoff's directory, an anonymous volume
    /// that goes with the gate's container.
    pub(super) fn gate_mounts(self, labels: &InstanceLabels) -> Option<Vec<Mount>> {
        (self == Self::Loopback).then(|| {
            vec![Mount {
                target: Some(HANDOFF_DIR.into()),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    labels: Some(labels.for_role(Role::Gate)),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        })
    }
}

/// The agent's network namespace, as the helper joined it: by the path of
/// the agent's first process, which names no container. A helper that
/// joined `container:<agent>` would make the agent depend on it, and
/// Podman refuses to remove a container with a dependant: an agent whose
/// dead-man switch fired while the helper was still there would stay,
/// stopped, with no one left to remove it.
pub(super) struct Joined {
    pid: i64,
    /// The helper's dead-man switch: it ends, waiting or not, once this is
    /// dropped or the CLI dies.
    _deadman: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Starts the helper that hands the gate its listener (recorded in
/// `ledger`) in the network namespace of the agent's running container.
/// The helper removes itself.
pub(super) async fn hand_over(
    docker: &Docker,
    gate_image: &str,
    gate: &str,
    agent: &str,
    labels: &InstanceLabels,
    ledger: &mut Ledger,
) -> Result<Joined> {
    let failed = |err: crate::error::Cause| {
        Error::caused_by(
            "cannot start the helper that hands the gate its listener",
            err,
        )
    };
    let (pid, executable) = tokio::try_join!(
        running_pid(docker, agent),
        super::gate_image::executable(docker, gate_image),
    )
    .map_err(failed)?;
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(gate_image.to_owned()),
                entrypoint: Some(vec![executable, "gate-handoff".into()]),
                cmd: Some(vec![
                    "--listen".into(),
                    format!("127.0.0.1:{PORT}"),
                    "--socket".into(),
                    HANDOFF_SOCKET.into(),
                ]),
                // The gate's user: Podman gives a new volume to the user of
                // the first container that mounts it.
                user: Some(GATE_USER.into()),
                attach_stdin: Some(true),
                open_stdin: Some(true),
                stdin_once: Some(true),
                labels: Some(labels.for_role(Role::Handoff)),
                host_config: Some(HostConfig {
                    network_mode: Some(format!("ns:/proc/{pid}/ns/net")),
                    volumes_from: Some(vec![gate.to_owned()]),
                    cap_drop: Some(vec!["ALL".into()]),
                    security_opt: Some(vec!["no-new-privileges".into()]),
                    readonly_rootfs: Some(true),
                    memory: Some(32 << 20),
                    pids_limit: Some(16),
                    auto_remove: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(e.into()))?;
    ledger.record(Created::Container(created.id.clone()));
    let deadman = super::start_with_deadman(
        docker,
        &created.id,
        "the helper that hands the gate its listener",
    )
    .await?;
    Ok(Joined {
        pid,
        _deadman: deadman,
    })
}

impl Joined {
    /// Fails unless the agent's first process still runs once the gate
    /// holds its listener. A process id is another's only once its own has
    /// ended, so the helper joined the agent's namespace and no other.
    /// Releases the helper, done by then.
    pub(super) async fn confirm(self, docker: &Docker, agent: &str) -> Result<()> {
        match running_pid(docker, agent).await {
            Ok(pid) if pid == self.pid => Ok(()),
            Ok(_) => Err(Error::new(
                "the agent's container restarted while its gate was handed its listener",
            )),
            Err(err) => Err(Error::caused_by(
                "the agent's container stopped while its gate was handed its listener",
                err,
            )),
        }
    }
}

/// The engine's id of a running container's first process.
async fn running_pid(docker: &Docker, container: &str) -> Result<i64, crate::error::Cause> {
    let state = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await?
        .state
        .unwrap_or_default();
    match state.pid {
        Some(pid) if pid > 0 && state.running == Some(true) => Ok(pid),
        _ => Err("it is not running".into()),
    }
}
