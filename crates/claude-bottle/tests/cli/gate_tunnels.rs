//! What a CONNECT tunnel may carry, against the real gate in its
//! container: to any port, HTTP must name the tunnel's host and TLS must
//! name it in every ClientHello, as it is sent. Each refusal is paired
//! with its passing control.

use crate::gate::{Setup, World, client_hello, escaped, refusals, server_names};

/// A shell line: CONNECT `target`, then send `bytes` raw, print what comes
/// back (at most 5 s) and `closed` when the gate closes.
fn through(target: &str, bytes: &[u8]) -> String {
    format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT {target} HTTP/1.1\\r\\n\\r\\n' >&3; \
         printf '{}' >&3; timeout 5 cat <&3; echo; echo closed",
        escaped(bytes)
    )
}

#[tokio::test]
async fn a_tunnel_to_another_port_carries_http_and_tls_only_for_its_host() {
    let mut args = Vec::new();
    for port in ["8080", "5432", "2525"] {
        for flag in ["--allow", "--private"] {
            args.extend([flag.to_owned(), format!("allowed.test:{port}")]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(world) = World::new("tunnels", &args).await else {
        return;
    };
    let curl = "curl -s -p -x http://gate:3128 -o /dev/null -w %{http_code}";

    // HTTP inside: its own Host passes, once; another's is refused.
    let (_, out) = world
        .sh("curl -s -p -x http://gate:3128 http://allowed.test:8080/own")
        .await;
    assert_eq!(out, "sink\n");
    let (_, out) = world
        .sh(&format!(
            "{curl} -H 'Host: other.test' http://allowed.test:8080/other"
        ))
        .await;
    assert_eq!(out, "400");
    let (_, out) = world
        .sh(&format!(
            "{curl} -H 'Host: other.test:8080' http://allowed.test:8080/other"
        ))
        .await;
    assert_eq!(out, "400");
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: allowed.test:8080\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (_, out) = world.sh(&through("allowed.test:8080", smuggled)).await;
    assert!(out.contains(" 400 "), "{out}");
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let (_, out) = world.sh(&through("allowed.test:8080", h2)).await;
    assert!(out.contains(" 400 "), "{out}");
    // A second request after the first is never sent on.
    let pipelined =
        b"GET /first HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\nGET /second HTTP/1.1\r\nHost: other.test\r\n\r\n";
    let (_, out) = world.sh(&through("allowed.test:8080", pipelined)).await;
    assert!(out.contains("sink"), "{out}");

    // TLS inside: the ClientHello names the tunnel's host, or nothing passes.
    let hello = |name: &str| client_hello(&[server_names(&[name])]);
    let (_, out) = world
        .sh(&through("allowed.test:8080", &hello("other.test")))
        .await;
    assert!(out.ends_with("closed\n"), "{out}");
    let (_, out) = world
        .sh(&through("allowed.test:8080", &hello("allowed.test")))
        .await;
    assert!(out.ends_with("closed\n"), "{out}");

    // Neither: refused on a web port, carried on another.
    let other = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
    let (_, out) = world.sh(&through("allowed.test:8080", other)).await;
    assert!(out.ends_with("closed\n"), "{out}");
    let (_, out) = world.sh(&through("allowed.test:5432", other)).await;
    assert!(out.ends_with("closed\n"), "{out}");
    // What a server could still read as a request is one, on any port.
    let after_empty_lines = b"\r\nGET /crlf HTTP/1.1\r\nHost: other.test\r\n\r\n";
    let (_, out) = world
        .sh(&through("allowed.test:5432", after_empty_lines))
        .await;
    assert!(out.contains(" 400 "), "{out}");
    // A server that speaks first carries its own protocol.
    let greeted = "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT allowed.test:2525 HTTP/1.1\\r\\n\\r\\n' >&3; \
         sleep 1; printf 'HELO bottle\\r\\n' >&3; timeout 3 cat <&3; true";
    let (_, out) = world.sh(greeted).await;
    assert!(out.contains("220 sink"), "{out}");

    // WebSocket: after the 101, both ways, as the protocol it switched to.
    let upgrade = b"GET /ws HTTP/1.1\r\nHost: allowed.test:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let script = format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT allowed.test:8080 HTTP/1.1\\r\\n\\r\\n' >&3; \
         printf '{}' >&3; sleep 1; printf 'frame-after-101' >&3; timeout 3 cat <&3; true",
        escaped(upgrade)
    );
    let (_, out) = world.sh(&script).await;
    assert!(
        out.contains(" 101 ") && out.contains("frame-after-101"),
        "{out}"
    );

    let log = world.log().await;
    for rule in [
        "host-header-mismatch",
        "malformed-request",
        "sni-mismatch",
        "unknown-protocol",
    ] {
        assert!(
            refusals(&log, rule).iter().any(|l| l["port"] == 8080),
            "{rule}: {log:#?}"
        );
    }
    assert_only_the_allowed_arrived(&world);
}

/// What the sink got on each port: only what passed, in order, and none
/// of what was refused. (The gate dials before it has read the client,
/// since some servers speak first: a refused tunnel leaves a connection
/// that carried nothing.)
fn assert_only_the_allowed_arrived(world: &World) {
    let records = world.sink_records();
    let on = |port: u16| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["port"] == port)
            .map(|r| r["first_bytes"].as_str().unwrap().to_owned())
            .filter(|first| !first.is_empty())
            .collect()
    };
    let web = on(8080);
    assert_eq!(web.len(), 4, "{records:#?}");
    assert!(
        web[0].starts_with("GET /own HTTP/1.1\r\nHost: allowed.test:8080\r\n"),
        "{web:?}"
    );
    assert!(web[1].starts_with("GET /first "), "{web:?}");
    assert!(web[2].starts_with('\u{16}'), "{web:?}");
    assert!(web[3].starts_with("GET /ws "), "{web:?}");
    let received: String = records
        .iter()
        .filter_map(|r| r["received"].as_str())
        .collect();
    for unsent in ["/other", "/smuggled", "/second", "/crlf", "other.test"] {
        assert!(!received.contains(unsent), "{unsent} arrived: {records:#?}");
    }
    assert_eq!(on(5432).len(), 1, "{records:#?}");
    assert_eq!(on(2525), ["HELO bottle\r\n"], "{records:#?}");
}

