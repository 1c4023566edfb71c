//! `doctor`'s checks of the engine: that it answers, and what it has for a
//! start (gVisor, the images, disk space). Nothing is pulled, built or
//! created; a registry is asked only whether it has what a start would
//! fetch.

use std::path::Path;

use super::default_image::{self, base_hint, platform};
use super::engine::{self, Engine};
use super::facts_cache::{FactsCache, runtime_key};
use super::ledger::Ledger;
use super::limits;
use super::podman_host;
use super::reach::Reach;
use super::runtime::GVISOR_OFF_LOOPBACK;
use super::statx_fallback;
use crate::backend::{ImageSource, Runtime};
use crate::doctor::{Finding, Verdict};
use crate::images::npm::TarballSource;
use crate::lifecycle::labels::{self, Role};
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
        gvisor(&engine, settings, home).await,
        limits(&engine).await,
        image(&engine, settings, home, ui).await,
        disk(&engine),
    ]
}

/// Whether gVisor is there and chosen, and whether the build chosen is
/// sound: one whose statx coreutils cannot use gets the statx fallback in
/// every bottle (`statx_fallback`), which the user is told how to end.
async fn gvisor(engine: &Engine, settings: &Settings, home: &Path) -> Finding {
    let choice = &settings.runtime;
    let finding = gvisor_registered(engine, choice);
    if finding.verdict != Verdict::Ok || engine.identity.is_podman() {
        return finding;
    }
    let Ok(Some(runtime)) = super::runtime::choose(
        choice.clone(),
        Some(engine.offered()),
        Some(Reach::InternalNetwork),
    ) else {
        return finding;
    };
    if !runtime.is_gvisor() {
        return finding;
    }
    let build = runsc_build(engine, runtime.as_str()).await;
    let finding = finding.fact("build", build.as_str());
    let Some(image) = image_to_try(engine, settings, home).await else {
        return finding.fact("statx", "unchecked");
    };
    let mut probe = Ledger::new(&engine.docker);
    let report = super::image::run_script(
        &engine.docker,
        &image,
        statx_fallback::PROBE,
        Some(runtime.as_str()),
        labels::for_image(Role::Probe.as_str(), &settings.extra_labels),
        &mut probe,
        "",
    )
    .await;
    probe.teardown().await;
    match report {
        Ok(report) if statx_fallback::faulty(&report) => Finding::new(
            "gvisor",
            Verdict::Warn,
            format!(
                "gVisor ({}, {build}) refuses coreutils' statx calls: `ls FILE`, `ls -l` and \
                 `stat` fail under it, so every bottle gets claude-bottle's statx fallback",
                runtime.as_str()
            ),
        )
        .fix(
            "install a newer gVisor on the engine's host: Debian 13's runsc package \
             (0.0~20240729), or a release from gvisor.dev; register it as `runsc` \
             (`sudo runsc install`, or its path in /etc/docker/daemon.json as the README \
             shows), then restart the engine",
        )
        .fact("registered", true)
        .fact("runtimes", engine.runtimes.clone())
        .fact("build", build.as_str())
        .fact("statx", "faulty"),
        Ok(_) => {
            // Starts keep finding it where it was faulty before this build.
            FactsCache::of_home(home).forget_runtime(&runtime_key(engine, runtime.as_str()));
            finding.fact("statx", "sound")
        }
        Err(_) => finding.fact("statx", "unchecked"),
    }
}

/// The image a statx check runs in: the bottle's own where the engine has
/// it, else the default image's base.
async fn image_to_try(engine: &Engine, settings: &Settings, home: &Path) -> Option<String> {
    let candidates = match settings.image_source(home) {
        ImageSource::Named(image) => vec![image],
        ImageSource::Default(recipe) => {
            let built = default_image::resolve(engine, &recipe)
                .await
                .ok()
                .filter(|resolved| resolved.built)
                .and_then(|resolved| resolved.tag);
            built.into_iter().chain([recipe.base.clone()]).collect()
        }
    };
    for image in candidates {
        if engine.docker.inspect_image(&image).await.is_ok() {
            return Some(image);
        }
    }
    None
}

/// The build of the runtime `name`, as its own `--version` says, where the
/// engine is on this host; else its executable's path.
async fn runsc_build(engine: &Engine, name: &str) -> String {
    let path = engine.runtime_paths.get(name).cloned().unwrap_or_default();
    let version = if runs_here(engine, Path::new(&path)) {
        let asked = tokio::process::Command::new(&path)
            .arg("--version")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(std::time::Duration::from_secs(5), asked)
            .await
            .ok()
            .and_then(Result::ok)
            .filter(|out| out.status.success())
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
    } else {
        None
    };
    match version {
        Some(version) => format!("{version} at {path}"),
        None if path.is_empty() => "its build unknown".to_owned(),
        None => path,
    }
}

/// Whether `path`, which the engine names as a gVisor's executable, may be
/// asked its version here: the engine is Docker on this very host (its
/// socket here and its host name this host's), and the file is a `runsc`
/// by absolute path that only root can change. Nothing else the engine
/// names is run.
fn runs_here(engine: &Engine, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let this_host = crate::lifecycle::owner::ProcessTable::host_name(
        &crate::lifecycle::owner::Procfs::system(),
    );
    engine.endpoint.host.starts_with("unix://")
        && !engine.identity.is_podman()
        && this_host.is_some_and(|host| host == engine.host_name)
        && path.is_absolute()
        && path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("runsc"))
        && std::fs::metadata(path)
            .is_ok_and(|m| m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0)
}

fn gvisor_registered(engine: &Engine, choice: &RuntimeChoice) -> Finding {
    let registered = engine.runtimes.iter().any(|r| match choice {
        RuntimeChoice::Runsc(name) => r == name,
        _ => r == "runsc",
    });
    let register = "install gVisor on the engine's host (Debian: `apt-get install runsc`), \
                    register it with `sudo runsc install`, then restart the engine \
                    (`sudo systemctl restart docker`)";
    let finding = match (registered, choice) {
        // The agent reaches its gate on its own loopback there (`reach`).
        _ if engine.identity.is_podman() && choice.is_gvisor() => Finding::new(
            "gvisor",
            Verdict::Fail,
            format!(
                "{} asks for runsc, which cannot hold a bottle on Podman: {GVISOR_OFF_LOOPBACK}",
                RUNTIME.name
            ),
        )
        .fix(format!("set {}=auto or runc", RUNTIME.name)),
        _ if engine.identity.is_podman() => {
            let under = super::runtime::choose(
                choice.clone(),
                Some(engine.offered()),
                Some(Reach::Loopback),
            )
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
        (false, RuntimeChoice::Runsc(_)) => Finding::new(
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
