//! The engine's list of containers, as every engine gives it.
//!
//! Podman's Docker API names some states in its own words, which the Docker
//! API lacks: a container that has exited but is not yet cleaned up is
//! `stopped`, one readied to run but not started is `initialized` (older
//! Podmans also say `configured` for one made), one it lost track of is
//! `unknown`. A list holding one cannot be read as the Docker
//! API's. Under load `stopped` lasts for as long as Podman's cleanup takes,
//! tens of seconds; waiting it out is no answer. Such a list is read again
//! from the payload the engine sent, each of those states read as what it
//! is in Docker's words.

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;

/// The containers `options` picks.
pub async fn list(
    docker: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    match docker.list_containers(Some(options)).await {
        // What even Podman's words cannot explain stays the error it was.
        Err(bollard::errors::Error::JsonDataError {
            message,
            contents,
            column,
        }) => {
            read_with_podmans_states(&contents).map_err(|_| bollard::errors::Error::JsonDataError {
                message,
                contents,
                column,
            })
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
            if let Some(docker) = state.as_str().and_then(in_dockers_words) {
                *state = docker.into();
            }
        }
    }
    Ok(serde_json::from_value(listed)?)
}

/// A state of Podman's own, as the Docker API would say it.
fn in_dockers_words(podmans: &str) -> Option<&'static str> {
    match podmans {
        "stopped" => Some("exited"),
        "initialized" | "configured" => Some("created"),
        "unknown" => Some("dead"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerSummaryStateEnum;

    #[test]
    fn podmans_own_states_are_read_in_dockers_words_and_the_rest_as_given() {
        for (podmans, dockers) in [
            ("stopped", ContainerSummaryStateEnum::EXITED),
            ("initialized", ContainerSummaryStateEnum::CREATED),
            ("configured", ContainerSummaryStateEnum::CREATED),
            ("unknown", ContainerSummaryStateEnum::DEAD),
        ] {
            let said = format!(
                r#"[
                    {{"Id": "a", "State": "{podmans}", "Labels": {{"io.claude-bottle.role": "gate"}}}},
                    {{"Id": "b", "State": "running"}},
                    {{"Id": "c", "State": "stopping"}}
                ]"#
            );
            assert!(serde_json::from_str::<Vec<ContainerSummary>>(&said).is_err());
            let read = read_with_podmans_states(&said).unwrap();
            assert_eq!(read[0].state, Some(dockers), "{podmans}");
            assert_eq!(
                read[0].labels.as_ref().unwrap()["io.claude-bottle.role"],
                "gate"
            );
            assert_eq!(read[1].state, Some(ContainerSummaryStateEnum::RUNNING));
            assert_eq!(read[2].state, Some(ContainerSummaryStateEnum::STOPPING));
        }
    }

    #[test]
    fn a_state_no_engine_names_stays_an_error() {
        let said = r#"[{"Id": "a", "State": "sleeping"}]"#;
        assert!(read_with_podmans_states(said).is_err());
    }

    #[test]
    fn a_list_that_is_not_json_stays_an_error() {
        assert!(read_with_podmans_states("not json").is_err());
    }
}
