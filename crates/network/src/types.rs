//! The wire shapes: stored rows (plus what travels with them) as Neutron's JSON. What an
//! attribute looks like can depend on who asks: provider and binding details are for admins.

use serde_json::{json, Map, Value};

use crate::store::floatingips::{FloatingIpRow, PortForwardingRow};
use crate::store::networks::NetworkRow;
use crate::store::ports::{FixedIp, PortRow};
use crate::store::rbac::RbacRow;
use crate::store::routers::RouterRow;
use crate::store::security_groups::{GroupRow, RuleRow};
use crate::store::subnetpools::SubnetPoolRow;
use crate::store::subnets::SubnetRow;

/// The availability zone every network and router lives in.
pub const AVAILABILITY_ZONE: &str = "nova";

fn standard(
    map: &mut Map<String, Value>,
    created: &str,
    updated: &str,
    revision: i64,
    tags: &[String],
) {
    map.insert("created_at".into(), json!(created));
    map.insert("updated_at".into(), json!(updated));
    map.insert("revision_number".into(), json!(revision));
    map.insert("tags".into(), json!(tags));
}

fn owner(map: &mut Map<String, Value>, project: &str) {
    map.insert("project_id".into(), json!(project));
    map.insert("tenant_id".into(), json!(project));
}

pub struct NetworkExtras<'a> {
    pub subnets: Vec<String>,
    pub shared: bool,
    pub tags: &'a [String],
    pub admin: bool,
}

pub fn network(n: &NetworkRow, x: NetworkExtras) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(n.id));
    m.insert("name".into(), json!(n.name));
    m.insert("description".into(), json!(n.description));
    m.insert("admin_state_up".into(), json!(n.admin_state_up));
    m.insert("status".into(), json!(n.status));
    m.insert("subnets".into(), json!(x.subnets));
    m.insert("shared".into(), json!(x.shared));
    owner(&mut m, &n.project_id);
    m.insert("router:external".into(), json!(n.external));
    m.insert("mtu".into(), json!(n.mtu));
    m.insert(
        "port_security_enabled".into(),
        json!(n.port_security_enabled),
    );
    m.insert(
        "availability_zone_hints".into(),
        json!(n.availability_zone_hints),
    );
    m.insert("availability_zones".into(), json!([AVAILABILITY_ZONE]));
    m.insert("ipv4_address_scope".into(), Value::Null);
    m.insert("ipv6_address_scope".into(), Value::Null);
    m.insert("l2_adjacency".into(), json!(true));
    m.insert("is_default".into(), json!(n.is_default));
    if x.admin {
        m.insert("provider:network_type".into(), json!(n.network_type));
        m.insert(
            "provider:physical_network".into(),
            json!(n.physical_network),
        );
        m.insert("provider:segmentation_id".into(), json!(n.segmentation_id));
    }
    standard(
        &mut m,
        &n.created_at,
        &n.updated_at,
        n.revision_number,
        x.tags,
    );
    Value::Object(m)
}

pub fn subnet(s: &SubnetRow, external: bool, tags: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    m.insert("description".into(), json!(s.description));
    m.insert("network_id".into(), json!(s.network_id));
    owner(&mut m, &s.project_id);
    m.insert("ip_version".into(), json!(s.ip_version));
    m.insert("cidr".into(), json!(s.cidr));
    m.insert("gateway_ip".into(), json!(s.gateway_ip));
    m.insert("allocation_pools".into(), json!(s.allocation_pools));
    m.insert("dns_nameservers".into(), json!(s.dns_nameservers));
    m.insert("host_routes".into(), json!(s.host_routes));
    m.insert("enable_dhcp".into(), json!(s.enable_dhcp));
    m.insert("ipv6_ra_mode".into(), json!(s.ipv6_ra_mode));
    m.insert("ipv6_address_mode".into(), json!(s.ipv6_address_mode));
    m.insert("subnetpool_id".into(), json!(s.subnetpool_id));
    m.insert("service_types".into(), json!(s.service_types));
    m.insert("router:external".into(), json!(external));
    standard(
        &mut m,
        &s.created_at,
        &s.updated_at,
        s.revision_number,
        tags,
    );
    Value::Object(m)
}

