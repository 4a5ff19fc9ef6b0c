//! The rules of Glance's image schema, applied to create bodies and PATCH values: types, enums,
//! lengths and patterns of the base attributes and of the well-known optional properties; any
//! other property must be a string.

use nubo_common::{Error, Result};
use serde_json::Value;

use crate::types::{CONTAINER_FORMATS, DISK_FORMATS};

/// Attributes that are columns of an image (everything else is a free-form property).
pub const BASE: &[&str] = &[
    "checksum",
    "created_at",
    "container_format",
    "disk_format",
    "id",
    "min_disk",
    "min_ram",
    "name",
    "size",
    "virtual_size",
    "status",
    "tags",
    "owner",
    "updated_at",
    "visibility",
    "protected",
    "os_hidden",
    "os_hash_algo",
    "os_hash_value",
];

/// Attributes no request may set (403 "is read-only").
pub const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
];

/// Attributes a create body may not carry at all (403 "is read-only").
pub const DISALLOWED_ON_CREATE: &[&str] = &["direct_url", "self", "file", "schema", "stores"];

/// Property names reserved by Glance (403 "is reserved").
pub const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];

/// Property names starting with this are Glance's own (403 "is reserved").
pub const RESERVED_PREFIX: &str = "os_glance";

pub fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with(RESERVED_PREFIX)
}

fn invalid(reason: String) -> Error {
    Error::bad_request(format!(
        "Provided object does not match schema 'image': {reason}"
    ))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn check_uuid(s: &str) -> bool {
    is_uuid(s)
}

fn string_or_null(key: &str, value: &Value, max: usize) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) if s.chars().count() <= max => Ok(()),
        Value::String(s) => Err(invalid(format!("'{s}' is too long ({key})"))),
        other => Err(invalid(format!(
            "{other} is not of type 'null', 'string' ({key})"
        ))),
    }
}

fn one_of(key: &str, value: &Value, allowed: &[&str], nullable: bool) -> Result<()> {
    match value {
        Value::Null if nullable => Ok(()),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        other => {
            let mut list: Vec<String> = Vec::new();
            if nullable {
                list.push("None".into());
            }
            list.extend(allowed.iter().map(|a| format!("'{a}'")));
            Err(invalid(format!(
                "{other} is not one of [{}] ({key})",
                list.join(", ")
            )))
        }
    }
}

/// Checks one attribute's value against the image schema.
pub fn check_value(key: &str, value: &Value) -> Result<()> {
    match key {
        "id" => match value {
            Value::String(s) if is_uuid(s) => Ok(()),
            other => Err(invalid(format!(
                "{other} does not match the UUID pattern (id)"
            ))),
        },
        "name" | "owner" => string_or_null(key, value, 255),
        "visibility" => one_of(
            key,
            value,
            &["community", "public", "private", "shared"],
            false,
        ),
        "status" => one_of(
            key,
            value,
            &[
                "queued",
                "saving",
                "active",
                "killed",
                "deleted",
                "uploading",
                "importing",
                "pending_delete",
                "deactivated",
            ],
            false,
        ),
        "protected" | "os_hidden" => match value {
            Value::Bool(_) => Ok(()),
            other => Err(invalid(format!("{other} is not of type 'boolean' ({key})"))),
        },
        "disk_format" => one_of(key, value, DISK_FORMATS, true),
        "container_format" => one_of(key, value, CONTAINER_FORMATS, true),
        "min_ram" | "min_disk" => match value.as_i64() {
            Some(n) if value.is_i64() || value.is_u64() => {
                if n < 0 {
                    Err(Error::bad_request(format!(
                        "Invalid value '{n}' for parameter '{key}': Cannot be a negative value."
                    )))
                } else {
                    Ok(())
                }
            }
            _ => Err(invalid(format!("{value} is not of type 'integer' ({key})"))),
        },
        "size" | "virtual_size" => match value {
            Value::Null => Ok(()),
            v if v.is_i64() || v.is_u64() => Ok(()),
            other => Err(invalid(format!(
                "{other} is not of type 'null', 'integer' ({key})"
            ))),
        },
        "checksum" => string_or_null(key, value, 32),
        "os_hash_algo" => string_or_null(key, value, 64),
        "os_hash_value" => string_or_null(key, value, 128),
        "created_at" | "updated_at" | "direct_url" | "self" | "file" | "schema" | "stores" => {
            match value {
                Value::String(_) => Ok(()),
                other => Err(invalid(format!("{other} is not of type 'string' ({key})"))),
            }
        }
        "tags" => check_tags(value).map(|_| ()),
        "locations" => match value {
            Value::Array(_) => Ok(()),
            other => Err(invalid(format!(
                "{other} is not of type 'array' (locations)"
            ))),
        },
        "kernel_id" | "ramdisk_id" => match value {
            Value::Null => Ok(()),
            Value::String(s) if is_uuid(s) => Ok(()),
            other => Err(invalid(format!(
                "{other} does not match the UUID pattern ({key})"
            ))),
        },
        _ => {
            if key.chars().count() > 255 {
                return Err(Error::bad_request(
                    "Custom property should not be greater than 255 characters.",
                ));
            }
            match value {
                Value::String(_) => Ok(()),
                other => Err(invalid(format!("{other} is not of type 'string' ({key})"))),
            }
        }
    }
}

/// A list of tags: strings of at most 255 characters, duplicates dropped.
pub fn check_tags(value: &Value) -> Result<Vec<String>> {
    let Value::Array(items) = value else {
        return Err(invalid(format!("{value} is not of type 'array' (tags)")));
    };
    let mut tags: Vec<String> = Vec::new();
    for item in items {
        let Value::String(tag) = item else {
            return Err(invalid(format!("{item} is not of type 'string' (tags)")));
        };
        check_tag(tag)?;
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    Ok(tags)
}

pub fn check_tag(tag: &str) -> Result<()> {
    if tag.chars().count() > 255 {
        return Err(invalid(format!("'{tag}' is too long (tags)")));
    }
    if tag.is_empty() {
        return Err(Error::bad_request("Tag cannot be empty."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_rules() {
        assert!(check_value("disk_format", &json!("raw")).is_ok());
        assert!(check_value("disk_format", &json!(null)).is_ok());
        assert!(check_value("disk_format", &json!("wrong")).is_err());
        assert!(check_value("container_format", &json!("wrong")).is_err());
        assert!(check_value("min_ram", &json!(-1)).is_err());
        assert!(check_value("min_ram", &json!("1")).is_err());
        assert!(check_value("protected", &json!("yes")).is_err());
        assert!(check_value("ramdisk_id", &json!("00000000-1111-2222-3333-444455556666")).is_ok());
        assert!(check_value("ramdisk_id", &json!("nope")).is_err());
        assert!(check_value("custom", &json!(5)).is_err());
        assert!(check_value("custom", &json!("5")).is_ok());
        assert_eq!(check_tags(&json!(["a", "b", "a"])).unwrap(), vec!["a", "b"]);
        assert!(is_reserved("os_glance_foo"));
        assert!(is_reserved("deleted"));
        assert!(!is_reserved("os_distro"));
    }
}
