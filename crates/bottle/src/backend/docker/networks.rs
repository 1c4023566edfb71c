//! Asking the engine for a network, again where Podman's refusal says
//! that the host's interfaces changed while it read them (`ask_again`).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, NetworkCreateResponse};

use super::ask_again::{INTERFACE_GONE, ask_again};
use crate::error::{Error, Result};

/// Creates `request`'s network.
pub async fn create(
    docker: &Docker,
    request: NetworkCreateRequest,
) -> std::result::Result<NetworkCreateResponse, bollard::errors::Error> {
    // Boxed: a start awaits two of these at once, beside other work.
    ask_again(INTERFACE_GONE, || {
        Box::pin(docker.create_network(request.clone()))
    })
    .await
}

/// The egress network: the gate's way out.
pub(super) async fn egress(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<String> {
    create(
        docker,
        NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        },
    )
    .await
    .map(|created| created.id)
    .map_err(|err| Error::caused_by(format!("cannot create the network {name}"), err))
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use bollard::API_DEFAULT_VERSION;
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

    /// Podman's rootful service (`scripts/test` starts it), or `None` off
    /// CI; under CI a missing Podman or a user who may not add interfaces
    /// fails the test.
    async fn podman_and_root(test: &str) -> Option<Docker> {
        let podman = Docker::connect_with_unix(PODMAN_SOCKET, 30, API_DEFAULT_VERSION).ok();
        let answers = match &podman {
            Some(podman) => podman.ping().await.is_ok(),
            None => false,
        };
        let root = rustix::process::geteuid().is_root();
        if answers && root {
            return podman;
        }
        let why = format!("needs root ({root}) and Podman at {PODMAN_SOCKET} ({answers})");
        assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
        eprintln!("SKIPPED {test}: {why}");
        None
    }

    /// Veth pairs with an address, added and removed over and over, as a
    /// bottle's are when it starts and ends: the interface removed is the
    /// one named.
    struct Churn {
        near: String,
        ip: tokio::process::Child,
        feeder: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Churn {
        fn start(tag: &str, n: u8) -> Self {
            let (near, far) = (format!("cbn{tag}{n}"), format!("cbf{tag}{n}"));
            let batch = format!(
                "link add {near} type veth peer name {far}\n\
                 addr add 198.51.100.{n}/32 dev {near}\n\
                 link del {near}\n"
            )
            .repeat(20_000);
            let mut ip = tokio::process::Command::new("ip")
                .args(["-force", "-batch", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("ip");
            let mut input = ip.stdin.take().unwrap();
            let feeder = tokio::spawn(async move { input.write_all(batch.as_bytes()).await });
            Self { near, ip, feeder }
        }

        /// Stops, and says whether it was still going.
        async fn stop(mut self) -> bool {
            let going = self.ip.try_wait().unwrap().is_none();
            self.ip.kill().await.unwrap();
            self.feeder.abort();
            let _ = tokio::process::Command::new("ip")
                .args(["link", "del", &self.near])
                .stderr(Stdio::null())
                .status()
                .await;
            going
        }
    }

    /// While other bottles' interfaces come and go on the host, every
    /// network is created. Unasked again, several a second fail here.
    #[tokio::test]
    async fn on_podman_networks_are_created_while_the_hosts_interfaces_come_and_go() {
        let Some(podman) = podman_and_root("networks amid interface churn").await else {
            return;
        };
        let tag = format!("{:06x}", rand::random::<u32>() >> 8);
        let churns: Vec<Churn> = (1..=4).map(|n| Churn::start(&tag, n)).collect();

        let label = format!("claude-bottle-test.networks-{tag}");
        let (mut created, mut refused) = (0, Vec::new());
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while tokio::time::Instant::now() < until {
            let name = format!("cbt-churn-{tag}-{created}");
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(label.clone(), String::new())])),
                ..Default::default()
            };
            match create(&podman, request).await {
                Ok(_) => {
                    podman.remove_network(&name).await.unwrap();
                    created += 1;
                }
                Err(err) => refused.push(err.to_string()),
            }
        }
        let mut going = true;
        for churn in churns {
            going &= churn.stop().await;
        }

        assert!(
            going,
            "the interfaces stopped changing before the creates ended"
        );
        assert!(
            refused.is_empty(),
            "{} refused beside {created} created: {:?}",
            refused.len(),
            refused.first()
        );
        assert!(created > 100, "only {created} created");
    }
}
