//! Finding and removing the images claude-bottle built that are no longer
//! current, by their labels.
//!
//! Podman names its images in full: what claude-bottle tags
//! `claude-bottle/gate:…` it lists as `docker.io/claude-bottle/gate:…`, and
//! what it loaded as `localhost/…`. Tags are read in Docker's short form,
//! which both engines take back. Its list of images also finds nothing
//! when asked for two labels at once (Podman 4.3), so it is asked for
//! claude-bottle's own label alone, and the scope is looked for here. It
//! fails the list when an image goes while it reads them, so the list is
//! asked for again then (`ask_again`).

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, RemoveImageOptions};

use super::ask_again::{IMAGE_GONE, ask_again};
use super::engine::Engine;
use super::{default_image, gate_image};
use crate::error::{Error, Result};
use crate::images::claude_code::IMAGE_REPOSITORY;
use crate::images::{CurrentImages, StaleImage};
use crate::lifecycle::labels;

pub(super) async fn find(
    engine: &Engine,
    current: &CurrentImages,
    scope: &[(String, String)],
) -> Result<Vec<StaleImage>> {
    let docker = &engine.docker;
    let failed =
        |err: bollard::errors::Error| Error::caused_by("cannot list the engine's images", err);
    let managed = format!("{}=true", labels::MANAGED);
    let options = ListImagesOptions {
        filters: Some(HashMap::from([("label".to_owned(), vec![managed])])),
        ..Default::default()
    };
    let images: Vec<_> = ask_again(IMAGE_GONE, || docker.list_images(Some(options.clone())))
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|image| scope.iter().all(|(k, v)| image.labels.get(k) == Some(v)))
        .collect();
    let in_use: HashSet<String> = super::containers::list(
        docker,
        ListContainersOptions {
            all: true,
            ..Default::default()
        },
    )
    .await
    .map_err(failed)?
    .into_iter()
    .filter_map(|c| c.image_id)
    .collect();
    // Without the base on the engine (or a binary for its architecture)
    // the current default image cannot be told, so none counts as stale.
    let current_default = default_image::resolve(engine, &current.default)
        .await
        .ok()
        .and_then(|resolved| resolved.tag);
    let current_gate = gate_image::current_tag().await.ok();
    let mut stale = Vec::new();
    for image in images {
        let (kind, repository, current_tag) =
            match image.labels.get(labels::ROLE).map(String::as_str) {
                Some(labels::CLAUDE_CODE_IMAGE) => {
                    ("default image", IMAGE_REPOSITORY, &current_default)
                }
                Some(labels::GATE_IMAGE) => ("gate image", gate_image::REPOSITORY, &current_gate),
                _ => continue,
            };
        let Some(current_tag) = current_tag else {
            continue;
        };
        // Images built on ours inherit our labels but not our tags; those,
        // and a user's own tags on ours, are never touched.
        let prefix = format!("{repository}:");
        let listed: Vec<String> = image
            .repo_tags
            .into_iter()
            .filter(|t| short_form(t).starts_with(&prefix))
            .collect();
        let mut tags: Vec<String> = listed.iter().map(|t| short_form(t).to_owned()).collect();
        tags.sort();
        tags.dedup();
        let named = |tag: &String| current.named.iter().any(|n| short_form(n) == tag);
        if tags.is_empty()
            || tags.contains(current_tag)
            || tags.iter().any(named)
            || in_use.contains(&image.id)
        {
            continue;
        }
        stale.push(StaleImage {
            id: image.id,
            tags,
            listed,
            kind: kind.to_owned(),
            size_bytes: image.size,
        });
    }
    stale.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(stale)
}

/// A tag as Docker shows it: without the registry Podman names in full
/// for images of no registry (`localhost/`) and of Docker Hub's.
fn short_form(tag: &str) -> &str {
    ["docker.io/library/", "docker.io/", "localhost/"]
        .iter()
        .find_map(|registry| tag.strip_prefix(registry))
        .unwrap_or(tag)
}

/// Removes the image's tags (only claude-bottle's), and with the last tag
/// the image.
pub(super) async fn remove(docker: &Docker, image: &StaleImage) -> Result<()> {
    for name in &image.listed {
        match docker
            .remove_image(name, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => {
                return Err(Error::caused_by(
                    format!("cannot remove the image {name}"),
                    err,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::short_form;

    #[test]
    fn podmans_full_names_are_read_as_dockers_short_ones() {
        for (listed, short) in [
            (
                "docker.io/claude-bottle/gate:1a2b",
                "claude-bottle/gate:1a2b",
            ),
            (
                "localhost/claude-bottle/claude-code:2.1.0-ab",
                "claude-bottle/claude-code:2.1.0-ab",
            ),
            ("docker.io/library/debian:bookworm", "debian:bookworm"),
            ("claude-bottle/gate:1a2b", "claude-bottle/gate:1a2b"),
            (
                "registry.example:5000/claude-bottle/gate:1",
                "registry.example:5000/claude-bottle/gate:1",
            ),
        ] {
            assert_eq!(short_form(listed), short, "{listed}");
        }
    }
}
