//! `doctor`: each check against a real engine and a real home, with the
//! exit code that says whether `start` can work and the fix it names.

use serde_json::{Value, json};

use crate::support::{FAKE_CLAUDE_IMAGE, Output, SIMPLE, Sandbox, is_podman, with_fake_claude};

/// A sandbox whose start would work: the fake claude's image, and a token.
fn ready(manifest: &str) -> Sandbox {
    Sandbox::with_manifest(manifest)
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env("CLAUDE_BOTTLE_OAUTH_TOKEN", "sk-ant-oat01-doctor-test")
}

/// `doctor --format json`, with its exit code checked against what it says.
#[track_caller]
fn doctor(sandbox: &Sandbox) -> (i32, Value) {
    let out = sandbox.run(&["doctor", "--format", "json"]);
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("{err}: {out:?}"));
    let can_start = report["start_can_work"].as_bool().unwrap();
    assert_eq!(
        out.code,
        i32::from(!can_start),
        "the exit code says what the report says: {out:?}"
    );
    assert!(
        !out.stdout.contains("sk-ant-oat01"),
        "a secret in the report: {out:?}"
    );
    (out.code, report)
}

/// The findings of `check`.
#[track_caller]
fn findings<'r>(report: &'r Value, check: &str) -> Vec<&'r Value> {
    let found: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect();
    assert!(!found.is_empty(), "no `{check}` finding: {report:#}");
    found
}

#[track_caller]
fn only<'r>(report: &'r Value, check: &str) -> &'r Value {
    let found = findings(report, check);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0]
}

fn text(out: &Output) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

#[tokio::test]
async fn with_an_engine_that_answers_and_nothing_missing_start_can_work() {
    let Some(docker) = with_fake_claude("doctor: engine answers").await else {
        return;
    };
    let sandbox = ready(SIMPLE);
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 0, "{report:#}");
    let engine = only(&report, "engine");
    assert_eq!(engine["verdict"], "ok", "{engine:#}");
    let version = docker.version().await.unwrap();
    let kind = if is_podman(&docker).await {
        "Podman Engine"
    } else {
        "Docker Engine"
    };
    assert_eq!(engine["facts"]["kind"], kind);
    assert_eq!(engine["facts"]["version"], json!(version.version.unwrap()));
    assert_eq!(
        engine["facts"]["api_version"],
        json!(version.api_version.unwrap())
    );
    let location = engine["facts"]["location"].as_str().unwrap();
    let expected =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    assert!(
        location.starts_with(&expected),
        "{location} is not {expected}"
    );
    let image = only(&report, "image");
    assert_eq!(image["verdict"], "ok", "{image:#}");
    assert_eq!(image["facts"]["image"], FAKE_CLAUDE_IMAGE);
    let gvisor = only(&report, "gvisor");
    let has_runsc = docker
        .info()
        .await
        .unwrap()
        .runtimes
        .unwrap_or_default()
        .contains_key("runsc");
    assert_eq!(
        gvisor["facts"]["registered"],
        json!(has_runsc),
        "{gvisor:#}"
    );
    if kind == "Podman Engine" {
        // Bottles there reach their gate on a loopback gVisor keeps apart.
        assert_eq!(gvisor["verdict"], "ok", "{gvisor:#}");
        assert!(
            gvisor.to_string().contains("not used on Podman"),
            "{gvisor:#}"
        );
    }
    // This machine's engines keep a bottle's limits (rootful Podman, asked
    // through its own API, says which it is).
    let limits = only(&report, "limits");
    assert_eq!(limits["verdict"], "ok", "{limits:#}");
    if kind == "Podman Engine" {
        assert_eq!(limits["facts"]["rootless"], false, "{limits:#}");
    }
    let disk = only(&report, "disk");
    // Free space is measured where the engine's socket is on this machine.
    if expected.starts_with("unix://") {
        assert!(
            disk["facts"]["free_bytes"].as_u64().unwrap() > 0,
            "{disk:#}"
        );
    } else {
        assert_eq!(disk["verdict"], "skipped", "{disk:#}");
    }
    for check in ["manifests", "skills", "ssh-keys", "credential", "terminal"] {
        assert_eq!(only(&report, check)["verdict"], "ok", "{report:#}");
    }
    assert_eq!(only(&report, "manifests")["facts"]["agents"], json!(["a"]));
    // Without a terminal, it says what that means for a start.
    let terminal = only(&report, "terminal");
    assert_eq!(terminal["facts"]["stdin"], false);
    assert!(
        terminal["summary"].as_str().unwrap().contains("--yes"),
        "{terminal:#}"
    );

    let out = sandbox.run(&["doctor"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("`claude-bottle start` can work."),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "ok    engine      {}",
            engine["summary"].as_str().unwrap()
        )),
        "{out:?}"
    );
    // Off a terminal, no progress or other noise goes to stderr.
    assert_eq!(out.stderr, "", "{out:?}");
}

