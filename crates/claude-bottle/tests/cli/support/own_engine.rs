//! An engine of a test's own: Debian trixie's dockerd in a container on
//! the shared engine, reached over `tcp://`. A test may stop it and start
//! it again without touching the engine every other test uses.
//!
//! The container holds what dockerd needs and this machine allows (it
//! refuses `--privileged` for want of `cap_sys_resource`); dockerd runs as
//! an exec, so stopping it leaves the container and its `/var/lib/docker`
//! (a tmpfs) in place for the restart.

use std::process::Command;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::StartExecOptions;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};

use super::{TEST_LABEL, TestContainer, exec};

/// Built by `scripts/test`: Debian trixie with `docker.io` and iptables.
pub(crate) const DOCKERD_IMAGE: &str = "claude-bottle-test/dockerd:trixie";
const PORT: u16 = 2375;

pub(crate) struct OwnEngine {
    container: TestContainer,
    outer: Docker,
    /// The engine itself.
    pub(crate) docker: Docker,
    /// Its `DOCKER_HOST`.
    pub(crate) host: String,
}

impl OwnEngine {
    /// Starts an engine in a container labelled `label` and loads
    /// `images` into it from the shared engine.
    pub(crate) async fn start(outer: &Docker, label: &str, images: &[&str]) -> Self {
        let created = outer
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some(DOCKERD_IMAGE.into()),
                    cmd: Some(vec!["sleep".into(), "infinity".into()]),
                    labels: Some([(TEST_LABEL.to_owned(), label.to_owned())].into()),
                    host_config: Some(HostConfig {
                        init: Some(true),
                        cap_add: Some(vec!["ALL".into()]),
                        cap_drop: Some(vec!["SYS_RESOURCE".into()]),
                        security_opt: Some(vec![
                            "seccomp=unconfined".into(),
                            "apparmor=unconfined".into(),
                        ]),
                        // `--security-opt systempaths=unconfined`: a
                        // writable /proc/sys for dockerd's network set-up.
                        masked_paths: Some(vec![]),
                        readonly_paths: Some(vec![]),
                        binds: Some(vec!["/sys/fs/cgroup:/sys/fs/cgroup".into()]),
                        tmpfs: Some(
                            [
                                ("/run".to_owned(), String::new()),
                                ("/var/lib/docker".to_owned(), "exec".to_owned()),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let container = TestContainer::adopt(created.id);
        outer
            .start_container(
                &container.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
        let address = outer
            .inspect_container(&container.id, None::<InspectContainerOptions>)
            .await
            .unwrap()
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove("bridge"))
            .and_then(|e| e.ip_address)
            .filter(|a| !a.is_empty())
            .expect("the engine's container has an address");
        let host = format!("tcp://{address}:{PORT}");
        let docker = Docker::connect_with_http(&host, 30, bollard::API_DEFAULT_VERSION).unwrap();
        let engine = Self {
            container,
            outer: outer.clone(),
            docker,
            host,
        };
        engine.resume().await;
        for image in images {
            engine.load(image);
        }
        engine
    }

    /// Starts dockerd and waits until it answers.
    pub(crate) async fn resume(&self) {
        let exec = self
            .outer
            .create_exec(
                &self.container.id,
                ExecConfig {
                    cmd: Some(
                        [
                            "sh",
                            "-c",
                            &format!(
                                "exec dockerd -H tcp://0.0.0.0:{PORT} --tls=false \
                                 >>/var/log/dockerd.log 2>&1"
                            ),
                        ]
                        .map(str::to_owned)
                        .into(),
                    ),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.outer
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.docker.ping().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the test's own dockerd did not answer within 60 s: {}",
                self.log().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops dockerd as `systemctl stop docker` would (SIGTERM), and waits
    /// until it has exited.
    pub(crate) async fn stop(&self) {
        let (code, out) = exec(
            &self.outer,
            &self.container.id,
            &[
                "sh",
                "-c",
                "pkill -TERM -x dockerd; while pgrep -x dockerd >/dev/null; do sleep 0.1; done",
            ],
            &[],
        )
        .await;
        assert_eq!(code, 0, "stopping dockerd: {out}");
    }

    /// The version the engine reports, for the test's figures.
    pub(crate) async fn version(&self) -> String {
        self.docker
            .version()
            .await
            .unwrap()
            .version
            .unwrap_or_default()
    }

    async fn log(&self) -> String {
        exec(
            &self.outer,
            &self.container.id,
            &["tail", "-n", "20", "/var/log/dockerd.log"],
            &[],
        )
        .await
        .1
    }

    /// Copies `image` from the shared engine.
    fn load(&self, image: &str) {
        let out = Command::new("sh")
            .args([
                "-c",
                r#"docker save "$1" | DOCKER_HOST="$2" docker load -q"#,
                "sh",
                image,
                &self.host,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "loading {image} into the test's own engine: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
