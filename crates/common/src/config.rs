//! Nubo's configuration: one TOML file, every key optional with a documented default, and each
//! key overridable from the environment as `NUBO_<SECTION>__<KEY>` (e.g.
//! `NUBO_IDENTITY__TOKEN_EXPIRATION=600`). `nubo.example.toml` at the repository root lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
    pub image: ImageConfig,
    pub network: NetworkConfig,
    pub compute: ComputeConfig,
    pub agent: AgentConfig,
    pub volume: VolumeConfig,
    pub netplane: NetplaneConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The URL clients reach the API at; catalog entries are built from it.
    /// Empty means `http://<listen>`.
    pub public_url: String,
    /// Where Nubo keeps its state (database, keys, images, disks).
    pub data_dir: PathBuf,
    /// The region every catalog endpoint belongs to.
    pub region: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`; empty means `sqlite://<data_dir>/nubo.db`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Token lifetime in seconds.
    pub token_expiration: u64,
    /// How long after expiry a token may still be validated with `allow_expired=1`.
    pub allow_expired_window: u64,
    /// Fernet keys kept (primary + secondaries + staged).
    pub max_active_keys: usize,
    /// bcrypt cost for stored passwords (Keystone's default is 12).
    pub password_hash_cost: u32,
    /// The bootstrap admin's password; empty means generate one on first start and print it once.
    pub admin_password: String,
    /// How long a node may serve cached role data written by another API node (seconds).
    pub cache_ttl: u64,
    /// Security compliance (Keystone's `[security_compliance]`, PCI-DSS): failed password
    /// logins before an account is locked; 0 disables locking.
    pub lockout_failure_attempts: u32,
    /// How long a locked account stays locked, seconds.
    pub lockout_duration: u64,
    /// A user changing their own password may not reuse any of their last N passwords; 0 disables.
    pub unique_last_password_count: u32,
    /// Days a password must be kept before its user may change it again; 0 disables.
    pub minimum_password_age: u32,
    /// Days after which a password expires; 0 means never.
    pub password_expires_days: u32,
    /// A regular expression every new password must match; empty means any password.
    pub password_regex: String,
    /// What `password_regex` requires, in words, for the error message.
    pub password_regex_description: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    /// Images a project may own (Glance's `image_count_total`); 0 means no limit.
    pub quota_images: u64,
    /// Bytes of image data a project may store (Glance's `image_size_total`); 0 means no limit.
    pub quota_bytes: u64,
    /// The largest single upload in bytes (Glance's `image_size_cap`).
    pub max_image_size: u64,
    /// A raw disk image `nubo up` uploads as the public image `tiny` (raw, bare) on start when
    /// no image of that name exists. A relative path is taken from the current directory;
    /// empty, or a file that does not exist, means no bootstrap image.
    pub bootstrap_image: PathBuf,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            quota_images: 100,
            quota_bytes: 100 << 30,
            max_image_size: 1 << 40,
            bootstrap_image: PathBuf::from("tools/guest-image/out/tiny.raw"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The VXLAN ids (VNIs) tenant networks get: `vni_min..=vni_max`.
    pub vni_min: i64,
    pub vni_max: i64,
    /// The MTU of the physical network; VXLAN networks get 50 bytes less (1450 by default).
    pub physical_mtu: i64,
    /// Physical networks on which admins may create flat networks (`public` carries the
    /// external network of `nubo up`).
    pub flat_networks: Vec<String>,
    /// Generated MACs are this address with the last three octets random (Neutron's `base_mac`).
    pub base_mac: String,
    /// Default quotas per project (-1: unlimited); admins override them per project.
    pub quota_network: i64,
    pub quota_subnet: i64,
    pub quota_port: i64,
    pub quota_router: i64,
    pub quota_floatingip: i64,
    pub quota_security_group: i64,
    pub quota_security_group_rule: i64,
    pub quota_rbac_policy: i64,
    pub quota_subnetpool: i64,
    /// Whether `nubo up` creates DevStack's networks on first start: the external flat network
    /// `public` (owned by the admin project, on physical network `public`), and for the admin
    /// project the network `private` with an IPv4 and an IPv6 SLAAC subnet, and `router1` with
    /// its gateway on `public` and an interface on each private subnet. Made once, kept on restart.
    pub create_defaults: bool,
    /// The IPv4 subnet of `public` (its first address is the gateway, i.e. the host).
    pub public_cidr: String,
    /// The IPv6 subnet of `public`; empty means none.
    pub public_v6_cidr: String,
    /// The IPv4 subnet of the admin project's `private` network.
    pub private_cidr: String,
    /// The IPv6 (SLAAC) subnet of `private`; empty means none.
    pub private_v6_cidr: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            vni_min: 1,
            vni_max: 65535,
            physical_mtu: 1500,
            flat_networks: vec!["public".into()],
            base_mac: "fa:16:3e:00:00:00".into(),
            quota_network: 100,
            quota_subnet: 100,
            quota_port: 500,
            quota_router: 10,
            quota_floatingip: 50,
            quota_security_group: 10,
            quota_security_group_rule: 100,
            quota_rbac_policy: 10,
            quota_subnetpool: -1,
            create_defaults: true,
            public_cidr: "172.24.4.0/24".into(),
            public_v6_cidr: "2001:db8::/64".into(),
            private_cidr: "10.0.0.0/26".into(),
            private_v6_cidr: "fd00:10::/64".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// Virtual CPUs, RAM and disk the scheduler may hand out per physical one (Nova's
    /// `cpu_allocation_ratio`, `ram_allocation_ratio`, `disk_allocation_ratio`).
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// `spread` (the least loaded host first, Nova's default) or `pack` (the most loaded first).
    pub weigher: String,
    /// Hosts a server's spawn is tried on before it goes to ERROR.
    pub max_build_attempts: u32,
    /// Seconds without a heartbeat after which a host counts as down (Nova's `service_down_time`).
    pub service_down_time: u64,
    /// Seconds between agent heartbeats.
    pub heartbeat_interval: u64,
    /// Seconds a spawn may take on a host before it is retried elsewhere.
    pub build_timeout: u64,
    /// The availability zone of hosts that name none.
    pub default_availability_zone: String,
    /// Default quotas per project (-1: unlimited); admins override them per project.
    pub quota_instances: i64,
    pub quota_cores: i64,
    pub quota_ram: i64,
    pub quota_key_pairs: i64,
    pub quota_metadata_items: i64,
    pub quota_server_groups: i64,
    pub quota_server_group_members: i64,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            weigher: "spread".into(),
            max_build_attempts: 3,
            service_down_time: 60,
            heartbeat_interval: 10,
            build_timeout: 300,
            default_availability_zone: "nova".into(),
            quota_instances: 10,
            quota_cores: 20,
            quota_ram: 51200,
            quota_key_pairs: 100,
            quota_metadata_items: 128,
            quota_server_groups: 10,
            quota_server_group_members: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The host's name in the cloud; empty means the machine's hostname.
    pub host: String,
    /// The API the agent talks to; empty means the cloud's public URL.
    pub api_url: String,
    /// The file holding the agent secret; empty means `<data_dir>/agent-secret`.
    pub secret_file: PathBuf,
    /// `qemu` or `fake`.
    pub driver: String,
    /// Where the agent keeps VM runtime dirs and config drives; empty means `<data_dir>/agent`.
    pub state_dir: PathBuf,
    /// The block store VM disks live in; empty means `<data_dir>/blockstore`.
    pub blockstore_dir: PathBuf,
    /// `auto` (KVM when usable, else TCG), `kvm` or `tcg`.
    pub accel: String,
    /// The underlay address the host registers; empty means 127.0.0.1.
    pub host_ip: String,
    /// The availability zone the host registers in; empty means the cloud's default.
    pub availability_zone: String,
    /// Whether `nubo up` runs an agent inside its own process.
    pub in_process: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            host: String::new(),
            api_url: String::new(),
            secret_file: PathBuf::new(),
            driver: "qemu".into(),
            state_dir: PathBuf::new(),
            blockstore_dir: PathBuf::new(),
            accel: "auto".into(),
            host_ip: String::new(),
            availability_zone: String::new(),
            in_process: true,
        }
    }
}

