//! The proxy: CONNECT tunnels and plain HTTP in absolute form, each
//! decided by the policy before anything is resolved or dialled.
//!
//! Bounds keep one client from starving the others: a request head may be
//! at most [`MAX_HEAD`] bytes and must arrive within the header timeout,
//! at most `max_connections` are served at once (more get a 503 while a
//! few tasks may answer them, and are closed beyond), and a connection
//! with no traffic either way for the idle timeout is closed. A busy
//! tunnel lives as long as it is used: Claude sessions are long.
//!
//! Each request is logged once, when it is decided: allowed once its
//! upstream is dialled, refused, or unreachable when no address answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::activity::Activity;
use crate::forward::{self, Framing};
use crate::host::{self, Host};
use crate::log::DecisionLog;
use crate::policy::{Grant, Method, Policy, Refusal};
use crate::relay;
use crate::resolve::Resolver;
use crate::sni::{self, Hello};

/// The largest request head the gate reads.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long one address may take to answer a dial.
const DIAL_WITHIN: Duration = Duration::from_secs(10);
/// At most this many tasks answer connections over the limit at once;
/// beyond them a connection is closed unanswered.
const MAX_TURNED_AWAY: usize = 64;
/// The longest the accept loop waits after an error (out of descriptors)
/// before it tries again.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub policy: Policy,
    /// `None`: the first nameserver of `/etc/resolv.conf`.
    pub dns: Option<SocketAddr>,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

struct Gate {
    policy: Policy,
    resolver: Resolver,
    log: DecisionLog,
    header_timeout: Duration,
    idle_timeout: Duration,
}

/// Serves until the listener fails, deciding into `log`.
pub async fn serve(config: Config, log: DecisionLog) -> std::io::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    serve_on(listener, config, log).await
}

/// Serves on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    log: DecisionLog,
) -> std::io::Result<()> {
    let gate = Arc::new(Gate {
        policy: config.policy,
        resolver: Resolver::new(config.dns)?,
        log,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
    });
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let turning_away = Arc::new(Semaphore::new(MAX_TURNED_AWAY));
    gate.log.ready(listener.local_addr()?);
    let mut backoff = Duration::ZERO;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // EMFILE and the like: retrying at once would spin.
            backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
            tokio::time::sleep(backoff).await;
            continue;
        };
        backoff = Duration::ZERO;
        // A proxy's writes are whole messages: none should wait for an ACK.
        let _ = client.set_nodelay(true);
        let gate = gate.clone();
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            tokio::spawn(async move {
                gate.handle(client).await;
                drop(permit);
            });
        } else if let Ok(permit) = turning_away.clone().try_acquire_owned() {
            tokio::spawn(async move {
                let mut client = client;
                let _ = respond(
                    &mut client,
                    503,
                    "the gate is serving as many connections as it may; try again",
                )
                .await;
                drop(permit);
            });
        }
    }
}

/// A parsed request head and the bytes that came after it.
struct Head {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
    rest: Vec<u8>,
}

enum HeadError {
    /// Closed or idle before a full head arrived: nothing to answer.
    Gone,
    TooLarge,
    Malformed,
}

impl Gate {
    async fn handle(&self, mut client: TcpStream) {
        let head = match tokio::time::timeout(self.header_timeout, read_head(&mut client)).await {
            Ok(Ok(head)) => head,
            Ok(Err(HeadError::TooLarge)) => {
                self.log.refuse("(unread)", None, 0, "head-too-large");
                let _ = respond(&mut client, 431, "the request head is too large").await;
                return;
            }
            Ok(Err(HeadError::Malformed)) => {
                self.log
                    .refuse("(unread)", None, 0, &Refusal::MalformedRequest.to_string());
                let _ = respond(&mut client, 400, "not an HTTP request").await;
                return;
            }
            Ok(Err(HeadError::Gone)) | Err(_) => return,
        };
        if head.method == "CONNECT" {
            self.connect(client, head).await;
        } else if head.target.starts_with("http://") {
            self.forward(client, head).await;
        } else if head.method == "GET" && head.target == "/healthz" {
            let _ = respond(&mut client, 200, "ok").await;
        } else {
            self.log.refuse(
                &head.method,
                None,
                0,
                &Refusal::MalformedRequest.to_string(),
            );
            let _ = respond(
                &mut client,
                400,
                "the gate is a proxy: send CONNECT host:port, or a request in absolute form",
            )
            .await;
        }
    }

