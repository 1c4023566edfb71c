//! Engine calls asked again when the refusal is one a moment cures.
//!
//! Podman reads its state in steps, and a change between them fails the
//! whole call. A network create reads the host's addresses and then its
//! interfaces, and an interface removed in between (another bottle's, as
//! it ends) fails it with "no such network interface". Its list of images
//! reads which there are and then each one, and an image removed in
//! between (a build's intermediate one, another command's removal) fails
//! it with "image not known". The same call a moment later passes.

use std::future::Future;
use std::time::Duration;

/// Calls before a passing refusal is taken as the answer: about 3 s of
/// pauses, as long as a burst of removals (a cleanup's, a build's end)
/// has taken.
const TRIES: u32 = 8;
/// The pause after the first passing refusal; each later one is twice
/// the one before.
const PAUSE: Duration = Duration::from_millis(25);

/// What Podman says when a host interface went while it read them (Go's
/// "route ip+net: no such network interface").
pub(super) const INTERFACE_GONE: &str = "no such network interface";
/// What Podman says when an image went while it read them.
pub(super) const IMAGE_GONE: &str = "image not known";

/// `call`'s answer, asked again while the refusal says `passing`.
pub(super) async fn ask_again<T, F, A>(
    passing: &str,
    mut call: F,
) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> A,
    A: Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut tries = 1;
    loop {
        match call().await {
            Err(err) if tries < TRIES && err.to_string().contains(passing) => {
                tracing::debug!(%err, "asked again");
                tokio::time::sleep(PAUSE * 2u32.pow(tries - 1)).await;
                tries += 1;
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: message.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_passing_refusal_is_asked_again_and_any_other_is_the_answer() {
        let mut calls = 0;
        let answer = ask_again(IMAGE_GONE, || {
            calls += 1;
            let answer = if calls < 3 {
                Err(refused(
                    "reading image \"1f72\": locating image with ID \"1f72\": image not known",
                ))
            } else {
                Ok(calls)
            };
            async move { answer }
        })
        .await;
        assert_eq!(answer.unwrap(), 3);

        let mut calls = 0;
        let answer: Result<(), _> = ask_again(INTERFACE_GONE, || {
            calls += 1;
            async { Err(refused("network with name x already exists")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let answer: Result<(), _> = ask_again(INTERFACE_GONE, || {
            calls += 1;
            async { Err(refused("route ip+net: no such network interface")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(calls, TRIES);
    }
}
