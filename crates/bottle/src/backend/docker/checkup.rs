//! `doctor`'s checks of the engine: that it answers, and what it has for a
//! start (gVisor, the images, disk space). Nothing is pulled, built or
//! created; a registry is asked only whether it has what a start would
//! fetch.

use std::path::Path;

use super::default_image::{self, base_hint, platform};
use super::engine::{self, Engine};
use super::limits;
use super::podman_host;
use super::reach::Reach;
use super::runtime::GVISOR_OFF_LOOPBACK;
use crate::backend::{ImageSource, Runtime};
use crate::doctor::{Finding, Verdict};
use crate::images::npm::TarballSource;
use crate::settings::{IMAGE, RUNTIME, RuntimeChoice, Settings};
use crate::ui::Ui;

/// Below this much free space, a start (an image build, a repository
/// copied in) may fail part way.
const DISK_LOW: u64 = 5 << 30;
/// Below this, it will.
const DISK_FULL: u64 = 1 << 30;

pub(super) async fn findings(settings: &Settings, home: &Path, ui: &dyn Ui) -> Vec<Finding> {
    let engine = match engine::ask().await {
        Ok(engine) => engine,
        Err(err) => {
            let skipped =
                |check| Finding::new(check, Verdict::Skipped, "not checked: no engine answers");
            return vec![
                Finding::failed("engine", &err),
                skipped("gvisor"),
                skipped("limits"),
                skipped("image"),
                skipped("disk"),
            ];
        }
    };
    let identity = &engine.identity;
    vec![
        Finding::ok("engine", identity.to_string())
            .fact("kind", identity.product.as_str())
            .fact("version", identity.version.as_str())
            .fact("api_version", identity.api_version.as_str())
            .fact("location", identity.endpoint.as_str()),
        gvisor(&engine, settings.runtime),
        limits(&engine).await,
        image(&engine, settings, home, ui).await,
        disk(&engine),
    ]
}

fn gvisor(engine: &Engine, choice: RuntimeChoice) -> Finding {
    let registered = engine.runtimes.iter().any(|r| r == "runsc");
    let register = "install gVisor on the engine's host (Debian: `apt-get install runsc`), \
                    register it with `sudo runsc install`, then restart the engine \
                    (`sudo systemctl restart docker`)";
    let finding = match (registered, choice) {
        // The agent reaches its gate on its own loopback there (`reach`).
        _ if engine.identity.is_podman() && choice == RuntimeChoice::Runsc => Finding::new(
            "gvisor",
            Verdict::Fail,
            format!(
                "{} asks for runsc, which cannot hold a bottle on Podman: {GVISOR_OFF_LOOPBACK}",
                RUNTIME.name
            ),
        )
        .fix(format!("set {}=auto or runc", RUNTIME.name)),
        _ if engine.identity.is_podman() => {
            let under =
                super::runtime::choose(choice, Some(engine.offered()), Some(Reach::Loopback))
                    .ok()
                    .flatten()
                    .unwrap_or(Runtime::Runc);
            Finding::ok(
                "gvisor",
                format!(
                    "not used on Podman, where {GVISOR_OFF_LOOPBACK}: bottles run under {under}"
                ),
            )
        }
        (true, RuntimeChoice::Runc) => Finding::ok(
            "gvisor",
            format!(
                "gVisor (runsc) is registered, but {} chooses runc",
                RUNTIME.name
            ),
        ),
        (true, _) => Finding::ok(
            "gvisor",
            "gVisor (runsc) is registered: bottles run under it",
        ),
        (false, RuntimeChoice::Runsc) => Finding::new(
            "gvisor",
            Verdict::Fail,
            format!(
                "{} asks for runsc, which the engine does not have",
                RUNTIME.name
            ),
        )
        .fix(register),
        (false, RuntimeChoice::Runc) => Finding::ok(
            "gvisor",
            format!("not registered; {} chooses runc", RUNTIME.name),
        ),
        (false, RuntimeChoice::Auto) => Finding::new(
            "gvisor",
            Verdict::Warn,
            "gVisor (runsc) is not registered: bottles run under runc, sharing the host's kernel",
        )
        .fix(register),
    };
    finding
        .fact("registered", registered)
        .fact("runtimes", engine.runtimes.clone())
}

