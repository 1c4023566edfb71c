//! Everything the hostile bottle could try to reach, on this machine: "the
//! internet" (a sink, a DNS server that records every query, the mock API
//! and an SSH host) on a network the gate joins, a neighbour bottle
//! running at the same time, and listeners on the host itself.

use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use serde_json::{Value, json};

use crate::support::{
    FIXTURES_IMAGE, Service, Session, SshHostFixture, TestContainer, TestNetwork,
    fake_claude_bottle, fixture_json, label_filter,
};

pub(crate) struct Outside {
    // Fields drop in order: the containers before their network.
    _services: Vec<TestContainer>,
    pub(crate) ssh_host: SshHostFixture,
    pub(crate) network: TestNetwork,
    pub(crate) sink: String,
    pub(crate) dns: String,
    pub(crate) mock: String,
}

impl Outside {
    pub(crate) async fn start(
        docker: &Docker,
        label: &str,
        script: &Value,
        authorized_key: &str,
    ) -> Self {
        let label = &format!("{label}-outside");
        let network = TestNetwork::create(docker, label).await;
        let (sink_container, sink) = Service::sink(&network, "sink").start(docker, label).await;
        let (mock_container, mock) = Service::mock(&network, script).start(docker, label).await;
        let ssh_host =
            SshHostFixture::start(docker, label, &network, "git-host", 22, &[authorized_key]).await;
        let (dns_container, dns) = Service::new(FIXTURES_IMAGE, &network)
            .cmd(&["fixture-dns"])
            .env(
                "DNS_RECORDS",
                &format!(
                    "mock={mock},sink={sink},evil.test={sink},git-host={},\
                     meta.mock.test=168.63.129.16,mapped.mock.test={sink}",
                    ssh_host.address
                ),
            )
            .alias("dns")
            .start(docker, label)
            .await;
        Self {
            _services: vec![sink_container, mock_container, dns_container],
            ssh_host,
            network,
            sink,
            dns,
            mock,
        }
    }

    /// Every connection the sink took.
    pub(crate) fn sink_records(&self) -> Vec<Value> {
        fixture_json(&self.sink, 9999, "/_records")
    }

    /// Every name the DNS server was asked for.
    pub(crate) fn dns_queries(&self) -> Vec<String> {
        fixture_json(&self.dns, 9999, "/_queries")
            .into_iter()
            .map(|q| {
                q["name"]
                    .as_str()
                    .map_or_else(|| q.to_string(), str::to_owned)
            })
            .collect()
    }

    /// Every request the mock API got, bodies included.
    pub(crate) fn mock_requests(&self) -> Vec<Value> {
        fixture_json(&self.mock, 80, "/_requests")
    }
}

/// A bottle running beside the hostile one: the fake claude, waiting.
pub(crate) struct Neighbour {
    pub(crate) session: Session,
    _sandbox: crate::support::Sandbox,
    pub(crate) label: String,
    pub(crate) gate: String,
    pub(crate) agent: String,
}

impl Neighbour {
    pub(crate) async fn start(docker: &Docker, label: &str) -> Self {
        let label = format!("{label}-neighbour");
        let sandbox = fake_claude_bottle(
            &label,
            &json!({ "env": { "FAKE_CLAUDE_READ_STDIN": "1" }, "egress": { "builtin": false } }),
        );
        let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
        let agent = crate::support::running_agent(docker, &label, &session).await;
        let agent = internal_address(&agent).expect("the neighbour's agent has an address");
        let gate = role_container(docker, &label, "gate").await;
        let gate = internal_address(&gate).expect("the neighbour's gate has an address");
        Self {
            session,
            _sandbox: sandbox,
            label,
            gate,
            agent,
        }
    }
}

/// The one container of `role` labelled `label`.
pub(crate) async fn role_container(
    docker: &Docker,
    label: &str,
    role: &str,
) -> bollard::models::ContainerInspectResponse {
    let found = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(label_filter(
                label,
                Some(format!("io.claude-bottle.role={role}")),
            )),
            ..Default::default()
        }))
        .await
        .unwrap();
    let id = found
        .first()
        .and_then(|c| c.id.clone())
        .unwrap_or_else(|| panic!("no {role} container labelled {label}"));
    docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap()
}

/// A container's address on the network whose name ends with `suffix`,
/// and that network's gateway.
pub(crate) fn address_on(
    container: &bollard::models::ContainerInspectResponse,
    suffix: &str,
) -> Option<(String, String)> {
    let networks = container.network_settings.as_ref()?.networks.as_ref()?;
    networks
        .iter()
        .find(|(name, _)| name.ends_with(suffix))
        .map(|(_, e)| {
            (
                e.ip_address.clone().unwrap_or_default(),
                e.gateway.clone().unwrap_or_default(),
            )
        })
}

fn internal_address(container: &bollard::models::ContainerInspectResponse) -> Option<String> {
    address_on(container, "-internal").map(|(address, _)| address)
}

/// Listeners on every address of this machine, IPv4 and IPv6, that count
/// the connections they take.
pub(crate) struct HostListeners {
    pub(crate) v4_port: u16,
    pub(crate) v6_port: u16,
    taken: Arc<AtomicUsize>,
    /// The first line of each connection, where one came.
    heard: Arc<std::sync::Mutex<Vec<String>>>,
}

impl HostListeners {
    pub(crate) fn start() -> Self {
        let taken = Arc::new(AtomicUsize::new(0));
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let listen = |listener: TcpListener| {
            let (taken, heard) = (taken.clone(), heard.clone());
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    taken.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                    let mut line = String::new();
                    let _ = std::io::BufRead::read_line(
                        &mut std::io::BufReader::new(stream),
                        &mut line,
                    );
                    heard.lock().unwrap().push(line.trim().to_owned());
                }
            });
            port
        };
        let v4_port = listen(TcpListener::bind("0.0.0.0:0").unwrap());
        let v6_port = listen(TcpListener::bind("[::]:0").unwrap());
        Self {
            v4_port,
            v6_port,
            taken,
            heard,
        }
    }

    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }

    pub(crate) fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

/// This machine's addresses, as `hostname -I` gives them (every bridge's
/// included), split by family.
pub(crate) fn host_addresses() -> (Vec<String>, Vec<String>) {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for address in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => v4.push(a.to_string()),
            Ok(IpAddr::V6(a)) => v6.push(a.to_string()),
            Err(_) => {}
        }
    }
    (v4, v6)
}
