//! Rootless user-defined networks: the parts implemented so far (see the crate's docs).

use std::net::Ipv4Addr;

use crate::{Error, Result};

/// The subnet (a /24) for a new user network inside the user's rootless network namespace:
/// the first of `10.89.0.0/24`, `10.89.1.0/24`, … (Podman's rootless range) that overlaps
/// neither `taken` (the user's existing networks, as network address and prefix) nor the
/// user-mode stack's own network `stack`.
pub fn subnet_for(taken: &[(Ipv4Addr, u8)], stack: (Ipv4Addr, u8)) -> Result<Ipv4Addr> {
    let overlaps = |a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)| {
        let p = a.1.min(b.1);
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        u32::from(a.0) & mask == u32::from(b.0) & mask
    };
    (0..=255u8)
        .map(|n| Ipv4Addr::new(10, 89, n, 0))
        .find(|&net| !overlaps((net, 24), stack) && !taken.iter().any(|&t| overlaps((net, 24), t)))
        .ok_or_else(|| {
            Error::Conflict("every subnet of 10.89.0.0/16 is in use by this user's networks".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_skip_taken_ones_and_the_stack() {
        let stack = (Ipv4Addr::new(10, 0, 2, 0), 24);
        assert_eq!(subnet_for(&[], stack).unwrap(), Ipv4Addr::new(10, 89, 0, 0));
        let taken = [
            (Ipv4Addr::new(10, 89, 0, 0), 24),
            (Ipv4Addr::new(10, 89, 2, 0), 23),
        ];
        assert_eq!(
            subnet_for(&taken, stack).unwrap(),
            Ipv4Addr::new(10, 89, 1, 0)
        );
        let taken = [(Ipv4Addr::new(10, 89, 0, 0), 23)];
        assert_eq!(
            subnet_for(&taken, (Ipv4Addr::new(10, 89, 2, 0), 24)).unwrap(),
            Ipv4Addr::new(10, 89, 3, 0)
        );
        let all = [(Ipv4Addr::new(10, 0, 0, 0), 8)];
        assert_eq!(
            subnet_for(&all, stack).unwrap_err().kind(),
            hako_base::ErrorKind::Conflict
        );
    }
}
