//! The y/N question and the secret prompt, on a real pseudo-terminal
//! answered only once the question is on screen.

use crate::support::{
    FAKE_CLAUDE_IMAGE, Sandbox, TEST_LABEL, Terminal, connect, run_label, with_fake_claude,
};

const MANIFEST: &str = r#"{
  "bottles": { "dev": { "env": { "PASS": "?the password" } } },
  "agents": { "a": { "bottle": "dev" } }
}"#;

/// Runs `claude-bottle ARGS` on a terminal; for each (wait_for, answer)
/// waits until the screen shows `wait_for`, then types `answer`. The exit
/// code and every byte the terminal received.
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], dialogue: &[(&str, &str)]) -> (i32, String) {
    let terminal = Terminal::start(sandbox, args);
    for (wait_for, answer) in dialogue {
        terminal.wait_for(wait_for);
        terminal.type_text(answer);
    }
    let output = String::from_utf8_lossy(&terminal.output()).into_owned();
    (terminal.exit_status(), output)
}

#[tokio::test]
async fn anything_but_yes_aborts_and_creates_nothing() {
    if connect("y/N on a terminal").await.is_none() {
        return;
    }
    let sandbox = Sandbox::with_manifest(MANIFEST);
    let (code, screen) = on_a_terminal(&sandbox, &["start", "a"], &[("[y/N]", "n\n")]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("aborted by user"), "{screen}");
    assert!(
        !screen.contains("the password"),
        "asked for a secret after no:\n{screen}"
    );
    assert!(
        sandbox.stage_dirs().is_empty(),
        "an aborted start left its stage"
    );
}

#[tokio::test]
async fn after_yes_secrets_are_asked_with_echo_off() {
    if with_fake_claude("secret prompt on a terminal")
        .await
        .is_none()
    {
        return;
    }
    let typed = "typed-secret-91b3";
    let sandbox = Sandbox::with_manifest(MANIFEST)
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={}", run_label("terminal")),
        );
    let (code, screen) = on_a_terminal(
        &sandbox,
        &["start", "a"],
        &[
            ("[y/N]", "yes\n"),
            ("the password (PASS): ", &format!("{typed}\n")),
        ],
    );
    assert_eq!(code, 0, "{screen}");
    // The value reached claude (whose report prints its environment)...
    let report = &fixtures::report::frames(&screen, "report")[0];
    assert_eq!(report["env"]["PASS"], typed);
    assert_eq!(
        report["tty"]["stdout"], true,
        "claude gets a TTY on a terminal"
    );
    // ...and was never echoed while it was typed.
    let before_claude = &screen[..screen.find("@@fixture:report").unwrap()];
    crate::secrets::assert_never_shown(before_claude, &[typed]);
}
