//! Finding and removing the images claude-bottle built that are no longer
//! current, by their labels.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, RemoveImageOptions};

use super::{default_image, gate_image};
use crate::claude_code::DefaultImage;
use crate::error::{Error, Result};
use crate::images::StaleImage;
use crate::labels;

pub(super) async fn find(
    docker: &Docker,
    current: &DefaultImage,
    scope: &[(String, String)],
) -> Result<Vec<StaleImage>> {
    let failed =
        |err: bollard::errors::Error| Error::new(format!("cannot list the engine's images: {err}"));
    let mut wanted = vec![format!("{}=true", labels::MANAGED)];
    wanted.extend(scope.iter().map(|(k, v)| format!("{k}={v}")));
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(HashMap::from([("label".to_owned(), wanted)])),
            ..Default::default()
        }))
        .await
        .map_err(failed)?;
    let in_use: HashSet<String> = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .map_err(failed)?
        .into_iter()
        .filter_map(|c| c.image_id)
        .collect();
    // Without the base on the engine the current default image cannot be
    // told, so none counts as stale.
    let current_default = default_image::resolve(docker, current).await?.tag;
    let current_gate = gate_image::current_tag();
    let mut stale = Vec::new();
    for image in images {
        let (kind, current) = match image.labels.get(labels::ROLE).map(String::as_str) {
            Some(labels::CLAUDE_CODE_IMAGE) => ("default image", &current_default),
            Some(labels::GATE_IMAGE) => ("gate image", &current_gate),
            _ => continue,
        };
        let Some(current) = current else { continue };
        if image.repo_tags.contains(current) || in_use.contains(&image.id) {
            continue;
        }
        stale.push(StaleImage {
            id: image.id,
            tags: image
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            kind: kind.to_owned(),
            size_bytes: image.size,
        });
    }
    stale.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(stale)
}

/// Removes every tag, and with the last one the image.
pub(super) async fn remove(docker: &Docker, image: &StaleImage) -> Result<()> {
    let names = if image.tags.is_empty() {
        vec![image.id.clone()]
    } else {
        image.tags.clone()
    };
    for name in names {
        match docker
            .remove_image(&name, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => {
                return Err(Error::new(format!("cannot remove the image {name}: {err}")));
            }
        }
    }
    Ok(())
}
