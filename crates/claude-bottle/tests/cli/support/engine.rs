//! The engine and the images `scripts/test` builds, or a loud skip. Under
//! CI a missing prerequisite fails the test: a suite that skips there
//! proves nothing.

use std::fmt::Display;
use std::time::Duration;

use bollard::Docker;

/// Skips `test` with a loud `SKIPPED` line, or fails it when `CI` is set.
#[track_caller]
pub(crate) fn skip<T>(test: &str, why: impl Display) -> Option<T> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI is set and {why}; scripts/test prepares it"
    );
    eprintln!("SKIPPED {test}: {why}; run scripts/test");
    None
}

/// Whether the engine's container networks are this machine's: a local
/// socket, or an engine `scripts/other-engines` says is this machine's
/// (`CLAUDE_BOTTLE_TEST_ENGINE_IS_LOCAL`). Otherwise its containers are
/// reached from its side.
pub(crate) fn networks_are_local() -> bool {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    host.is_empty()
        || host.starts_with("unix://")
        || std::env::var_os("CLAUDE_BOTTLE_TEST_ENGINE_IS_LOCAL").is_some()
}

/// Whether the engine is Podman serving the Docker API: it names its
/// first component "Podman Engine". There a bottle's agent has no network
/// and reaches its gate on its loopback.
pub(crate) async fn is_podman(docker: &Docker) -> bool {
    let version = docker.version().await.unwrap();
    version
        .components
        .iter()
        .flatten()
        .next()
        .is_some_and(|c| c.name.starts_with("Podman"))
}

/// The engine, when one answers.
pub(crate) async fn connect(test: &str) -> Option<Docker> {
    // Chosen and reached as the CLI does: DOCKER_HOST (tcp, TLS, ssh), the
    // Docker context, the local socket.
    let answer = async {
        let docker = bottle::backend::docker::connect()
            .await
            .map_err(|err| err.to_line())?;
        docker.ping().await.map_err(|err| err.to_string())?;
        Ok::<_, String>(docker)
    };
    match tokio::time::timeout(Duration::from_secs(30), answer).await {
        Ok(Ok(docker)) => Some(docker),
        Ok(Err(err)) => skip(test, err),
        Err(_) => skip(test, "no Docker engine answers within 30 s"),
    }
}

/// The engine, when it answers and holds every one of `images`.
pub(crate) async fn engine_with(test: &str, images: &[&str]) -> Option<Docker> {
    let docker = connect(test).await?;
    for image in images {
        if docker.inspect_image(image).await.is_err() {
            return skip(test, format!("{image} is not built"));
        }
    }
    Some(docker)
}

/// The engine with the fake claude's image, which most bottles run.
pub(crate) async fn with_fake_claude(test: &str) -> Option<Docker> {
    engine_with(test, &[super::FAKE_CLAUDE_IMAGE]).await
}

/// The engine with real Claude Code's image and the fixtures (the mock
/// API) it talks to.
pub(crate) async fn with_real_claude(test: &str) -> Option<Docker> {
    engine_with(test, &[super::CLAUDE_CODE_IMAGE, super::FIXTURES_IMAGE]).await
}

/// Whether the engine has gVisor's `runsc`; CI requires it.
pub(crate) async fn has_runsc(docker: &Docker) -> bool {
    let info = docker.info().await.unwrap();
    let has = info.runtimes.unwrap_or_default().contains_key("runsc");
    assert!(
        has || std::env::var_os("CI").is_none(),
        "CI is set and the engine has no runsc; scripts/test registers it"
    );
    has
}

/// The runtimes to prove a thing under: runc, and runsc when registered.
pub(crate) async fn runtimes(docker: &Docker) -> Vec<&'static str> {
    if has_runsc(docker).await {
        vec!["runc", "runsc"]
    } else {
        vec!["runc"]
    }
}
