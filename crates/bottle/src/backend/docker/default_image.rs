//! The default image: Claude Code's native binary at a pinned, verified
//! version on a Debian base, built on the engine on first use.
//!
//! The tag is a hash of everything that decides the image's content — the
//! Dockerfile, the base image's ID, the package and version of the binary,
//! the labels — so a warm start only asks the engine whether that tag
//! exists, and a new base or version gets a new tag instead of a rebuild
//! in place. The binary is downloaded by this host and checked before it is
//! sent to the engine: the build itself needs no network unless the base
//! lacks packages, and then only for `apt-get`.

use std::collections::HashMap;
use std::fmt::Write as _;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions, RemoveImageOptions};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::engine::Engine;
use super::image::run_script;
use super::ledger::Ledger;
use crate::archive::append_file;
use crate::error::{Error, Result};
use crate::images::claude_code::{DefaultImage, IMAGE_REPOSITORY, Platform};
use crate::images::npm::{self, Fetch, Integrity};
use crate::lifecycle::labels;
use crate::lifecycle::pause::{PauseAt, Phase};
use crate::plan::DefaultImagePlan;
use crate::settings::{BASE_IMAGE, IMAGE};
use crate::ui::{Ui, Work};

/// What a coding agent needs besides Claude Code; installed only when the
/// base lacks them.
const PACKAGES: &[&str] = &[
    "git",
    "openssh-client",
    "ca-certificates",
    "curl",
    "tar",
    "procps",
];

/// The user the agent runs as, and the workspace it owns.
const USER: &str = "claude";

/// Shell that runs `then` for each of [`PACKAGES`] the system lacks, the
/// package's name in `$p`.
fn for_each_missing(then: &str) -> String {
    format!(
        "for p in {}; do dpkg-query -W -f='${{Status}}' \"$p\" 2>/dev/null | grep -q 'ok installed' || {then}; done",
        PACKAGES.join(" ")
    )
}

/// Prints `missing=<package>` for each package the base lacks, or
/// `no-dpkg` when it is not Debian-based.
fn missing_packages_script() -> String {
    format!(
        "command -v dpkg-query >/dev/null || {{ echo no-dpkg; exit 0; }}\n{}",
        for_each_missing("echo \"missing=$p\"")
    )
}

fn dockerfile(base: &str) -> String {
    // Only what the base lacks, so a complete base builds with no network.
    format!(
        "FROM {base}\n\
         USER root\n\
         RUN missing=''; {}; \\\n\
         \x20   if [ -n \"$missing\" ]; then \\\n\
         \x20     apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \\\n\
         \x20     && rm -rf /var/lib/apt/lists/*; \\\n\
         \x20   fi\n\
         RUN (id -u {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}) \\\n\
         \x20   && install -d -o {USER} -g {USER} /workspace\n\
         COPY claude /usr/local/bin/claude\n\
         ENV DISABLE_AUTOUPDATER=1\n\
         USER {USER}\n\
         WORKDIR /workspace\n",
        for_each_missing("missing=\"$missing $p\"")
    )
}

/// The tag for this recipe on a base whose image ID is `base_id`.
fn tag(recipe: &DefaultImage, platform: Platform, base_id: &str) -> String {
    let mut hasher = Sha256::new();
    let mut labels = recipe.labels.clone();
    labels.sort();
    for part in [
        dockerfile(&recipe.base).as_str(),
        base_id,
        platform.package,
        &recipe.claude_version,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (key, value) in &labels {
        hasher.update(format!("{key}={value}\0").as_bytes());
    }
    let short = hex(&hasher.finalize()[..6]);
    format!("{IMAGE_REPOSITORY}:{}-{short}", recipe.claude_version)
}

/// Bytes in lowercase hex, for tags.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The default image as a start would find it now.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    /// `None` while the base is not on the engine: its ID decides the tag.
    pub(super) tag: Option<String>,
    pub(super) built: bool,
}

