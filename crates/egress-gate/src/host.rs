//! The host of a request, normalised before it is matched: lower case, no
//! trailing dot, internationalised names in their ASCII form, and every
//! spelling of an IP address read as the address it means.
//!
//! IPv4 literals follow the URL standard's reading, which is what clients
//! do: `127.1`, `0177.0.0.1`, `0x7f.0.0.1` and `2130706433` all mean
//! 127.0.0.1. Reading them the same way here is what keeps an address
//! from slipping past the list in a spelling the list did not expect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Address(IpAddr),
}

/// Reads a host as written in a request (`[v6]` brackets allowed).
pub fn parse(host: &str) -> Option<Host> {
    if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| Host::Address(canonical_v6(v6)));
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(Host::Address(canonical_v6(v6)));
    }
    if host.contains(['/', '\\', '@', ' ', '%', ':', '\0']) {
        return None;
    }
    // Mapped first, checked after: full-width `／＼＠：％`, U+3000 and
    // ideographic full stops become ASCII only here, and the policy must
    // see the name the resolver will.
    let mapped = idna::domain_to_ascii(host).ok()?;
    let name = mapped.strip_suffix('.').unwrap_or(&mapped);
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    if name.is_empty() || !name.bytes().all(allowed) {
        return None;
    }
    if ends_in_number(name) {
        return parse_ipv4(name).map(|v4| Host::Address(IpAddr::V4(v4)));
    }
    if name.len() > 253 || name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    Some(Host::Name(name.to_owned()))
}

impl Host {
    /// The host as a request names it in canonical form: the name, or the
    /// address as Rust writes it.
    pub fn text(&self) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::Address(address) => address.to_string(),
        }
    }
}

/// IPv4-mapped IPv6 addresses are the IPv4 address they map.
fn canonical_v6(v6: Ipv6Addr) -> IpAddr {
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// The URL standard's test: a host whose last label is a number is an IPv4
/// address (or invalid), never a name.
fn ends_in_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || parse_number(last).is_some())
}

/// One part of an IPv4 literal: decimal, octal (`0` prefix) or hex (`0x`).
fn parse_number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    u64::from_str_radix(digits, radix).ok()
}

fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = host.split('.').map(parse_number).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if parts.len() > 4 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let rest_bits = 8 * (5 - parts.len());
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut value = *last;
    for (i, part) in leading.iter().enumerate() {
        value += part << (8 * (3 - i));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str) -> Option<IpAddr> {
        match parse(host)? {
            Host::Address(a) => Some(a),
            Host::Name(_) => None,
        }
    }

    #[test]
    fn every_spelling_of_an_address_means_that_address() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        for spelling in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "0x7F.1",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
            "::ffff:7f00:1",
        ] {
            assert_eq!(address(spelling), Some(loopback), "{spelling}");
        }
        assert_eq!(
            address("[2001:db8::7]"),
            Some("2001:db8::7".parse().unwrap())
        );
        for invalid in [
            "256.0.0.1",
            "1.2.3.4.5",
            "0x100.0.0.1",
            "1.2.3.08",
            "4294967296",
        ] {
            assert_eq!(parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(parse("PyPI.ORG."), Some(Host::Name("pypi.org".into())));
        assert_eq!(
            parse("bücher.de"),
            Some(Host::Name("xn--bcher-kva.de".into()))
        );
        assert_eq!(
            parse("1.example.com"),
            Some(Host::Name("1.example.com".into()))
        );
        for invalid in ["", ".", "a..b", "ex ample.com", "a/b", "user@host", "a%2eb"] {
            assert_eq!(parse(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn what_maps_to_a_forbidden_character_is_refused_after_mapping() {
        for invalid in [
            "x\u{ff3c}.example.com",
            "x\u{ff0f}.example.com",
            "user\u{ff20}example.com",
            "example.com\u{ff1a}443",
            "a\u{ff05}2eb.example.com",
            "ex\u{3000}ample.com",
            "x!.example.com",
            "x*.example.com",
        ] {
            assert_eq!(parse(invalid), None, "{invalid:?}");
        }
        // What maps to a name the resolver reads the same stays a name,
        // or the address it spells.
        assert_eq!(
            parse("example\u{3002}com"),
            Some(Host::Name("example.com".into()))
        );
        assert_eq!(
            parse("\u{ff11}\u{ff12}\u{ff17}.0.0.1"),
            Some(Host::Address("127.0.0.1".parse().unwrap()))
        );
    }
}
