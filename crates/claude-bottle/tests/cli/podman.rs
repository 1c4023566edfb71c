//! Podman, through the Docker API its service serves (`scripts/test`
//! starts it on its rootful socket; the core set runs there too). Its
//! internal networks give the host an address, so there the agent's
//! container has no network at all and reaches the gate on its loopback,
//! on a listener a short-lived helper hands the gate.

use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bollard::{API_DEFAULT_VERSION, Docker};
use fixtures::report::frames;

use crate::support::{
    BASE_IMAGE, GATE_IMAGE, Session, TEST_LABEL, TestImage, agent_and_gate, bottle_sandbox, kill_9,
    label_filter, leftovers, running_agent, skip, value_of,
};

const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// A user's own Podman service (`scripts/rootless-podman`).
const ROOTLESS_SOCKET: &str = "/run/claude-bottle-rootless/podman/podman.sock";

/// Podman's service with the fake claude's image, or `None` (a loud skip;
/// a failure under CI).
async fn podman(test: &str) -> Option<Docker> {
    podman_at(PODMAN_SOCKET, test).await
}

/// The Podman service at `socket`, with the fake claude's and the gate's
/// test images.
async fn podman_at(socket: &str, test: &str) -> Option<Docker> {
    let podman = match Docker::connect_with_unix(socket, 30, API_DEFAULT_VERSION) {
        Ok(podman) if podman.ping().await.is_ok() => podman,
        _ => return skip(test, format!("no Podman answers at {socket}")),
    };
    for image in [crate::support::FAKE_CLAUDE_IMAGE, GATE_IMAGE] {
        if podman.inspect_image(image).await.is_err() {
            return skip(test, format!("Podman at {socket} lacks {image}"));
        }
    }
    Some(podman)
}

fn on_podman(sandbox: crate::support::Sandbox) -> crate::support::Sandbox {
    sandbox.env("DOCKER_HOST", &format!("unix://{PODMAN_SOCKET}"))
}

