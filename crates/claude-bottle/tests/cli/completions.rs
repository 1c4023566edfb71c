//! `completions SHELL`: the scripts, run in the shells themselves.

use std::process::Command;

use crate::support::{BIN, SIMPLE, Sandbox};

const TWO_AGENTS: &str = r#"{
  "bottles": { "dev": {} },
  "agents": { "reviewer": { "bottle": "dev" }, "implementer": { "bottle": "dev" } }
}"#;

/// The script for `shell`, written where the sandbox's shell can source it.
fn script(sandbox: &Sandbox, shell: &str) -> std::path::PathBuf {
    let out = sandbox.run(&["completions", shell]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(BIN),
        "the script calls back this binary: {out:?}"
    );
    let path = sandbox.home.join(format!("completions.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Runs `code` in `shell` as the user would: in the sandbox's working
/// directory and home, nothing else of the caller's environment.
#[track_caller]
fn in_shell(sandbox: &Sandbox, shell: &str, args: &[&str], code: &str) -> String {
    let out = Command::new(shell)
        .args(args)
        .arg(code)
        .current_dir(&sandbox.cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &sandbox.home)
        .output()
        .unwrap_or_else(|err| panic!("{shell} runs (scripts/test installs it): {err}"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{shell} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What bash's completion function offers for `line` (the cursor at its end).
fn bash_completes(sandbox: &Sandbox, line: &str) -> Vec<String> {
    let script = script(sandbox, "bash");
    let code = format!(
        r#"source '{}'
line='{line}'
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="$line"; COMP_POINT=${{#line}}
spec=$(complete -p claude-bottle)
function=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<< "$spec")
"$function" claude-bottle "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display()
    );
    in_shell(sandbox, "bash", &["-c"], &code)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_commands_and_the_manifests_agent_names() {
    let sandbox = Sandbox::with_manifest(TWO_AGENTS);
    assert_eq!(bash_completes(&sandbox, "claude-bottle st"), ["start"]);
    // Hidden commands, run inside bottles only, are not offered.
    let commands = bash_completes(&sandbox, "claude-bottle ");
    for command in ["start", "list", "cleanup", "doctor", "completions", "info"] {
        assert!(
            commands.iter().any(|c| c == command),
            "{command}: {commands:?}"
        );
    }
    for hidden in ["gate", "ssh-relay", "connect"] {
        assert!(
            !commands.iter().any(|c| c == hidden),
            "{hidden}: {commands:?}"
        );
    }
    let after_start = bash_completes(&sandbox, "claude-bottle start ");
    assert!(
        after_start.starts_with(&["implementer".to_owned(), "reviewer".to_owned()]),
        "{after_start:?}"
    );
    assert_eq!(
        bash_completes(&sandbox, "claude-bottle info rev"),
        ["reviewer"]
    );
    assert_eq!(
        bash_completes(&sandbox, "claude-bottle start --dr"),
        ["--dry-run"]
    );
}

#[test]
fn agent_names_follow_the_manifest_of_the_directory_and_home() {
    let sandbox = Sandbox::new();
    // No manifest: no names, and no error in the user's shell.
    let none = bash_completes(&sandbox, "claude-bottle edit ");
    assert!(none.iter().all(|c| c.starts_with('-')), "{none:?}");
    sandbox.home_manifest(SIMPLE);
    assert_eq!(
        bash_completes(&sandbox, "claude-bottle edit "),
        ["a", "--help"]
    );
    // A broken manifest completes nothing rather than failing.
    sandbox.cwd_manifest("{ \"agents\": ");
    let broken = bash_completes(&sandbox, "claude-bottle start ");
    assert!(broken.iter().all(|c| c.starts_with('-')), "{broken:?}");
}

#[test]
fn the_zsh_script_parses_and_registers_in_zsh() {
    let sandbox = Sandbox::with_manifest(TWO_AGENTS);
    let script = script(&sandbox, "zsh");
    in_shell(&sandbox, "zsh", &["-n"], &script.display().to_string());
    let code = format!(
        "autoload -Uz compinit && compinit -u -D && source '{}' && print -r -- ${{_comps[claude-bottle]}}",
        script.display()
    );
    let registered = in_shell(&sandbox, "zsh", &["-f", "-c"], &code);
    assert!(
        !registered.trim().is_empty(),
        "no completion function registered"
    );
}

#[test]
fn fish_completes_commands_and_agent_names() {
    let sandbox = Sandbox::with_manifest(TWO_AGENTS);
    let script = script(&sandbox, "fish");
    let code = format!(
        "source '{}'; complete -C 'claude-bottle st'; echo ---; complete -C 'claude-bottle info '",
        script.display()
    );
    let out = in_shell(&sandbox, "fish", &["--no-config", "-c"], &code);
    let (commands, agents) = out.split_once("---\n").unwrap();
    let first_words = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(first_words(commands), ["start"], "{out}");
    let agents = first_words(agents);
    assert!(agents.contains(&"reviewer".to_owned()), "{out}");
    assert!(agents.contains(&"implementer".to_owned()), "{out}");
}
