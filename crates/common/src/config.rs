//! Nubo's configuration: one TOML file, every key optional with a documented default, and each
//! key overridable from the environment as `NUBO_<SECTION>__<KEY>` (e.g.
//! `NUBO_IDENTITY__TOKEN_EXPIRATION=600`). `nubo.example.toml` at the repository root lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`; empty means `sqlite://<data_dir>/nubo.db`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            identity: IdentityConfig::default(),
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
}
