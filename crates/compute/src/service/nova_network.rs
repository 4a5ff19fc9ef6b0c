//! Nova's network proxies, deprecated at 2.36 but still what older clients and Tempest call:
//! `os-security-groups`, `os-security-group-rules`, `os-floating-ips`, `os-floating-ip-pools`,
//! `os-networks`, `os-tenant-networks`; and the server actions that reach into Networking:
//! `addSecurityGroup`/`removeSecurityGroup` (every port of the server) and
//! `addFloatingIp`/`removeFloatingIp` (up to 2.43). Everything goes to the Network service in
//! process, with the caller's own rights, and answers in Nova's shapes and fault codes (Nova
//! turns Neutron's 409s into 400s here and there; so do we).

use std::collections::HashMap;

use nubo_common::{Caller, Error, Result};
use nubo_network::input::CreateBody;
use nubo_network::query::{LinkBase, ListParams};
use nubo_network::service::Ctx;
use serde_json::{json, Map, Value};

use super::{require_member, require_reader, ComputeService};
use crate::store;

fn ctx(caller: &Caller) -> Result<Ctx> {
    Ctx::new(caller)
}

fn params(pairs: &[(&str, &str)]) -> Result<ListParams> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ListParams::parse(&owned)
}

const NO_LINKS: LinkBase<'static> = LinkBase { url: "" };

/// Nova checks security group ids for the UUID shape first (a 400).
fn validate_id(id: &str) -> Result<()> {
    if uuid::Uuid::parse_str(id).is_ok() {
        Ok(())
    } else {
        Err(Error::bad_request("Security group id should be uuid"))
    }
}

