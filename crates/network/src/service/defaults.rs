//! The networks `nubo up` makes on first start, as DevStack does: the external flat network
//! `public` (IPv4, and IPv6 when configured; no DHCP: its first address is the host's), and for
//! the admin project the network `private` with an IPv4 subnet and an IPv6 SLAAC subnet, and
//! `router1` with its gateway on `public` and an interface on each private subnet.
//!
//! Made through the same service methods the API uses (so with the same validation), once: when
//! the admin project already has a network named `public`, nothing is done.

use nubo_common::config::NetworkConfig;
use nubo_common::Result;
use serde_json::{json, Map, Value};

use super::{Ctx, NetworkService};
use crate::input::CreateBody;
use crate::store;

/// What exists after [`NetworkService::ensure_default_networks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetworks {
    pub public_network_id: String,
    /// True when this call made them (first start).
    pub created: bool,
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn first_address(cidr: &str) -> Option<String> {
    let c = crate::addr::Cidr::parse(cidr)?;
    c.first().offset(1).map(|ip| ip.to_string())
}

impl NetworkService {
    /// Makes DevStack's default networks for `admin_project` unless they exist.
    pub async fn ensure_default_networks(
        &self,
        admin_project: &str,
        config: &NetworkConfig,
    ) -> Result<DefaultNetworks> {
        let ctx = Ctx::system(admin_project);
        {
            let mut conn = self.read().await?;
            if let Some(n) =
                store::networks::find_by_name(&mut conn, admin_project, "public").await?
            {
                return Ok(DefaultNetworks {
                    public_network_id: n.id,
                    created: false,
                });
            }
        }
        let public = self
            .create_networks(
                &ctx,
                CreateBody::One(object(json!({
                    "name": "public",
                    "router:external": true,
                    "provider:network_type": "flat",
                    "provider:physical_network": config.flat_networks.first().cloned().unwrap_or_else(|| "public".into()),
                }))),
            )
            .await?;
        let public_id = public["network"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.create_subnets(
            &ctx,
            CreateBody::One(object(json!({
                "name": "public-subnet",
                "network_id": public_id,
                "ip_version": 4,
                "cidr": config.public_cidr,
                "gateway_ip": first_address(&config.public_cidr),
                "enable_dhcp": false,
            }))),
        )
        .await?;
        if !config.public_v6_cidr.is_empty() {
            self.create_subnets(
                &ctx,
                CreateBody::One(object(json!({
                    "name": "ipv6-public-subnet",
                    "network_id": public_id,
                    "ip_version": 6,
                    "cidr": config.public_v6_cidr,
                    "gateway_ip": first_address(&config.public_v6_cidr),
                    "enable_dhcp": false,
                }))),
            )
            .await?;
        }
        let private = self
            .create_networks(&ctx, CreateBody::One(object(json!({"name": "private"}))))
            .await?;
        let private_id = private["network"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut subnet_ids = Vec::new();
        let v4 = self
            .create_subnets(
                &ctx,
                CreateBody::One(object(json!({
                    "name": "private-subnet",
                    "network_id": private_id,
                    "ip_version": 4,
                    "cidr": config.private_cidr,
                    "gateway_ip": first_address(&config.private_cidr),
                }))),
            )
            .await?;
        subnet_ids.push(v4["subnet"]["id"].as_str().unwrap_or_default().to_string());
        if !config.private_v6_cidr.is_empty() {
            let v6 = self
                .create_subnets(
                    &ctx,
                    CreateBody::One(object(json!({
                        "name": "ipv6-private-subnet",
                        "network_id": private_id,
                        "ip_version": 6,
                        "cidr": config.private_v6_cidr,
                        "gateway_ip": first_address(&config.private_v6_cidr),
                        "ipv6_ra_mode": "slaac",
                        "ipv6_address_mode": "slaac",
                    }))),
                )
                .await?;
            subnet_ids.push(v6["subnet"]["id"].as_str().unwrap_or_default().to_string());
        }
        let router = self
            .create_routers(
                &ctx,
                CreateBody::One(object(json!({
                    "name": "router1",
                    "external_gateway_info": {"network_id": public_id},
                }))),
            )
            .await?;
        let router_id = router["router"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for subnet_id in subnet_ids {
            self.add_router_interface(&ctx, &router_id, object(json!({ "subnet_id": subnet_id })))
                .await?;
        }
        tracing::info!(public_network_id = %public_id, private_network_id = %private_id, router_id = %router_id, "default networks created");
        Ok(DefaultNetworks {
            public_network_id: public_id,
            created: true,
        })
    }
}
