//! Bad manifests stop every command with exit 125 and a located message.
//! (Each error's full text is snapshotted in the bottle crate's tests.)

use crate::support::Sandbox;

#[test]
fn every_bad_manifest_exits_125_with_its_location() {
    let cases = [
        (
            r#"{"bottles": {"dev": {"egres": {}}}}"#,
            "unknown key `egres`",
        ),
        (
            r#"{"bottles": {"dev": {"env": {"A": 1}}}}"#,
            "must be a string",
        ),
        (
            r#"{"bottles": {}, "agents": {"a": {"bottle": "nope"}}}"#,
            "bottle `nope`, which is not defined",
        ),
        (
            r#"{"bottles": {"dev": {"ssh": [{"Host": "g", "IdentityFile": "k", "Port": 0}]}}}"#,
            "port from 1 to 65535",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["https://x.org"]}}}}"#,
            "has a scheme",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["x.org/a"]}}}}"#,
            "has a path",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["x .org"]}}}}"#,
            "white space",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["x.org:0"]}}}}"#,
            "bad port",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.co.uk"]}}}}"#,
            "`co.uk` is a public suffix",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.windows.net"]}}}}"#,
            "windows.net` is a public suffix",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["*.fastly.net"]}}}}"#,
            "fastly.net` is a public suffix",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["100.100.100.200"]}}}}"#,
            "metadata address",
        ),
        (
            r#"{"bottles": {"dev": {"egress": {"allowlist": ["a.org"], "private": ["b.org"]}}}}"#,
            "not in the allowlist",
        ),
        (
            r#"{"bottles": {"dev": {"env": {"1A": "x"}}}}"#,
            "not a valid environment variable name",
        ),
        (
            r#"{"bottles": {"dev": {"env": {"HTTP_PROXY": "x"}}}}"#,
            "set by claude-bottle itself",
        ),
        (
            r#"{"bottles": {"dev": {"env": {"A": "x\ny"}}}}"#,
            "has a line break",
        ),
    ];
    for (manifest, expected) in cases {
        let sandbox = Sandbox::with_manifest(manifest);
        for args in [&["info", "a"][..], &["start", "a", "--dry-run"]] {
            let out = sandbox.run(args);
            assert_eq!(out.code, 125, "{manifest}: {out:?}");
            assert!(
                out.stderr.contains(expected),
                "{manifest}: expected `{expected}` in {out:?}"
            );
            let location = format!("{}:1:", sandbox.cwd.join("claude-bottle.json").display());
            assert!(
                out.stderr.contains(&location),
                "{manifest}: no location in {out:?}"
            );
            assert!(out.stdout.is_empty(), "{out:?}");
        }
    }
}

#[test]
fn no_manifest_names_both_paths_and_the_way_out() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["start", "a", "--dry-run"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains(&sandbox.cwd.join("claude-bottle.json").display().to_string())
    );
    assert!(
        out.stderr.contains(
            &sandbox
                .home
                .join("claude-bottle.json")
                .display()
                .to_string()
        )
    );
    // The way out: a manifest to write, not a command that is not there.
    assert!(
        out.stderr
            .contains(r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev"}}}"#),
        "{out:?}"
    );
}
