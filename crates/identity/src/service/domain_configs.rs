//! Domain-specific configuration (`/v3/domains/{id}/config`): per-domain overrides of the
//! `identity` and `ldap` option groups, as Keystone stores them. Nubo keeps and serves them;
//! it has one identity backend (SQL), so they change nothing else yet.

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use crate::policy;
use crate::service::IdentityService;
use crate::store;

/// The options each group accepts, with Keystone's defaults.
fn defaults() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (
            "identity",
            vec![("driver", json!("sql")), ("list_limit", Value::Null)],
        ),
        (
            "ldap",
            vec![
                ("url", json!("ldap://localhost")),
                ("user", Value::Null),
                ("suffix", json!("cn=example,cn=com")),
                ("query_scope", json!("one")),
                ("page_size", json!(0)),
                ("user_tree_dn", Value::Null),
                ("user_filter", Value::Null),
                ("user_objectclass", json!("inetOrgPerson")),
                ("user_id_attribute", json!("cn")),
                ("user_name_attribute", json!("sn")),
                ("user_mail_attribute", json!("mail")),
                ("user_enabled_attribute", json!("enabled")),
                ("group_tree_dn", Value::Null),
                ("group_filter", Value::Null),
                ("group_objectclass", json!("groupOfNames")),
                ("group_id_attribute", json!("cn")),
                ("group_name_attribute", json!("ou")),
                ("group_member_attribute", json!("member")),
                ("use_tls", json!(false)),
            ],
        ),
    ]
}

/// Accepted but never shown.
const SENSITIVE: &[(&str, &str)] = &[("ldap", "password")];

fn check_option(group: &str, option: &str) -> Result<()> {
    let known = defaults()
        .iter()
        .any(|(g, opts)| *g == group && opts.iter().any(|(o, _)| *o == option))
        || SENSITIVE.contains(&(group, option));
    if known {
        Ok(())
    } else {
        Err(Error::forbidden(format!("Invalid domain specific configuration: option {option} in group {group} is not supported.")))
    }
}

fn check_group(group: &str) -> Result<()> {
    if defaults().iter().any(|(g, _)| *g == group) {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "Invalid domain specific configuration: group {group} is not supported."
        )))
    }
}

/// `{"group": {"option": value}}` -> entries, validated.
fn entries(config: &Value) -> Result<Vec<(String, String, Value)>> {
    let groups = config
        .as_object()
        .ok_or_else(|| Error::bad_request("Invalid input for field 'config'."))?;
    let mut out = Vec::new();
    for (group, options) in groups {
        check_group(group)?;
        let options = options.as_object().ok_or_else(|| {
            Error::bad_request(format!(
                "Invalid input for field 'config': group {group} is not an object."
            ))
        })?;
        for (option, value) in options {
            check_option(group, option)?;
            out.push((group.clone(), option.clone(), value.clone()));
        }
    }
    Ok(out)
}

fn render(entries: &[(String, String, Value)]) -> Value {
    let mut groups: Map<String, Value> = Map::new();
    for (group, option, value) in entries {
        if SENSITIVE.contains(&(group.as_str(), option.as_str())) {
            continue;
        }
        let slot = groups.entry(group.clone()).or_insert_with(|| json!({}));
        slot[option] = value.clone();
    }
    Value::Object(groups)
}

fn merge(existing: &mut Vec<(String, String, Value)>, updates: Vec<(String, String, Value)>) {
    for (group, option, value) in updates {
        match existing
            .iter_mut()
            .find(|(g, o, _)| *g == group && *o == option)
        {
            Some(slot) => slot.2 = value,
            None => existing.push((group, option, value)),
        }
    }
}

impl IdentityService {
    async fn config_entries(&self, domain_id: &str) -> Result<Vec<(String, String, Value)>> {
        self.domain_row(domain_id).await?;
        store::domain_configs::list(&self.db, domain_id).await
    }

    /// `PUT /v3/domains/{id}/config`: returns the config and whether it was created.
    pub async fn create_domain_config(
        &self,
        caller: &Caller,
        domain_id: &str,
        config: &Value,
    ) -> Result<(Value, bool)> {
        policy::require_admin(caller, "create_domain_config")?;
        let existing = self.config_entries(domain_id).await?;
        let new = entries(config)?;
        if new.is_empty() {
            return Err(Error::bad_request(
                "Invalid input for field 'config': it is empty.",
            ));
        }
        store::domain_configs::replace(&self.db, domain_id, &new).await?;
        Ok((render(&new), existing.is_empty()))
    }