    async fn refuse(
        &self,
        client: &mut TcpStream,
        method: &str,
        host: Option<&Host>,
        target: &str,
        port: u16,
        refusal: Refusal,
    ) {
        self.log.refuse(method, host, port, &refusal.to_string());
        let body = format!("claude-bottle egress gate refused {method} {target}: {refusal}");
        let _ = respond(client, 403, &body).await;
    }

    /// Checks the policy and resolves: the grant, and every address it
    /// may dial, in the resolver's order.
    async fn decide(
        &self,
        host: &Host,
        port: u16,
        kind: Method,
    ) -> Result<(Grant, Vec<IpAddr>), Refusal> {
        let grant = self.policy.check(host, port, kind)?;
        let addresses = match host {
            Host::Address(address) => vec![*address],
            // An allowed name that does not resolve is unreachable, not
            // refused: there is nothing to dial, and `dial` says so.
            Host::Name(name) => match self.resolver.lookup(name).await {
                Ok(addresses) => addresses,
                Err(_) => return Ok((grant, Vec::new())),
            },
        };
        let mut refusal = None;
        let mut permitted = Vec::new();
        for address in addresses {
            match Policy::may_dial(&grant, address) {
                Ok(()) => permitted.push(address),
                Err(why) => refusal = Some(why),
            }
        }
        match refusal {
            Some(why) if permitted.is_empty() => Err(why),
            _ => Ok((grant, permitted)),
        }
    }

    /// Dials the addresses in turn; logs the request allowed when one
    /// answers, and unreachable when none does.
    async fn dial(
        &self,
        method: &str,
        host: &Host,
        port: u16,
        grant: &Grant,
        addresses: &[IpAddr],
    ) -> Option<TcpStream> {
        for address in addresses {
            let dialled = tokio::time::timeout(DIAL_WITHIN, TcpStream::connect((*address, port)));
            if let Ok(Ok(upstream)) = dialled.await {
                let _ = upstream.set_nodelay(true);
                self.log.allow(method, host, port, &grant.rule);
                return Some(upstream);
            }
        }
        self.log.unreachable(method, host, port, &grant.rule);
        None
    }

    async fn connect(&self, mut client: TcpStream, head: Head) {
        let Some((host, port)) = split_authority(&head.target) else {
            return self
                .refuse(
                    &mut client,
                    "CONNECT",
                    None,
                    &head.target,
                    0,
                    Refusal::InvalidHost,
                )
                .await;
        };
        let (grant, addresses) = match self.decide(&host, port, Method::Connect).await {
            Ok(decision) => decision,
            Err(refusal) => {
                return self
                    .refuse(
                        &mut client,
                        "CONNECT",
                        Some(&host),
                        &head.target,
                        port,
                        refusal,
                    )
                    .await;
            }
        };
        if port == 443 && !grant.ssh {
            // TLS: the ClientHello must name the host that was allowed. It
            // comes only after the 200, so the upstream is dialled after it.
            // A declared SSH host at 443 (ssh.github.com) carries SSH.
            if client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut hello = head.rest;
            if let Err(refusal) = self.read_hello(&mut client, &mut hello, &host).await {
                self.log
                    .refuse("CONNECT", Some(&host), port, &refusal.to_string());
                return;
            }
            let Some(mut upstream) = self.dial("CONNECT", &host, port, &grant, &addresses).await
            else {
                return;
            };
            if upstream.write_all(&hello).await.is_ok() {
                relay::tunnel(client, upstream, self.idle_timeout).await;
            }
        } else {
            let Some(mut upstream) = self.dial("CONNECT", &host, port, &grant, &addresses).await
            else {
                let _ = respond(&mut client, 502, "the gate could not reach the host").await;
                return;
            };
            if client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
                || upstream.write_all(&head.rest).await.is_err()
            {
                return;
            }
            relay::tunnel(client, upstream, self.idle_timeout).await;
        }
    }

