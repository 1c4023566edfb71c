//! `list` and `cleanup` on the real engine, and the sweep `start` runs.
//! Each test scopes the tool to its own label (CLAUDE_BOTTLE_EXTRA_LABELS),
//! so tests running alongside never see each other's instances.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use fixtures::report::frames;
use serde_json::Value;

use crate::support::{
    Session, bottle_sandbox, is_podman, leftovers, run_label, running_agent, wait_for_instance,
    with_fake_claude,
};

/// Kills one session with SIGKILL while a second runs; returns the killed
/// instance's name and the running session.
async fn one_killed_one_running(
    docker: &Docker,
    test: &str,
) -> (crate::support::Sandbox, String, String, Session) {
    let (sandbox, label) = bottle_sandbox(test, &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let mut doomed = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    running_agent(docker, &label, &doomed).await;
    let killed = wait_for_instance(&doomed).await;
    let survivor = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames(&survivor.stdout.lock().unwrap(), "report").is_empty() {
        assert!(Instant::now() < deadline, "the second session never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    (sandbox, label, killed, survivor)
}

fn list(sandbox: &crate::support::Sandbox) -> Vec<Value> {
    let out = sandbox.run(&["list", "--format", "json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

fn named<'a>(instances: &'a [Value], name: &str) -> Option<&'a Value> {
    instances.iter().find(|i| i["instance"] == name)
}

#[tokio::test]
async fn cleanup_removes_a_killed_instance_and_leaves_a_live_one_working() {
    let Some(docker) = with_fake_claude("cleanup after kill -9").await else {
        return;
    };
    let (sandbox, label, killed, survivor) = one_killed_one_running(&docker, "cleanup-kill").await;
    let survivor_name = wait_for_instance(&survivor).await;
    // The dead-man switch took the killed agent; its networks remain.
    let instances = list(&sandbox);
    let dead = named(&instances, &killed).expect("the killed instance is listed");
    assert_eq!(dead["liveness"], "dead", "{dead}");
    assert_eq!(
        named(&instances, &survivor_name).unwrap()["liveness"],
        "live"
    );

    let dry = sandbox.run(&["cleanup", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stderr.contains(&killed), "{dry:?}");
    assert!(
        dry.stderr
            .contains(&format!("keeping 1 live instance(s): {survivor_name}")),
        "{dry:?}"
    );
    assert!(
        named(&list(&sandbox), &killed).is_some(),
        "a dry run removed something"
    );

    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let instances = list(&sandbox);
    assert!(
        named(&instances, &killed).is_none(),
        "the killed instance is still there: {instances:?}"
    );
    assert!(named(&instances, &survivor_name).is_some());

    // Twice in a row: nothing left to do, and that is fine.
    let again = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("nothing to clean up"), "{again:?}");

    let done = survivor.finish("still here\n");
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(frames(&done.stdout, "stdin")[0]["text"], "still here\n");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn the_next_start_sweeps_what_a_killed_instance_left() {
    let Some(docker) = with_fake_claude("sweep after kill -9").await else {
        return;
    };
    let (sandbox, label, killed, survivor) = one_killed_one_running(&docker, "sweep-kill").await;
    let survivor_name = wait_for_instance(&survivor).await;
    assert!(named(&list(&sandbox), &killed).is_some());
    let next = sandbox.run(&["start", "a", "--yes"]);
    // The next start reads stdin to its end at once (it is empty).
    assert_eq!(next.code, 0, "{next:?}");
    assert!(next.stderr.contains("swept"), "{next:?}");
    let instances = list(&sandbox);
    assert!(
        named(&instances, &killed).is_none(),
        "not swept: {instances:?}"
    );
    assert!(
        named(&instances, &survivor_name).is_some(),
        "a live instance was swept"
    );
    assert_eq!(survivor.finish("ok\n").code, 0);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn list_shows_exactly_the_running_instances_and_a_named_live_one_can_be_removed() {
    let Some(docker) = with_fake_claude("list and named cleanup").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("list", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    assert_eq!(list(&sandbox), Vec::<Value>::new());
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    let name = wait_for_instance(&session).await;
    let instances = list(&sandbox);
    assert_eq!(instances.len(), 1, "{instances:?}");
    let listed = &instances[0];
    assert_eq!(listed["instance"], name.as_str());
    assert_eq!(listed["agent"], "a");
    assert_eq!(listed["bottle"], "dev");
    assert_eq!(listed["runtime"], "runc");
    assert_eq!(listed["state"], "running");
    assert_eq!(listed["liveness"], "live");
    assert_eq!(listed["owner"]["pid"], session.child.id());
    assert!(listed["age_seconds"].as_u64().unwrap() < 120);
    // Where the agent has no network (Podman), the gate's way out alone.
    let networks = if is_podman(&docker).await { 1 } else { 2 };
    assert_eq!(listed["networks"].as_array().unwrap().len(), networks);
    let text = sandbox.run(&["list"]);
    assert!(
        text.stdout.contains(&name) && text.stdout.contains("running"),
        "{text:?}"
    );

    // Not named, it is kept; named, it goes, live or not.
    assert!(
        sandbox
            .run(&["cleanup", "--yes"])
            .stderr
            .contains("nothing to clean up")
    );
    let out = sandbox.run(&["cleanup", &name, "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let ended = session.wait();
    assert_ne!(
        ended.code, 0,
        "the session ended with its bottle: {ended:?}"
    );
    assert_eq!(list(&sandbox), Vec::<Value>::new());
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    let missing = sandbox.run(&["cleanup", "claude-bottle-nothing-here", "--yes"]);
    assert_eq!(missing.code, 125, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("no instance named claude-bottle-nothing-here"),
        "{missing:?}"
    );
}

/// A network labelled as an instance owned by this test process, with the
/// given start time.
async fn fake_instance(docker: &Docker, label: &str, name: &str, start_time: u64) -> String {
    let me = bottle::lifecycle::owner::Owner::current();
    let labels = HashMap::from([
        ("io.claude-bottle.managed".to_owned(), "true".to_owned()),
        ("io.claude-bottle.instance".to_owned(), name.to_owned()),
        ("io.claude-bottle.agent".to_owned(), "a".to_owned()),
        (
            "io.claude-bottle.role".to_owned(),
            "internal-network".to_owned(),
        ),
        ("io.claude-bottle.owner.host".to_owned(), me.host),
        ("io.claude-bottle.owner.boot-id".to_owned(), me.boot_id),
        ("io.claude-bottle.owner.pid".to_owned(), me.pid.to_string()),
        (
            "io.claude-bottle.owner.start-time".to_owned(),
            start_time.to_string(),
        ),
        (crate::support::TEST_LABEL.to_owned(), label.to_owned()),
    ]);
    crate::support::fixture::create_network(
        docker,
        NetworkCreateRequest {
            name: name.to_owned(),
            internal: Some(true),
            labels: Some(labels),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_reused_pid_does_not_make_a_dead_instance_look_live() {
    let Some(docker) = crate::support::connect("pid reuse").await else {
        return;
    };
    let label = run_label("pid-reuse");
    let sandbox = crate::support::Sandbox::new().env(
        "CLAUDE_BOTTLE_EXTRA_LABELS",
        &format!("{}={label}", crate::support::TEST_LABEL),
    );
    let me = bottle::lifecycle::owner::Owner::current();
    let reused = run_label("claude-bottle-reused");
    let alive = run_label("claude-bottle-alive");
    // This process runs, but started at another time than the label says.
    fake_instance(&docker, &label, &reused, me.start_time + 12345).await;
    let alive_id = fake_instance(&docker, &label, &alive, me.start_time).await;
    let instances = list(&sandbox);
    assert_eq!(named(&instances, &reused).unwrap()["liveness"], "dead");
    assert_eq!(named(&instances, &alive).unwrap()["liveness"], "live");
    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let instances = list(&sandbox);
    assert!(named(&instances, &reused).is_none(), "{instances:?}");
    assert!(named(&instances, &alive).is_some(), "{instances:?}");
    docker.remove_network(&alive_id).await.unwrap();
    assert_eq!(list(&sandbox), Vec::<Value>::new());
}

#[tokio::test]
async fn two_cleanups_at_the_same_time_both_succeed() {
    let Some(docker) = crate::support::connect("concurrent cleanup").await else {
        return;
    };
    let label = run_label("cleanup-twice");
    let sandbox = crate::support::Sandbox::new().env(
        "CLAUDE_BOTTLE_EXTRA_LABELS",
        &format!("{}={label}", crate::support::TEST_LABEL),
    );
    // Three dead instances: owned by this process's pid at another start.
    let me = bottle::lifecycle::owner::Owner::current();
    let mut killed = Vec::new();
    for _ in 0..3 {
        let name = run_label("claude-bottle-dead");
        fake_instance(&docker, &label, &name, me.start_time + 12345).await;
        killed.push(name);
    }
    let listed = list(&sandbox);
    for name in &killed {
        assert!(named(&listed, name).is_some(), "{name} in {listed:?}");
    }
    let (first, second) = std::thread::scope(|scope| {
        let one = scope.spawn(|| sandbox.run(&["cleanup", "--yes"]));
        let two = scope.spawn(|| sandbox.run(&["cleanup", "--yes"]));
        (one.join().unwrap(), two.join().unwrap())
    });
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(second.code, 0, "{second:?}");
    assert!(list(&sandbox).is_empty(), "{:?}", list(&sandbox));
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn cleanup_takes_an_ownerless_stage_only_once_it_is_old_and_says_so() {
    let Some(_docker) = with_fake_claude("cleanup: ownerless stage").await else {
        return;
    };
    let (sandbox, _label) = bottle_sandbox("ownerless", &[]);
    let stages = sandbox.home.join(".cache/claude-bottle/stage");
    // One a start died making, long ago, and one that may be in the making.
    let old = stages.join(".claude-bottle-a-old1.new");
    let young = stages.join("claude-bottle-a-young1");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&young).unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    // A start's own sweep takes neither.
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(old.exists() && young.exists());
    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "stage directory {} (no owner, 60m old)",
            old.display()
        )),
        "{out:?}"
    );
    assert!(!old.exists());
    assert!(young.exists(), "{out:?}");
    assert!(!out.stderr.contains("young1"), "{out:?}");
}
