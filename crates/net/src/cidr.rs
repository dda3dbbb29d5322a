//! IPv4 and IPv6 prefixes: parsing, containment, overlap.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 prefix such as `10.88.0.0/16`, always stored with its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr4 {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Cidr4 {
    /// The prefix `addr/prefix`, with the host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr4 {
        let prefix = prefix.min(32);
        Cidr4 {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    /// The first address (the network address).
    pub fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    /// The last address (the broadcast address for prefixes shorter than 31).
    pub fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    /// True if `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= self.first() && ip <= self.last()
    }

    /// True if the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr4) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// True if `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Cidr4) -> bool {
        self.first() <= other.first() && other.last() <= self.last()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a string is not an acceptable prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl FromStr for Cidr4 {
    type Err = CidrError;

    /// Parses `a.b.c.d/n`. Host bits must be zero, as Docker requires of `--subnet`: a typo
    /// such as `10.1.2.3/16` is more likely a mistake than a request for `10.1.0.0/16`.
    fn from_str(s: &str) -> Result<Cidr4, CidrError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| CidrError("expected ADDRESS/PREFIX, e.g. 10.89.0.0/24".into()))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| CidrError(format!("{a:?} is not an IPv4 address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| CidrError(format!("{p:?} is not a prefix length (0-32)")))?;
        let c = Cidr4::new(addr, prefix);
        if c.addr != addr {
            return Err(CidrError(format!("host bits are set; did you mean {c}?")));
        }
        Ok(c)
    }
}

/// An IPv6 prefix such as `fd12:3456:789a::/64`, always stored with its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr6 {
    /// The network address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0 to 128.
    pub prefix: u8,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix as u32)
    }
}

impl Cidr6 {
    /// The prefix `addr/prefix`, with the host bits cleared.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Cidr6 {
        let prefix = prefix.min(128);
        Cidr6 {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        }
    }

    /// The first address (the subnet-router anycast address).
    pub fn first(&self) -> u128 {
        u128::from(self.addr)
    }

    /// The last address.
    pub fn last(&self) -> u128 {
        self.first() | !mask6(self.prefix)
    }

    /// True if `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let ip = u128::from(ip);
        ip >= self.first() && ip <= self.last()
    }

    /// True if the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr6) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr6 {
    type Err = CidrError;

    /// Parses `addr/n`, host bits zero (as for IPv4).
    fn from_str(s: &str) -> Result<Cidr6, CidrError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| CidrError("expected ADDRESS/PREFIX, e.g. fd00:1::/64".into()))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| CidrError(format!("{a:?} is not an IPv6 address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| CidrError(format!("{p:?} is not a prefix length (0-128)")))?;
        let c = Cidr6::new(addr, prefix);
        if c.addr != addr {
            return Err(CidrError(format!("host bits are set; did you mean {c}?")));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_parse_and_relations() {
        let a: Cidr6 = "fd00:1::/64".parse().unwrap();
        assert_eq!(a.to_string(), "fd00:1::/64");
        assert!(a.contains("fd00:1::ffff:1".parse().unwrap()));
        assert!(!a.contains("fd00:2::1".parse().unwrap()));
        let b: Cidr6 = "fd00::/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&"fd00:2::/64".parse().unwrap()));
        for bad in [
            "fd00::1/64",
            "fd00::/129",
            "10.0.0.0/8",
            "fd00::",
            "zz::/64",
        ] {
            assert!(bad.parse::<Cidr6>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_and_relations() {
        let a: Cidr4 = "10.88.0.0/16".parse().unwrap();
        assert_eq!(a.to_string(), "10.88.0.0/16");
        assert!(a.contains("10.88.255.255".parse().unwrap()));
        assert!(!a.contains("10.89.0.0".parse().unwrap()));
        let b: Cidr4 = "10.88.4.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && a.covers(&b) && !b.covers(&a));
        let c: Cidr4 = "10.89.0.0/16".parse().unwrap();
        assert!(!a.overlaps(&c));
        assert!("0.0.0.0/0".parse::<Cidr4>().unwrap().overlaps(&a));
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "10.88.0.0",
            "10.88.0.1/16",
            "10.88.0.0/33",
            "10.88.0/16",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(s.parse::<Cidr4>().is_err(), "{s}");
        }
        assert!("10.88.0.1/16"
            .parse::<Cidr4>()
            .unwrap_err()
            .0
            .contains("10.88.0.0/16"));
    }
}