pub fn subnetpool(p: &SubnetPoolRow, tags: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("name".into(), json!(p.name));
    m.insert("description".into(), json!(p.description));
    owner(&mut m, &p.project_id);
    m.insert("ip_version".into(), json!(p.ip_version));
    m.insert("prefixes".into(), json!(p.prefixes));
    m.insert("min_prefixlen".into(), json!(p.min_prefixlen));
    m.insert("max_prefixlen".into(), json!(p.max_prefixlen));
    m.insert("default_prefixlen".into(), json!(p.default_prefixlen));
    m.insert("shared".into(), json!(p.shared));
    m.insert("is_default".into(), json!(p.is_default));
    m.insert("default_quota".into(), json!(p.default_quota));
    m.insert("address_scope_id".into(), json!(p.address_scope_id));
    standard(
        &mut m,
        &p.created_at,
        &p.updated_at,
        p.revision_number,
        tags,
    );
    Value::Object(m)
}

pub struct PortExtras<'a> {
    pub fixed_ips: &'a [FixedIp],
    pub security_groups: &'a [String],
    pub tags: &'a [String],
    pub admin: bool,
}

pub fn fixed_ips(ips: &[FixedIp]) -> Value {
    json!(ips
        .iter()
        .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
        .collect::<Vec<_>>())
}

pub fn port(p: &PortRow, x: PortExtras) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("name".into(), json!(p.name));
    m.insert("description".into(), json!(p.description));
    m.insert("network_id".into(), json!(p.network_id));
    owner(&mut m, &p.project_id);
    m.insert("mac_address".into(), json!(p.mac_address));
    m.insert("admin_state_up".into(), json!(p.admin_state_up));
    m.insert("status".into(), json!(p.status));
    m.insert("device_id".into(), json!(p.device_id));
    m.insert("device_owner".into(), json!(p.device_owner));
    m.insert("fixed_ips".into(), fixed_ips(x.fixed_ips));
    m.insert(
        "allowed_address_pairs".into(),
        json!(p.allowed_address_pairs),
    );
    m.insert("extra_dhcp_opts".into(), json!(p.extra_dhcp_opts));
    m.insert("security_groups".into(), json!(x.security_groups));
    m.insert(
        "port_security_enabled".into(),
        json!(p.port_security_enabled),
    );
    m.insert("binding:vnic_type".into(), json!(p.vnic_type));
    if x.admin {
        m.insert("binding:host_id".into(), json!(p.host_id));
        m.insert("binding:vif_type".into(), json!(p.vif_type));
        m.insert(
            "binding:vif_details".into(),
            Value::Object(p.vif_details.clone()),
        );
        m.insert(
            "binding:profile".into(),
            Value::Object(p.binding_profile.clone()),
        );
    }
    standard(
        &mut m,
        &p.created_at,
        &p.updated_at,
        p.revision_number,
        x.tags,
    );
    Value::Object(m)
}

pub fn rule(r: &RuleRow) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("security_group_id".into(), json!(r.security_group_id));
    m.insert("direction".into(), json!(r.direction));
    m.insert("ethertype".into(), json!(r.ethertype));
    m.insert("protocol".into(), json!(r.protocol));
    m.insert("port_range_min".into(), json!(r.port_range_min));
    m.insert("port_range_max".into(), json!(r.port_range_max));
    m.insert("remote_ip_prefix".into(), json!(r.remote_ip_prefix));
    m.insert("remote_group_id".into(), json!(r.remote_group_id));
    m.insert("description".into(), json!(r.description));
    owner(&mut m, &r.project_id);
    m.insert("created_at".into(), json!(r.created_at));
    m.insert("updated_at".into(), json!(r.updated_at));
    m.insert("revision_number".into(), json!(r.revision_number));
    Value::Object(m)
}

