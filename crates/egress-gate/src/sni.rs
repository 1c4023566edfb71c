//! The server name a TLS ClientHello asks for.
//!
//! The gate reads it from the first bytes of a tunnel to port 443 and
//! holds it against the CONNECT host, so a client cannot tunnel to an
//! allowed name and then speak TLS to another one. Only the bytes needed
//! are parsed; anything that does not read as a ClientHello is `None`.

/// What the first bytes of a tunnel say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A ClientHello naming this server (lower case).
    ServerName(String),
    /// A ClientHello without a server name.
    NoServerName,
    /// Not (yet) a complete ClientHello.
    Incomplete,
    NotTls,
}

pub(crate) fn read(bytes: &[u8]) -> Hello {
    match parse(bytes) {
        Ok(Some(name)) => Hello::ServerName(name.to_ascii_lowercase()),
        Ok(None) => Hello::NoServerName,
        Err(Short) if bytes.is_empty() || bytes[0] == 0x16 => Hello::Incomplete,
        Err(_) => Hello::NotTls,
    }
}

#[derive(Debug)]
struct Short;

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

fn parse(bytes: &[u8]) -> Result<Option<String>, Short> {
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
        return Ok(None);
    }
    let length = hello.u16()?;
    let mut extensions = Cursor(hello.take(length)?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let length = extensions.u16()?;
        let mut data = Cursor(extensions.take(length)?);
        if kind != 0 {
            continue;
        }
        let list = data.u16()?;
        let mut names = Cursor(data.take(list)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let length = names.u16()?;
            let name = names.take(length)?;
            if name_type == 0 {
                return Ok(Some(String::from_utf8_lossy(name).into_owned()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn be16(n: usize) -> [u8; 2] {
        u16::try_from(n).unwrap().to_be_bytes()
    }

    /// A minimal ClientHello naming `server` (or none).
    pub(crate) fn client_hello(server: Option<&str>) -> Vec<u8> {
        let mut extensions = Vec::new();
        if let Some(name) = server {
            let name = name.as_bytes();
            let mut entry = vec![0u8];
            entry.extend(be16(name.len()));
            entry.extend(name);
            let mut data = be16(entry.len()).to_vec();
            data.extend(entry);
            extensions.extend(0u16.to_be_bytes());
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
            Hello::ServerName("api.example.com".into())
        );
        assert_eq!(read(&client_hello(None)), Hello::NoServerName);
        let whole = client_hello(Some("a.example"));
        assert_eq!(read(&whole[..whole.len() - 3]), Hello::Incomplete);
        assert_eq!(read(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
        assert_eq!(read(b""), Hello::Incomplete);
    }
}
