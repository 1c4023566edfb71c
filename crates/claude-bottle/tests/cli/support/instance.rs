//! A bottle instance under test: a sandbox whose bottles run the fake
//! claude, a `start` running in the background, and what an instance
//! leaves on the engine, found by the test's run label.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListNetworksOptions,
};
use fixtures::report::frames;
use serde_json::{Value, json};

use super::label::run_label;
use super::sandbox::{Output, Sandbox};
use super::{
    CLAUDE_CODE_IMAGE, FAKE_CLAUDE_IMAGE, Service, TEST_LABEL, TestContainer, TestNetwork,
};

pub(crate) const HOST_VALUE: &str = "host-token-93ac";
pub(crate) const OAUTH_VALUE: &str = "oauth-token-b77d";
pub(crate) const LITERAL_VALUE: &str = "Ada-literal-5e1";

/// A sandbox whose bottles run the fake claude, carry this test's label and
/// give claude `behaviour` (the fake claude's `FAKE_CLAUDE_*` settings).
pub(crate) fn bottle_sandbox(test: &str, behaviour: &[(&str, &str)]) -> (Sandbox, String) {
    let label = run_label(test);
    let mut env = json!({ "NAME": LITERAL_VALUE, "TOKEN": "${HOST_TOKEN}" });
    for (name, value) in behaviour {
        env[name] = json!(value);
    }
    let manifest = json!({
        "bottles": { "dev": { "env": env, "egress": { "builtin": false } } },
        "agents": { "a": { "bottle": "dev", "skills": ["tdd"], "prompt": "You implement." } },
    });
    let sandbox = Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("HOST_TOKEN", HOST_VALUE)
        .env("CLAUDE_BOTTLE_OAUTH_TOKEN", OAUTH_VALUE);
    sandbox.skill("tdd");
    (sandbox, label)
}

pub(crate) fn label_filter(label: &str, extra: Option<String>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{TEST_LABEL}={label}")];
    labels.extend(extra);
    HashMap::from([("label".to_owned(), labels)])
}

/// Containers and networks that carry `label` (the test's run).
pub(crate) async fn leftovers(docker: &Docker, label: &str) -> (Vec<String>, Vec<String>) {
    let containers = bottle::backend::docker::list_containers(
        docker,
        ListContainersOptions {
            all: true,
            filters: Some(label_filter(label, None)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(label_filter(label, None)),
        }))
        .await
        .unwrap();
    (
        containers.into_iter().filter_map(|c| c.id).collect(),
        networks.into_iter().filter_map(|n| n.id).collect(),
    )
}

