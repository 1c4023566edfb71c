//! Fixtures on the real engine: containers and networks that a test owns
//! (labelled with its run, removed even when it panics), and the images
//! `scripts/test` builds for them.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, StartContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;

/// Built by `scripts/test`: Debian bookworm with git, ssh, curl, tar, procps.
pub(crate) const BASE_IMAGE: &str = "claude-bottle-test/debian:bookworm";
/// The fake claude, as `claude`, for user `agent` in `/workspace`.
pub(crate) const FAKE_CLAUDE_IMAGE: &str = "claude-bottle-test/fake-claude";
/// `mock-anthropic` and `sink`.
pub(crate) const FIXTURES_IMAGE: &str = "claude-bottle-test/fixtures";
/// The egress gate: the static claude-bottle alone, entrypoint `gate`.
pub(crate) const GATE_IMAGE: &str = "claude-bottle-test/gate";
/// The real Claude Code native binary, for user `agent` in `/workspace`.
pub(crate) const CLAUDE_CODE_IMAGE: &str = "claude-bottle-test/claude-code:2.1.332";
/// `sshd` for user `git` with a bare `repo.git`; `AUTHORIZED_KEYS` and
/// `SSHD_PORT` at run time.
pub(crate) const SSHD_IMAGE: &str = "claude-bottle-test/sshd";
/// Every container a test creates carries this label, valued by test run.
pub(crate) const TEST_LABEL: &str = "io.claude-bottle.test";

/// A container made by a test; removed when dropped, panics included.
pub(crate) struct TestContainer {
    pub(crate) id: String,
}

impl TestContainer {
    /// Starts a created container and takes charge of it.
    async fn started(docker: &Docker, id: String) -> Self {
        let container = Self::adopt(id);
        docker
            .start_container(&container.id, None::<StartContainerOptions>)
            .await
            .unwrap();
        container
    }

    /// Takes charge of a container created elsewhere in a test.
    pub(crate) fn adopt(id: String) -> Self {
        Self { id }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let id = self.id.clone();
        let removed = finish_in_drop(async move {
            in_drop()
                .await?
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
        });
        if let Some(Err(err)) = removed {
            eprintln!("could not remove test container {}: {err}", self.id);
        }
    }
}

/// A connection of the drop's own runtime: one made on the test's runtime
/// may hold pooled connections whose tasks that runtime, blocked in the
/// drop, never runs.
async fn in_drop() -> Result<bollard::Docker, bollard::errors::Error> {
    bottle::backend::docker::connect()
        .await
        .map_err(|err| bollard::errors::Error::IOError {
            err: std::io::Error::other(err.to_line()),
        })
}

/// Runs `work` to its end from a `Drop`, which cannot await: on a
/// short-lived runtime of its own thread. `None` if that thread panicked.
fn finish_in_drop<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .ok()
}

/// An image tag made by a test, or by the binary for a test; removed when
/// dropped, panics included.
pub(crate) struct TestImage {
    docker: Docker,
    pub(crate) tag: String,
    /// The engine's socket, where it is not the default engine's: the
    /// drop connects anew.
    socket: Option<String>,
}

impl TestImage {
    /// Takes charge of `tag`, whether or not it exists yet.
    pub(crate) fn adopt(docker: &Docker, tag: &str) -> Self {
        Self {
            docker: docker.clone(),
            tag: tag.to_owned(),
            socket: None,
        }
    }

    /// Removed when dropped through the engine at `socket`, not the
    /// default one.
    pub(crate) fn on_socket(mut self, socket: &str) -> Self {
        self.socket = Some(socket.to_owned());
        self
    }

    /// A new image of the base with `labels` (and no layer of its own),
    /// tagged `tag`; the tag is a label too, so no two share an ID.
    pub(crate) async fn labelled(docker: &Docker, tag: &str, labels: &[(&str, &str)]) -> Self {
        Self::build(docker, tag, &format!("FROM {BASE_IMAGE}\n"), labels).await
    }

