//! `--cwd` on Docker: the repository goes into `/workspace` streamed
//! through exec (no mount, no copy on the host's disk), and the
//! agent's branches come home the same way, as a bundle the host checks
//! before it fetches anything.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use bollard::Docker;
use tokio::io::AsyncWriteExt as _;
use tokio_util::io::SyncIoBridge;

use super::exec;
use super::image::{ImageFacts, WORKSPACE};
use crate::archive;
use crate::error::{Error, Result};
use crate::lifecycle::stage::StageDir;
use crate::repo::home::{HomeComing, take_home};
use crate::repo::objects::Objects;
use crate::repo::{Repository, git};
use crate::ui::{Counted, Progress, Ui, Work};

/// Makes the repository and unpacks into its `.git` a tar of object files
/// and the refs to create, read as it arrives (no copy of it is written).
const RECEIVE: &str = r#"set -e
cd "$WORKSPACE"
git init -q
tar -x -f - -C .git
"#;

/// Indexes the pack of the remaining objects on stdin (when `REST` is 1),
/// creates the refs, and checks out HEAD's branch (or detaches HEAD) with
/// the host's identity set; there is no remote.
const SETTLE: &str = r#"set -e
cd "$WORKSPACE"
[ "$REST" = 0 ] || git index-pack --stdin >/dev/null
git update-ref --stdin <.git/claude-bottle-refs
rm .git/claude-bottle-refs
if [ -n "$BRANCH" ]; then git checkout -q -f "$BRANCH"; else git checkout -q -f --detach "$HEAD_COMMIT"; fi
[ -z "$NAME" ] || git config user.name "$NAME"
[ -z "$EMAIL" ] || git config user.email "$EMAIL"
"#;

/// The name the refs to create have in the tar, under `.git`.
const REFS_FILE: &str = "claude-bottle-refs";

/// The repository into the bottle; returns the branch tips that went in.
/// Object files that hold only reachable objects go as they are stored;
/// the other reachable objects follow as one pack (see `repo::objects`).
pub(super) async fn copy_in(
    docker: &Docker,
    container: &str,
    facts: &ImageFacts,
    repo: &Repository,
    ui: &dyn Ui,
) -> Result<Vec<(String, String)>> {
    let failed = |what: &str, detail: String| {
        Error::new(format!(
            "cannot copy {} into the bottle: {what}{detail}",
            repo.root.display()
        ))
    };
    let progress = ui.progress(
        "Copying the repository into the bottle",
        Work::Bytes {
            total: Some(repo.size_bytes),
        },
    );
    let sorted = repo.clone();
    let objects = tokio::task::spawn_blocking(move || sorted.objects())
        .await
        .map_err(|err| Error::caused_by("cannot read the repository", err.to_string()))??;
    let tips: Vec<(String, String)> = objects
        .refs
        .iter()
        .filter(|(r, _)| r.starts_with("refs/heads/"))
        .cloned()
        .collect();
    let rest = !objects.rest.is_empty();
    let unpacked = async {
        let (code, said) =
            send_files(docker, container, &facts.user, &objects, progress.as_ref()).await?;
        if code != 0 {
            return Ok((code, said));
        }
        let env = vec![
            format!("WORKSPACE={WORKSPACE}"),
            format!("REST={}", u8::from(rest)),
            format!("BRANCH={}", repo.branch.clone().unwrap_or_default()),
            format!("HEAD_COMMIT={}", repo.head),
            format!("NAME={}", repo.identity.0.clone().unwrap_or_default()),
            format!("EMAIL={}", repo.identity.1.clone().unwrap_or_default()),
        ];
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), SETTLE.to_owned()];
        if !rest {
            return exec::piped(docker, container, &facts.user, cmd, env, None, None, None).await;
        }
        send_rest(
            docker,
            container,
            &facts.user,
            cmd,
            env,
            repo,
            &objects,
            progress.as_ref(),
        )
        .await
    };
    let (code, said) = match unpacked.await {
        Ok(done) => done,
        Err(err) => {
            progress.finish("failed");
            return Err(err);
        }
    };
    if code != 0 {
        progress.finish("failed");
        let err = failed("unpacking it failed: ", said.trim().to_owned());
        return Err(if said.contains("No space left on device") {
            err.hint(format!(
                "the bottle's /workspace is full; where the image has none it is in memory, \
                 half of {}: raise that, or use an image with a writable /workspace",
                crate::settings::MEMORY.name
            ))
        } else {
            err.hint("the bottle image needs git and tar")
        });
    }
    progress.finish("done");
    if repo.uncommitted {
        apply_uncommitted(docker, container, &facts.user, repo)
            .await
            .map_err(|err| failed("its uncommitted changes did not apply: ", err.to_line()))?;
    }
    if !repo.untracked.files.is_empty() {
        copy_untracked(docker, container, &facts.user, repo, ui)
            .await
            .map_err(|err| failed("its untracked files: ", err.to_line()))?;
    }
    Ok(tips)
}

