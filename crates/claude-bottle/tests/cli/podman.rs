//! Podman, through the Docker API its service serves (`scripts/test`
//! starts it on its rootful socket). Its internal networks give a bottle a
//! route to the host's services, so a start there is refused before
//! anything exists.

use bollard::{API_DEFAULT_VERSION, Docker};

use crate::support::{bottle_sandbox, leftovers, skip};

const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Podman's service, or `None` (a loud skip; a failure under CI).
async fn podman(test: &str) -> Option<Docker> {
    match Docker::connect_with_unix(PODMAN_SOCKET, 30, API_DEFAULT_VERSION) {
        Ok(podman) if podman.ping().await.is_ok() => Some(podman),
        _ => skip(test, format!("no Podman answers at {PODMAN_SOCKET}")),
    }
}

#[tokio::test]
async fn a_start_on_podman_is_refused_with_its_reason_and_creates_nothing() {
    let Some(podman) = podman("podman refused").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("podman refused", &[]);
    let out = sandbox
        .env("DOCKER_HOST", &format!("unix://{PODMAN_SOCKET}"))
        .run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    for said in [
        "Podman Engine",
        "cannot hold a bottle yet",
        "route to this host's services",
        "use a Docker engine",
    ] {
        assert!(out.stderr.contains(said), "`{said}` not said: {out:?}");
    }
    assert_eq!(leftovers(&podman, &label).await, (vec![], vec![]));
}
