//! The Networking service: every Neutron operation as a method on [`NetworkService`], with its
//! authorization, validation and orchestration. One file per resource; `ipam` allocates
//! addresses and MACs; `host` holds the plain methods Compute and the data plane call
//! (ports for servers, the desired state of a host).
//!
//! ## Consistency
//! Every write runs in one transaction started with `BEGIN IMMEDIATE` (SQLite's writer lock,
//! taken up front, so a read-then-write can never be invalidated by another writer) behind an
//! in-process queue ([`NetworkService::write`]). The checks an operation makes (is this address
//! free? is the quota spent?) and its writes are therefore atomic: concurrent port creates never
//! share an address or a MAC. Unique indexes (`ip_allocations`, `ports(network_id,
//! mac_address)`, segmentation ids) back this up for several API processes on one database.
//!
//! ## Who sees what
//! Admins see everything. Others see their project's resources, networks shared with them
//! (RBAC `access_as_shared`) or external to them (`access_as_external`), the subnets of networks
//! they see, and the ports on networks they own. What a caller cannot see is a 404; what it can
//! see but not change is a 403; readers may only read.

pub mod defaults;
pub mod floatingips;
pub mod host;
pub mod ipam;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod rbac;
pub mod routers;
pub mod security_groups;
pub mod subnetpools;
pub mod subnets;
pub mod tags;

use std::sync::Arc;
use std::time::Duration;

use nubo_common::config::NetworkConfig;
use nubo_common::{Caller, Db, Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::Sqlite;

use crate::addr::{Cidr, Mac};
use crate::store::{self, rbac::RbacRow, Conn};

/// The settings Networking runs with (from `[network]` in the configuration).
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Segmentation ids handed to tenant (VXLAN) networks: `[vni_min, vni_max]`.
    pub vni_min: i64,
    pub vni_max: i64,
    /// The MTU of the physical underlay; VXLAN networks get 50 bytes less.
    pub physical_mtu: i64,
    /// Physical networks flat networks may be created on.
    pub flat_networks: Vec<String>,
    /// The first three octets of every generated MAC.
    pub base_mac: Mac,
    pub quotas: quotas::QuotaDefaults,
    pub max_dns_nameservers: usize,
    pub max_subnet_host_routes: usize,
    pub max_allowed_address_pairs: usize,
    pub max_routes: usize,
    /// Base URL of the whole API (`http://host:port`), for links.
    pub public_url: String,
}

impl NetworkSettings {
    pub fn from_config(config: &NetworkConfig, public_url: &str) -> Result<NetworkSettings> {
        let base_mac = Mac::parse(&config.base_mac)
            .ok_or_else(|| Error::internal(format!("bad network.base_mac {}", config.base_mac)))?;
        Ok(NetworkSettings {
            vni_min: config.vni_min.max(1),
            vni_max: config.vni_max.min((1 << 24) - 1),
            physical_mtu: config.physical_mtu,
            flat_networks: config.flat_networks.clone(),
            base_mac,
            quotas: quotas::QuotaDefaults::from_config(config),
            max_dns_nameservers: 5,
            max_subnet_host_routes: 20,
            max_allowed_address_pairs: 10,
            max_routes: 30,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    pub fn for_tests() -> NetworkSettings {
        NetworkSettings::from_config(&NetworkConfig::default(), "http://localhost")
            .expect("default settings are valid")
    }
}

pub struct NetworkService {
    pub(crate) db: Db,
    pub(crate) settings: NetworkSettings,
    /// Serializes this process's writers in front of SQLite's own lock (so that waiting writers
    /// do not hold pool connections readers need).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction (`BEGIN IMMEDIATE`), holding this process's writer turn. Dropping it
/// without [`Tx::commit`] rolls everything back.
pub struct Tx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

/// Who is calling, as Networking's rules need it.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub project: String,
    pub admin: bool,
    pub member: bool,
}

impl Ctx {
    pub fn new(caller: &Caller) -> Result<Ctx> {
        let admin = caller.is_admin();
        let project = match caller.project_id() {
            Some(p) => p.to_string(),
            None if admin => String::new(),
            None => {
                return Err(Error::unauthorized(
                    "A project-scoped token is required for this service.",
                ))
            }
        };
        Ok(Ctx {
            project,
            admin,
            member: caller.is_member(),
        })
    }

    /// The context of Nubo itself (bootstrap, Compute, the data plane): an admin.
    pub fn system(project: &str) -> Ctx {
        Ctx {
            project: project.to_string(),
            admin: true,
            member: true,
        }
    }

    /// Readers may look, not touch.
    pub fn require_member(&self, action: &str) -> Result<()> {
        if self.member || self.admin {
            Ok(())
        } else {
            Err(policy(action))
        }
    }

    pub fn owns(&self, project_id: &str) -> bool {
        self.admin || self.project == project_id
    }
}

/// Neutron's 403.
pub fn policy(action: &str) -> Error {
    Error::forbidden(format!("rule:{action} is disallowed by policy"))
        .with_kind("PolicyNotAuthorized")
}

/// The RBAC policies that decide network visibility, loaded once per request.
pub struct Access {
    pub rules: Vec<RbacRow>,
}

impl Access {
    pub async fn load(conn: &mut Conn) -> Result<Access> {
        Ok(Access {
            rules: store::rbac::list(conn).await?,
        })
    }

    fn granted(&self, network_id: &str, action: &str, project: &str) -> bool {
        self.rules.iter().any(|r| {
            r.object_type == "network"
                && r.object_id == network_id
                && r.action == action
                && (r.target_project == "*" || r.target_project == project)
        })
    }

    /// `shared` as the caller sees it.
    pub fn shared(&self, network_id: &str, project: &str) -> bool {
        self.granted(network_id, "access_as_shared", project)
    }

    /// Shared with every project.
    pub fn shared_with_all(&self, network_id: &str) -> bool {
        self.rules.iter().any(|r| {
            r.object_type == "network"
                && r.object_id == network_id
                && r.action == "access_as_shared"
                && r.target_project == "*"
        })
    }

    pub fn external_to(&self, network_id: &str, project: &str) -> bool {
        self.granted(network_id, "access_as_external", project)
    }

    pub fn can_see_network(&self, ctx: &Ctx, n: &store::networks::NetworkRow) -> bool {
        ctx.admin
            || n.project_id == ctx.project
            || self.shared(&n.id, &ctx.project)
            || (n.external && self.external_to(&n.id, &ctx.project))
    }

    /// May the caller put ports (and subnets' addresses) on the network?
    pub fn can_use_network(&self, ctx: &Ctx, n: &store::networks::NetworkRow) -> bool {
        ctx.admin || n.project_id == ctx.project || self.shared(&n.id, &ctx.project)
    }
}

fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code == "5" || code == "6" || db.message().contains("locked")
        }
        _ => false,
    }
}

