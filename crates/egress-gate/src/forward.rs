//! Plain HTTP through the gate: exactly one request per connection.
//!
//! The gate decides a request on its URL, so the upstream must read the
//! same request the gate read, and nothing more. Any head a server could
//! read another way is refused with a 400 before anything is dialled: two
//! `Host` headers or one that does not parse, `Content-Length` together
//! with `Transfer-Encoding`, conflicting lengths, a coding other than
//! chunked, or a `Connection` header that would strip the framing. What
//! goes upstream is rebuilt: one `Host` (the URL's authority), no
//! hop-by-hop header, `Connection: close`, and the body as its framing
//! says, copied while it is checked. What the client sends after that body
//! (a pipelined second request) is never sent on: it was not decided.

use std::io;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use crate::activity::Activity;

/// Headers never sent on: those of one connection (hop-by-hop), and
/// `Host`, which the gate writes itself.
const NOT_SENT_ON: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "host",
];

/// The longest chunk-size line or trailer line the gate reads.
const MAX_LINE: u64 = 4096;

/// How a request's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request checked and rebuilt for its upstream.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The head to send, in origin form.
    pub(crate) head: Vec<u8>,
    pub(crate) framing: Framing,
}

/// What one header of a request says, by name (case-insensitive).
fn values<'h>(
    headers: &'h [(String, Vec<u8>)],
    name: &'h str,
) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The comma-separated items of every `name` header, trimmed.
fn items(headers: &[(String, Vec<u8>)], name: &str) -> Result<Vec<String>, &'static str> {
    let mut items = Vec::new();
    for value in values(headers, name) {
        let value = std::str::from_utf8(value).map_err(|_| "a header that is not text")?;
        items.extend(
            value
                .split(',')
                .map(|item| item.trim().to_ascii_lowercase())
                .filter(|item| !item.is_empty()),
        );
    }
    Ok(items)
}

/// The one `Host` a request may carry, parsed with `parse`, or `None`
/// without one.
pub(crate) fn host_header<T>(
    headers: &[(String, Vec<u8>)],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, &'static str> {
    let mut hosts = values(headers, "host");
    let Some(first) = hosts.next() else {
        return Ok(None);
    };
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    std::str::from_utf8(first)
        .ok()
        .and_then(|h| parse(h.trim()))
        .map(Some)
        .ok_or("a Host header that is not host[:port]")
}

/// How the body of a request with these headers is framed.
fn framing(version: u8, headers: &[(String, Vec<u8>)]) -> Result<Framing, &'static str> {
    let codings = items(headers, "transfer-encoding")?;
    let has_coding = values(headers, "transfer-encoding").next().is_some();
    let lengths = items(headers, "content-length")?;
    let has_length = values(headers, "content-length").next().is_some();
    if has_coding && has_length {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if has_coding {
        if version == 0 {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        return if codings == ["chunked"] {
            Ok(Framing::Chunked)
        } else {
            Err("a transfer coding other than chunked")
        };
    }
    if !has_length {
        return Ok(Framing::None);
    }
    let Some(first) = lengths.first() else {
        return Err("an empty Content-Length");
    };
    if lengths.iter().any(|l| l != first) {
        return Err("conflicting Content-Length values");
    }
    if first.len() > 18 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a Content-Length that is not a length");
    }
    first
        .parse()
        .map(Framing::Length)
        .map_err(|_| "a Content-Length that is not a length")
}

/// Checks a request head and rebuilds it for the upstream: `method path`
/// with the URL's `authority` as its one `Host`.
pub(crate) fn rebuild(
    method: &str,
    path: &str,
    version: u8,
    authority: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<Outgoing, &'static str> {
    rebuild_as(method, path, version, authority, headers, None)
}

/// The protocol a request asks to switch to (`Upgrade: websocket` with
/// `Connection: upgrade`), if it asks: such a request has no body, and
/// after a 101 the connection carries that protocol. Only WebSocket: after
/// `h2c`, HTTP/2 requests could name any host, unread by the gate; any
/// other upgrade is dropped, as hop-by-hop.
pub(crate) fn upgrade_asked(
    headers: &[(String, Vec<u8>)],
) -> Result<Option<Vec<u8>>, &'static str> {
    let mut upgrades = values(headers, "upgrade");
    let Some(protocol) = upgrades.next() else {
        return Ok(None);
    };
    if upgrades.next().is_some() {
        return Err("more than one Upgrade header");
    }
    if !items(headers, "connection")?.iter().any(|i| i == "upgrade")
        || !protocol.eq_ignore_ascii_case(b"websocket")
    {
        return Ok(None);
    }
    Ok(Some(protocol.to_vec()))
}

