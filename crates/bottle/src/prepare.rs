//! Prepare: from a spec to a plan, checking the host and creating nothing
//! on the engine.
//!
//! The checks that depend on the host (skill folders, key files, `${VAR}`)
//! run here, for the selected agent only. Everything they need is read now,
//! so a missing piece stops the start before the y/N, not half-way through a
//! launch.

use std::path::{Path, PathBuf};

use crate::backend::{Backend, LaunchTarget, Runtime};
use crate::env::PendingEnv;
use crate::error::{Error, Result};
use crate::lifecycle::name::InstanceName;
use crate::lifecycle::stage::StageDir;
use crate::manifest::{Agent, Bottle};
use crate::plan::{EgressPlan, EnvPlan, Plan, PromptPlan, SCHEMA_VERSION, SshPlan};
use crate::provision::Provision;
use crate::repo::{Repository, Untracked};
use crate::spec::{BottleSpec, CopyCwd};
use crate::ssh::SshSetup;

/// A prepared start: the plan, the environment still to complete after the
/// y/N, and the stage directory holding the scratch files.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub env: PendingEnv,
    pub stage: StageDir,
    pub provision: Provision,
    /// What the launch runs, as the backend resolved it.
    pub target: LaunchTarget,
    /// The repository `--cwd` copies in.
    pub repository: Option<Repository>,
    pub ssh: SshSetup,
}

pub async fn prepare(
    backend: &dyn Backend,
    spec: &BottleSpec<'_>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Prepared> {
    let (agent, bottle) = spec.manifest.agent(&spec.agent)?;
    check_skills(&spec.home, agent)?;
    check_identity_files(&spec.home, bottle)?;
    let ssh = SshSetup::resolve(&bottle.ssh, &spec.home)?;
    let env = PendingEnv::prepare(&bottle.env, lookup)?;
    let repository = repository_to_copy(spec)?;
    let stage = StageDir::create(&spec.home, InstanceName::generate(&agent.name))?;
    if let Some(prompt) = &agent.prompt {
        stage.write("prompt.md", prompt.as_bytes())?;
    }
    let resolution = backend.prepare(spec, &stage).await?;
    let untracked = repository
        .as_ref()
        .map(|r| &r.untracked)
        .filter(|_| spec.copy_cwd == CopyCwd::WithUntracked);
    let target = resolution.target;
    let plan = Plan {
        schema_version: SCHEMA_VERSION,
        backend: backend.name().to_owned(),
        engine: resolution.engine,
        instance: stage.instance().to_string(),
        agent: agent.name.clone(),
        bottle: bottle.name.clone(),
        image: resolution.image,
        default_image: resolution.default_image,
        runtime: Runtime::plan_name(target.runtime.as_ref()),
        limits: spec.settings.limits,
        container: target.container.clone(),
        networks: target.networks.names(),
        gate: spec.settings.gate_setup().image.describe(),
        egress: EgressPlan {
            allowlist: bottle.egress.effective_allowlist(),
            private: bottle
                .egress
                .private
                .iter()
                .map(ToString::to_string)
                .collect(),
            builtin: bottle.egress.builtin,
        },
        ssh: ssh_plan(bottle),
        skills: agent.skills.iter().map(|s| s.value.clone()).collect(),
        env: env_plan(bottle),
        prompt: PromptPlan {
            present: agent
                .prompt
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty()),
            first_line: agent
                .prompt
                .as_deref()
                .and_then(|p| p.lines().map(str::trim).find(|l| !l.is_empty()))
                .map(ToOwned::to_owned),
        },
        cwd: spec.copy_cwd != CopyCwd::No,
        cwd_repository: repository.as_ref().map(|r| r.root.display().to_string()),
        cwd_branch: repository.as_ref().and_then(|r| r.branch.clone()),
        cwd_size_bytes: repository.as_ref().map(|r| r.size_bytes),
        cwd_uncommitted: repository.as_ref().is_some_and(|r| r.uncommitted),
        cwd_untracked_files: untracked.map(|u| u.files.len()),
        cwd_untracked_bytes: untracked.map(|u| u.bytes),
        remote_control: spec.remote_control,
        oauth_token_forwarded: spec.settings.oauth_token.is_some() && !spec.remote_control,
        warnings: resolution
            .warnings
            .into_iter()
            .chain(unpinned_warnings(bottle))
            .chain(untracked.into_iter().flat_map(nested_repository_warnings))
            .chain(repository.as_ref().and_then(detached_warning))
            .collect(),
    };
    stage.write("plan.json", plan.to_json().as_bytes())?;
    let provision = Provision {
        prompt: agent.prompt.clone().filter(|p| !p.trim().is_empty()),
        skills: agent
            .skills
            .iter()
            .map(|s| {
                (
                    s.value.clone(),
                    spec.home.join(".claude/skills").join(&s.value),
                )
            })
            .collect(),
    };
    Ok(Prepared {
        plan,
        env,
        stage,
        provision,
        target,
        repository,
        ssh,
    })
}