/// Staged and unstaged changes to tracked files, as one patch applied to
/// the bottle's work tree.
async fn apply_uncommitted(
    docker: &Docker,
    container: &str,
    user: &str,
    repo: &Repository,
) -> Result<()> {
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
        user,
        cmd,
        vec![],
        Some(&mut patch),
        None,
        None,
    )
    .await?;
    if code != 0 {
        return Err(Error::new(said.trim().to_owned()));
    }
    Ok(())
}

/// The object files and the refs to create into the new repository.
async fn send_files(
    docker: &Docker,
    container: &str,
    user: &str,
    objects: &Objects,
    progress: &dyn Progress,
) -> Result<(i64, String)> {
    let refs = objects
        .refs
        .iter()
        .fold(String::new(), |mut lines, (name, id)| {
            let _ = writeln!(lines, "create {name} {id}");
            lines
        });
    let (dir, files) = (objects.dir.clone(), objects.files.clone());
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), RECEIVE.to_owned()];
    let env = vec![format!("WORKSPACE={WORKSPACE}")];
    tar_into(
        docker,
        container,
        user,
        cmd,
        env,
        progress,
        move |archive| {
            archive::append_file(
                archive,
                REFS_FILE,
                0o600,
                refs.len() as u64,
                refs.as_bytes(),
            )
            .map_err(|err| Error::caused_by("cannot write the archive", err))?;
            for file in &files {
                archive::append_from_disk(
                    archive,
                    &dir.join(file),
                    &Path::new("objects").join(file),
                )
                .map_err(|err| {
                    Error::caused_by(format!("cannot read {}", dir.join(file).display()), err)
                })?;
            }
            Ok(())
        },
    )
    .await
}

