//! The Docker backend, through the Engine API (bollard), never the CLI.
//!
//! A launch creates: the default image when it is used and the engine
//! lacks it; the instance's networks and the gate image, at the same time
//! as the image's facts are found (by a probe, on an image not seen
//! before); the gate and the agent container, created one after the other,
//! their limits read back (`limits`), and started together (on Podman,
//! with the helper that hands the gate its listener on the agent's
//! loopback: `reach`); the provisioned home; and, once the gate is ready,
//! the claude exec. Everything created is in the ledger, which tears it
//! down on every way out.

mod ask_again;
mod checkup;
mod containers;
mod default_image;
mod dial_stdio;
mod endpoint;
mod engine;
mod exec;
mod facts_cache;
mod gate;
mod gate_image;
mod image;
mod internal_network;
mod inventory;
mod ledger;
mod limits;
mod networks;
mod podman_host;
mod raw_terminal;
mod reach;
mod runtime;
mod ssh;
mod stale_images;
mod statx_fallback;
mod workspace;

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, StartContainerOptions,
};
use egress_gate::event::GateEvent;
use tracing::{Instrument as _, info_span};

use super::{Backend, ImageSource, Launch, LaunchTarget, Networks, Resolution};
use crate::egress_log::EgressSummary;
use crate::error::{Error, Result};
use crate::images::{CurrentImages, StaleImage};
use crate::lifecycle::instance::Instance;
use crate::lifecycle::labels::{InstanceLabels, Role};
use crate::lifecycle::owner::Owner;
use crate::lifecycle::pause::Phase;
use crate::lifecycle::stage::{GATE_LOG, StageDir};
use crate::spec::BottleSpec;
use crate::ui::Work;
use engine::Engine;
use exec::ClaudeExec;
use image::{ImageFacts, WORKSPACE};
use ledger::{Created, Ledger};
use reach::Reach;

/// The engine is asked what it is once per command: the plan, the sweep
/// of dead instances and the launch share the answer and the connection.
#[derive(Debug, Default)]
pub struct DockerBackend {
    engine: tokio::sync::OnceCell<Engine>,
}

impl DockerBackend {
    async fn asked(&self) -> Result<&Engine> {
        self.engine.get_or_try_init(engine::ask).await
    }

    async fn docker(&self) -> Result<&Docker> {
        Ok(&self.asked().await?.docker)
    }
}

pub use containers::list as list_containers;
pub use networks::create as create_network;