/// Where the default image stands, asking the engine only (nothing is
/// pulled, downloaded or built).
pub(super) async fn resolve(engine: &Engine, recipe: &DefaultImage) -> Result<Resolved> {
    let platform = platform(&engine.architecture)?;
    let docker = &engine.docker;
    let Ok(base) = docker.inspect_image(&recipe.base).await else {
        return Ok(Resolved {
            tag: None,
            built: false,
        });
    };
    let tag = tag(recipe, platform, base.id.as_deref().unwrap_or_default());
    let built = docker.inspect_image(&tag).await.is_ok();
    Ok(Resolved {
        tag: Some(tag),
        built,
    })
}

/// The default image in a plan: its tag, or the repository and version
/// while the tag is unknown (no engine, or no base on it yet).
pub(super) async fn planned(
    engine: Option<&Engine>,
    recipe: DefaultImage,
) -> Result<(String, DefaultImagePlan)> {
    let resolved = match engine {
        Some(engine) => Some(resolve(engine, &recipe).await?),
        None => None,
    };
    let built = resolved.as_ref().is_some_and(|r| r.built);
    let image = resolved
        .and_then(|r| r.tag)
        .unwrap_or_else(|| format!("{IMAGE_REPOSITORY}:{}", recipe.claude_version));
    let plan = DefaultImagePlan {
        base: recipe.base,
        claude_code_version: recipe.claude_version,
        registry: npm::redact_userinfo(&recipe.registry),
        built,
    };
    Ok((image, plan))
}

/// The default image's tag, built first when the engine lacks it.
pub(super) async fn ensure(
    engine: &Engine,
    recipe: &DefaultImage,
    probe_labels: HashMap<String, String>,
    ui: &dyn Ui,
    pause_at: PauseAt,
) -> Result<String> {
    let platform = platform(&engine.architecture)?;
    let docker = &engine.docker;
    let base_id = base_image_id(docker, &recipe.base, ui).await?;
    let tag = tag(recipe, platform, &base_id);
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let mut probe = Ledger::new(docker);
    let report = run_script(
        docker,
        &recipe.base,
        &missing_packages_script(),
        None,
        probe_labels,
        &mut probe,
        &base_hint(),
    )
    .await;
    probe.teardown().await;
    let report = report?;
    if report.lines().any(|l| l.trim() == "no-dpkg") {
        return Err(Error::new(format!(
            "the base image `{}` is not Debian-based (it has no dpkg-query)",
            recipe.base
        ))
        .hint(base_hint()));
    }
    let missing: Vec<&str> = report
        .lines()
        .filter_map(|l| l.trim().strip_prefix("missing="))
        .collect();
    let tarball = download(recipe, platform, ui).tarball().await?;
    let unpacking = ui.progress("unpacking claude for the build", Work::Steps);
    let cache = recipe.cache.clone();
    let dockerfile = dockerfile(&recipe.base);
    // Unpacking takes seconds; signals are still heard meanwhile.
    let context = tokio::task::spawn_blocking(move || build_context(&cache, &dockerfile, &tarball))
        .await
        .map_err(|err| Error::caused_by("unpacking claude failed", err))??;
    unpacking.finish("done");
    build(docker, recipe, &tag, &context, &missing, ui, pause_at).await?;
    Ok(tag)
}

/// The download of Claude Code's binary for `platform`.
pub(super) fn download<'a>(
    recipe: &'a DefaultImage,
    platform: Platform,
    ui: &'a dyn Ui,
) -> Fetch<'a> {
    Fetch {
        registry: &recipe.registry,
        package: platform.package,
        version: &recipe.claude_version,
        pinned: recipe
            .pinned_integrity(platform)
            .map(|sri| Integrity::parse(sri).expect("a pinned integrity parses")),
        cache: &recipe.cache,
        ui,
    }
}

