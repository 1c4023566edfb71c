//! The engine's list of containers, as every engine gives it.
//!
//! Podman's Docker API calls a container that has exited but is not yet
//! cleaned up `stopped`, a state the Docker API lacks, so a list holding
//! one cannot be read as the Docker API's. Under load the state lasts for
//! as long as Podman's cleanup takes, tens of seconds; waiting it out is
//! no answer. Such a list is read again from the payload the engine sent,
//! with `stopped` read as what it is in Docker's words: `exited`.

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;

/// The containers `options` picks.
pub async fn list(
    docker: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    match docker.list_containers(Some(options)).await {
        Err(bollard::errors::Error::JsonDataError { contents, .. })
            if contents.contains("\"stopped\"") =>
        {
            read_with_podmans_states(&contents)
        }
        listed => listed,
    }
}

fn read_with_podmans_states(
    contents: &str,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    let mut listed: serde_json::Value = serde_json::from_str(contents)?;
    for container in listed.as_array_mut().into_iter().flatten() {
        if let Some(state) = container.get_mut("State") {
            if state == "stopped" {
                *state = "exited".into();
            }
        }
    }
    Ok(serde_json::from_value(listed)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerSummaryStateEnum;

    #[test]
    fn podmans_stopped_is_read_as_exited_and_the_rest_as_given() {
        let said = r#"[
            {"Id": "a", "State": "stopped", "Labels": {"io.claude-bottle.role": "gate"}},
            {"Id": "b", "State": "running"}
        ]"#;
        assert!(serde_json::from_str::<Vec<ContainerSummary>>(said).is_err());
        let read = read_with_podmans_states(said).unwrap();
        assert_eq!(read[0].state, Some(ContainerSummaryStateEnum::EXITED));
        assert_eq!(
            read[0].labels.as_ref().unwrap()["io.claude-bottle.role"],
            "gate"
        );
        assert_eq!(read[1].state, Some(ContainerSummaryStateEnum::RUNNING));
    }

    #[test]
    fn a_list_that_is_not_json_stays_an_error() {
        assert!(read_with_podmans_states("not json").is_err());
    }
}
