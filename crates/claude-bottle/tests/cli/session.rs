//! The interactive session on a real terminal (tmux), headless runs, and
//! real Claude Code through its first start.

use std::time::{Duration, Instant};

use fixtures::report::frames;
use serde_json::{Value, json};

use crate::support::{
    Sandbox, Session, Terminal, fake_claude_bottle, fixture_json, leftovers, real_claude,
    run_label, with_fake_claude, with_real_claude,
};

fn fake_sandbox(label: &str, env: &Value) -> Sandbox {
    fake_claude_bottle(
        label,
        &json!({ "env": env, "egress": { "builtin": false } }),
    )
}

#[tokio::test]
async fn on_a_terminal_claude_gets_a_tty_of_its_size_every_resize_and_raw_mode_only_during() {
    let Some(docker) = with_fake_claude("tty session").await else {
        return;
    };
    let label = run_label("tty");
    let sandbox = fake_sandbox(
        &label,
        &json!({ "FAKE_CLAUDE_SLEEP": "6", "FAKE_CLAUDE_EXIT": "3" }),
    );
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    terminal.wait_for("@@fixture:ready");
    assert!(
        terminal.is_raw(),
        "not raw during the session: {}",
        terminal.stty()
    );
    let screen = terminal.screen();
    let report = &frames(&screen, "report")[0];
    assert_eq!(report["tty"], json!({ "stdin": true, "stdout": true }));
    assert_eq!(report["env"]["TERM"], "xterm-256color");
    // The first size is the pane's: in the report, or in a resize right after.
    let sizes: Vec<Value> = std::iter::once(report["size"].clone())
        .chain(frames(&screen, "resize"))
        .collect();
    assert_eq!(
        sizes.last().unwrap(),
        &json!({ "rows": 30, "cols": 100 }),
        "{sizes:?}"
    );
    terminal.resize(40, 120);
    let screen = terminal.wait_for(r#""rows":40"#);
    assert_eq!(
        frames(&screen, "resize").last().unwrap(),
        &json!({ "rows": 40, "cols": 120 })
    );
    assert_eq!(terminal.exit_status(), 3);
    assert!(
        !terminal.is_raw(),
        "still raw after the session: {}",
        terminal.stty()
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// SIGTERM or SIGHUP to the CLI during a TTY session.
async fn signal_on_a_terminal(signal: &str, code: i32) {
    let Some(docker) = with_fake_claude("signal on a terminal").await else {
        return;
    };
    let label = run_label(&format!("tty-{signal}"));
    let sandbox = fake_sandbox(&label, &json!({ "FAKE_CLAUDE_SLEEP": "60" }));
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    terminal.wait_for("@@fixture:ready");
    assert!(terminal.is_raw());
    terminal.signal(signal);
    assert_eq!(terminal.exit_status(), code);
    assert!(!terminal.is_raw(), "{signal} left the terminal raw");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn sigterm_on_a_terminal_restores_it_and_exits_143() {
    signal_on_a_terminal("TERM", 143).await;
}

#[tokio::test]
async fn sighup_on_a_terminal_restores_it_and_exits_129() {
    signal_on_a_terminal("HUP", 129).await;
}

#[tokio::test]
async fn bytes_and_megabytes_of_output_arrive_intact_through_the_terminal() {
    let Some(docker) = with_fake_claude("bytes intact").await else {
        return;
    };
    let label = run_label("bytes");
    // 3 MiB of 0x00 0x01 0x02 (no newline, which a terminal would rewrite).
    let sandbox = fake_sandbox(
        &label,
        &json!({ "FAKE_CLAUDE_ECHO_HEX": "000102", "FAKE_CLAUDE_ECHO_REPEAT": "1048576" }),
    );
    let (code, bytes) = sandbox.run_on_terminal(&["start", "a", "--yes"]);
    assert_eq!(code, 0);
    let start = bytes
        .windows(3)
        .position(|w| w == [0, 1, 2])
        .expect("the bytes arrived");
    let body = &bytes[start..start + 3 * 1_048_576];
    if let Some(bad) = body.chunks(3).position(|c| c != [0, 1, 2]) {
        let at = start + bad * 3;
        panic!(
            "the stream was altered at byte {at} of {}: {:?}",
            bytes.len(),
            &bytes[at.saturating_sub(8)..(at + 40).min(bytes.len())]
        );
    }
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn without_a_terminal_stdout_and_stderr_stay_apart() {
    let Some(_docker) = with_fake_claude("stdio apart").await else {
        return;
    };
    let label = run_label("stdio");
    let sandbox = fake_sandbox(
        &label,
        &json!({ "FAKE_CLAUDE_RUN": "echo to-stdout-5a; echo to-stderr-5b >&2" }),
    );
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Whole lines: the report also quotes the command.
    let has = |text: &str, line: &str| text.lines().any(|l| l.trim_end() == line);
    assert!(
        has(&out.stdout, "to-stdout-5a") && !has(&out.stdout, "to-stderr-5b"),
        "{out:?}"
    );
    assert!(
        has(&out.stderr, "to-stderr-5b") && !has(&out.stderr, "to-stdout-5a"),
        "{out:?}"
    );
}

#[tokio::test]
async fn remote_control_reaches_claude_without_the_token_and_the_hint_shows_only_without_credentials()
 {
    let Some(_docker) = with_fake_claude("remote control").await else {
        return;
    };
    let label = run_label("remote");
    let sandbox = fake_sandbox(&label, &json!({})).env("CLAUDE_BOTTLE_OAUTH_TOKEN", "oauth-rc-31f");
    let out = sandbox.run(&["start", "a", "--yes", "--remote-control"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = &frames(&out.stdout, "report")[0];
    assert!(
        report["argv"]
            .as_array()
            .unwrap()
            .contains(&json!("--remote-control")),
        "{report}"
    );
    assert!(
        report["env"].get("CLAUDE_CODE_OAUTH_TOKEN").is_none(),
        "{report}"
    );
    assert!(out.stderr.contains("/login"), "{}", out.stderr);

    let hint = "claude setup-token";
    assert!(
        !sandbox
            .run(&["start", "a", "--dry-run"])
            .stderr
            .contains(hint),
        "hint shown with a token"
    );
    let bare = fake_sandbox(&label, &json!({}));
    assert!(
        bare.run(&["start", "a", "--dry-run"]).stderr.contains(hint),
        "no hint without credentials"
    );
    let keyed = fake_sandbox(&label, &json!({ "ANTHROPIC_API_KEY": "?" }));
    assert!(
        !keyed
            .run(&["start", "a", "--dry-run"])
            .stderr
            .contains(hint),
        "hint shown with an API key"
    );
}

#[tokio::test]
async fn real_claude_code_headless_prints_the_reply_with_the_prompt_and_credential_it_was_given() {
    let Some(docker) = with_real_claude("real claude headless").await else {
        return;
    };
    let label = run_label("headless");
    let key = "sk-ant-host-secret-0d9e";
    let script = json!([
        { "tool_use": { "name": "Bash", "input": { "command": "sleep 3", "description": "wait" } } },
        { "text": "reply-from-mock" }
    ]);
    let (sandbox, mock, _world) = real_claude(
        &docker,
        &label,
        &script,
        &json!({ "ANTHROPIC_API_KEY": "${HOST_KEY}" }),
    )
    .await;
    let sandbox = sandbox.env("HOST_KEY", key);
    let session = Session::spawn(
        &sandbox,
        &["start", "a", "--yes", "--", "-p", "hello there"],
    );
    // While claude waits on its tool, nothing on the engine holds the key.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fixture_json(&mock, 80, "/_requests").is_empty() {
        assert!(
            Instant::now() < deadline,
            "claude never asked the mock: {}",
            session.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (containers, _) = leftovers(&docker, &label).await;
    assert_eq!(containers.len(), 2, "agent and gate");
    for id in &containers {
        let inspect = docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        crate::secrets::assert_never_shown(&serde_json::to_string(&inspect).unwrap(), &[key]);
    }
    let out = session.wait();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "reply-from-mock");
    let requests: Vec<Value> = fixture_json(&mock, 80, "/_requests");
    let first = &requests[0];
    assert!(
        first["body"]["system"]
            .to_string()
            .contains("You are the bottle test agent 4e2f."),
        "the prompt is not in the system prompt"
    );
    assert!(
        first["body"]["messages"]
            .to_string()
            .contains("hello there")
    );
    assert!(
        first["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-api-key", key]))
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn real_claude_code_on_a_terminal_starts_without_first_run_questions_and_exits_on_exit() {
    let Some(docker) = with_real_claude("real claude on a terminal").await else {
        return;
    };
    let label = run_label("interactive");
    let (sandbox, _mock, _world) = real_claude(
        &docker,
        &label,
        &json!([]),
        &json!({ "ANTHROPIC_API_KEY": "sk-ant-test-key-not-secret-77" }),
    )
    .await;
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    let screen = terminal.wait_for("bypass permissions on");
    for question in [
        "Do you want to use this API key",
        "Choose the text style",
        "trust",
        "Press Enter to continue",
    ] {
        assert!(
            !screen.contains(question),
            "a first-run question showed: {question}\n{screen}"
        );
    }
    assert!(screen.contains("Claude Code v2.1.332"), "{screen}");
    terminal.type_text("/exit\n");
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    assert!(!terminal.is_raw());
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn ctrl_c_before_the_session_aborts_cleanly_with_130() {
    let Some(docker) = with_fake_claude("ctrl-c before the session").await else {
        return;
    };
    let label = run_label("ctrl-c");
    let sandbox = fake_sandbox(&label, &json!({ "PASS": "?the password" }));
    // At the question.
    let terminal = Terminal::start(&sandbox, &["start", "a"]);
    terminal.wait_for("[y/N]");
    terminal.keys(&["C-c"]);
    assert_eq!(terminal.exit_status(), 130);
    assert!(sandbox.stage_dirs().is_empty(), "the stage was left");
    drop(terminal);
    // At the secret, where echo is off: it comes back.
    let terminal = Terminal::start(&sandbox, &["start", "a"]);
    terminal.wait_for("[y/N]");
    terminal.type_text("y\n");
    terminal.wait_for("the password (PASS): ");
    assert!(
        terminal.stty().split_whitespace().any(|f| f == "-echo"),
        "echo is off while the secret is typed"
    );
    terminal.keys(&["C-c"]);
    assert_eq!(terminal.exit_status(), 130);
    assert!(
        terminal.stty().split_whitespace().any(|f| f == "echo"),
        "echo did not come back"
    );
    assert!(sandbox.stage_dirs().is_empty(), "the stage was left");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