/// [`rebuild`] for a request that switches protocols: `Upgrade` and
/// `Connection: upgrade` are kept, and a body is refused.
pub(crate) fn rebuild_upgrade(
    method: &str,
    path: &str,
    version: u8,
    authority: &str,
    headers: &[(String, Vec<u8>)],
    protocol: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let outgoing = rebuild_as(method, path, version, authority, headers, Some(protocol))?;
    if outgoing.framing != Framing::None && outgoing.framing != Framing::Length(0) {
        return Err("a request that switches protocols with a body");
    }
    Ok(outgoing.head)
}

fn rebuild_as(
    method: &str,
    path: &str,
    version: u8,
    authority: &str,
    headers: &[(String, Vec<u8>)],
    upgrade: Option<&[u8]>,
) -> Result<Outgoing, &'static str> {
    let framing = framing(version, headers)?;
    let named = items(headers, "connection")?;
    if named
        .iter()
        .any(|n| matches!(n.as_str(), "content-length" | "transfer-encoding"))
    {
        return Err("a Connection header that names the request's framing");
    }
    let mut head =
        format!("{method} {path} HTTP/1.{version}\r\nHost: {authority}\r\n").into_bytes();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if NOT_SENT_ON.contains(&lower.as_str()) || named.contains(&lower) {
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    match upgrade {
        Some(protocol) => {
            head.extend_from_slice(b"Upgrade: ");
            head.extend_from_slice(protocol);
            head.extend_from_slice(b"\r\nConnection: upgrade\r\n\r\n");
        }
        None => head.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
    Ok(Outgoing { head, framing })
}

/// Copies the body framed as `framing` from `from` to `to`, checking the
/// chunked framing as it goes; stops at its end.
pub(crate) async fn copy_body(
    from: &mut (impl AsyncBufRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    framing: Framing,
    activity: &Activity,
) -> io::Result<()> {
    match framing {
        Framing::None => Ok(()),
        Framing::Length(length) => copy_exactly(from, to, length, activity).await,
        Framing::Chunked => loop {
            let line = read_line(from).await?;
            to.write_all(&line).await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let line = read_line(from).await?;
                    to.write_all(&line).await?;
                    if line == b"\r\n" {
                        return Ok(());
                    }
                }
            }
            copy_exactly(from, to, size, activity).await?;
            let mut end = [0u8; 2];
            from.read_exact(&mut end).await?;
            if &end != b"\r\n" {
                return Err(invalid("a chunk that does not end where its size says"));
            }
            to.write_all(&end).await?;
        },
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One line ending in CRLF, at most [`MAX_LINE`] bytes.
async fn read_line(from: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    (&mut *from)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if !line.ends_with(b"\r\n") {
        return Err(invalid("a chunk line that does not end in CRLF"));
    }
    Ok(line)
}

/// The size of a chunk-size line: hex digits, then an extension or not.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let line = &line[..line.len() - 2];
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("a chunk size that is not hex"));
    }
    let digits = std::str::from_utf8(digits).map_err(|_| invalid("a chunk size"))?;
    u64::from_str_radix(digits, 16).map_err(|_| invalid("a chunk size"))
}