    /// Reads the ClientHello into `hello` and holds its name against `host`.
    async fn read_hello(
        &self,
        client: &mut TcpStream,
        hello: &mut Vec<u8>,
        host: &Host,
    ) -> Result<(), Refusal> {
        let deadline = Instant::now() + self.header_timeout;
        loop {
            match sni::read(hello) {
                Hello::ServerName(name) => {
                    return if host::parse(&name).as_ref() == Some(host) {
                        Ok(())
                    } else {
                        Err(Refusal::SniMismatch)
                    };
                }
                // An address may be reached without a name; a name may not.
                Hello::NoServerName if matches!(host, Host::Address(_)) => return Ok(()),
                Hello::NoServerName => return Err(Refusal::SniMismatch),
                Hello::Encrypted => return Err(Refusal::EncryptedHello),
                Hello::Ambiguous => return Err(Refusal::AmbiguousHello),
                Hello::NotTls => return Err(Refusal::NotTls),
                Hello::Incomplete if hello.len() >= MAX_HEAD => return Err(Refusal::NotTls),
                Hello::Incomplete => {}
            }
            let mut buf = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => hello.extend_from_slice(&buf[..n]),
                _ => return Err(Refusal::NotTls),
            }
        }
    }

    /// Plain HTTP in absolute form: one request, checked, re-sent in
    /// origin form (see `forward`), and its response; then the connection
    /// closes.
    async fn forward(&self, mut client: TcpStream, head: Head) {
        let method = head.method.clone();
        let target = split_url(&head.target)
            .and_then(|(authority, path)| Some((authority, path, split_host_port(authority, 80)?)));
        let Some((authority, path, (host, port))) = target else {
            return self
                .refuse(
                    &mut client,
                    &method,
                    None,
                    &head.target,
                    0,
                    Refusal::InvalidHost,
                )
                .await;
        };
        let malformed = |why: &str| {
            self.log.refuse(
                &method,
                Some(&host),
                port,
                &Refusal::MalformedRequest.to_string(),
            );
            format!("claude-bottle egress gate refused {method} {authority}: {why}")
        };
        let checked =
            forward::host_header(&head.headers, |h| split_host_port(h, 80)).and_then(|header| {
                let out = forward::rebuild(&method, &path, head.version, authority, &head.headers)?;
                Ok((header, out))
            });
        let (header_host, outgoing) = match checked {
            Ok(checked) => checked,
            Err(why) => {
                let body = malformed(why);
                let _ = respond(&mut client, 400, &body).await;
                return;
            }
        };
        if header_host.is_some_and(|h| h != (host.clone(), port)) {
            return self
                .refuse(
                    &mut client,
                    &method,
                    Some(&host),
                    authority,
                    port,
                    Refusal::HostHeaderMismatch,
                )
                .await;
        }
        let (grant, addresses) = match self.decide(&host, port, Method::Http).await {
            Ok(decision) => decision,
            Err(refusal) => {
                return self
                    .refuse(&mut client, &method, Some(&host), authority, port, refusal)
                    .await;
            }
        };
        let Some(upstream) = self.dial(&method, &host, port, &grant, &addresses).await else {
            let _ = respond(&mut client, 502, "the gate could not reach the host").await;
            return;
        };
        exchange(
            client,
            upstream,
            head.rest,
            outgoing.head,
            outgoing.framing,
            self.idle_timeout,
        )
        .await;
    }
}