#[tokio::test]
async fn a_server_name_passes_only_as_the_canonical_name_it_was_checked_as() {
    let Some(world) = World::new("canonical-sni", &[]).await else {
        return;
    };
    let tunnel = |name: &str| through("allowed.test:443", &client_hello(&[server_names(&[name])]));
    for spelling in [
        "ALLOWED.test",
        "allowed.test.",
        "allowed\u{ad}.test",
        "allowed\u{3002}test",
    ] {
        let (_, out) = world.sh(&tunnel(spelling)).await;
        assert!(out.ends_with("closed\n"), "{out}");
    }
    assert!(
        world.sink_records().is_empty(),
        "{:#?}",
        world.sink_records()
    );
    let (_, out) = world.sh(&tunnel("allowed.test")).await;
    assert!(out.ends_with("closed\n"), "{out}");
    assert_eq!(world.sink_records().len(), 1);
    let log = world.log().await;
    assert_eq!(refusals(&log, "sni-not-canonical").len(), 4, "{log:#?}");
}

/// A TLS 1.3 ClientHello naming `name` whose key share is for `group`
/// (P-521, 0x0019, which the fixture server lacks; or X25519, 0x001d).
fn tls13_hello(name: &str, group: u16) -> Vec<u8> {
    let share_len: usize = if group == 0x0019 { 133 } else { 32 };
    let mut share = group.to_be_bytes().to_vec();
    share.extend(u16::try_from(share_len).unwrap().to_be_bytes());
    share.push(4);
    share.extend(std::iter::repeat_n(9u8, share_len - 1));
    let mut key_share = u16::try_from(share.len()).unwrap().to_be_bytes().to_vec();
    key_share.extend(share);
    client_hello(&[
        server_names(&[name]),
        (0x002b, vec![2, 3, 4]),
        (0x000a, vec![0, 4, 0, 0x19, 0, 0x1d]),
        (0x000d, vec![0, 6, 4, 3, 8, 4, 8, 7]),
        (0x0033, key_share),
    ])
}

#[tokio::test]
async fn after_a_hello_retry_request_the_second_client_hello_must_name_the_same_host() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "tls.test");
    let setup = Setup {
        tls: Some(dir.path()),
        ..Setup::default()
    };
    let args = ["--allow", "tls.test", "--private", "tls.test"];
    let Some(world) = World::with("hello-retry", &args, setup).await else {
        return;
    };
    // A real client forced through a retry: P-521 first, which the server
    // lacks, so it asks again for X25519.
    let (_, out) = world
        .sh(
            "openssl s_client -proxy gate:3128 -connect tls.test:443 -servername tls.test \
             -tls1_3 -groups P-521:X25519 </dev/null 2>&1",
        )
        .await;
    assert!(out.contains("Server Temp Key: X25519"), "{out}");
    // The same, by hand, with another name in the second hello.
    let script = format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT tls.test:443 HTTP/1.1\\r\\n\\r\\n' >&3; \
         printf '{}' >&3; timeout 3 head -c 82 <&3 | od -An -tx1 | tr -d ' \\n'; echo; \
         printf '{}' >&3; timeout 5 cat <&3 >/dev/null; echo closed",
        escaped(&tls13_hello("tls.test", 0x0019)),
        escaped(&tls13_hello("other.test", 0x001d)),
    );
    let (_, out) = world.sh(&script).await;
    // The retry's random (RFC 8446, 4.1.3) came back, then the gate closed.
    assert!(out.contains("cf21ad74e59a6111be1d8c021e65b891"), "{out}");
    assert!(out.ends_with("closed\n"), "{out}");
    // Both hellos at once, the second ahead of the retry it answers.
    let mut both = tls13_hello("tls.test", 0x0019);
    both.extend(tls13_hello("other.test", 0x001d));
    let script = format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT tls.test:443 HTTP/1.1\\r\\n\\r\\n' >&3; \
         printf '{}' >&3; timeout 5 cat <&3 >/dev/null; echo closed",
        escaped(&both),
    );
    let (_, out) = world.sh(&script).await;
    assert!(out.ends_with("closed\n"), "{out}");
    let log = world.log().await;
    assert_eq!(refusals(&log, "sni-mismatch").len(), 2, "{log:#?}");
}

/// A self-signed certificate for `name` in `dir` (`server.pem`, `server.key`).
fn certificate(dir: &std::path::Path, name: &str) {
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-keyout", "server.key", "-out", "server.pem", "-days", "2"])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // The fixture reads them as its own user.
    for file in ["server.key", "server.pem"] {
        let path = dir.join(file);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}