/// The agent's host data plane (`[netplane]`, issue 6): bridges + VXLAN, security groups,
/// routers, DHCP and the metadata proxy, converged from Networking's desired state.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetplaneConfig {
    /// `auto` (`linux` with the `qemu` agent driver, `fake` with the `fake` one), `linux` (needs
    /// root), `fake` (records what it would do), or `none` (bare taps and no networking).
    pub driver: String,
    /// The netplane's state file and dnsmasq/radvd files; empty means `<data_dir>/netplane`.
    pub state_dir: PathBuf,
    /// The host that runs every router and DHCP server; empty means this host (all-in-one).
    pub network_host: String,
    /// Flat physical networks' interfaces on this host, `physnet:iface,...` (Neutron's
    /// `bridge_mappings`). A flat network without one is a bridge without uplink.
    pub physical_interfaces: String,
    /// On the network host: give the host the gateway addresses of external flat networks that
    /// have no uplink (`public`'s 172.24.4.1/24 and 2001:db8::1/64 for `nubo up`), so floating
    /// IPs are reachable from the host.
    pub external_gateway: bool,
    /// Masquerade the external networks' IPv4 ranges out of this host interface (e.g. `eth0`);
    /// empty means off.
    pub nat_uplink: String,
    /// The metadata service the proxy forwards to; empty means `<agent api_url>/metadata`.
    pub metadata_url: String,
    /// The VXLAN underlay device; empty lets routing choose.
    pub underlay_interface: String,
    /// How often the agent polls Networking's desired state, milliseconds.
    pub poll_interval_ms: u64,
    /// A full apply (heals what was changed by hand) at least this often, seconds.
    pub resync_interval: u64,
}

