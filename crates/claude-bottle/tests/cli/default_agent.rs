//! `start` without an agent name: the built-in agent when there is no
//! manifest, the manifest's default or only agent otherwise, and a list to
//! choose from when there is no telling.

use serde_json::json;

use crate::support::{Sandbox, leftovers, run_label, with_fake_claude};

#[test]
fn with_no_manifest_start_plans_the_builtin_agent_and_says_so() {
    let sandbox = Sandbox::new();
    let plan = sandbox
        .run(&["start", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(plan["agent"], "default", "{plan}");
    assert_eq!(plan["egress"]["builtin"], true, "{plan}");
    assert_eq!(
        plan["egress"]["allowlist"],
        json!(bottle::manifest::BUILTIN_HOSTS),
        "only Claude Code's own hosts: {plan}"
    );
    assert_eq!(plan["skills"], json!([]), "{plan}");
    assert_eq!(
        plan["env"],
        json!({ "forwarded": [], "literal": [] }),
        "{plan}"
    );
    assert_eq!(plan["prompt"]["present"], false, "{plan}");
    assert_eq!(plan["ssh"], json!([]), "{plan}");
    let text = sandbox.run(&["start", "--dry-run"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stderr.contains("this is the built-in agent `default`"),
        "{text:?}"
    );
    // `info` still needs a manifest: it is about one.
    assert_eq!(sandbox.run(&["info", "default"]).code, 125);
}

#[tokio::test]
async fn with_no_manifest_a_session_runs() {
    let Some(docker) = with_fake_claude("builtin agent").await else {
        return;
    };
    let label = run_label("builtin-agent");
    let sandbox = Sandbox::new()
        .env("CLAUDE_BOTTLE_IMAGE", crate::support::FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{}={label}", crate::support::TEST_LABEL),
        );
    let out = sandbox.run(&["start", "--yes", "--", "--version"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("built-in agent"), "{out:?}");
    assert!(out.stderr.contains("agent      default"), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

fn agents(agents: &serde_json::Value) -> Sandbox {
    let manifest = json!({ "$schema": "https://example.invalid/schema.json", "bottles": { "dev": {} }, "agents": agents });
    Sandbox::with_manifest(&manifest.to_string())
}

#[test]
fn without_a_name_start_takes_the_default_or_only_agent_or_lists_them() {
    let plan_agent = |sandbox: &Sandbox| {
        sandbox
            .run(&["start", "--dry-run", "--format", "json"])
            .json()["agent"]
            .clone()
    };
    let only = agents(&json!({ "solo": { "bottle": "dev" } }));
    assert_eq!(plan_agent(&only), "solo");
    let marked = agents(&json!({
        "a": { "bottle": "dev" },
        "b": { "bottle": "dev", "default": true },
        "c": { "bottle": "dev", "default": false },
    }));
    assert_eq!(plan_agent(&marked), "b");
    // Named, the name wins over the default.
    let named = marked
        .run(&["start", "c", "--dry-run", "--format", "json"])
        .json();
    assert_eq!(named["agent"], "c");

    let unmarked = agents(&json!({ "a": { "bottle": "dev" }, "b": { "bottle": "dev" } }));
    let out = unmarked.run(&["start", "--dry-run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("defines `a`, `b`"), "{out:?}");
    assert!(out.stderr.contains("claude-bottle start a"), "{out:?}");

    let two = agents(&json!({
        "a": { "bottle": "dev", "default": true },
        "b": { "bottle": "dev", "default": true },
    }));
    let out = two.run(&["start", "a", "--dry-run"]);
    assert_eq!(out.code, 125, "a load error, whatever is started: {out:?}");
    assert!(
        out.stderr.contains("agents `a` and `b` are both marked"),
        "{out:?}"
    );
    let wrong = agents(&json!({ "a": { "bottle": "dev", "default": "yes" } }));
    let out = wrong.run(&["start", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("agents.a.default"), "{out:?}");
}
