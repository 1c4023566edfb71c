//! The y/N question and the secret prompt, on a real pseudo-terminal
//! (util-linux `script`), answered only once the question is on screen.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{BIN, Sandbox};

const MANIFEST: &str = r#"{
  "bottles": { "dev": { "env": { "PASS": "?the password" } } },
  "agents": { "a": { "bottle": "dev" } }
}"#;

/// Runs `claude-bottle ARGS` on a pty; for each (wait_for, answer) waits
/// until the screen shows `wait_for`, then types `answer`.
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], dialogue: &[(&str, &str)]) -> (i32, String) {
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let template = sandbox.command(&[]);
    let mut command = Command::new("script");
    command
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(&sandbox.cwd)
        .env_clear()
        .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("util-linux `script` runs");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    for (wait_for, answer) in dialogue {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !screen.lock().unwrap().contains(wait_for) {
            assert!(
                Instant::now() < deadline,
                "`{wait_for}` never showed; screen:\n{}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stdin.write_all(answer.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let screen = screen.lock().unwrap().clone();
    (status.code().unwrap_or(-1), screen)
}

#[tokio::test]
async fn anything_but_yes_aborts_and_creates_nothing() {
    if crate::engine::connect("y/N on a terminal").await.is_none() {
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
    if crate::engine::connect("secret prompt on a terminal")
        .await
        .is_none()
    {
        return;
    }
    let typed = "typed-secret-91b3";
    let sandbox = Sandbox::with_manifest(MANIFEST)
        .env("CLAUDE_BOTTLE_IMAGE", crate::fixture::FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!(
                "{}=terminal-{}",
                crate::fixture::TEST_LABEL,
                std::process::id()
            ),
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
