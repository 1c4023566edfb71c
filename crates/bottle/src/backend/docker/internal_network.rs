//! The bottle's internal network, with addresses chosen here rather than
//! by the engine: the gate's address is then known before the gate
//! starts, so the agent container is created and started while the gate
//! starts, instead of after it.
//!
//! The subnets are /24s of 198.18.0.0/15, the range set aside for
//! benchmarking (RFC 2544), which LANs and VPNs rarely use; and the host
//! holds no address on an internal network, so a subnet a LAN shares
//! changes no route of the host. The gate takes `.2`; the engine gives the
//! agent an address from the upper half only, so that it never takes the
//! gate's while the gate is still starting.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use rand::Rng as _;

use super::networks;
use crate::error::{Error, Result};

/// Tries before giving up when every subnet drawn is taken.
const TRIES: usize = 16;

/// A created internal network.
#[derive(Debug, Clone)]
pub(super) struct InternalNetwork {
    pub(super) id: String,
    /// Podman keys a container's networks by name, and gives the name as
    /// their ID as well: the gate joins by name.
    pub(super) name: String,
    /// Where the gate answers on it.
    pub(super) gate_address: String,
}

/// The addresses of one drawn subnet.
#[derive(Debug, PartialEq, Eq)]
struct Subnet {
    cidr: String,
    dynamic_range: String,
    gate: String,
}

impl Subnet {
    /// The `index`th /24 of 198.18.0.0/15 (0 to 511).
    fn nth(index: u16) -> Self {
        let (third, fourth) = (18 + (index >> 8), index & 0xff);
        let prefix = format!("198.{third}.{fourth}");
        Self {
            cidr: format!("{prefix}.0/24"),
            dynamic_range: format!("{prefix}.128/25"),
            gate: format!("{prefix}.2"),
        }
    }
}

pub(super) async fn create(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<InternalNetwork> {
    let mut last = None;
    for _ in 0..TRIES {
        let subnet = Subnet::nth(rand::rng().random_range(0..512));
        let created = networks::create(
            docker,
            NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("bridge".into()),
                internal: Some(true),
                // On engines before 25 an internal network still lets
                // containers reach the host's services through the bridge's
                // address; without an IPv4 address on the host side of the
                // bridge there is none to reach.
                options: Some(HashMap::from([(
                    "com.docker.network.bridge.inhibit_ipv4".to_owned(),
                    "true".to_owned(),
                )])),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.cidr.clone()),
                        ip_range: Some(subnet.dynamic_range.clone()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                labels: Some(labels.clone()),
                ..Default::default()
            },
        )
        .await;
        match created {
            Ok(created) => {
                return Ok(InternalNetwork {
                    id: created.id,
                    name: name.to_owned(),
                    gate_address: subnet.gate,
                });
            }
            // Another network holds the subnet: draw again.
            Err(err) if subnet_taken(&err.to_string()) => last = Some(err),
            Err(err) => {
                return Err(Error::caused_by(
                    format!("cannot create the network {name}"),
                    err,
                ));
            }
        }
    }
    Err(Error::caused_by(
        format!(
            "cannot create the network {name}: {TRIES} subnets of 198.18.0.0/15 drawn, all taken"
        ),
        last.expect("at least one try"),
    )
    .hint("`claude-bottle cleanup` removes the networks of dead bottles"))
}

/// Whether the engine refused a network because another holds its
/// subnet: Docker says it "overlaps", Podman that it "is already used".
fn subnet_taken(refusal: &str) -> bool {
    refusal.contains("overlaps") || refusal.contains("is already used")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_another_network_holds_is_drawn_again_on_docker_and_podman() {
        assert!(subnet_taken(
            "Error response from daemon: Pool overlaps with other one on this address space"
        ));
        assert!(subnet_taken(
            "subnet 198.19.9.0/24 is already used on the host or by another config"
        ));
        assert!(!subnet_taken("network with name x already exists"));
    }

    #[test]
    fn subnets_cover_the_benchmarking_range_and_keep_the_gate_out_of_the_dynamic_half() {
        assert_eq!(
            Subnet::nth(0),
            Subnet {
                cidr: "198.18.0.0/24".into(),
                dynamic_range: "198.18.0.128/25".into(),
                gate: "198.18.0.2".into(),
            }
        );
        assert_eq!(Subnet::nth(511).cidr, "198.19.255.0/24");
        assert_eq!(Subnet::nth(256).gate, "198.19.0.2");
    }
}
