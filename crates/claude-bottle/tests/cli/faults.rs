//! Faults from outside the CLI: the gate or the agent container killed
//! during a session, the engine stopping during a launch. The CLI says
//! what happened, nothing is left behind, and work that cannot come home
//! is named.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    DOCKERD_IMAGE, FAKE_CLAUDE_IMAGE, GATE_IMAGE, OwnEngine, Session, engine_with,
    fake_claude_bottle, label_filter, leftovers, run_label, running_agent, with_fake_claude,
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

/// Stops the test's own engine while a start is paused at each of a few
/// phases, then lets the start go on: with the engine still down, and
/// with it back already (restarted under the CLI, its containers gone).
#[tokio::test]
async fn an_engine_that_stops_mid_launch_fails_the_start_and_once_back_nothing_is_left() {
    let Some(outer) = engine_with(
        "engine stops mid-launch",
        &[FAKE_CLAUDE_IMAGE, GATE_IMAGE, DOCKERD_IMAGE],
    )
    .await
    else {
        return;
    };
    let label = run_label("engine-stops");
    let engine = OwnEngine::start(&outer, &label, &[FAKE_CLAUDE_IMAGE, GATE_IMAGE]).await;
    eprintln!("the test's own engine: Docker {}", engine.version().await);
    for phase in ["networks", "agent", "session"] {
        for back_already in [false, true] {
            let case = format!("at {phase}, the engine back already: {back_already}");
            let sandbox = fake_claude_bottle(&label, &json!({ "egress": { "builtin": false } }))
                .env("DOCKER_HOST", &engine.host)
                .env("CLAUDE_BOTTLE_GATE_IMAGE", GATE_IMAGE)
                .env("CLAUDE_BOTTLE_PAUSE_AT", phase);
            crate::cwd::repository(&sandbox.cwd);
            let before = crate::cwd::host_state(&sandbox.cwd);
            let session = Session::spawn(&sandbox, &["start", "a", "--cwd", "--yes"]);
            crate::phases::wait_paused(&session, phase).await;
            assert!(
                !leftovers(&engine.docker, &label).await.1.is_empty(),
                "{case}: nothing was made yet"
            );
            engine.stop().await;
            if back_already {
                engine.resume().await;
            }
            session.signal("USR1");
            let out = session.wait();
            eprintln!("{case}: {}", out.stderr);
            // Networks outlive a restart and nothing else was made yet:
            // that launch goes on as if nothing happened.
            let code = if back_already && phase == "networks" {
                0
            } else {
                125
            };
            assert_eq!(out.code, code, "{case}: {out:?}");
            if back_already {
                // The engine answers the teardown: nothing is left for
                // cleanup, and nothing blames the engine.
                assert_eq!(
                    leftovers(&engine.docker, &label).await,
                    (vec![], vec![]),
                    "{case}: {out:?}"
                );
                assert!(!out.stderr.contains("teardown left"), "{case}: {out:?}");
                if code != 0 {
                    assert!(
                        out.stderr.contains(
                            "container is gone: removed from outside, or the engine restarted"
                        ) || out
                            .stderr
                            .contains("the agent container stopped from outside"),
                        "{case}: {out:?}"
                    );
                }
            } else {
                assert!(
                    out.stderr
                        .contains("the engine stopped answering (connection refused)")
                        && out
                            .stderr
                            .contains("once it answers again, `claude-bottle cleanup`"),
                    "{case}: {out:?}"
                );
                // One warning for all that is left, no transport's jargon,
                // and no hint that blames anything but the engine.
                assert_eq!(
                    out.stderr.matches("warning: ").count(),
                    2,
                    "{case}: {out:?}"
                );
                for noise in ["hyper", "client error", "CLAUDE_BOTTLE_GATE_IMAGE"] {
                    assert!(!out.stderr.contains(noise), "{case}: {out:?}");
                }
                engine.resume().await;
                let cleanup = sandbox.run(&["cleanup", "--yes"]);
                assert_eq!(cleanup.code, 0, "{case}: {cleanup:?}");
                assert_eq!(
                    leftovers(&engine.docker, &label).await,
                    (vec![], vec![]),
                    "{case}: left after cleanup"
                );
            }
            assert_eq!(crate::cwd::host_state(&sandbox.cwd), before, "{case}");
        }
    }
}