fn sg_not_found(id: &str) -> Error {
    Error::not_found(format!("Security group {id} not found."))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Nova's `_convert_to_nova_security_group_rule_format` + `_format_security_group_rule` of one
/// Neutron rule; `None` for an egress rule, or one whose remote group is gone.
fn rule_view(rule: &Value, names: &HashMap<String, (String, String)>) -> Option<Value> {
    if text(rule, "direction") != Some("ingress") {
        return None;
    }
    let protocol = rule.get("protocol").cloned().unwrap_or(Value::Null);
    let (min, max) = (
        rule.get("port_range_min").cloned().unwrap_or(Value::Null),
        rule.get("port_range_max").cloned().unwrap_or(Value::Null),
    );
    let (from, to) = match protocol.as_str() {
        Some(p) if min.is_null() && max.is_null() => {
            if p.eq_ignore_ascii_case("tcp") || p.eq_ignore_ascii_case("udp") {
                (json!(1), json!(65535))
            } else {
                (json!(-1), json!(-1))
            }
        }
        _ => (min, max),
    };
    let mut v = json!({
        "id": rule.get("id"),
        "parent_group_id": rule.get("security_group_id"),
        "ip_protocol": protocol,
        "from_port": from,
        "to_port": to,
        "group": {},
        "ip_range": {},
    });
    match text(rule, "remote_group_id") {
        Some(group) => {
            let (name, tenant) = names.get(group)?;
            v["group"] = json!({"name": name, "tenant_id": tenant});
        }
        None => {
            let cidr = text(rule, "remote_ip_prefix").unwrap_or("0.0.0.0/0");
            v["ip_range"] = json!({ "cidr": cidr });
        }
    }
    Some(v)
}

fn group_view(g: &Value, names: &HashMap<String, (String, String)>) -> Value {
    let rules: Vec<Value> = g
        .get("security_group_rules")
        .and_then(Value::as_array)
        .map(|rules| rules.iter().filter_map(|r| rule_view(r, names)).collect())
        .unwrap_or_default();
    json!({
        "id": g.get("id"),
        "name": g.get("name"),
        "description": g.get("description").cloned().unwrap_or(json!("")),
        "tenant_id": g.get("project_id").or_else(|| g.get("tenant_id")),
        "rules": rules,
    })
}

/// Nova's faults for what Networking said about a security group or rule.
fn sg_error(e: Error, id: &str) -> Error {
    match e.status.as_u16() {
        404 => sg_not_found(id),
        409 if e.kind == "OverQuota" => Error::forbidden(e.message),
        409 | 400 => Error::bad_request(e.message),
        _ => e,
    }
}

/// A string property of the body of at most 255 characters (Nova's `check_string_length`).
fn string_property(body: &Map<String, Value>, key: &str) -> Result<String> {
    match body.get(key) {
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(s.clone()),
        Some(Value::String(_)) => Err(Error::bad_request(format!(
            "Invalid input received: {key} has more than 255 characters."
        ))),
        _ => Err(Error::bad_request(format!(
            "Invalid input received: {key} has a non-string value."
        ))),
    }
}

impl ComputeService {
    /// Names and owners of every group the caller sees (rules name their remote groups).
    async fn group_names(&self, ctx: &Ctx) -> Result<HashMap<String, (String, String)>> {
        let page = self
            .network
            .list_security_groups(ctx, &ListParams::default(), &NO_LINKS)
            .await?;
        Ok(page
            .items
            .iter()
            .filter_map(|g| {
                Some((
                    text(g, "id")?.to_string(),
                    (
                        text(g, "name").unwrap_or_default().to_string(),
                        text(g, "project_id").unwrap_or_default().to_string(),
                    ),
                ))
            })
            .collect())
    }

    /// `GET /os-security-groups` (`all_tenants` for admins).
    pub async fn nova_security_groups(&self, caller: &Caller, all_tenants: bool) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let project = caller.project_id().unwrap_or_default().to_string();
        let filter: Vec<(&str, &str)> = if caller.is_admin() && all_tenants {
            Vec::new()
        } else {
            vec![("project_id", project.as_str())]
        };
        let page = self
            .network
            .list_security_groups(&ctx, &params(&filter)?, &NO_LINKS)
            .await?;
        let names = self.group_names(&ctx).await?;
        let groups: Vec<Value> = page.items.iter().map(|g| group_view(g, &names)).collect();
        Ok(json!({ "security_groups": groups }))
    }

    pub async fn nova_security_group(&self, caller: &Caller, id: &str) -> Result<Value> {
        require_reader(caller)?;
        validate_id(id)?;
        let ctx = ctx(caller)?;
        let g = self
            .network
            .get_security_group(&ctx, id)
            .await
            .map_err(|e| sg_error(e, id))?;
        let names = self.group_names(&ctx).await?;
        Ok(json!({"security_group": group_view(&g, &names)}))
    }

    pub async fn create_nova_security_group(&self, caller: &Caller, body: &Value) -> Result<Value> {
        require_member(caller, "os_compute_api:os-security-groups:create")?;
        let b = body
            .get("security_group")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("The request body is invalid: security_group"))?;
        let name = string_property(b, "name")?;
        let description = string_property(b, "description")?;
        let ctx = ctx(caller)?;
        let mut map = Map::new();
        map.insert("name".into(), json!(name));
        map.insert("description".into(), json!(description));
        let created = self
            .network
            .create_security_groups(&ctx, CreateBody::One(map))
            .await
            .map_err(|e| sg_error(e, ""))?;
        let names = self.group_names(&ctx).await?;
        Ok(json!({"security_group": group_view(&created["security_group"], &names)}))
    }

    pub async fn update_nova_security_group(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        require_member(caller, "os_compute_api:os-security-groups:update")?;
        validate_id(id)?;
        let b = body
            .get("security_group")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("The request body is invalid: security_group"))?;
        let ctx = ctx(caller)?;
        let mut map = Map::new();
        for key in ["name", "description"] {
            if b.contains_key(key) {
                map.insert(key.into(), json!(string_property(b, key)?));
            }
        }
        let updated = self
            .network
            .update_security_group(&ctx, id, map)
            .await
            .map_err(|e| sg_error(e, id))?;
        let names = self.group_names(&ctx).await?;
        Ok(json!({"security_group": group_view(&updated, &names)}))
    }

    /// `DELETE /os-security-groups/{id}`: a group in use or the default group is a 400.
    pub async fn delete_nova_security_group(&self, caller: &Caller, id: &str) -> Result<()> {
        require_member(caller, "os_compute_api:os-security-groups:delete")?;
        validate_id(id)?;
        let ctx = ctx(caller)?;
        self.network
            .delete_security_group(&ctx, id)
            .await
            .map_err(|e| sg_error(e, id))
    }

    /// `POST /os-security-group-rules`: an ingress rule, as Nova builds it from
    /// `ip_protocol`, `from_port`, `to_port`, and `cidr` or `group_id`.
    pub async fn create_nova_security_group_rule(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> Result<Value> {
        require_member(caller, "os_compute_api:os-security-groups:rule:create")?;
        let r = body
            .get("security_group_rule")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Error::bad_request("The request body is invalid: security_group_rule")
            })?;
        let parent = r
            .get("parent_group_id")
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        validate_id(&parent)?;
        let ctx = ctx(caller)?;
        self.network
            .get_security_group(&ctx, &parent)
            .await
            .map_err(|e| sg_error(e, &parent))?;
        let group_id = match r.get("group_id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let g = v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string());
                validate_id(&g)?;
                self.network
                    .get_security_group(&ctx, &g)
                    .await
                    .map_err(|e| sg_error(e, &g))?;
                Some(g)
            }
        };
        let protocol = match r.get("ip_protocol") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.is_empty() => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(other) => Some(other.to_string()),
        };
        let port = |key: &str| -> Result<Option<i64>> {
            match r.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                    Error::bad_request("Invalid input received: To and From ports must be integers")
                }),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                    Error::bad_request("Invalid input received: To and From ports must be integers")
                }),
                Some(_) => Err(Error::bad_request(
                    "Invalid input received: To and From ports must be integers",
                )),
            }
        };
        let (mut from, mut to) = (port("from_port")?, port("to_port")?);
        let cidr = if group_id.is_some() {
            None
        } else {
            match r.get("cidr") {
                None | Some(Value::Null) => Some("0.0.0.0/0".to_string()),
                Some(Value::String(c)) if c.is_empty() => Some("0.0.0.0/0".to_string()),
                Some(Value::String(c)) => {
                    let ok = c.split_once('/').is_some_and(|(a, p)| {
                        a.parse::<std::net::IpAddr>().is_ok() && p.parse::<u8>().is_ok()
                    });
                    if !ok {
                        return Err(Error::bad_request(format!("Invalid cidr {c}.")));
                    }
                    let (net, prefix) = c.split_once('/').unwrap_or_default();
                    if net != "0.0.0.0" && net != "::" && prefix == "0" {
                        return Err(Error::bad_request(format!(
                            "Bad prefix for network in cidr {c}"
                        )));
                    }
                    Some(c.clone())
                }
                Some(_) => return Err(Error::bad_request("Invalid cidr.")),
            }
        };
        let upper = protocol.as_deref().map(str::to_ascii_uppercase);
        if group_id.is_some() && from.is_none() && to.is_none() {
            match upper.as_deref() {
                Some("ICMP") => (from, to) = (Some(-1), Some(-1)),
                Some("TCP") | Some("UDP") => (from, to) = (Some(1), Some(65535)),
                _ => {}
            }
        }
        match (&upper, from, to) {
            (Some(p), Some(f), Some(t)) => {
                if !["TCP", "UDP", "ICMP"].contains(&p.as_str()) {
                    return Err(Error::bad_request(format!(
                        "Invalid IP protocol {}.",
                        protocol.clone().unwrap_or_default()
                    )));
                }
                if (p == "TCP" || p == "UDP") && f > t {
                    return Err(Error::bad_request(format!(
                        "Invalid port range {f}:{t}. Former value cannot be greater than the later"
                    )));
                }
                if (p == "TCP" || p == "UDP") && (f < 1 || t > 65535) {
                    return Err(Error::bad_request(format!(
                        "Invalid port range {f}:{t}. Valid {p} ports should be between 1-65535"
                    )));
                }
                if p == "ICMP" && !((-1..=255).contains(&f) && (-1..=255).contains(&t)) {
                    return Err(Error::bad_request(format!(
                        "Invalid port range {f}:{t}. For ICMP, the type:code must be valid"
                    )));
                }
            }
            _ if cidr.is_some() => {
                return Err(Error::bad_request(
                    "Not enough parameters to build a valid rule.",
                ))
            }
            _ => {}
        }
        let ethertype = match &cidr {
            Some(c) if c.contains(':') => "IPv6",
            _ => "IPv4",
        };
        let mut map = Map::new();
        map.insert("security_group_id".into(), json!(parent));
        map.insert("direction".into(), json!("ingress"));
        map.insert("ethertype".into(), json!(ethertype));
        map.insert(
            "protocol".into(),
            json!(protocol.as_deref().map(str::to_ascii_lowercase)),
        );
        if let (Some(f), Some(t)) = (from, to) {
            if f != -1 {
                map.insert("port_range_min".into(), json!(f));
            }
            if t != -1 {
                map.insert("port_range_max".into(), json!(t));
            }
        }
        if let Some(c) = &cidr {
            map.insert("remote_ip_prefix".into(), json!(c));
        }
        if let Some(g) = &group_id {
            map.insert("remote_group_id".into(), json!(g));
        }
        let created = self
            .network
            .create_security_group_rules(&ctx, CreateBody::One(map))
            .await
            .map_err(|e| match e.status.as_u16() {
                409 if e.kind == "SecurityGroupRuleExists" => {
                    Error::bad_request(format!("This rule already exists in group {parent}"))
                }
                _ => sg_error(e, &parent),
            })?;
        let names = self.group_names(&ctx).await?;
        let rule = rule_view(&created["security_group_rule"], &names)
            .ok_or_else(|| Error::internal("the new rule is not an ingress rule"))?;
        Ok(json!({ "security_group_rule": rule }))
    }

    pub async fn delete_nova_security_group_rule(&self, caller: &Caller, id: &str) -> Result<()> {
        require_member(caller, "os_compute_api:os-security-groups:rule:delete")?;
        validate_id(id)?;
        let ctx = ctx(caller)?;
        self.network
            .delete_security_group_rule(&ctx, id)
            .await
            .map_err(|e| match e.status.as_u16() {
                404 => Error::not_found(format!("Security group rule {id} not found.")),
                _ => sg_error(e, id),
            })
    }

    /// `GET /servers/{id}/os-security-groups`: the groups of the server's ports.
    pub async fn server_security_groups(&self, caller: &Caller, id: &str) -> Result<Value> {
        let row = self.visible_server(caller, id).await?;
        let system = Ctx::system(&row.project_id);
        let mut ids: Vec<String> = Vec::new();
        for p in self.network.ports_of_device(id).await? {
            for g in p.security_groups {
                if !ids.contains(&g) {
                    ids.push(g);
                }
            }
        }
        let names = self.group_names(&system).await?;
        let mut groups = Vec::new();
        for g in &ids {
            if let Ok(v) = self.network.get_security_group(&system, g).await {
                groups.push(group_view(&v, &names));
            }
        }
        Ok(json!({ "security_groups": groups }))
    }

    /// `addSecurityGroup` (`add`) / `removeSecurityGroup`: the group (by name or id, in the
    /// server's project) joins or leaves every port of the server.
    pub async fn change_server_security_group(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
        add: bool,
    ) -> Result<()> {
        let action = if add {
            "addSecurityGroup"
        } else {
            "removeSecurityGroup"
        };
        let row = self.visible_server(caller, id).await?;
        require_member(
            caller,
            &format!(
                "os_compute_api:os-security-groups:{}",
                if add { "add" } else { "remove" }
            ),
        )?;
        let name = body
            .get(action)
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| Error::bad_request("Missing parameter name"))?
            .to_string();
        let project_ctx = Ctx::new(caller)?;
        let page = self
            .network
            .list_security_groups(
                &project_ctx,
                &params(&[("project_id", row.project_id.as_str())])?,
                &NO_LINKS,
            )
            .await?;
        let matches: Vec<&Value> = page
            .items
            .iter()
            .filter(|g| {
                text(g, "id") == Some(name.as_str()) || text(g, "name") == Some(name.as_str())
            })
            .collect();
        let group = match matches.as_slice() {
            [] => {
                return Err(Error::not_found(format!(
                    "Security group {name} not found for project {}.",
                    row.project_id
                )))
            }
            [one] => *one,
            _ => {
                return Err(Error::conflict(format!(
                    "Multiple security_group matches found for name '{name}', use an ID to be more specific."
                )))
            }
        };
        let group_id = text(group, "id").unwrap_or_default().to_string();
        let group_name = text(group, "name").unwrap_or_default().to_string();
        let ports = self.network.ports_of_device(id).await?;
        if ports.is_empty() {
            return Err(Error::not_found(format!(
                "instance_id {id} could not be found as device id on any ports"
            )));
        }
        let system = Ctx::system(&row.project_id);
        let mut changed = false;
        for p in &ports {
            let has = p.security_groups.contains(&group_id);
            let mut groups = p.security_groups.clone();
            if add && !has {
                if !p.port_security_enabled {
                    return Err(Error::bad_request(
                        "Network requires port_security_enabled and subnet associated in order to apply security groups.",
                    ));
                }
                groups.push(group_id.clone());
            } else if !add && has {
                groups.retain(|g| g != &group_id);
            } else {
                continue;
            }
            let mut map = Map::new();
            map.insert("security_groups".into(), json!(groups));
            self.network.update_port(&system, &p.id, map).await?;
            changed = true;
        }
        if !add && !changed {
            return Err(Error::bad_request(format!(
                "Security group {group_name} not associated with the instance {id}"
            )));
        }
        self.modify(id, |r| {
            if add {
                if !r.security_groups.contains(&group_name) {
                    r.security_groups.push(group_name.clone());
                }
            } else {
                r.security_groups
                    .retain(|g| g != &group_name && g != &group_id);
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ----- floating IPs -----

    async fn pool_names(&self, ctx: &Ctx) -> Result<HashMap<String, String>> {
        let page = self
            .network
            .list_networks(ctx, &params(&[("router:external", "true")])?, &NO_LINKS)
            .await?;
        Ok(page
            .items
            .iter()
            .filter_map(|n| {
                Some((
                    text(n, "id")?.to_string(),
                    text(n, "name").unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    fn fip_view(f: &Value, pools: &HashMap<String, String>) -> Value {
        let net = text(f, "floating_network_id").unwrap_or_default();
        let instance = f
            .get("port_details")
            .and_then(|p| p.get("device_id"))
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty() && text(f, "port_id").is_some());
        json!({
            "id": f.get("id"),
            "ip": f.get("floating_ip_address"),
            "pool": pools.get(net).cloned().unwrap_or_else(|| net.to_string()),
            "fixed_ip": f.get("fixed_ip_address"),
            "instance_id": instance,
        })
    }

    /// `GET /os-floating-ips`: the project's floating IPs.
    pub async fn nova_floating_ips(&self, caller: &Caller) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let project = caller.require_project()?.to_string();
        let page = self
            .network
            .list_floatingips(
                &ctx,
                &params(&[("project_id", project.as_str())])?,
                &NO_LINKS,
            )
            .await?;
        let pools = self.pool_names(&ctx).await?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|f| Self::fip_view(f, &pools))
            .collect();
        Ok(json!({ "floating_ips": items }))
    }

    pub async fn nova_floating_ip(&self, caller: &Caller, id: &str) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let f =
            self.network
                .get_floatingip(&ctx, id)
                .await
                .map_err(|e| match e.status.as_u16() {
                    404 => Error::not_found(format!("Floating IP not found for ID {id}")),
                    _ => e,
                })?;
        let pools = self.pool_names(&ctx).await?;
        Ok(json!({"floating_ip": Self::fip_view(&f, &pools)}))
    }

    /// `POST /os-floating-ips {"pool": name}`: an address from the pool (the external network
    /// of that name or id; the only external network when none is named).
    pub async fn create_nova_floating_ip(&self, caller: &Caller, body: &Value) -> Result<Value> {
        require_member(caller, "os_compute_api:os-floating-ips:create")?;
        let ctx = ctx(caller)?;
        let pools = self.pool_names(&ctx).await?;
        let asked = body.get("pool").and_then(Value::as_str);
        let network = match asked {
            Some(p) => pools
                .iter()
                .find(|(id, name)| id.as_str() == p || name.as_str() == p)
                .map(|(id, _)| id.clone()),
            None => pools
                .iter()
                .find(|(_, name)| name.as_str() == "public")
                .or_else(|| pools.iter().next())
                .map(|(id, _)| id.clone()),
        }
        .ok_or_else(|| Error::not_found("Floating IP pool not found."))?;
        let mut map = Map::new();
        map.insert("floating_network_id".into(), json!(network));
        let created = self
            .network
            .create_floatingips(&ctx, CreateBody::One(map))
            .await
            .map_err(|e| match e.status.as_u16() {
                409 if e.kind == "OverQuota" => Error::forbidden(format!(
                    "Maximum number of floating IPs exceeded: {}",
                    e.message
                )),
                409 | 404 => Error::not_found(format!(
                    "No more floating IPs in pool {}.",
                    asked.unwrap_or("public")
                )),
                _ => e,
            })?;
        Ok(json!({"floating_ip": Self::fip_view(&created["floatingip"], &pools)}))
    }

    pub async fn delete_nova_floating_ip(&self, caller: &Caller, id: &str) -> Result<()> {
        require_member(caller, "os_compute_api:os-floating-ips:delete")?;
        let ctx = ctx(caller)?;
        self.network
            .delete_floatingip(&ctx, id)
            .await
            .map_err(|e| match e.status.as_u16() {
                404 => Error::not_found(format!("Floating IP not found for ID {id}")),
                _ => e,
            })
    }

    /// The floating IP with this address in the caller's view.
    async fn fip_by_address(&self, ctx: &Ctx, address: &str) -> Result<Value> {
        let page = self
            .network
            .list_floatingips(
                ctx,
                &params(&[("floating_ip_address", address)])?,
                &NO_LINKS,
            )
            .await?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(format!("floating IP not found: {address}")))
    }

    /// `addFloatingIp` (up to 2.43): associates the address with the server's port that has
    /// `fixed_address` (its first IPv4 address when none is named).
    pub async fn add_floating_ip(&self, caller: &Caller, id: &str, body: &Value) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-floating-ips:add")?;
        let a = body
            .get("addFloatingIp")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Error::bad_request("Invalid input for field/attribute addFloatingIp.")
            })?;
        let address = a
            .get("address")
            .and_then(Value::as_str)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute address."))?;
        let fixed = a.get("fixed_address").and_then(Value::as_str);
        let ctx = ctx(caller)?;
        let fip = self.fip_by_address(&ctx, address).await?;
        let fip_id = text(&fip, "id").unwrap_or_default().to_string();
        if row.ports.is_empty() {
            return Err(Error::bad_request(format!(
                "No nw_info cache associated with instance {id}"
            )));
        }
        let (port, ip) = match fixed {
            Some(f) => row
                .ports
                .iter()
                .find(|p| p.ips.iter().any(|i| i == f))
                .map(|p| (p.port_id.clone(), f.to_string()))
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "Specified fixed address {f} not assigned to instance {id}"
                    ))
                })?,
            None => row
                .ports
                .iter()
                .find_map(|p| {
                    p.ips
                        .iter()
                        .find(|i| !i.contains(':'))
                        .map(|i| (p.port_id.clone(), i.clone()))
                })
                .ok_or_else(|| {
                    Error::bad_request(format!("Unable to associate floating IP {address} to any fixed IPs for instance {id}. Instance has no fixed IPv4 addresses to associate."))
                })?,
        };
        let mut map = Map::new();
        map.insert("port_id".into(), json!(port));
        map.insert("fixed_ip_address".into(), json!(ip));
        self.network
            .update_floatingip(&Ctx::system(&row.project_id), &fip_id, map)
            .await
            .map_err(|e| match e.status.as_u16() {
                400 | 404 | 409 => Error::bad_request(format!(
                    "Unable to associate floating IP {address} to fixed IP {ip} for instance {id}. Error: {}",
                    e.message
                )),
                _ => e,
            })?;
        Ok(())
    }

    /// `removeFloatingIp` (up to 2.43): a 409 when the address is not on this server.
    pub async fn remove_floating_ip(&self, caller: &Caller, id: &str, body: &Value) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-floating-ips:remove")?;
        let address = body
            .get("removeFloatingIp")
            .and_then(|a| a.get("address"))
            .and_then(Value::as_str)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute address."))?;
        let ctx = ctx(caller)?;
        let fip = self
            .fip_by_address(&ctx, address)
            .await
            .map_err(|_| Error::not_found("floating IP not found"))?;
        let on_this =
            text(&fip, "port_id").is_some_and(|p| row.ports.iter().any(|sp| sp.port_id == p));
        if !on_this {
            return Err(Error::conflict(format!(
                "Floating IP {address} is not associated with instance {id}."
            )));
        }
        let mut map = Map::new();
        map.insert("port_id".into(), Value::Null);
        self.network
            .update_floatingip(
                &Ctx::system(&row.project_id),
                text(&fip, "id").unwrap_or_default(),
                map,
            )
            .await?;
        Ok(())
    }

    /// `GET /os-floating-ip-pools`: the external networks.
    pub async fn nova_floating_ip_pools(&self, caller: &Caller) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let mut names: Vec<String> = self.pool_names(&ctx).await?.into_values().collect();
        names.sort();
        Ok(
            json!({"floating_ip_pools": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}),
        )
    }

    // ----- networks -----

    /// Nova's `network_dict` of a Neutron network (`os-networks`): id and label; the fields of
    /// nova-network are null (admins see more of them, all null).
    fn nova_network_view(n: &Value, admin: bool) -> Value {
        let mut v = Map::new();
        for f in [
            "cidr",
            "netmask",
            "gateway",
            "broadcast",
            "dns1",
            "dns2",
            "cidr_v6",
            "gateway_v6",
            "netmask_v6",
        ] {
            v.insert(f.into(), Value::Null);
        }
        if admin {
            for f in [
                "created_at",
                "updated_at",
                "deleted_at",
                "deleted",
                "injected",
                "bridge",
                "vlan",
                "vpn_public_address",
                "vpn_public_port",
                "vpn_private_address",
                "dhcp_start",
                "project_id",
                "host",
                "bridge_interface",
                "multi_host",
                "priority",
                "rxtx_base",
                "mtu",
                "dhcp_server",
                "enable_dhcp",
                "share_address",
            ] {
                v.insert(f.into(), Value::Null);
            }
        }
        v.insert("id".into(), n.get("id").cloned().unwrap_or(Value::Null));
        v.insert(
            "label".into(),
            n.get("name").cloned().unwrap_or(Value::Null),
        );
        Value::Object(v)
    }

    /// `GET /os-networks` (`tenant`: `os-tenant-networks`, whose items are `{id, cidr, label}`).
    pub async fn nova_networks(&self, caller: &Caller, tenant: bool) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let page = self
            .network
            .list_networks(&ctx, &ListParams::default(), &NO_LINKS)
            .await?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|n| {
                if tenant {
                    json!({"id": n.get("id"), "cidr": "None", "label": n.get("name")})
                } else {
                    Self::nova_network_view(n, caller.is_admin())
                }
            })
            .collect();
        Ok(json!({ "networks": items }))
    }

    pub async fn nova_network(&self, caller: &Caller, id: &str, tenant: bool) -> Result<Value> {
        require_reader(caller)?;
        let ctx = ctx(caller)?;
        let n = self
            .network
            .get_network(&ctx, id)
            .await
            .map_err(|e| match e.status.as_u16() {
                404 => Error::not_found(format!("Network {id} could not be found.")),
                _ => e,
            })?;
        let v = if tenant {
            json!({"id": n.get("id"), "cidr": "None", "label": n.get("name")})
        } else {
            Self::nova_network_view(&n, caller.is_admin())
        };
        Ok(json!({ "network": v }))
    }

    /// Floating IPs on a server's ports: port id -> addresses (for `addresses`).
    pub(crate) async fn floating_ips_by_port(
        &self,
        rows: &[&store::servers::ServerRow],
    ) -> Result<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if rows.iter().all(|r| r.ports.is_empty()) {
            return Ok(out);
        }
        let page = self
            .network
            .list_floatingips(&Ctx::system(""), &ListParams::default(), &NO_LINKS)
            .await?;
        for f in &page.items {
            if let (Some(port), Some(address)) =
                (text(f, "port_id"), text(f, "floating_ip_address"))
            {
                out.entry(port.to_string())
                    .or_default()
                    .push(address.to_string());
            }
        }
        Ok(out)
    }
}
