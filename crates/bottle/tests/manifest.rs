//! Loading manifests from real files: merge rules and every load-time error,
//! rendered as the user sees them.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use bottle::env::EnvSpec;
use bottle::manifest::Manifest;

struct Dirs {
    _root: tempfile::TempDir,
    home: std::path::PathBuf,
    cwd: std::path::PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let cwd = root.path().join("work");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&cwd).unwrap();
        Self {
            _root: root,
            home,
            cwd,
        }
    }

    fn load(&self) -> Result<Manifest, String> {
        Manifest::load(&self.cwd, &self.home).map_err(|err| {
            err.to_string()
                .replace(&self.cwd.display().to_string(), "[CWD]")
                .replace(&self.home.display().to_string(), "[HOME]")
        })
    }
}

fn write_manifest(dir: &Path, text: &str) {
    fs::write(dir.join("claude-bottle.json"), text).unwrap();
}

#[test]
fn cwd_entries_replace_home_entries_whole() {
    let dirs = Dirs::new();
    write_manifest(
        &dirs.home,
        r#"{
  "bottles": {
    "dev": { "env": { "A": "home" }, "egress": { "allowlist": ["home.example.com"] } },
    "shared": { "egress": { "builtin": false } }
  },
  "agents": {
    "a": { "bottle": "dev", "prompt": "home prompt", "skills": ["tdd"] },
    "b": { "bottle": "shared" }
  }
}"#,
    );
    write_manifest(
        &dirs.cwd,
        r#"{
  "bottles": { "dev": { "env": { "B": "${HOST_B}" } } },
  "agents": { "a": { "bottle": "shared" }, "c": { "bottle": "dev" } }
}"#,
    );
    let manifest = dirs.load().unwrap();
    assert_eq!(manifest.files.len(), 2);
    let dev = &manifest.bottles["dev"];
    // Replaced whole: nothing of the home file's `dev` survives.
    assert_eq!(dev.env.len(), 1);
    assert_eq!(dev.env[0].name, "B");
    assert_eq!(
        dev.env[0].spec,
        EnvSpec::Host {
            var: "HOST_B".into()
        }
    );
    assert!(dev.egress.allowlist.is_empty() && dev.egress.builtin);
    assert!(!manifest.bottles["shared"].egress.builtin);
    let a = &manifest.agents["a"];
    assert_eq!(a.bottle.value, "shared");
    assert!(a.prompt.is_none() && a.skills.is_empty());
    // Untouched entries of either file remain.
    assert_eq!(manifest.agents["b"].bottle.value, "shared");
    assert_eq!(manifest.agents["c"].bottle.value, "dev");
}

#[test]
fn either_file_alone_is_enough() {
    let dirs = Dirs::new();
    write_manifest(
        &dirs.home,
        r#"{"bottles": {"b": {}}, "agents": {"x": {"bottle": "b"}}}"#,
    );
    assert_eq!(
        dirs.load().unwrap().files,
        [dirs.home.join("claude-bottle.json")]
    );
    let dirs = Dirs::new();
    write_manifest(
        &dirs.cwd,
        r#"{"bottles": {"b": {}}, "agents": {"x": {"bottle": "b"}}}"#,
    );
    assert_eq!(
        dirs.load().unwrap().files,
        [dirs.cwd.join("claude-bottle.json")]
    );
}

#[test]
fn an_agent_may_use_a_bottle_from_the_other_file() {
    let dirs = Dirs::new();
    write_manifest(&dirs.home, r#"{"bottles": {"dev": {}}}"#);
    write_manifest(&dirs.cwd, r#"{"agents": {"x": {"bottle": "dev"}}}"#);
    assert!(dirs.load().is_ok());
}

#[test]
fn the_effective_allowlist_is_normalised_sorted_and_deduplicated() {
    let dirs = Dirs::new();
    write_manifest(
        &dirs.cwd,
        r#"{"bottles": {"b": {"egress": {
            "allowlist": ["PyPI.org", "claude.ai", "pypi.org.", "gitea:30009", "10.0.0.5"],
            "private": ["gitea:30009"]
        }}}}"#,
    );
    let manifest = dirs.load().unwrap();
    let egress = &manifest.bottles["b"].egress;
    assert_eq!(
        egress.effective_allowlist(),
        [
            "10.0.0.5",
            "api.anthropic.com",
            "claude.ai",
            "gitea:30009",
            "platform.claude.com",
            "pypi.org"
        ]
    );
    assert_eq!(egress.private[0].to_string(), "gitea:30009");
}