/// The engine the environment chooses, connected as every command
/// connects to it (for tools and tests that talk to the same engine).
pub async fn connect() -> Result<Docker> {
    engine::connect().await
}

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn prepare(&self, spec: &BottleSpec<'_>, stage: &StageDir) -> Result<Resolution> {
        let mut warnings = Vec::new();
        let engine = match self.asked().await {
            Ok(engine) => Some(engine),
            Err(err) if spec.dry_run => {
                warnings.push(format!(
                    "{}; the runtime is unknown until one does",
                    err.message()
                ));
                None
            }
            Err(err) => return Err(err),
        };
        let reach = engine.map(|e| Reach::on(e.identity.is_podman()));
        let runtime = runtime::choose(
            spec.settings.runtime.clone(),
            engine.map(Engine::offered),
            reach,
        )?;
        let source = spec.settings.image_source(&spec.home);
        let (image, default_image) = match &source {
            ImageSource::Named(image) => (image.clone(), None),
            // Without an engine (a dry run) the tag is not known yet.
            ImageSource::Default(recipe) => {
                let (image, plan) = default_image::planned(engine, recipe.clone()).await?;
                (image, Some(plan))
            }
        };
        if let (Some(engine), Some(runtime)) = (engine, runtime.as_ref()) {
            let cache = facts_cache::FactsCache::of_home(&spec.home);
            let key = facts_cache::runtime_key(engine, runtime.as_str());
            if statx_fallback::known_needed(&engine.docker, &image, &key, &cache).await {
                warnings.push(statx_fallback::in_use(runtime.as_str()));
            }
        }
        let instance = stage.instance().as_str();
        let engine_named = match &engine {
            Some(engine) => engine.identity.to_string(),
            None => engine::chosen().map_or_else(
                |_| "none chosen".to_owned(),
                |endpoint| format!("none answers at {endpoint}"),
            ),
        };
        Ok(Resolution {
            target: LaunchTarget {
                image: source,
                runtime,
                container: format!("{instance}-agent"),
                networks: Networks::of_instance(
                    instance,
                    reach.is_none_or(|r| r == Reach::InternalNetwork),
                ),
                facts_cache: facts_cache::FactsCache::dir_of_home(&spec.home),
            },
            image,
            default_image,
            engine: engine_named,
            warnings,
        })
    }

    async fn checkup(
        &self,
        settings: &crate::settings::Settings,
        home: &std::path::Path,
        ui: &dyn crate::ui::Ui,
    ) -> Vec<crate::doctor::Finding> {
        checkup::findings(settings, home, ui).await
    }

    async fn launch(&self, launch: Launch) -> Result<i32> {
        let engine = self.asked().instrument(info_span!("engine")).await?;
        let mut ledger = Ledger::new(&engine.docker).warning_to(launch.ui.clone());
        let outcome = Box::pin(run(engine, &launch, &mut ledger)).await;
        if launch.pause_at.0 == Some(Phase::Teardown) {
            // A failure shows in the teardown that follows.
            let _ = ledger.remove_newest().await;
            launch.pause(Phase::Teardown).await;
        }
        let removing = launch.ui.progress("removing the bottle", Work::Brief);
        ledger
            .teardown_and_warn()
            .instrument(info_span!("teardown"))
            .await;
        removing.finish("removed");
        drop(launch.stage);
        let code = outcome?;
        Ok(i32::try_from(code).unwrap_or(1))
    }

    async fn engine(&self) -> Result<String> {
        Ok(self.asked().await?.identity.to_string())
    }

    async fn instances(&self, scope: &[(String, String)]) -> Result<Vec<Instance>> {
        inventory::instances(self.docker().await?, scope).await
    }

    async fn gate_log(&self, instance: &str, scope: &[(String, String)]) -> Result<Vec<GateEvent>> {
        let docker = self.docker().await?;
        let id = gate::find_running(docker, instance, Role::Gate, scope).await?;
        gate::log(docker, &id).await
    }

    async fn bundle_branches(
        &self,
        instance: &str,
        scope: &[(String, String)],
        known: &[String],
        to: &std::path::Path,
        max_bytes: u64,
    ) -> Result<()> {
        let docker = self.docker().await?;
        let agent = gate::find_running(docker, instance, Role::Agent, scope).await?;
        workspace::bundle_to(docker, &agent, known, to, max_bytes).await
    }

    async fn stale_images(
        &self,
        current: &CurrentImages,
        scope: &[(String, String)],
    ) -> Result<Vec<StaleImage>> {
        stale_images::find(self.asked().await?, current, scope).await
    }

    async fn remove_image(&self, image: &StaleImage) -> Result<()> {
        stale_images::remove(self.docker().await?, image).await
    }

    async fn remove(&self, instance: &Instance) -> Result<()> {
        let docker = self.docker().await?;
        let mut ledger = Ledger::new(docker);
        // The ledger removes newest first: containers, then their networks.
        for network in &instance.networks {
            ledger.record(Created::Network(network.id.clone()));
        }
        for container in &instance.containers {
            ledger.record(Created::Container(container.id.clone()));
        }
        let left = ledger.teardown().await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "could not remove all of {}: {}",
                instance.instance,
                left.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
    }
}

