//! The metadata service (what a guest reads from 169.254.169.254, through the data plane's
//! proxy) and the content of config drives (the same files on a `config-2` disk).
//!
//! The proxy names the instance as Nova's neutron-metadata-agent does: `X-Instance-ID` and
//! `X-Instance-ID-Signature` = hex HMAC-SHA256 of the instance id under the shared
//! `metadata_secret` (plus `X-Tenant-ID`, checked against the instance's project when sent).
//!
//! ```text
//!   /openstack                         versions
//!   /openstack/latest/                 meta_data.json network_data.json user_data vendor_data.json vendor_data2.json
//!   /latest/meta-data/                 ami-id ... hostname instance-id public-keys/ ...
//!   /latest/meta-data/public-keys/0/openssh-key
//!   /latest/user-data
//! ```

use base64::Engine;
use hmac::{Hmac, Mac};
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};
use sha2::Sha256;

use super::ComputeService;
use crate::agent_api::ConfigDriveContent;
use crate::store;
use crate::store::servers::ServerRow;

const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
];
const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "latest",
];

/// The signature the proxy sends for `instance_id`.
pub fn sign_instance_id(secret: &str, instance_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(instance_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A metadata answer: content type and bytes.
pub struct MetaAnswer {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

fn text(s: impl Into<String>) -> MetaAnswer {
    MetaAnswer {
        content_type: "text/plain; charset=UTF-8",
        body: s.into().into_bytes(),
    }
}

fn json_answer(v: &Value) -> MetaAnswer {
    MetaAnswer {
        content_type: "application/json",
        body: serde_json::to_vec(v).unwrap_or_default(),
    }
}

fn not_found() -> Error {
    Error::not_found("The resource could not be found.")
}

impl ComputeService {
    /// Checks the proxy's headers; returns the instance.
    pub async fn metadata_instance(
        &self,
        instance_id: &str,
        signature: &str,
        tenant_id: Option<&str>,
    ) -> Result<ServerRow> {
        let expected = sign_instance_id(&self.settings.metadata_secret, instance_id);
        let ok: bool = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !ok {
            return Err(Error::forbidden("Invalid proxy request signature."));
        }
        let row = {
            let mut conn = self.read().await?;
            store::servers::get(&mut conn, instance_id).await?
        }
        .ok_or_else(not_found)?;
        if let Some(t) = tenant_id {
            if !t.is_empty() && t != row.project_id {
                return Err(Error::not_found("Instance not found"));
            }
        }
        Ok(row)
    }

    fn meta_data_json(&self, row: &ServerRow) -> Value {
        use rand::RngCore;
        let mut seed = [0u8; 512];
        rand::thread_rng().fill_bytes(&mut seed);
        let mut public_keys = serde_json::Map::new();
        let mut keys = Vec::new();
        if let (Some(name), Some(data)) = (&row.key_name, &row.key_data) {
            public_keys.insert(name.clone(), json!(data));
            keys.push(json!({"name": name, "type": "ssh", "data": data}));
        }
        json!({
            "uuid": row.id,
            "meta": row.metadata,
            "hostname": format!("{}.novalocal", row.hostname),
            "name": row.name,
            "launch_index": row.launch_index,
            "availability_zone": row.availability_zone,
            "project_id": row.project_id,
            "public_keys": public_keys,
            "keys": keys,
            "devices": [],
            "random_seed": base64::engine::general_purpose::STANDARD.encode(seed),
            "dedicated_cpus": [],
        })
    }

    /// `network_data.json` as Nova writes it: a link per port (MAC, MTU), and per fixed IP a
    /// network entry: `ipv4_dhcp` on a subnet with DHCP, `ipv6_slaac` / `ipv6_dhcpv6-stateful`
    /// / `ipv6_dhcpv6-stateless` by the subnet's address mode, otherwise a static `ipv4` /
    /// `ipv6` entry with the address, netmask, routes (default and host routes) and DNS
    /// servers; and every DNS server once more in the top-level `services`.
    async fn network_data_json(&self, row: &ServerRow) -> Value {
        let ctx = nubo_network::service::Ctx::system(&row.project_id);
        let mut links = Vec::new();
        let mut networks = Vec::new();
        let mut services: Vec<Value> = Vec::new();
        for p in &row.ports {
            let tap = crate::agent_api::tap_name(&p.port_id);
            let state = self.network.port_state(&p.port_id).await.ok().flatten();
            links.push(json!({
                "id": tap, "vif_id": p.port_id, "type": "phy",
                "mtu": state.as_ref().map(|s| s.mtu).filter(|m| *m > 0),
                "ethernet_mac_address": p.mac,
            }));
            let fixed: Vec<(String, String)> = match &state {
                Some(s) => s
                    .fixed_ips
                    .iter()
                    .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
                    .collect(),
                None => p.ips.iter().map(|ip| (String::new(), ip.clone())).collect(),
            };
            for (subnet_id, ip) in fixed {
                let subnet = if subnet_id.is_empty() {
                    Value::Null
                } else {
                    self.network
                        .get_subnet(&ctx, &subnet_id)
                        .await
                        .unwrap_or(Value::Null)
                };
                let entry = network_entry(networks.len(), &tap, &p.network_id, &ip, &subnet);
                for dns in entry["services"].as_array().into_iter().flatten() {
                    if !services.contains(dns) {
                        services.push(dns.clone());
                    }
                }
                networks.push(entry);
            }
        }
        json!({"links": links, "networks": networks, "services": services})
    }

    fn user_data_bytes(row: &ServerRow) -> Option<Vec<u8>> {
        row.user_data.as_ref().and_then(|u| {
            base64::engine::general_purpose::STANDARD
                .decode(u.trim())
                .ok()
        })
    }

    /// Answers a metadata path for the instance.
    pub async fn metadata_answer(&self, row: &ServerRow, path: &str) -> Result<MetaAnswer> {
        let path = path.trim_start_matches('/');
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let trailing = path.ends_with('/');
        match parts.as_slice() {
            [] => Ok(text(EC2_VERSIONS.join("\n") + "\nopenstack")),
            ["openstack"] => Ok(text(OPENSTACK_VERSIONS.join("\n"))),
            ["openstack", v] if OPENSTACK_VERSIONS.contains(v) => {
                let mut items = vec!["meta_data.json", "network_data.json"];
                if row.user_data.is_some() {
                    items.push("user_data");
                }
                items.extend(["vendor_data.json", "vendor_data2.json"]);
                if *v >= "2013-04-04" {
                    items.push("password");
                }
                Ok(text(items.join("\n")))
            }
            ["openstack", v, "password"]
                if *v >= "2013-04-04" && OPENSTACK_VERSIONS.contains(v) =>
            {
                Ok(text(store::passwords::get(&self.db, &row.id).await?))
            }
            ["openstack", v, file] if OPENSTACK_VERSIONS.contains(v) => match *file {
                "meta_data.json" => Ok(json_answer(&self.meta_data_json(row))),
                "network_data.json" => Ok(json_answer(&self.network_data_json(row).await)),
                "vendor_data.json" | "vendor_data2.json" => Ok(json_answer(&json!({}))),
                "user_data" => Self::user_data_bytes(row)
                    .map(|b| MetaAnswer {
                        content_type: "text/plain",
                        body: b,
                    })
                    .ok_or_else(not_found),
                _ => Err(not_found()),
            },
            [v] if EC2_VERSIONS.contains(v) => Ok(text(if row.user_data.is_some() {
                "meta-data/\nuser-data"
            } else {
                "meta-data/"
            })),
            [v, "user-data"] if EC2_VERSIONS.contains(v) => Self::user_data_bytes(row)
                .map(|b| MetaAnswer {
                    content_type: "text/plain",
                    body: b,
                })
                .ok_or_else(not_found),
            [v, "meta-data", rest @ ..] if EC2_VERSIONS.contains(v) => {
                // public-ipv4: the first IPv4 floating IP on one of the server's ports.
                let floating = self.floating_ips_by_port(&[row]).await?;
                let public_ipv4 = row
                    .ports
                    .iter()
                    .flat_map(|p| floating.get(&p.port_id).into_iter().flatten())
                    .find(|ip| !ip.contains(':'))
                    .cloned()
                    .unwrap_or_default();
                self.ec2(row, rest, trailing, &public_ipv4)
            }
            _ => Err(not_found()),
        }
    }

    fn ec2(
        &self,
        row: &ServerRow,
        rest: &[&str],
        _trailing: bool,
        public_ipv4: &str,
    ) -> Result<MetaAnswer> {
        let hostname = format!("{}.novalocal", row.hostname);
        let ipv4 = row
            .ports
            .iter()
            .flat_map(|p| p.ips.iter())
            .find(|i| !i.contains(':'))
            .cloned()
            .unwrap_or_default();
        match rest {
            [] => Ok(text(
                [
                    "ami-id",
                    "ami-launch-index",
                    "ami-manifest-path",
                    "block-device-mapping/",
                    "hostname",
                    "instance-action",
                    "instance-id",
                    "instance-type",
                    "local-hostname",
                    "local-ipv4",
                    "placement/",
                    "public-hostname",
                    "public-ipv4",
                    "public-keys/",
                    "reservation-id",
                    "security-groups",
                ]
                .join("\n"),
            )),
            ["ami-id"] => Ok(text(format!(
                "ami-{}",
                &row.image_ref.chars().take(8).collect::<String>()
            ))),
            ["ami-launch-index"] => Ok(text(row.launch_index.to_string())),
            ["ami-manifest-path"] => Ok(text("FIXME")),
            ["block-device-mapping"] => Ok(text("ami\nroot")),
            ["block-device-mapping", "ami"] => Ok(text("vda")),
            ["block-device-mapping", "root"] => Ok(text("/dev/vda")),
            ["hostname"] | ["local-hostname"] | ["public-hostname"] => Ok(text(hostname)),
            ["instance-action"] => Ok(text("none")),
            ["instance-id"] => Ok(text(format!("i-{:08x}", row.seq))),
            ["instance-type"] => Ok(text(row.flavor.name.clone())),
            ["local-ipv4"] => Ok(text(ipv4)),
            ["public-ipv4"] => Ok(text(public_ipv4)),
            ["placement"] => Ok(text("availability-zone")),
            ["placement", "availability-zone"] => {
                Ok(text(row.availability_zone.clone().unwrap_or_default()))
            }
            ["reservation-id"] => Ok(text(row.reservation_id.clone())),
            ["security-groups"] => Ok(text(row.security_groups.join("\n"))),
            ["public-keys"] => match &row.key_name {
                Some(name) => Ok(text(format!("0={name}"))),
                None => Err(not_found()),
            },
            ["public-keys", "0"] if row.key_data.is_some() => Ok(text("openssh-key")),
            ["public-keys", "0", "openssh-key"] => {
                row.key_data.clone().map(text).ok_or_else(not_found)
            }
            _ => Err(not_found()),
        }
    }

    /// A POST from the guest: only `openstack/<version>/password`, set once (409 after, until
    /// os-server-password DELETE clears it), at most 4 x 255 bytes as Nova.
    pub async fn metadata_post(&self, row: &ServerRow, path: &str, body: &[u8]) -> Result<()> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            ["openstack", v, "password"]
                if *v >= "2013-04-04" && OPENSTACK_VERSIONS.contains(v) => {}
            _ => return Err(Error::method_not_allowed()),
        }
        if body.len() > 4 * 255 {
            return Err(Error::bad_request("Request is too large."));
        }
        let password = String::from_utf8_lossy(body);
        if !store::passwords::set_once(&self.db, &row.id, &password).await? {
            return Err(Error::conflict("Password already set."));
        }
        Ok(())
    }

    /// os-server-password GET: what the guest posted, `""` when nothing.
    pub async fn server_password(&self, caller: &Caller, id: &str) -> Result<String> {
        let row = self.get_server(caller, id).await?;
        store::passwords::get(&self.db, &row.id).await
    }

    /// os-server-password DELETE: forgets the password (the guest may post a new one).
    pub async fn clear_server_password(&self, caller: &Caller, id: &str) -> Result<()> {
        let row = self.get_server(caller, id).await?;
        store::passwords::clear(&self.db, &row.id).await
    }

    /// The files of a server's config drive (base64 content).
    pub async fn config_drive_content(&self, id: &str) -> Result<ConfigDriveContent> {
        let row = {
            let mut conn = self.read().await?;
            store::servers::get(&mut conn, id).await?
        }
        .ok_or_else(not_found)?;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let meta = serde_json::to_vec(&self.meta_data_json(&row)).unwrap_or_default();
        let net = serde_json::to_vec(&self.network_data_json(&row).await).unwrap_or_default();
        let mut files = Vec::new();
        for version in ["2012-08-10", "latest"] {
            files.push((format!("openstack/{version}/meta_data.json"), b64(&meta)));
            files.push((format!("openstack/{version}/network_data.json"), b64(&net)));
            files.push((format!("openstack/{version}/vendor_data.json"), b64(b"{}")));
            files.push((format!("openstack/{version}/vendor_data2.json"), b64(b"{}")));
            if let Some(u) = Self::user_data_bytes(&row) {
                files.push((format!("openstack/{version}/user_data"), b64(&u)));
            }
        }
        let ec2 = json!({
            "hostname": format!("{}.novalocal", row.hostname),
            "instance-id": format!("i-{:08x}", row.seq),
            "public-keys": row.key_data.as_ref().map(|k| json!({"0": {"openssh-key": k}})),
        });
        files.push((
            "ec2/latest/meta-data.json".into(),
            b64(&serde_json::to_vec(&ec2).unwrap_or_default()),
        ));
        if let Some(u) = Self::user_data_bytes(&row) {
            files.push(("ec2/latest/user-data".into(), b64(&u)));
        }
        Ok(ConfigDriveContent { files })
    }
}

/// The netmask of a prefix length (`255.255.255.0`, `ffff:ffff:ffff:ffff::`).
fn netmask(v6: bool, prefix: u32) -> String {
    if v6 {
        let bits = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix.min(128))
        };
        std::net::Ipv6Addr::from(bits).to_string()
    } else {
        let bits = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix.min(32))
        };
        std::net::Ipv4Addr::from(bits).to_string()
    }
}

