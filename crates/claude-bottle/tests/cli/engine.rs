//! With a real engine: prepare reads the engine and creates nothing on it.

use std::collections::BTreeSet;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, ListNetworksOptions};

use crate::fixture::TEST_LABEL;
use crate::support::{SIMPLE, Sandbox};

/// The engine, when one answers. Under CI a missing engine fails the test;
/// elsewhere the test is skipped, loudly.
pub(crate) async fn connect(test: &str) -> Option<Docker> {
    let answer = async {
        let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    };
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(docker)) => Some(docker),
        outcome => {
            let why = match outcome {
                Ok(Err(err)) => err.to_string(),
                _ => "no answer within 10 s".to_owned(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: CI is set and no Docker engine answers ({why}); scripts/test starts one"
            );
            eprintln!("SKIPPED {test}: no Docker engine answers ({why}); run scripts/test");
            None
        }
    }
}

/// Every container, network and image on the engine, by ID.
async fn inventory(docker: &Docker) -> BTreeSet<String> {
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .unwrap();
    // Tagged images only: the layers of builds running alongside (default
    // images of other tests) come and go.
    let images = docker
        .list_images(Some(ListImagesOptions {
            ..Default::default()
        }))
        .await
        .unwrap();
    // Fixtures of tests running alongside carry the test label; skip them.
    let ours = |labels: Option<&std::collections::HashMap<String, String>>| {
        labels.is_some_and(|l| l.contains_key(TEST_LABEL))
    };
    containers
        .into_iter()
        .filter(|c| !ours(c.labels.as_ref()))
        .filter_map(|c| c.id)
        .chain(
            networks
                .into_iter()
                .filter(|n| !ours(n.labels.as_ref()))
                .filter_map(|n| n.id),
        )
        .chain(
            images
                .into_iter()
                .filter(|i| !i.labels.contains_key(TEST_LABEL))
                .map(|i| i.id),
        )
        .collect()
}

async fn engine_runtimes(docker: &Docker) -> Vec<String> {
    let info = docker.info().await.unwrap();
    info.runtimes.unwrap_or_default().into_keys().collect()
}

#[tokio::test]
async fn a_dry_run_creates_nothing_and_takes_its_runtime_from_the_engine() {
    let Some(docker) = connect("dry run against the engine").await else {
        return;
    };
    let before = inventory(&docker).await;
    let sandbox = Sandbox::with_manifest(SIMPLE).env("CLAUDE_BOTTLE_RUNTIME", "auto");
    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    let text = sandbox.run(&["start", "a", "--dry-run"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(
        inventory(&docker).await,
        before,
        "a dry run changed the engine"
    );
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
