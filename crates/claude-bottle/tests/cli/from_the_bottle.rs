//! What comes out of a bottle is the agent's word: its branch names, its
//! bundle (even when a process of its own writes it), its stderr. Each
//! test drives a hostile agent in a bottle with `--cwd`, its script
//! committed in the repository it gets, and checks what reaches the
//! user's repository and terminal.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Sandbox, Session, fake_claude_bottle, instance_of, leftovers, run_label, wait_for_instance,
    with_fake_claude,
};

use super::cwd::{git, repository};

/// A bottle whose fake claude runs `attack.sh` from its workspace, with
/// `env` besides; `script` is committed in the host's repository as
/// `attack.sh`, with `files` beside it.
fn attacked(label: &str, script: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Sandbox {
    let mut bottle_env = json!({ "FAKE_CLAUDE_RUN": "sh /workspace/attack.sh" });
    for (name, value) in env {
        bottle_env[*name] = json!(value);
    }
    let sandbox = fake_claude_bottle(
        label,
        &json!({ "env": bottle_env, "egress": { "builtin": false } }),
    );
    repository(&sandbox.cwd);
    std::fs::write(sandbox.cwd.join("attack.sh"), script).unwrap();
    let mut added = vec!["attack.sh"];
    for (name, text) in files {
        std::fs::write(sandbox.cwd.join(name), text).unwrap();
        added.push(name);
    }
    let mut args = vec!["add"];
    args.extend(&added);
    git(&sandbox.cwd, &args);
    git(&sandbox.cwd, &["commit", "-q", "-m", "the agent's script"]);
    sandbox
}

/// The host's refs, and whether `git fsck` finds it sound.
fn refs_and_fsck(dir: &Path) -> (String, String) {
    (
        git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"]),
        git(dir, &["fsck", "--no-dangling", "--no-progress"]),
    )
}

/// Neither a raw escape nor a raw C1 control reached the user.
#[track_caller]
fn nothing_raw(text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c == '\x1b' || ('\u{80}'..='\u{9f}').contains(&c)),
        "a raw control reached the terminal: {text:?}"
    );
}

#[tokio::test]
async fn only_branches_with_plain_names_come_home_and_the_commands_shown_are_quoted() {
    let Some(docker) = with_fake_claude("branch names").await else {
        return;
    };
    let label = run_label("branch-names");
    // A shell command, a bidi override, a C1 control, and a plain name.
    let script = "cd /workspace\n\
        for b in 'fix;touch${IFS}$HOME/PWNED' \"$(printf 'a\\342\\200\\256b')\" \
        \"$(printf 'c\\302\\205d')\" done/plain-1; do\n\
          git checkout -q -b \"$b\" main && git commit -q --allow-empty -m \"on $b\" || echo \"no branch $b\"\n\
        done\n";
    let sandbox = attacked(&label, script, &[], &[]);
    // The user's own branch has a name a shell would act on.
    git(&sandbox.cwd, &["checkout", "-q", "-b", "dev$(id)"]);
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("no branch"), "{out:?}");
    let instance = instance_of(&out.stderr);
    let home = format!("claude-bottle/{instance}/done/plain-1");
    let came = git(&sandbox.cwd, &["for-each-ref", "--format=%(refname:short)"]);
    let arrived: Vec<&str> = came
        .lines()
        .filter(|r| r.starts_with("claude-bottle/"))
        .collect();
    assert_eq!(arrived, [home.as_str()], "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "came home: {home} (git log -p 'dev$(id)..{home}')"
        )),
        "{out:?}"
    );
    for shown in [
        "not home: the branch `fix;touch${IFS}$HOME/PWNED`: its name holds characters",
        "not home: the branch `a\\u{202e}b`:",
        "not home: the branch `c\\u{85}d`:",
    ] {
        assert!(out.stderr.contains(shown), "{shown}: {out:?}");
    }
    assert!(
        out.stderr.contains("review them with `git log -p`"),
        "{out:?}"
    );
    nothing_raw(&out.stderr);
    assert!(!sandbox.home.join("PWNED").exists());
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_bundle_with_a_hostile_gitmodules_or_past_its_cap_is_refused_and_nothing_changes() {
    let Some(docker) = with_fake_claude("hostile bundle").await else {
        return;
    };
    let label = run_label("hostile-bundle");
    // A submodule whose URL is an option to git: fsck's gitmodulesUrl.
    let gitmodules = "cd /workspace && git checkout -q -b sub && printf '%s\\n' \
        '[submodule \"x\"]' '\tpath = x' '\turl = --upload-pack=touch${IFS}/tmp/pwned' >.gitmodules \
        && git add .gitmodules && git commit -q -m sub\n";
    let sandbox = attacked(&label, gitmodules, &[], &[]);
    let before = refs_and_fsck(&sandbox.cwd);
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("gitmodulesUrl"), "{out:?}");
    assert!(
        out.stderr.contains("the agent's commits did not come home"),
        "{out:?}"
    );
    assert_eq!(refs_and_fsck(&sandbox.cwd), before);

    // Past the cap: 256 KiB of commits against a cap of 64 KiB.
    let big = "cd /workspace && git checkout -q -b big && head -c 262144 /dev/urandom >big.bin \
        && git add big.bin && git commit -q -m big\n";
    let sandbox = attacked(&label, big, &[], &[]).env("CLAUDE_BOTTLE_BUNDLE_MAX", "64k");
    let before = refs_and_fsck(&sandbox.cwd);
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("more than the 65536 bytes allowed"),
        "{out:?}"
    );
    assert_eq!(refs_and_fsck(&sandbox.cwd), before);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// A script that runs `setup` in the workspace, then leaves behind a
