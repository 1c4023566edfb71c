//! Bringing the agent's commits home: from a bundle the bottle wrote, into
//! new refs under `refs/heads/claude-bottle/<instance>/`, and nothing else.
//!
//! The bottle is not trusted to write a sound bundle: it may replace `git`
//! in its PATH. So the bundle must pass `git bundle verify`, every ref in
//! it must be a branch (`refs/heads/...`) whose name `git check-ref-format`
//! accepts, and only then is anything fetched. The user's branches, index
//! and work tree are never touched.

use std::path::Path;

use super::{Repository, git, text};
use crate::error::{Error, Result};

/// A branch of the bottle that came home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrived {
    /// Its name in the bottle.
    pub branch: String,
    /// Where it is now in the host repository.
    pub host_ref: String,
    pub commit: String,
}

impl Arrived {
    /// The line the session ends with for it.
    pub fn line(&self, base: Option<&str>) -> String {
        let short = self.host_ref.trim_start_matches("refs/heads/");
        match base {
            Some(base) => format!("came home: {short} (git log {base}..{short})"),
            None => format!("came home: {short} (git log {short})"),
        }
    }
}

/// Where the bottle's `branch` goes in the host repository.
pub fn home_ref(instance: &str, branch: &str) -> String {
    format!("refs/heads/claude-bottle/{instance}/{branch}")
}

/// Fetches from `bundle` the bottle's branches whose tips are not what
/// went in (`copied`: the branch refs and their tips at copy-in).
pub fn take_home(
    repo: &Repository,
    bundle: &Path,
    instance: &str,
    copied: &[(String, String)],
) -> Result<Vec<Arrived>> {
    let root = &repo.root;
    let refused = |why: String| {
        Error::new(format!(
            "the bottle's commits were refused and nothing was fetched: {why}"
        ))
    };
    let run = |args: &[&str]| {
        git(root, args)
            .output()
            .map_err(|err| Error::caused_by("cannot run git", err))
    };
    let bundle_arg = bundle.display().to_string();
    // The bottle writes nothing when it has no new commits.
    if std::fs::metadata(bundle)
        .map_err(|err| Error::caused_by("cannot read the bottle's bundle", err))?
        .len()
        == 0
    {
        return Ok(Vec::new());
    }
    let verify = run(&["bundle", "verify", "-q", &bundle_arg])?;
    if !verify.status.success() {
        return Err(refused(format!(
            "the bundle fails `git bundle verify` ({})",
            String::from_utf8_lossy(&verify.stderr).trim()
        )));
    }
    let heads = run(&["bundle", "list-heads", &bundle_arg])?;
    let mut wanted = Vec::new();
    for line in text(&heads).lines() {
        let Some((commit, name)) = line.split_once(' ') else {
            return Err(refused(format!("a line of its refs is `{line}`")));
        };
        let Some(branch) = name.strip_prefix("refs/heads/") else {
            return Err(refused(format!(
                "`{name}` is not a branch (refs/heads/...)"
            )));
        };
        let checked = run(&["check-ref-format", name])?;
        if !checked.status.success() || branch.is_empty() {
            return Err(refused(format!("`{name}` is not a valid ref name")));
        }
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) || !(40..=64).contains(&commit.len()) {
            return Err(refused(format!("`{commit}` is not a commit id")));
        }
        let went_in = copied.iter().any(|(r, c)| r == name && c == commit);
        if !went_in {
            wanted.push((branch.to_owned(), commit.to_owned()));
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let branches = repo.branches()?;
    if branches
        .iter()
        .any(|(r, _)| r == "refs/heads/claude-bottle")
    {
        return Err(Error::new(
            "the bottle's commits cannot come home: this repository has a branch named \
             `claude-bottle`, and they go under refs/heads/claude-bottle/",
        )
        .hint("rename that branch (git branch -m claude-bottle <other>), then fetch them with `claude-bottle fetch`"));
    }
    let refspecs: Vec<String> = wanted
        .iter()
        // Forced: the namespace is the instance's own, and a branch the
        // agent rewrote after a `fetch` replaces what came before.
        .map(|(branch, _)| format!("+refs/heads/{branch}:{}", home_ref(instance, branch)))
        .collect();
    // Atomic: a pack that breaks half-way (verify reads only the header)
    // updates no ref at all.
    let mut args = vec![
        "fetch",
        "-q",
        "--atomic",
        "--no-tags",
        "--no-write-fetch-head",
        &bundle_arg,
    ];
    args.extend(refspecs.iter().map(String::as_str));
    let fetched = run(&args)?;
    if !fetched.status.success() {
        return Err(refused(format!(
            "git fetch failed ({})",
            String::from_utf8_lossy(&fetched.stderr).trim()
        )));
    }
    Ok(wanted
        .into_iter()
        .map(|(branch, commit)| Arrived {
            host_ref: home_ref(instance, &branch),
            branch,
            commit,
        })
        .collect())
}

/// A running instance's new commits, fetched now into `repo`; the
/// baseline is the repository as it is, so branches the agent did not
/// change stay where they are.
pub async fn fetch_running(
    backend: &dyn crate::backend::Backend,
    instance: &str,
    scope: &[(String, String)],
    repo: &Repository,
) -> Result<Vec<Arrived>> {
    let bundle = tempfile::Builder::new()
        .prefix("claude-bottle-fetch-")
        .suffix(".bundle")
        .tempfile()
        .map_err(|err| Error::caused_by("cannot make room for the bottle's bundle", err))?;
    let baseline = repo.branches()?;
    let known: Vec<String> = baseline.iter().map(|(_, commit)| commit.clone()).collect();
    backend
        .bundle_branches(instance, scope, &known, bundle.path())
        .await?;
    let (repo, instance) = (repo.clone(), instance.to_owned());
    let path = bundle.path().to_owned();
    let arrived =
        tokio::task::spawn_blocking(move || take_home(&repo, &path, &instance, &baseline))
            .await
            .map_err(|err| Error::caused_by("fetching the commits failed", err.to_string()))?;
    drop(bundle);
    arrived
}
