//! With a real engine: prepare reads the engine and creates nothing on it.

use bollard::Docker;

use crate::support::engine_relay::EngineRelay;
use crate::support::{
    SIMPLE, Sandbox, Session, TEST_LABEL, bottle_sandbox, connect, kill_9, leftovers, run_label,
    running_agent, wait_for_instance, with_fake_claude,
};

async fn engine_runtimes(docker: &Docker) -> Vec<String> {
    let info = docker.info().await.unwrap();
    info.runtimes.unwrap_or_default().into_keys().collect()
}

#[tokio::test]
async fn a_dry_run_creates_nothing_and_takes_its_runtime_from_the_engine() {
    let Some(docker) = connect("dry run against the engine").await else {
        return;
    };
    // What the dry runs ask the engine is seen on the way; the engine's
    // own state is not, for tests running alongside change it.
    let relay = EngineRelay::start();
    let label = run_label("dry-run");
    let sandbox = Sandbox::with_manifest(SIMPLE)
        .env("CLAUDE_BOTTLE_RUNTIME", "auto")
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("DOCKER_HOST", &relay.url);
    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    let text = sandbox.run(&["start", "a", "--dry-run"]);
    assert_eq!(text.code, 0, "{text:?}");
    let requests = relay.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("GET ")),
        "the dry runs never asked the engine: {requests:?}"
    );
    let changes: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .collect();
    assert!(
        changes.is_empty(),
        "a dry run changed the engine: {changes:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert!(sandbox.stage_dirs().is_empty(), "a dry run left its stage");

    let expected = if engine_runtimes(&docker).await.iter().any(|r| r == "runsc") {
        "runsc"
    } else {
        "runc"
    };
    assert_eq!(plan["runtime"], expected);
    assert!(
        text.stderr.contains(&format!("runtime    {expected}")),
        "{text:?}"
    );
    assert!(plan["warnings"].as_array().unwrap().is_empty(), "{plan}");
}

#[tokio::test]
async fn an_explicit_runtime_must_be_one_the_engine_has() {
    let Some(docker) = connect("explicit runtime").await else {
        return;
    };
    let runtimes = engine_runtimes(&docker).await;
    let out = Sandbox::with_manifest(SIMPLE)
        .env("CLAUDE_BOTTLE_RUNTIME", "runsc")
        .run(&["start", "a", "--dry-run", "--format", "json"]);
    if runtimes.iter().any(|r| r == "runsc") {
        assert_eq!(out.json()["runtime"], "runsc");
    } else {
        assert_eq!(out.code, 125, "{out:?}");
        assert!(
            out.stderr.contains("the engine has no runtime `runsc`"),
            "{out:?}"
        );
        for runtime in &runtimes {
            assert!(
                out.stderr.contains(runtime.as_str()),
                "{runtime} not named: {out:?}"
            );
        }
    }
    let out = Sandbox::with_manifest(SIMPLE)
        .env("CLAUDE_BOTTLE_RUNTIME", "runc")
        .run(&["start", "a", "--dry-run", "--format", "json"]);
    assert_eq!(out.json()["runtime"], "runc");
}

#[tokio::test]
async fn a_hung_engine_fails_the_start_with_a_message_and_cleanup_takes_what_was_left() {
    let Some(docker) = crate::support::with_fake_claude("hung engine").await else {
        return;
    };
    // The engine answers until the bottle's first container is asked for,
    // then nothing more: calls time out after the 3 s the sandbox allows.
    let relay = EngineRelay::hanging_from(Some("/containers/create"));
    let (sandbox, label) = crate::support::bottle_sandbox("hung-engine", &[]);
    let engine =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let sandbox = sandbox
        .env("DOCKER_HOST", &relay.url)
        .env("CLAUDE_BOTTLE_ENGINE_TIMEOUT", "3");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("did not answer within 3 s"), "{out:?}");
    assert!(
        out.stderr.contains("CLAUDE_BOTTLE_ENGINE_TIMEOUT"),
        "{out:?}"
    );
    assert!(
        relay
            .requests()
            .iter()
            .any(|r| r.contains("/containers/create")),
        "{:?}",
        relay.requests()
    );
    // Once the engine answers again, cleanup removes what the start could
    // not (a network made before the hang, say).
    let sandbox = sandbox.env("DOCKER_HOST", &engine);
    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// Runs the docker CLI on the context store in `config`.
fn docker_context(config: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("docker")
        .args(["context"].iter().chain(args))
        .env("DOCKER_CONFIG", config)
        .output()
        .unwrap();
    assert!(out.status.success(), "docker context {args:?}: {out:?}");
}

#[tokio::test]
async fn with_no_docker_host_the_current_docker_context_is_the_engine_of_start_list_and_cleanup() {
    let Some(docker) = with_fake_claude("docker context").await else {
        return;
    };
    // The docker CLI writes a context for the engine this suite runs on,
    // TLS material included when it is reached over TLS, and makes it
    // current; the variables that would otherwise choose it are emptied.
    let config = tempfile::tempdir().unwrap();
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
    let endpoint = if tls {
        let certs = std::env::var("DOCKER_CERT_PATH").unwrap();
        format!("host={host},ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem")
    } else {
        format!("host={host}")
    };
    docker_context(
        config.path(),
        &["create", "suite-engine", "--docker", &endpoint],
    );
    docker_context(config.path(), &["use", "suite-engine"]);
    let (sandbox, label) = bottle_sandbox("context", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let sandbox = sandbox
        .env("DOCKER_CONFIG", config.path().to_str().unwrap())
        .env("DOCKER_HOST", "")
        .env("DOCKER_TLS_VERIFY", "")
        .env("DOCKER_CERT_PATH", "");

    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    let engine = plan["engine"].as_str().unwrap();
    assert!(
        engine.ends_with(&format!(
            "at {host}{}, context `suite-engine`",
            if tls { " (TLS)" } else { "" }
        )),
        "{plan}"
    );
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    // On the engine the context names: the one this suite talks to.
    running_agent(&docker, &label, &session).await;
    let name = wait_for_instance(&session).await;
    let listed = sandbox.run(&["list"]);
    assert!(listed.stdout.contains(&name), "{listed:?}");
    assert!(
        listed.stderr.contains(&format!("engine: {engine}")),
        "{listed:?}"
    );
    kill_9(session, &docker, &label, "the agent container").await;
    let cleaned = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(cleaned.code, 0, "{cleaned:?}");
    assert!(
        cleaned.stderr.contains("context `suite-engine`"),
        "{cleaned:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    // A current context whose engine is gone is named, never passed over
    // for the local socket.
    docker_context(
        config.path(),
        &["create", "gone", "--docker", "host=tcp://127.0.0.1:9"],
    );
    docker_context(config.path(), &["use", "gone"]);
    let out = sandbox.run(&["list"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("no Docker engine answers at tcp://127.0.0.1:9, context `gone`"),
        "{out:?}"
    );
    assert!(out.stderr.contains("docker context use"), "{out:?}");
}