#[test]
fn ssh_ports_may_be_numbers_or_strings() {
    let dirs = Dirs::new();
    write_manifest(
        &dirs.cwd,
        r#"{"bottles": {"b": {"ssh": [
            {"Host": "a", "IdentityFile": "~/.ssh/a", "Port": 30009},
            {"Host": "b", "Hostname": "b.example.com", "IdentityFile": "~/.ssh/b", "Port": "2222"},
            {"Host": "c", "IdentityFile": "~/.ssh/c"}
        ]}}}"#,
    );
    let manifest = dirs.load().unwrap();
    let ports: Vec<_> = manifest.bottles["b"]
        .ssh
        .iter()
        .map(bottle::manifest::SshHost::port_or_default)
        .collect();
    assert_eq!(ports, [30009, 2222, 22]);
    assert_eq!(manifest.bottles["b"].ssh[1].target(), "b.example.com");
}

/// Each case is a cwd manifest that must not load; the snapshot holds what
/// the user sees for each.
const BAD_MANIFESTS: &[(&str, &str)] = &[
    ("syntax error", "{\"bottles\": {\"dev\": {},}}"),
    ("top-level unknown key", r#"{"bottles": {}, "agent": {}}"#),
    (
        "bottle unknown key",
        r#"{"bottles": {"dev": {"egres": {}}}}"#,
    ),
    (
        "egress unknown key",
        r#"{"bottles": {"dev": {"egress": {"allowlst": []}}}}"#,
    ),
    (
        "agent unknown key",
        r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev", "skill": []}}}"#,
    ),
    (
        "ssh unknown key",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "IdentityFile": "k", "Identity": "x"}]}}}"#,
    ),
    ("bottles not an object", r#"{"bottles": []}"#),
    (
        "skills not a list",
        r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev", "skills": "tdd"}}}"#,
    ),
    (
        "builtin not a boolean",
        r#"{"bottles": {"dev": {"egress": {"builtin": "no"}}}}"#,
    ),
    (
        "prompt not a string",
        r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev", "prompt": 3}}}"#,
    ),
    (
        "env value not a string",
        r#"{"bottles": {"dev": {"env": {"PORT": 8080}}}}"#,
    ),
    (
        "agent without bottle",
        r#"{"bottles": {"dev": {}}, "agents": {"a": {}}}"#,
    ),
    (
        "agent naming an undefined bottle",
        r#"{"bottles": {"dev": {}, "ops": {}}, "agents": {"a": {"bottle": "prod"}}}"#,
    ),
    (
        "ssh without IdentityFile",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "gitea"}]}}}"#,
    ),
    (
        "ssh port zero",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "IdentityFile": "k", "Port": 0}]}}}"#,
    ),
    (
        "ssh port too big",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "IdentityFile": "k", "Port": 70000}]}}}"#,
    ),
    (
        "ssh port not a number",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "IdentityFile": "k", "Port": "ssh"}]}}}"#,
    ),
    (
        "ssh hostname with a port",
        r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "Hostname": "g.example.com:22", "IdentityFile": "k"}]}}}"#,
    ),
    (
        "egress scheme",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["https://pypi.org"]}}}}"#,
    ),
    (
        "egress path",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["pypi.org/simple"]}}}}"#,
    ),
    (
        "egress spaces",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["pypi .org"]}}}}"#,
    ),
    (
        "egress bad port",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["pypi.org:99999"]}}}}"#,
    ),
    (
        "egress wildcard on a TLD",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.com"]}}}}"#,
    ),
    (
        "egress wildcard on a public suffix",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.co.uk"]}}}}"#,
    ),
    (
        "egress wildcard over a suffix below it",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.amazonaws.com"]}}}}"#,
    ),
    (
        "egress wildcard over one suffix below it",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.core.windows.net"]}}}}"#,
    ),
    (
        "egress full-width name",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["x\uff3c.example.com"]}}}}"#,
    ),
    (
        "egress metadata outside link-local",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["168.63.129.16"]}}}}"#,
    ),
    (
        "egress loopback literal",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["127.0.0.1:8080"]}}}}"#,
    ),
    (
        "egress metadata literal",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["169.254.169.254"]}}}}"#,
    ),
    (
        "egress octal address",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["0177.0.0.1"]}}}}"#,
    ),
    (
        "private not on the allowlist",
        r#"{"bottles": {"dev": {"egress": {"allowlist": ["gitea:3000"], "private": ["gitea"]}}}}"#,
    ),
    (
        "env name invalid",
        r#"{"bottles": {"dev": {"env": {"MY-VAR": "x"}}}}"#,
    ),
    (
        "env name reserved",
        r#"{"bottles": {"dev": {"env": {"HTTPS_PROXY": "http://evil"}}}}"#,
    ),
    (
        "env name reserved lower case",
        r#"{"bottles": {"dev": {"env": {"no_proxy": "*"}}}}"#,
    ),
    (
        "env name reserved token",
        r#"{"bottles": {"dev": {"env": {"CLAUDE_CODE_OAUTH_TOKEN": "?"}}}}"#,
    ),
    (
        "env literal with a newline",
        r#"{"bottles": {"dev": {"env": {"KEY": "line one\nline two"}}}}"#,
    ),
    ("duplicate bottle", r#"{"bottles": {"dev": {}, "dev": {}}}"#),
    (
        "skill with a path",
        r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev", "skills": ["../etc"]}}}"#,
    ),
];

