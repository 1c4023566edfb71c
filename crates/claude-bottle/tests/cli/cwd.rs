//! `--cwd` on the real engine, with repositories the tests make: the
//! repository goes into `/workspace` with its uncommitted changes, the host
//! repository is not touched, and the agent's branches come home.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use std::time::{Duration, Instant};

use crate::support::{
    Sandbox, Session, fake_claude_bottle, leftovers, run_label, wait_for_instance, with_fake_claude,
};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository with two commits on `main`, a branch `feature`, an
/// unstaged change to `a.txt` and a staged one to `b.txt`.
fn repository(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Ada Host"]);
    git(dir, &["config", "user.email", "ada@host.example"]);
    std::fs::write(dir.join("a.txt"), "one\n").unwrap();
    std::fs::write(dir.join("b.txt"), "bee\n").unwrap();
    git(dir, &["add", "a.txt", "b.txt"]);
    git(dir, &["commit", "-q", "-m", "first"]);
    git(dir, &["branch", "feature"]);
    std::fs::write(dir.join("a.txt"), "one\nchanged on the host\n").unwrap();
    std::fs::write(dir.join("b.txt"), "bee\nstaged\n").unwrap();
    git(dir, &["add", "b.txt"]);
    std::fs::write(dir.join("untracked.txt"), "stays\n").unwrap();
}

/// What must not change on the host: status, the index file, every ref.
fn host_state(dir: &Path) -> (String, Vec<u8>, String) {
    (
        git(dir, &["status", "--porcelain"]),
        std::fs::read(dir.join(".git/index")).unwrap(),
        git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"]),
    )
}