impl Default for NetplaneConfig {
    fn default() -> Self {
        NetplaneConfig {
            driver: "auto".into(),
            state_dir: PathBuf::new(),
            network_host: String::new(),
            physical_interfaces: String::new(),
            external_gateway: true,
            nat_uplink: String::new(),
            metadata_url: String::new(),
            underlay_interface: String::new(),
            poll_interval_ms: 1000,
            resync_interval: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeConfig {
    /// The availability zone volumes live in (Cinder's `storage_availability_zone`).
    pub availability_zone: String,
    /// The volume type new volumes get when none is asked for (made on first start).
    pub default_volume_type: String,
    /// The backend's name (`volume_backend_name`; `os-vol-host-attr:host` is `host@name#name`).
    pub backend_name: String,
    /// The host name the volume service reports; empty means `nubo`.
    pub host: String,
    /// Default quotas per project (-1: unlimited); admins override them per project.
    pub quota_volumes: i64,
    pub quota_snapshots: i64,
    pub quota_gigabytes: i64,
    pub quota_backups: i64,
    pub quota_backup_gigabytes: i64,
    pub quota_groups: i64,
    pub quota_per_volume_gigabytes: i64,
    /// Seconds an agent may take to grow an attached volume (online extend).
    pub extend_timeout: u64,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            availability_zone: "nova".into(),
            default_volume_type: "__DEFAULT__".into(),
            backend_name: "local".into(),
            host: String::new(),
            quota_volumes: 10,
            quota_snapshots: 10,
            quota_gigabytes: 1000,
            quota_backups: 10,
            quota_backup_gigabytes: 1000,
            quota_groups: 10,
            quota_per_volume_gigabytes: -1,
            extend_timeout: 120,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            public_url: String::new(),
            data_dir: PathBuf::from("./nubo-data"),
            region: "RegionOne".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            max_connections: 8,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_expiration: 3600,
            allow_expired_window: 172_800,
            max_active_keys: 3,
            password_hash_cost: 12,
            admin_password: String::new(),
            cache_ttl: 5,
            lockout_failure_attempts: 0,
            lockout_duration: 1800,
            unique_last_password_count: 0,
            minimum_password_age: 0,
            password_expires_days: 0,
            password_regex: String::new(),
            password_regex_description: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config")]
    Parse(#[from] toml::de::Error),
    #[error("environment variable {0} does not name a config key (expected NUBO_SECTION__KEY)")]
    BadEnv(String),
}

impl Config {
    /// Reads `path` (when given) and applies `NUBO_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_toml_and_env(&text, std::env::vars())
    }

    /// Parses `text` and overlays `NUBO_SECTION__KEY=value` pairs from `env`.
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("NUBO_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            if section.is_empty() || key.is_empty() {
                return Err(ConfigError::BadEnv(name));
            }
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = entry.as_table_mut() else {
                return Err(ConfigError::BadEnv(name));
            };
            section_table.insert(key, env_value(&value));
        }
        Ok(toml::Value::Table(table).try_into()?)
    }

    /// The URL clients use, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }

    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("nubo.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

/// An environment value as TOML: numbers and booleans keep their type, anything else is a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_file_is_empty() {
        let config = Config::from_toml_and_env("", Vec::new()).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.identity.token_expiration, 3600);
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_file() {
        let text = "[identity]\ntoken_expiration = 100\n";
        let env = vec![
            (
                "NUBO_IDENTITY__TOKEN_EXPIRATION".to_string(),
                "600".to_string(),
            ),
            (
                "NUBO_SERVER__PUBLIC_URL".to_string(),
                "http://cloud.example/".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let config = Config::from_toml_and_env(text, env).unwrap();
        assert_eq!(config.identity.token_expiration, 600);
        assert_eq!(config.public_url(), "http://cloud.example");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml_and_env("[server]\nlisten_port = 1\n", Vec::new()).is_err());
    }

    /// `nubo.example.toml` is the operator's reference: it must parse, name every key and
    /// give each its real default.
    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../nubo.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = Config::from_toml_and_env(&text, Vec::new()).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
        let example: toml::Table = toml::from_str(&text).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &defaults {
            let listed = example
                .get(section)
                .and_then(|s| s.as_table())
                .unwrap_or_else(|| panic!("nubo.example.toml has no [{section}]"));
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    listed.contains_key(key),
                    "nubo.example.toml does not list [{section}] {key}"
                );
            }
        }
    }
}
