//! Secret values are resolved, and never shown: not in the plan, the
//! preflight, `info` or an error, not even base64-encoded.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::support::{Output, Sandbox};

const MANIFEST: &str = r#"{
  "bottles": { "dev": { "env": {
    "TOKEN": "${HOST_SECRET}", "PASS": "?the password", "NAME": "Ada"
  } } },
  "agents": { "a": { "bottle": "dev" } }
}"#;
const HOST_VALUE: &str = "host-secret-4f1c9a";
const OAUTH_VALUE: &str = "oauth-secret-7d2e0b";

#[track_caller]
pub(crate) fn assert_never_shown(out: &str, values: &[&str]) {
    for value in values {
        for form in [
            (*value).to_owned(),
            STANDARD.encode(value),
            URL_SAFE_NO_PAD.encode(value),
        ] {
            assert!(
                !out.contains(&form),
                "`{form}` (from {value}) shown in:\n{out}"
            );
        }
    }
}

fn with_secrets() -> Sandbox {
    Sandbox::with_manifest(MANIFEST)
        .env("HOST_SECRET", HOST_VALUE)
        .env("CLAUDE_BOTTLE_OAUTH_TOKEN", OAUTH_VALUE)
}

#[test]
fn a_host_variable_is_resolved_at_prepare_and_never_shown() {
    // Resolution is real: unset, the start fails naming the variable.
    let unset = Sandbox::with_manifest(MANIFEST).run(&["start", "a", "--dry-run"]);
    assert_eq!(unset.code, 125, "{unset:?}");
    assert!(
        unset
            .stderr
            .contains("host variable `HOST_SECRET`, which is not set"),
        "{unset:?}"
    );

    let sandbox = with_secrets();
    let outputs: Vec<Output> = vec![
        sandbox.run(&["start", "a", "--dry-run"]),
        sandbox.run(&["start", "a", "--dry-run", "--format", "json"]),
        sandbox.run(&["info", "a"]),
    ];
    for out in &outputs {
        assert_eq!(out.code, 0, "{out:?}");
        assert_never_shown(&out.all(), &[HOST_VALUE, OAUTH_VALUE]);
    }
    let plan = outputs[1].json();
    assert_eq!(
        plan["env"]["forwarded"],
        serde_json::json!(["PASS", "TOKEN"])
    );
    assert_eq!(plan["env"]["literal"], serde_json::json!(["NAME"]));
    assert_eq!(plan["oauth_token_forwarded"], true);
    // A dry run never asks for the `?` secret.
    assert!(
        !outputs[0].stderr.contains("the password"),
        "{:?}",
        outputs[0]
    );

    let remote = sandbox.run(&[
        "start",
        "a",
        "--dry-run",
        "--remote-control",
        "--format",
        "json",
    ]);
    assert_eq!(remote.json()["oauth_token_forwarded"], false);
}

#[tokio::test]
async fn without_a_terminal_the_secrets_to_ask_are_named() {
    if crate::support::connect("secrets without a terminal")
        .await
        .is_none()
    {
        return;
    }
    let out = with_secrets().run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("`PASS` must be typed on a terminal"),
        "{out:?}"
    );
    assert!(out.stderr.contains("${VAR}"), "{out:?}");
    assert_never_shown(&out.all(), &[HOST_VALUE, OAUTH_VALUE]);
}