/// process that catches the exec bundling the agent's branches: git there
/// blocks opening the object store's `alternates`, made a named pipe (so
/// nothing of git runs here after `setup`), until `release` is run; `$p`
/// is the bundling shell's pid. `act` runs then, once per bundle.
fn catching(setup: &str, act: &str) -> String {
    format!(
        "cd /workspace\n\
         {setup}\n\
         mkdir -p .git/objects/info && mkfifo .git/objects/info/alternates\n\
         (while :; do\n\
           for d in /proc/[0-9]*; do\n\
             grep -q 'bundle create -q - --branche[s]' $d/cmdline 2>/dev/null || continue\n\
             p=${{d#/proc/}}\n\
             release() {{ : >/workspace/.git/objects/info/alternates; }}\n\
             {act}\n\
             sleep 1\n\
           done\n\
           sleep 0.05\n\
         done) >/dev/null 2>&1 &\n"
    )
}

#[tokio::test]
async fn a_bundle_the_agent_writes_through_proc_is_checked_as_its_own() {
    let Some(docker) = with_fake_claude("bundle through proc").await else {
        return;
    };
    let label = run_label("bundle-proc");
    // The agent's own bundle, its ref renamed to a tag with escapes in it,
    // written in place of what the exec would have written (it has no new
    // commits, so it writes nothing and exits 0).
    let forge = "git tag v1 main && git bundle create /tmp/forged.bundle refs/tags/v1 \
        && perl -pi -e 's{refs/tags/v1}{refs/tags/\\e]52;c;cHduZWQ=\\a\\e[2J}' /tmp/forged.bundle";
    let act = "cat /tmp/forged.bundle >/proc/$p/fd/1; release";
    let script = catching(forge, act);
    let sandbox = attacked(&label, &script, &[], &[]);
    let before = refs_and_fsck(&sandbox.cwd);
    let out = sandbox.run(&["start", "a", "--cwd", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("`refs/tags/\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J` is not a branch"),
        "{out:?}"
    );
    nothing_raw(&out.stderr);
    assert_eq!(refs_and_fsck(&sandbox.cwd), before);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_bundle_exec_whose_pipe_the_agent_holds_open_ends_the_session_all_the_same() {
    let Some(docker) = with_fake_claude("held pipe").await else {
        return;
    };
    let label = run_label("held-pipe");
    let act = "sleep 3600 >/proc/$p/fd/1 & release";
    let script = catching(
        "git checkout -q -b held && git commit -q --allow-empty -m held",
        act,
    );
    let sandbox = attacked(&label, &script, &[], &[]);
    let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut session = session;
    let out = loop {
        if let Some(_status) = session.child.try_wait().unwrap() {
            break session.wait();
        }
        assert!(
            Instant::now() < deadline,
            "the session's end waited on the held pipe: {:?}",
            session.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out.code, 0, "{out:?}");
    let instance = instance_of(&out.stderr);
    assert!(
        out.stderr
            .contains(&format!("came home: claude-bottle/{instance}/held")),
        "{out:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn what_a_failing_bundle_says_is_shown_escaped_at_the_end_and_by_fetch() {
    let Some(docker) = with_fake_claude("bundle stderr").await else {
        return;
    };
    let label = run_label("bundle-stderr");
    // The clipboard, a cleared screen and a question of the agent's own,
    // then the bundle fails.
    let act = "printf '\\033]52;c;cHduZWQ=\\007\\033[2J\\033[HTear it down? [y/N]' >/proc/$p/fd/2; \
        kill -9 $p; release";
    let script = catching(
        "git checkout -q -b work && git commit -q --allow-empty -m work",
        act,
    );
    let sandbox = attacked(&label, &script, &[], &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
    let instance = wait_for_instance(&session).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let fetched = loop {
        let fetched = sandbox.run(&["fetch", &instance]);
        // Until the agent's process is in place: before, a fetch may find
        // no repository yet, or bundle as usual.
        if fetched.stderr.contains("cHduZWQ=") || Instant::now() > deadline {
            break fetched;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(fetched.code, 125, "{fetched:?}");
    assert!(
        fetched
            .stderr
            .contains("\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b[HTear it down? [y/N]"),
        "{fetched:?}"
    );
    nothing_raw(&fetched.stderr);
    let out = session.finish("");
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("\\x1b]52;c;cHduZWQ="), "{out:?}");
    nothing_raw(&out.stderr);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