async fn run(engine: &Engine, launch: &Launch, ledger: &mut Ledger) -> Result<i64> {
    let docker = &engine.docker;
    let plan = &launch.plan;
    let labels = InstanceLabels::new(
        &plan.instance,
        &plan.bottle,
        &plan.agent,
        &Owner::current(),
        &launch.extra_labels,
    );
    // Before anything of the instance exists: a failed build leaves nothing.
    let image = bottle_image(engine, launch, &labels)
        .instrument(info_span!("image"))
        .await?;
    // After the image, which shows its own progress when it is built.
    let starting = launch.ui.progress("starting the bottle", Work::Brief);
    starting.status("networks and the gate's image");
    let (facts, internal, egress, gate_image) =
        prerequisites(engine, launch, &labels, &image, ledger).await?;
    if !launch.ssh.is_empty() && !facts.has_ssh {
        return Err(lacks_ssh(&image));
    }
    launch.pause(Phase::Networks).await;

    starting.status("the gate and the agent's container");
    let (gate, container, deadman) = start_gate_and_agent(
        engine,
        launch,
        &labels,
        &image,
        &facts,
        (internal.as_ref(), &egress, &gate_image),
        ledger,
    )
    .await?;
    launch.pause(Phase::Gate).await;
    launch.pause(Phase::Agent).await;
    launch.pause(Phase::Provision).await;
    let holder = start_ssh(
        docker,
        launch,
        &container,
        &facts,
        (gate.control(), &gate_image),
        &labels,
    )
    .instrument(info_span!("ssh"))
    .await?;
    // The copy shows its own progress, and claude its own screen.
    starting.finish("started");
    let copied = copy_repository(docker, launch, &container, &facts)
        .instrument(info_span!("copy-in"))
        .await?;

    let env = claude_env(launch, &facts, holder.is_some(), &engine.architecture);
    launch.pause(Phase::Session).await;
    let gate_watch = watch_gate(docker, &gate.id, launch.ui.clone());
    let code = exec::run_claude(
        engine,
        ClaudeExec {
            container: &container,
            user: &facts.user,
            workdir: WORKSPACE,
            cmd: claude_command(launch, &facts.home),
            env,
        },
        launch.ui.as_ref(),
    )
    .instrument(info_span!("claude"))
    .await;
    let code = if agent_was_stopped(docker, &container, &code).await {
        Err(agent_gone(launch))
    } else {
        // While the container still runs: the agent's branches come home.
        match (&launch.repository, &copied, code) {
            (Some(repo), Some(copied), Ok(code)) => {
                come_home(docker, launch, &container, &facts, repo, copied, code).await
            }
            (_, _, code) => code,
        }
    };
    gate_watch.abort();
    drop(deadman);
    tell_summaries(docker, launch, holder, &gate)
        .instrument(info_span!("summaries"))
        .await;
    drop(gate);
    code
}

/// The gate and the agent's container (both recorded in `ledger`),
/// created one after the other and started at the same time: the agent's
/// container is told the gate's address before the gate has started.
/// Without an internal network, the helper that hands the gate its
/// listener starts once the agent's container runs, in its namespace.
/// Returns once the gate is ready and the agent's home provisioned; a gate
/// that is never ready fails it, and claude never runs.
async fn start_gate_and_agent(
    engine: &Engine,
    launch: &Launch,
    labels: &InstanceLabels,
    image: &str,
    facts: &ImageFacts,
    (internal, egress, gate_image): (Option<&internal_network::InternalNetwork>, &str, &str),
    ledger: &mut Ledger,
) -> Result<(
    gate::Gate,
    String,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
)> {
    let docker = &engine.docker;
    let created_gate = gate::create(
        docker,
        &launch.plan,
        &gate::GateSpec {
            image: gate_image,
            internal: internal.map(|n| (n.name.as_str(), n.gate_address.as_str())),
            egress,
            extra_networks: &launch.gate.extra_networks,
            dns: launch.gate.dns.as_deref(),
            log_copy: &launch.stage.path().join(GATE_LOG),
        },
        labels,
        ledger,
    )
    .instrument(info_span!("gate create"))
    .await?;
    let (container, agent_limits) = create_agent(
        engine,
        launch,
        image,
        facts,
        labels,
        internal.map(|n| n.id.as_str()),
        created_gate.address(),
    )
    .instrument(info_span!("agent create"))
    .await?;
    ledger.record(Created::Container(container.clone()));
    // Read back before anything runs: an engine may keep none of them.
    limits::held(
        engine,
        &[
            (&created_gate.id, "the egress gate", created_gate.limits()),
            (&container, "the agent", agent_limits),
        ],
    )
    .instrument(info_span!("limits"))
    .await?;
    // The gate and the agent start at the same time; claude runs only
    // once both are done, and a gate that is never ready fails the launch.
    let gate_id = created_gate.id.clone();
    let (gate, (deadman, joined)) = tokio::try_join!(
        created_gate.start(docker).instrument(info_span!("gate")),
        async {
            let deadman = start_with_deadman(docker, &container, "the agent container")
                .instrument(info_span!("agent start"))
                .await?;
            let joined = match internal {
                Some(_) => None,
                None => Some(
                    reach::hand_over(docker, gate_image, &gate_id, &container, labels, ledger)
                        .instrument(info_span!("handoff"))
                        .await?,
                ),
            };
            provision_home(docker, launch, &container, facts, &engine.architecture)
                .instrument(info_span!("provision"))
                .await?;
            Ok((deadman, joined))
        },
    )?;
    if let Some(joined) = joined {
        joined.confirm(docker, &container).await?;
    }
    Ok((gate, container, deadman))
}

