//! IP address management: which subnets a port draws addresses from, the next free address of
//! a subnet's allocation pools, requested addresses, EUI-64 addresses on SLAAC and
//! DHCPv6-stateless subnets, and MACs.
//!
//! Everything here runs inside the caller's write transaction, so "is it free?" and "take it"
//! are one step. Allocation is "next after the highest allocated address" (one indexed lookup),
//! falling back to a scan for the lowest hole once the pools' end is reached, so a subnet fills
//! up completely before it answers 409 `IpAddressGenerationFailure`.

use nubo_common::db::is_unique_violation;
use nubo_common::{Error, Result};

use super::{in_use, is_router_interface, subnet_cidr, NetworkService};
use crate::addr::{eui64, Cidr, Ip, Mac, Range};
use crate::input::invalid_input;
use crate::store::ports::FixedIp;
use crate::store::subnets::SubnetRow;
use crate::store::{self, Conn};

/// One entry of a port's `fixed_ips` as requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
}

pub fn generation_failure(network_id: &str) -> Error {
    Error::conflict(format!(
        "No more IP addresses available on network {network_id}."
    ))
    .with_kind("IpAddressGenerationFailure")
}

pub fn ip_in_use(network_id: &str, ip: &str) -> Error {
    in_use(
        "IpAddressInUse",
        format!(
            "Unable to complete operation for network {network_id}. The IP address {ip} is in use."
        ),
    )
}

fn invalid_ip_for_subnet(ip: &str) -> Error {
    Error::bad_request(format!(
        "IP address {ip} is not a valid IP for the specified subnet."
    ))
    .with_kind("InvalidIpForSubnet")
}

/// The pools of a stored subnet as ranges.
pub fn pools_of(s: &SubnetRow) -> Vec<Range> {
    s.allocation_pools
        .iter()
        .filter_map(|p| {
            Some(Range {
                start: Ip::parse(&p.start)?,
                end: Ip::parse(&p.end)?,
            })
        })
        .collect()
}

/// Neutron's `check_subnet_ip`: inside the CIDR, not its network address (router ports may take
/// an IPv6 subnet-router anycast address), not the IPv4 broadcast address.
pub fn valid_on_subnet(cidr: &Cidr, ip: &Ip, device_owner: &str) -> bool {
    if !cidr.contains(ip) {
        return false;
    }
    if cidr.version() == 6 {
        is_router_interface(device_owner)
            || device_owner == super::ROUTER_GATEWAY
            || device_owner.is_empty()
            || *ip != cidr.first()
    } else {
        (cidr.prefix >= 31) || (*ip != cidr.first() && *ip != cidr.last())
    }
}

impl NetworkService {
    /// A MAC not yet used on `network_id`.
    pub(crate) async fn new_mac(&self, conn: &mut Conn, network_id: &str) -> Result<Mac> {
        for _ in 0..16 {
            let mac = Mac::random(&self.settings.base_mac);
            if !store::ports::mac_in_use(conn, network_id, &mac.to_string()).await? {
                return Ok(mac);
            }
        }
        Err(Error::conflict(format!(
            "Unable to generate unique mac on network {network_id}."
        ))
        .with_kind("MacAddressGenerationFailure"))
    }

