//! The server name a TLS ClientHello asks for.
//!
//! The gate reads it from the first bytes of a tunnel to port 443 and
//! holds it against the CONNECT host, so a client cannot tunnel to an
//! allowed name and then speak TLS to another one. Only the bytes needed
//! are parsed. A hello whose name cannot be trusted is refused: one with
//! Encrypted Client Hello (its outer name is a cover, the real one is
//! sealed), and one that could be read two ways (a repeated extension, a
//! second host name), since a server may read it the other way.

/// What the first bytes of a tunnel say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A ClientHello naming this server, exactly as it was sent.
    ServerName(String),
    /// A ClientHello without a server name.
    NoServerName,
    /// A ClientHello with Encrypted Client Hello.
    Encrypted,
    /// A ClientHello that names its server more than one way.
    Ambiguous,
    /// Not (yet) a complete ClientHello.
    Incomplete,
    NotTls,
}

pub(crate) fn read(bytes: &[u8]) -> Hello {
    match parse(bytes) {
        Ok(Parsed::Name(name)) => Hello::ServerName(name),
        Ok(Parsed::NoName) => Hello::NoServerName,
        Ok(Parsed::Encrypted) => Hello::Encrypted,
        Ok(Parsed::Ambiguous) => Hello::Ambiguous,
        Err(Short) if bytes.is_empty() || bytes[0] == 0x16 => Hello::Incomplete,
        Err(_) => Hello::NotTls,
    }
}

/// The random of a ServerHello that is a HelloRetryRequest (RFC 8446,
/// 4.1.3): SHA-256 of "HelloRetryRequest".
const RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What a server's first bytes say of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerHello {
    /// A HelloRetryRequest: the client sends a second ClientHello.
    Retry,
    /// Anything else (a ServerHello, an alert, not TLS): the client's
    /// next handshake messages are its last in the clear, or none.
    Other,
    Incomplete,
}

/// The length of the record at the start of `bytes`, its header included
/// (of a hello [`read`] has found whole, that hello's record).
pub(crate) fn record_len(bytes: &[u8]) -> usize {
    match bytes {
        [_, _, _, high, low, ..] => 5 + (usize::from(*high) << 8 | usize::from(*low)),
        _ => bytes.len(),
    }
}

/// Reads a server's first handshake record.
pub(crate) fn server_hello(bytes: &[u8]) -> ServerHello {
    let mut record = Cursor(bytes);
    let header = (|| {
        let kind = record.u8()?;
        record.take(2)?;
        let length = record.u16()?;
        Ok::<_, Short>((kind, length))
    })();
    let Ok((kind, length)) = header else {
        return ServerHello::Incomplete;
    };
    // A ServerHello is far shorter than a record; its start comes first.
    let body = &record.0[..record.0.len().min(length)];
    if kind != 0x16 || body.first().is_some_and(|t| *t != 2) {
        return ServerHello::Other;
    }
    // Type, length (3), version (2), random (32).
    match body.get(6..38) {
        Some(random) if random == RETRY_RANDOM => ServerHello::Retry,
        None if body.len() < length => ServerHello::Incomplete,
        _ => ServerHello::Other,
    }
}

/// How many bytes at the start of a client's stream are ChangeCipherSpec
/// records, which TLS 1.3 clients may send before a second ClientHello;
/// `None` until a whole record or another kind has arrived.
pub(crate) fn change_cipher_spec_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        match bytes.get(at..at + 5) {
            Some([20, _, _, high, low]) => {
                at += 5 + (usize::from(*high) << 8 | usize::from(*low));
                if at > bytes.len() {
                    return None;
                }
            }
            Some(_) => return Some(at),
            None if bytes.get(at).is_some_and(|k| *k != 20) => return Some(at),
            None => return None,
        }
    }
}

#[derive(Debug)]
struct Short;

enum Parsed {
    Name(String),
    NoName,
    Encrypted,
    Ambiguous,
}

