//! Address classes, as the gate sees them: some are never dialled, some
//! only when the user said the name may be private, the rest are public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Loopback, link-local (cloud metadata), multicast, unspecified,
    /// broadcast, "this network": never dialled, whatever the list says.
    Forbidden(&'static str),
    /// RFC 1918, CGNAT, ULA: dialled only for `egress.private` entries and
    /// SSH hosts.
    Private,
    Public,
}

pub fn classify(address: IpAddr) -> AddressClass {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(v4: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = v4.octets();
    if v4.is_loopback() {
        AddressClass::Forbidden("loopback")
    } else if v4.is_unspecified() || a == 0 {
        AddressClass::Forbidden("unspecified")
    } else if v4.is_link_local() {
        AddressClass::Forbidden("link-local")
    } else if v4.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if v4.is_broadcast() || a >= 240 {
        AddressClass::Forbidden("reserved")
    } else if a == 198 && (b == 18 || b == 19) {
        AddressClass::Forbidden("benchmarking")
    } else if a == 192 && b == 0 && c == 0 {
        AddressClass::Forbidden("protocol-assignment")
    } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Addresses that carry an IPv4 address to a translator or a tunnel are
/// what that IPv4 address is: `64:ff9b::10.0.0.1` reaches 10.0.0.1.
fn classify_v6(v6: Ipv6Addr) -> AddressClass {
    let segments = v6.segments();
    let embedded =
        |high: u16, low: u16| classify_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    if v6.is_loopback() {
        AddressClass::Forbidden("loopback")
    } else if v6.is_unspecified() {
        AddressClass::Forbidden("unspecified")
    } else if v6.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if v6.is_unicast_link_local() {
        AddressClass::Forbidden("link-local")
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
        // NAT64's well-known prefix, and the old IPv4-compatible form.
        embedded(segments[6], segments[7])
    } else if segments[0] == 0x2002 {
        // 6to4: the relay's IPv4 address follows the prefix.
        embedded(segments[1], segments[2])
    } else if segments[..3] == [0x64, 0xff9b, 1] {
        // Local-use NAT64 puts the IPv4 address where its operator chose.
        AddressClass::Forbidden("local-nat64")
    } else if segments[..2] == [0x2001, 0] {
        // Teredo: a server and an obscured client address, both IPv4.
        AddressClass::Forbidden("teredo")
    } else if v6.is_unique_local() || segments[0] & 0xffc0 == 0xfec0 {
        // Unique local, and site-local, which it replaced.
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(address: &str) -> AddressClass {
        classify(address.parse().unwrap())
    }

    #[test]
    fn every_class_is_recognised_in_both_families() {
        for forbidden in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "224.0.0.251",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "240.0.0.1",
            "255.255.255.254",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "::127.0.0.1",
            "::169.254.169.254",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
        ] {
            assert!(
                matches!(class(forbidden), AddressClass::Forbidden(_)),
                "{forbidden}"
            );
        }
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b::c0a8:101",
            "::10.0.0.1",
            "2002:c0a8:101::1",
            "2002:a00:1:5::1",
            "fec0::1",
            "feff::1",
        ] {
            assert_eq!(class(private), AddressClass::Private, "{private}");
        }
        for public in [
            "203.0.113.7",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::7",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::8.8.8.8",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.1.1",
            "223.255.255.255",
        ] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
    }
}
