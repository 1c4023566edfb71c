//! `--cwd` on the real engine, with repositories the tests make: the
//! repository goes into `/workspace` with its uncommitted changes, the host
//! repository is not touched, and the agent's branches come home.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use std::time::{Duration, Instant};

use crate::support::{
    Sandbox, Session, Terminal, fake_claude_bottle, instance_of, leftovers, run_label, value_of,
    wait_for_instance, with_fake_claude, with_real_claude,
};

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) fn repository(dir: &Path) {
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

/// A bottle whose fake claude runs `script`, with no built-in hosts.
fn script_bottle(label: &str, script: &str) -> Sandbox {
    fake_claude_bottle(
        label,
        &json!({ "env": { "FAKE_CLAUDE_RUN": script }, "egress": { "builtin": false } }),
    )
}

/// What must not change on the host: status, the index file, every ref.
pub(crate) fn host_state(dir: &Path) -> (String, Vec<u8>, String) {
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
    let sandbox = script_bottle(&label, script);
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
    let said = |key: &str| value_of(&out.stdout, key).to_owned();
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
    let instance = instance_of(&out.stderr);
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
    let outer = dir("outer", &[]);
    repository(&outer);
    let main_path = main.to_str().unwrap();
    git(
        &outer,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            main_path,
            "sub",
        ],
    );
    git(&outer, &["commit", "-qm", "with a submodule"]);
    refused(&outer, "a repository with submodules");
    let shallow = sandbox.cwd.join("shallow");
    git(
        &sandbox.cwd,
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &format!("file://{main_path}"),
            shallow.to_str().unwrap(),
        ],
    );
    refused(&shallow, "a shallow clone");
    git(&main, &["config", "uploadpack.allowFilter", "true"]);
    let partial = sandbox.cwd.join("partial");
    git(
        &sandbox.cwd,
        &[
            "clone",
            "-q",
            "--filter=blob:none",
            &format!("file://{main_path}"),
            partial.to_str().unwrap(),
        ],
    );
    refused(&partial, "a partial clone");
    let sha256 = dir("sha256", &["init", "-q", "--object-format=sha256"]);
    std::fs::write(sha256.join("f"), "f\n").unwrap();
    git(&sha256, &["add", "f"]);
    git(
        &sha256,
        &[
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@a.example",
            "commit",
            "-qm",
            "f",
        ],
    );
    refused(&sha256, "a repository of sha256 object names");
    refused(&outer.join("sub"), "a submodule");
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
    // Thousands of branches: more tips than one environment variable holds.
    let head = git(&sandbox.cwd, &["rev-parse", "HEAD"]);
    let mut refs = String::new();
    for n in 0..4000 {
        let _ = writeln!(refs, "create refs/heads/many/{n} {head}");
    }
    let mut update = Command::new("git")
        .arg("-C")
        .arg(&sandbox.cwd)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut update.stdin.take().unwrap(), refs.as_bytes()).unwrap();
    assert!(update.wait().unwrap().success());
    let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
    let instance = wait_for_instance(&session).await;
    let seen = session.wait_for_stdout("mid=").await;
    let mid = value_of(&seen, "mid").to_owned();
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

