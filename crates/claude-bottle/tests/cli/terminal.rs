//! The y/N question and the secret prompt, on a real pseudo-terminal
//! answered only once the question is on screen.

use crate::phases::wait_paused;
use crate::support::{
    FAKE_CLAUDE_IMAGE, Sandbox, Session, TEST_LABEL, Terminal, connect, fake_claude_bottle,
    leftovers, run_label, with_fake_claude,
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

/// A start held at its gate for longer than half a second: a spinner
/// names the step on a terminal and is gone once claude runs; off a
/// terminal, nothing is printed for it.
#[tokio::test]
async fn a_start_that_takes_a_while_shows_its_step_on_a_terminal_and_nothing_off_one() {
    let Some(docker) = with_fake_claude("progress of a start").await else {
        return;
    };
    let label = run_label("progress");
    let sandbox =
        fake_claude_bottle(&label, &serde_json::json!({})).env("CLAUDE_BOTTLE_PAUSE_AT", "gate");
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    terminal.wait_for("paused at gate");
    terminal.wait_for("starting the bottle: the gate");
    terminal.signal("USR1");
    assert_eq!(terminal.exit_status(), 0);
    let screen = terminal.screen();
    assert!(
        !screen.contains("starting the bottle"),
        "the spinner outlived the start:\n{screen}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    wait_paused(&session, "gate").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    session.signal("USR1");
    let out = session.wait();
    assert_eq!(out.code, 0, "{out:?}");
    for spinner in ["starting the bottle", "removing the bottle"] {
        assert!(
            !out.stderr.contains(spinner),
            "{spinner} off a terminal: {out:?}"
        );
    }
}

/// An engine that takes the connection and never answers holds a start
/// for as long as its calls are given; on a terminal that wait is shown,
/// and then said in the error, over TCP as over a Unix socket.
#[test]
fn a_start_waiting_on_a_silent_engine_shows_the_wait_and_then_why() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept() {
            held.push(connection);
        }
    });
    let sandbox = Sandbox::with_manifest(MANIFEST)
        .env("DOCKER_HOST", &format!("tcp://{address}"))
        .env("CLAUDE_BOTTLE_ENGINE_TIMEOUT", "6");
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    terminal.wait_for("asking the engine");
    assert_eq!(terminal.exit_status(), 125);
    let screen = terminal.screen();
    assert!(
        screen.contains(&format!(
            "no Docker engine answers at tcp://{address}, from DOCKER_HOST (no answer within 6 s)"
        )),
        "{screen}"
    );
    assert!(
        !screen.contains("asking the engine"),
        "the spinner outlived the wait:\n{screen}"
    );

    // Off a terminal the wait is not drawn.
    let socket = sandbox.cwd.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept() {
            held.push(connection);
        }
    });
    let out = sandbox
        .env("DOCKER_HOST", &format!("unix://{}", socket.display()))
        .env("CLAUDE_BOTTLE_ENGINE_TIMEOUT", "2")
        .run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "no Docker engine answers at unix://{}, from DOCKER_HOST (no answer within 2 s)",
            socket.display()
        )),
        "{out:?}"
    );
    assert!(!out.stderr.contains("asking the engine"), "{out:?}");
}

/// Whether `text` is concealed (SGR 8) where `at` begins in `screen`, as
/// tmux writes attributes: each change as an SGR sequence.
fn concealed_at(screen: &str, at: &str) -> bool {
    let end = screen
        .find(at)
        .unwrap_or_else(|| panic!("no `{at}` in {screen:?}"));
    let mut concealed = false;
    for sgr in screen[..end].split("\x1b[").skip(1) {
        let Some(params) = sgr.split_once('m').map(|(p, _)| p) else {
            continue;
        };
        if !params.bytes().all(|b| b.is_ascii_digit() || b == b';') {
            continue;
        }
        for param in params.split(';') {
            match param {
                // Reset, or conceal off.
                "" | "0" | "28" => concealed = false,
                "8" => concealed = true,
                _ => {}
            }
        }
    }
    concealed
}

#[tokio::test]
async fn what_a_session_leaves_on_the_terminal_does_not_hide_the_summary() {
    if with_fake_claude("terminal state after a session")
        .await
        .is_none()
    {
        return;
    }
    // The other screen, conceal on, the cursor hidden: then claude exits.
    let (sandbox, _label) = crate::support::instance::bottle_sandbox(
        "terminal-state",
        &[(
            "FAKE_CLAUDE_RUN",
            "printf '\\033[?1049h\\033[8m\\033[?25lhidden-3a'",
        )],
    );
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    assert!(!terminal.on_alternate_screen(), "{}", terminal.screen());
    let screen = terminal.screen_with_attributes();
    assert!(screen.contains("egress: "), "{screen:?}");
    assert!(!concealed_at(&screen, "egress: "), "{screen:?}");
    assert!(!concealed_at(&screen, "exit="), "{screen:?}");
}