impl NetworkService {
    /// Applies Networking's migrations.
    pub async fn new(db: Db, settings: NetworkSettings) -> Result<Arc<NetworkService>> {
        db.migrate("network", store::MIGRATIONS).await?;
        Ok(Arc::new(NetworkService {
            db,
            settings,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        }))
    }

    pub fn settings(&self) -> &NetworkSettings {
        &self.settings
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A pooled connection for reads.
    pub(crate) async fn read(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.db.pool().acquire().await?)
    }

    /// Starts a write transaction: waits for this process's turn, then for SQLite's writer lock
    /// (retrying while another process holds it).
    pub(crate) async fn write(&self) -> Result<Tx> {
        let turn = self.write_lock.clone().lock_owned().await;
        let mut attempt = 0;
        loop {
            match self.db.pool().begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(Tx { tx, _turn: turn }),
                Err(err) if is_busy(&err) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The URL of the network API root: `<public>/network`.
    pub fn network_url(&self) -> String {
        format!("{}/network", self.settings.public_url)
    }
}

/// A 404 in Neutron's words for `resource` (`Network`, `Port` ...).
pub fn not_found(resource: &str, id: &str) -> Error {
    let kind = match resource {
        "Network" => "NetworkNotFound",
        "Subnet" => "SubnetNotFound",
        "Port" => "PortNotFound",
        "Router" => "RouterNotFound",
        "Floating IP" => "FloatingIPNotFound",
        "Security group" => "SecurityGroupNotFound",
        "Security group rule" => "SecurityGroupRuleNotFound",
        "Subnet pool" => "SubnetPoolNotFound",
        "RBAC policy" => "RbacPolicyNotFound",
        "Port forwarding" => "PortForwardingNotFound",
        _ => "NotFound",
    };
    let message = match resource {
        "Security group" | "Security group rule" => format!("{resource} {id} does not exist"),
        "Floating IP" => format!("Floating IP {id} could not be found"),
        _ => format!("{resource} {id} could not be found."),
    };
    Error::not_found(message).with_kind(kind)
}

/// Neutron's 409 `InUse` family.
pub fn in_use(kind: &'static str, message: impl Into<String>) -> Error {
    Error::conflict(message).with_kind(kind)
}

/// The CIDR of a stored subnet (always valid: it was validated on the way in).
pub fn subnet_cidr(s: &store::subnets::SubnetRow) -> Result<Cidr> {
    Cidr::parse(&s.cidr)
        .ok_or_else(|| Error::internal(format!("stored cidr {} is invalid", s.cidr)))
}

/// The device owners Neutron treats as its own (router ports, DHCP, floating IPs).
pub fn is_network_owned(device_owner: &str) -> bool {
    device_owner.starts_with("network:")
}

pub const ROUTER_INTERFACE: &str = "network:router_interface";
pub const ROUTER_GATEWAY: &str = "network:router_gateway";
pub const FLOATINGIP_OWNER: &str = "network:floatingip";
pub const DHCP_OWNER: &str = "network:dhcp";

pub fn is_router_interface(device_owner: &str) -> bool {
    matches!(
        device_owner,
        "network:router_interface"
            | "network:router_interface_distributed"
            | "network:ha_router_replicated_interface"
    )
}
