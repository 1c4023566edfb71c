//! Which names and addresses the real gate, in its container, never
//! dials, and what its log keeps of the names it refuses. The fixture DNS
//! answers names with the addresses under test: nothing here is dialled
//! outside this machine, and a dial would show as `unreachable`, not as
//! the refusal each case expects.

use crate::gate::{World, raw_connect, refusals};

/// Metadata and platform endpoints, in the spellings a resolver may give.
const METADATA: [(&str, &str); 7] = [
    ("alibaba", "100.100.100.200"),
    ("wireserver", "168.63.129.16"),
    ("aws-v6", "fd00:ec2::254"),
    ("mapped", "::ffff:168.63.129.16"),
    ("translated", "::ffff:0:a83f:8110"),
    ("nat64", "64:ff9b::a9fe:a9fe"),
    ("nat64-own-prefix", "2001:db8:a83f:8110::"),
];

#[tokio::test]
async fn metadata_addresses_are_never_dialled_behind_any_allowed_name() {
    let mut records = Vec::new();
    let mut args = Vec::new();
    for (name, address) in METADATA {
        records.push(format!("{name}.public.test={address}"));
        records.push(format!("{name}.private.test={address}"));
        args.extend(["--allow".to_owned(), format!("{name}.public.test")]);
        args.extend(["--allow".to_owned(), format!("{name}.private.test")]);
        args.extend(["--private".to_owned(), format!("{name}.private.test")]);
    }
    let records = records.join(",");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let setup = crate::gate::Setup {
        records: &records,
        ..Default::default()
    };
    let Some(world) = World::with("metadata", &args, setup).await else {
        return;
    };
    for (name, _) in METADATA {
        for kind in ["public", "private"] {
            let host = format!("{name}.{kind}.test");
            let (_, out) = world
                .sh(&format!(
                    "curl -s -o /dev/null -w %{{http_code}} -x http://gate:3128 http://{host}/; \
                     curl -s -o /dev/null -w ,%{{http_connect}} -p -x http://gate:3128 https://{host}/"
                ))
                .await;
            assert_eq!(out, "403,403", "{host}");
        }
    }
    // The control: an allowed name that resolves to the sink gets through.
    let (_, out) = world
        .sh("curl -s -x http://gate:3128 http://allowed.test/")
        .await;
    assert_eq!(out, "sink\n");
    let log = world.log().await;
    assert_eq!(
        refusals(&log, "metadata-address").len(),
        METADATA.len() * 4,
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l["verdict"] == "unreachable"),
        "something was dialled: {log:#?}"
    );
}

#[tokio::test]
async fn names_that_map_to_other_characters_are_refused_and_the_log_keeps_no_chosen_label() {
    let Some(world) = World::new("mapped-names", &["--allow", "*.wild.test"]).await else {
        return;
    };
    for name in [
        "x\u{ff3c}.wild.test",
        "x\u{ff0f}y.wild.test",
        "u\u{ff20}wild.test",
        "x\u{3000}y.wild.test",
        "x\u{ff05}2e.wild.test",
    ] {
        let out = world
            .raw(&format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n"))
            .await;
        assert!(
            out.contains("403") && out.contains("invalid-host"),
            "{name}: {out}"
        );
        let out = world
            .raw(&format!(
                "GET http://{name}/ HTTP/1.1\r\nHost: {name}\r\n\r\n"
            ))
            .await;
        assert!(out.contains(" 40"), "{name}: {out}");
    }
    // The registrable domain is the agent's choice: only the suffix and a
    // hash are kept, and of an address nothing but its family.
    let data = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
    let (_, out) = world
        .sh(&format!(
            "{}; {}",
            raw_connect(&format!("{data}.com:443")),
            raw_connect("10.98.76.54:443")
        ))
        .await;
    assert!(
        out.contains("not-on-allowlist") || out.contains("403"),
        "{out}"
    );
    // The control: a name under the wildcard passes, and is logged as the
    // wildcard's domain: its other labels are the agent's.
    let (_, out) = world
        .sh("curl -s -o /dev/null -w %{http_code} -x http://gate:3128 http://c2VjcmV0.wild.test/")
        .await;
    assert_eq!(out, "502", "allowed, and no address answers");
    // The upstream gets the host as the gate read it, not as it was written.
    let out = world
        .raw("GET http://ALLOWED.test./canonical HTTP/1.1\r\nHost: ALLOWED.test.\r\n\r\n")
        .await;
    assert!(out.contains("sink"), "{out}");
    let records = world.sink_records();
    assert!(
        records.iter().any(|r| r["first_bytes"]
            .as_str()
            .is_some_and(|b| b.starts_with("GET /canonical HTTP/1.1\r\nHost: allowed.test\r\n"))),
        "{records:#?}"
    );
    let log = world.log().await;
    let text = log.iter().map(ToString::to_string).collect::<String>();
    assert!(!text.to_lowercase().contains("c2vjcmv0"), "{text}");
    assert!(text.contains(r#""host":"wild.test#"#), "{text}");
    assert!(!text.contains("0123456789abcdef"), "{text}");
    assert!(!text.contains("98.76"), "{text}");
    assert!(
        log.iter()
            .any(|l| l["host"].as_str().is_some_and(|h| h.starts_with("com#"))),
        "{log:#?}"
    );
}
