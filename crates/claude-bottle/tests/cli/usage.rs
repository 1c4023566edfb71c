//! Flags, help and exit codes.

use crate::support::{SIMPLE, Sandbox};

#[test]
fn json_without_dry_run_is_a_usage_error() {
    let out = Sandbox::with_manifest(SIMPLE).run(&["start", "a", "--format", "json"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--format json needs --dry-run"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = Sandbox::with_manifest(SIMPLE).run(&["start", "a", "--frobnicate"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_start_refuses() {
    if crate::support::connect("start without --yes")
        .await
        .is_none()
    {
        return;
    }
    let out = Sandbox::with_manifest(SIMPLE).run(&["start", "a"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("there is no terminal to ask"),
        "{out:?}"
    );
    assert!(out.stderr.contains("pass --yes"), "{out:?}");
}

#[test]
fn version_and_help() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["--version"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout.trim(),
        format!("claude-bottle {}", env!("CARGO_PKG_VERSION"))
    );
    let out = sandbox.run(&["start", "--help"]);
    assert_eq!(out.code, 0);
    for flag in [
        "--cwd",
        "--dry-run",
        "--format",
        "--remote-control",
        "--yes",
        "CLAUDE_ARGS",
    ] {
        assert!(
            out.stdout.contains(flag),
            "{flag} missing from\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("CLAUDE_BOTTLE_DRY_RUN"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unknown_backend_lists_the_known_ones() {
    let out = Sandbox::with_manifest(SIMPLE)
        .env("CLAUDE_BOTTLE_BACKEND", "podman")
        .run(&["start", "a", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("`podman`"), "{out:?}");
    assert!(out.stderr.contains("known backends: docker"), "{out:?}");
}

#[test]
fn an_unknown_agent_lists_the_defined_ones() {
    let out = Sandbox::with_manifest(SIMPLE).run(&["info", "b"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("no agent named `b`"), "{out:?}");
    assert!(out.stderr.contains("the agents defined are `a`"), "{out:?}");
}

#[test]
fn every_variable_the_program_reads_is_in_the_readme() {
    let readme = include_str!("../../../../README.md");
    for variable in bottle::settings::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", variable.name)),
            "README.md's table lacks {}",
            variable.name
        );
    }
}
