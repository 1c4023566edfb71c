//! What launch needs to know about an image, and the contract it must meet:
//! a non-root `USER`, and `claude`, `sh`, `cat` and `tar` on its path.
//!
//! The facts come from the image's configuration and from one short probe
//! container (no network, no capabilities, the bottle's runtime) that
//! reports the user's ids, its home, which tools are missing and whether
//! the runtime breaks `stat` (`statx_fallback`), once per image ID and
//! runtime (`facts_cache`).

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::facts_cache::FactsCache;
use super::ledger::{Created, Ledger};
use super::statx_fallback;
use crate::error::{Error, Result};
use crate::settings::IMAGE;

/// Workdir of every bottle.
pub(super) const WORKSPACE: &str = "/workspace";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct ImageFacts {
    /// The image's `USER`, as written there.
    pub(super) user: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) home: String,
    /// Whether `/workspace` exists and the user may write it.
    pub(super) workspace_writable: bool,
    /// Whether `ssh` is on its path (which SSH hosts need).
    pub(super) has_ssh: bool,
    /// Whether the runtime refuses coreutils' statx calls, so the bottle
    /// needs the statx fallback.
    #[serde(default)]
    pub(super) statx_faulty: bool,
    /// The image's own `LD_PRELOAD`, which claude's environment replaces
    /// and so must carry on where it sets its own.
    #[serde(default)]
    pub(super) preload: Option<String>,
}

const PROBE: &str = r#"for tool in claude cat tar; do command -v "$tool" >/dev/null || echo "missing=$tool"; done
echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "home=$HOME"
if [ -d /workspace ] && [ -w /workspace ]; then echo workspace=writable; fi
command -v ssh >/dev/null && echo ssh=present"#;

/// The facts of `image` as a bottle under `runtime` sees them; they are
/// kept under `runtime_key` (`facts_cache::runtime_key`).
pub(super) async fn probe(
    docker: &Docker,
    image: &str,
    (runtime, runtime_key): (&str, &str),
    labels: std::collections::HashMap<String, String>,
    ledger: &mut Ledger,
    cache: &FactsCache,
) -> Result<ImageFacts> {
    let inspect = docker.inspect_image(image).await.map_err(|err| match err {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => Error::new(format!("the image `{image}` is not on the engine")).hint(format!(
            "build or load it first, or set {} to an image the engine has",
            IMAGE.name
        )),
        err => Error::caused_by(format!("cannot inspect the image `{image}`"), err),
    })?;
    let config = inspect.config.unwrap_or_default();
    let user = config.user.unwrap_or_default();
    let preload = config
        .env
        .unwrap_or_default()
        .into_iter()
        .find_map(|e| e.strip_prefix("LD_PRELOAD=").map(str::to_owned))
        .filter(|p| !p.is_empty());
    let root =
        user.is_empty() || ["root", "0"].contains(&user.split(':').next().unwrap_or_default());
    if root {
        return Err(Error::new(format!("the image `{image}` runs as root (its USER is `{user}`)"))
            .hint("claude refuses --dangerously-skip-permissions as root; add a non-root USER to the image"));
    }
    let id = inspect.id.unwrap_or_default();
    if let Some(facts) = cache
        .get(&id, runtime_key)
        .filter(|facts| facts.user == user)
    {
        return Ok(facts);
    }
    let report = run_script(
        docker,
        image,
        &format!("{PROBE}\n{}", statx_fallback::PROBE),
        Some(runtime),
        labels,
        ledger,
        "a bottle image needs `sh`, `cat`, `tar` and `claude`",
    )
    .await?;
    let facts = ImageFacts {
        preload,
        ..facts(image, &user, &report)?
    };
    cache.put(&id, runtime_key, &facts);
    Ok(facts)
}

