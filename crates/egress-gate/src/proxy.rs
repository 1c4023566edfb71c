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
use crate::event::Verdict;
use crate::forward::{self, Framing};
use crate::host::{self, Host};
use crate::log::DecisionLog;
use crate::policy::{Grant, Method, Policy, Refusal};
use crate::relay;
use crate::resolve::Resolver;
use crate::sni::{self, Hello, ServerHello};

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
                self.refused("(unread)", None, 0, "head-too-large");
                let _ = respond(&mut client, 431, "the request head is too large").await;
                return;
            }
            Ok(Err(HeadError::Malformed)) => {
                self.refused("(unread)", None, 0, &Refusal::MalformedRequest.to_string());
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
            self.refused(
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

    /// Logs a request an entry allowed, with what of the name the
    /// allowlist names.
    fn granted(&self, verdict: Verdict, method: &str, host: &Host, port: u16, grant: &Grant) {
        let listed = self.policy.listed_part(host);
        self.log
            .granted(verdict, method, host, listed.as_deref(), port, &grant.rule);
    }

    fn tunnel_refused(&self, tunnel: &Tunnel, refusal: Refusal) {
        let rule = refusal.to_string();
        self.refused("CONNECT", Some(&tunnel.host), tunnel.port, &rule);
    }

    async fn dial_tunnel(&self, tunnel: &Tunnel) -> Option<TcpStream> {
        let Tunnel {
            host,
            port,
            grant,
            addresses,
        } = tunnel;
        self.dial("CONNECT", host, *port, grant, addresses).await
    }

    fn tunnel_granted(&self, verdict: Verdict, tunnel: &Tunnel) {
        self.granted(verdict, "CONNECT", &tunnel.host, tunnel.port, &tunnel.grant);
    }

    /// Logs a refusal, with what of the name the allowlist names.
    fn refused(&self, method: &str, host: Option<&Host>, port: u16, rule: &str) {
        let listed = host.and_then(|host| self.policy.listed_part(host));
        self.log.refuse(method, host, listed.as_deref(), port, rule);
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
        self.refused(method, host, port, &refusal.to_string());
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
        let upstream = reach(addresses, port).await;
        let verdict = if upstream.is_some() {
            Verdict::Allow
        } else {
            Verdict::Unreachable
        };
        self.granted(verdict, method, host, port, grant);
        upstream
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
        let tunnel = Tunnel {
            host,
            port,
            grant,
            addresses,
        };
        if tunnel.grant.ssh {
            // A declared SSH host carries SSH, whatever the port.
            self.blind(client, head.rest, &tunnel).await;
        } else if port == 443 {
            self.tls(client, head.rest, &tunnel).await;
        } else {
            self.inspected(client, head.rest, &tunnel).await;
        }
    }

    /// A tunnel whose bytes are not looked at: an SSH host's.
    async fn blind(&self, mut client: TcpStream, rest: Vec<u8>, tunnel: &Tunnel) {
        let Some(mut upstream) = self.dial_tunnel(tunnel).await else {
            let _ = respond(&mut client, 502, "the gate could not reach the host").await;
            return;
        };
        if client.write_all(ESTABLISHED).await.is_err() || upstream.write_all(&rest).await.is_err()
        {
            return;
        }
        relay::tunnel(client, upstream, self.idle_timeout).await;
    }

    /// Port 443 carries TLS: the ClientHello must name the host that was
    /// allowed. It comes only after the 200, so the upstream is dialled
    /// after it.
    async fn tls(&self, mut client: TcpStream, rest: Vec<u8>, tunnel: &Tunnel) {
        if client.write_all(ESTABLISHED).await.is_err() {
            return;
        }
        let mut hello = rest;
        if let Err(refusal) = self.read_hello(&mut client, &mut hello, &tunnel.host).await {
            self.tunnel_refused(tunnel, refusal);
            return;
        }
        let Some(upstream) = self.dial_tunnel(tunnel).await else {
            return;
        };
        self.handshake(client, upstream, hello, tunnel).await;
    }

    /// Sends the checked ClientHello on, and after a HelloRetryRequest
    /// holds the second ClientHello to the same name; then relays.
    async fn handshake(
        &self,
        mut client: TcpStream,
        mut upstream: TcpStream,
        mut hello: Vec<u8>,
        tunnel: &Tunnel,
    ) {
        // Only the hello that was checked goes on before the server has
        // answered: whatever the client sent behind it (a second hello,
        // sent ahead) is held to the same checks.
        let mut after = hello.split_off(sni::record_len(&hello).min(hello.len()));
        if upstream.write_all(&hello).await.is_err() {
            return;
        }
        let deadline = Instant::now() + self.header_timeout;
        let mut answer = Vec::new();
        let retry = loop {
            match sni::server_hello(&answer) {
                ServerHello::Retry => break true,
                ServerHello::Other => break false,
                ServerHello::Incomplete if answer.len() >= MAX_HEAD => break false,
                ServerHello::Incomplete => {}
            }
            if !read_within(&mut upstream, &mut answer, deadline).await {
                let _ = client.write_all(&answer).await;
                return;
            }
        };
        if client.write_all(&answer).await.is_err() {
            return;
        }
        if retry {
            let mut second = std::mem::take(&mut after);
            let skipped = loop {
                if let Some(at) = sni::change_cipher_spec_len(&second) {
                    break at;
                }
                if second.len() >= MAX_HEAD
                    || !read_within(&mut client, &mut second, deadline).await
                {
                    return;
                }
            };
            let mut hello = second.split_off(skipped);
            if let Err(refusal) = self.read_hello(&mut client, &mut hello, &tunnel.host).await {
                self.tunnel_refused(tunnel, refusal);
                return;
            }
            after = hello.split_off(sni::record_len(&hello).min(hello.len()));
            second.extend(hello);
            if upstream.write_all(&second).await.is_err() {
                return;
            }
        }
        if upstream.write_all(&after).await.is_err() {
            return;
        }
        relay::tunnel(client, upstream, self.idle_timeout).await;
    }

    /// A tunnel to any other port: whoever speaks first, and what the
    /// client's first bytes are, decide what it may carry.
    async fn inspected(&self, mut client: TcpStream, rest: Vec<u8>, tunnel: &Tunnel) {
        let Some(mut upstream) = reach(&tunnel.addresses, tunnel.port).await else {
            self.tunnel_granted(Verdict::Unreachable, tunnel);
            let _ = respond(&mut client, 502, "the gate could not reach the host").await;
            return;
        };
        if client.write_all(ESTABLISHED).await.is_err() {
            return;
        }
        let mut first = rest;
        let mut chunk = [0u8; 2048];
        // A server that speaks first (SMTP, a database) carries its own
        // protocol; nothing the client sends can name another host there.
        let opening = loop {
            if let Some(opening) = Opening::of(&first) {
                break opening;
            }
            // A server that has spoken is heard first.
            tokio::select! {
                biased;
                ready = upstream.readable() => {
                    if ready.is_err() {
                        return;
                    }
                    break Opening::ServerFirst;
                }
                read = client.read(&mut chunk) => match read {
                    Ok(n) if n > 0 => first.extend_from_slice(&chunk[..n]),
                    _ => return,
                },
                () = tokio::time::sleep(self.idle_timeout) => return,
            }
        };
        let allow = || self.tunnel_granted(Verdict::Allow, tunnel);
        match opening {
            Opening::Tls => {
                if let Err(refusal) = self.read_hello(&mut client, &mut first, &tunnel.host).await {
                    return self.tunnel_refused(tunnel, refusal);
                }
                allow();
                self.handshake(client, upstream, first, tunnel).await;
            }
            Opening::Http => self.http_in_tunnel(client, upstream, first, tunnel).await,
            Opening::Other if WEB_PORTS.contains(&tunnel.port) => {
                self.tunnel_refused(tunnel, Refusal::UnknownProtocol);
            }
            Opening::Other | Opening::ServerFirst => {
                allow();
                if upstream.write_all(&first).await.is_ok() {
                    relay::tunnel(client, upstream, self.idle_timeout).await;
                }
            }
        }
    }

    /// HTTP inside a tunnel: the plain-HTTP path's checks, with the
    /// CONNECT target as the one host it may name.
    async fn http_in_tunnel(
        &self,
        mut client: TcpStream,
        mut upstream: TcpStream,
        first: Vec<u8>,
        tunnel: &Tunnel,
    ) {
        let authority = canonical_authority(&tunnel.host, tunnel.port);
        let read = tokio::time::timeout(self.header_timeout, read_head_from(&mut client, first));
        let checked = match read.await {
            Ok(Ok(head)) => check_in_tunnel(&head, tunnel, &authority).map(|c| (head, c)),
            Ok(Err(HeadError::TooLarge | HeadError::Malformed)) => {
                Err((Refusal::MalformedRequest, "not one HTTP/1 request"))
            }
            Ok(Err(HeadError::Gone)) | Err(_) => return,
        };
        let (head, outgoing) = match checked {
            Ok(checked) => checked,
            Err((refusal, why)) => {
                self.tunnel_refused(tunnel, refusal);
                let body = format!(
                    "claude-bottle egress gate refused a request in the tunnel to {authority}: {why}"
                );
                let _ = respond(&mut client, 400, &body).await;
                return;
            }
        };
        self.tunnel_granted(Verdict::Allow, tunnel);
        match outgoing {
            InTunnel::Upgrade(outgoing) => {
                if upstream.write_all(&outgoing).await.is_ok() {
                    let (within, idle) = (self.header_timeout, self.idle_timeout);
                    switch_protocols(client, upstream, head.rest, within, idle).await;
                }
            }
            InTunnel::Plain(outgoing) => {
                let idle = self.idle_timeout;
                exchange(
                    client,
                    upstream,
                    head.rest,
                    outgoing.head,
                    outgoing.framing,
                    idle,
                )
                .await;
            }
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
                // The name as sent must be the host's canonical form: a
                // server may read any other spelling (upper case, a soft
                // hyphen) as another name, or fall back to its default.
                Hello::ServerName(name) => {
                    return match host::parse(&name) {
                        Some(named) if named.text() != name => Err(Refusal::SniNotCanonical),
                        Some(named) if named == *host => Ok(()),
                        _ => Err(Refusal::SniMismatch),
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
            if !read_within(client, hello, deadline).await {
                return Err(Refusal::NotTls);
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
            self.refused(
                &method,
                Some(&host),
                port,
                &Refusal::MalformedRequest.to_string(),
            );
            format!("claude-bottle egress gate refused {method} {authority}: {why}")
        };
        // The upstream gets the host as the gate read it, never the
        // client's spelling (`１９２.0.2.2`, `0xc0.0.2.2`, a trailing dot).
        let canonical = canonical_authority(&host, port);
        let checked =
            forward::host_header(&head.headers, |h| split_host_port(h, 80)).and_then(|header| {
                let out =
                    forward::rebuild(&method, &path, head.version, &canonical, &head.headers)?;
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

/// What a tunnel to a port other than 443 carries, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// A TLS record.
    Tls,
    /// What a server could read as a request line (after empty lines and
    /// white space, which servers may skip): a method and white space,
    /// then `HTTP/` on the line, or `GET`, which HTTP/0.9 sends without it.
    Http,
    /// Anything else the client sends first (`hello 0` on a line).
    Other,
    /// Nothing from the client yet, and the server has spoken.
    ServerFirst,
}

/// The longest method the gate waits for before it calls the bytes no
/// request.
const LONGEST_METHOD: usize = 24;

impl Opening {
    /// `None` until the bytes so far can tell.
    fn of(first: &[u8]) -> Option<Self> {
        if first.first() == Some(&0x16) {
            return Some(Self::Tls);
        }
        let blank = first
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .count();
        let line = &first[blank..];
        let method = line.iter().take_while(|b| is_token(**b)).count();
        match line.get(method) {
            None if method < LONGEST_METHOD => None,
            Some(b' ' | b'\t') if method > 0 => {
                if line[..method].eq_ignore_ascii_case(b"GET") {
                    return Some(Self::Http);
                }
                let Some(end) = line.iter().position(|b| *b == b'\n') else {
                    return (line.len() >= MAX_HEAD).then_some(Self::Other);
                };
                let version = line[..end]
                    .windows(5)
                    .any(|w| w.eq_ignore_ascii_case(b"HTTP/"));
                Some(if version { Self::Http } else { Self::Other })
            }
            _ => Some(Self::Other),
        }
    }
}

/// A token character (RFC 9110, 5.6.2), of which methods are made.
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A request inside a tunnel, checked and rebuilt.
enum InTunnel {
    Plain(forward::Outgoing),
    /// One that switches protocols: its head, and after a 101 the tunnel.
    Upgrade(Vec<u8>),
}

/// The plain-HTTP path's checks for a request inside the tunnel to
/// `authority`: origin form, one Host that is the tunnel's, one framing.
fn check_in_tunnel(
    head: &Head,
    tunnel: &Tunnel,
    authority: &str,
) -> Result<InTunnel, (Refusal, &'static str)> {
    let malformed = |why| (Refusal::MalformedRequest, why);
    if !head.target.starts_with('/') {
        return Err(malformed("a request target not in origin form"));
    }
    match forward::host_header(&head.headers, |h| split_host_port(h, tunnel.port)) {
        Ok(Some(named)) if named == (tunnel.host.clone(), tunnel.port) => {}
        Ok(Some(_)) => {
            return Err((
                Refusal::HostHeaderMismatch,
                "its Host is not the tunnel's host",
            ));
        }
        Ok(None) => return Err(malformed("no Host header")),
        Err(why) => return Err(malformed(why)),
    }
    let (method, target, version) = (&head.method, &head.target, head.version);
    match forward::upgrade_asked(&head.headers).map_err(malformed)? {
        Some(protocol) => {
            forward::rebuild_upgrade(method, target, version, authority, &head.headers, &protocol)
                .map(InTunnel::Upgrade)
                .map_err(malformed)
        }
        None => forward::rebuild(method, target, version, authority, &head.headers)
            .map(InTunnel::Plain)
            .map_err(malformed),
    }
}

/// A decided CONNECT: where it goes and what allowed it.
struct Tunnel {
    host: Host,
    port: u16,
    grant: Grant,
    addresses: Vec<IpAddr>,
}

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

/// Ports where a tunnel must carry HTTP or TLS: anything else there is
/// refused, since a web server may read it in ways the gate cannot check.
const WEB_PORTS: [u16; 4] = [80, 443, 8080, 8443];

/// `host[:port]` as the gate read it, for the `Host` it sends on: the
/// port left out where it is HTTP's own.
fn canonical_authority(host: &Host, port: u16) -> String {
    let host = match host {
        Host::Address(IpAddr::V6(v6)) => format!("[{v6}]"),
        host => host.text(),
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// Dials the addresses in turn; the first that answers.
async fn reach(addresses: &[IpAddr], port: u16) -> Option<TcpStream> {
    for address in addresses {
        let dialled = tokio::time::timeout(DIAL_WITHIN, TcpStream::connect((*address, port)));
        if let Ok(Ok(upstream)) = dialled.await {
            let _ = upstream.set_nodelay(true);
            return Some(upstream);
        }
    }
    None
}

/// Reads once more into `buf` before `deadline`; `false` when the stream
/// ended, failed or took too long.
async fn read_within(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    let mut chunk = [0u8; 4096];
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

/// After a request that asks to switch protocols: the response head goes
/// back; after a 101 the tunnel carries the new protocol both ways, after
/// anything else the connection ends with that answer.
async fn switch_protocols(
    mut client: TcpStream,
    mut upstream: TcpStream,
    rest: Vec<u8>,
    within: Duration,
    idle: Duration,
) {
    let deadline = Instant::now() + within;
    let mut answer = Vec::new();
    let status = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&answer) {
            Ok(httparse::Status::Complete(_)) => break response.code,
            Ok(httparse::Status::Partial) if answer.len() < MAX_HEAD => {}
            _ => return,
        }
        if !read_within(&mut upstream, &mut answer, deadline).await {
            let _ = client.write_all(&answer).await;
            return;
        }
    };
    if client.write_all(&answer).await.is_err() || status != Some(101) {
        return;
    }
    if upstream.write_all(&rest).await.is_ok() {
        relay::tunnel(client, upstream, idle).await;
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
    read_head_from(client, Vec::with_capacity(1024)).await
}

/// A request head whose first bytes are already in `buf`.
async fn read_head_from(client: &mut TcpStream, mut buf: Vec<u8>) -> Result<Head, HeadError> {
    let mut chunk = [0u8; 2048];
    loop {
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
        let n = client.read(&mut chunk).await.map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
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
    fn a_tunnels_first_bytes_tell_what_it_carries() {
        for (first, opening) in [
            (&b"\x16\x03\x01"[..], Some(Opening::Tls)),
            (b"GET / HTTP/1.1\r\n", Some(Opening::Http)),
            (b"PRI * HTTP/2.0\r\n", Some(Opening::Http)),
            (b"PRI * HTTP/2.0", None),
            (b"get ", Some(Opening::Http)),
            (b"\r\nGET / HTTP/1.1", Some(Opening::Http)),
            (b"GET\t/ HTTP/1.1", Some(Opening::Http)),
            (b"get /0.9", Some(Opening::Http)),
            (b"_X-1 / http/1.1\r\n", Some(Opening::Http)),
            (b"PROPFIND / HTTP/1.1\n", Some(Opening::Http)),
            (b"PROPFIND / HT", None),
            (b"hello 0", None),
            (b"hello 0\n", Some(Opening::Other)),
            (b"GE", None),
            (b"\r\n", None),
            (b"", None),
            (b"ping\n", Some(Opening::Other)),
            (b"*1\r\n$4\r\nPING\r\n", Some(Opening::Other)),
            (b"\x00\x00\x00\x08", Some(Opening::Other)),
            (b" GET /", Some(Opening::Http)),
            (b"\r\n \t", None),
            (&[b'Z'; 64], Some(Opening::Other)),
        ] {
            assert_eq!(
                Opening::of(first),
                opening,
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
    }

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