#[test]
fn with_docker_host_at_a_dead_address_it_fails_and_names_the_variable() {
    let sandbox = ready(SIMPLE).env("DOCKER_HOST", "tcp://127.0.0.1:1");
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 1, "{report:#}");
    let engine = only(&report, "engine");
    assert_eq!(engine["verdict"], "fail");
    let summary = engine["summary"].as_str().unwrap();
    // "(TLS)" after the address when the suite runs with DOCKER_TLS_VERIFY.
    assert!(
        summary.starts_with("no Docker engine answers at tcp://127.0.0.1:1")
            && summary.contains("from DOCKER_HOST"),
        "{summary}"
    );
    assert!(
        engine["fix"].as_str().unwrap().contains("DOCKER_HOST"),
        "{engine:#}"
    );
    for check in ["gvisor", "limits", "image", "disk"] {
        assert_eq!(only(&report, check)["verdict"], "skipped", "{report:#}");
    }
    // What does not need the engine is still checked.
    assert_eq!(only(&report, "manifests")["verdict"], "ok", "{report:#}");
    let out = sandbox.run(&["doctor"]);
    assert_eq!(out.code, 1);
    let shown = text(&out);
    assert!(shown.contains("FAIL  engine"), "{shown}");
    assert!(
        shown.contains("fix: start that engine, or correct or unset DOCKER_HOST"),
        "{shown}"
    );
    assert!(
        shown.contains("cannot work until each FAIL above is fixed"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_broken_manifest_fails_with_its_file_line_and_fix() {
    if with_fake_claude("doctor: broken manifest").await.is_none() {
        return;
    }
    let sandbox = ready("{\n  \"agents\": {\n    \"a\": { \"bottle\": 7 }\n  }\n}\n");
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 1, "{report:#}");
    let manifests = only(&report, "manifests");
    assert_eq!(manifests["verdict"], "fail");
    let summary = manifests["summary"].as_str().unwrap();
    let file = sandbox.cwd.join("claude-bottle.json");
    assert!(
        summary.starts_with(&format!("{}:3:", file.display())),
        "{summary}"
    );
    assert!(manifests["fix"].is_string(), "{manifests:#}");
    // The engine was fine: the manifest alone stops the start.
    assert_eq!(only(&report, "engine")["verdict"], "ok");
    // A start fails the same way.
    let start = sandbox.run(&["start", "a", "--dry-run"]);
    assert_eq!(start.code, 125, "{start:?}");
    assert!(start.stderr.contains("claude-bottle.json:3:"), "{start:?}");
}

#[tokio::test]
async fn a_missing_ssh_key_a_missing_skill_and_an_unset_variable_each_fail_with_their_fix() {
    if with_fake_claude("doctor: missing key").await.is_none() {
        return;
    }
    let sandbox = ready(
        r#"{
  "bottles": {
    "keyed": { "ssh": [ { "Host": "gitea", "IdentityFile": "~/.ssh/missing_key" } ] },
    "forwards": { "env": { "GITHUB_TOKEN": "${DOCTOR_TEST_UNSET}" } },
    "plain": {}
  },
  "agents": {
    "k": { "bottle": "keyed" },
    "s": { "bottle": "plain", "skills": ["reviewing", "absent"] },
    "v": { "bottle": "forwards" },
    "fine": { "bottle": "plain" }
  }
}"#,
    );
    sandbox.skill("reviewing");
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 1, "{report:#}");
    let key = only(&report, "ssh-keys");
    assert_eq!(key["verdict"], "fail");
    assert_eq!(key["facts"]["agent"], "k");
    let summary = key["summary"].as_str().unwrap();
    assert!(summary.contains("ssh host `gitea`"), "{summary}");
    assert!(
        summary.contains(&sandbox.home.join(".ssh/missing_key").display().to_string()),
        "{summary}"
    );
    assert!(
        key["fix"].as_str().unwrap().contains("IdentityFile"),
        "{key:#}"
    );
    let skill = only(&report, "skills");
    assert_eq!(skill["verdict"], "fail");
    assert!(
        skill["summary"]
            .as_str()
            .unwrap()
            .contains("skill `absent` of agent `s`"),
        "{skill:#}"
    );
    assert!(
        skill["fix"].as_str().unwrap().contains("SKILL.md"),
        "{skill:#}"
    );
    let variable = only(&report, "environment");
    assert_eq!(variable["facts"]["agent"], "v");
    assert!(
        variable["summary"]
            .as_str()
            .unwrap()
            .contains("DOCTOR_TEST_UNSET"),
        "{variable:#}"
    );

    // With the key made, that finding clears, and only the others remain.
    sandbox.ssh_key("missing_key", "");
    let (_, report) = doctor(&sandbox);
    assert_eq!(only(&report, "ssh-keys")["verdict"], "ok", "{report:#}");
    assert_eq!(only(&report, "ssh-keys")["facts"]["count"], 1);
    assert_eq!(only(&report, "skills")["verdict"], "fail");
}

