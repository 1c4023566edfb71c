//! `--cwd` on Docker: the repository goes into `/workspace` as a bundle
//! streamed through exec (no mount, no copy on the host's disk), and the
//! agent's branches come home the same way, as a bundle the host checks
//! before it fetches anything.

use std::process::Stdio;

use bollard::Docker;

use super::exec;
use super::image::{ImageFacts, WORKSPACE};
use crate::error::{Error, Result};
use crate::lifecycle::stage::StageDir;
use crate::repo::home::{Arrived, take_home};
use crate::repo::{Repository, git};

/// Where the bundle waits in the bottle while it is unpacked.
const BUNDLE_IN: &str = "/tmp/claude-bottle-in.bundle";

/// Unpacks the repository: its branches and tags, HEAD's branch checked
/// out (or HEAD detached), the host's identity in its config, no remote.
const UNPACK: &str = r#"set -e
cat >"$BUNDLE"
cd "$WORKSPACE"
git init -q
git fetch -q --no-tags --update-head-ok "$BUNDLE" 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*'
if [ -n "$BRANCH" ]; then git checkout -q -f "$BRANCH"; else git checkout -q -f --detach "$HEAD_COMMIT"; fi
[ -z "$NAME" ] || git config user.name "$NAME"
[ -z "$EMAIL" ] || git config user.email "$EMAIL"
rm -f "$BUNDLE""#;

/// The repository into the bottle; returns the branch tips that went in.
pub(super) async fn copy_in(
    docker: &Docker,
    container: &str,
    facts: &ImageFacts,
    repo: &Repository,
) -> Result<Vec<(String, String)>> {
    let failed = |what: &str, detail: String| {
        Error::new(format!(
            "cannot copy {} into the bottle: {what}{detail}",
            repo.root.display()
        ))
    };
    let tips = repo.branches()?;
    let mut bundle = tokio::process::Command::from(git(
        &repo.root,
        &["bundle", "create", "-q", "-", "--branches", "--tags"],
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(|err| Error::caused_by("cannot run git bundle", err))?;
    let mut stdout = bundle.stdout.take().expect("piped");
    let env = vec![
        format!("BUNDLE={BUNDLE_IN}"),
        format!("WORKSPACE={WORKSPACE}"),
        format!("BRANCH={}", repo.branch.clone().unwrap_or_default()),
        format!("HEAD_COMMIT={}", repo.head),
        format!("NAME={}", repo.identity.0.clone().unwrap_or_default()),
        format!("EMAIL={}", repo.identity.1.clone().unwrap_or_default()),
    ];
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), UNPACK.to_owned()];
    let (code, said) = exec::piped(
        docker,
        container,
        &facts.user,
        cmd,
        env,
        Some(&mut stdout),
        None,
    )
    .await?;
    let made = bundle
        .wait_with_output()
        .await
        .map_err(|err| Error::caused_by("cannot run git bundle", err))?;
    if !made.status.success() {
        return Err(failed(
            "git bundle failed: ",
            String::from_utf8_lossy(&made.stderr).trim().to_owned(),
        ));
    }
    if code != 0 {
        return Err(failed("unpacking it failed: ", said.trim().to_owned())
            .hint("the bottle image needs git"));
    }
    if repo.uncommitted {
        // Staged and unstaged changes to tracked files, as one patch.
        let diff = git(&repo.root, &["diff", "--binary", "HEAD", "--"])
            .output()
            .map_err(|err| Error::caused_by("cannot run git diff", err))?;
        let cmd = ["git", "-C", WORKSPACE, "apply", "--whitespace=nowarn"]
            .map(String::from)
            .to_vec();
        let mut patch: &[u8] = &diff.stdout;
        let (code, said) = exec::piped(
            docker,
            container,
            &facts.user,
            cmd,
            vec![],
            Some(&mut patch),
            None,
        )
        .await?;
        if code != 0 {
            return Err(failed(
                "its uncommitted changes did not apply: ",
                said.trim().to_owned(),
            ));
        }
    }
    Ok(tips)
}

/// A bundle of the workspace's branches, written to `to`, from the agent
/// container `container` (as its own user).
pub(super) async fn bundle_to(
    docker: &Docker,
    container: &str,
    to: &std::path::Path,
) -> Result<()> {
    let user = docker
        .inspect_container(
            container,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(|err| Error::caused_by("cannot inspect the agent container", err))?
        .config
        .and_then(|c| c.user)
        .unwrap_or_default();
    write_bundle(docker, container, &user, to).await
}

async fn write_bundle(
    docker: &Docker,
    container: &str,
    user: &str,
    to: &std::path::Path,
) -> Result<()> {
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|err| Error::caused_by("cannot write the bottle's bundle", err))?;
    let cmd = [
        "git",
        "-C",
        WORKSPACE,
        "bundle",
        "create",
        "-q",
        "-",
        "--branches",
    ]
    .map(String::from)
    .to_vec();
    let (code, said) =
        exec::piped(docker, container, user, cmd, vec![], None, Some(&mut file)).await?;
    if code != 0 {
        return Err(Error::new(format!(
            "the bottle could not bundle its branches: {}",
            said.trim()
        )));
    }
    Ok(())
}

/// The bottle's branches that changed, fetched into the host repository.
pub(super) async fn bring_home(
    docker: &Docker,
    container: &str,
    facts: &ImageFacts,
    repo: &Repository,
    instance: &str,
    copied: &[(String, String)],
    stage: &StageDir,
) -> Result<Vec<Arrived>> {
    let path = stage.path().join("home.bundle");
    write_bundle(docker, container, &facts.user, &path).await?;
    let (repo, instance, copied) = (repo.clone(), instance.to_owned(), copied.to_vec());
    tokio::task::spawn_blocking(move || take_home(&repo, &path, &instance, &copied))
        .await
        .map_err(|err| Error::caused_by("bringing the commits home failed", err.to_string()))?
}
