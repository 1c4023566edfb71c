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
use crate::ui::{Counted, Ui, Work};

/// Unpacks the repository from a bundle on stdin, read as it arrives (no
/// copy of it is written): the header's refs first, then its pack straight
/// into `git index-pack`. Then HEAD's branch is checked out (or HEAD
/// detached) and the host's identity set; there is no remote.
const UNPACK: &str = r##"set -e
cd "$WORKSPACE"
git init -q
IFS= read -r signature
[ "$signature" = "# v2 git bundle" ] || { echo "not a v2 git bundle" >&2; exit 1; }
refs=
while IFS= read -r line && [ -n "$line" ]; do refs="$refs$line
"; done
git index-pack --stdin >/dev/null
printf '%s' "$refs" | grep -v ' HEAD$' | sed 's/^\([0-9a-f]*\) \(.*\)$/create \2 \1/' | git update-ref --stdin
if [ -n "$BRANCH" ]; then git checkout -q -f "$BRANCH"; else git checkout -q -f --detach "$HEAD_COMMIT"; fi
[ -z "$NAME" ] || git config user.name "$NAME"
[ -z "$EMAIL" ] || git config user.email "$EMAIL"
"##;

/// The repository into the bottle; returns the branch tips that went in.
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
    let tips = repo.branches()?;
    let mut bundle = tokio::process::Command::from(git(
        &repo.root,
        // HEAD too: a detached HEAD may be on no branch or tag.
        &[
            "bundle",
            "create",
            "-q",
            "-",
            "--branches",
            "--tags",
            "HEAD",
        ],
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(|err| Error::caused_by("cannot run git bundle", err))?;
    let progress = ui.progress(
        "Copying the repository into the bottle",
        Work::Bytes {
            total: Some(repo.size_bytes),
        },
    );
    let mut stdout = Counted {
        inner: bundle.stdout.take().expect("piped"),
        progress: progress.as_ref(),
    };
    let env = vec![
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
        progress.finish("failed");
        return Err(failed("unpacking it failed: ", said.trim().to_owned())
            .hint("the bottle image needs git"));
    }
    progress.finish("done");
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
    if !repo.untracked.files.is_empty() {
        copy_untracked(docker, container, &facts.user, repo)
            .await
            .map_err(|err| failed("its untracked files: ", err.to_line()))?;
    }
    Ok(tips)
}

/// The untracked files into the work tree, as a tar written while it is
/// read: links stay links, so nothing outside the work tree goes along.
async fn copy_untracked(
    docker: &Docker,
    container: &str,
    user: &str,
    repo: &Repository,
) -> Result<()> {
    let (mut reader, writer) = tokio::io::duplex(1 << 16);
    let (root, files) = (repo.root.clone(), repo.untracked.files.clone());
    let written = tokio::task::spawn_blocking(move || {
        let mut archive = tar::Builder::new(tokio_util::io::SyncIoBridge::new(writer));
        for file in &files {
            append_untracked(&mut archive, &root, file)
                .map_err(|err| Error::caused_by(format!("cannot read {}", file.display()), err))?;
        }
        archive
            .into_inner()
            .map_err(|err| Error::caused_by("cannot write the archive", err))?;
        Ok::<_, Error>(())
    });
    let cmd = ["tar", "-x", "-C", WORKSPACE].map(String::from).to_vec();
    let (code, said) = exec::piped(
        docker,
        container,
        user,
        cmd,
        vec![],
        Some(&mut reader),
        None,
    )
    .await?;
    written
        .await
        .map_err(|err| Error::caused_by("cannot write the archive", err.to_string()))??;
    if code != 0 {
        return Err(Error::new(format!(
            "tar exited with {code}: {}",
            said.trim()
        )));
    }
    Ok(())
}

/// Bundles the workspace's branches less the history of the commits named
/// on stdin (those the bottle has), so only new commits travel; writes
/// nothing when there are none, as `git bundle` refuses an empty bundle.
/// On stdin, not in the environment: a repository's thousands of branch
/// tips exceed what one variable may hold.
const BUNDLE_OUT: &str = r#"set -e
cd "$WORKSPACE"
known=.git/claude-bottle-known
trap 'rm -f "$known"' EXIT
git cat-file --batch-check='%(objectname) %(objecttype)' | awk '$2 == "commit" { print "^" $1 }' >"$known"
new=$(git rev-list -n 1 --branches --stdin <"$known")
[ -n "$new" ] || exit 0
git bundle create -q - --branches --stdin <"$known""#;

/// One untracked file: a link as a link (never what it points to), a
/// regular file as exactly the size it had when its header was written, so
/// one that grows or shrinks meanwhile cannot break the archive.
fn append_untracked<W: std::io::Write>(
    archive: &mut tar::Builder<W>,
    root: &std::path::Path,
    file: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let path = root.join(file);
    let meta = std::fs::symlink_metadata(&path)?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.permissions().mode() & 0o7777);
    header.set_mtime(
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
    );
    if meta.file_type().is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        return archive.append_link(&mut header, file, std::fs::read_link(&path)?);
    }
    if !meta.is_file() {
        return Ok(());
    }
    let size = meta.len();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    let data = std::fs::File::open(&path)?
        .take(size)
        .chain(std::io::repeat(0))
        .take(size);
    archive.append_data(&mut header, file, data)
}

/// A bundle of the workspace's new commits, written to `to`, from the
/// agent container `container` (as its own user).
pub(super) async fn bundle_to(
    docker: &Docker,
    container: &str,
    known: &[String],
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
    write_bundle(docker, container, &user, known, to).await
}

async fn write_bundle(
    docker: &Docker,
    container: &str,
    user: &str,
    known: &[String],
    to: &std::path::Path,
) -> Result<()> {
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|err| Error::caused_by("cannot write the bottle's bundle", err))?;
    let mut lines = String::new();
    for commit in known
        .iter()
        .filter(|c| c.chars().all(|c| c.is_ascii_hexdigit()))
    {
        lines.push_str(commit);
        lines.push('\n');
    }
    let env = vec![format!("WORKSPACE={WORKSPACE}")];
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
    let mut out = Vec::new();
    let listed = exec::piped(
        docker,
        container,
        &facts.user,
        cmd,
        vec![],
        None,
        Some(&mut out),
    )
    .await;
    if !matches!(listed, Ok((0, _))) {
        return "the bottle's branches could not be listed".to_owned();
    }
    let out: String = String::from_utf8_lossy(&out)
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ' || *c == '\n')
        .collect();
    let changed: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(r, c)| !copied.iter().any(|(cr, cc)| cr == r && cc == c))
        .map(|(r, c)| {
            let branch = r.trim_start_matches("refs/heads/");
            format!("{branch} at {}", &c[..c.len().min(12)])
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
    instance: &str,
    copied: &[(String, String)],
    stage: &StageDir,
) -> Result<Vec<Arrived>> {
    let path = stage.path().join("home.bundle");
    let known: Vec<String> = copied.iter().map(|(_, commit)| commit.clone()).collect();
    write_bundle(docker, container, &facts.user, &known, &path).await?;
    let (repo, instance, copied) = (repo.clone(), instance.to_owned(), copied.to_vec());
    tokio::task::spawn_blocking(move || take_home(&repo, &path, &instance, &copied))
        .await
        .map_err(|err| Error::caused_by("bringing the commits home failed", err.to_string()))?
}
