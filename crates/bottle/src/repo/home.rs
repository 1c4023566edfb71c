//! Bringing the agent's commits home: from a bundle the bottle wrote, into
//! new refs under `refs/heads/claude-bottle/<instance>/`, and nothing else.
//!
//! The bundle is the agent's, byte for byte, whatever the bottle's exit
//! code says: a process of the agent's can write into the stdout the host
//! reads it from. So it is read as hostile. It must not pass its cap (the
//! writer stops there), its header must be a plain v2 or v3 bundle (no
//! filter, which would make the user's pack a promisor's), it must pass
//! `git bundle verify`, and its objects are checked as they are fetched
//! (`transfer.fsckObjects`, `.gitmodules` included), with git's memory
//! bounded. Every ref in it must be a branch; a branch comes home only
//! when its name is plain (`branch_name`), and is otherwise refused by
//! name, shown escaped, while the others come. The user's branches, index
//! and work tree are never touched.

use std::path::Path;

use super::{Repository, git, text};
use crate::bottle_text::{Tail, shown};
use crate::error::{Error, Result};

/// The most of a bundle's header that is read: its refs, one line each.
const HEADER_MAX: usize = 4 << 20;
/// Refused branches named one by one, and how much of each name shows.
const REFUSED_LISTED: usize = 20;
const NAME_SHOWN: usize = 120;
/// The address space and CPU time git may take to check and index a
/// bundle, where the system lets a limit be set: a small delta that
/// unpacks to a huge object fails rather than taking the host's memory,
/// or its CPU for hours.
const GIT_MEMORY_KIB: u64 = 3 << 20;
const GIT_CPU_SECONDS: u64 = 600;

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
    /// The line the session ends with for it: where it is, and how to read
    /// it before anything of it is checked out, quoted for the shell.
    pub fn line(&self, base: Option<&str>) -> String {
        let short = self.host_ref.trim_start_matches("refs/heads/");
        let range = match base {
            Some(base) => format!("{base}..{short}"),
            None => short.to_owned(),
        };
        format!("came home: {short} (git log -p {})", quoted(&range))
    }
}

/// A branch of the bottle that did not come home for its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedBranch {
    /// Its name, made safe to print.
    pub shown: String,
    pub why: &'static str,
}

impl RefusedBranch {
    pub fn line(&self) -> String {
        format!("not home: the branch `{}`: {}", self.shown, self.why)
    }
}

/// What a bundle brought: the branches that came, and those refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeComing {
    pub arrived: Vec<Arrived>,
    pub refused: Vec<RefusedBranch>,
}

impl HomeComing {
    /// The lines a session (or `fetch`) ends with: each branch, then what
    /// reviewing them asks.
    pub fn lines(&self, base: Option<&str>) -> Vec<String> {
        let mut lines: Vec<String> = self.arrived.iter().map(|a| a.line(base)).collect();
        lines.extend(
            self.refused
                .iter()
                .take(REFUSED_LISTED)
                .map(RefusedBranch::line),
        );
        if self.refused.len() > REFUSED_LISTED {
            lines.push(format!(
                "not home: {} more branches, for their names",
                self.refused.len() - REFUSED_LISTED
            ));
        }
        if !self.arrived.is_empty() {
            lines.push(
                "review them with `git log -p` or `git diff` before any checkout: checking out \
                 the agent's branch can run its hooks (husky's .husky/) and its .lfsconfig"
                    .to_owned(),
            );
        }
        lines
    }
}

/// A name from the bottle as a line shows it: [`shown`], and only its
/// start when it is long.
fn shown_briefly(name: &str) -> String {
    if name.chars().count() <= NAME_SHOWN {
        return shown(name);
    }
    let start: String = name.chars().take(NAME_SHOWN).collect();
    format!("{}... ({} bytes)", shown(&start), name.len())
}

/// `word` as a shell reads it back: as it is when it holds only plain
/// characters, else in single quotes.
fn quoted(word: &str) -> String {
    shlex::try_quote(word).map_or_else(
        |_| format!("'{}'", shown(word)),
        std::borrow::Cow::into_owned,
    )
}

