//! Bottles under gVisor builds users have: `ls` and `stat` work in each,
//! through the statx fallback where the build refuses coreutils' statx
//! calls (Debian 12's runsc, which scripts/test registers as
//! `runsc-bookworm` beside a sound `runsc`), and `doctor` tells that build
//! apart with its fix.

use bollard::Docker;
use serde_json::{Value, json};

use crate::support::{Sandbox, fake_claude_bottle, leftovers, run_label, with_fake_claude};

/// The faulty build's name on the test engine.
const FAULTY: &str = "runsc-bookworm";
/// A sound build's.
const SOUND: &str = "runsc";

/// Whether the engine has `runtime`; CI requires it.
async fn registered(docker: &Docker, runtime: &str) -> bool {
    let info = docker.info().await.unwrap();
    let has = info.runtimes.unwrap_or_default().contains_key(runtime);
    assert!(
        has || std::env::var_os("CI").is_none(),
        "CI is set and the engine has no {runtime}; scripts/test registers it"
    );
    has
}

/// What the agent does: make a file, then list and stat it and its home,
/// each answer on its own marked lines; and the same `stat` with the
/// fallback taken out of its environment.
const SCRIPT: &str = concat!(
    "cd /workspace && printf hello >f; ",
    r#"echo "ls-f=$(ls f 2>&1)"; "#,
    "ls -l /workspace 2>&1 | sed 's/^/ls-l: /'; ",
    r#"echo "stat=$(stat -c %s f 2>&1)"; "#,
    "ls -la ~ 2>&1 | sed 's/^/ls-la: /'; ",
    r#"echo "bare-stat=$(env -u LD_PRELOAD stat -c %s f 2>&1)""#,
);

fn lines<'t>(stdout: &'t str, mark: &str) -> Vec<&'t str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(mark))
        .collect()
}

fn bottle(label: &str, runtime: &str) -> Sandbox {
    fake_claude_bottle(
        label,
        &json!({ "env": { "FAKE_CLAUDE_RUN": SCRIPT }, "egress": { "builtin": false } }),
    )
    .env("CLAUDE_BOTTLE_RUNTIME", runtime)
}

/// `ls` and `stat` in a bottle under `runtime` give the right answers;
/// returns what `stat` said without the fallback, and the run's warnings.
async fn listing_under(docker: &Docker, runtime: &str) -> (String, String) {
    let label = run_label(&format!("gvisor-{runtime}"));
    let sandbox = bottle(&label, runtime);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let stdout = &out.stdout;
    assert_eq!(crate::support::value_of(stdout, "ls-f"), "f", "{out:?}");
    let listed = lines(stdout, "ls-l: ");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].starts_with("total "), "{listed:?}");
    assert!(
        listed[1].starts_with("-rw-r--r-- 1 agent agent 5 ") && listed[1].ends_with(" f"),
        "{listed:?}"
    );
    assert_eq!(crate::support::value_of(stdout, "stat"), "5", "{out:?}");
    let home = lines(stdout, "ls-la: ");
    assert!(
        home.iter()
            .any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" .")),
        "{home:?}"
    );
    assert!(
        home.iter()
            .any(|l| l.starts_with("-rw-r--r-- 1 agent agent") && l.ends_with(" .claude.json")),
        "{home:?}"
    );
    assert!(
        !home.iter().any(|l| l.contains('?') || l.starts_with("ls:")),
        "{home:?}"
    );
    // The plan of a later start knows what the probe found.
    let plan = sandbox.run(&["start", "a", "--dry-run", "--format", "json"]);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(leftovers(docker, &label).await, (vec![], vec![]));
    (
        crate::support::value_of(stdout, "bare-stat").to_owned(),
        format!("{}\n{}", out.stderr, plan["warnings"]),
    )
}

