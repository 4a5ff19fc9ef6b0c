//! Subnet pools: prefixes subnets are carved from (`subnet create --subnet-pool`), prefix
//! length bounds, sharing, and one default pool per IP version (`use_default_subnetpool`).

use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::{in_use, not_found, policy, subnet_cidr, Ctx, NetworkService};
use crate::addr::{Cidr, Ip};
use crate::input::{invalid, parse_subnet, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::subnetpools::SubnetPoolRow;
use crate::store::{self, now, Conn};
use crate::types;

pub const SCHEMA: Schema = Schema {
    collection: "subnetpools",
    filters: &[
        "id",
        "name",
        "description",
        "project_id",
        "tenant_id",
        "ip_version",
        "prefixes",
        "min_prefixlen",
        "max_prefixlen",
        "default_prefixlen",
        "shared",
        "is_default",
        "default_quota",
        "address_scope_id",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "ip_version",
    "created_at",
    "updated_at",
    "revision_number",
];

fn bounds_error(kind: &str, len: i64, base_kind: &str, base: i64) -> Error {
    Error::bad_request(format!(
        "Illegal prefix bounds: {kind}={len}, {base_kind}={base}."
    ))
    .with_kind("IllegalSubnetPoolPrefixBounds")
}

/// Parses, normalizes and de-duplicates prefixes (dropping those inside others).
fn parse_prefixes(values: Vec<String>) -> Result<Vec<Cidr>> {
    let mut cidrs = Vec::new();
    for v in values {
        let c = Cidr::parse(&v)
            .ok_or_else(|| invalid("prefixes", format!("'{v}' is not a valid IP subnet")))?
            .network();
        cidrs.push(c);
    }
    if cidrs.is_empty() {
        return Err(invalid(
            "prefixes",
            "'[]' is not a list of valid IP subnets",
        ));
    }
    let version = cidrs[0].version();
    if cidrs.iter().any(|c| c.version() != version) {
        return Err(
            Error::bad_request("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
                .with_kind("PrefixVersionMismatch"),
        );
    }
    cidrs.sort_by_key(|c| (c.first().value, c.prefix));
    let mut out: Vec<Cidr> = Vec::new();
    for c in cidrs {
        if !out.iter().any(|o| o.contains_cidr(&c)) {
            out.retain(|o| !c.contains_cidr(o));
            out.push(c);
        }
    }
    Ok(out)
}

impl NetworkService {
    pub(crate) fn can_see_pool(ctx: &Ctx, p: &SubnetPoolRow) -> bool {
        ctx.admin || p.project_id == ctx.project || p.shared
    }

    async fn visible_pool(&self, conn: &mut Conn, ctx: &Ctx, id: &str) -> Result<SubnetPoolRow> {
        match store::subnetpools::get(conn, id).await? {
            Some(p) if Self::can_see_pool(ctx, &p) => Ok(p),
            _ => Err(not_found("Subnet pool", id)),
        }
    }

    async fn pool_json(&self, conn: &mut Conn, p: &SubnetPoolRow) -> Result<Value> {
        let tags = store::tags::of(conn, "subnetpools", &p.id).await?;
        Ok(types::subnetpool(p, &tags))
    }

    /// A requested CIDR must lie inside the pool and not overlap its other subnets.
    pub(crate) async fn check_in_pool(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        pool_id: &str,
        cidr: &Cidr,
    ) -> Result<()> {
        let pool = self.visible_pool(conn, ctx, pool_id).await?;
        if i64::from(cidr.version()) != pool.ip_version {
            return Err(Error::bad_request(format!(
                "Bad subnets request: Cannot allocate IPv{} subnet from IPv{} subnet pool",
                cidr.version(),
                pool.ip_version
            ))
            .with_kind("BadRequest"));
        }
        let prefixes = parse_prefixes(pool.prefixes.clone())?;
        if !prefixes.iter().any(|p| p.contains_cidr(cidr)) {
            return Err(Error::bad_request(format!(
                "Failed to allocate subnet: Cidr {cidr} not in subnet pool {}.",
                pool.id
            ))
            .with_kind("SubnetAllocationError"));
        }
        let prefix = i64::from(cidr.prefix);
        if prefix < pool.min_prefixlen {
            return Err(Error::bad_request(format!(
                "Unable to allocate subnet with prefix length {prefix}, minimum allowed prefix is {}.",
                pool.min_prefixlen
            ))
            .with_kind("MinPrefixSubnetAllocationError"));
        }
        if prefix > pool.max_prefixlen {
            return Err(Error::bad_request(format!(
                "Unable to allocate subnet with prefix length {prefix}, maximum allowed prefix is {}.",
                pool.max_prefixlen
            ))
            .with_kind("MaxPrefixSubnetAllocationError"));
        }
        for s in store::subnets::of_pool(conn, &pool.id).await? {
            if subnet_cidr(&s)?.overlaps(cidr) {
                return Err(in_use(
                    "SubnetAllocationError",
                    format!("Failed to allocate subnet: Cidr {cidr} overlaps with subnet {} allocated from subnet pool {}.", s.id, pool.id),
                ));
            }
        }
        Ok(())
    }

    /// Carves the first free prefix of `prefixlen` (default: the pool's) out of the pool.
    pub(crate) async fn allocate_from_pool(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        pool_id: &str,
        ip_version: i64,
        prefixlen: Option<i64>,
    ) -> Result<Cidr> {
        let pool = self.visible_pool(conn, ctx, pool_id).await?;
        if ip_version != pool.ip_version {
            return Err(Error::bad_request(format!(
                "Bad subnets request: Cannot allocate IPv{ip_version} subnet from IPv{} subnet pool",
                pool.ip_version
            ))
            .with_kind("BadRequest"));
        }
        let len = prefixlen.unwrap_or(pool.default_prefixlen);
        if len < pool.min_prefixlen {
            return Err(Error::bad_request(format!(
                "Unable to allocate subnet with prefix length {len}, minimum allowed prefix is {}.",
                pool.min_prefixlen
            ))
            .with_kind("MinPrefixSubnetAllocationError"));
        }
        if len > pool.max_prefixlen {
            return Err(Error::bad_request(format!(
                "Unable to allocate subnet with prefix length {len}, maximum allowed prefix is {}.",
                pool.max_prefixlen
            ))
            .with_kind("MaxPrefixSubnetAllocationError"));
        }
        let mut used: Vec<Cidr> = Vec::new();
        for s in store::subnets::of_pool(conn, &pool.id).await? {
            used.push(subnet_cidr(&s)?);
        }
        used.sort_by_key(|c| c.first().value);
        let len = len as u8;
        for prefix in parse_prefixes(pool.prefixes.clone())? {
            if prefix.prefix > len {
                continue;
            }
            let size: u128 = Cidr::new(prefix.ip, len).size();
            let mut start = prefix.first().value;
            while start <= prefix.last().value
                && start
                    .checked_add(size - 1)
                    .is_some_and(|end| end <= prefix.last().value)
            {
                let candidate = Cidr::new(
                    Ip {
                        version: prefix.version(),
                        value: start,
                    },
                    len,
                );
                match used.iter().find(|u| u.overlaps(&candidate)) {
                    None => return Ok(candidate),
                    Some(u) => {
                        let next = u.last().value.saturating_add(1);
                        let aligned = next.div_ceil(size).saturating_mul(size);
                        if aligned <= start {
                            break;
                        }
                        start = aligned;
                    }
                }
            }
        }
        Err(in_use(
            "SubnetAllocationError",
            format!("Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{len}."),
        ))
    }

    pub async fn list_subnetpools(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let pools: Vec<SubnetPoolRow> = store::subnetpools::list(&mut conn)
            .await?
            .into_iter()
            .filter(|p| Self::can_see_pool(ctx, p))
            .collect();
        let ids: Vec<String> = pools.iter().map(|p| p.id.clone()).collect();
        let tags = store::tags::of_many(&mut conn, "subnetpools", &ids).await?;
        let items = pools
            .iter()
            .map(|p| types::subnetpool(p, tags.get(&p.id).map(Vec::as_slice).unwrap_or(&[])))
            .collect();
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_subnetpool(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let p = self.visible_pool(&mut conn, ctx, id).await?;
        self.pool_json(&mut conn, &p).await
    }

    pub async fn create_subnetpool(&self, ctx: &Ctx, map: Map<String, Value>) -> Result<Value> {
        ctx.require_member("create_subnetpool")?;
        let mut input = Input::new(Op::Create, map, READ_ONLY);
        let project = input.project(&ctx.project, ctx.admin)?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let prefixes = input.string_list("prefixes")?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'prefixes' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let min = input.integer("min_prefixlen")?.flatten();
        let max = input.integer("max_prefixlen")?.flatten();
        let default = input.integer("default_prefixlen")?.flatten();
        let shared = input.boolean("shared")?.unwrap_or(false);
        let is_default = input.boolean("is_default")?.unwrap_or(false);
        let default_quota = input.integer("default_quota")?.flatten();
        let address_scope = input.nullable_string("address_scope_id", 36)?.flatten();
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.finish()?;
        if shared && !ctx.admin {
            return Err(policy("create_subnetpool:shared"));
        }
        if is_default && !ctx.admin {
            return Err(policy("create_subnetpool:is_default"));
        }
        if address_scope.is_some() {
            return Err(Error::not_found("Address scope could not be found.")
                .with_kind("AddressScopeNotFound"));
        }
        let prefixes = parse_prefixes(prefixes)?;
        let version = prefixes[0].version();
        let bits = if version == 4 { 32 } else { 128 };
        let min = min.unwrap_or(if version == 4 { 8 } else { 64 });
        let max = max.unwrap_or(bits);
        let default = default.unwrap_or(min);
        if min < 0 || min > max {
            return Err(bounds_error("min_prefixlen", min, "max_prefixlen", max));
        }
        if max > bits {
            return Err(bounds_error("max_prefixlen", max, "ip_version_max", bits));
        }
        if default < min {
            return Err(bounds_error(
                "default_prefixlen",
                default,
                "min_prefixlen",
                min,
            ));
        }
        if default > max {
            return Err(bounds_error(
                "default_prefixlen",
                default,
                "max_prefixlen",
                max,
            ));
        }
        let mut tx = self.write().await?;
        self.check_quota(&mut tx, &project, "subnetpool", 1).await?;
        if is_default
            && store::subnetpools::default_for(&mut tx, i64::from(version))
                .await?
                .is_some()
        {
            return Err(in_use(
                "InvalidInput",
                "A default subnetpool for this IP family has already been set. Only one default may exist per IP family",
            ));
        }
        let now = now();
        let p = SubnetPoolRow {
            id: new_uuid(),
            project_id: project,
            name,
            description,
            ip_version: i64::from(version),
            prefixes: prefixes.iter().map(|c| c.to_string()).collect(),
            min_prefixlen: min,
            max_prefixlen: max,
            default_prefixlen: default,
            shared,
            is_default,
            default_quota,
            address_scope_id: None,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 0,
        };
        store::subnetpools::insert(&mut tx, &p).await?;
        for tag in tags {
            store::tags::add(&mut tx, "subnetpools", &p.id, &tag).await?;
        }
        let body = self.pool_json(&mut tx, &p).await?;
        tx.commit().await?;
        Ok(json!({ "subnetpool": body }))
    }

    pub async fn update_subnetpool(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut p = self.visible_pool(&mut tx, ctx, id).await?;
        if !ctx.owns(&p.project_id) {
            return Err(policy("update_subnetpool"));
        }
        ctx.require_member("update_subnetpool")?;
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(v) = input.string("name", 255)? {
            p.name = v;
        }
        if let Some(v) = input.string("description", 255)? {
            p.description = v;
        }
        if let Some(v) = input.string_list("prefixes")? {
            let new = parse_prefixes(v)?;
            let old = parse_prefixes(p.prefixes.clone())?;
            if i64::from(new[0].version()) != p.ip_version {
                return Err(Error::bad_request(
                    "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                )
                .with_kind("PrefixVersionMismatch"));
            }
            if old.iter().any(|o| !new.iter().any(|n| n.contains_cidr(o))) {
                return Err(Error::bad_request(
                    "Illegal update to prefixes: prefixes can only be extended, not removed",
                )
                .with_kind("IllegalSubnetPoolPrefixUpdate"));
            }
            p.prefixes = new.iter().map(|c| c.to_string()).collect();
        }
        if let Some(v) = input.integer("min_prefixlen")? {
            p.min_prefixlen =
                v.ok_or_else(|| invalid("min_prefixlen", "'None' is not an integer"))?;
        }
        if let Some(v) = input.integer("max_prefixlen")? {
            p.max_prefixlen =
                v.ok_or_else(|| invalid("max_prefixlen", "'None' is not an integer"))?;
        }
        if let Some(v) = input.integer("default_prefixlen")? {
            p.default_prefixlen =
                v.ok_or_else(|| invalid("default_prefixlen", "'None' is not an integer"))?;
        }
        if let Some(v) = input.integer("default_quota")? {
            p.default_quota = v;
        }
        if let Some(v) = input.boolean("is_default")? {
            if v != p.is_default {
                if !ctx.admin {
                    return Err(policy("update_subnetpool:is_default"));
                }
                if v {
                    if let Some(other) =
                        store::subnetpools::default_for(&mut tx, p.ip_version).await?
                    {
                        if other.id != p.id {
                            return Err(in_use("InvalidInput", "A default subnetpool for this IP family has already been set. Only one default may exist per IP family"));
                        }
                    }
                }
                p.is_default = v;
            }
        }
        if let Some(v) = input.boolean("shared")? {
            if v != p.shared {
                return Err(
                    Error::bad_request("Cannot update read-only attribute shared")
                        .with_kind("HTTPBadRequest"),
                );
            }
        }
        input.take("address_scope_id");
        input.take("tenant_id");
        input.take("project_id");
        input.finish()?;
        let bits = if p.ip_version == 4 { 32 } else { 128 };
        if p.min_prefixlen > p.max_prefixlen {
            return Err(bounds_error(
                "min_prefixlen",
                p.min_prefixlen,
                "max_prefixlen",
                p.max_prefixlen,
            ));
        }
        if p.max_prefixlen > bits {
            return Err(bounds_error(
                "max_prefixlen",
                p.max_prefixlen,
                "ip_version_max",
                bits,
            ));
        }
        if p.default_prefixlen < p.min_prefixlen || p.default_prefixlen > p.max_prefixlen {
            return Err(bounds_error(
                "default_prefixlen",
                p.default_prefixlen,
                "min_prefixlen",
                p.min_prefixlen,
            ));
        }
        p.updated_at = now();
        p.revision_number += 1;
        store::subnetpools::update(&mut tx, &p).await?;
        let body = self.pool_json(&mut tx, &p).await?;
        tx.commit().await?;
        Ok(json!({ "subnetpool": body }))
    }

    /// `PUT /subnetpools/{id}/add_prefixes` and `remove_prefixes`.
    pub async fn change_pool_prefixes(
        &self,
        ctx: &Ctx,
        id: &str,
        body: Value,
        add: bool,
    ) -> Result<Value> {
        let prefixes: Vec<String> = match body.get("prefixes") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("prefixes", "not a list of strings"))?,
            _ => {
                return Err(Error::bad_request(
                    "Failed to parse request. Required attribute 'prefixes' not specified",
                )
                .with_kind("HTTPBadRequest"))
            }
        };
        let mut tx = self.write().await?;
        let mut p = self.visible_pool(&mut tx, ctx, id).await?;
        if !ctx.owns(&p.project_id) {
            return Err(policy("update_subnetpool"));
        }
        let current = parse_prefixes(p.prefixes.clone())?;
        let given: Vec<Cidr> = prefixes
            .iter()
            .map(|t| parse_subnet("prefixes", t))
            .collect::<Result<_>>()?;
        let next: Vec<String> = if add {
            let mut all: Vec<String> = current.iter().map(|c| c.to_string()).collect();
            all.extend(given.iter().map(|c| c.to_string()));
            parse_prefixes(all)?.iter().map(|c| c.to_string()).collect()
        } else {
            for g in &given {
                for s in store::subnets::of_pool(&mut tx, &p.id).await? {
                    if subnet_cidr(&s)?.overlaps(g) {
                        return Err(in_use(
                            "IllegalSubnetPoolUpdate",
                            format!(
                                "Illegal update to subnet pool: prefix {g} is in use by subnet {}",
                                s.id
                            ),
                        ));
                    }
                }
            }
            current
                .iter()
                .filter(|c| !given.contains(c))
                .map(|c| c.to_string())
                .collect()
        };
        if next.is_empty() {
            return Err(invalid(
                "prefixes",
                "a subnet pool needs at least one prefix",
            ));
        }
        p.prefixes = next;
        p.updated_at = now();
        p.revision_number += 1;
        store::subnetpools::update(&mut tx, &p).await?;
        tx.commit().await?;
        Ok(json!({ "prefixes": p.prefixes }))
    }

    pub async fn delete_subnetpool(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let p = self.visible_pool(&mut tx, ctx, id).await?;
        if !ctx.owns(&p.project_id) {
            return Err(policy("delete_subnetpool"));
        }
        ctx.require_member("delete_subnetpool")?;
        if !store::subnets::of_pool(&mut tx, &p.id).await?.is_empty() {
            return Err(in_use(
                "SubnetPoolInUse",
                format!(
                    "Unable to delete subnet pool {}: Subnets are still allocated from it.",
                    p.id
                ),
            ));
        }
        store::tags::clear(&mut tx, "subnetpools", &p.id).await?;
        store::subnetpools::delete(&mut tx, &p.id).await?;
        tx.commit().await
    }
}
