//! Security groups and rules. Every project gets a `default` group the first time it needs one
//! (listing groups, creating a group or a port), holding Neutron's default rules: ingress from
//! members of the same group and egress anywhere, for IPv4 and IPv6. New groups start with the
//! two egress rules. Rules are validated as Neutron does, with its messages.

use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::{in_use, not_found, policy, Ctx, NetworkService, Tx};
use crate::addr::Cidr;
use crate::input::{invalid, repr, to_int, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::security_groups::{GroupRow, RuleRow};
use crate::store::{self, now, Conn};
use crate::types;

pub const GROUP_SCHEMA: Schema = Schema {
    collection: "security_groups",
    filters: &[
        "id",
        "name",
        "description",
        "project_id",
        "tenant_id",
        "stateful",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

pub const RULE_SCHEMA: Schema = Schema {
    collection: "security_group_rules",
    filters: &[
        "id",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "description",
        "project_id",
        "tenant_id",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const GROUP_READ_ONLY: &[&str] = &[
    "id",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
];
const RULE_READ_ONLY: &[&str] = &["id", "created_at", "updated_at", "revision_number"];

/// Protocol names Neutron accepts, with their numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocol numbers that carry ports.
const PORT_PROTOCOLS: &[u8] = &[6, 17, 33, 132, 136];
/// Protocols only meaningful with IPv6.
const IPV6_ONLY: &[u8] = &[41, 43, 44, 58, 59, 60];

fn protocol_number(protocol: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == protocol)
        .map(|(_, p)| *p)
        .or_else(|| protocol.parse::<u8>().ok())
}

fn default_exists() -> Error {
    in_use(
        "SecurityGroupDefaultAlreadyExists",
        "Default security group already exists.",
    )
}

impl NetworkService {
    /// The id of `project`'s default group, made (with its rules) if it does not exist yet.
    pub(crate) async fn ensure_default_group(
        &self,
        conn: &mut Conn,
        project: &str,
    ) -> Result<String> {
        if let Some(id) = store::security_groups::default_group(conn, project).await? {
            return Ok(id);
        }
        let now = now();
        let group = GroupRow {
            id: new_uuid(),
            project_id: project.to_string(),
            name: "default".into(),
            description: "Default security group".into(),
            stateful: true,
            created_at: now.clone(),
            updated_at: now.clone(),
            revision_number: 1,
        };
        store::security_groups::insert_group(conn, &group).await?;
        store::security_groups::set_default_group(conn, project, &group.id).await?;
        for ethertype in ["IPv4", "IPv6"] {
            for (direction, remote) in [("ingress", Some(group.id.clone())), ("egress", None)] {
                store::security_groups::insert_rule(
                    conn,
                    &RuleRow {
                        id: new_uuid(),
                        project_id: project.to_string(),
                        security_group_id: group.id.clone(),
                        direction: direction.into(),
                        ethertype: ethertype.into(),
                        protocol: None,
                        port_range_min: None,
                        port_range_max: None,
                        remote_ip_prefix: None,
                        remote_group_id: remote,
                        description: String::new(),
                        created_at: now.clone(),
                        updated_at: now.clone(),
                        revision_number: 0,
                    },
                )
                .await?;
            }
        }
        tracing::info!(project_id = %project, security_group_id = %group.id, "default security group created");
        Ok(group.id)
    }

    /// Makes the caller's default group if it is missing (its own short write).
    async fn ensure_default_for(&self, ctx: &Ctx) -> Result<()> {
        if ctx.project.is_empty() {
            return Ok(());
        }
        let mut conn = self.read().await?;
        if store::security_groups::default_group(&mut conn, &ctx.project)
            .await?
            .is_some()
        {
            return Ok(());
        }
        drop(conn);
        let mut tx = self.write().await?;
        self.ensure_default_group(&mut tx, &ctx.project).await?;
        tx.commit().await
    }

    pub(crate) async fn visible_group(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        id: &str,
    ) -> Result<GroupRow> {
        match store::security_groups::get_group(conn, id).await? {
            Some(g) if ctx.owns(&g.project_id) => Ok(g),
            _ => Err(not_found("Security group", id)),
        }
    }

    async fn group_json(&self, conn: &mut Conn, g: &GroupRow) -> Result<Value> {
        let rules = store::security_groups::list_rules(conn, Some(&g.id)).await?;
        let tags = store::tags::of(conn, "security-groups", &g.id).await?;
        Ok(types::security_group(g, &rules, &tags))
    }

    pub async fn list_security_groups(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &GROUP_SCHEMA)?;
        self.ensure_default_for(ctx).await?;
        let mut conn = self.read().await?;
        let project = (!ctx.admin).then_some(ctx.project.as_str());
        let groups = store::security_groups::list_groups(&mut conn, project).await?;
        let rules = store::security_groups::list_rules(&mut conn, None).await?;
        let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
        let tags = store::tags::of_many(&mut conn, "security-groups", &ids).await?;
        let items = groups
            .iter()
            .map(|g| {
                let mine: Vec<RuleRow> = rules
                    .iter()
                    .filter(|r| r.security_group_id == g.id)
                    .cloned()
                    .collect();
                types::security_group(g, &mine, tags.get(&g.id).map(Vec::as_slice).unwrap_or(&[]))
            })
            .collect();
        query::apply(items, params, &GROUP_SCHEMA, base)
    }

    pub async fn get_security_group(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let g = self.visible_group(&mut conn, ctx, id).await?;
        self.group_json(&mut conn, &g).await
    }

    pub async fn create_security_groups(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_security_group")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let g = self.create_group_tx(&mut tx, ctx, map).await?;
                json!({"security_group": self.group_json(&mut tx, &g).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut out = Vec::new();
                for map in maps {
                    let g = self.create_group_tx(&mut tx, ctx, map).await?;
                    out.push(self.group_json(&mut tx, &g).await?);
                }
                json!({ "security_groups": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn create_group_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<GroupRow> {
        let mut input = Input::new(Op::Create, map, GROUP_READ_ONLY);
        let project = input.project(&ctx.project, ctx.admin)?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let stateful = input.boolean("stateful")?.unwrap_or(true);
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.finish()?;
        if name.eq_ignore_ascii_case("default") {
            return Err(default_exists());
        }
        self.ensure_default_group(tx, &project).await?;
        self.check_quota(tx, &project, "security_group", 1).await?;
        let now = now();
        let g = GroupRow {
            id: new_uuid(),
            project_id: project.clone(),
            name,
            description,
            stateful,
            created_at: now.clone(),
            updated_at: now.clone(),
            revision_number: 1,
        };
        store::security_groups::insert_group(tx, &g).await?;
        for ethertype in ["IPv4", "IPv6"] {
            store::security_groups::insert_rule(
                tx,
                &RuleRow {
                    id: new_uuid(),
                    project_id: project.clone(),
                    security_group_id: g.id.clone(),
                    direction: "egress".into(),
                    ethertype: ethertype.into(),
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote_ip_prefix: None,
                    remote_group_id: None,
                    description: String::new(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    revision_number: 0,
                },
            )
            .await?;
        }
        for tag in tags {
            store::tags::add(tx, "security-groups", &g.id, &tag).await?;
        }
        Ok(g)
    }

    pub async fn update_security_group(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut g = self.visible_group(&mut tx, ctx, id).await?;
        ctx.require_member("update_security_group")?;
        let mut input = Input::new(Op::Update, map, GROUP_READ_ONLY);
        let name = input.string("name", 255)?;
        let description = input.string("description", 255)?;
        let stateful = input.boolean("stateful")?;
        input.take("tenant_id");
        input.take("project_id");
        input.finish()?;
        let is_default = store::security_groups::default_group(&mut tx, &g.project_id)
            .await?
            .as_deref()
            == Some(g.id.as_str());
        if let Some(name) = name {
            if is_default && name != g.name {
                return Err(in_use(
                    "SecurityGroupCannotUpdateDefault",
                    "Updating default security group not allowed.",
                ));
            }
            if !is_default && name.eq_ignore_ascii_case("default") {
                return Err(default_exists());
            }
            g.name = name;
        }
        if let Some(d) = description {
            g.description = d;
        }
        if let Some(s) = stateful {
            if s != g.stateful
                && !store::ports::ports_in_security_group(&mut tx, &g.id)
                    .await?
                    .is_empty()
            {
                return Err(in_use(
                    "SecurityGroupInUse",
                    format!(
                        "Security Group {} in use, cannot change its statefulness.",
                        g.id
                    ),
                ));
            }
            g.stateful = s;
        }
        g.updated_at = now();
        g.revision_number += 1;
        store::security_groups::update_group(&mut tx, &g).await?;
        let body = self.group_json(&mut tx, &g).await?;
        tx.commit().await?;
        Ok(body)
    }

    pub async fn delete_security_group(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let g = self.visible_group(&mut tx, ctx, id).await?;
        ctx.require_member("delete_security_group")?;
        let is_default = store::security_groups::default_group(&mut tx, &g.project_id)
            .await?
            .as_deref()
            == Some(g.id.as_str());
        if is_default && !ctx.admin {
            return Err(in_use(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        if !store::ports::ports_in_security_group(&mut tx, &g.id)
            .await?
            .is_empty()
        {
            return Err(in_use(
                "SecurityGroupInUse",
                format!("Security Group {} in use.", g.id),
            ));
        }
        store::tags::clear(&mut tx, "security-groups", &g.id).await?;
        store::security_groups::delete_group(&mut tx, &g.id).await?;
        tx.commit().await
    }

    fn can_see_rule(ctx: &Ctx, r: &RuleRow, groups: &[GroupRow]) -> bool {
        ctx.admin
            || r.project_id == ctx.project
            || groups
                .iter()
                .any(|g| g.id == r.security_group_id && g.project_id == ctx.project)
    }

    pub async fn list_security_group_rules(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &RULE_SCHEMA)?;
        self.ensure_default_for(ctx).await?;
        let mut conn = self.read().await?;
        let groups = store::security_groups::list_groups(&mut conn, None).await?;
        let rules = store::security_groups::list_rules(&mut conn, None).await?;
        let items = rules
            .iter()
            .filter(|r| Self::can_see_rule(ctx, r, &groups))
            .map(types::rule)
            .collect();
        query::apply(items, params, &RULE_SCHEMA, base)
    }

    async fn visible_rule(&self, conn: &mut Conn, ctx: &Ctx, id: &str) -> Result<RuleRow> {
        let Some(r) = store::security_groups::get_rule(conn, id).await? else {
            return Err(not_found("Security group rule", id));
        };
        let group = store::security_groups::get_group(conn, &r.security_group_id).await?;
        if Self::can_see_rule(ctx, &r, group.as_slice()) {
            Ok(r)
        } else {
            Err(not_found("Security group rule", id))
        }
    }

    pub async fn get_security_group_rule(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        Ok(types::rule(&self.visible_rule(&mut conn, ctx, id).await?))
    }

    pub async fn create_security_group_rules(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_security_group_rule")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let r = self.create_rule_tx(&mut tx, ctx, map).await?;
                json!({"security_group_rule": types::rule(&r)})
            }
            CreateBody::Bulk(maps) => {
                let mut out = Vec::new();
                for map in maps {
                    out.push(types::rule(&self.create_rule_tx(&mut tx, ctx, map).await?));
                }
                json!({ "security_group_rules": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    pub(crate) async fn create_rule_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<RuleRow> {
        let mut input = Input::new(Op::Create, map, RULE_READ_ONLY);
        let _project = input.project(&ctx.project, ctx.admin)?;
        let group_id = input.string("security_group_id", 36)?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'security_group_id' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let direction = input.string("direction", 16)?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'direction' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let ethertype = input
            .string("ethertype", 8)?
            .unwrap_or_else(|| "IPv4".into());
        let protocol = match input.take("protocol") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("any") => None,
            Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(invalid(
                    "protocol",
                    format!("'{}' is not a valid protocol", repr(&other)),
                ))
            }
        };
        let port_min = port_value(input.take("port_range_min"))?;
        let port_max = port_value(input.take("port_range_max"))?;
        let remote_ip_prefix = input.nullable_string("remote_ip_prefix", 64)?.flatten();
        let remote_group_id = input.nullable_string("remote_group_id", 36)?.flatten();
        let remote_address_group = input
            .nullable_string("remote_address_group_id", 36)?
            .flatten();
        let description = input.string("description", 255)?.unwrap_or_default();
        input.finish()?;
        if direction != "ingress" && direction != "egress" {
            return Err(invalid(
                "direction",
                format!("'{direction}' is not in ['ingress', 'egress']"),
            ));
        }
        if ethertype != "IPv4" && ethertype != "IPv6" {
            return Err(Error::bad_request(format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
            ))
            .with_kind("SecurityGroupRuleInvalidEtherType"));
        }
        let number = match &protocol {
            None => None,
            Some(p) => match protocol_number(p) {
                Some(n) => Some(n),
                None => {
                    let names: Vec<String> = PROTOCOLS.iter().map(|(n, _)| n.to_string()).collect();
                    return Err(Error::bad_request(format!(
                        "Security group rule protocol {p} not supported. Only protocol values {} and integer representations [0 to 255] are supported.",
                        crate::query::py_list(&names)
                    ))
                    .with_kind("SecurityGroupRuleInvalidProtocol"));
                }
            },
        };
        if let Some(n) = number {
            if ethertype == "IPv4" && IPV6_ONLY.contains(&n) {
                return Err(Error::bad_request(format!(
                    "Invalid ethertype IPv4 for protocol {}.",
                    protocol.clone().unwrap_or_default()
                ))
                .with_kind("SecurityGroupEthertypeConflictWithProtocol"));
            }
        }
        let (mut port_min, mut port_max) = (port_min, port_max);
        if port_min.is_some() || port_max.is_some() {
            let Some(n) = number else {
                return Err(Error::bad_request(
                    "Must also specify protocol if port range is given.",
                )
                .with_kind("SecurityGroupProtocolRequiredWithPorts"));
            };
            if PORT_PROTOCOLS.contains(&n) {
                if port_min == Some(0) || port_max == Some(0) {
                    return Err(Error::bad_request("Invalid value for port 0")
                        .with_kind("SecurityGroupInvalidPortValue"));
                }
                match (port_min, port_max) {
                    (Some(a), Some(b)) if a <= b => {}
                    _ => {
                        return Err(Error::bad_request(
                            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                        )
                        .with_kind("SecurityGroupInvalidPortRange"))
                    }
                }
                if port_min == Some(1) && port_max == Some(65535) {
                    port_min = None;
                    port_max = None;
                }
            } else if n == 1 || n == 58 {
                for (value, field, attr) in [
                    (port_min, "type", "port_range_min"),
                    (port_max, "code", "port_range_max"),
                ] {
                    if let Some(v) = value {
                        if !(0..=255).contains(&v) {
                            return Err(Error::bad_request(format!(
                                "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                            ))
                            .with_kind("SecurityGroupInvalidIcmpValue"));
                        }
                    }
                }
                if port_min.is_none() {
                    return Err(Error::bad_request(format!(
                        "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                        port_max.unwrap_or_default()
                    ))
                    .with_kind("SecurityGroupMissingIcmpType"));
                }
            } else {
                return Err(Error::bad_request(format!(
                    "Ports cannot be specified for protocol {n}. Ports are only supported for TCP, UDP, DCCP, SCTP, UDPLITE."
                ))
                .with_kind("SecurityGroupInvalidProtocolForPort"));
            }
        }
        if remote_address_group.is_some() {
            return Err(Error::not_found("Address group could not be found.")
                .with_kind("AddressGroupNotFound"));
        }
        if remote_ip_prefix.is_some() && remote_group_id.is_some() {
            return Err(Error::bad_request(
                "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
            )
            .with_kind("SecurityGroupMultipleRemoteEntites"));
        }
        let remote_ip_prefix = match remote_ip_prefix {
            None => None,
            Some(text) => {
                let cidr = Cidr::parse_with(&text, true).ok_or_else(|| {
                    Error::bad_request(format!("Invalid CIDR {text} for IP prefix."))
                        .with_kind("InvalidCIDR")
                })?;
                let version = if ethertype == "IPv4" { 4 } else { 6 };
                if cidr.version() != version {
                    return Err(Error::bad_request(format!(
                        "Conflicting value ethertype {ethertype} for CIDR {text}"
                    ))
                    .with_kind("SecurityGroupRuleParameterConflict"));
                }
                Some(cidr.to_string())
            }
        };
        let group = self.visible_group(tx, ctx, &group_id).await?;
        ctx.require_member("create_security_group_rule")?;
        if let Some(remote) = &remote_group_id {
            self.visible_group(tx, ctx, remote).await?;
        }
        let existing = store::security_groups::list_rules(tx, Some(&group.id)).await?;
        if let Some(dup) = existing.iter().find(|r| {
            r.direction == direction
                && r.ethertype == ethertype
                && r.protocol.as_deref().and_then(protocol_number) == number
                && r.port_range_min == port_min
                && r.port_range_max == port_max
                && r.remote_ip_prefix == remote_ip_prefix
                && r.remote_group_id == remote_group_id
        }) {
            return Err(in_use(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", dup.id),
            ));
        }
        self.check_quota(tx, &group.project_id, "security_group_rule", 1)
            .await?;
        let now = now();
        let r = RuleRow {
            id: new_uuid(),
            project_id: group.project_id.clone(),
            security_group_id: group.id.clone(),
            direction,
            ethertype,
            protocol,
            port_range_min: port_min,
            port_range_max: port_max,
            remote_ip_prefix,
            remote_group_id,
            description,
            created_at: now.clone(),
            updated_at: now.clone(),
            revision_number: 0,
        };
        store::security_groups::insert_rule(tx, &r).await?;
        store::security_groups::touch_group(tx, &group.id, &now).await?;
        Ok(r)
    }

    pub async fn update_security_group_rule(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut r = self.visible_rule(&mut tx, ctx, id).await?;
        ctx.require_member("update_security_group_rule")?;
        let mut input = Input::new(
            Op::Update,
            map,
            &[
                "id",
                "security_group_id",
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
                "remote_group_id",
                "created_at",
                "updated_at",
                "revision_number",
            ],
        );
        if let Some(d) = input.string("description", 255)? {
            r.description = d;
        }
        input.finish()?;
        r.updated_at = now();
        r.revision_number += 1;
        store::security_groups::update_rule(&mut tx, &r).await?;
        tx.commit().await?;
        Ok(types::rule(&r))
    }

    pub async fn delete_security_group_rule(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let r = self.visible_rule(&mut tx, ctx, id).await?;
        if !ctx.owns(&r.project_id) {
            let group = store::security_groups::get_group(&mut tx, &r.security_group_id).await?;
            if !group.is_some_and(|g| ctx.owns(&g.project_id)) {
                return Err(policy("delete_security_group_rule"));
            }
        }
        ctx.require_member("delete_security_group_rule")?;
        store::security_groups::delete_rule(&mut tx, &r.id).await?;
        store::security_groups::touch_group(&mut tx, &r.security_group_id, &now()).await?;
        tx.commit().await
    }
}

/// A port bound as Neutron converts it: an integer 0..=65535 (numeric strings accepted), or
/// "Invalid value for port X".
fn port_value(value: Option<Value>) -> Result<Option<i64>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match to_int(&v) {
            Some(n) if (0..=65535).contains(&n) => Ok(Some(n)),
            _ => Err(
                Error::bad_request(format!("Invalid value for port {}", repr(&v)))
                    .with_kind("SecurityGroupInvalidPortValue"),
            ),
        },
    }
}
