//! `init` and `edit` change a manifest's text in place: what is there stays
//! byte for byte, the new entries load, and a failed edit writes nothing.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Sandbox, Terminal};

/// Whether `after` is `before` with text inserted in one place only.
fn only_inserted(before: &str, after: &str) -> bool {
    let prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = before
        .bytes()
        .rev()
        .zip(after.bytes().rev())
        .take_while(|(a, b)| a == b)
        .count();
    after.len() > before.len() && prefix + suffix >= before.len()
}

fn manifest(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.cwd.join("claude-bottle.json")).unwrap()
}

#[test]
fn init_from_flags_creates_a_manifest_that_starts() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "init",
        "--agent",
        "rev",
        "--allow",
        "github.com",
        "--prompt",
        "You review.",
        "--default",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("`claude-bottle start rev`"), "{out:?}");
    let plan = sandbox
        .run(&["start", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["agent"], "rev", "the default agent: {plan}");
    assert_eq!(plan["bottle"], "dev", "{plan}");
    assert!(
        plan["egress"]["allowlist"]
            .to_string()
            .contains("github.com"),
        "{plan}"
    );
    assert_eq!(plan["prompt"]["first_line"], "You review.", "{plan}");
    // A new manifest names the schema, written beside it.
    assert!(
        manifest(&sandbox).starts_with("{\n  \"$schema\": \"./claude-bottle.schema.json\",\n"),
        "{}",
        manifest(&sandbox)
    );
    let schema = std::fs::read_to_string(sandbox.cwd.join("claude-bottle.schema.json")).unwrap();
    assert_eq!(schema, sandbox.run(&["schema"]).stdout);
}

