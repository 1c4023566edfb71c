//! The agent's commits come home from a bundle the bottle wrote, which is
//! not trusted: real git repositories made here, bundles sound and not.

use std::path::Path;
use std::process::Command;

use bottle::repo::Repository;
use bottle::repo::home::{home_ref, take_home};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The user's repository and a clone playing the bottle, one new commit
/// on `main` in the clone; the bundle of its branches.
struct World {
    _dir: tempfile::TempDir,
    host: std::path::PathBuf,
    bottle: std::path::PathBuf,
    bundle: std::path::PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (host, bottle) = (dir.path().join("host"), dir.path().join("bottle"));
    std::fs::create_dir(&host).unwrap();
    git(&host, &["init", "-q", "-b", "main"]);
    git(&host, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(
        dir.path(),
        &["clone", "-q", host.to_str().unwrap(), "bottle"],
    );
    git(
        &bottle,
        &["commit", "-q", "--allow-empty", "-m", "from the bottle"],
    );
    let bundle = dir.path().join("home.bundle");
    git(
        &bottle,
        &[
            "bundle",
            "create",
            "-q",
            bundle.to_str().unwrap(),
            "--branches",
        ],
    );
    World {
        _dir: dir,
        host,
        bottle,
        bundle,
    }
}

fn refs(dir: &Path) -> String {
    git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
}

#[test]
fn a_sound_bundle_brings_the_new_branch_tips_and_nothing_else() {
    let w = world();
    let repo = Repository::find(&w.host).unwrap();
    let copied = repo.branches().unwrap();
    let main_before = git(&w.host, &["rev-parse", "main"]);
    let coming = take_home(&repo, &w.bundle, "inst-1", &copied).unwrap();
    assert!(coming.refused.is_empty(), "{coming:?}");
    let arrived = coming.arrived;
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert_eq!(arrived[0].host_ref, home_ref("inst-1", "main"));
    assert_eq!(
        git(&w.host, &["rev-parse", &arrived[0].host_ref]),
        git(&w.bottle, &["rev-parse", "main"])
    );
    assert_eq!(
        git(&w.host, &["rev-parse", "main"]),
        main_before,
        "the user's branch moved"
    );
    // Branches whose tips are what went in do not come home again.
    let again = take_home(
        &repo,
        &w.bundle,
        "inst-1",
        &[("refs/heads/main".into(), arrived[0].commit.clone())],
    )
    .unwrap();
    assert!(again.arrived.is_empty(), "{again:?}");
}

#[test]
fn a_hostile_bundle_is_refused_and_the_host_repository_is_unchanged() {
    let w = world();
    let repo = Repository::find(&w.host).unwrap();
    let copied = repo.branches().unwrap();
    let before = refs(&w.host);
    let refused = |bundle: &Path, why: &str| {
        let err = take_home(&repo, bundle, "inst-2", &copied).unwrap_err();
        assert!(err.message().contains("nothing was fetched"), "{err}");
        assert!(err.message().contains(why), "expected `{why}`: {err}");
        assert_eq!(refs(&w.host), before, "the host repository changed");
    };
    // Not a bundle at all, and a bundle cut short.
    let corrupt = w.bundle.with_file_name("corrupt.bundle");
    std::fs::write(&corrupt, b"# v2 git bundle\nnot really\n").unwrap();
    refused(&corrupt, "its header does not end");
    let whole = std::fs::read(&w.bundle).unwrap();
    std::fs::write(&corrupt, &whole[..whole.len() / 2]).unwrap();
    refused(&corrupt, "its objects fail git's checks");
    // A ref outside refs/heads.
    git(&w.bottle, &["tag", "v1"]);
    let tags = w.bundle.with_file_name("tags.bundle");
    git(
        &w.bottle,
        &[
            "bundle",
            "create",
            "-q",
            tags.to_str().unwrap(),
            "refs/tags/v1",
        ],
    );
    refused(&tags, "`refs/tags/v1` is not a branch");
    // A ref whose name climbs out: the header rewritten, the pack intact.
    let text = String::from_utf8_lossy(&whole).into_owned();
    let header_end = whole.windows(2).position(|w| w == b"\n\n").unwrap();
    let header = text[..header_end].replace("refs/heads/main", "refs/heads/../../HEAD");
    let mut climbing = header.into_bytes();
    climbing.extend_from_slice(&whole[header_end..]);
    let climbing_path = w.bundle.with_file_name("climbing.bundle");
    std::fs::write(&climbing_path, climbing).unwrap();
    let coming = take_home(&repo, &climbing_path, "inst-2", &copied).unwrap();
    assert!(coming.arrived.is_empty(), "{coming:?}");
    assert_eq!(
        coming.refused[0].line(),
        "not home: the branch `../../HEAD`: its name holds `..`"
    );
    assert_eq!(refs(&w.host), before, "the host repository changed");
    // A v3 bundle with a filter: its pack would be a promisor's.
    let filtered = text[..header_end].replacen(
        "# v2 git bundle\n",
        "# v3 git bundle\n@object-format=sha1\n@filter=blob:none\n",
        1,
    );
    let mut promisor = filtered.into_bytes();
    promisor.extend_from_slice(&whole[header_end..]);
    let promisor_path = w.bundle.with_file_name("promisor.bundle");
    std::fs::write(&promisor_path, promisor).unwrap();
    refused(
        &promisor_path,
        "asks for `@filter=blob:none`, which is refused",
    );
    // Not a bundle's first line at all.
    std::fs::write(&corrupt, b"PACK\0\0\0\x02").unwrap();
    refused(&corrupt, "not a git bundle of version 2 or 3");
}

#[test]
fn a_branch_named_claude_bottle_is_named_in_the_refusal() {
    let w = world();
    git(&w.host, &["branch", "claude-bottle"]);
    let repo = Repository::find(&w.host).unwrap();
    let copied = repo.branches().unwrap();
    let err = take_home(&repo, &w.bundle, "inst-3", &copied).unwrap_err();
    assert!(
        err.message().contains("has a branch named `claude-bottle`"),
        "{err}"
    );
    assert!(!err.hints().is_empty(), "{err}");
}