/// The instance's containers and networks once only the agent and the gate
/// are left of its containers: on Podman the helper that hands the gate
/// its listener removes itself once it has.
pub(crate) async fn agent_and_gate(docker: &Docker, label: &str) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (containers, networks) = leftovers(docker, label).await;
        if containers.len() == 2 {
            return (containers, networks);
        }
        assert!(
            Instant::now() < deadline,
            "not the agent and the gate alone: {containers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `start` running in the background, its stdin held by the test.
pub(crate) struct Session {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
    /// The threads that read stdout and stderr, joined once the CLI ends.
    drains: Vec<JoinHandle<()>>,
}

impl Session {
    pub(crate) fn spawn(sandbox: &Sandbox, args: &[&str]) -> Self {
        let mut child = sandbox
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut pipe: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            let thread = std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            (text, thread)
        };
        let (stdout, out_thread) = drain(Box::new(child.stdout.take().unwrap()));
        let (stderr, err_thread) = drain(Box::new(child.stderr.take().unwrap()));
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            stdout,
            stderr,
            drains: vec![out_thread, err_thread],
        }
    }

    /// Ends the fake claude's `FAKE_CLAUDE_READ_STDIN` wait and the session.
    /// Its stdout so far, once a line of it starts with `what`: a line
    /// the fake claude's script printed, not the report that quotes the
    /// script (markers included) before it runs.
    pub(crate) async fn wait_for_stdout(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.stdout.lock().unwrap().clone();
            if seen.lines().any(|l| l.starts_with(what)) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "`{what}` never showed: {seen}; stderr: {}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` (`TERM`, `HUP`, `KILL`) to the CLI.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }

    pub(crate) fn finish(mut self, input: &str) -> Output {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        self.wait()
    }

    pub(crate) fn wait(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the session did not end: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Both pipes to their end: the session's last words included.
        for drain in self.drains.drain(..) {
            drain.join().unwrap();
        }
        Output {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

/// The running agent container of the test's instance, once it is up and
/// the fake claude has reported.
pub(crate) async fn running_agent(
    docker: &Docker,
    label: &str,
    session: &Session,
) -> ContainerInspectResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = bottle::backend::docker::list_containers(
            docker,
            ListContainersOptions {
                filters: Some(label_filter(
                    label,
                    Some("io.claude-bottle.role=agent".to_owned()),
                )),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let reported = !frames(&session.stdout.lock().unwrap(), "report").is_empty();
        if let (Some(container), true) = (found.first(), reported) {
            let id = container.id.clone().unwrap();
            return docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no running agent; stderr: {}",
            session.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILLs the session's CLI and waits until the dead-man switch has
/// taken every container of `label` down (`containers_gone`).
pub(crate) async fn kill_9(mut session: Session, docker: &Docker, label: &str, what: &str) {
    session.child.kill().unwrap();
    session.child.wait().unwrap();
    containers_gone(docker, label, &format!("{what} outlived its CLI")).await;
}

/// Waits until no container of `label` runs, 10 s at most, and then until
/// none is left, 30 s at most; else fails with `outlived`. The bottle is
/// down once nothing runs; removal follows, at once on Docker, and on
/// Podman through a cleanup process per container that, while the engine
/// builds an image, has taken longer.
pub(crate) async fn containers_gone(docker: &Docker, label: &str, outlived: &str) {
    let started = Instant::now();
    let mut stopped = false;
    loop {
        let (left, _) = leftovers(docker, label).await;
        if left.is_empty() {
            return;
        }
        let states = states(docker, &left).await;
        stopped = stopped || !states.iter().any(|s| s.running);
        let waited = started.elapsed();
        assert!(
            stopped || waited < Duration::from_secs(10),
            "{outlived} by 10 s: {states:?}"
        );
        assert!(
            waited < Duration::from_secs(30),
            "{outlived}: stopped but not removed in 30 s: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a left container is, for the wait and a failure's message.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Left {
    name: String,
    status: Option<bollard::models::ContainerStateStatusEnum>,
    running: bool,
    finished: Option<String>,
}

/// Each container's state; one already gone is not running.
async fn states(docker: &Docker, ids: &[String]) -> Vec<Left> {
    let mut states = Vec::new();
    for id in ids {
        let inspected = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await;
        let state = inspected.as_ref().ok().and_then(|c| c.state.clone());
        states.push(Left {
            name: inspected
                .ok()
                .and_then(|c| c.name)
                .unwrap_or_else(|| id.clone()),
            status: state.as_ref().and_then(|s| s.status),
            running: state.as_ref().and_then(|s| s.running).unwrap_or(false),
            finished: state.and_then(|s| s.finished_at),
        });
    }
    states
}

/// The instance a start's preflight named in `stderr`, if it has yet.
fn named_instance(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        l.trim()
            .strip_prefix("instance")
            .map(|n| n.trim().to_owned())
    })
}

/// The instance a finished start's preflight named.
#[track_caller]
pub(crate) fn instance_of(stderr: &str) -> String {
    named_instance(stderr).unwrap_or_else(|| panic!("no instance in {stderr}"))
}

/// The instance name the preflight of `session` shows.
pub(crate) async fn wait_for_instance(session: &Session) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(name) = named_instance(&session.stderr.lock().unwrap()) {
            return name;
        }
        assert!(Instant::now() < deadline, "no preflight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A sandbox with one agent `a` in one bottle `dev` (`bottle` is its
/// definition) that runs the fake claude, labelled with `label`.
pub(crate) fn fake_claude_bottle(label: &str, bottle: &serde_json::Value) -> Sandbox {
    let manifest = json!({
        "bottles": { "dev": bottle },
        "agents": { "a": { "bottle": "dev" } },
    });
    Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
}

/// The mock and its network, dropped in that order.
pub(crate) struct MockWorld {
    _mock: TestContainer,
    _network: TestNetwork,
}

/// A mock API on a network the gate joins, and a manifest for real Claude
/// Code pointed at it.
pub(crate) async fn real_claude(
    docker: &bollard::Docker,
    label: &str,
    script: &Value,
    env: &Value,
) -> (Sandbox, String, MockWorld) {
    let network = TestNetwork::create(docker, &format!("{label}-outside")).await;
    let (mock, address) = Service::mock(&network, script)
        .start(docker, &format!("{label}-outside"))
        .await;
    let mut bottle_env = json!({ "ANTHROPIC_BASE_URL": "http://mock", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1" });
    for (k, v) in env.as_object().unwrap() {
        bottle_env[k] = v.clone();
    }
    let manifest = json!({
        "bottles": { "dev": { "env": bottle_env, "egress": { "allowlist": ["mock"], "private": ["mock"], "builtin": false } } },
        "agents": { "a": { "bottle": "dev", "prompt": "You are the bottle test agent 4e2f." } },
    });
    let sandbox = Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", CLAUDE_CODE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("CLAUDE_BOTTLE_GATE_NETWORKS", &network.name);
    (
        sandbox,
        address,
        MockWorld {
            _mock: mock,
            _network: network,
        },
    )
}

/// The value of the first `KEY=value` line of `text` (what the fake
/// claude's script echoed).
#[track_caller]
pub(crate) fn value_of<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {text}"))
}
