//! A start cut short at each phase of its launch, reached through the
//! `CLAUDE_BOTTLE_PAUSE_AT` hook. After `kill -9` the containers go
//! within seconds by their dead-man switches, and the next `cleanup`
//! leaves nothing labelled; SIGTERM and SIGHUP tear everything down before
//! the CLI exits. The default image's build is cut short in
//! `default_image`, where its fixtures are.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Sandbox, Session, fake_claude_bottle, leftovers, run_label, with_fake_claude,
};

/// The phases after the image, in order; `home` copies a repository in.
const PHASES: [&str; 7] = [
    "networks",
    "gate",
    "agent",
    "provision",
    "session",
    "home",
    "teardown",
];

/// A start of `test`'s own bottle, paused at `phase`.
fn paused_start(test: &str, phase: &str) -> (String, Sandbox, Session) {
    let label = run_label(&format!("{test}-{phase}"));
    let sandbox = fake_claude_bottle(&label, &json!({ "egress": { "builtin": false } }))
        .env("CLAUDE_BOTTLE_PAUSE_AT", phase);
    let mut args = vec!["start", "a", "--yes"];
    if phase == "home" {
        crate::cwd::repository(&sandbox.cwd);
        args.push("--cwd");
    }
    let session = Session::spawn(&sandbox, &args);
    (label, sandbox, session)
}

/// Waits until `session` says it paused at `phase`.
pub(crate) async fn wait_paused(session: &Session, phase: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = format!("paused at {phase} ");
    while !session.stderr.lock().unwrap().contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "never paused at {phase}: {}",
            session.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_at_any_phase_leaves_nothing_once_cleanup_has_run() {
    let Some(docker) = with_fake_claude("kill -9 at each phase").await else {
        return;
    };
    let starts: Vec<_> = PHASES
        .iter()
        .map(|p| (p, paused_start("kill9", p)))
        .collect();
    for (phase, (label, sandbox, mut session)) in starts {
        wait_paused(&session, phase).await;
        session.child.kill().unwrap();
        session.child.wait().unwrap();
        // The containers follow their CLI by their dead-man switches.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !leftovers(&docker, &label).await.0.is_empty() {
            assert!(
                Instant::now() < deadline,
                "at {phase}: containers outlived their CLI by 15 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // What has no switch (the networks) goes with the next cleanup.
        let out = sandbox.run(&["cleanup", "--yes"]);
        assert_eq!(out.code, 0, "at {phase}: {out:?}");
        assert_eq!(
            leftovers(&docker, &label).await,
            (vec![], vec![]),
            "at {phase}"
        );
    }
}

/// `signal` to starts paused at each phase: each exits with `code`, and
/// nothing of it is left when it has.
async fn signal_at_every_phase(signal: &str, code: i32) {
    let Some(docker) = with_fake_claude("a signal at each phase").await else {
        return;
    };
    let test = format!("sig{}", signal.to_ascii_lowercase());
    let starts: Vec<_> = PHASES.iter().map(|p| (p, paused_start(&test, p))).collect();
    for (phase, (label, _sandbox, session)) in starts {
        wait_paused(&session, phase).await;
        session.signal(signal);
        let out = session.wait();
        assert_eq!(out.code, code, "at {phase}: {out:?}");
        assert_eq!(
            leftovers(&docker, &label).await,
            (vec![], vec![]),
            "at {phase}: left after SIG{signal}"
        );
    }
}

#[tokio::test]
async fn sigterm_at_any_phase_tears_everything_down_before_exit() {
    signal_at_every_phase("TERM", 143).await;
}

#[tokio::test]
async fn sighup_at_any_phase_tears_everything_down_before_exit() {
    signal_at_every_phase("HUP", 129).await;
}
