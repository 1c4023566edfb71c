//! Address classes, as the gate sees them: some are never dialled, some
//! only when the user said the name may be private, the rest are public.
//!
//! Every IPv6 form that carries an IPv4 address (mapped, translated,
//! compatible, NAT64, 6to4) is the IPv4 address it carries. Cloud
//! metadata and platform endpoints are never dialled, wherever they sit:
//! most are link-local, but not all of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Metadata and platform endpoints outside link-local, which hand out a
/// machine's credentials or control it.
const METADATA_V4: [Ipv4Addr; 2] = [
    // Alibaba Cloud's instance metadata service.
    Ipv4Addr::new(100, 100, 100, 200),
    // Azure's WireServer (and its DNS and health probes).
    Ipv4Addr::new(168, 63, 129, 16),
];

/// The endpoints within link-local, for where an IPv6 address carries
/// one behind a network's own NAT64 prefix (link-local itself is
/// forbidden whole where it is plain).
const LINK_LOCAL_ENDPOINTS: [Ipv4Addr; 5] = [
    // Instance metadata: AWS, Azure, Google, Oracle and most others.
    Ipv4Addr::new(169, 254, 169, 254),
    // AWS: ECS task credentials, time, DNS.
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 169, 123),
    Ipv4Addr::new(169, 254, 169, 253),
    // Tencent Cloud's metadata.
    Ipv4Addr::new(169, 254, 0, 23),
];

/// The IPv6 prefixes (address, length) of the same.
const METADATA_V6: [(Ipv6Addr, u8); 2] = [
    // AWS Nitro: instance metadata `::254`, DNS `::253`, time `::123`, and
    // the rest of the services AWS puts in this /64.
    (Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0), 64),
    // Google Cloud's metadata server on IPv6-only machines (`fd20:ce::254`).
    (Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0), 64),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Loopback, link-local, cloud metadata, multicast, unspecified,
    /// broadcast, reserved, "this network": never dialled, whatever the
    /// list says.
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
    if METADATA_V4.contains(&v4) {
        AddressClass::Forbidden("metadata")
    } else if v4.is_loopback() {
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
    let bits = u128::from(v6);
    let embedded =
        |high: u16, low: u16| classify_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    let within = |(prefix, length): (Ipv6Addr, u8)| {
        bits >> (128 - length) == u128::from(prefix) >> (128 - length)
    };
    if METADATA_V6.into_iter().any(within) || carries_metadata(bits) {
        AddressClass::Forbidden("metadata")
    } else if v6.is_loopback() {
        AddressClass::Forbidden("loopback")
    } else if v6.is_unspecified() {
        AddressClass::Forbidden("unspecified")
    } else if v6.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if v6.is_unicast_link_local() {
        AddressClass::Forbidden("link-local")
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
        || segments[..6] == [0; 6]
        || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
    {
        // NAT64's well-known prefix, the old IPv4-compatible form and
        // SIIT's IPv4-translated form (`::ffff:0:a.b.c.d`).
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
    } else if segments[0] & 0xe000 != 0x2000 || segments[..4] == [0x100, 0, 0, 0] {
        // Outside global unicast (2000::/3) nothing is assigned
        // (`fe00::/9` among it); `100::/64` is discard-only.
        AddressClass::Forbidden("reserved")
    } else {
        AddressClass::Public
    }
}

/// Whether a metadata address sits where a network-specific NAT64 prefix
/// (RFC 6052: /32, /40, /48, /56, /64 or /96) puts its IPv4 address. An
/// operator's own prefix could be any, and the chance that a real address
/// carries one of these exact 32 bits in one of those places is nil.
fn carries_metadata(bits: u128) -> bool {
    let at = |shift: u32| u32::try_from((bits >> shift) & 0xffff_ffff).expect("32 bits");
    // Where the prefix ends past bit 64, the octet at bits 64..72 is
    // skipped: the IPv4 address goes around it.
    let around = |high_bits: u32, shift: u32| {
        let low_bits = 32 - high_bits;
        let high = (bits >> (shift + 8 + low_bits)) & ((1 << high_bits) - 1);
        let low = (bits >> shift) & ((1 << low_bits) - 1);
        u32::try_from((high << low_bits) | low).expect("32 bits")
    };
    [
        at(64),
        around(24, 48),
        around(16, 40),
        around(8, 32),
        at(24),
        at(0),
    ]
    .into_iter()
    .map(Ipv4Addr::from)
    .any(|carried| METADATA_V4.contains(&carried) || LINK_LOCAL_ENDPOINTS.contains(&carried))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(address: &str) -> AddressClass {
        classify(address.parse().unwrap())
    }

    #[test]
    fn metadata_endpoints_are_never_dialled_in_any_spelling() {
        for metadata in [
            "100.100.100.200",
            "168.63.129.16",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "fd00:ec2::253",
            "fd20:ce::254",
            "::ffff:168.63.129.16",
            "::ffff:0:168.63.129.16",
            "::ffff:0:a9fe:a9fe",
            "::168.63.129.16",
            "64:ff9b::100.100.100.200",
            "2002:a83f:8110::1",
            // Network-specific NAT64 prefixes, at each of RFC 6052's lengths.
            "2001:db8:a83f:8110::",
            "2001:db8:1a8:3f81:10::",
            "2001:db8:102:a83f:81:1000::",
            "2001:db8:102:3a8:3f:8110::",
            "2001:db8:102:304:a8:3f81:1000:0",
            "2001:db8:1:2:3:4:a83f:8110",
            "2001:db8:1:2:3:4:a9fe:a9fe",
            "2001:db8:1:2:3:4:a9fe:aa02",
        ] {
            assert_eq!(
                class(metadata),
                AddressClass::Forbidden("metadata"),
                "{metadata}"
            );
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_reserved() {
        for reserved in ["fe00::1", "fe7f::1", "4000::1", "100::1", "e000::1"] {
            assert_eq!(
                class(reserved),
                AddressClass::Forbidden("reserved"),
                "{reserved}"
            );
        }
        for translated in ["::ffff:0:10.0.0.1", "::ffff:0:a00:1"] {
            assert_eq!(class(translated), AddressClass::Private, "{translated}");
        }
        assert_eq!(
            class("::ffff:0:7f00:1"),
            AddressClass::Forbidden("loopback")
        );
        assert_eq!(class("::ffff:0:8.8.8.8"), AddressClass::Public);
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
