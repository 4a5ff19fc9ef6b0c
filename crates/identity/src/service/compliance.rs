//! Security compliance (Keystone's `[security_compliance]`, the PCI-DSS rules), all off by
//! default: a password format (regex), password expiry, a minimum age before a user may change
//! their password again, no reuse of the last N passwords when users change their own, and
//! account lockout after repeated failed logins. Admin resets skip the age and history rules,
//! as in Keystone; the user options `ignore_password_expiry` and
//! `ignore_lockout_failure_attempts` exempt a user.

use chrono::Duration;
use nubo_common::config::IdentityConfig;
use nubo_common::{Error, Result};
use serde_json::Value;

use crate::password;
use crate::service::IdentityService;
use crate::store;
use crate::store::users::UserRow;

/// The rules, from configuration.
#[derive(Debug, Clone, Default)]
pub struct PasswordRules {
    pub lockout_failure_attempts: u32,
    pub lockout_duration: std::time::Duration,
    pub unique_last_password_count: u32,
    pub minimum_password_age_days: u32,
    pub password_expires_days: u32,
    pub regex: Option<regex::Regex>,
    pub regex_description: String,
}

impl PasswordRules {
    /// Reads the rules; an invalid `password_regex` is a configuration error.
    pub fn from_config(config: &IdentityConfig) -> Result<PasswordRules> {
        let regex = if config.password_regex.is_empty() {
            None
        } else {
            Some(regex::Regex::new(&config.password_regex).map_err(|e| {
                Error::internal(format!(
                    "identity.password_regex is not a valid regular expression: {e}"
                ))
            })?)
        };
        Ok(PasswordRules {
            lockout_failure_attempts: config.lockout_failure_attempts,
            lockout_duration: std::time::Duration::from_secs(config.lockout_duration),
            unique_last_password_count: config.unique_last_password_count,
            minimum_password_age_days: config.minimum_password_age,
            password_expires_days: config.password_expires_days,
            regex,
            regex_description: config.password_regex_description.clone(),
        })
    }
}

fn option_set(user: &UserRow, name: &str) -> bool {
    user.options.get(name).and_then(Value::as_bool) == Some(true)
}

impl IdentityService {
    /// A new password's length and format (`password_regex`).
    pub(crate) fn check_password_format(&self, new_password: &str) -> Result<()> {
        let rules = &self.settings.password_rules;
        if new_password.len() > 4096 {
            return Err(Error::bad_request(
                "Invalid input for field 'password': too long.",
            ));
        }
        if let Some(regex) = &rules.regex {
            if !regex.is_match(new_password) {
                let why = if rules.regex_description.is_empty() {
                    "it does not match the configured format".to_string()
                } else {
                    rules.regex_description.clone()
                };
                return Err(Error::bad_request(format!(
                    "Password validation error: {why}."
                )));
            }
        }
        Ok(())
    }

    /// Sets `user`'s password (in the row; the caller stores it). `self_service` applies the age
    /// and history rules, which admin resets skip.
    pub(crate) async fn set_password(
        &self,
        user: &mut UserRow,
        new_password: &str,
        self_service: bool,
    ) -> Result<()> {
        self.check_password_format(new_password)?;
        let rules = &self.settings.password_rules;
        let now = nubo_common::time::now();
        if self_service && rules.minimum_password_age_days > 0 {
            let set_at = user
                .password_created_at
                .as_deref()
                .and_then(nubo_common::time::parse);
            if set_at
                .is_some_and(|t| now - t < Duration::days(rules.minimum_password_age_days.into()))
            {
                return Err(Error::bad_request(format!(
                    "You cannot change your password at this time due to the minimum password age. \
                     Once you change your password, it must be used for {} day(s) before it can be changed.",
                    rules.minimum_password_age_days
                )));
            }
        }
        if self_service && rules.unique_last_password_count > 0 {
            let history = store::users::password_history(
                &self.db,
                &user.id,
                rules.unique_last_password_count,
            )
            .await?;
            let mut previous = history;
            if let Some(current) = &user.password_hash {
                if !previous.contains(current) {
                    previous.push(current.clone());
                }
            }
            for old in &previous {
                if password::verify(new_password, old).await {
                    return Err(Error::bad_request(format!(
                        "The new password cannot be identical to a previous password. The total number of \
                         passwords that must be unique is {}.",
                        rules.unique_last_password_count
                    )));
                }
            }
        }
        let hash = password::hash(new_password, self.settings.password_hash_cost).await?;
        let at = nubo_common::time::to_rfc3339(now);
        user.password_hash = Some(hash.clone());
        user.password_created_at = Some(at.clone());
        user.password_expires_at = (rules.password_expires_days > 0
            && !option_set(user, "ignore_password_expiry"))
        .then(|| {
            nubo_common::time::keystone_format(
                now + Duration::days(rules.password_expires_days.into()),
            )
        });
        store::users::remember_password(
            &self.db,
            &user.id,
            &hash,
            &at,
            rules.unique_last_password_count,
        )
        .await?;
        Ok(())
    }

    /// Before checking a password: refuses a locked account.
    pub(crate) async fn check_not_locked(&self, user: &UserRow) -> Result<()> {
        let rules = &self.settings.password_rules;
        if rules.lockout_failure_attempts == 0
            || option_set(user, "ignore_lockout_failure_attempts")
        {
            return Ok(());
        }
        let (count, at) = store::users::failed_logins(&self.db, &user.id).await?;
        let last = at.as_deref().and_then(nubo_common::time::parse);
        let locked = count >= i64::from(rules.lockout_failure_attempts)
            && last.is_some_and(|t| {
                nubo_common::time::now() - t
                    < Duration::from_std(rules.lockout_duration).unwrap_or(Duration::zero())
            });
        if locked {
            return Err(Error::unauthorized(format!(
                "The account is locked for user: {}.",
                user.id
            )));
        }
        if count >= i64::from(rules.lockout_failure_attempts) {
            // The lock has expired: start counting again.
            store::users::clear_failed_logins(&self.db, &user.id).await?;
        }
        Ok(())
    }

    /// After checking a password: counts failures, clears them on success, and refuses an
    /// expired password.
    pub(crate) async fn after_password_check(&self, user: &UserRow, verified: bool) -> Result<()> {
        let rules = &self.settings.password_rules;
        if !verified {
            if rules.lockout_failure_attempts > 0 {
                store::users::record_failed_login(
                    &self.db,
                    &user.id,
                    &nubo_common::time::now_rfc3339(),
                )
                .await?;
            }
            return Ok(());
        }
        if rules.lockout_failure_attempts > 0 {
            store::users::clear_failed_logins(&self.db, &user.id).await?;
        }
        let expired = user
            .password_expires_at
            .as_deref()
            .and_then(nubo_common::time::parse)
            .is_some_and(|t| t <= nubo_common::time::now());
        if expired && !option_set(user, "ignore_password_expiry") {
            return Err(Error::unauthorized(format!(
                "The password is expired and needs to be changed for user: {}.",
                user.id
            )));
        }
        Ok(())
    }
}