/// One `networks` entry of `network_data.json` for a fixed IP on `subnet` (Neutron's JSON;
/// `Null` when unknown: a static entry without routes).
fn network_entry(n: usize, link: &str, network_id: &str, ip: &str, subnet: &Value) -> Value {
    let v6 = ip.contains(':');
    let version = if v6 { 6 } else { 4 };
    let mut entry = json!({"id": format!("network{n}"), "link": link, "network_id": network_id});
    let dhcp = subnet["enable_dhcp"].as_bool().unwrap_or(false);
    let mode = subnet["ipv6_address_mode"].as_str();
    let kind = match (v6, mode) {
        (true, Some("slaac")) => Some("ipv6_slaac"),
        (true, Some("dhcpv6-stateful")) => Some("ipv6_dhcpv6-stateful"),
        (true, Some("dhcpv6-stateless")) => Some("ipv6_dhcpv6-stateless"),
        (false, _) if dhcp => Some("ipv4_dhcp"),
        _ => None,
    };
    let dns: Vec<Value> = subnet["dns_nameservers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|a| json!({"type": "dns", "address": a}))
        .collect();
    if let Some(kind) = kind {
        entry["type"] = json!(kind);
        entry["services"] = json!(dns);
        return entry;
    }
    let prefix = subnet["cidr"]
        .as_str()
        .and_then(|c| c.split_once('/'))
        .and_then(|(_, p)| p.parse::<u32>().ok())
        .unwrap_or(if v6 { 64 } else { 24 });
    let mut routes = Vec::new();
    if let Some(gw) = subnet["gateway_ip"].as_str() {
        let any = if v6 { "::" } else { "0.0.0.0" };
        routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
    }
    for r in subnet["host_routes"].as_array().into_iter().flatten() {
        let (Some(dest), Some(gw)) = (r["destination"].as_str(), r["nexthop"].as_str()) else {
            continue;
        };
        let Some((net, len)) = dest.split_once('/') else {
            continue;
        };
        let len: u32 = len.parse().unwrap_or(0);
        routes.push(
            json!({"network": net, "netmask": netmask(net.contains(':'), len), "gateway": gw}),
        );
    }
    entry["type"] = json!(format!("ipv{version}"));
    entry["ip_address"] = json!(ip);
    entry["netmask"] = json!(netmask(v6, prefix));
    entry["routes"] = json!(routes);
    entry["services"] = json!(dns);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_entries_follow_the_subnet() {
        let dhcp = json!({"enable_dhcp": true, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
            "dns_nameservers": ["8.8.8.8"]});
        let e = network_entry(0, "tapx", "n", "10.0.0.5", &dhcp);
        assert_eq!(e["type"], "ipv4_dhcp");
        assert!(e.get("ip_address").is_none());
        let fixed = json!({"enable_dhcp": false, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
            "dns_nameservers": ["8.8.8.8"],
            "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]});
        let e = network_entry(1, "tapx", "n", "10.0.0.5", &fixed);
        assert_eq!(e["type"], "ipv4");
        assert_eq!(e["ip_address"], "10.0.0.5");
        assert_eq!(e["netmask"], "255.255.255.0");
        assert_eq!(
            e["routes"][0],
            json!({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"})
        );
        assert_eq!(e["routes"][1]["netmask"], "255.255.0.0");
        assert_eq!(
            e["services"],
            json!([{"type": "dns", "address": "8.8.8.8"}])
        );
        let slaac = json!({"enable_dhcp": true, "cidr": "fd00::/64", "ipv6_address_mode": "slaac"});
        assert_eq!(
            network_entry(2, "t", "n", "fd00::5", &slaac)["type"],
            "ipv6_slaac"
        );
        let static6 = json!({"enable_dhcp": false, "cidr": "fd00::/64", "gateway_ip": "fd00::1"});
        let e = network_entry(3, "t", "n", "fd00::5", &static6);
        assert_eq!(e["type"], "ipv6");
        assert_eq!(e["netmask"], "ffff:ffff:ffff:ffff::");
    }

    #[test]
    fn signature_is_hex_hmac_sha256() {
        let sig = sign_instance_id("secret", "0e44cc9c-e052-415d-afbf-469b0d384170");
        assert_eq!(sig.len(), 64);
        assert_ne!(
            sig,
            sign_instance_id("other", "0e44cc9c-e052-415d-afbf-469b0d384170")
        );
    }
}
