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
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        AddressClass::Forbidden("loopback")
    } else if v4.is_unspecified() || a == 0 {
        AddressClass::Forbidden("unspecified")
    } else if v4.is_link_local() {
        AddressClass::Forbidden("link-local")
    } else if v4.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if v4.is_broadcast() {
        AddressClass::Forbidden("broadcast")
    } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(v6: Ipv6Addr) -> AddressClass {
    if v6.is_loopback() {
        AddressClass::Forbidden("loopback")
    } else if v6.is_unspecified() {
        AddressClass::Forbidden("unspecified")
    } else if v6.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if v6.is_unicast_link_local() {
        AddressClass::Forbidden("link-local")
    } else if v6.is_unique_local() {
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
        ] {
            assert_eq!(class(private), AddressClass::Private, "{private}");
        }
        for public in [
            "203.0.113.7",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::7",
        ] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
    }
}
