//! The test harness on the real engine: the Debian base image that
//! `scripts/test` builds, run under runc and under gVisor.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::engine::connect;

/// Built by `scripts/test`: Debian bookworm with git, ssh, curl, tar, procps.
pub(crate) const BASE_IMAGE: &str = "claude-bottle-test/debian:bookworm";
/// Every container a test creates carries this label, valued by test run.
pub(crate) const TEST_LABEL: &str = "io.claude-bottle.test";

/// A container made by a test; removed when dropped, panics included.
pub(crate) struct TestContainer {
    docker: Docker,
    pub(crate) id: String,
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let id = self.id.clone();
        // Drop cannot await; a short-lived runtime on its own thread can.
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(docker.remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            ))
        })
        .join();
        if let Ok(Err(err)) = removed {
            eprintln!("could not remove test container {}: {err}", self.id);
        }
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
    let container = TestContainer {
        docker: docker.clone(),
        id: created.id,
    };
    docker
        .start_container(&container.id, None::<StartContainerOptions>)
        .await
        .unwrap();
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

async fn containers_labelled(docker: &Docker, run_label: &str) -> usize {
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

/// The base image, or `None` (a loud skip) outside CI when it is not built.
async fn base_image(docker: &Docker) -> Option<()> {
    if docker.inspect_image(BASE_IMAGE).await.is_ok() {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and {BASE_IMAGE} is missing; scripts/test builds it"
    );
    eprintln!("SKIPPED: {BASE_IMAGE} is not built; run scripts/test");
    None
}

#[tokio::test]
async fn the_base_image_has_its_tools_under_runc_and_under_gvisor() {
    let Some(docker) = connect("base image").await else {
        return;
    };
    if base_image(&docker).await.is_none() {
        return;
    }
    let info = docker.info().await.unwrap();
    let has_runsc = info.runtimes.unwrap_or_default().contains_key("runsc");
    assert!(
        has_runsc || std::env::var_os("CI").is_none(),
        "CI is set and the engine has no runsc; scripts/test registers it"
    );
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let run_label = format!("harness-{}", std::process::id());
    let script = "git --version && ssh -V 2>&1 && curl --version && tar --version \
                  && ps --version && echo kernel=$(cat /proc/sys/kernel/osrelease)";
    let runtimes: &[&str] = if has_runsc {
        &["runc", "runsc"]
    } else {
        &["runc"]
    };
    for runtime in runtimes {
        let (code, output) =
            run_in_container(&docker, BASE_IMAGE, runtime, &run_label, script).await;
        assert_eq!(code, 0, "{runtime}: {output}");
        for tool in ["git version", "OpenSSH", "curl ", "GNU tar", "procps"] {
            assert!(output.contains(tool), "{runtime}: no `{tool}` in {output}");
        }
        let kernel = output
            .lines()
            .find_map(|l| l.strip_prefix("kernel="))
            .unwrap();
        // gVisor answers with its own kernel: proof the sandbox really ran.
        assert_eq!(
            kernel == host_kernel.trim(),
            *runtime == "runc",
            "{runtime}: kernel {kernel}"
        );
    }
    assert_eq!(
        containers_labelled(&docker, &run_label).await,
        0,
        "a test container was left"
    );
}