/// Tells the user if the gate stops while the session runs: the bottle is
/// then cut off (its only way out was the gate), which is safe but
/// would otherwise look like a network fault. Aborted before teardown.
fn watch_gate(
    docker: &Docker,
    gate: &str,
    ui: std::sync::Arc<dyn crate::ui::Ui>,
) -> tokio::task::JoinHandle<()> {
    let (docker, gate) = (docker.clone(), gate.to_owned());
    tokio::spawn(async move {
        let mut waited = docker.wait_container(
            &gate,
            None::<bollard::query_parameters::WaitContainerOptions>,
        );
        while futures_util::StreamExt::next(&mut waited).await.is_some() {}
        if !is_running(&docker, &gate).await {
            ui.warn(
                "the egress gate stopped during the session: the bottle has no route out \
                 until the session ends",
            );
        }
    })
}

/// Whether the agent container stopped under claude, rather than claude
/// exiting. A kill shows first as claude's 137 (or a broken exec), and the
/// container's state follows a moment later.
async fn agent_was_stopped(docker: &Docker, container: &str, code: &Result<i64>) -> bool {
    if !matches!(code, Ok(137) | Err(_)) {
        return !is_running(docker, container).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        if !is_running(docker, container).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Whether `container` runs. Only the engine's word that it is gone (404)
/// or stopped counts as no: a failed request is not a stopped container.
async fn is_running(docker: &Docker, container: &str) -> bool {
    match docker
        .inspect_container(
            container,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    {
        Ok(inspect) => inspect.state.and_then(|s| s.running).unwrap_or(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(_) => true,
    }
}

/// The agent container stopped, but not by claude's exit: killed from
/// outside, or the engine stopped it.
fn agent_gone(launch: &Launch) -> Error {
    let err = Error::new("the agent container stopped from outside during the session");
    if launch.repository.is_some() {
        err.hint(
            "the agent's commits that `claude-bottle fetch` had not brought home before did not come home",
        )
    } else {
        err
    }
}

/// The agent's image: the one named, or the default one, built if needed.
async fn bottle_image(engine: &Engine, launch: &Launch, labels: &InstanceLabels) -> Result<String> {
    Ok(match &launch.image {
        ImageSource::Default(recipe) => {
            default_image::ensure(
                engine,
                recipe,
                labels.for_role(Role::Probe),
                launch.ui.as_ref(),
                launch.pause_at,
            )
            .await?
        }
        ImageSource::Named(image) => image.clone(),
    })
}

fn lacks_ssh(image: &str) -> Error {
    Error::new(format!(
        "the image `{image}` lacks `ssh`, which the bottle's ssh hosts need"
    ))
    .hint("add openssh-client to the image, or remove the bottle's ssh entries")
}

/// The lines a session ends with: what the key holder and the gate
/// decided.
async fn tell_summaries(
    docker: &Docker,
    launch: &Launch,
    holder: Option<ssh::RunningHolder>,
    gate: &gate::Gate,
) {
    if let Some(line) = holder.and_then(|h| ssh::summary(&h.stop())) {
        launch.ui.tell(&line);
    }
    // Every line written first: the stage's copy of the log is whole.
    let events = gate.drained_log(docker).await;
    // The counts are the gate's own; the log's lines may have been lost.
    let line = match (gate.report(docker).await, events) {
        (Ok(report), _) if launch.ui.tells_a_terminal() => {
            let given: Vec<&str> = launch.env.iter().map(|(_, v)| v.expose()).collect();
            EgressSummary::from_report(&report).for_terminal(&report.names, &given)
        }
        (Ok(report), _) => EgressSummary::from_report(&report).to_string(),
        (Err(_), Ok(events)) => EgressSummary::from_events(&events).to_string(),
        (Err(_), Err(_)) => return,
    };
    launch.ui.tell(&line);
}

/// The repository `--cwd` names into the workspace; the branch tips that
/// went in.
async fn copy_repository(
    docker: &Docker,
    launch: &Launch,
    container: &str,
    facts: &ImageFacts,
) -> Result<Option<Vec<(String, String)>>> {
    match &launch.repository {
        Some(repo) => Ok(Some(
            workspace::copy_in(docker, container, facts, repo, launch.ui.as_ref()).await?,
        )),
        None => Ok(None),
    }
}

/// Fetches the agent's branches and says where they are. Commits that
/// cannot come home are named; where the user can answer, the bottle stays
/// up (and the fetch is tried again) until they say to let them go.
/// Otherwise they fail the start, unless claude itself failed, whose code
/// is kept.
async fn come_home(
    docker: &Docker,
    launch: &Launch,
    container: &str,
    facts: &ImageFacts,
    repo: &crate::repo::Repository,
    copied: &[(String, String)],
    code: i64,
) -> Result<i64> {
    let instance = &launch.plan.instance;
    launch.pause(Phase::Home).await;
    loop {
        let err = match workspace::bring_home(
            docker,
            container,
            facts,
            repo,
            copied,
            &launch.stage,
            launch.bundle_max,
        )
        .await
        {
            Ok(coming) => {
                for line in coming.lines(repo.branch.as_deref()) {
                    launch.ui.tell(&line);
                }
                return Ok(code);
            }
            Err(err) => err,
        };
        let lost = workspace::unfetched(docker, container, facts, copied).await;
        let err = Error::caused_by(
            format!("the agent's commits did not come home ({lost})"),
            err,
        )
        .hint(format!(
            "while the bottle runs, `claude-bottle fetch {instance}` from the repository brings them home"
        ));
        launch.ui.warn(&err.to_line());
        let ui = launch.ui.clone();
        let answer = tokio::task::spawn_blocking(move || {
            ui.confirm("Tear the bottle down and lose them? (no: the bottle stays up and the fetch is tried again)")
        })
        .await
        .unwrap_or(None);
        match answer {
            Some(true) | None if code != 0 => return Ok(code),
            Some(true) | None => return Err(err),
            Some(false) => {}
        }
    }
}

/// claude's environment: the bottle's values, and the agent socket when
/// the holder runs (for `ssh-add` and tools that ignore ssh's config).
fn claude_env(
    launch: &Launch,
    facts: &ImageFacts,
    ssh: bool,
    engine_architecture: &str,
) -> Vec<String> {
    let mut env: Vec<String> = crate::claude_traffic::SWITCHES
        .iter()
        .filter(|(name, _)| !launch.env.iter().any(|(set, _)| set == *name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    env.extend(
        launch
            .env
            .iter()
            .map(|(name, value)| format!("{name}={}", value.expose())),
    );
    if ssh {
        let home = facts.home.trim_end_matches('/');
        env.push(format!("SSH_AUTH_SOCK={home}/{}", crate::ssh::AGENT_SOCKET));
    }
    if facts.statx_faulty && statx_fallback::fits(engine_architecture, &facts.home).is_ok() {
        // The manifest's own, else the image's, which this one replaces.
        let given = env
            .iter()
            .position(|e| e.starts_with("LD_PRELOAD="))
            .map(|at| env.remove(at));
        let given = given
            .as_deref()
            .and_then(|e| e.strip_prefix("LD_PRELOAD="))
            .or(facts.preload.as_deref());
        env.push(statx_fallback::preload(&facts.home, given));
    }
    env
}

/// The SSH files and helper into the home, and the key holder answering
/// the relay; nothing when the bottle has no SSH hosts.
async fn start_ssh(
    docker: &Docker,
    launch: &Launch,
    container: &str,
    facts: &ImageFacts,
    (gate, gate_image): (gate::GateControl, &str),
    labels: &InstanceLabels,
) -> Result<Option<ssh::RunningHolder>> {
    if launch.ssh.is_empty() {
        return Ok(None);
    }
    let files = crate::ssh::home_files(&launch.ssh.targets, &launch.ssh.public, &facts.home)?;
    let exe = gate_image::helper(
        docker,
        &launch.gate.image,
        gate_image,
        labels.for_role(Role::Probe),
        &mut Ledger::new(docker),
    )
    .await?;
    let archive = ssh::home_archive(&files, &exe)?;
    exec::untar(docker, container, &facts.user, &facts.home, archive).await?;
    let keys = launch.ssh_keys.clone();
    Ok(Some(
        ssh::start(docker, container, &facts.user, &facts.home, keys, gate).await?,
    ))
}

/// What the gate and the agent need, made at the same time since none
/// depends on another: the image's facts, the networks (recorded in
/// `ledger`; no internal one where the agent reaches the gate on its
/// loopback) and the gate image.
async fn prerequisites(
    engine: &Engine,
    launch: &Launch,
    labels: &InstanceLabels,
    image: &str,
    ledger: &mut Ledger,
) -> Result<(
    ImageFacts,
    Option<internal_network::InternalNetwork>,
    String,
    String,
)> {
    let docker = &engine.docker;
    let mut probe_ledger = Ledger::new(docker);
    let facts_cache = facts_cache::FactsCache::in_dir(launch.facts_cache.clone());
    let runtime_key = facts_cache::runtime_key(engine, launch.runtime.as_str());
    let (facts, internal, egress, gate_image) = tokio::join!(
        image::probe(
            docker,
            image,
            (launch.runtime.as_str(), &runtime_key),
            labels.for_role(Role::Probe),
            &mut probe_ledger,
            &facts_cache,
        )
        .instrument(info_span!("probe")),
        async {
            match &launch.networks.internal {
                Some(name) => {
                    internal_network::create(docker, name, labels.for_role(Role::InternalNetwork))
                        .await
                        .map(Some)
                }
                None => Ok(None),
            }
        }
        .instrument(info_span!("internal network")),
        networks::egress(
            docker,
            &launch.networks.egress,
            labels.for_role(Role::EgressNetwork)
        )
        .instrument(info_span!("egress network")),
        gate_image::ensure(docker, &engine.architecture, &launch.gate.image)
            .instrument(info_span!("gate image")),
    );
    probe_ledger
        .teardown()
        .instrument(info_span!("probe removal"))
        .await;
    let internal_id = internal
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|n| n.id.clone());
    for network in [internal_id.as_ref(), egress.as_ref().ok()]
        .into_iter()
        .flatten()
    {
        ledger.record(Created::Network(network.clone()));
    }
    Ok((facts?, internal?, egress?, gate_image?))
}

/// Starts a container (`what`, for errors) with its first process's stdin
/// held: the dead-man switch, released when the returned stream is dropped.
async fn start_with_deadman(
    docker: &Docker,
    container: &str,
    what: &str,
) -> Result<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>> {
    let attached = docker
        .attach_container(
            container,
            Some(AttachContainerOptions {
                stdin: true,
                stream: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|err| Error::caused_by(format!("cannot attach to {what}"), err))?;
    docker
        .start_container(container, None::<StartContainerOptions>)
        .await
        .map_err(|err| Error::caused_by(format!("cannot start {what}"), err))?;
    Ok(attached.input)
}

/// The prompt, skills and first-run state, into the user's home.
async fn provision_home(
    docker: &Docker,
    launch: &Launch,
    container: &str,
    facts: &ImageFacts,
    engine_architecture: &str,
) -> Result<()> {
    let api_key = launch
        .env
        .iter()
        .find(|(name, _)| *name == "ANTHROPIC_API_KEY")
        .map(|(_, v)| v);
    let archive = launch.provision.home_archive(WORKSPACE, api_key)?;
    exec::untar(docker, container, &facts.user, &facts.home, archive).await?;
    if facts.statx_faulty {
        match statx_fallback::home_archive(engine_architecture, &facts.home) {
            Ok(fallback) => {
                exec::untar(docker, container, &facts.user, &facts.home, fallback).await?;
                // Said once: the plan says it where an earlier probe found it.
                let in_use = statx_fallback::in_use(launch.runtime.as_str());
                if !launch.plan.warnings.contains(&in_use) {
                    launch.ui.warn(&in_use);
                }
            }
            // The bottle still works; only `ls` and `stat` do not.
            Err(why) => launch.ui.warn(&why),
        }
    }
    Ok(())
}

/// The options of the in-memory `/workspace`, owned by the image's user.
/// Podman knows no `uid=` or `gid=`; its `U` gives the mount to the
/// container's user, which is the image's.
fn workspace_tmpfs(facts: &ImageFacts, size: i64, podman: bool) -> String {
    if podman {
        format!("U,mode=0755,size={size}")
    } else {
        format!("uid={},gid={},mode=0755,size={size}", facts.uid, facts.gid)
    }
}

/// The agent container: hardened, on the internal network only (or on no
/// network at all, `internal` being `None`), its first process the
/// dead-man switch. It needs no name resolved: `gate` is in its hosts
/// file, and the engine's resolver may ask only the gate's address, where
/// nothing answers DNS; so no query is answered from outside the bottle,
/// whatever the engine does on an internal network.
async fn create_agent(
    engine: &Engine,
    launch: &Launch,
    image: &str,
    facts: &ImageFacts,
    labels: &InstanceLabels,
    internal: Option<&str>,
    gate_address: &str,
) -> Result<(String, limits::Limits)> {
    let mut tmpfs = HashMap::new();
    if !facts.workspace_writable {
        // Half the memory limit: a repository that does not fit fails with
        // "no space" on the copy, rather than the container being killed.
        tmpfs.insert(
            WORKSPACE.to_owned(),
            workspace_tmpfs(
                facts,
                launch.plan.limits.memory_bytes / 2,
                engine.identity.is_podman(),
            ),
        );
    }
    let host_config = HostConfig {
        network_mode: Some(internal.unwrap_or("none").to_owned()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        init: Some(true),
        memory: Some(launch.plan.limits.memory_bytes),
        pids_limit: Some(launch.plan.limits.pids),
        nano_cpus: Some(launch.plan.limits.nano_cpus),
        extra_hosts: Some(vec![format!("{}:{gate_address}", gate::ALIAS)]),
        dns: Some(vec![gate_address.to_owned()]),
        dns_search: Some(vec![]),
        sysctls: Some(no_ipv6()),
        runtime: Some(launch.runtime.as_str().to_owned()),
        auto_remove: Some(true),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        ..Default::default()
    };
    let limits = limits::Limits::of(&host_config);
    engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(launch.container.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                user: Some(facts.user.clone()),
                // The dead-man switch: the first process lives as long as
                // this CLI holds its stdin open.
                entrypoint: Some(vec!["sh".into(), "-c".into(), "cat >/dev/null".into()]),
                cmd: Some(vec![]),
                working_dir: Some(WORKSPACE.into()),
                // The only way out. Not secrets: these name the gate.
                env: Some(proxy_env()),
                attach_stdin: Some(true),
                open_stdin: Some(true),
                stdin_once: Some(true),
                labels: Some({
                    let mut agent = labels.for_role(Role::Agent);
                    agent.insert(
                        crate::lifecycle::labels::RUNTIME.to_owned(),
                        launch.runtime.as_str().to_owned(),
                    );
                    agent
                }),
                host_config: Some(host_config),
                ..Default::default()
            },
        )
        .await
        .map(|created| (created.id, limits))
        .map_err(|err| Error::caused_by("cannot create the agent container", err))
}

/// IPv6 off, whatever the engine's default: an engine has given
/// containers on IPv4-only networks IPv6 addresses (CVE-2024-32473), and a
/// link-local route reaches the host, where an internal network's rules do
/// not apply. gVisor takes the setting and has no IPv6 there either.
fn no_ipv6() -> HashMap<String, String> {
    ["all", "default"]
        .map(|scope| {
            (
                format!("net.ipv6.conf.{scope}.disable_ipv6"),
                "1".to_owned(),
            )
        })
        .into()
}

/// The proxy settings every process in the bottle sees, in both cases.
fn proxy_env() -> Vec<String> {
    let proxy = format!("http://{}:{}", gate::ALIAS, gate::PORT);
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push(format!("{name}={proxy}"));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        env.push(format!("{name}=localhost,127.0.0.1,::1"));
    }
    env
}

/// claude's argv: the tool's flags, then the user's.
fn claude_command(launch: &Launch, home: &str) -> Vec<String> {
    let mut cmd = vec![
        "claude".to_owned(),
        "--dangerously-skip-permissions".to_owned(),
    ];
    if let Some(prompt) = launch.provision.prompt_path(home) {
        cmd.extend(["--append-system-prompt-file".to_owned(), prompt]);
    }
    if launch.plan.remote_control {
        cmd.push("--remote-control".to_owned());
    }
    cmd.extend(launch.claude_args.iter().cloned());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_workspace_belongs_to_the_images_user_in_each_engines_words() {
        let facts = ImageFacts {
            user: "worker".into(),
            uid: 1001,
            gid: 1002,
            home: "/home/worker".into(),
            workspace_writable: false,
            has_ssh: false,
            statx_faulty: false,
            preload: None,
        };
        assert_eq!(
            workspace_tmpfs(&facts, 1 << 20, false),
            "uid=1001,gid=1002,mode=0755,size=1048576"
        );
        // Podman refuses `uid=` ("unknown mount option").
        assert_eq!(
            workspace_tmpfs(&facts, 1 << 20, true),
            "U,mode=0755,size=1048576"
        );
    }
}