    /// An image of `dockerfile` (no context besides), built without a
    /// network and tagged `tag`.
    pub(crate) async fn build(
        docker: &Docker,
        tag: &str,
        dockerfile: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let mut context = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        context
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .unwrap();
        let options = BuildImageOptions {
            t: Some(tag.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .chain(&[("test.image", tag)])
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            networkmode: Some("none".to_owned()),
            ..Default::default()
        };
        let image = Self::adopt(docker, tag);
        let body = bollard::body_full(context.into_inner().unwrap().into());
        let mut build = docker.build_image(options, None, Some(body));
        while let Some(step) = build.next().await {
            assert!(step.unwrap().error_detail.is_none(), "building {tag}");
        }
        image
    }

    pub(crate) async fn id(&self) -> Option<String> {
        self.docker
            .inspect_image(&self.tag)
            .await
            .ok()
            .and_then(|i| i.id)
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let (tag, socket) = (self.tag.clone(), self.socket.clone());
        finish_in_drop(async move {
            let docker = match socket {
                Some(socket) => {
                    Docker::connect_with_unix(&socket, 30, bollard::API_DEFAULT_VERSION)?
                }
                None => in_drop().await?,
            };
            docker
                .remove_image(&tag, None::<RemoveImageOptions>, None)
                .await
        });
    }
}

/// Runs `script` with `sh -c` in a new container of `image` under `runtime`;
/// returns its exit code and its output (stdout and stderr together).
pub(crate) async fn run_in_container(
    docker: &Docker,
    image: &str,
    runtime: &str,
    run_label: &str,
    script: &str,
) -> (i64, String) {
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.into()),
                cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
                labels: Some([(TEST_LABEL.to_owned(), run_label.to_owned())].into()),
                host_config: Some(HostConfig {
                    runtime: Some(runtime.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let container = TestContainer::started(docker, created.id).await;
    let mut wait = docker.wait_container(&container.id, None::<WaitContainerOptions>);
    let code = match tokio::time::timeout(Duration::from_secs(60), wait.next()).await {
        Ok(Some(Ok(response))) => response.status_code,
        Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
        other => panic!("waiting for the container: {other:?}"),
    };
    let mut logs = docker.logs(
        &container.id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut output = String::new();
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.unwrap().to_string());
    }
    (code, output)
}

pub(crate) async fn containers_labelled(docker: &Docker, run_label: &str) -> usize {
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(
                [(
                    "label".to_owned(),
                    vec![format!("{TEST_LABEL}={run_label}")],
                )]
                .into(),
            ),
            ..Default::default()
        }))
        .await
        .unwrap()
        .len()
}

/// An internal network made by a test; removed when dropped, panics included.
pub(crate) struct TestNetwork {
    pub(crate) name: String,
}

impl TestNetwork {
    /// An internal network: fixtures on it cannot reach the real internet.
    pub(crate) async fn create(docker: &Docker, run_label: &str) -> Self {
        Self::new(docker, run_label, true).await
    }

    /// An ordinary bridge network with a route to the host (for controls).
    pub(crate) async fn create_routed(docker: &Docker, run_label: &str) -> Self {
        Self::new(docker, run_label, false).await
    }

    async fn new(docker: &Docker, run_label: &str, internal: bool) -> Self {
        let name = format!("cbt-{run_label}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        create_network(
            docker,
            NetworkCreateRequest {
                name: name.clone(),
                // No route out: fixtures play the internet, nothing else may.
                internal: Some(internal),
                labels: Some([(TEST_LABEL.to_owned(), run_label.to_owned())].into()),
                ..Default::default()
            },
        )
        .await;
        Self { name }
    }
}

/// Creates a network, its ID, asked again where Podman refuses while
/// another test's interfaces go, as the CLI's own creates are.
pub(crate) async fn create_network(docker: &Docker, request: NetworkCreateRequest) -> String {
    bottle::backend::docker::create_network(docker, request)
        .await
        .unwrap()
        .id
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let name = self.name.clone();
        let removed = finish_in_drop(async move { in_drop().await?.remove_network(&name).await });
        if let Some(Err(err)) = removed {
            eprintln!("could not remove test network {}: {err}", self.name);
        }
    }
}

/// A long-running fixture container: what it runs and where. By default
/// the image's own command under runc, no environment, no alias, no mounts.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    image: String,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    network: String,
    alias: Option<String>,
    runtime: String,
    binds: Vec<String>,
}

impl Service {
    pub(crate) fn new(image: &str, network: &TestNetwork) -> Self {
        Self {
            image: image.to_owned(),
            cmd: None,
            env: Vec::new(),
            network: network.name.clone(),
            alias: None,
            runtime: "runc".to_owned(),
            binds: Vec::new(),
        }
    }

    /// The mock Anthropic API playing `script`, as `mock`.
    pub(crate) fn mock(network: &TestNetwork, script: &serde_json::Value) -> Self {
        Self::new(FIXTURES_IMAGE, network)
            .cmd(&["mock-anthropic"])
            .env("MOCK_SCRIPT", &script.to_string())
            .alias("mock")
    }

    /// The sink, as `alias`: it records every connection on 80 and 443.
    pub(crate) fn sink(network: &TestNetwork, alias: &str) -> Self {
        Self::new(FIXTURES_IMAGE, network)
            .cmd(&["sink"])
            .alias(alias)
    }