#[tokio::test]
async fn on_podman_the_agent_has_only_its_loopback_where_the_gate_listens() {
    let Some(podman) = podman("podman loopback").await else {
        return;
    };
    let script = "echo interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,); \
        echo gate=$(getent hosts gate | cut -d' ' -f1); \
        echo through-gate=$(curl -s -o /dev/null -w '%{http_code}' http://nowhere.invalid/)";
    let (sandbox, label) = bottle_sandbox(
        "podman loopback",
        &[("FAKE_CLAUDE_RUN", script), ("FAKE_CLAUDE_READ_STDIN", "1")],
    );
    let sandbox = on_podman(sandbox);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let agent = running_agent(&podman, &label, &session).await;
    assert_eq!(
        agent.host_config.and_then(|h| h.network_mode).as_deref(),
        Some("none")
    );
    // The helper has handed the listener over and removed itself: the
    // agent and the gate are left, on the gate's one network.
    let (containers, networks) = agent_and_gate(&podman, &label).await;
    assert_eq!(networks.len(), 1, "{networks:?}");
    let mut volumes = Vec::new();
    for id in &containers {
        let inspect = podman
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        volumes.extend(inspect.mounts.into_iter().flatten().filter_map(|m| {
            m.name
                .filter(|_| m.destination.as_deref() == Some("/run/gate"))
        }));
    }
    assert_eq!(volumes.len(), 1, "the gate's handoff volume: {volumes:?}");

    let out = session.finish("");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(frames(&out.stdout, "ran")[0]["code"], 0, "{}", out.stdout);
    assert_eq!(value_of(&out.stdout, "interfaces"), "lo,", "{}", out.stdout);
    assert_eq!(value_of(&out.stdout, "gate"), "127.0.0.1");
    assert_eq!(
        value_of(&out.stdout, "through-gate"),
        "403",
        "the gate answers on the loopback: {}",
        out.stdout
    );
    assert_eq!(leftovers(&podman, &label).await, (vec![], vec![]));
    // The handoff's volume went with the gate.
    let left = podman.inspect_volume(&volumes[0]).await;
    assert!(
        matches!(
            left,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "the volume {} is left: {left:?}",
        volumes[0]
    );
}

#[tokio::test]
async fn on_podman_gvisor_is_refused_with_its_reason_and_the_plan_names_one_network() {
    let Some(podman) = podman("podman gvisor").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("podman gvisor", &[]);
    let sandbox = on_podman(sandbox);
    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["runtime"], "runc", "{plan}");
    // Where nothing is asked, never gVisor; Podman's own default where
    // that is crun or runc (runc on these machines: crun, the choice that
    // follows Podman's, is proven by the unit tests of the rule).
    let default = podman.info().await.unwrap().default_runtime;
    let expected = default
        .as_deref()
        .filter(|r| ["crun", "runc"].contains(r))
        .unwrap_or("runc");
    let sandbox = sandbox.env("CLAUDE_BOTTLE_RUNTIME", "auto");
    let auto = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(auto["runtime"], expected, "{auto}");
    let networks = plan["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 1, "{plan}");
    assert!(networks[0].as_str().unwrap().ends_with("-egress"), "{plan}");

    let out = sandbox
        .env("CLAUDE_BOTTLE_RUNTIME", "runsc")
        .run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    for said in [
        "gVisor (`runsc`) cannot hold a bottle on this engine",
        "its own loopback",
        "CLAUDE_BOTTLE_RUNTIME=auto or runc",
    ] {
        assert!(out.stderr.contains(said), "`{said}` not said: {out:?}");
    }
    assert_eq!(leftovers(&podman, &label).await, (vec![], vec![]));
}

/// `args` run where nothing chooses an engine and Docker's local socket
/// answers nothing: in a mount namespace of the command's own, that socket
/// is an empty file.
fn without_docker(
    sandbox: &crate::support::Sandbox,
    runtime_dir: &std::path::Path,
    args: &[&str],
) -> crate::support::Output {
    let chosen = sandbox.command(args);
    let mut command = std::process::Command::new("unshare");
    command
        .args([
            "-m",
            "--",
            "sh",
            "-c",
            "mount --bind /dev/null /var/run/docker.sock && exec \"$0\" \"$@\"",
        ])
        .arg(chosen.get_program())
        .args(chosen.get_args())
        .env_clear()
        .current_dir(chosen.get_current_dir().unwrap());
    for (name, value) in chosen.get_envs() {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    command
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare runs")
        .into()
}

#[tokio::test]
async fn where_no_docker_engine_answers_start_runs_on_podmans_socket() {
    let Some(podman) = podman("podman fallback").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("podman fallback", &[]);
    // No rootless Podman for this user: the system's socket.
    let runtime_dir = tempfile::tempdir().unwrap();
    let out = without_docker(&sandbox, runtime_dir.path(), &["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "engine     Podman Engine {} (API ",
            podman.version().await.unwrap().version.unwrap()
        )) && out.stderr.contains(&format!(
            "at unix://{PODMAN_SOCKET}, Podman's rootful socket"
        )),
        "{out:?}"
    );
    assert_eq!(frames(&out.stdout, "exit")[0]["code"], 0, "{}", out.stdout);
    assert_eq!(leftovers(&podman, &label).await, (vec![], vec![]));

    // The user's own socket comes first; where it answers nothing either,
    // the system's is used.
    std::fs::create_dir(runtime_dir.path().join("podman")).unwrap();
    std::fs::write(runtime_dir.path().join("podman/podman.sock"), "").unwrap();
    // The engine the plan names.
    let planned_engine = || {
        let plan = without_docker(
            &sandbox,
            runtime_dir.path(),
            &["start", "a", "--dry-run", "--format", "json"],
        );
        assert_eq!(plan.code, 0, "{plan:?}");
        plan.json()["engine"].as_str().unwrap().to_owned()
    };
    let engine = planned_engine();
    assert!(engine.ends_with("Podman's rootful socket"), "{engine}");
    // Where the user's own socket answers, it is the one (here it leads to
    // the same service).
    let own = runtime_dir.path().join("podman/podman.sock");
    std::fs::remove_file(&own).unwrap();
    std::os::unix::fs::symlink(PODMAN_SOCKET, &own).unwrap();
    let engine = planned_engine();
    assert!(
        engine.ends_with(&format!(
            "at unix://{}, Podman's rootless socket",
            own.display()
        )),
        "{engine}"
    );
}

/// Podman will not remove a container while another joined its namespace
/// by name, and its auto-removal then gives up for good. The helper that
/// hands the gate its listener joins the agent's namespace by path, so a
/// CLI killed while the helper is there still leaves nothing: the agent
/// goes when its dead-man switch fires, the helper when it ends.
#[tokio::test]
async fn on_podman_a_bottle_killed_while_its_gate_is_handed_its_listener_leaves_nothing() {
    let Some(podman) = podman("podman slow handoff").await else {
        return;
    };
    let (sandbox, label) =
        bottle_sandbox("podman slow handoff", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    // The gate's executable behind a script that holds the handoff 5 s.
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nCOPY --from={GATE_IMAGE} /claude-bottle /claude-bottle\n\
         RUN printf '#!/bin/sh\\n[ \"$1\" = gate-handoff ] && sleep 5\\nexec /claude-bottle \"$@\"\\n' \
         >/slow && chmod 755 /slow\nENTRYPOINT [\"/slow\", \"gate\"]\n"
    );
    let gate = TestImage::build(
        &podman,
        &format!(
            "claude-bottle-test/gate-slow-handoff:{}",
            label.replace(' ', "-")
        ),
        &dockerfile,
        &[(TEST_LABEL, &label)],
    )
    .await
    .on_socket(PODMAN_SOCKET);
    let sandbox = on_podman(sandbox).env("CLAUDE_BOTTLE_GATE_IMAGE", &gate.tag);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let helpers = bottle::backend::docker::list_containers(
            &podman,
            ListContainersOptions {
                filters: Some(label_filter(
                    &label,
                    Some("io.claude-bottle.role=handoff".to_owned()),
                )),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        if !helpers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no helper ran; stderr: {}",
            session.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill_9(session, &podman, &label, "a container of the bottle").await;
    let volumes = podman
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
            filters: Some(label_filter(&label, None)),
        }))
        .await
        .unwrap();
    assert_eq!(
        volumes.volumes.unwrap_or_default().len(),
        0,
        "a volume is left"
    );
    for network in leftovers(&podman, &label).await.1 {
        podman.remove_network(&network).await.unwrap();
    }
}

/// Rootless Podman keeps a container's limits only on cgroups v2 (with the
/// controllers delegated); on cgroups v1 it takes them and keeps none,
/// saying so only in its own CLI. There a start fails before anything
/// runs, naming what was dropped, and leaves nothing.
#[tokio::test]
async fn on_rootless_podman_a_bottle_runs_only_where_its_limits_are_kept() {
    let Some(rootless) = podman_at(ROOTLESS_SOCKET, "rootless podman limits").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox(
        "rootless podman limits",
        &[(
            "FAKE_CLAUDE_RUN",
            "echo memory=$(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)",
        )],
    );
    let sandbox = sandbox
        .env("DOCKER_HOST", &format!("unix://{ROOTLESS_SOCKET}"))
        .env("CLAUDE_BOTTLE_GATE_IMAGE", GATE_IMAGE)
        .env("CLAUDE_BOTTLE_MEMORY", "768m");
    let out = sandbox.run(&["start", "a", "--yes"]);
    let cgroups = rootless.info().await.unwrap().cgroup_version;
    if cgroups == Some(bollard::models::SystemInfoCgroupVersionEnum::_1) {
        assert_eq!(out.code, 125, "{out:?}");
        for said in [
            "Podman Engine did not keep the bottle's limits: ",
            "the egress gate's memory none (asked 256 MiB), processes none (asked 256)",
            "the agent's memory none (asked 768 MiB), processes none (asked 1024), CPUs none",
            "rootless Podman keeps limits only on cgroups v2",
        ] {
            assert!(out.stderr.contains(said), "`{said}` not said: {out:?}");
        }
        assert!(out.stdout.is_empty(), "claude ran: {out:?}");
    } else {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            value_of(&out.stdout, "memory"),
            "805306368",
            "{}",
            out.stdout
        );
    }
    assert_eq!(leftovers(&rootless, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn on_rootless_podman_doctor_says_whether_a_bottles_limits_are_kept() {
    let Some(rootless) = podman_at(ROOTLESS_SOCKET, "rootless podman doctor").await else {
        return;
    };
    let (sandbox, _) = bottle_sandbox("rootless podman doctor", &[]);
    let sandbox = sandbox.env("DOCKER_HOST", &format!("unix://{ROOTLESS_SOCKET}"));
    let out = sandbox.run(&["doctor", "--format", "json"]);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("{err}: {out:?}"));
    let limits: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "limits")
        .collect();
    assert_eq!(limits.len(), 1, "{report:#}");
    let limits = limits[0];
    assert_eq!(limits["facts"]["rootless"], true, "{limits:#}");
    let cgroups = rootless.info().await.unwrap().cgroup_version;
    if cgroups == Some(bollard::models::SystemInfoCgroupVersionEnum::_1) {
        assert_eq!(out.code, 1, "{out:?}");
        assert_eq!(limits["verdict"], "fail", "{limits:#}");
        assert_eq!(
            limits["summary"],
            "rootless Podman on cgroups v1 keeps none of a container's memory, process and \
             CPU limits: a start is refused"
        );
        assert!(
            limits["fix"]
                .as_str()
                .unwrap()
                .contains("run Podman's service as root"),
            "{limits:#}"
        );
    } else {
        assert_eq!(limits["verdict"], "ok", "{limits:#}");
    }
}

/// A tarball of one small file: an image's root, imported in a moment.
fn tiny_root() -> Vec<u8> {
    let mut root = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    root.append_data(&mut header, "f", &b"hi\n"[..]).unwrap();
    root.into_inner().unwrap()
}

/// While images come and go on Podman (a build's intermediate ones,
/// another command's removals), `cleanup` reads its list of images: Podman
/// fails a list when an image goes while it reads them ("image not
/// known"), which, unasked again, about one list in five did here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_podman_cleanup_reads_the_images_while_others_come_and_go() {
    use bollard::query_parameters::{CreateImageOptions, RemoveImageOptions};
    use futures_util::StreamExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let Some(podman) = podman("podman image churn").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("podman image churn", &[]);
    let sandbox = Arc::new(on_podman(sandbox));
    let (going, rounds) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let churn = tokio::spawn({
        let podman = podman.clone();
        let (going, rounds) = (going.clone(), rounds.clone());
        async move {
            let root = bytes::Bytes::from(tiny_root());
            while going.load(Ordering::Relaxed) {
                let mut imported = Vec::new();
                for _ in 0..20 {
                    let options = CreateImageOptions {
                        from_src: Some("-".into()),
                        ..Default::default()
                    };
                    let mut steps = podman.create_image(
                        Some(options),
                        Some(bollard::body_full(root.clone())),
                        None,
                    );
                    let mut id = None;
                    while let Some(step) = steps.next().await {
                        id = step.unwrap().id.or(id);
                    }
                    imported.push(id.expect("the imported image's ID"));
                }
                for id in &imported {
                    podman
                        .remove_image(
                            id,
                            Some(RemoveImageOptions {
                                force: true,
                                ..Default::default()
                            }),
                            None,
                        )
                        .await
                        .unwrap();
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut outs = Vec::new();
    for _ in 0..20 {
        let sandbox = Arc::clone(&sandbox);
        outs.push(
            tokio::task::spawn_blocking(move || sandbox.run(&["cleanup", "--yes"]))
                .await
                .unwrap(),
        );
    }
    going.store(false, Ordering::Relaxed);
    churn.await.unwrap();

    assert!(rounds.load(Ordering::Relaxed) > 0, "no image came and went");
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(leftovers(&podman, &label).await, (vec![], vec![]));
}
