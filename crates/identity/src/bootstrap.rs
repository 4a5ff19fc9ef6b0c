//! First start: the default domain, the `admin` project and user, the roles `admin`, `member`,
//! `reader` (admin implies member implies reader) and `service`, region `RegionOne`, and a
//! catalog entry for every Nubo service. Idempotent: what exists is left alone, so a restart
//! keeps everything and an upgrade adds what a newer version needs.

use nubo_common::{Error, Result};
use serde_json::json;

use crate::service::projects::DEFAULT_DOMAIN_ID;
use crate::service::IdentityService;
use crate::store;
use crate::store::assignments::{AssignmentKind, AssignmentRow, SYSTEM_TARGET};
use crate::store::catalog::{EndpointRow, RegionRow, ServiceRow};
use crate::store::roles::RoleRow;

/// What bootstrap did.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// The admin's password when the admin user was created by this call (to print once).
    pub admin_password: Option<String>,
    pub admin_user_id: String,
    pub admin_project_id: String,
}

/// One catalog entry: type, name, URL path below the public URL.
pub const CATALOG: &[(&str, &str, &str)] = &[
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/network"),
    ("block-storage", "cinder", "/volume/v3/$(project_id)s"),
];

impl IdentityService {
    /// Creates what is missing. `admin_password`: the configured password, or empty to generate one.
    pub async fn bootstrap(&self, admin_password: &str, region: &str) -> Result<BootstrapReport> {
        let db = &self.db;
        if store::projects::get(db, DEFAULT_DOMAIN_ID).await?.is_none() {
            self.insert_domain(
                json!({"name": "Default", "description": "The default domain"}),
                Some(DEFAULT_DOMAIN_ID),
            )
            .await?;
        }

        let mut role_ids = Vec::new();
        for name in ["admin", "member", "reader", "service"] {
            let role = match store::roles::get_by_name(db, None, name).await? {
                Some(role) => role,
                None => {
                    let role = RoleRow {
                        id: nubo_common::ids::new_hex_id(),
                        name: name.to_string(),
                        domain_id: None,
                        description: String::new(),
                        options: Default::default(),
                        extra: Default::default(),
                    };
                    store::roles::insert(db, &role).await?;
                    role
                }
            };
            role_ids.push(role.id);
        }
        store::roles::add_implication(db, &role_ids[0], &role_ids[1]).await?;
        store::roles::add_implication(db, &role_ids[1], &role_ids[2]).await?;

        let admin_project =
            match store::projects::get_by_name(db, Some(DEFAULT_DOMAIN_ID), "admin").await? {
                Some(p) => p,
                None => {
                    let p = store::projects::ProjectRow {
                        id: nubo_common::ids::new_hex_id(),
                        name: "admin".into(),
                        domain_id: Some(DEFAULT_DOMAIN_ID.into()),
                        parent_id: Some(DEFAULT_DOMAIN_ID.into()),
                        description: "Bootstrap project for initializing the cloud.".into(),
                        enabled: true,
                        is_domain: false,
                        extra: Default::default(),
                        options: Default::default(),
                        tags: Vec::new(),
                    };
                    store::projects::insert(db, &p).await?;
                    p
                }
            };

        let mut generated = None;
        let admin_user = match store::users::get_by_name(db, DEFAULT_DOMAIN_ID, "admin").await? {
            Some(u) => u,
            None => {
                let password = if admin_password.is_empty() {
                    generate_password()
                } else {
                    admin_password.to_string()
                };
                let now = nubo_common::time::now_rfc3339();
                let u = store::users::UserRow {
                    id: nubo_common::ids::new_hex_id(),
                    name: "admin".into(),
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                    enabled: true,
                    default_project_id: None,
                    password_hash: Some(
                        crate::password::hash(&password, self.settings.password_hash_cost).await?,
                    ),
                    password_created_at: Some(now.clone()),
                    password_expires_at: None,
                    extra: Default::default(),
                    options: Default::default(),
                    created_at: now,
                };
                store::users::insert(db, &u).await.map_err(Error::from)?;
                generated = Some(password);
                u
            }
        };
        for (kind, target) in [
            (AssignmentKind::UserProject, admin_project.id.as_str()),
            (AssignmentKind::UserDomain, DEFAULT_DOMAIN_ID),
            (AssignmentKind::UserSystem, SYSTEM_TARGET),
        ] {
            store::assignments::grant(
                db,
                &AssignmentRow {
                    kind,
                    actor_id: admin_user.id.clone(),
                    target_id: target.to_string(),
                    role_id: role_ids[0].clone(),
                    inherited: false,
                },
            )
            .await?;
        }

        if store::catalog::get_region(db, region).await?.is_none() {
            store::catalog::insert_region(
                db,
                &RegionRow {
                    id: region.to_string(),
                    description: String::new(),
                    parent_region_id: None,
                    extra: Default::default(),
                },
            )
            .await
            .map_err(Error::from)?;
        }
        let services = store::catalog::list_services(db).await?;
        let endpoints = store::catalog::list_endpoints(db).await?;
        for (service_type, name, path) in CATALOG {
            let service = match services.iter().find(|s| s.service_type == *service_type) {
                Some(s) => s.clone(),
                None => {
                    let s = ServiceRow {
                        id: nubo_common::ids::new_hex_id(),
                        service_type: service_type.to_string(),
                        enabled: true,
                        extra: json!({"name": name, "description": format!("Nubo {service_type} service")})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    store::catalog::insert_service(db, &s).await?;
                    s
                }
            };
            let url = format!("{}{path}", self.settings.public_url);
            for interface in ["public", "internal"] {
                let existing = endpoints
                    .iter()
                    .find(|e| e.service_id == service.id && e.interface == interface);
                match existing {
                    Some(e) if e.url == url => {}
                    Some(e) => {
                        // The public URL changed (another --listen): follow it.
                        store::catalog::update_endpoint(
                            db,
                            &EndpointRow {
                                url: url.clone(),
                                ..e.clone()
                            },
                        )
                        .await?;
                    }
                    None => {
                        store::catalog::insert_endpoint(
                            db,
                            &EndpointRow {
                                id: nubo_common::ids::new_hex_id(),
                                service_id: service.id.clone(),
                                interface: interface.to_string(),
                                region_id: Some(region.to_string()),
                                url: url.clone(),
                                enabled: true,
                                extra: Default::default(),
                            },
                        )
                        .await?;
                    }
                }
            }
        }
        self.changed();
        Ok(BootstrapReport {
            admin_password: generated,
            admin_user_id: admin_user.id,
            admin_project_id: admin_project.id,
        })
    }
}

fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