    /// The whole configuration, a group, or one option (404 when absent).
    pub async fn get_domain_config(
        &self,
        caller: &Caller,
        domain_id: &str,
        group: Option<&str>,
        option: Option<&str>,
    ) -> Result<Value> {
        policy::require_reader(caller, "get_domain_config")?;
        let all = self.config_entries(domain_id).await?;
        if all.is_empty() {
            return Err(Error::not_found(format!(
                "Could not find domain config: {domain_id}."
            )));
        }
        let selected: Vec<_> = all
            .into_iter()
            .filter(|(g, o, _)| {
                group.is_none_or(|want| want == g) && option.is_none_or(|want| want == o)
            })
            .collect();
        if selected.is_empty() {
            return Err(Error::not_found(format!(
                "Could not find domain config: {domain_id}/{}/{}.",
                group.unwrap_or(""),
                option.unwrap_or("")
            )));
        }
        let rendered = render(&selected);
        Ok(match (group, option) {
            (Some(g), Some(o)) => json!({ o: rendered[g][o].clone() }),
            (Some(g), None) => json!({ g: rendered[g].clone() }),
            _ => rendered,
        })
    }

    /// `PATCH` of the whole config, a group or an option; returns the whole configuration.
    pub async fn update_domain_config(
        &self,
        caller: &Caller,
        domain_id: &str,
        group: Option<&str>,
        option: Option<&str>,
        config: &Value,
    ) -> Result<Value> {
        policy::require_admin(caller, "update_domain_config")?;
        let mut all = self.config_entries(domain_id).await?;
        if all.is_empty() {
            return Err(Error::not_found(format!(
                "Could not find domain config: {domain_id}."
            )));
        }
        let updates = match (group, option) {
            (Some(g), Some(o)) => {
                let value = config.get(o).cloned().ok_or_else(|| {
                    Error::bad_request(format!("Expecting to find {o} in config."))
                })?;
                entries(&json!({ g: { o: value } }))?
            }
            (Some(g), None) => {
                if config.as_object().is_some_and(|c| c.keys().any(|k| k != g)) {
                    return Err(Error::bad_request(
                        "The group in the body does not match the URL.",
                    ));
                }
                entries(config)?
            }
            _ => entries(config)?,
        };
        merge(&mut all, updates);
        store::domain_configs::replace(&self.db, domain_id, &all).await?;
        Ok(render(&all))
    }

    pub async fn delete_domain_config(
        &self,
        caller: &Caller,
        domain_id: &str,
        group: Option<&str>,
        option: Option<&str>,
    ) -> Result<()> {
        policy::require_admin(caller, "delete_domain_config")?;
        let all = self.config_entries(domain_id).await?;
        let keep: Vec<_> = all
            .iter()
            .filter(|(g, o, _)| {
                !(group.is_none_or(|want| want == g) && option.is_none_or(|want| want == o))
            })
            .cloned()
            .collect();
        if keep.len() == all.len() {
            return Err(Error::not_found(format!(
                "Could not find domain config: {domain_id}."
            )));
        }
        store::domain_configs::replace(&self.db, domain_id, &keep).await
    }

    /// `GET /v3/domains/config/default[/{group}[/{option}]]`.
    pub async fn default_domain_config(
        &self,
        caller: &Caller,
        group: Option<&str>,
        option: Option<&str>,
    ) -> Result<Value> {
        policy::require_reader(caller, "get_domain_config_default")?;
        let mut out = Map::new();
        for (g, options) in defaults() {
            if group.is_some_and(|want| want != g) {
                continue;
            }
            let mut opts = Map::new();
            for (o, v) in options {
                if option.is_none_or(|want| want == o) {
                    opts.insert(o.to_string(), v);
                }
            }
            out.insert(g.to_string(), Value::Object(opts));
        }
        match (group, option) {
            (Some(g), _) if !out.contains_key(g) => Err(Error::forbidden(format!("Invalid domain specific configuration: group {g} is not supported."))),
            (Some(g), Some(o)) => out[g]
                .get(o)
                .map(|v| json!({ o: v }))
                .ok_or_else(|| Error::forbidden(format!("Invalid domain specific configuration: option {o} in group {g} is not supported."))),
            _ => Ok(Value::Object(out)),
        }
    }
}