#[tokio::test]
async fn ls_and_stat_work_under_a_faulty_gvisor_through_the_fallback() {
    let Some(docker) = with_fake_claude("gvisor: faulty").await else {
        return;
    };
    if !registered(&docker, FAULTY).await {
        return;
    }
    let (bare, warnings) = listing_under(&docker, FAULTY).await;
    // Without the fallback the build fails them, as it does for users.
    assert_eq!(bare, "stat: cannot statx 'f': Invalid argument");
    // The launch said so, and so does the plan once it is known.
    assert_eq!(warnings.matches("statx fallback").count(), 2, "{warnings}");
}

#[tokio::test]
async fn ls_and_stat_work_under_a_sound_gvisor_and_runc_untouched() {
    let Some(docker) = with_fake_claude("gvisor: sound").await else {
        return;
    };
    let mut runtimes = vec!["runc"];
    if registered(&docker, SOUND).await {
        runtimes.push(SOUND);
    }
    for runtime in runtimes {
        let (bare, warnings) = listing_under(&docker, runtime).await;
        assert_eq!(bare, "5", "{runtime}");
        assert!(!warnings.contains("statx"), "{runtime}: {warnings}");
    }
}

#[tokio::test]
async fn doctor_names_a_faulty_gvisor_build_and_its_fix_and_passes_a_sound_one() {
    let Some(docker) = with_fake_claude("gvisor: doctor").await else {
        return;
    };
    let check = |runtime: &str| {
        let out = bottle("doctor", runtime).run(&["doctor", "--format", "json"]);
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "gvisor")
            .cloned()
            .unwrap_or_else(|| panic!("no gvisor check: {out:?}"))
    };
    if registered(&docker, FAULTY).await {
        let faulty = check(FAULTY);
        assert_eq!(faulty["verdict"], "warn", "{faulty:#}");
        assert_eq!(faulty["facts"]["statx"], "faulty", "{faulty:#}");
        let summary = faulty["summary"].as_str().unwrap();
        // It names the build, which is on this host.
        assert!(summary.contains("0.0~20221219"), "{summary}");
        let fix = faulty["fix"].as_str().unwrap();
        assert!(
            fix.contains("newer gVisor") && fix.contains("0.0~20240729"),
            "{fix}"
        );
    }
    if registered(&docker, SOUND).await {
        let sound = check(SOUND);
        assert_eq!(sound["verdict"], "ok", "{sound:#}");
        assert_eq!(sound["facts"]["statx"], "sound", "{sound:#}");
        assert!(!sound.to_string().contains("fallback"), "{sound:#}");
    }
}

#[tokio::test]
async fn real_claude_code_lists_with_ls_under_the_faulty_gvisor() {
    let Some(docker) = crate::support::with_real_claude("gvisor: real claude").await else {
        return;
    };
    if !registered(&docker, FAULTY).await {
        return;
    }
    let label = run_label("gvisor-real");
    let command = "cd /workspace && printf abc > listed-2b7 && ls -l listed-2b7";
    let script = json!([
        { "tool_use": { "name": "Bash", "input": { "command": command, "description": "list" } } },
        { "text": "listed" }
    ]);
    let (sandbox, mock, _world) = crate::support::real_claude(
        &docker,
        &label,
        &script,
        &json!({ "ANTHROPIC_API_KEY": "sk-ant-test-key-not-secret-47" }),
    )
    .await;
    let out = sandbox
        .env("CLAUDE_BOTTLE_RUNTIME", FAULTY)
        .run(&["start", "a", "--yes", "--", "-p", "list it"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "listed", "{out:?}");
    let requests = crate::support::fixture_json(&mock, 80, "/_requests");
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let result = crate::support::tool_result(&requests[1]);
    let listing = result["content"].as_str().unwrap_or_default();
    assert!(
        listing.starts_with("-rw-r--r-- 1 agent agent 3 ") && listing.ends_with(" listed-2b7"),
        "{result:#}"
    );
    assert_eq!(result["is_error"], false, "{result:#}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