#[test]
fn init_adds_to_an_existing_manifest_without_touching_what_is_there() {
    let sandbox = Sandbox::new();
    let before = "{\n\t\"agents\": {\n\t\t\"z-last\":   {\"bottle\": \"web\", \"prompt\": \"keep \\u00e9 as written\"}\n\t},\n\t\"bottles\": {\"web\": {\"egress\": {\"allowlist\": [\"example.org\"]}}}\n}\n";
    sandbox.cwd_manifest(before);
    let out = sandbox.run(&["init", "--agent", "a-first", "--bottle", "web"]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = manifest(&sandbox);
    assert!(only_inserted(before, &after), "{before}\n---\n{after}");
    assert!(
        after.contains("\t\t\"a-first\": {"),
        "the file's own tabs: {after}"
    );
    let plan = sandbox
        .run(&["start", "a-first", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["bottle"], "web");

    // A new bottle goes in too, after the last one.
    let before = after;
    let out = sandbox.run(&[
        "init",
        "--agent",
        "b",
        "--bottle",
        "new",
        "--allow",
        "*.example.net",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = manifest(&sandbox);
    assert!(
        after.starts_with(&before[..before.find("\n\t},").unwrap()]),
        "{after}"
    );
    assert!(after.contains("\"*.example.net\""), "{after}");

    // What cannot be added leaves the file as it was.
    for (args, expected) in [
        (
            &["init", "--agent", "b"][..],
            "already has an agent named `b`",
        ),
        (
            &[
                "init", "--agent", "c", "--bottle", "web", "--allow", "x.org",
            ][..],
            "exists already",
        ),
        (
            &["init", "--agent", "d", "--allow", "not a host"][..],
            "not a host",
        ),
    ] {
        let out = sandbox.run(args);
        assert_eq!(out.code, 125, "{args:?}: {out:?}");
        assert!(out.stderr.contains(expected), "`{expected}`: {out:?}");
        assert_eq!(manifest(&sandbox), after, "{args:?} changed the file");
    }
    let out = sandbox.run(&["init"]);
    assert_eq!(out.code, 2, "no terminal, no --agent: {out:?}");
}

#[test]
fn init_keeps_one_default_a_linked_manifest_and_adds_missing_objects() {
    let sandbox = Sandbox::new();
    // The manifest is a link into a dotfiles folder: it stays one.
    let dotfiles = sandbox.home.join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::write(
        dotfiles.join("cb.json"),
        r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev", "default": true}}}"#,
    )
    .unwrap();
    let link = sandbox.cwd.join("claude-bottle.json");
    std::os::unix::fs::symlink(dotfiles.join("cb.json"), &link).unwrap();
    let out = sandbox.run(&["init", "--agent", "b", "--default"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("`a` is marked \"default\": true already"),
        "{out:?}"
    );
    let out = sandbox.run(&["init", "--agent", "b"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    let target = std::fs::read_to_string(dotfiles.join("cb.json")).unwrap();
    assert!(target.contains(r#""b": {"bottle":"dev"}"#), "{target}");
    // A file with neither map gets both.
    let bare = Sandbox::new();
    bare.cwd_manifest("{}\n");
    let out = bare.run(&["init", "--agent", "solo"]);
    assert_eq!(out.code, 0, "{out:?}");
    let plan = bare.run(&["start", "--dry-run", "--format", "json"]).json();
    assert_eq!(plan["agent"], "solo", "{plan}");
}

#[test]
fn init_asks_on_a_terminal() {
    let sandbox = Sandbox::new();
    let terminal = Terminal::start(&sandbox, &["init"]);
    terminal.wait_for("Agent name [claude]:");
    terminal.type_text("pty-agent\n");
    terminal.wait_for("Bottle [dev]:");
    terminal.type_text("\n");
    terminal.wait_for("Hosts it may reach");
    terminal.type_text("example.org docs.example.org\n");
    terminal.wait_for("Its prompt");
    terminal.type_text("Be brief.\n");
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    let plan = sandbox
        .run(&["start", "pty-agent", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["bottle"], "dev", "{plan}");
    assert_eq!(plan["prompt"]["first_line"], "Be brief.", "{plan}");
    let allowlist = plan["egress"]["allowlist"].to_string();
    assert!(
        allowlist.contains("\"example.org\"") && allowlist.contains("docs.example.org"),
        "{plan}"
    );
}

/// An `EDITOR` that runs `script` on the file it is given (`$1`).
fn editor(sandbox: &Sandbox, name: &str, script: &str) -> String {
    let path = sandbox.home.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `claude-bottle ARGS` with `env` set; its exit code and stderr.
fn run_with(sandbox: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut command = sandbox.command(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn edit_changes_only_the_prompt_and_a_failed_edit_writes_nothing() {
    let sandbox = Sandbox::new();
    let before = r#"{"bottles": {"dev": {}},   "agents": {"a": {"bottle": "dev", "prompt": "old prompt"}, "b": {"bottle": "dev"}}}"#;
    sandbox.cwd_manifest(before);
    let append = editor(
        &sandbox,
        "append",
        "test \"$(cat \"$1\")\" = 'old prompt' && printf 'new \"prompt\"\\nline 2' >\"$1\"",
    );
    let (code, said) = run_with(&sandbox, &[("EDITOR", &append)], &["edit", "a"]);
    assert_eq!(code, 0, "{said}");
    let after = manifest(&sandbox);
    assert_eq!(
        after,
        before.replace("\"old prompt\"", r#""new \"prompt\"\nline 2""#)
    );
    // An agent without a prompt gets one, and `VISUAL` comes first.
    let set = editor(&sandbox, "set", "printf 'for b' >\"$1\"");
    let (code, said) = run_with(
        &sandbox,
        &[("VISUAL", &set), ("EDITOR", "false")],
        &["edit", "b"],
    );
    assert_eq!(code, 0, "{said}");
    let after = manifest(&sandbox);
    assert!(
        after.contains(r#""b": {"bottle": "dev", "prompt": "for b"}"#),
        "{after}"
    );

    for (script, expected) in [
        ("printf 'lost' >\"$1\"; exit 3", "failed"),
        ("printf '\\377\\376' >\"$1\"", "not UTF-8"),
        (
            &format!(
                "printf 'x' >\"$1\"; printf ' ' >>'{}'",
                sandbox.cwd.join("claude-bottle.json").display()
            ),
            "changed while",
        ),
    ] {
        let before = manifest(&sandbox);
        let bad = editor(&sandbox, "bad", script);
        let (code, said) = run_with(&sandbox, &[("EDITOR", &bad)], &["edit", "a"]);
        assert_eq!(code, 125, "{script}: {said}");
        assert!(said.contains(expected), "`{expected}`: {said}");
        if expected != "changed while" {
            assert_eq!(manifest(&sandbox), before, "{script} changed the file");
        }
    }
    let none = sandbox.run(&["edit", "a"]);
    assert_eq!(none.code, 125, "{none:?}");
    assert!(none.stderr.contains("set VISUAL or EDITOR"), "{none:?}");
}
