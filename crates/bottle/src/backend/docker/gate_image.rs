//! The gate's image: this very executable, alone in an otherwise empty
//! image, built on the engine on first use and reused after.
//!
//! Nothing is pulled: the executable is static, so `FROM scratch` is all
//! it needs. The tag comes from the executable's content, so a new build of
//! claude-bottle gets a new gate image and an unchanged one never rebuilds.
//! Where this executable cannot run on the engine (another architecture,
//! or a host that is not Linux), `CLAUDE_BOTTLE_GATE_IMAGE` names a gate
//! image built elsewhere.

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, DownloadFromContainerOptions,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::default_image::hex;
use super::ledger::{Created, Ledger};
use crate::archive::append_file;
use crate::backend::GateImage;
use crate::error::{Error, Result};
use crate::lifecycle::labels;
use crate::settings::GATE_IMAGE;

/// Where the gate images built from this executable are tagged.
pub(super) const REPOSITORY: &str = "claude-bottle/gate";

/// The gate image to use: the one named, or this executable's own.
pub(super) async fn ensure(
    docker: &Docker,
    engine_arch: &str,
    image: &GateImage,
) -> Result<String> {
    if let GateImage::Named(image) = image {
        return match docker.inspect_image(image).await {
            Ok(_) => Ok(image.to_owned()),
            Err(_) => Err(Error::new(format!(
                "the gate image `{image}` ({}) is not on the engine",
                GATE_IMAGE.name
            ))
            .hint(build_hint())),
        };
    }
    if !cfg!(target_os = "linux") || !same_arch(engine_arch) {
        return Err(Error::new(format!(
            "this claude-bottle ({} {}) cannot run as the gate on an engine running {engine_arch}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
        .hint(build_hint()));
    }
    let unreadable = |err: std::io::Error| {
        Error::caused_by("cannot read this executable to build the gate image", err)
    };
    let tag = current_tag().await.map_err(unreadable)?;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let exe = tokio::fs::read(std::env::current_exe().map_err(unreadable)?)
        .await
        .map_err(unreadable)?;
    build(docker, &tag, &exe).await?;
    Ok(tag)
}

/// The tag of the gate image built from this executable: its SHA-256,
/// which every Rust version computes alike. Read and hashed once per
/// process, on a blocking thread (the executable is tens of MB).
pub(super) async fn current_tag() -> std::io::Result<String> {
    static TAG: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TAG.get_or_try_init(|| async {
        tokio::task::spawn_blocking(|| {
            let mut exe = std::fs::File::open(std::env::current_exe()?)?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut exe, &mut hasher)?;
            Ok(tag_of(&hasher.finalize()))
        })
        .await
        .map_err(std::io::Error::other)?
    })
    .await
    .cloned()
}

fn tag_of(digest: &[u8]) -> String {
    format!("{REPOSITORY}:{}", hex(&digest[..8]))
}

fn same_arch(engine: &str) -> bool {
    let engine = match engine {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    };
    engine == std::env::consts::ARCH
}

fn build_hint() -> String {
    format!(
        "build a gate image from the source tree for the engine's platform: \
         `cargo build --release --target <engine's target>`, then `docker build` a Dockerfile of \
         `FROM scratch`, `COPY claude-bottle /claude-bottle`, `ENTRYPOINT [\"/claude-bottle\", \"gate\"]`; \
         set {} to its tag",
        GATE_IMAGE.name
    )
}

async fn build(docker: &Docker, tag: &str, exe: &[u8]) -> Result<()> {
    let failed = |err: crate::error::Cause| Error::caused_by("cannot build the gate image", err);
    let dockerfile = "FROM scratch\nCOPY claude-bottle /claude-bottle\nENTRYPOINT [\"/claude-bottle\", \"gate\"]\n";
    let mut context = tar::Builder::new(Vec::new());
    for (name, bytes, mode) in [
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("claude-bottle", exe, 0o755),
    ] {
        append_file(&mut context, name, mode, bytes.len() as u64, bytes)
            .map_err(|e| failed(e.into()))?;
    }
    let context = context.into_inner().map_err(|e| failed(e.into()))?;
    let options = BuildImageOptions {
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        labels: Some(labels::for_image(labels::GATE_IMAGE, &[])),
        ..Default::default()
    };
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = progress.next().await {
        let step = step.map_err(|e| failed(e.into()))?;
        if let Some(detail) = step.error_detail.and_then(|d| d.message) {
            return Err(failed(detail.into()));
        }
    }
    Ok(())
}

/// The path of the executable a gate image runs, the first word of its
/// `ENTRYPOINT`.
pub(super) async fn executable(docker: &Docker, tag: &str) -> Result<String, crate::error::Cause> {
    docker
        .inspect_image(tag)
        .await?
        .config
        .and_then(|c| c.entrypoint)
        .and_then(|e| e.into_iter().next())
        .ok_or_else(|| "its ENTRYPOINT names no executable".into())
}

/// The executable the bottle's SSH helper runs: the gate's own. With
/// this executable's image it is this executable; with a named gate image
/// (where this one cannot run on the engine) it is read out of that image,
/// from a container created for it and never started.
pub(super) async fn helper(
    docker: &Docker,
    image: &GateImage,
    tag: &str,
    labels: std::collections::HashMap<String, String>,
    ledger: &mut Ledger,
) -> Result<Vec<u8>> {
    if let GateImage::ThisExecutable = image {
        let exe = std::env::current_exe()
            .map_err(|err| Error::caused_by("cannot find this executable", err))?;
        return tokio::fs::read(exe)
            .await
            .map_err(|err| Error::caused_by("cannot read this executable", err));
    }
    let failed = |err: crate::error::Cause| {
        Error::caused_by(
            format!("cannot take the SSH helper from the gate image `{tag}`"),
            err,
        )
    };
    let path = executable(docker, tag).await.map_err(failed)?;
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(tag.to_owned()),
                labels: Some(labels),
                network_disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(e.into()))?;
    ledger.record(Created::Container(created.id.clone()));
    let mut archive = Vec::new();
    let mut stream = docker.download_from_container(
        &created.id,
        Some(DownloadFromContainerOptions { path: path.clone() }),
    );
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.map_err(|e| failed(e.into()))?);
    }
    ledger.teardown().await;
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut entry = entries
        .entries()
        .and_then(|mut e| e.next().transpose())
        .map_err(|e| failed(e.into()))?
        .ok_or_else(|| failed(format!("{path} is not in it").into()))?;
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err(failed(
            format!(
                "{path} is not a regular file (a link?); name the executable itself in ENTRYPOINT"
            )
            .into(),
        ));
    }
    let mut exe = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut exe).map_err(|e| failed(e.into()))?;
    if !exe.starts_with(b"\x7fELF") {
        return Err(failed(format!("{path} is not a Linux executable").into()));
    }
    Ok(exe)
}