pub(super) fn platform(architecture: &str) -> Result<Platform> {
    Platform::for_architecture(architecture).ok_or_else(|| {
        Error::new(format!(
            "Claude Code has no native binary for this engine's architecture ({architecture})"
        ))
        .hint(format!(
            "there are binaries for {}; or set {} to a bottle image you built",
            Platform::known_architectures().join(", "),
            IMAGE.name
        ))
    })
}

pub(super) fn base_hint() -> String {
    format!(
        "set {} to a Debian-based image the engine has (see `docker images`), \
         or {} to a ready bottle image",
        BASE_IMAGE.name, IMAGE.name
    )
}

/// The base's image ID, pulling it first when the engine lacks it.
async fn base_image_id(docker: &Docker, base: &str, ui: &dyn Ui) -> Result<String> {
    if let Ok(found) = docker.inspect_image(base).await {
        return Ok(found.id.unwrap_or_default());
    }
    let cannot = |detail: &dyn std::fmt::Display| {
        Error::new(format!(
            "the base image `{base}` is not on the engine and cannot be pulled: {detail}"
        ))
        .hint(base_hint())
    };
    // Without a tag the engine would pull every tag of the repository.
    let last = base.rsplit('/').next().unwrap_or(base);
    let reference = if last.contains(':') || last.contains('@') {
        base.to_owned()
    } else {
        format!("{base}:latest")
    };
    let progress = ui.progress(&format!("pulling {reference}"), Work::Steps);
    let mut pull = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(reference.clone()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(step) = pull.next().await {
        let step = step.map_err(|err| cannot(&err))?;
        if let Some(message) = step.error_detail.and_then(|d| d.message) {
            return Err(cannot(&message));
        }
        if let Some(status) = step.status {
            progress.status(&status);
        }
    }
    progress.finish("pulled");
    docker
        .inspect_image(&reference)
        .await
        .map(|found| found.id.unwrap_or_default())
        .map_err(|err| cannot(&err))
}

/// The build context, in a file beside the downloads: the Dockerfile and
/// the binary, streamed from the tarball without holding it in memory.
fn build_context(
    cache: &std::path::Path,
    dockerfile: &str,
    tarball: &std::path::Path,
) -> Result<tempfile::NamedTempFile> {
    let failed = |err: &dyn std::fmt::Display| {
        Error::caused_by(
            "cannot write the default image's build context",
            err.to_string(),
        )
    };
    let file = tempfile::NamedTempFile::new_in(cache).map_err(|err| failed(&err))?;
    let mut context = tar::Builder::new(file);
    append_file(
        &mut context,
        "Dockerfile",
        0o644,
        dockerfile.len() as u64,
        dockerfile.as_bytes(),
    )
    .map_err(|err| failed(&err))?;
    npm::read_from_tarball(tarball, "claude", |size, binary| {
        append_file(&mut context, "claude", 0o755, size, binary)
    })?;
    context.into_inner().map_err(|err| failed(&err))
}

async fn build(
    docker: &Docker,
    recipe: &DefaultImage,
    tag: &str,
    context: &tempfile::NamedTempFile,
    missing: &[&str],
    ui: &dyn Ui,
    pause_at: PauseAt,
) -> Result<()> {
    let failed = |detail: &dyn std::fmt::Display| {
        Error::new(format!("cannot build the default image {tag}: {detail}"))
    };
    let options = BuildImageOptions {
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        labels: Some(labels::for_image(labels::CLAUDE_CODE_IMAGE, &recipe.labels)),
        // A base with every package needs nothing from the network.
        networkmode: missing.is_empty().then(|| "none".to_owned()),
        ..Default::default()
    };
    // Read through tokio: the context is as large as claude itself.
    let file = tokio::fs::File::from_std(context.reopen().map_err(|err| failed(&err))?);
    let body = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 1 << 20];
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut chunk).await?;
        chunk.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (chunk.into(), file)))
    });
    let label = if missing.is_empty() {
        format!("building {tag}")
    } else {
        format!("building {tag} (installing {})", missing.join(", "))
    };
    let progress = ui.progress(&label, Work::Steps);
    // The last lines the build printed: what a failure is explained by.
    let mut output = BuildOutput::default();
    let mut steps = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
    let outcome = async {
        while let Some(step) = steps.next().await {
            let step = match step {
                Ok(step) => step,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(output.failure(tag, &error, missing));
                }
                Err(err) => return Err(failed(&err)),
            };
            if let Some(message) = step.error_detail.and_then(|d| d.message) {
                return Err(output.failure(tag, &message, missing));
            }
            if let Some(text) = step.stream.as_deref() {
                if let Some(step) = build_step(text) {
                    // The engine is building: the test hook's phase.
                    if step.starts_with("Step 1/") {
                        pause_at.reached(Phase::Image, ui).await;
                    }
                    progress.status(&step);
                }
                output.push(text);
            }
        }
        Ok(())
    }
    .await;
    if outcome.is_err() {
        // The steps that did succeed left untagged images behind.
        remove_untagged(docker, &output.images).await;
    }
    outcome?;
    progress.finish("built");
    Ok(())
}