#[tokio::test]
async fn without_a_credential_it_warns_with_the_way_to_make_one_and_start_still_can_work() {
    if with_fake_claude("doctor: no credential").await.is_none() {
        return;
    }
    let sandbox = Sandbox::with_manifest(SIMPLE).env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE);
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 0, "{report:#}");
    let credential = only(&report, "credential");
    assert_eq!(credential["verdict"], "warn", "{credential:#}");
    let fix = credential["fix"].as_str().unwrap();
    assert!(
        fix.contains("claude setup-token") && fix.contains("CLAUDE_BOTTLE_OAUTH_TOKEN"),
        "{fix}"
    );
    let out = sandbox.run(&["doctor"]);
    assert!(out.stdout.contains("warn  credential"), "{out:?}");

    // An API key a bottle forwards from a variable that is set counts.
    let keyed = Sandbox::with_manifest(
        r#"{ "bottles": { "dev": { "env": { "ANTHROPIC_API_KEY": "${DOCTOR_TEST_KEY}" } } },
             "agents": { "a": { "bottle": "dev" } } }"#,
    )
    .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
    .env("DOCTOR_TEST_KEY", "sk-ant-api03-doctor-test");
    let (code, report) = doctor(&keyed);
    assert_eq!(code, 0, "{report:#}");
    let credential = only(&report, "credential");
    assert_eq!(credential["verdict"], "ok", "{credential:#}");
    assert_eq!(credential["facts"]["source"], "ANTHROPIC_API_KEY");
    assert!(!report.to_string().contains("sk-ant-api03"), "{report:#}");
}

#[tokio::test]
async fn an_image_the_engine_lacks_fails_with_how_to_get_it() {
    if with_fake_claude("doctor: image missing").await.is_none() {
        return;
    }
    let sandbox = ready(SIMPLE).env("CLAUDE_BOTTLE_IMAGE", "claude-bottle-test/no-such-image:1");
    let (code, report) = doctor(&sandbox);
    assert_eq!(code, 1, "{report:#}");
    let image = only(&report, "image");
    assert_eq!(image["verdict"], "fail");
    assert!(
        image["fix"]
            .as_str()
            .unwrap()
            .contains("docker pull claude-bottle-test/no-such-image:1"),
        "{image:#}"
    );
}