/// Why a branch name may not come home, if it may not: only letters,
/// digits and `. _ / -`, no `..`, and no part that starts with `-` or `.`,
/// so a name is the same in every tool, on every screen and in a pasted
/// command.
pub fn branch_name_refusal(branch: &str) -> Option<&'static str> {
    if branch.is_empty() {
        return Some("its name is empty");
    }
    if !branch
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return Some("its name holds characters other than A-Z a-z 0-9 . _ / -");
    }
    if branch.contains("..") {
        return Some("its name holds `..`");
    }
    if branch
        .split('/')
        .any(|part| part.is_empty() || part.starts_with(['-', '.']))
    {
        return Some("a part of its name is empty or starts with `-` or `.`");
    }
    None
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
) -> Result<HomeComing> {
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
    let said = |output: &std::process::Output| Tail::of(&output.stderr).shown();
    let bundle_arg = bundle.display().to_string();
    // The bottle writes nothing when it has no new commits.
    if std::fs::metadata(bundle)
        .map_err(|err| Error::caused_by("cannot read the bottle's bundle", err))?
        .len()
        == 0
    {
        return Ok(HomeComing::default());
    }
    let pack_at = plain_header(bundle).map_err(refused)?;
    let verify = run(&["bundle", "verify", "-q", &bundle_arg])?;
    if !verify.status.success() {
        return Err(refused(format!(
            "the bundle fails `git bundle verify` ({})",
            said(&verify)
        )));
    }
    let heads = run(&["bundle", "list-heads", &bundle_arg])?;
    let (mut coming, wanted) = sorted_heads(root, &text(&heads), copied).map_err(refused)?;
    if wanted.is_empty() {
        return Ok(coming);
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
    strictly_indexed(root, bundle, pack_at).map_err(refused)?;
    let fetched = checked_fetch(root, &bundle_arg, &refspecs)?;
    if !fetched.status.success() {
        return Err(refused(format!("git fetch failed ({})", said(&fetched))));
    }
    coming.arrived = wanted
        .into_iter()
        .map(|(branch, commit)| Arrived {
            host_ref: home_ref(instance, &branch),
            branch,
            commit,
        })
        .collect();
    Ok(coming)
}

/// The bundle's refs (`list-heads` lines) sorted: branches refused for
/// their names, and the branches wanted home (name and commit) whose tips
/// are not what went in (`copied`). Anything but a branch refuses it all.
fn sorted_heads(
    root: &Path,
    heads: &str,
    copied: &[(String, String)],
) -> std::result::Result<(HomeComing, Vec<(String, String)>), String> {
    let mut coming = HomeComing::default();
    let mut wanted = Vec::new();
    for line in heads.lines() {
        let Some((commit, name)) = line.split_once(' ') else {
            return Err(format!("a line of its refs is `{}`", shown_briefly(line)));
        };
        let Some(branch) = name.strip_prefix("refs/heads/") else {
            return Err(format!(
                "`{}` is not a branch (refs/heads/...)",
                shown_briefly(name)
            ));
        };
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) || !(40..=64).contains(&commit.len()) {
            return Err(format!("`{}` is not a commit id", shown_briefly(commit)));
        }
        if let Some(why) = branch_name_refusal(branch) {
            coming.refused.push(RefusedBranch {
                shown: shown_briefly(branch),
                why,
            });
            continue;
        }
        let checked = git(root, &["check-ref-format", name])
            .output()
            .map_err(|err| format!("cannot run git: {err}"))?;
        if !checked.status.success() {
            coming.refused.push(RefusedBranch {
                shown: shown_briefly(branch),
                why: "git does not take its name",
            });
            continue;
        }
        let went_in = copied.iter().any(|(r, c)| r == name && c == commit);
        if !went_in {
            wanted.push((branch.to_owned(), commit.to_owned()));
        }
    }
    Ok((coming, wanted))
}