/// Removes those of `images` that no tag names (never the base or any
/// image still in use), newest first.
async fn remove_untagged(docker: &Docker, images: &[String]) {
    for id in images.iter().rev() {
        let untagged = docker
            .inspect_image(id)
            .await
            .is_ok_and(|image| image.repo_tags.unwrap_or_default().is_empty());
        if untagged {
            let _ = docker
                .remove_image(id, None::<RemoveImageOptions>, None)
                .await;
        }
    }
}

#[derive(Debug, Default)]
struct BuildOutput {
    tail: std::collections::VecDeque<String>,
    /// The image of each step, from the builder's ` ---> <id>` lines.
    images: Vec<String>,
}

/// A line that starts a build step, in Docker's words: Podman's builder
/// says `STEP 2/5: RUN …` where Docker says `Step 2/5 : RUN …`.
fn build_step(text: &str) -> Option<String> {
    if text.starts_with("Step ") {
        return Some(text.to_owned());
    }
    let (count, rest) = text.strip_prefix("STEP ")?.split_once(": ")?;
    Some(format!("Step {count} : {rest}"))
}

impl BuildOutput {
    const LINES: usize = 12;

    fn push(&mut self, text: &str) {
        let plain = strip_ansi_escapes::strip_str(text);
        for line in plain.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            // Docker's `---> id`, Podman's `--> id`.
            if let Some(id) = line
                .trim()
                .strip_prefix("---> ")
                .or_else(|| line.trim().strip_prefix("--> "))
                .filter(|id| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
            {
                self.images.push(id.to_owned());
            }
            if self.tail.len() == Self::LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.to_owned());
        }
    }

    /// The error of a failed build step, with what the build printed last.
    fn failure(&self, tag: &str, detail: &str, missing: &[&str]) -> Error {
        // The engine quotes the whole failing command; its exit code says
        // enough next to the output. Docker: "… returned a non-zero code:
        // 100"; Podman: "… while running runtime: exit status 100".
        let code = [
            "returned a non-zero code: ",
            "while running runtime: exit status ",
        ]
        .iter()
        .find_map(|before| detail.trim_end().rsplit_once(before))
        .map(|(_, code)| code)
        .filter(|code| code.parse::<i64>().is_ok());
        let detail = code.map_or_else(
            || detail.to_owned(),
            |code| format!("a build step exited with code {code}"),
        );
        let mut message = format!("cannot build the default image {tag}: {detail}");
        for line in &self.tail {
            let _ = write!(message, "\n  | {line}");
        }
        let error = Error::new(message);
        if missing.is_empty() {
            return error;
        }
        error.hint(format!(
            "the base lacks {}, which the build installs with apt-get from the base's package \
             sources; let the engine reach them, or set {} to a base that has these packages",
            missing.join(", "),
            BASE_IMAGE.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(base: &str) -> DefaultImage {
        DefaultImage {
            base: base.to_owned(),
            claude_version: "2.1.332".to_owned(),
            registry: "https://registry.npmjs.org/".to_owned(),
            cache: "/nonexistent".into(),
            labels: vec![],
        }
    }

    #[test]
    fn the_dockerfile_installs_only_what_is_missing_and_turns_updates_off() {
        insta::assert_snapshot!(dockerfile("debian:bookworm-slim"));
    }

    #[test]
    fn a_failed_build_shows_its_last_lines_without_escapes_and_says_what_to_do() {
        let mut output = BuildOutput::default();
        output.push(
            "Step 1/2 : FROM base\n ---> 0123456789ab\nStep 2/2 : RUN x\n ---> Running in 99aa\n",
        );
        assert_eq!(output.images, ["0123456789ab"]);
        for n in 0..20 {
            output.push(&format!("\u{1b}[31mline {n}\u{1b}[0m\n\u{1b}[0m\n"));
        }
        let err = output.failure(
            "img",
            "The command '/bin/sh -c apt-get install x' returned a non-zero code: 100",
            &["procps"],
        );
        let mut expected =
            "cannot build the default image img: a build step exited with code 100".to_owned();
        for n in 8..20 {
            let _ = write!(expected, "\n  | line {n}");
        }
        assert_eq!(err.message(), expected);
        assert!(err.hints()[0].starts_with("the base lacks procps"));
    }

    #[test]
    fn a_failed_step_is_told_by_its_exit_code_whichever_builder_says_it() {
        let output = BuildOutput::default();
        for said in [
            "The command '/bin/sh -c apt-get install x' returned a non-zero code: 100",
            "building at STEP \"RUN apt-get install x\": while running runtime: exit status 100\n",
        ] {
            assert_eq!(
                output.failure("img", said, &[]).message(),
                "cannot build the default image img: a build step exited with code 100",
                "{said}"
            );
        }
        assert_eq!(
            output
                .failure("img", "no space left on device", &[])
                .message(),
            "cannot build the default image img: no space left on device"
        );
    }

    #[test]
    fn a_step_is_told_in_dockers_words_whichever_builder_says_it() {
        for said in [
            "Step 2/5 : RUN apt-get update\n",
            "STEP 2/5: RUN apt-get update\n",
        ] {
            assert_eq!(
                build_step(said).as_deref(),
                Some("Step 2/5 : RUN apt-get update\n")
            );
        }
        assert_eq!(build_step(" ---> Running in 99aa\n"), None);
        let mut output = BuildOutput::default();
        output.push("STEP 1/2: FROM base\n--> 0123456789ab\nSTEP 2/2: RUN x\n");
        assert_eq!(output.images, ["0123456789ab"]);
    }

    #[test]
    fn the_tag_follows_the_content() {
        let platform = Platform::for_architecture("x86_64").unwrap();
        let one = tag(&recipe("debian:bookworm-slim"), platform, "sha256:aa");
        assert!(
            one.starts_with("claude-bottle/claude-code:2.1.332-"),
            "{one}"
        );
        assert_eq!(
            one,
            tag(&recipe("debian:bookworm-slim"), platform, "sha256:aa")
        );
        assert_ne!(
            one,
            tag(&recipe("debian:bookworm-slim"), platform, "sha256:bb")
        );
        assert_ne!(
            one,
            tag(&recipe("debian:trixie-slim"), platform, "sha256:aa")
        );
        let arm = Platform::for_architecture("aarch64").unwrap();
        assert_ne!(one, tag(&recipe("debian:bookworm-slim"), arm, "sha256:aa"));
        let mut labelled = recipe("debian:bookworm-slim");
        labelled.labels.push(("ci.job".into(), "7".into()));
        assert_ne!(one, tag(&labelled, platform, "sha256:aa"));
    }
}