/// The repository `--cwd` copies, with what it takes along.
fn repository_to_copy(spec: &BottleSpec<'_>) -> Result<Option<Repository>> {
    if spec.copy_cwd == CopyCwd::No {
        return Ok(None);
    }
    let mut repository = Repository::find(&spec.cwd)?;
    if spec.copy_cwd == CopyCwd::WithUntracked {
        repository.include_untracked()?;
    }
    Ok(Some(repository))
}

/// On a detached HEAD, commits the agent makes without a branch have no
/// name to come home under.
fn detached_warning(repository: &Repository) -> Option<String> {
    repository.branch.is_none().then(|| {
        format!(
            "HEAD is detached at {}: only commits on a branch come home, so the agent \
             should make one (git switch -c NAME)",
            &repository.head[..12]
        )
    })
}

/// Untracked repositories inside the work tree are not files to copy.
fn nested_repository_warnings(untracked: &Untracked) -> impl Iterator<Item = String> + '_ {
    untracked.repositories.iter().map(|dir| {
        format!(
            "{} is a repository of its own: --include-untracked leaves it out",
            dir.display()
        )
    })
}

/// The bottle's SSH hosts as plans and `info` show them.
pub fn ssh_plan(bottle: &Bottle) -> Vec<SshPlan> {
    bottle
        .ssh
        .iter()
        .map(|s| SshPlan {
            host: s.host.clone(),
            hostname: s.target().to_owned(),
            user: s.user.clone(),
            port: s.port_or_default(),
            host_key_pinned: s.known_host_key.is_some(),
        })
        .collect()
}

/// What a host without `KnownHostKey` gives up.
fn unpinned_warnings(bottle: &Bottle) -> impl Iterator<Item = String> + '_ {
    bottle
        .ssh
        .iter()
        .filter(|s| s.known_host_key.is_none())
        .map(|s| {
            format!(
                "ssh host `{}` has no KnownHostKey: the first connection trusts whatever \
                 answers, and its key is not bound to that host",
                s.host
            )
        })
}

/// Names only, each group sorted.
pub fn env_plan(bottle: &Bottle) -> EnvPlan {
    let (forwarded, literal): (Vec<_>, Vec<_>) =
        bottle.env.iter().partition(|e| e.spec.is_forwarded());
    let names =
        |entries: Vec<&crate::env::EnvEntry>| entries.into_iter().map(|e| e.name.clone()).collect();
    EnvPlan {
        forwarded: names(forwarded),
        literal: names(literal),
    }
}

pub(crate) fn check_skills(home: &Path, agent: &Agent) -> Result<()> {
    for skill in &agent.skills {
        let folder = home.join(".claude/skills").join(&skill.value);
        if !folder.join("SKILL.md").is_file() {
            let problem = if folder.is_dir() {
                "has no SKILL.md"
            } else {
                "is not there"
            };
            return Err(Error::new(format!(
                "skill `{}` of agent `{}`: {} {problem}",
                skill.value,
                agent.name,
                folder.display()
            ))
            .at(&skill.at)
            .hint("a skill is a folder under ~/.claude/skills/ with a SKILL.md in it"));
        }
    }
    Ok(())
}

pub(crate) fn check_identity_files(home: &Path, bottle: &Bottle) -> Result<()> {
    for host in &bottle.ssh {
        let path = expand_home(home, &host.identity_file.value);
        if !path.is_file() {
            return Err(Error::new(format!(
                "the key file of ssh host `{}` is not there: {}",
                host.host,
                path.display()
            ))
            .at(&host.identity_file.at)
            .hint("point IdentityFile at the private key, e.g. \"~/.ssh/id_ed25519\""));
        }
    }
    Ok(())
}

/// Expands a leading `~/` (or a lone `~`) to the home directory.
pub fn expand_home(home: &Path, path: &str) -> PathBuf {
    match path.strip_prefix('~') {
        Some("") => home.to_path_buf(),
        Some(rest) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_to_home_only_at_the_start() {
        let home = Path::new("/home/ada");
        assert_eq!(
            expand_home(home, "~/.ssh/id"),
            Path::new("/home/ada/.ssh/id")
        );
        assert_eq!(expand_home(home, "~"), Path::new("/home/ada"));
        assert_eq!(expand_home(home, "/k/~/id"), Path::new("/k/~/id"));
        assert_eq!(expand_home(home, "~bob/id"), Path::new("~bob/id"));
    }
}