#[tokio::test]
async fn untracked_files_go_in_only_when_asked_links_as_links_and_the_manifests_identity_wins() {
    let Some(docker) = with_fake_claude("cwd untracked").await else {
        return;
    };
    let label = run_label("cwd-untracked");
    let script = "cd /workspace && cat untracked.txt notes/n.txt \
        && test -L outside && echo outside-link=$(readlink outside) \
        && { cat outside 2>/dev/null || echo outside-unreadable; } \
        && { test -e debug.log || echo ignored-stayed; } \
        && { test -e nested || echo nested-stayed; } \
        && echo status=$(git status --porcelain | tr '\\n' ' ') \
        && git commit -q --allow-empty -m by-the-bot \
        && git log -1 --format='identity=%an <%ae> / %cn <%ce>'";
    let sandbox = fake_claude_bottle(
        &label,
        &json!({
            "env": {
                "FAKE_CLAUDE_RUN": script,
                "GIT_AUTHOR_NAME": "Bot Author",
                "GIT_AUTHOR_EMAIL": "bot@bottle.example",
            },
            "egress": { "builtin": false }
        }),
    );
    let dir = &sandbox.cwd;
    repository(dir);
    std::fs::write(dir.join(".gitignore"), "*.log\nclaude-bottle.json\n").unwrap();
    git(dir, &["add", ".gitignore"]);
    git(dir, &["commit", "-qm", "ignore"]);
    std::fs::write(dir.join("debug.log"), "ignored\n").unwrap();
    std::fs::create_dir(dir.join("notes")).unwrap();
    std::fs::write(dir.join("notes/n.txt"), "a note\n").unwrap();
    // A link to a file outside the work tree: only the link goes in.
    let secret = sandbox.home.join("host-only.txt");
    std::fs::write(&secret, "HOST-ONLY-51d0\n").unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("outside")).unwrap();
    let nested = dir.join("nested");
    std::fs::create_dir(&nested).unwrap();
    git(&nested, &["init", "-q"]);
    let before = host_state(dir);

    let plan = sandbox
        .run(&["start", "a", "--cwd", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(
        plan["cwd_untracked_files"],
        serde_json::Value::Null,
        "{plan}"
    );
    let plan = sandbox
        .run(&[
            "start",
            "a",
            "--cwd",
            "--include-untracked",
            "--dry-run",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(plan["cwd_untracked_files"], 3, "{plan}");
    assert!(plan["cwd_untracked_bytes"].as_u64().unwrap() > 0, "{plan}");
    assert!(
        plan["warnings"]
            .to_string()
            .contains("nested is a repository of its own"),
        "{plan}"
    );
    let alone = sandbox.run(&["start", "a", "--include-untracked", "--dry-run"]);
    assert_eq!(
        alone.code, 2,
        "--include-untracked without --cwd: {alone:?}"
    );

    let out = sandbox.run(&["start", "a", "--cwd", "--include-untracked", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("3 untracked file(s) along"), "{out:?}");
    for shown in [
        "stays\n",
        "a note\n",
        &format!("outside-link={}", secret.display()),
        "outside-unreadable",
        "ignored-stayed",
        "nested-stayed",
        "identity=Bot Author <bot@bottle.example> / Ada Host <ada@host.example>",
    ] {
        assert!(out.stdout.contains(shown), "`{shown}` in {out:?}");
    }
    assert!(!out.stdout.contains("HOST-ONLY-51d0"), "{out:?}");
    // In the bottle they are untracked still: nothing was committed for them.
    let status = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("status="))
        .unwrap();
    for file in ["?? untracked.txt", "?? notes/", "?? outside"] {
        assert!(status.contains(file), "`{file}` in {status}");
    }
    assert_eq!(host_state(dir).1, before.1, "the index file changed");
    assert_eq!(host_state(dir).0, before.0, "git status changed");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn on_a_detached_head_the_bottle_is_detached_too_and_branches_come_home() {
    let Some(docker) = with_fake_claude("cwd detached").await else {
        return;
    };
    let label = run_label("cwd-detached");
    let script = "cd /workspace && echo head=$(git rev-parse --abbrev-ref HEAD) $(git rev-parse HEAD) \
        && git switch -qc from-detached && git commit -q --allow-empty -m on-it \
        && echo tip=$(git rev-parse HEAD)";
    let sandbox = script_bottle(&label, script);
    repository(&sandbox.cwd);
    git(&sandbox.cwd, &["commit", "-qam", "second"]);
    git(&sandbox.cwd, &["checkout", "-q", "--detach", "HEAD~1"]);
    // A commit made detached is on no branch or tag: HEAD must go in too.
    git(
        &sandbox.cwd,
        &["commit", "-q", "--allow-empty", "-m", "detached only"],
    );
    let first = git(&sandbox.cwd, &["rev-parse", "HEAD"]);

    let plan = sandbox
        .run(&["start", "a", "--cwd", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["cwd_branch"], serde_json::Value::Null, "{plan}");
    assert!(
        plan["warnings"].to_string().contains("HEAD is detached"),
        "{plan}"
    );
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("a detached HEAD"), "{out:?}");
    assert!(
        out.stdout.contains(&format!("head=HEAD {first}")),
        "{out:?}"
    );
    let tip = value_of(&out.stdout, "tip");
    let home = format!("claude-bottle/{}/from-detached", instance_of(&out.stderr));
    assert_eq!(git(&sandbox.cwd, &["rev-parse", &home]), tip);
    assert!(
        out.stderr.contains(&format!("git log -p {home}")),
        "{out:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn commits_that_cannot_come_home_are_named_and_on_a_terminal_the_bottle_waits() {
    let Some(docker) = with_fake_claude("cwd not home").await else {
        return;
    };
    let label = run_label("cwd-not-home");
    let script = "cd /workspace && git switch -qc stuck && git commit -q --allow-empty -m stuck \
        && echo stuck=$(git rev-parse HEAD)";
    let sandbox = script_bottle(&label, script);
    repository(&sandbox.cwd);
    // A branch named `claude-bottle` leaves no room for claude-bottle/…
    git(&sandbox.cwd, &["branch", "claude-bottle"]);
    let refs = || {
        git(
            &sandbox.cwd,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
    };
    let before = refs();

    // Without a terminal: an error that names what is lost.
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    let stuck = value_of(&out.stdout, "stuck");
    assert!(
        out.stderr
            .contains(&format!("not home: stuck at {}", &stuck[..12])),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("a branch named `claude-bottle`"),
        "{out:?}"
    );
    assert_eq!(refs(), before, "the host's refs moved");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    // On a terminal: asked, the bottle stays up, and the fetch is tried
    // again once the user has made room.
    let terminal = Terminal::start(&sandbox, &["start", "a", "--cwd", "--yes"]);
    terminal.wait_for("Tear the bottle down and lose them?");
    terminal.type_text("n\n");
    let deadline = Instant::now() + Duration::from_secs(40);
    while terminal.screen().matches("Tear the bottle down").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "never asked again:\n{}",
            terminal.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !leftovers(&docker, &label).await.0.is_empty(),
        "the bottle is up while the user decides"
    );
    git(
        &sandbox.cwd,
        &["branch", "-m", "claude-bottle", "old-claude-bottle"],
    );
    terminal.type_text("n\n");
    let shown = String::from_utf8_lossy(&terminal.output()).into_owned();
    assert_eq!(terminal.exit_status(), 0, "{shown}");
    let home = git(
        &sandbox.cwd,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads/claude-bottle/",
        ],
    );
    let stuck = value_of(&shown, "stuck");
    assert!(home.contains(&format!("/stuck {stuck}")), "{home}");
    assert!(shown.contains("came home: claude-bottle/"), "{shown}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_commit_real_claude_code_makes_in_the_workspace_comes_home() {
    let Some(docker) = with_real_claude("cwd real claude").await else {
        return;
    };
    let label = run_label("cwd-real");
    let command = "cd /workspace && git commit -qam 'made by claude 9c1' && git log -1 --format=%s";
    let script = json!([
        { "tool_use": { "name": "Bash", "input": { "command": command, "description": "commit" } } },
        { "text": "committed" }
    ]);
    let (sandbox, _mock, _world) = crate::support::real_claude(
        &docker,
        &label,
        &script,
        &json!({ "ANTHROPIC_API_KEY": "sk-ant-test-key-not-secret-31" }),
    )
    .await;
    repository(&sandbox.cwd);
    let main_before = git(&sandbox.cwd, &["rev-parse", "main"]);
    let out = sandbox.run(&[
        "start",
        "a",
        "--cwd",
        "--yes",
        "--",
        "-p",
        "commit the change",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "committed", "{out:?}");
    let home = format!("claude-bottle/{}/main", instance_of(&out.stderr));
    assert_eq!(
        git(&sandbox.cwd, &["log", "-1", "--format=%s", &home]),
        "made by claude 9c1"
    );
    assert_eq!(
        git(&sandbox.cwd, &["rev-parse", &format!("{home}~1")]),
        main_before
    );
    // The uncommitted change the bottle got is what claude committed.
    assert_eq!(
        git(&sandbox.cwd, &["show", &format!("{home}:a.txt")]),
        "one\nchanged on the host"
    );
    assert_eq!(git(&sandbox.cwd, &["rev-parse", "main"]), main_before);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// What a fake claude prints of the bottle's repository: whether `git fsck`
/// passes, its pack files, and every object in it.
const OBJECTS_SCRIPT: &str = "cd /workspace && git fsck --full --no-dangling 2>&1; echo fsck=$?; \
    echo packs=$(ls .git/objects/pack | tr '\\n' ' '); \
    git cat-file --batch-all-objects --batch-check='object %(objectname)'";

/// The objects in the bottle, from what `OBJECTS_SCRIPT` printed.
fn bottle_objects(stdout: &str) -> Vec<String> {
    let mut ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("object "))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

/// Every object the host's branches, tags and HEAD reach.
fn reachable(dir: &Path) -> Vec<String> {
    let all = git(
        dir,
        &["rev-list", "--objects", "--branches", "--tags", "HEAD"],
    );
    let mut ids: Vec<String> = all.lines().map(|l| l[..40].to_owned()).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn what_was_never_committed_or_was_dropped_stays_on_the_host() {
    let Some(docker) = with_fake_claude("cwd unreachable").await else {
        return;
    };
    let label = run_label("cwd-unreachable");
    let sandbox = script_bottle(&label, OBJECTS_SCRIPT);
    let dir = &sandbox.cwd;
    // A staged change (its blob is in no commit), a branch that is packed
    // and then deleted, a tag, and a blob written but never added.
    repository(dir);
    git(dir, &["checkout", "-qb", "dropped"]);
    std::fs::write(dir.join("c.txt"), "dropped-5e\n").unwrap();
    git(dir, &["add", "c.txt"]);
    git(dir, &["commit", "-qm", "dropped", "c.txt"]);
    let dropped = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["tag", "-a", "v1", "-m", "a tag"]);
    git(dir, &["repack", "-adq"]);
    git(dir, &["branch", "-qD", "dropped"]);
    let staged = git(dir, &["rev-parse", ":b.txt"]);
    std::fs::write(dir.join("never.txt"), "never committed 41\n").unwrap();
    let never = git(dir, &["hash-object", "-w", "never.txt"]);
    std::fs::remove_file(dir.join("never.txt")).unwrap();
    let before = host_state(dir);

    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(value_of(&out.stdout, "fsck"), "0", "{out:?}");
    let inside = bottle_objects(&out.stdout);
    assert_eq!(
        inside,
        reachable(dir),
        "the bottle holds exactly what is reachable"
    );
    for (what, id) in [
        ("dropped", &dropped),
        ("staged", &staged),
        ("never", &never),
    ] {
        assert!(!inside.contains(id), "the {what} object went in");
    }
    assert_eq!(host_state(dir), before, "the host repository changed");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn packs_that_hold_only_reachable_objects_go_in_as_they_are() {
    let Some(docker) = with_fake_claude("cwd packs").await else {
        return;
    };
    let label = run_label("cwd-packs");
    let sandbox = script_bottle(&label, OBJECTS_SCRIPT);
    let dir = &sandbox.cwd;
    repository(dir);
    git(dir, &["commit", "-qam", "second"]);
    git(dir, &["repack", "-adq"]);
    std::fs::write(dir.join("a.txt"), "third\n").unwrap();
    git(dir, &["commit", "-qam", "third, loose"]);
    let packs = std::fs::read_dir(dir.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            let kind = Path::new(n).extension().and_then(|e| e.to_str());
            matches!(kind, Some("idx" | "pack"))
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(packs.len(), 2, "{packs:?}");

    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(value_of(&out.stdout, "fsck"), "0", "{out:?}");
    // The host's own pack, by name (a pack is named by its content), and
    // nothing else packed: the loose commit went in as it was too.
    let inside: std::collections::BTreeSet<String> = value_of(&out.stdout, "packs")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(inside, packs, "{out:?}");
    assert_eq!(bottle_objects(&out.stdout), reachable(dir));
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_workspace_that_fills_as_the_repository_streams_in_fails_clearly_and_leaves_nothing() {
    let Some(docker) = with_fake_claude("cwd workspace full").await else {
        return;
    };
    let label = run_label("cwd-full");
    // An image without /workspace gets one in memory, half of 96 MiB.
    let sandbox = script_bottle(&label, "echo claude-ran")
        .env("CLAUDE_BOTTLE_IMAGE", "claude-bottle-test/no-workspace")
        .env("CLAUDE_BOTTLE_MEMORY", "96m");
    let dir = &sandbox.cwd;
    repository(dir);
    let mut blob = vec![0u8; 64 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for byte in &mut blob {
        // Noise, so nothing compresses it below the space there is.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state.to_le_bytes()[0];
    }
    std::fs::write(dir.join("big.bin"), &blob).unwrap();
    git(dir, &["add", "big.bin"]);
    git(dir, &["commit", "-qm", "64 MiB", "big.bin"]);
    let before = host_state(dir);

    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    assert!(
        out.stderr.contains("/workspace is full") && out.stderr.contains("CLAUDE_BOTTLE_MEMORY"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("claude-ran"), "claude ran: {out:?}");
    assert_eq!(host_state(dir), before, "the host repository changed");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert!(sandbox.stage_dirs().is_empty(), "the stage was left");
}
