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

/// The words after `claude-bottle ` where a text names a command: in
/// backticks (hints, errors) or indented at the start of a line (help
/// examples, in doc comments or in `--help`).
fn named_commands(text: &str) -> Vec<String> {
    let word = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect()
    };
    let mut named = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let doc = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"));
        let example = match doc {
            Some(doc) => doc.strip_prefix("  ").map(str::trim_start),
            None => line.strip_prefix("  ").map(str::trim_start),
        };
        if let Some(rest) = example.and_then(|e| e.strip_prefix("claude-bottle ")) {
            named.push(word(rest));
        }
        let mut rest = line;
        while let Some(at) = rest.find("`claude-bottle ") {
            rest = &rest[at + "`claude-bottle ".len()..];
            named.push(word(rest));
        }
    }
    named.retain(|w| !w.is_empty());
    named
}

fn rust_sources(dir: &std::path::Path, into: &mut Vec<(std::path::PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn every_command_a_hint_or_help_text_names_exists() {
    // The scan sees the forms commands are named in, and not prose.
    assert_eq!(
        named_commands(
            "help: run `claude-bottle init` first\n    ///   claude-bottle edit a\n    /// claude-bottle exits with"
        ),
        ["init", "edit"]
    );
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["--help"]);
    let commands: Vec<String> = help
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(commands.contains(&"start".to_owned()), "{help:?}");
    let mut texts = Vec::new();
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["claude-bottle", "bottle", "egress-gate"] {
        rust_sources(&crates.join(krate).join("src"), &mut texts);
    }
    for command in &commands {
        let out = sandbox.run(&[command, "--help"]);
        texts.push((format!("{command} --help").into(), out.stdout));
    }
    let mut checked = 0;
    for (from, text) in &texts {
        for word in named_commands(text) {
            assert!(
                commands.contains(&word) || word == "help",
                "{} names `claude-bottle {word}`, which is not a command ({commands:?})",
                from.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "only {checked} commands named: the scan finds nothing"
    );
}

#[test]
fn schema_prints_the_schema_kept_in_the_repository() {
    let out = Sandbox::new().run(&["schema"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        include_str!("../../../../schema/claude-bottle.schema.json")
    );
}