/// Whether the engine keeps a container's memory, process and CPU limits,
/// without which a start is refused (`limits`). Podman's Docker API claims
/// them all; its own says whether it is rootless on cgroups v1, where it
/// keeps none.
async fn limits(engine: &Engine) -> Finding {
    const ALL: &str = "a container's memory, process and CPU limits";
    if engine.identity.is_podman() {
        let host = match podman_host::ask(&engine.endpoint).await {
            Some(Ok(host)) => host,
            unasked => {
                let why = match unasked {
                    Some(Err(err)) => format!("Podman's own info did not come ({err})"),
                    _ => "Podman behind TLS is not asked whether it is rootless".to_owned(),
                };
                return Finding::new(
                    "limits",
                    Verdict::Skipped,
                    format!("not checked: {why}; a start reads the limits back"),
                );
            }
        };
        let service = if host.rootless { "rootless" } else { "rootful" };
        let finding = if host.drops_limits() {
            Finding::new(
                "limits",
                Verdict::Fail,
                format!(
                    "{service} Podman on cgroups {} keeps none of {ALL}: a start is refused",
                    host.cgroup_version
                ),
            )
            .fix(limits::PODMAN_KEEPS_NONE)
        } else {
            Finding::ok(
                "limits",
                format!(
                    "{service} Podman on cgroups {} keeps {ALL}",
                    host.cgroup_version
                ),
            )
        };
        return finding
            .fact("rootless", host.rootless)
            .fact("cgroup_version", host.cgroup_version);
    }
    let held = engine.limit_controllers;
    let lacking: Vec<&str> = [
        ("memory", held.memory),
        ("processes", held.pids),
        ("CPUs", held.cpus),
    ]
    .into_iter()
    .filter_map(|(what, kept)| (!kept).then_some(what))
    .collect();
    if lacking.is_empty() {
        Finding::ok("limits", format!("the engine keeps {ALL}"))
    } else {
        Finding::new(
            "limits",
            Verdict::Fail,
            format!(
                "the engine cannot limit a container's {}: a start is refused",
                lacking.join(", ")
            ),
        )
        .fix(limits::KERNEL_LACKS)
    }
}

async fn image(engine: &Engine, settings: &Settings, home: &Path, ui: &dyn Ui) -> Finding {
    let recipe = match settings.image_source(home) {
        ImageSource::Named(image) => {
            return if engine.docker.inspect_image(&image).await.is_ok() {
                Finding::ok("image", format!("{} names `{image}`, which the engine has", IMAGE.name))
            } else {
                Finding::new(
                    "image",
                    Verdict::Fail,
                    format!("{} names `{image}`, which the engine does not have", IMAGE.name),
                )
                .fix(format!(
                    "build or pull it (`docker pull {image}`), or unset {} to use the default image",
                    IMAGE.name
                ))
            }
            .fact("image", image);
        }
        ImageSource::Default(recipe) => recipe,
    };
    let resolved = match default_image::resolve(engine, &recipe).await {
        Ok(resolved) => resolved,
        Err(err) => return Finding::failed("image", &err),
    };
    let version = &recipe.claude_version;
    if let (Some(tag), true) = (&resolved.tag, resolved.built) {
        return Finding::ok("image", format!("the default image {tag} is built"))
            .fact("image", tag.as_str());
    }
    // Not built: the first start needs the base and the binary.
    let base = if resolved.tag.is_some() {
        format!("on `{}`, which the engine has", recipe.base)
    } else if engine
        .docker
        .inspect_registry_image(&recipe.base, None)
        .await
        .is_ok()
    {
        format!(
            "on `{}`, pulled from its registry, which answers",
            recipe.base
        )
    } else {
        return Finding::new(
            "image",
            Verdict::Fail,
            format!(
                "the default image's base `{}` is not on the engine, and no registry gives it",
                recipe.base
            ),
        )
        .fix(base_hint())
        .fact("base", recipe.base.as_str());
    };
    let binary = match platform(&engine.architecture) {
        Ok(platform) => {
            default_image::download(&recipe, platform, ui)
                .source()
                .await
        }
        Err(err) => Err(err),
    };
    match binary {
        Ok(source) => Finding::ok(
            "image",
            format!(
                "not built yet: the first start builds it {base}, with Claude Code {version} {}",
                match source {
                    TarballSource::Cache => "from the download cache",
                    TarballSource::Registry => "downloaded from the npm registry, which answers",
                }
            ),
        ),
        Err(err) => Finding::failed("image", &err),
    }
    .fact("base", recipe.base.as_str())
    .fact("claude_code_version", version.as_str())
}

/// The free space where the engine keeps images, when that is on this
/// machine: a socket's engine is; one reached over TCP or SSH may not be.
fn disk(engine: &Engine) -> Finding {
    let root = engine
        .root_dir
        .as_deref()
        .filter(|_| engine.identity.endpoint.starts_with("unix://"));
    let Some(stats) = root.and_then(|root| rustix::fs::statvfs(root).ok()) else {
        return Finding::new(
            "disk",
            Verdict::Skipped,
            "the engine keeps its images on another machine: `docker system df` there shows its use",
        );
    };
    let root = root.unwrap_or_default();
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    let shown = format!(
        "{:.1} GiB free where the engine keeps its images ({root})",
        gib(free)
    );
    let finding = if free < DISK_FULL {
        Finding::new("disk", Verdict::Fail, shown)
    } else if free < DISK_LOW {
        Finding::new("disk", Verdict::Warn, shown)
    } else {
        return Finding::ok("disk", shown)
            .fact("free_bytes", free)
            .fact("path", root);
    };
    finding
        .fix(format!(
            "a start may need {:.0} GiB for images: free space on that disk (`claude-bottle cleanup` \
             removes stale bottle images, `docker system prune` others)",
            gib(DISK_LOW)
        ))
        .fact("free_bytes", free)
        .fact("path", root)
}

#[allow(clippy::cast_precision_loss, reason = "shown to a tenth of a GiB")]
fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}
