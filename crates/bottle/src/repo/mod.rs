//! The user's repository on the host, for `--cwd`: what goes into the
//! bottle, and how the agent's commits come home.
//!
//! Host-side git never changes the user's repository on the way in: it
//! runs with `GIT_OPTIONAL_LOCKS=0`, so not even `git diff` refreshes the
//! index file. On the way home only new refs under
//! `refs/heads/claude-bottle/<instance>/` are written, from a bundle that
//! has been verified and whose every ref was checked first.

pub mod home;
pub mod objects;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{Error, Result};

/// A work tree's repository, as `--cwd` copies it.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The top of the work tree.
    pub root: PathBuf,
    /// The checked-out branch; `None` on a detached HEAD.
    pub branch: Option<String>,
    pub head: String,
    /// Whether tracked files differ from HEAD (staged or not).
    pub uncommitted: bool,
    /// What the objects take on disk.
    pub size_bytes: u64,
    /// The host's `user.name` and `user.email`, for commits in the bottle.
    pub identity: (Option<String>, Option<String>),
    /// Untracked files that go along (`--include-untracked`), relative to
    /// the root; empty otherwise.
    pub untracked: Untracked,
}

/// The untracked, not ignored, files of a work tree.
#[derive(Debug, Clone, Default)]
pub struct Untracked {
    pub files: Vec<PathBuf>,
    /// What the files take, symbolic links counted by their own size.
    pub bytes: u64,
    /// Untracked directories that are repositories of their own: they stay.
    pub repositories: Vec<PathBuf>,
}

/// `git ARGS` in `root`, never taking the index lock.
pub(crate) fn git(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        // A partial clone would fetch what it lacks; nothing here may dial.
        .env("GIT_NO_LAZY_FETCH", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    command
}

fn run(root: &Path, args: &[&str]) -> Result<Output> {
    git(root, args).output().map_err(|err| {
        Error::caused_by(format!("cannot run git {}", args.join(" ")), err)
            .hint("--cwd needs git on this machine's PATH")
    })
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Repository {
    /// The repository of the work tree that holds `cwd`, or why it cannot
    /// be copied.
    pub fn find(cwd: &Path) -> Result<Self> {
        let not_one = || {
            Error::new(format!(
                "--cwd copies a git repository, and {} is not inside one",
                cwd.display()
            ))
            .hint("run from inside your repository, or leave out --cwd")
        };
        let top = run(cwd, &["rev-parse", "--show-toplevel"])?;
        if !top.status.success() {
            let bare = run(cwd, &["rev-parse", "--is-bare-repository"])?;
            if text(&bare) == "true" {
                return Err(Error::new(format!(
                    "{} is a bare repository, which has no work tree to copy",
                    cwd.display()
                ))
                .hint("run from a clone with a work tree"));
            }
            return Err(not_one());
        }
        let root = PathBuf::from(text(&top));
        let refuse = |what: &str, hint: &str| {
            Err(Error::new(format!(
                "--cwd cannot copy {}: it is {what}",
                root.display()
            ))
            .hint(hint.to_owned()))
        };
        // A linked worktree or a submodule has a `.git` file pointing at a
        // repository elsewhere; copying only its part would lose history.
        if root.join(".git").is_file() {
            let super_project = run(&root, &["rev-parse", "--show-superproject-working-tree"])?;
            return if text(&super_project).is_empty() {
                refuse(
                    "a linked worktree",
                    "run from the main work tree of the repository",
                )
            } else {
                refuse(
                    "a submodule",
                    "run from the submodule's own clone, or from the superproject",
                )
            };
        }
        if root.join(".gitmodules").exists() {
            return refuse(
                "a repository with submodules, which --cwd does not copy yet",
                "start without --cwd, or from a clone without submodules",
            );
        }
        if let Some((what, hint)) = missing_objects(&root)? {
            return refuse(&what, hint);
        }
        let head = run(&root, &["rev-parse", "--verify", "-q", "HEAD"])?;
        if !head.status.success() {
            return refuse(
                "a repository without commits",
                "commit something first; --cwd copies HEAD and what changed since",
            );
        }
        let branch = run(&root, &["symbolic-ref", "-q", "--short", "HEAD"])?;
        let changed = run(&root, &["diff", "--quiet", "HEAD", "--"])?;
        let config = |key: &str| -> Result<Option<String>> {
            let value = run(&root, &["config", "--get", key])?;
            Ok(Some(text(&value)).filter(|v| value.status.success() && !v.is_empty()))
        };
        Ok(Self {
            branch: Some(text(&branch)).filter(|b| branch.status.success() && !b.is_empty()),
            head: text(&head),
            uncommitted: changed.status.code() == Some(1),
            size_bytes: size(&root)?,
            identity: (config("user.name")?, config("user.email")?),
            untracked: Untracked::default(),
            root,
        })
    }

    /// Lists the untracked files that are not ignored, for
    /// `--include-untracked`. `git ls-files` only reads the index.
    pub fn include_untracked(&mut self) -> Result<()> {
        let out = run(
            &self.root,
            &["ls-files", "-z", "--others", "--exclude-standard"],
        )?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "cannot list the untracked files of {}: {}",
                self.root.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let mut untracked = Untracked::default();
        for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            // git names a nested repository as a directory, `dir/`.
            if let Some(dir) = name.strip_suffix(b"/") {
                let dir = PathBuf::from(std::ffi::OsStr::from_bytes(dir));
                untracked.repositories.push(dir);
                continue;
            }
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(name));
            let meta = std::fs::symlink_metadata(self.root.join(&path))
                .map_err(|err| Error::caused_by(format!("cannot read {}", path.display()), err))?;
            untracked.bytes += meta.len();
            untracked.files.push(path);
        }
        self.untracked = untracked;
        Ok(())
    }

    /// The refs of the user's own branches: the name under `refs/heads/`
    /// that a bottle's branch must not clash with.
    pub fn branches(&self) -> Result<Vec<(String, String)>> {
        let out = run(
            &self.root,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
            ],
        )?;
        Ok(text(&out)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, h)| (r.to_owned(), h.to_owned()))
            .collect())
    }
}