#[test]
fn every_load_error_names_file_line_and_column_and_says_what_to_do() {
    let mut report = String::new();
    for (name, text) in BAD_MANIFESTS {
        let dirs = Dirs::new();
        write_manifest(&dirs.cwd, text);
        let rendered = dirs.load().expect_err(name);
        assert!(
            rendered.contains("[CWD]/claude-bottle.json:"),
            "{name}: no location in\n{rendered}"
        );
        assert!(rendered.contains("help:"), "{name}: no hint in\n{rendered}");
        let _ = writeln!(report, "=== {name}\n{rendered}\n");
    }
    insta::assert_snapshot!("load_errors", report);
}

#[test]
fn an_env_value_error_does_not_quote_the_value() {
    let dirs = Dirs::new();
    write_manifest(
        &dirs.cwd,
        r#"{"bottles": {"dev": {"env": {"KEY": "s3cr3t-line\nmore"}}}}"#,
    );
    let rendered = dirs.load().unwrap_err();
    assert!(rendered.contains("`KEY`"), "{rendered}");
    assert!(!rendered.contains("s3cr3t"), "{rendered}");
}

#[test]
fn neither_file_present_names_both_paths() {
    let dirs = Dirs::new();
    insta::assert_snapshot!("no_manifest", dirs.load().unwrap_err());
}

/// Whether the JSON Schema editors get accepts `text`; `None` for text
/// that is not JSON at all.
fn schema_accepts(text: &str) -> Option<bool> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/claude-bottle.schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    compiler.add_resource("s.json", schema).unwrap();
    let index = compiler.compile("s.json", &mut schemas).unwrap();
    Some(schemas.validate(&value, index).is_ok())
}

/// Errors about the shape of the file, which the schema must report too;
/// the rest (host patterns, names, values) only the loader knows.
fn is_shape_error(message: &str) -> bool {
    message.contains("unknown key")
        || message.contains("has no `")
        || [
            "an object",
            "a string",
            "a list",
            "true or false",
            "a port number",
            "a port from",
        ]
        .iter()
        .any(|t| message.contains(&format!("must be {t}")))
}

#[test]
fn the_schema_agrees_with_the_loader() {
    // Every manifest the loader accepts: the README's and the tests' own.
    let readme = include_str!("../../../README.md");
    let mut good: Vec<String> = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::to_owned)
        .collect();
    good.extend(
        [
            r#"{"$schema": "x.json", "bottles": {"dev": {"env": {"A": "?", "B": "${B}"}, "ssh": [{"Host": "g", "Hostname": "g.example.com", "User": "git", "Port": "2222", "IdentityFile": "~/.ssh/k", "KnownHostKey": "ssh-ed25519 AAAA"}], "egress": {"allowlist": ["*.example.com", "h:8443"], "private": ["h:8443"], "builtin": false}}}, "agents": {"a": {"bottle": "dev", "skills": ["tdd"], "prompt": "p", "default": true}}}"#,
            r#"{"bottles": {}, "agents": {}}"#,
            "{}",
        ]
        .map(str::to_owned),
    );
    let mut checked = 0;
    for text in &good {
        let dirs = Dirs::new();
        write_manifest(&dirs.cwd, text);
        match dirs.load() {
            Ok(_) => {
                assert_eq!(
                    schema_accepts(text),
                    Some(true),
                    "the schema refuses\n{text}"
                );
                checked += 1;
            }
            Err(err) => panic!("a manifest meant to load does not: {err}\n{text}"),
        }
    }
    assert!(checked >= 4, "only {checked} manifests loaded");
    // Every shape error the loader reports, the schema reports too.
    let mut shapes = 0;
    for (name, text) in BAD_MANIFESTS {
        let dirs = Dirs::new();
        write_manifest(&dirs.cwd, text);
        let message = dirs.load().expect_err(name);
        let first = message.lines().next().unwrap_or_default();
        if is_shape_error(first) {
            assert_eq!(
                schema_accepts(text),
                Some(false),
                "{name}: the schema accepts it\n{text}"
            );
            shapes += 1;
        }
    }
    assert!(
        shapes >= 5,
        "only {shapes} shape errors among the bad manifests"
    );
}
