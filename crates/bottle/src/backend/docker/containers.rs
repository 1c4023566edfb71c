//! The engine's list of containers, as every engine gives it.
//!
//! Podman's Docker API calls a container that has stopped but is not yet
//! cleaned up `stopped`, a state the Docker API lacks, and a list holding
//! one cannot be read. The state lasts only until Podman's cleanup runs or
//! the container is removed, so the list is asked for again meanwhile.

use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;

/// How long a container may stay `stopped` before the error is returned.
const SETTLED_WITHIN: Duration = Duration::from_secs(10);
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// The containers `options` picks, once none is in a state only Podman
/// names.
pub async fn list(
    docker: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    let deadline = tokio::time::Instant::now() + SETTLED_WITHIN;
    loop {
        match docker.list_containers(Some(options.clone())).await {
            Err(bollard::errors::Error::JsonDataError { ref message, .. })
                if message.contains("unknown variant `stopped`")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(ASK_AGAIN_AFTER).await;
            }
            listed => return listed,
        }
    }
}
