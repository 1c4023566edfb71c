//! With a real engine: prepare reads the engine and creates nothing on it.

use bollard::Docker;

use crate::support::engine_relay::EngineRelay;
use crate::support::{SIMPLE, Sandbox, TEST_LABEL, connect, leftovers, run_label};

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
