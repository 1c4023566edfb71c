//! Faults from outside the CLI during a session: the gate or the agent
//! container killed. The CLI says what happened, nothing is left behind,
//! and work that cannot come home is named.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Session, fake_claude_bottle, label_filter, leftovers, run_label, running_agent,
    with_fake_claude,
};

#[tokio::test]
async fn an_agent_killed_from_outside_is_reported_with_the_commits_it_took() {
    let Some(docker) = with_fake_claude("agent killed").await else {
        return;
    };
    let label = run_label("agent-killed");
    let script = "cd /workspace && git switch -qc doomed && git commit -q --allow-empty -m doomed \
        && echo committed";
    let sandbox = fake_claude_bottle(
        &label,
        &json!({
            "env": { "FAKE_CLAUDE_RUN": script, "FAKE_CLAUDE_READ_STDIN": "1" },
            "egress": { "builtin": false }
        }),
    );
    crate::cwd::repository(&sandbox.cwd);
    let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
    let agent = running_agent(&docker, &label, &session).await;
    session.wait_for_stdout("committed").await;
    docker
        .kill_container(
            agent.id.as_deref().unwrap(),
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let out = session.wait();
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("the agent container stopped from outside"),
        "{out:?}"
    );
    assert!(out.stderr.contains("did not come home"), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_gate_killed_mid_session_is_reported_and_the_bottle_has_no_way_out() {
    let Some(docker) = with_fake_claude("gate killed").await else {
        return;
    };
    let label = run_label("gate-killed");
    let sandbox = fake_claude_bottle(
        &label,
        &json!({ "env": { "FAKE_CLAUDE_READ_STDIN": "1" }, "egress": { "builtin": false } }),
    );
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let agent = running_agent(&docker, &label, &session).await;
    let gate: Vec<String> = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            filters: Some(label_filter(
                &label,
                Some("io.claude-bottle.role=gate".to_owned()),
            )),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(gate.len(), 1, "{gate:?}");
    docker
        .kill_container(
            &gate[0],
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !session
        .stderr
        .lock()
        .unwrap()
        .contains("the egress gate stopped")
    {
        assert!(
            Instant::now() < deadline,
            "the CLI never said: {}",
            session.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still no way out: the agent's only network is the internal one.
    let (code, _) = crate::support::exec(
        &docker,
        agent.id.as_deref().unwrap(),
        &[
            "sh",
            "-c",
            "curl -s -m 3 -o /dev/null http://gate:3128/ || exit 7",
        ],
        &[],
    )
    .await;
    assert_ne!(code, 0, "something answered with the gate dead");
    let out = session.finish("");
    assert_eq!(out.code, 0, "claude's own exit code: {out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