/// Why the repository at `root` lacks objects its history names, with what
/// to do, or `None` when it holds them all in a form the bottle reads.
fn missing_objects(root: &Path) -> Result<Option<(String, &'static str)>> {
    let shallow = run(root, &["rev-parse", "--is-shallow-repository"])?;
    if text(&shallow) == "true" {
        return Ok(Some((
            "a shallow clone, whose history is cut off".to_owned(),
            "fetch the rest first (git fetch --unshallow), or start without --cwd",
        )));
    }
    let format = run(root, &["rev-parse", "--show-object-format"])?;
    if format.status.success() && text(&format) != "sha1" {
        return Ok(Some((
            format!("a repository of {} object names", text(&format)),
            "--cwd copies repositories with SHA-1 object names; start without --cwd",
        )));
    }
    // Older git marks a partial clone by the extension, newer git by the
    // remote it promises objects from.
    let promised = run(
        root,
        &[
            "config",
            "--get-regexp",
            r"^(extensions\.partialclone|remote\..*\.promisor)$",
        ],
    )?;
    let is_off = |value: &str| {
        ["false", "no", "off", "0"]
            .iter()
            .any(|off| value.eq_ignore_ascii_case(off))
    };
    if text(&promised)
        .lines()
        .any(|l| !is_off(l.split_once(' ').map_or("", |(_, v)| v)))
    {
        return Ok(Some((
            "a partial clone, whose objects are not all here".to_owned(),
            "start without --cwd, or from a full clone",
        )));
    }
    Ok(None)
}

/// `size` and `size-pack` of `git count-objects -v`, in bytes.
fn size(root: &Path) -> Result<u64> {
    let out = run(root, &["count-objects", "-v"])?;
    Ok(text(&out)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k == "size" || *k == "size-pack")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum::<u64>()
        * 1024)
}
