//! Finding and removing the images claude-bottle built that are no longer
//! current, by their labels.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, RemoveImageOptions};

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
    let mut wanted = vec![format!("{}=true", labels::MANAGED)];
    wanted.extend(scope.iter().map(|(k, v)| format!("{k}={v}")));
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(HashMap::from([("label".to_owned(), wanted)])),
            ..Default::default()
        }))
        .await
        .map_err(failed)?;
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
        let tags: Vec<String> = image
            .repo_tags
            .iter()
            .filter(|t| t.starts_with(&prefix))
            .cloned()
            .collect();
        if tags.is_empty()
            || tags.contains(current_tag)
            || tags.iter().any(|t| current.named.contains(t))
            || in_use.contains(&image.id)
        {
            continue;
        }
        stale.push(StaleImage {
            id: image.id,
            tags,
            kind: kind.to_owned(),
            size_bytes: image.size,
        });
    }
    stale.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(stale)
}

/// Removes the image's tags (only claude-bottle's), and with the last tag
/// the image.
pub(super) async fn remove(docker: &Docker, image: &StaleImage) -> Result<()> {
    for name in &image.tags {
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
