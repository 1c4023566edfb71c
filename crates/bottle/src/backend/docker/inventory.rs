//! Finding instances on the engine by their labels, never by name.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListNetworksOptions,
};

use crate::error::{Error, Result};
use crate::lifecycle::instance::{Instance, InstanceResource};
use crate::lifecycle::labels::{self, Role};

/// Every instance with resources on the engine, sorted by name.
pub(super) async fn instances(
    docker: &Docker,
    scope: &[(String, String)],
) -> Result<Vec<Instance>> {
    let mut wanted = vec![format!("{}=true", labels::MANAGED)];
    wanted.extend(scope.iter().map(|(k, v)| format!("{k}={v}")));
    let filters = HashMap::from([("label".to_owned(), wanted)]);
    let failed =
        |err: bollard::errors::Error| Error::caused_by("cannot list the engine's resources", err);
    let containers = super::containers::list(
        docker,
        ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        },
    )
    .await
    .map_err(failed)?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(failed)?;

    let mut found: BTreeMap<String, Instance> = BTreeMap::new();
    let mut agents = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let Some(instance) = entry(&mut found, &labels) else {
            continue;
        };
        let role = labels.get(labels::ROLE).cloned().unwrap_or_default();
        let state = container.state.map(|s| s.to_string());
        let id = container.id.unwrap_or_default();
        if role == Role::Agent.as_str() {
            if state.as_deref() == Some("running") {
                "running".clone_into(&mut instance.state);
            }
            agents.push((
                instance.instance.clone(),
                id.clone(),
                labels.get(labels::RUNTIME).cloned(),
            ));
        }
        instance.containers.push(InstanceResource {
            name: container
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            id,
            role,
            state,
        });
    }
    for network in networks {
        let labels = network.labels.unwrap_or_default();
        let Some(instance) = entry(&mut found, &labels) else {
            continue;
        };
        instance.networks.push(InstanceResource {
            id: network.id.unwrap_or_default(),
            name: network.name.unwrap_or_default(),
            role: labels.get(labels::ROLE).cloned().unwrap_or_default(),
            state: None,
        });
    }
    for (name, id, labelled) in agents {
        if let Ok(inspect) = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            if let Some(instance) = found.get_mut(&name) {
                // The engine's word, unless it says nothing (Podman: `oci`).
                instance.runtime = inspect
                    .host_config
                    .and_then(|h| h.runtime)
                    .filter(|runtime| runtime != "oci")
                    .or(labelled);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The instance a resource's labels name, made on first sight.
fn entry<'a>(
    found: &'a mut BTreeMap<String, Instance>,
    labels: &HashMap<String, String>,
) -> Option<&'a mut Instance> {
    let name = labels.get(labels::INSTANCE)?.clone();
    Some(found.entry(name.clone()).or_insert_with(|| {
        let owner = labels::owner(labels);
        let created = labels
            .get(labels::CREATED)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Instance {
            instance: name,
            agent: labels.get(labels::AGENT).cloned().unwrap_or_default(),
            bottle: labels.get(labels::BOTTLE).cloned().unwrap_or_default(),
            created,
            age_seconds: Instance::age_from(created),
            runtime: None,
            state: "stopped".to_owned(),
            liveness: Instance::liveness_of(owner.as_ref()),
            owner,
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }))
}