pub fn security_group(g: &GroupRow, rules: &[RuleRow], tags: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(g.id));
    m.insert("name".into(), json!(g.name));
    m.insert("description".into(), json!(g.description));
    owner(&mut m, &g.project_id);
    m.insert("stateful".into(), json!(g.stateful));
    m.insert(
        "security_group_rules".into(),
        json!(rules.iter().map(rule).collect::<Vec<_>>()),
    );
    standard(
        &mut m,
        &g.created_at,
        &g.updated_at,
        g.revision_number,
        tags,
    );
    Value::Object(m)
}

/// A router's gateway: its network, SNAT, and its gateway port's addresses.
pub fn gateway_info(r: &RouterRow, gw_ips: &[FixedIp]) -> Value {
    match &r.gw_network_id {
        None => Value::Null,
        Some(network_id) => json!({
            "network_id": network_id,
            "enable_snat": r.enable_snat,
            "external_fixed_ips": fixed_ips(gw_ips),
        }),
    }
}

pub fn router(r: &RouterRow, gw_ips: &[FixedIp], tags: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("name".into(), json!(r.name));
    m.insert("description".into(), json!(r.description));
    m.insert("admin_state_up".into(), json!(r.admin_state_up));
    m.insert("status".into(), json!(r.status));
    owner(&mut m, &r.project_id);
    m.insert("external_gateway_info".into(), gateway_info(r, gw_ips));
    m.insert("routes".into(), json!(r.routes));
    m.insert(
        "availability_zone_hints".into(),
        json!(r.availability_zone_hints),
    );
    m.insert("availability_zones".into(), json!([AVAILABILITY_ZONE]));
    standard(
        &mut m,
        &r.created_at,
        &r.updated_at,
        r.revision_number,
        tags,
    );
    Value::Object(m)
}

pub fn port_forwarding(p: &PortForwardingRow) -> Value {
    let range = |a: i64, b: i64| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}:{b}")
        }
    };
    json!({
        "id": p.id,
        "floatingip_id": p.floatingip_id,
        "internal_port_id": p.internal_port_id,
        "internal_ip_address": p.internal_ip_address,
        "internal_port": (p.internal_port_start == p.internal_port_end).then_some(p.internal_port_start),
        "external_port": (p.external_port_start == p.external_port_end).then_some(p.external_port_start),
        "internal_port_range": range(p.internal_port_start, p.internal_port_end),
        "external_port_range": range(p.external_port_start, p.external_port_end),
        "protocol": p.protocol,
        "description": p.description,
    })
}

pub fn floatingip(
    f: &FloatingIpRow,
    port: Option<&PortRow>,
    forwardings: &[PortForwardingRow],
    tags: &[String],
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(f.id));
    m.insert("floating_ip_address".into(), json!(f.floating_ip_address));
    m.insert("floating_network_id".into(), json!(f.floating_network_id));
    m.insert("router_id".into(), json!(f.router_id));
    m.insert("port_id".into(), json!(f.fixed_port_id));
    m.insert("fixed_ip_address".into(), json!(f.fixed_ip_address));
    m.insert("status".into(), json!(f.status));
    m.insert("description".into(), json!(f.description));
    owner(&mut m, &f.project_id);
    m.insert(
        "port_details".into(),
        match port {
            Some(p) => json!({
                "name": p.name,
                "network_id": p.network_id,
                "mac_address": p.mac_address,
                "admin_state_up": p.admin_state_up,
                "status": p.status,
                "device_id": p.device_id,
                "device_owner": p.device_owner,
            }),
            None => Value::Null,
        },
    );
    m.insert(
        "port_forwardings".into(),
        json!(forwardings
            .iter()
            .map(|p| {
                let mut v = port_forwarding(p);
                if let Some(o) = v.as_object_mut() {
                    o.remove("floatingip_id");
                }
                v
            })
            .collect::<Vec<_>>()),
    );
    standard(
        &mut m,
        &f.created_at,
        &f.updated_at,
        f.revision_number,
        tags,
    );
    Value::Object(m)
}

pub fn rbac(r: &RbacRow) -> Value {
    json!({
        "id": r.id,
        "object_type": r.object_type,
        "object_id": r.object_id,
        "action": r.action,
        "target_tenant": r.target_project,
        "project_id": r.project_id,
        "tenant_id": r.project_id,
    })
}