/// Encrypted Client Hello, as standardised and as first drafted.
const ENCRYPTED_HELLO: [usize; 2] = [0xfe0d, 0xffce];

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.0.len() < n {
            return Err(Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, Short> {
        Ok(usize::from(self.take(1)?[0]))
    }

    fn u16(&mut self) -> Result<usize, Short> {
        let b = self.take(2)?;
        Ok(usize::from(b[0]) << 8 | usize::from(b[1]))
    }

    fn u24(&mut self) -> Result<usize, Short> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed, Short> {
    let mut record = Cursor(bytes);
    // Record header: handshake (22), version, length.
    if record.u8()? != 0x16 {
        return Err(Short);
    }
    record.take(2)?;
    let length = record.u16()?;
    let mut handshake = Cursor(record.take(length)?);
    if handshake.u8()? != 1 {
        return Err(Short);
    }
    let length = handshake.u24()?;
    let mut hello = Cursor(handshake.take(length)?);
    hello.take(2 + 32)?; // version, random
    let session = hello.u8()?;
    hello.take(session)?;
    let suites = hello.u16()?;
    hello.take(suites)?;
    let compression = hello.u8()?;
    hello.take(compression)?;
    if hello.0.is_empty() {
        return Ok(Parsed::NoName);
    }
    let length = hello.u16()?;
    let mut extensions = Cursor(hello.take(length)?);
    let mut seen = Vec::new();
    let mut name = None;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let length = extensions.u16()?;
        let mut data = Cursor(extensions.take(length)?);
        if seen.contains(&kind) {
            return Ok(Parsed::Ambiguous);
        }
        seen.push(kind);
        if ENCRYPTED_HELLO.contains(&kind) {
            return Ok(Parsed::Encrypted);
        }
        if kind != 0 {
            continue;
        }
        let list = data.u16()?;
        let mut names = Cursor(data.take(list)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let length = names.u16()?;
            let entry = names.take(length)?;
            if name_type == 0 {
                if name.is_some() {
                    return Ok(Parsed::Ambiguous);
                }
                name = Some(String::from_utf8_lossy(entry).into_owned());
            }
        }
    }
    Ok(name.map_or(Parsed::NoName, Parsed::Name))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn be16(n: usize) -> [u8; 2] {
        u16::try_from(n).unwrap().to_be_bytes()
    }

    /// A minimal ClientHello naming `server` (or none).
    pub(crate) fn client_hello(server: Option<&str>) -> Vec<u8> {
        hello_with(
            &server
                .map(|s| server_names(&[s]))
                .into_iter()
                .collect::<Vec<_>>(),
        )
    }

    /// A server name extension listing `names`.
    fn server_names(names: &[&str]) -> (u16, Vec<u8>) {
        let mut entries = Vec::new();
        for name in names {
            entries.push(0u8);
            entries.extend(be16(name.len()));
            entries.extend(name.as_bytes());
        }
        let mut data = be16(entries.len()).to_vec();
        data.extend(entries);
        (0, data)
    }

    /// A minimal ClientHello with these extensions, in this order.
    pub(crate) fn hello_with(list: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut extensions = Vec::new();
        for (kind, data) in list {
            extensions.extend(kind.to_be_bytes());
            extensions.extend(be16(data.len()));
            extensions.extend(data);
        }
        let mut hello = vec![3, 3];
        hello.extend([7u8; 32]);
        hello.push(0); // session id
        hello.extend([0, 2, 0x13, 0x01]); // one suite
        hello.extend([1, 0]); // null compression
        hello.extend(be16(extensions.len()));
        hello.extend(extensions);
        let mut handshake = vec![1];
        handshake.extend(&u32::try_from(hello.len()).unwrap().to_be_bytes()[1..]);
        handshake.extend(hello);
        let mut record = vec![0x16, 3, 1];
        record.extend(be16(handshake.len()));
        record.extend(handshake);
        record
    }

    #[test]
    fn the_server_name_is_read_from_a_client_hello() {
        assert_eq!(
            read(&client_hello(Some("API.example.com"))),
            Hello::ServerName("API.example.com".into())
        );
        assert_eq!(read(&client_hello(None)), Hello::NoServerName);
        let whole = client_hello(Some("a.example"));
        assert_eq!(read(&whole[..whole.len() - 3]), Hello::Incomplete);
        assert_eq!(read(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
        assert_eq!(read(b""), Hello::Incomplete);
    }

    #[test]
    fn a_hello_whose_name_cannot_be_trusted_is_told_apart() {
        let named = |n: &str| server_names(&[n]);
        let alpn = (16u16, vec![0, 3, 2, b'h', b'2']);
        // Encrypted Client Hello, final and draft, wherever it sits.
        for ech in [0xfe0d_u16, 0xffce] {
            let outer = (ech, vec![0; 8]);
            assert_eq!(
                read(&hello_with(&[named("a.example"), outer.clone()])),
                Hello::Encrypted
            );
            assert_eq!(
                read(&hello_with(&[outer.clone(), named("a.example")])),
                Hello::Encrypted
            );
            assert_eq!(read(&hello_with(&[outer])), Hello::Encrypted);
        }
        // Two names, in one extension or in two.
        assert_eq!(
            read(&hello_with(&[server_names(&["a.example", "b.example"])])),
            Hello::Ambiguous
        );
        assert_eq!(
            read(&hello_with(&[
                named("a.example"),
                alpn.clone(),
                named("b.example")
            ])),
            Hello::Ambiguous
        );
        assert_eq!(
            read(&hello_with(&[named("a.example"), named("a.example")])),
            Hello::Ambiguous
        );
        assert_eq!(
            read(&hello_with(&[alpn.clone(), alpn.clone()])),
            Hello::Ambiguous
        );
        // Other extensions around one name are fine.
        assert_eq!(
            read(&hello_with(&[alpn, named("a.example")])),
            Hello::ServerName("a.example".into())
        );
    }

    /// A ServerHello record whose random is `random`.
    fn server_hello_with(random: [u8; 32]) -> Vec<u8> {
        let mut hello = vec![2, 0, 0, 38, 3, 3];
        hello.extend(random);
        let mut record = vec![0x16, 3, 3];
        record.extend(be16(hello.len()));
        record.extend(hello);
        record
    }

    #[test]
    fn a_hello_retry_request_is_told_from_a_server_hello() {
        let retry = server_hello_with(RETRY_RANDOM);
        assert_eq!(server_hello(&retry), ServerHello::Retry);
        assert_eq!(server_hello(&retry[..20]), ServerHello::Incomplete);
        assert_eq!(
            server_hello(&server_hello_with([1; 32])),
            ServerHello::Other
        );
        assert_eq!(server_hello(&[21, 3, 3, 0, 2, 2, 40]), ServerHello::Other);
        assert_eq!(server_hello(b"HTTP/1.1 400 Bad"), ServerHello::Other);
        assert_eq!(server_hello(&[0x16, 3]), ServerHello::Incomplete);
    }

    #[test]
    fn a_hello_record_is_told_from_what_follows_it() {
        let hello = client_hello(Some("a.example"));
        let mut both = hello.clone();
        both.extend(client_hello(Some("b.example")));
        assert_eq!(record_len(&both), hello.len());
        assert_eq!(record_len(&[0x16, 3]), 2);
    }

    #[test]
    fn change_cipher_spec_records_before_a_second_hello_are_skipped() {
        let hello = client_hello(Some("a.example"));
        let ccs = [20, 3, 3, 0, 1, 1];
        let mut both = ccs.to_vec();
        both.extend(&hello);
        assert_eq!(change_cipher_spec_len(&both), Some(6));
        assert_eq!(change_cipher_spec_len(&hello), Some(0));
        assert_eq!(change_cipher_spec_len(&ccs[..4]), None);
        assert_eq!(change_cipher_spec_len(&ccs), None);
        assert_eq!(change_cipher_spec_len(&[]), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 5000, ..Default::default() })]

        /// Bytes either side may send first: nothing panics.
        #[test]
        fn any_bytes_read_as_some_server_hello(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let _ = server_hello(&bytes);
            let _ = change_cipher_spec_len(&bytes);
        }

        /// Bytes a client may send after its CONNECT: nothing panics.
        #[test]
        fn any_bytes_read_as_some_hello(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = read(&bytes);
        }

        /// A real hello with bytes changed: it reads as a hello, or as
        /// not one, and never names a server it does not hold.
        #[test]
        fn a_hello_with_bytes_changed_names_only_what_it_holds(
            name in "[a-z]{1,10}\\.example",
            changes in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 1..6),
            cut in 0usize..200,
        ) {
            let mut hello = client_hello(Some(&name));
            for (at, byte) in changes {
                let at = at % hello.len();
                hello[at] = byte;
            }
            hello.truncate(cut.max(1).min(hello.len()));
            if let Hello::ServerName(read) = read(&hello) {
                let text = String::from_utf8_lossy(&hello);
                proptest::prop_assert!(text.contains(&read), "{read} is not in the hello");
            }
        }
    }
}