    /// The lowest-cost free address in `subnet`'s pools, or `None` when they are full.
    pub(crate) async fn next_free(
        &self,
        conn: &mut Conn,
        subnet: &SubnetRow,
    ) -> Result<Option<Ip>> {
        let version = subnet.ip_version as u8;
        let mut pools = pools_of(subnet);
        pools.sort_by_key(|p| p.start.value);
        if pools.is_empty() {
            return Ok(None);
        }
        // Fast path: the address after the highest one allocated.
        let max = store::ports::max_ip_key(conn, &subnet.id)
            .await?
            .and_then(|k| Ip::from_key(version, &k));
        let candidate = match max {
            None => Some(pools[0].start),
            Some(max) => pools.iter().find_map(|p| {
                if p.end.value <= max.value {
                    None
                } else if p.start.value > max.value {
                    Some(p.start)
                } else {
                    Some(Ip {
                        version,
                        value: max.value + 1,
                    })
                }
            }),
        };
        if let Some(c) = candidate {
            if store::ports::ip_owner(conn, &subnet.network_id, &c.to_string())
                .await?
                .is_none()
            {
                return Ok(Some(c));
            }
        }
        // Slow path: the lowest hole.
        let used: Vec<u128> = store::ports::used_ip_keys(conn, &subnet.id)
            .await?
            .iter()
            .filter_map(|k| u128::from_str_radix(k, 16).ok())
            .collect();
        for pool in &pools {
            let mut c = pool.start.value;
            let mut i = used.partition_point(|u| *u < c);
            while i < used.len() && used[i] == c && c <= pool.end.value {
                c += 1;
                i += 1;
            }
            if c <= pool.end.value {
                return Ok(Some(Ip { version, value: c }));
            }
        }
        Ok(None)
    }