#[tokio::test]
async fn the_repository_goes_in_with_its_changes_and_the_agents_branches_come_home() {
    let Some(docker) = with_fake_claude("cwd").await else {
        return;
    };
    let label = run_label("cwd");
    let script = "cd /workspace && echo branch=$(git rev-parse --abbrev-ref HEAD) \
        && echo remotes=$(git remote | wc -l) && cat a.txt b.txt \
        && test ! -e untracked.txt && echo untracked-stayed \
        && git commit -qam on-main-7e && echo main=$(git rev-parse HEAD) \
        && git checkout -qb agent-work && echo new >new.txt && git add new.txt \
        && git commit -qm on-a-new-branch-3f && echo agent-work=$(git rev-parse HEAD) \
        && git log -1 --format=author=%an";
    let sandbox = fake_claude_bottle(
        &label,
        &json!({ "env": { "FAKE_CLAUDE_RUN": script }, "egress": { "builtin": false } }),
    );
    repository(&sandbox.cwd);
    let before = host_state(&sandbox.cwd);
    let main_before = git(&sandbox.cwd, &["rev-parse", "main"]);

    let plan = sandbox
        .run(&["start", "a", "--cwd", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["cwd_branch"], "main", "{plan}");
    assert_eq!(plan["cwd_uncommitted"], true, "{plan}");
    assert!(plan["cwd_size_bytes"].as_u64().unwrap() > 0, "{plan}");

    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let said = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.trim_end().strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in {out:?}"))
            .to_owned()
    };
    assert_eq!(said("branch"), "main");
    assert_eq!(said("remotes"), "0", "the bottle's repository has a remote");
    assert_eq!(said("author"), "Ada Host");
    assert!(out.stdout.contains("changed on the host"), "{out:?}");
    // Staged changes come along too, as changes of the work tree.
    assert!(
        out.stdout.contains("bee\nstaged\n"),
        "the staged change: {out:?}"
    );
    assert!(out.stdout.contains("untracked-stayed"), "{out:?}");

    // The host is as it was, and the agent's branches are beside it.
    assert_eq!(host_state(&sandbox.cwd).0, before.0, "git status changed");
    assert_eq!(
        host_state(&sandbox.cwd).1,
        before.1,
        "the index file changed"
    );
    assert_eq!(git(&sandbox.cwd, &["rev-parse", "main"]), main_before);
    let instance = out
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("instance")
                .map(|n| n.trim().to_owned())
        })
        .unwrap();
    for branch in ["main", "agent-work"] {
        let home = format!("claude-bottle/{instance}/{branch}");
        assert_eq!(
            git(&sandbox.cwd, &["rev-parse", &home]),
            said(branch),
            "{branch}"
        );
        assert!(
            out.stderr.contains(&format!("came home: {home}")),
            "{out:?}"
        );
    }
    let refs = git(&sandbox.cwd, &["for-each-ref", "--format=%(refname)"]);
    let ours: Vec<&str> = refs
        .lines()
        .filter(|r| !r.contains("/claude-bottle/"))
        .collect();
    assert_eq!(ours, ["refs/heads/feature", "refs/heads/main"], "{refs}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn what_cannot_be_copied_is_refused_clearly() {
    // The manifest in HOME: every directory below finds it.
    let sandbox = Sandbox::new();
    sandbox.home_manifest(r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev"}}}"#);
    let refused = |dir: &Path, expected: &str| {
        let mut command = sandbox.command(&["start", "a", "--cwd", "--dry-run"]);
        let out = command.current_dir(dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "expected `{expected}`: {stderr}");
        assert!(stderr.contains("help:"), "no way out: {stderr}");
    };
    let dir = |name: &str, init: &[&str]| {
        let dir = sandbox.cwd.join(name);
        std::fs::create_dir(&dir).unwrap();
        if !init.is_empty() {
            git(&dir, init);
        }
        dir
    };
    refused(&dir("plain", &[]), "is not inside one");
    refused(
        &dir("bare.git", &["init", "-q", "--bare"]),
        "is a bare repository",
    );
    refused(
        &dir("empty", &["init", "-q"]),
        "a repository without commits",
    );
    let main = dir("main", &[]);
    repository(&main);
    git(&main, &["commit", "-qam", "second"]);
    let linked = sandbox.cwd.join("linked");
    git(&main, &["worktree", "add", "-q", linked.to_str().unwrap()]);
    refused(&linked, "a linked worktree");
}

#[tokio::test]
async fn fetch_brings_a_running_instances_commits_home_now() {
    let Some(docker) = with_fake_claude("cwd fetch").await else {
        return;
    };
    let label = run_label("cwd-fetch");
    let script = "cd /workspace && git checkout -qb mid && git commit -q --allow-empty -m mid \
        && echo mid=$(git rev-parse HEAD)";
    let sandbox = fake_claude_bottle(
        &label,
        &json!({
            "env": { "FAKE_CLAUDE_RUN": script, "FAKE_CLAUDE_READ_STDIN": "1" },
            "egress": { "builtin": false }
        }),
    );
    repository(&sandbox.cwd);
    let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
    let instance = wait_for_instance(&session).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mid = loop {
        let seen = session.stdout.lock().unwrap().clone();
        if let Some(hash) = seen.lines().find_map(|l| l.trim_end().strip_prefix("mid=")) {
            break hash.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the agent never committed: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fetched = sandbox.run(&["fetch", &instance]);
    assert_eq!(fetched.code, 0, "{fetched:?}");
    let home = format!("claude-bottle/{instance}/mid");
    assert!(
        fetched.stderr.contains(&format!("came home: {home}")),
        "{fetched:?}"
    );
    assert_eq!(git(&sandbox.cwd, &["rev-parse", &home]), mid);
    // Nothing new since: said so, and nothing moves.
    let again = sandbox.run(&["fetch", &instance]);
    assert_eq!(again.code, 0, "{again:?}");
    let out = session.finish("");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(git(&sandbox.cwd, &["rev-parse", &home]), mid);
    let gone = sandbox.run(&["fetch", &instance]);
    assert_eq!(gone.code, 125, "{gone:?}");
    assert!(gone.stderr.contains("no running instance"), "{gone:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