/// Whether the bundle's header is one this fetch may take: a v2 bundle,
/// or a v3 one whose only capability is its object format. A filter would
/// make the fetched pack a promisor's, and the repository would later ask
/// for what it lacks.
fn plain_header(bundle: &Path) -> std::result::Result<u64, String> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(bundle).map_err(|err| format!("cannot read it: {err}"))?;
    let mut reader = std::io::BufReader::new(file.take(HEADER_MAX as u64));
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|err| format!("cannot read it: {err}"))?;
    let mut read_so_far = first.len() as u64;
    let v3 = match first.as_slice() {
        b"# v2 git bundle\n" => false,
        b"# v3 git bundle\n" => true,
        _ => return Err("it is not a git bundle of version 2 or 3".to_owned()),
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|err| format!("cannot read it: {err}"))?;
        if read == 0 || !line.ends_with(b"\n") {
            return Err("its header does not end".to_owned());
        }
        read_so_far += read as u64;
        match line.as_slice() {
            b"\n" => return Ok(read_so_far),
            [b'@', capability @ ..] => {
                let capability = String::from_utf8_lossy(capability);
                let capability = capability.trim_end();
                let known =
                    capability == "object-format=sha1" || capability == "object-format=sha256";
                if !v3 || !known {
                    return Err(format!(
                        "its header asks for `@{}`, which is refused",
                        shown_briefly(capability)
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Indexes the bundle's pack, which starts `pack_at` bytes in, in a
/// scratch repository that borrows the user's objects, checking every
/// object as it comes (`index-pack --strict`: bad trees, a hostile
/// `.gitmodules`): every git does this, where a fetch from a bundle checks
/// its objects only from git 2.46 on. Nothing of it stays.
fn strictly_indexed(root: &Path, bundle: &Path, pack_at: u64) -> std::result::Result<(), String> {
    use std::io::Seek;
    let failed = |what: &str, err: &dyn std::fmt::Display| format!("{what}: {err}");
    let objects = git(
        root,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "objects",
        ],
    )
    .output()
    .map_err(|err| failed("cannot run git", &err))?;
    let objects = text(&objects);
    let scratch =
        tempfile::tempdir().map_err(|err| failed("cannot make a scratch repository", &err))?;
    let made = git(scratch.path(), &["init", "-q", "--bare"])
        .output()
        .map_err(|err| failed("cannot run git", &err))?;
    if !made.status.success() {
        return Err("cannot make a scratch repository".to_owned());
    }
    std::fs::write(
        scratch.path().join("objects/info/alternates"),
        format!("{objects}\n"),
    )
    .map_err(|err| failed("cannot make a scratch repository", &err))?;
    let mut pack = std::fs::File::open(bundle).map_err(|err| failed("cannot read it", &err))?;
    pack.seek(std::io::SeekFrom::Start(pack_at))
        .map_err(|err| failed("cannot read it", &err))?;
    let indexed = limited(&git(
        scratch.path(),
        &["index-pack", "--stdin", "--strict", "--fix-thin"],
    ))
    .stdin(pack)
    .stdout(std::process::Stdio::null())
    .output()
    .map_err(|err| failed("cannot run git", &err))?;
    if indexed.status.success() {
        Ok(())
    } else {
        Err(format!(
            "its objects fail git's checks ({})",
            Tail::of(&indexed.stderr).shown()
        ))
    }
}

/// `git fetch` of `refspecs` from the bundle, its objects checked again as
/// they come where git does, no submodule followed, and git's memory
/// bounded where the system allows it. Atomic: a pack that breaks
/// half-way updates no ref.
fn checked_fetch(root: &Path, bundle: &str, refspecs: &[String]) -> Result<std::process::Output> {
    let mut args = vec![
        "-c",
        "transfer.fsckObjects=true",
        "-c",
        "fetch.fsckObjects=true",
        "-c",
        "fetch.fsck.skipList=/dev/null",
        "-c",
        "fetch.recurseSubmodules=false",
        "-c",
        "submodule.recurse=false",
        "-c",
        "core.packedGitLimit=256m",
        "-c",
        "core.packedGitWindowSize=32m",
        "-c",
        "core.deltaBaseCacheLimit=64m",
        "-c",
        "pack.threads=1",
        "fetch",
        "-q",
        "--atomic",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        bundle,
    ];
    args.extend(refspecs.iter().map(String::as_str));
    limited(&git(root, &args))
        .output()
        .map_err(|err| Error::caused_by("cannot run git", err))
}

/// `command` (a git), run under limits on its address space and CPU time
/// that the shell sets where it can.
fn limited(command: &std::process::Command) -> std::process::Command {
    let mut limited = std::process::Command::new("sh");
    limited
        .arg("-c")
        .arg(format!(
            "ulimit -v {GIT_MEMORY_KIB} 2>/dev/null; ulimit -t {GIT_CPU_SECONDS} 2>/dev/null; \
             exec \"$0\" \"$@\""
        ))
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(name, value),
            None => limited.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        limited.current_dir(dir);
    }
    limited
}

/// A running instance's new commits, fetched now into `repo`; the
/// baseline is the repository as it is, so branches the agent did not
/// change stay where they are.
pub async fn fetch_running(
    backend: &dyn crate::backend::Backend,
    instance: &str,
    scope: &[(String, String)],
    repo: &Repository,
    bundle_max: u64,
) -> Result<HomeComing> {
    let bundle = tempfile::Builder::new()
        .prefix("claude-bottle-fetch-")
        .suffix(".bundle")
        .tempfile()
        .map_err(|err| Error::caused_by("cannot make room for the bottle's bundle", err))?;
    let baseline = repo.branches()?;
    let known: Vec<String> = baseline.iter().map(|(_, commit)| commit.clone()).collect();
    backend
        .bundle_branches(instance, scope, &known, bundle.path(), bundle_max)
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
