//! `start --dry-run` and `info`: the plan from real manifest files.

use crate::support::{SIMPLE, Sandbox};

#[test]
fn the_json_plan_of_a_two_file_manifest_shows_the_merge() {
    let sandbox = Sandbox::new();
    sandbox.home_manifest(
        r#"{
  "bottles": {
    "dev": { "egress": { "allowlist": ["home-only.example.com"] } },
    "tools": { "env": { "EDITOR_NAME": "vi" }, "egress": { "builtin": false, "allowlist": ["Tools.Example.com"] } }
  },
  "agents": { "reviewer": { "bottle": "tools", "prompt": "from home" } }
}"#,
    );
    sandbox.cwd_manifest(
        r#"{
  "bottles": { "dev": { "egress": { "allowlist": ["cwd.example.com:8443"] } } },
  "agents": { "reviewer": { "bottle": "dev", "prompt": "from cwd\nsecond line" } }
}"#,
    );
    let plan = sandbox
        .run(&["start", "reviewer", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["schema_version"], 1);
    assert_eq!(plan["backend"], "docker");
    assert_eq!(plan["agent"], "reviewer");
    assert_eq!(plan["bottle"], "dev");
    assert_eq!(plan["prompt"]["first_line"], "from cwd");
    assert_eq!(
        plan["egress"]["allowlist"],
        serde_json::json!([
            "api.anthropic.com",
            "claude.ai",
            "cwd.example.com:8443",
            "platform.claude.com"
        ])
    );
    let instance = plan["instance"].as_str().unwrap();
    assert!(
        instance.starts_with("claude-bottle-reviewer-"),
        "{instance}"
    );
    assert_eq!(plan["container"], format!("{instance}-agent"));
    for key in [
        "image",
        "runtime",
        "networks",
        "ssh",
        "skills",
        "env",
        "cwd",
        "remote_control",
        "oauth_token_forwarded",
    ] {
        assert!(plan.get(key).is_some(), "plan lacks `{key}`: {plan}");
    }
    assert!(sandbox.stage_dirs().is_empty(), "a dry run left its stage");
}

#[test]
fn the_environment_variable_makes_a_dry_run() {
    let out = Sandbox::with_manifest(SIMPLE)
        .env("CLAUDE_BOTTLE_DRY_RUN", "1")
        .run(&["start", "a", "--format", "json"]);
    assert_eq!(out.json()["agent"], "a");
}

#[test]
fn without_an_engine_a_dry_run_still_works_and_says_the_runtime_is_unknown() {
    let sandbox =
        Sandbox::with_manifest(SIMPLE).env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["runtime"], "unknown");
    let text = sandbox.run(&["start", "a", "--dry-run"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stderr.contains("runtime    unknown"), "{text:?}");
    assert!(
        text.stderr.contains("warning: no Docker engine answers"),
        "{text:?}"
    );

    let launch = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(launch.code, 125, "{launch:?}");
    assert!(
        launch.stderr.contains("no Docker engine answers"),
        "{launch:?}"
    );
    assert!(launch.stderr.contains("DOCKER_HOST"), "{launch:?}");
}

/// The variables, what the error says, what its hint says.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn an_engine_that_cannot_be_chosen_or_reached_is_named_with_what_to_do() {
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("config.json"),
        r#"{"currentContext": "laptop"}"#,
    )
    .unwrap();
    let config = config.path().to_str().unwrap().to_owned();
    let cases: [Case; 5] = [
        (
            &[("DOCKER_HOST", "localhost:2375")],
            "DOCKER_HOST is `localhost:2375`, which has no scheme",
            "write unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST",
        ),
        (
            &[
                ("DOCKER_HOST", "tcp://127.0.0.1:9"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/nonexistent"),
            ],
            "the engine at tcp://127.0.0.1:9 (TLS), from DOCKER_HOST is reached over TLS, but /nonexistent/ca.pem is missing",
            "put the engine's ca.pem",
        ),
        (
            &[("DOCKER_HOST", "tcp://127.0.0.1:9")],
            "no Docker engine answers at tcp://127.0.0.1:9, from DOCKER_HOST (Connection refused",
            "correct or unset DOCKER_HOST",
        ),
        (
            &[("DOCKER_HOST", ""), ("DOCKER_CONFIG", &config)],
            "the Docker context `laptop` that ",
            "`docker context ls` lists the contexts",
        ),
        (
            &[
                ("DOCKER_HOST", ""),
                ("DOCKER_CONTEXT", "gone"),
                ("DOCKER_CONFIG", &config),
            ],
            "the Docker context `gone` that DOCKER_CONTEXT names does not exist",
            "`docker context use NAME` picks one",
        ),
    ];
    for (vars, said, hint) in cases {
        // Whatever engine the suite runs on is not this test's.
        let mut sandbox = Sandbox::with_manifest(SIMPLE)
            .env("DOCKER_TLS_VERIFY", "")
            .env("DOCKER_CERT_PATH", "");
        for (name, value) in vars {
            sandbox = sandbox.env(name, value);
        }
        for args in [&["list"][..], &["start", "a", "--yes"]] {
            let out = sandbox.run(args);
            assert_eq!(out.code, 125, "{vars:?} {args:?}: {out:?}");
            assert!(out.stderr.contains(said), "{vars:?} {args:?}: {out:?}");
            assert!(out.stderr.contains(hint), "{vars:?} {args:?}: {out:?}");
            assert!(!out.stderr.contains("hyper"), "{out:?}");
        }
    }
}

const TWO_AGENTS: &str = r#"{
  "bottles": {
    "ok": { "env": { "NAME": "Ada" } },
    "keyed": { "ssh": [ { "Host": "gitea", "IdentityFile": "~/.ssh/missing_key" } ] }
  },
  "agents": {
    "good": { "bottle": "ok", "skills": ["present"], "prompt": "Be good." },
    "skill-less": { "bottle": "ok", "skills": ["absent"] },
    "keyless": { "bottle": "keyed" }
  }
}"#;

#[test]
fn one_agents_missing_skill_or_key_does_not_stop_another() {
    let sandbox = Sandbox::with_manifest(TWO_AGENTS);
    sandbox.skill("present");

    let info = sandbox.run(&["info", "good"]);
    assert_eq!(info.code, 0, "{info:?}");
    assert!(info.stdout.contains("skills     present"), "{info:?}");
    assert!(info.stdout.contains("Be good."), "{info:?}");
    let plan = sandbox
        .run(&["start", "good", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["skills"], serde_json::json!(["present"]));

    // `info` shows the broken agents too: it does not look at the host.
    assert_eq!(sandbox.run(&["info", "keyless"]).code, 0);

    let out = sandbox.run(&["start", "skill-less", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("skill `absent` of agent `skill-less`"),
        "{out:?}"
    );
    assert!(out.stderr.contains("claude-bottle.json:"), "{out:?}");

    let out = sandbox.run(&["start", "keyless", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("missing_key"), "{out:?}");
}

#[test]
fn cwd_requires_a_repository_and_the_plan_names_it() {
    let sandbox = Sandbox::with_manifest(SIMPLE);
    let out = sandbox.run(&["start", "a", "--cwd", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("not inside one"), "{out:?}");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "first",
        ],
    ] {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&sandbox.cwd)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    let plan = sandbox
        .run(&["start", "a", "--cwd", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["cwd"], true);
    assert_eq!(plan["cwd_repository"], sandbox.cwd.display().to_string());
    assert_eq!(plan["cwd_branch"], "main");
    // The manifest in the work tree is untracked, which is no change.
    assert_eq!(plan["cwd_uncommitted"], false);
}