    /// A container of `image` that only waits, for a test to exec into.
    pub(crate) fn idle(image: &str, network: &TestNetwork, alias: &str) -> Self {
        Self::new(image, network)
            .cmd(&["sleep", "300"])
            .alias(alias)
    }

    pub(crate) fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = Some(cmd.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push(format!("{name}={value}"));
        self
    }

    /// The name other containers on the network reach it by.
    pub(crate) fn alias(mut self, alias: &str) -> Self {
        self.alias = Some(alias.to_owned());
        self
    }

    pub(crate) fn runtime(mut self, runtime: &str) -> Self {
        runtime.clone_into(&mut self.runtime);
        self
    }

    /// Mounts a host path read-only.
    pub(crate) fn bind(mut self, host: &std::path::Path, container: &str) -> Self {
        self.binds
            .push(format!("{}:{container}:ro", host.display()));
        self
    }

    /// Starts it, labelled with `run_label`; the container and its address
    /// on the network.
    pub(crate) async fn start(&self, docker: &Docker, run_label: &str) -> (TestContainer, String) {
        let endpoint = EndpointSettings {
            aliases: self.alias.clone().map(|a| vec![a]),
            ..Default::default()
        };
        let created = docker
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some(self.image.clone()),
                    cmd: self.cmd.clone(),
                    env: Some(self.env.clone()),
                    labels: Some([(TEST_LABEL.to_owned(), run_label.to_owned())].into()),
                    host_config: Some(HostConfig {
                        runtime: Some(self.runtime.clone()),
                        network_mode: Some(self.network.clone()),
                        binds: Some(self.binds.clone()),
                        ..Default::default()
                    }),
                    networking_config: Some(NetworkingConfig {
                        endpoints_config: Some([(self.network.clone(), endpoint)].into()),
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let container = TestContainer::started(docker, created.id).await;
        let inspect = docker
            .inspect_container(&container.id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let address = inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.network))
            .and_then(|e| e.ip_address)
            .expect("an address on the test network");
        (container, address)
    }
}

/// A GET made by a throwaway container in the engine's own network
/// namespace, where its containers' addresses lead.
fn get_from_the_engine(address: &str, port: u16, path: &str) -> std::io::Result<String> {
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "host", super::BASE_IMAGE])
        .args([
            "curl",
            "-fsS",
            "-m",
            "5",
            &format!("http://{address}:{port}{path}"),
        ])
        .output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// The `tool_result` block of the last message of a request the mock API
/// recorded: what a tool call that real Claude Code made gave back.
pub(crate) fn tool_result(request: &serde_json::Value) -> serde_json::Value {
    let last = &request["body"]["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .unwrap_or_else(|| panic!("no messages in {request:#}"))["content"];
    last.as_array()
        .into_iter()
        .flatten()
        .find(|block| block["type"] == "tool_result")
        .cloned()
        .unwrap_or_else(|| panic!("no tool_result in {last:#}"))
}

/// What a fixture recorded (`/_records`, `/_requests`, `/_queries`), as
/// the JSON list it serves.
pub(crate) fn fixture_json(address: &str, port: u16, path: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&http_get(address, port, path))
        .unwrap_or_else(|err| panic!("{path} of {address}: {err}"))
}

/// A plain HTTP GET to a fixture; the body, once it answers 200 (retried
/// for up to 10 s while the fixture starts). From this machine when the
/// engine's networks are its own; else from the engine's side, never
/// towards an address that would leave the machine.
pub(crate) fn http_get(address: &str, port: u16, path: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let local = super::engine::networks_are_local();
    loop {
        let attempt = (|| -> std::io::Result<String> {
            // Loopback is this machine's whatever the engine.
            if !local && !address.starts_with("127.") {
                return get_from_the_engine(address, port, path);
            }
            let mut stream = TcpStream::connect((address, port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            match response.split_once("\r\n\r\n") {
                Some((head, body))
                    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
                {
                    Ok(body.to_owned())
                }
                _ => Err(std::io::Error::other(format!(
                    "unexpected answer: {response}"
                ))),
            }
        })();
        match attempt {
            Ok(body) => return body,
            Err(err) if std::time::Instant::now() > deadline => {
                panic!("GET http://{address}:{port}{path}: {err}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs a command in a running container without a terminal.
pub(crate) async fn exec(
    docker: &Docker,
    container: &str,
    cmd: &[&str],
    env: &[&str],
) -> (i64, String) {
    let exec = docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
                env: Some(env.iter().map(|s| (*s).to_owned()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("the exec is attached");
    };
    let mut text = String::new();
    let collect = async {
        while let Some(chunk) = output.next().await {
            text.push_str(&chunk.unwrap().to_string());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), collect)
        .await
        .expect("the exec ends");
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .unwrap()
        .exit_code
        .expect("an exit code");
    (code, text)
}