/// Runs `script` with `sh -c` in a throwaway container of `image` (no
/// network, no capabilities; under `runtime`, else the engine's default)
/// and returns what it printed. `no_shell_hint` says what to do when the
/// image has no `sh`.
pub(super) async fn run_script(
    docker: &Docker,
    image: &str,
    script: &str,
    runtime: Option<&str>,
    labels: std::collections::HashMap<String, String>,
    ledger: &mut Ledger,
    no_shell_hint: &str,
) -> Result<String> {
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.to_owned()),
                entrypoint: Some(vec!["sh".into(), "-c".into(), script.into()]),
                cmd: Some(vec![]),
                labels: Some(labels),
                network_disabled: Some(true),
                host_config: Some(HostConfig {
                    runtime: runtime.map(str::to_owned),
                    network_mode: Some("none".into()),
                    cap_drop: Some(vec!["ALL".into()]),
                    security_opt: Some(vec!["no-new-privileges".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(|err| {
            Error::caused_by(format!("cannot create a container from `{image}`"), err)
        })?;
    ledger.record(Created::Container(created.id.clone()));
    if let Err(err) = docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
    {
        // The engine answers a missing entrypoint with a status that other
        // failures share; only the runtime's own words tell them apart.
        if let bollard::errors::Error::DockerResponseServerError { message, .. } = &err {
            if message.contains("executable file not found") || message.contains("no such file") {
                return Err(
                    Error::new(format!("the image `{image}` has no `sh`")).hint(no_shell_hint)
                );
            }
        }
        return Err(Error::caused_by(
            format!("cannot start a container from `{image}`"),
            err,
        ));
    }
    let mut wait = docker.wait_container(&created.id, None::<WaitContainerOptions>);
    while let Some(_status) = wait.next().await {}
    let mut logs = docker.logs(
        &created.id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut report = String::new();
    while let Some(chunk) = logs.next().await {
        report.push_str(
            &chunk
                .map_err(|err| {
                    Error::caused_by(format!("cannot read from a container of `{image}`"), err)
                })?
                .to_string(),
        );
    }
    Ok(report)
}

/// Reads the probe's report.
fn facts(image: &str, user: &str, report: &str) -> Result<ImageFacts> {
    let value = |key: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::trim)
    };
    let missing: Vec<_> = report
        .lines()
        .filter_map(|l| l.strip_prefix("missing="))
        .map(|t| format!("`{t}`"))
        .collect();
    if !missing.is_empty() {
        return Err(
            Error::new(format!("the image `{image}` lacks {}", missing.join(", ")))
                .hint("a bottle image needs `claude`, `sh`, `cat` and `tar` on its PATH"),
        );
    }
    let id = |key| value(key).and_then(|v| v.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (id("uid"), id("gid")) else {
        return Err(Error::new(format!(
            "cannot tell the user of the image `{image}` (`id` gave no answer)"
        ))
        .hint("a bottle image needs `id` (coreutils) besides `sh`, `cat`, `tar` and `claude`"));
    };
    if uid == 0 {
        return Err(Error::new(format!(
            "the image `{image}` runs as root (its USER `{user}` is uid 0)"
        ))
        .hint("add a non-root USER to the image"));
    }
    Ok(ImageFacts {
        user: user.to_owned(),
        uid,
        gid,
        home: value("home")
            .filter(|h| !h.is_empty())
            .unwrap_or("/tmp")
            .to_owned(),
        workspace_writable: value("workspace") == Some("writable"),
        has_ssh: value("ssh") == Some("present"),
        statx_faulty: statx_fallback::faulty(report),
        preload: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_facts_or_names_what_is_missing() {
        let found = facts(
            "img",
            "agent",
            "uid=1000\ngid=1000\nhome=/home/agent\nworkspace=writable\n",
        )
        .unwrap();
        assert_eq!(
            (
                found.uid,
                found.gid,
                found.home.as_str(),
                found.workspace_writable
            ),
            (1000, 1000, "/home/agent", true)
        );
        let err = facts(
            "img",
            "agent",
            "missing=claude\nmissing=tar\nuid=1000\ngid=1000\n",
        )
        .unwrap_err();
        assert_eq!(err.message(), "the image `img` lacks `claude`, `tar`");
        let err = facts("img", "0:0", "uid=0\ngid=0\n").unwrap_err();
        assert!(err.message().contains("runs as root"));
    }
}