    /// Records `ip` for `port_id`, or 409 `IpAddressInUse`.
    async fn take(
        &self,
        conn: &mut Conn,
        subnet: &SubnetRow,
        port_id: &str,
        ip: Ip,
    ) -> Result<FixedIp> {
        let fixed = FixedIp {
            port_id: port_id.to_string(),
            network_id: subnet.network_id.clone(),
            subnet_id: subnet.id.clone(),
            ip_address: ip.to_string(),
        };
        match store::ports::insert_fixed_ip(conn, &fixed, &ip.key()).await {
            Ok(()) => Ok(fixed),
            Err(err) if is_unique_violation(&err) => {
                Err(ip_in_use(&subnet.network_id, &fixed.ip_address))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Allocates one address on `subnet`: EUI-64 on an automatic-address subnet (unless the
    /// port is a router's), else the next free pool address.
    async fn allocate_on(
        &self,
        conn: &mut Conn,
        subnet: &SubnetRow,
        port_id: &str,
        mac: &Mac,
        device_owner: &str,
    ) -> Result<FixedIp> {
        if subnet.is_auto_address() && !is_router_interface(device_owner) {
            let cidr = subnet_cidr(subnet)?;
            let ip = eui64(&cidr, mac);
            return self.take(conn, subnet, port_id, ip).await;
        }
        match self.next_free(conn, subnet).await? {
            Some(ip) => self.take(conn, subnet, port_id, ip).await,
            None => Err(generation_failure(&subnet.network_id)),
        }
    }

    /// Resolves requested fixed IPs against the network's subnets (Neutron's rules and
    /// messages), without allocating.
    pub(crate) fn resolve_requests<'a>(
        &self,
        network_id: &str,
        subnets: &'a [SubnetRow],
        requests: &[IpRequest],
        device_owner: &str,
        mac: Option<&Mac>,
    ) -> Result<Vec<(&'a SubnetRow, Option<Ip>)>> {
        let mut out = Vec::new();
        for req in requests {
            if subnets.is_empty() {
                return Err(invalid_input("IP allocation requires subnets for network"));
            }
            let ip = match &req.ip_address {
                Some(text) => Some(Ip::parse(text).ok_or_else(|| {
                    crate::input::invalid(
                        "fixed_ips",
                        format!("'{text}' is not a valid IP address"),
                    )
                })?),
                None => None,
            };
            let subnet = match &req.subnet_id {
                Some(id) => {
                    let s = subnets.iter().find(|s| &s.id == id).ok_or_else(|| {
                        invalid_input(format!(
                            "Failed to create port on network {network_id}, because fixed_ips included invalid subnet {id}"
                        ))
                    })?;
                    if let Some(ip) = &ip {
                        if !valid_on_subnet(&subnet_cidr(s)?, ip, device_owner) {
                            return Err(invalid_ip_for_subnet(&ip.to_string()));
                        }
                    }
                    s
                }
                None => {
                    let Some(ip) = &ip else {
                        return Err(invalid_input(
                            "IP allocation requires subnet_id or ip_address",
                        ));
                    };
                    let mut found = None;
                    for s in subnets {
                        if valid_on_subnet(&subnet_cidr(s)?, ip, device_owner) {
                            found = Some(s);
                            break;
                        }
                    }
                    found.ok_or_else(|| {
                        Error::bad_request(format!(
                            "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                        ))
                        .with_kind("InvalidIpForNetwork")
                    })?
                }
            };
            let eui = match mac {
                Some(mac) if subnet.is_auto_address() => Some(eui64(&subnet_cidr(subnet)?, mac)),
                _ => None,
            };
            if ip.is_some()
                && subnet.is_auto_address()
                && !is_router_interface(device_owner)
                && ip != eui
            {
                return Err(invalid_input(format!(
                    "IPv6 address {} cannot be directly assigned to a port on subnet {} as the subnet is configured for automatic addresses",
                    ip.map(|i| i.to_string()).unwrap_or_default(),
                    subnet.id
                )));
            }
            out.push((subnet, ip));
        }
        Ok(out)
    }

    /// Allocates the addresses of a port: the requested ones, or, when none were requested,
    /// one from the first IPv4 subnet with room and one from the first stateful IPv6 subnet with
    /// room; and in both cases (but for router ports) the EUI-64 address on every
    /// automatic-address IPv6 subnet the port has no address on yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn allocate_port_ips(
        &self,
        conn: &mut Conn,
        network_id: &str,
        subnets: &[SubnetRow],
        port_id: &str,
        mac: &Mac,
        device_owner: &str,
        requests: Option<&[IpRequest]>,
    ) -> Result<Vec<FixedIp>> {
        let mut out = Vec::new();
        let router = is_router_interface(device_owner);
        match requests {
            Some(requests) => {
                let resolved =
                    self.resolve_requests(network_id, subnets, requests, device_owner, Some(mac))?;
                for (subnet, ip) in resolved {
                    if subnet.is_auto_address() && !router {
                        // Added below, as on every automatic-address subnet.
                        continue;
                    }
                    let fixed = match ip {
                        Some(ip) => self.take(conn, subnet, port_id, ip).await?,
                        None => {
                            self.allocate_on(conn, subnet, port_id, mac, device_owner)
                                .await?
                        }
                    };
                    out.push(fixed);
                }
            }
            None => {
                for stateful_version in [4, 6] {
                    let candidates: Vec<&SubnetRow> = subnets
                        .iter()
                        .filter(|s| s.ip_version == stateful_version && !s.is_auto_address())
                        .collect();
                    if candidates.is_empty() {
                        continue;
                    }
                    let mut done = false;
                    for s in &candidates {
                        if let Some(ip) = self.next_free(conn, s).await? {
                            out.push(self.take(conn, s, port_id, ip).await?);
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        return Err(generation_failure(network_id));
                    }
                }
            }
        }
        if !router {
            let held: Vec<String> = store::ports::fixed_ips_of(conn, &[port_id.to_string()])
                .await?
                .remove(port_id)
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.subnet_id)
                .collect();
            for s in subnets.iter().filter(|s| s.is_auto_address()) {
                if !held.contains(&s.id) {
                    out.push(
                        self.allocate_on(conn, s, port_id, mac, device_owner)
                            .await?,
                    );
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_ip_validity_follows_neutron() {
        let v4 = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(!valid_on_subnet(&v4, &Ip::parse("10.0.0.0").unwrap(), ""));
        assert!(!valid_on_subnet(&v4, &Ip::parse("10.0.0.255").unwrap(), ""));
        assert!(valid_on_subnet(&v4, &Ip::parse("10.0.0.1").unwrap(), ""));
        assert!(!valid_on_subnet(&v4, &Ip::parse("10.0.1.1").unwrap(), ""));
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        assert!(!valid_on_subnet(
            &v6,
            &Ip::parse("2001:db8::").unwrap(),
            "compute:nova"
        ));
        assert!(valid_on_subnet(
            &v6,
            &Ip::parse("2001:db8::").unwrap(),
            "network:router_interface"
        ));
    }
}
