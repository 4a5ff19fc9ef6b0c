//! Keystone's default policy, as the handful of rules it reduces to when scope enforcement is off
//! (Keystone's shipped configuration, and what every OpenStack client expects):
//!
//! * `admin` — a caller with the admin role on any scope may do anything;
//! * `reader` — a caller with the reader role on the *system* may read anything;
//! * `owner` — a user may read themselves, change their own password, list their own projects
//!   and groups, manage their own application credentials and access rules, and validate or
//!   revoke their own tokens;
//! * a caller may read the project and the domain its token is scoped to.
//!
//! A refusal is a 403 naming the rule, as Keystone words it.

use nubo_common::{Caller, Error, Result};

pub fn denied(action: &str) -> Error {
    Error::forbidden(format!(
        "You are not authorized to perform the requested action: identity:{action}."
    ))
}

/// Admin only (creates, updates, deletes of shared things).
pub fn require_admin(caller: &Caller, action: &str) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(denied(action))
    }
}

/// Admin, or reader on the system scope (reading shared things).
pub fn require_reader(caller: &Caller, action: &str) -> Result<()> {
    if caller.is_admin() || (caller.is_system_scoped() && caller.has_role("reader")) {
        Ok(())
    } else {
        Err(denied(action))
    }
}

/// Admin, system reader, or the user `user_id` themselves.
pub fn require_reader_or_self(caller: &Caller, user_id: &str, action: &str) -> Result<()> {
    if caller.user_id == user_id {
        Ok(())
    } else {
        require_reader(caller, action)
    }
}

/// Admin or the user `user_id` themselves (managing one's own credentials).
pub fn require_admin_or_self(caller: &Caller, user_id: &str, action: &str) -> Result<()> {
    if caller.user_id == user_id {
        Ok(())
    } else {
        require_admin(caller, action)
    }
}

/// Admin, the `service` role, or the token's own user (validate, check, revoke).
pub fn require_token_subject(caller: &Caller, subject_user_id: &str, action: &str) -> Result<()> {
    if caller.user_id == subject_user_id || caller.has_role("service") {
        Ok(())
    } else {
        require_reader(caller, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nubo_common::Scope;

    fn caller(roles: &[&str], scope: Scope) -> Caller {
        Caller {
            user_id: "me".into(),
            user_name: "me".into(),
            user_domain_id: "default".into(),
            user_domain_name: "Default".into(),
            scope,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            audit_id: "a".into(),
            application_credential_id: None,
        }
    }

    fn project() -> Scope {
        Scope::Project {
            id: "p".into(),
            name: "p".into(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        }
    }

    #[test]
    fn members_are_refused_admin_actions() {
        let member = caller(&["member", "reader"], project());
        let err = require_admin(&member, "create_user").unwrap_err();
        assert_eq!(err.status, http::StatusCode::FORBIDDEN);
        assert!(err.message.contains("identity:create_user"));
        assert!(require_reader(&member, "list_users").is_err());
        assert!(require_admin(&caller(&["admin"], project()), "create_user").is_ok());
    }

    #[test]
    fn system_readers_read_but_do_not_write() {
        let reader = caller(&["reader"], Scope::System);
        assert!(require_reader(&reader, "list_users").is_ok());
        assert!(require_admin(&reader, "create_user").is_err());
        // A project reader is not a system reader.
        assert!(require_reader(&caller(&["reader"], project()), "list_users").is_err());
    }

    #[test]
    fn users_may_act_on_themselves() {
        let member = caller(&["member"], project());
        assert!(require_admin_or_self(&member, "me", "create_application_credential").is_ok());
        assert!(
            require_admin_or_self(&member, "someone", "create_application_credential").is_err()
        );
        assert!(require_token_subject(&member, "me", "validate_token").is_ok());
        assert!(require_token_subject(&member, "other", "validate_token").is_err());
    }
}