/// Sends one request (its head, then its body as `framing` says, read
/// from `rest` and then the client) and relays the response, until the
/// upstream closes or nothing moves for `idle`. Whatever the client sends
/// after the body is read and dropped.
async fn exchange(
    client: TcpStream,
    upstream: TcpStream,
    rest: Vec<u8>,
    head: Vec<u8>,
    framing: Framing,
    idle: Duration,
) {
    let activity = Activity::new();
    let (client_read, mut client_write) = client.into_split();
    let (upstream_read, mut upstream_write) = upstream.into_split();
    let mut body = tokio::io::BufReader::new(std::io::Cursor::new(rest).chain(client_read));
    {
        let request = async {
            upstream_write.write_all(&head).await?;
            forward::copy_body(&mut body, &mut upstream_write, framing, &activity).await?;
            upstream_write.flush().await
        };
        let response = relay::copy(upstream_read, &mut client_write, &activity);
        tokio::pin!(request, response);
        let both = async {
            tokio::select! {
                // A body that breaks its framing ends the exchange at once.
                sent = &mut request => if sent.is_ok() {
                    (&mut response).await;
                },
                // An upstream may answer before it has read the whole body.
                () = &mut response => {
                    let _ = (&mut request).await;
                }
            }
        };
        tokio::select! {
            () = both => {}
            () = activity.idle_for(idle) => {}
        }
    }
    // A lingering close, so unread input cannot reset the response away.
    let (_, mut client_read) = body.into_inner().into_inner();
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(client_read.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

async fn read_head(client: &mut TcpStream) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = client.read(&mut chunk).await.map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(length)) => {
                return Ok(Head {
                    method: request.method.unwrap_or_default().to_owned(),
                    target: request.path.unwrap_or_default().to_owned(),
                    version: request.version.unwrap_or(1),
                    headers: request
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), h.value.to_vec()))
                        .collect(),
                    rest: buf[length..].to_vec(),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::TooLarge);
            }
            Err(_) => return Err(HeadError::Malformed),
        }
    }
}

/// `host:port` of a CONNECT target (IPv6 in brackets).
fn split_authority(target: &str) -> Option<(Host, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))?;
    Some((host::parse(host)?, port))
}

/// `host[:port]`, with `default` when no port is given.
pub(crate) fn split_host_port(authority: &str, default: u16) -> Option<(Host, u16)> {
    if authority.ends_with(']') || !authority.contains(':') {
        return Some((host::parse(authority)?, default));
    }
    split_authority(authority)
}

/// `http://authority/path?query` into the authority and the origin form.
fn split_url(url: &str) -> Option<(&str, String)> {
    let rest = url.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let path = match path.split('#').next().unwrap_or_default() {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Some((authority, path))
}

async fn respond(client: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await?;
    // A lingering close: closing with unread input would reset the
    // connection and could destroy the answer before the client reads it
    // (an oversized head is still arriving when the 431 goes out).
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_origin_form() {
        assert_eq!(
            split_url("http://a.example/x?y=1"),
            Some(("a.example", "/x?y=1".to_owned()))
        );
        assert_eq!(
            split_url("http://a.example:8080"),
            Some(("a.example:8080", "/".to_owned()))
        );
        assert_eq!(
            split_url("http://a.example?q"),
            Some(("a.example", "/?q".to_owned()))
        );
        assert_eq!(split_url("http://user@a.example/"), None);
        assert_eq!(split_url("https://a.example/"), None);
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(
            split_authority("a.example:443"),
            Some((Host::Name("a.example".into()), 443))
        );
        assert_eq!(
            split_authority("[2001:db8::7]:8443"),
            Some((Host::Address("2001:db8::7".parse().unwrap()), 8443))
        );
        assert_eq!(split_authority("a.example"), None);
        assert_eq!(split_authority("a.example:0"), None);
        assert_eq!(
            split_host_port("a.example", 80),
            Some((Host::Name("a.example".into()), 80))
        );
        assert_eq!(
            split_host_port("[::1]", 80),
            Some((Host::Address("::1".parse().unwrap()), 80))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 5000, ..Default::default() })]

        /// Any request target: split or refused, never a panic; an
        /// authority that splits names a host that parses.
        #[test]
        fn any_target_splits_or_is_refused(target in "(http://)?[ -~\\u{80}-\\u{3000}]{0,40}") {
            if let Some((authority, path)) = split_url(&target) {
                proptest::prop_assert!(path.starts_with('/'));
                let _ = split_host_port(authority, 80);
            }
            let _ = split_authority(&target);
        }
    }
}
