//! Address arithmetic for IPAM: IPv4 and IPv6 addresses as `u128` numbers, CIDRs ([`Cidr`]),
//! inclusive ranges ([`Range`]), the allocation pools Neutron derives from a CIDR and its gateway,
//! EUI-64 interface identifiers (SLAAC), and MAC addresses.
//!
//! Text forms are the ones Neutron prints: IPv4 dotted quads, IPv6 compressed lowercase
//! (RFC 5952, which is what both Rust's `Ipv6Addr` and Python's `netaddr` print), CIDRs as
//! `address/prefix`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address as a number with its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ip {
    pub version: u8,
    pub value: u128,
}

impl Ip {
    /// Parses a bare address (no prefix). Leading zeros in IPv4 octets are refused, as netaddr does.
    pub fn parse(text: &str) -> Option<Ip> {
        let text = text.trim();
        if text.contains('/') || text.is_empty() {
            return None;
        }
        match text.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => Some(Ip {
                version: 4,
                value: u32::from(v4) as u128,
            }),
            IpAddr::V6(v6) => Some(Ip {
                version: 6,
                value: u128::from(v6),
            }),
        }
    }

    pub fn v4(value: u32) -> Ip {
        Ip {
            version: 4,
            value: value as u128,
        }
    }

    pub fn bits(&self) -> u8 {
        if self.version == 4 {
            32
        } else {
            128
        }
    }

    /// A fixed-width hex key that sorts like the number (for `ORDER BY` in SQL).
    pub fn key(&self) -> String {
        format!("{:032x}", self.value)
    }

    pub fn from_key(version: u8, key: &str) -> Option<Ip> {
        u128::from_str_radix(key, 16)
            .ok()
            .map(|value| Ip { version, value })
    }

    pub fn offset(&self, delta: i128) -> Option<Ip> {
        let max = max_value(self.version);
        let value = if delta >= 0 {
            self.value.checked_add(delta as u128)?
        } else {
            self.value.checked_sub(delta.unsigned_abs())?
        };
        if value > max {
            return None;
        }
        Some(Ip {
            version: self.version,
            value,
        })
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version == 4 {
            write!(f, "{}", Ipv4Addr::from(self.value as u32))
        } else {
            write!(f, "{}", Ipv6Addr::from(self.value))
        }
    }
}

fn max_value(version: u8) -> u128 {
    if version == 4 {
        u32::MAX as u128
    } else {
        u128::MAX
    }
}

/// Normalizes an address's text (`2001:DB8:0::1` -> `2001:db8::1`), or `None` when it is not one.
pub fn canonical_ip(text: &str) -> Option<String> {
    Ip::parse(text).map(|ip| ip.to_string())
}

