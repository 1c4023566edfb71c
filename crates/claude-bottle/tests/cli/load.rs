//! Many bottles at once: 8 started and stopped together, 20 rounds in a
//! row, beside one long-lived bottle. No name collides, nothing is left,
//! and no bottle sees another's prompt or environment or reaches another's
//! gate or agent.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{
    FAKE_CLAUDE_IMAGE, Sandbox, Session, TEST_LABEL, fake_claude_bottle, instance_of, leftovers,
    run_label, running_agent, value_of, with_fake_claude,
};

const ROUNDS: usize = 20;
const AT_ONCE: usize = 8;

/// A bottle whose prompt and `MARK` are `mark`, and whose fake claude runs
/// `script`.
fn marked(label: &str, mark: &str, script: &str) -> Sandbox {
    let manifest = json!({
        "bottles": { "dev": {
            "env": { "MARK": mark, "FAKE_CLAUDE_RUN": script },
            "egress": { "builtin": false },
        } },
        "agents": { "a": { "bottle": "dev", "prompt": format!("prompt of {mark}") } },
    });
    Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
}

#[tokio::test]
async fn eight_bottles_at_once_for_twenty_rounds_collide_leak_and_cross_in_nothing() {
    let Some(docker) = with_fake_claude("load").await else {
        return;
    };
    // The long-lived neighbour whose gate and agent no bottle may reach.
    let other_label = run_label("load-other");
    let other = fake_claude_bottle(
        &other_label,
        &json!({ "env": { "FAKE_CLAUDE_READ_STDIN": "1" }, "egress": { "builtin": false } }),
    );
    let other_session = Session::spawn(&other, &["start", "a", "--yes"]);
    running_agent(&docker, &other_label, &other_session).await;
    let other_agent = crate::egress::container_address(&docker, &other_label, "agent").await;
    let other_gate = crate::egress::container_address(&docker, &other_label, "gate").await;
    let script = format!(
        "echo mark=$MARK; echo prompt=$(cat $HOME/.claude-bottle/prompt.md); {}; {}",
        crate::egress::direct_try(
            "other-gate",
            other_gate.map(|a| format!("http://{a}:3128/healthz")),
            1
        ),
        crate::egress::direct_try(
            "other-agent",
            other_agent.map(|a| format!("http://{a}:80/")),
            1
        ),
    );

    let label = run_label("load");
    let mut instances = BTreeSet::new();
    for round in 0..ROUNDS {
        let runs: Vec<(String, std::thread::JoinHandle<crate::support::Output>)> = (0..AT_ONCE)
            .map(|i| {
                let mark = format!("r{round}b{i}-{}", std::process::id());
                let sandbox = marked(&label, &mark, &script);
                (
                    mark,
                    std::thread::spawn(move || sandbox.run(&["start", "a", "--yes"])),
                )
            })
            .collect();
        for (mark, run) in runs {
            let out = run.join().unwrap();
            assert_eq!(out.code, 0, "round {round}, {mark}: {out:?}");
            assert_eq!(value_of(&out.stdout, "mark"), mark);
            assert_eq!(value_of(&out.stdout, "prompt"), format!("prompt of {mark}"));
            assert_ne!(
                value_of(&out.stdout, "other-gate"),
                "0",
                "{mark} reached the other gate"
            );
            assert_ne!(
                value_of(&out.stdout, "other-agent"),
                "0",
                "{mark} reached the other agent"
            );
            let instance = instance_of(&out.stderr);
            assert!(instances.insert(instance.clone()), "{instance} came twice");
        }
        assert_eq!(
            leftovers(&docker, &label).await,
            (vec![], vec![]),
            "after round {round}"
        );
    }
    assert_eq!(instances.len(), ROUNDS * AT_ONCE);
    assert_eq!(other_session.finish("").code, 0);
    assert_eq!(leftovers(&docker, &other_label).await, (vec![], vec![]));
}