/// Runs `cmd` (the settling script) with a pack of the reachable objects
/// that no sent file holds on its stdin, made by `git pack-objects` as it
/// is read.
#[allow(clippy::too_many_arguments)]
async fn send_rest(
    docker: &Docker,
    container: &str,
    user: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    repo: &Repository,
    objects: &Objects,
    progress: &dyn Progress,
) -> Result<(i64, String)> {
    let failed = |err: &dyn std::fmt::Display| {
        Error::caused_by("cannot run git pack-objects", err.to_string())
    };
    let mut pack_objects =
        tokio::process::Command::from(git(&repo.root, &["pack-objects", "--stdout", "-q"]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| failed(&err))?;
    let mut ids = pack_objects.stdin.take().expect("piped");
    let wanted = objects.rest.join("\n") + "\n";
    let feeder = tokio::spawn(async move { ids.write_all(wanted.as_bytes()).await });
    let mut pack = Counted {
        inner: pack_objects.stdout.take().expect("piped"),
        progress,
    };
    let ran = exec::piped(
        docker,
        container,
        user,
        cmd,
        env,
        Some(&mut pack),
        None,
        None,
    )
    .await;
    drop(pack);
    let packed = pack_objects
        .wait_with_output()
        .await
        .map_err(|err| failed(&err))?;
    let _ = feeder.await;
    let (code, said) = ran?;
    if !packed.status.success() {
        return Err(Error::new(format!(
            "cannot copy {} into the bottle: git pack-objects failed: {}",
            repo.root.display(),
            String::from_utf8_lossy(&packed.stderr).trim()
        )));
    }
    Ok((code, said))
}

/// The untracked files into the work tree, as a tar written while it is
/// read: links stay links, so nothing outside the work tree goes along.
async fn copy_untracked(
    docker: &Docker,
    container: &str,
    user: &str,
    repo: &Repository,
    ui: &dyn Ui,
) -> Result<()> {
    let progress = ui.progress(
        "Copying the untracked files",
        Work::Bytes {
            total: Some(repo.untracked.bytes),
        },
    );
    let (root, files) = (repo.root.clone(), repo.untracked.files.clone());
    let cmd = ["tar", "-x", "-f", "-", "-C", WORKSPACE]
        .map(String::from)
        .to_vec();
    let ran = tar_into(
        docker,
        container,
        user,
        cmd,
        vec![],
        progress.as_ref(),
        move |archive| {
            for file in &files {
                archive::append_from_disk(archive, &root.join(file), file).map_err(|err| {
                    Error::caused_by(format!("cannot read {}", file.display()), err)
                })?;
            }
            Ok(())
        },
    )
    .await;
    let (code, said) = ran.inspect_err(|_| progress.finish("failed"))?;
    if code != 0 {
        progress.finish("failed");
        return Err(Error::new(format!(
            "tar exited with {code}: {}",
            said.trim()
        )));
    }
    progress.finish("done");
    Ok(())
}

/// The archive `fill` writes, on the stdin of `cmd` as it is read, its
/// bytes counted on `progress`; returns what `cmd` returned. What `fill`
/// could not read is the error, unless `cmd` failed first.
#[allow(clippy::too_many_arguments)]
async fn tar_into(
    docker: &Docker,
    container: &str,
    user: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    progress: &dyn Progress,
    fill: impl FnOnce(&mut tar::Builder<SyncIoBridge<tokio::io::DuplexStream>>) -> Result<()>
    + Send
    + 'static,
) -> Result<(i64, String)> {
    let (reader, writer) = tokio::io::duplex(1 << 20);
    let written = tokio::task::spawn_blocking(move || {
        let mut archive = tar::Builder::new(SyncIoBridge::new(writer));
        fill(&mut archive)?;
        archive
            .into_inner()
            .map_err(|err| Error::caused_by("cannot write the archive", err))?;
        Ok::<_, Error>(())
    });
    let mut input = Counted {
        inner: reader,
        progress,
    };
    let ran = exec::piped(
        docker,
        container,
        user,
        cmd,
        env,
        Some(&mut input),
        None,
        None,
    )
    .await;
    // The reader goes first, so a writer still blocked on it ends.
    drop(input);
    let written = written
        .await
        .map_err(|err| Error::caused_by("cannot write the archive", err.to_string()))?;
    let (code, said) = ran?;
    if code == 0 {
        written?;
    }
    Ok((code, said))
}

/// How long bundling the bottle's new commits may take.
const BUNDLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(600);
/// How long listing the bottle's branches may take, and what it may say.
const LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);
const LISTED_MAX: u64 = 1 << 20;

/// Bundles the workspace's branches less the history of the commits named
/// on stdin (those the bottle has), so only new commits travel; writes
/// nothing when there are none, as `git bundle` refuses an empty bundle.
/// On stdin, not in the environment: a repository's thousands of branch
/// tips exceed what one variable may hold. The agent's own git settings
/// (`~/.gitconfig`, where trace2 could write into the bundle) are not
/// read, and its scratch file is not in the agent's `.git`. What comes out
/// is still the agent's word (`repo::home`).
const BUNDLE_OUT: &str = r#"set -e
cd "$WORKSPACE"
known=$(mktemp)
trap 'rm -f "$known"' EXIT
git cat-file --batch-check='%(objectname) %(objecttype)' | awk '$2 == "commit" { print "^" $1 }' >"$known"
new=$(git rev-list -n 1 --branches --stdin <"$known")
[ -n "$new" ] || exit 0
git bundle create -q - --branches --stdin <"$known""#;