/// A network: an address and a prefix length. The address may carry host bits (a
/// `remote_ip_prefix` may); [`Cidr::network`] drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub ip: Ip,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix`; a bare address is taken as a host route (/32 or /128) only when
    /// `allow_bare` is set.
    pub fn parse_with(text: &str, allow_bare: bool) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None if allow_bare => (text, None),
            None => return None,
        };
        let ip = Ip::parse(addr)?;
        let prefix = match prefix {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return None;
                }
                p.parse::<u8>().ok()?
            }
            None => ip.bits(),
        };
        if prefix > ip.bits() {
            return None;
        }
        Some(Cidr { ip, prefix })
    }

    pub fn parse(text: &str) -> Option<Cidr> {
        Cidr::parse_with(text, false)
    }

    pub fn new(ip: Ip, prefix: u8) -> Cidr {
        Cidr { ip, prefix }
    }

    pub fn version(&self) -> u8 {
        self.ip.version
    }

    fn host_mask(&self) -> u128 {
        let bits = self.ip.bits() as u32 - self.prefix as u32;
        if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    }

    /// The first address (the network address).
    pub fn first(&self) -> Ip {
        Ip {
            version: self.ip.version,
            value: self.ip.value & !self.host_mask(),
        }
    }

    /// The last address (the IPv4 broadcast address).
    pub fn last(&self) -> Ip {
        Ip {
            version: self.ip.version,
            value: self.first().value | self.host_mask(),
        }
    }

    /// The same prefix without host bits.
    pub fn network(&self) -> Cidr {
        Cidr {
            ip: self.first(),
            prefix: self.prefix,
        }
    }

    pub fn is_network(&self) -> bool {
        self.ip == self.first()
    }

    /// The number of addresses, saturating at `u128::MAX`.
    pub fn size(&self) -> u128 {
        self.host_mask().saturating_add(1)
    }

    pub fn contains(&self, ip: &Ip) -> bool {
        ip.version == self.ip.version
            && ip.value >= self.first().value
            && ip.value <= self.last().value
    }

    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        self.contains(&other.first()) && self.contains(&other.last())
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.version() == other.version()
            && self.first().value <= other.last().value
            && other.first().value <= self.last().value
    }

    pub fn range(&self) -> Range {
        Range {
            start: self.first(),
            end: self.last(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// An inclusive range of addresses: an allocation pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Ip,
    pub end: Ip,
}

impl Range {
    pub fn contains(&self, ip: &Ip) -> bool {
        ip.version == self.start.version
            && ip.value >= self.start.value
            && ip.value <= self.end.value
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start.value <= other.end.value && other.start.value <= self.end.value
    }
}

/// The pools Neutron gives a subnet that names none: every address but the network address,
/// the IPv4 broadcast address and the gateway.
pub fn default_pools(cidr: &Cidr, gateway: Option<&Ip>) -> Vec<Range> {
    let first = cidr.first();
    let last = cidr.last();
    if first == last {
        return vec![Range {
            start: first,
            end: last,
        }];
    }
    let start = first.value + 1;
    let end = last.value - u128::from(cidr.version() == 4);
    if start >= end {
        return Vec::new();
    }
    let version = cidr.version();
    let mk = |s: u128, e: u128| Range {
        start: Ip { version, value: s },
        end: Ip { version, value: e },
    };
    match gateway {
        Some(gw) if gw.value >= start && gw.value <= end => {
            let mut pools = Vec::new();
            if gw.value > start {
                pools.push(mk(start, gw.value - 1));
            }
            if gw.value < end {
                pools.push(mk(gw.value + 1, end));
            }
            pools
        }
        _ => vec![mk(start, end)],
    }
}

/// The EUI-64 address of `mac` in the /64 `prefix` (what SLAAC hosts configure).
pub fn eui64(prefix: &Cidr, mac: &Mac) -> Ip {
    let m = mac.0;
    let iid: u64 = u64::from_be_bytes([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    Ip {
        version: 6,
        value: (prefix.first().value & !((1u128 << 64) - 1)) | iid as u128,
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` separators, any case).
    pub fn parse(text: &str) -> Option<Mac> {
        let parts: Vec<&str> = text.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return None;
        }
        let mut bytes = [0u8; 6];
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() || part.len() > 2 {
                return None;
            }
            bytes[i] = u8::from_str_radix(part, 16).ok()?;
        }
        Some(Mac(bytes))
    }

    /// A random address under `base`'s first three octets (Neutron's `base_mac`, `fa:16:3e`).
    pub fn random(base: &Mac) -> Mac {
        let tail: [u8; 3] = rand::random();
        Mac([base.0[0], base.0[1], base.0[2], tail[0], tail[1], tail[2]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_print() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert_eq!(c.first().to_string(), "10.0.0.0");
        assert_eq!(c.last().to_string(), "10.0.0.255");
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("192.168.1./24").is_none());
        assert!(Cidr::parse("bad_prefix").is_none());
        assert!(Cidr::parse("256").is_none());
        assert!(Cidr::parse_with("256", true).is_none());
        assert_eq!(
            Cidr::parse_with("10.1.2.3", true).unwrap().to_string(),
            "10.1.2.3/32"
        );
        let v6 = Cidr::parse("2001:DB8::/64").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert_eq!(v6.last().to_string(), "2001:db8::ffff:ffff:ffff:ffff");
        assert!(!Cidr::parse("10.0.0.1/24").unwrap().is_network());
        assert!(Cidr::parse("::/0")
            .unwrap()
            .contains(&Ip::parse("::1").unwrap()));
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
    }

    #[test]
    fn default_pools_skip_network_broadcast_and_gateway() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        let gw = Ip::parse("10.0.0.1").unwrap();
        let pools = default_pools(&c, Some(&gw));
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].start.to_string(), "10.0.0.2");
        assert_eq!(pools[0].end.to_string(), "10.0.0.254");
        let mid = Ip::parse("10.0.0.100").unwrap();
        assert_eq!(default_pools(&c, Some(&mid)).len(), 2);
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        let pools = default_pools(&v6, Some(&Ip::parse("2001:db8::1").unwrap()));
        assert_eq!(pools[0].start.to_string(), "2001:db8::2");
        assert_eq!(pools[0].end.to_string(), "2001:db8::ffff:ffff:ffff:ffff");
        assert!(default_pools(&Cidr::parse("10.0.0.0/31").unwrap(), None).is_empty());
    }

    #[test]
    fn eui64_matches_oslo() {
        // oslo_utils.netutils.get_ipv6_addr_by_EUI64('2001:db8::/64', 'fa:16:3e:33:44:55')
        let mac = Mac::parse("fa:16:3e:33:44:55").unwrap();
        let ip = eui64(&Cidr::parse("2001:db8::/64").unwrap(), &mac);
        assert_eq!(ip.to_string(), "2001:db8::f816:3eff:fe33:4455");
    }

    #[test]
    fn macs_parse_and_print() {
        let m = Mac::parse("FA:16:3E:0A:0b:0c").unwrap();
        assert_eq!(m.to_string(), "fa:16:3e:0a:0b:0c");
        assert!(Mac::parse("fa:16:3e:0a:0b").is_none());
        assert!(Mac::parse("zz:16:3e:0a:0b:0c").is_none());
        let r = Mac::random(&m);
        assert_eq!(&r.0[..3], &m.0[..3]);
    }

    #[test]
    fn keys_sort_like_numbers() {
        let a = Ip::parse("10.0.0.9").unwrap().key();
        let b = Ip::parse("10.0.0.10").unwrap().key();
        assert!(a < b);
        assert_eq!(Ip::from_key(4, &b), Ip::parse("10.0.0.10"));
        let high = Ip::parse("fd00:10::").unwrap();
        assert_eq!(high.offset(1).unwrap().to_string(), "fd00:10::1");
        assert!(Ip::parse("255.255.255.255").unwrap().offset(1).is_none());
    }
}
