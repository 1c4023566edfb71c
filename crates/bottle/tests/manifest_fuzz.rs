//! Manifests no one would write, generated: any text, JSON of every shape
//! with the manifest's own keys in it, and real manifests cut or with
//! bytes spliced in. Loading each gives a manifest or an error whose whole
//! diagnostic renders; it never panics.

use bottle::manifest::Manifest;
use proptest::prelude::*;

/// Keys the loader knows, and a few it does not.
const KEYS: &[&str] = &[
    "bottles",
    "agents",
    "bottle",
    "env",
    "egress",
    "allowlist",
    "private",
    "builtin",
    "ssh",
    "skills",
    "prompt",
    "default",
    "$schema",
    "host",
    "key",
    "port",
    "user",
    "known_hosts",
    "dev",
    "a",
    "",
    "ünï",
    "x\u{0}y",
];

/// Strings that mean something somewhere in a manifest.
fn words() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("${HOME}".to_owned()),
        Just("${".to_owned()),
        Just("?your token".to_owned()),
        Just("*.example.com".to_owned()),
        Just("example.com:99999".to_owned()),
        Just("[::1]:22".to_owned()),
        Just("169.254.169.254".to_owned()),
        Just("~/.ssh/id_ed25519".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("日本語\u{202e}".to_owned()),
        ".{0,12}",
    ]
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        words().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                serde_json::Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| ((*k).to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

const REAL: &str = r#"{
  "$schema": "./claude-bottle.schema.json",
  "bottles": {
    "dev": {
      "env": { "TOKEN": "${HOST_TOKEN}", "PASS": "?your password", "NAME": "Ada" },
      "egress": { "allowlist": ["pypi.org", "*.github.com:443", "gitea"], "private": ["gitea"], "builtin": true },
      "ssh": [{ "Host": "github.com", "User": "git", "Port": 22, "IdentityFile": "~/.ssh/id_ed25519" }]
    }
  },
  "agents": { "a": { "bottle": "dev", "skills": ["tdd"], "prompt": "Be careful.", "default": true } }
}"#;

/// Loads `text` as the working directory's manifest; renders any error.
fn load(text: &[u8]) {
    let cwd = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("claude-bottle.json"), text).unwrap();
    if let Err(err) = Manifest::load(cwd.path(), home.path()) {
        let shown = err.to_string();
        assert!(!shown.is_empty());
        let _ = (err.location(), err.all_hints());
    }
}

#[test]
fn the_manifest_the_splices_start_from_loads() {
    let cwd = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("claude-bottle.json"), REAL).unwrap();
    let manifest = Manifest::load(cwd.path(), home.path()).unwrap();
    assert_eq!(manifest.agents.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_loads_or_is_refused(text in prop::collection::vec(any::<u8>(), 0..400)) {
        load(&text);
    }

    #[test]
    fn json_of_any_shape_loads_or_is_refused(value in json()) {
        load(value.to_string().as_bytes());
        load(serde_json::json!({ "bottles": { "dev": value.clone() }, "agents": { "a": { "bottle": "dev" } } }).to_string().as_bytes());
        load(serde_json::json!({ "bottles": { "dev": {} }, "agents": { "a": value } }).to_string().as_bytes());
    }

    #[test]
    fn a_real_manifest_cut_or_spliced_loads_or_is_refused(
        cut in 0..REAL.len(),
        at in 0..REAL.len(),
        spliced in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        load(&REAL.as_bytes()[..cut]);
        let mut text = REAL.as_bytes().to_vec();
        text.splice(at..at, spliced);
        load(&text);
    }
}