/// The environment of the bundle's git: no settings but the repository's.
const BUNDLE_ENV: [&str; 3] = [
    "GIT_CONFIG_NOSYSTEM=1",
    "GIT_CONFIG_GLOBAL=/dev/null",
    "GIT_TERMINAL_PROMPT=0",
];

/// A bundle of the workspace's new commits, written to `to`, from the
/// agent container `container` (as its own user).
pub(super) async fn bundle_to(
    docker: &Docker,
    container: &str,
    known: &[String],
    to: &std::path::Path,
    max_bytes: u64,
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
    write_bundle(docker, container, &user, known, to, max_bytes).await
}

async fn write_bundle(
    docker: &Docker,
    container: &str,
    user: &str,
    known: &[String],
    to: &std::path::Path,
    max_bytes: u64,
) -> Result<()> {
    let file = tokio::fs::File::create(to)
        .await
        .map_err(|err| Error::caused_by("cannot write the bottle's bundle", err))?;
    let mut file = exec::Capped::new(file, max_bytes);
    let mut lines = String::new();
    for commit in known
        .iter()
        .filter(|c| c.chars().all(|c| c.is_ascii_hexdigit()))
    {
        lines.push_str(commit);
        lines.push('\n');
    }
    let mut env = vec![format!("WORKSPACE={WORKSPACE}")];
    env.extend(BUNDLE_ENV.map(str::to_owned));
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), BUNDLE_OUT.to_owned()];
    let mut input = lines.as_bytes();
    let (code, said) = exec::piped(
        docker,
        container,
        user,
        cmd,
        env,
        Some(&mut input),
        Some(&mut file),
        Some(BUNDLE_WITHIN),
    )
    .await?;
    if code != 0 {
        return Err(Error::new(format!(
            "the bottle could not bundle its branches: {}",
            said.trim()
        )));
    }
    Ok(())
}

/// The bottle's branches whose tips are not what went in, as
/// `branch at 1a2b3c4d`, for the user to know what is at stake. The bottle
/// says; what it says is only shown, cleaned of anything but plain text.
pub(super) async fn unfetched(
    docker: &Docker,
    container: &str,
    facts: &ImageFacts,
    copied: &[(String, String)],
) -> String {
    let cmd = [
        "git",
        "-C",
        WORKSPACE,
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/heads",
    ]
    .map(String::from)
    .to_vec();
    let mut out = exec::Capped::new(Vec::new(), LISTED_MAX);
    let listed = exec::piped(
        docker,
        container,
        &facts.user,
        cmd,
        BUNDLE_ENV.map(str::to_owned).to_vec(),
        None,
        Some(&mut out),
        Some(LISTED_WITHIN),
    )
    .await;
    if !matches!(listed, Ok((0, _))) {
        return "the bottle's branches could not be listed".to_owned();
    }
    let out = String::from_utf8_lossy(&out.into_inner()).into_owned();
    let changed: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(r, c)| !copied.iter().any(|(cr, cc)| cr == r && cc == c))
        .map(|(r, c)| {
            let branch = crate::bottle_text::shown(r.trim_start_matches("refs/heads/"));
            let short: String = c.chars().take(12).collect();
            format!("{branch} at {}", crate::bottle_text::shown(&short))
        })
        .collect();
    if changed.is_empty() {
        "no branch of the bottle has new commits".to_owned()
    } else {
        format!("not home: {}", changed.join(", "))
    }
}

/// The bottle's branches that changed, fetched into the host repository.
pub(super) async fn bring_home(
    docker: &Docker,
    container: &str,
    facts: &ImageFacts,
    repo: &Repository,
    copied: &[(String, String)],
    stage: &StageDir,
    max_bytes: u64,
) -> Result<HomeComing> {
    let path = stage.path().join("home.bundle");
    let known: Vec<String> = copied.iter().map(|(_, commit)| commit.clone()).collect();
    write_bundle(docker, container, &facts.user, &known, &path, max_bytes).await?;
    let instance = stage.instance().as_str().to_owned();
    let (repo, copied) = (repo.clone(), copied.to_vec());
    tokio::task::spawn_blocking(move || take_home(&repo, &path, &instance, &copied))
        .await
        .map_err(|err| Error::caused_by("bringing the commits home failed", err.to_string()))?
}