async fn copy_exactly(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut left: u64,
    activity: &Activity,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = from.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&buf[..n]).await?;
        activity.touch();
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn framed(list: &[(&str, &str)]) -> Result<Framing, &'static str> {
        framing(1, &headers(list))
    }

    #[test]
    fn only_a_switch_to_websocket_is_carried() {
        let asked = |upgrade: &str| {
            upgrade_asked(&headers(&[("Upgrade", upgrade), ("Connection", "Upgrade")]))
        };
        assert_eq!(asked("WebSocket"), Ok(Some(b"WebSocket".to_vec())));
        assert_eq!(asked("h2c"), Ok(None));
        assert_eq!(
            upgrade_asked(&headers(&[("Upgrade", "websocket")])),
            Ok(None),
            "not without Connection: upgrade"
        );
        assert!(upgrade_asked(&headers(&[("Upgrade", "websocket"), ("Upgrade", "h2c")])).is_err());
    }

    #[test]
    fn a_body_has_one_framing_or_the_request_is_refused() {
        assert_eq!(framed(&[]), Ok(Framing::None));
        assert_eq!(framed(&[("Content-Length", "12")]), Ok(Framing::Length(12)));
        assert_eq!(
            framed(&[("content-length", "5"), ("Content-Length", "5")]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framed(&[("Content-Length", "5, 5")]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framed(&[("Transfer-Encoding", "Chunked")]),
            Ok(Framing::Chunked)
        );
        for refused in [
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")][..],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "0")],
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "5, 6")],
            &[("Content-Length", "-1")],
            &[("Content-Length", "+5")],
            &[("Content-Length", "0x10")],
            &[("Content-Length", "")],
            &[("Content-Length", "99999999999999999999")],
            &[("Transfer-Encoding", "gzip, chunked")],
            &[("Transfer-Encoding", "chunked, chunked")],
            &[
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
            &[("Transfer-Encoding", "identity")],
            &[("Transfer-Encoding", "")],
            &[("Transfer-Encoding", "xchunked")],
        ] {
            assert!(framed(refused).is_err(), "{refused:?}");
        }
        assert!(framing(0, &headers(&[("Transfer-Encoding", "chunked")])).is_err());
    }

    #[test]
    fn the_rebuilt_head_has_one_host_and_nothing_of_the_hop() {
        let sent = headers(&[
            ("Host", "a.example"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "hop"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("Upgrade", "websocket"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Accept", "*/*"),
        ]);
        let out = rebuild("GET", "/x", 1, "a.example", &sent).unwrap();
        assert_eq!(
            String::from_utf8(out.head).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        for framing in ["Content-Length", "transfer-encoding"] {
            let sent = headers(&[("Connection", framing), ("Content-Length", "3")]);
            assert!(
                rebuild("POST", "/", 1, "a.example", &sent).is_err(),
                "{framing}"
            );
        }
    }

    #[test]
    fn host_headers_are_one_that_parses_or_none() {
        let parse = |h: &str| crate::proxy::split_host_port(h, 80);
        assert_eq!(host_header(&headers(&[]), parse), Ok(None));
        assert!(matches!(
            host_header(&headers(&[("Host", "a.example:8080")]), parse),
            Ok(Some((_, 8080)))
        ));
        for refused in [
            &[("Host", "a.example"), ("host", "evil.invalid")][..],
            &[("Host", "a.example"), ("Host", "a.example")],
            &[("Host", "a.example:8080:x")],
            &[("Host", "a.example:99999")],
            &[("Host", "")],
            &[("Host", "a b")],
            &[("Host", "user@a.example")],
        ] {
            assert!(
                host_header(&headers(refused), parse).is_err(),
                "{refused:?}"
            );
        }
    }

    async fn body(framing: Framing, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut from = tokio::io::BufReader::new(input);
        let mut to = Vec::new();
        copy_body(&mut from, &mut to, framing, &Activity::new()).await?;
        // What is left is never sent.
        Ok(to)
    }

    #[tokio::test]
    async fn a_body_is_copied_to_its_end_and_nothing_after_it() {
        let chunked = b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\nGET http://evil.invalid/ HTTP/1.1\r\n\r\n";
        let sent = body(Framing::Chunked, chunked).await.unwrap();
        assert_eq!(sent, &chunked[..chunked.len() - 37]);
        let sent = body(
            Framing::Length(3),
            b"abcGET http://evil.invalid/ HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(sent, b"abc");
        assert_eq!(
            body(Framing::None, b"GET /x HTTP/1.1\r\n\r\n")
                .await
                .unwrap(),
            b""
        );
        for bad in [
            &b"4\r\nwikipedia\r\n0\r\n\r\n"[..],
            b"4\nwiki\r\n0\r\n\r\n",
            b"x\r\n",
            b"-1\r\n",
            b" 4\r\nwiki\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"4\r\nwi",
            b"0\r\nX: y",
        ] {
            assert!(body(Framing::Chunked, bad).await.is_err(), "{bad:?}");
        }
        assert!(body(Framing::Length(5), b"abc").await.is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// Any body after any framing: nothing panics, and nothing is sent
        /// on that did not arrive, nor past a first request's end.
        #[test]
        fn a_body_sends_on_at_most_what_arrived(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            framing in proptest::prop_oneof![
                proptest::prelude::Just(Framing::None),
                proptest::prelude::Just(Framing::Chunked),
                (0u64..400).prop_map(Framing::Length),
            ],
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            if let Ok(sent) = runtime.block_on(body(framing, &input)) {
                proptest::prop_assert!(input.starts_with(&sent));
            }
        }

        /// Any headers: checked or refused, never a panic; what is sent on
        /// has one Host.
        #[test]
        fn any_headers_are_rebuilt_or_refused(
            list in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["Host", "Content-Length", "Transfer-Encoding", "Connection", "X-A", "TE", "Upgrade"]),
                    "[ -~]{0,20}",
                ),
                0..8,
            ),
            version in 0u8..2,
        ) {
            let headers: Vec<(String, Vec<u8>)> = list
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect();
            let _ = host_header(&headers, |h| crate::proxy::split_host_port(h, 80));
            if let Ok(out) = rebuild("GET", "/", version, "a.example", &headers) {
                let head = String::from_utf8_lossy(&out.head).to_ascii_lowercase();
                proptest::prop_assert_eq!(head.matches("\r\nhost:").count(), 1, "{}", head);
            }
        }
    }
}
