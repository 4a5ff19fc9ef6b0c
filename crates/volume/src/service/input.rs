//! Request-body checks shared by every resource, after Cinder's JSON schemas: metadata maps,
//! sizes, names, booleans in Cinder's spellings, optional UUIDs. Every failure is a 400 that
//! says which field.

use std::collections::BTreeMap;

use nubo_common::{Error, Result};
use serde_json::{Map, Value};

pub fn invalid(field: &str, reason: &str) -> Error {
    Error::bad_request(format!(
        "Invalid input for field/attribute {field}. {reason}"
    ))
}

/// The object under `key` of a request body (`{"volume": {...}}`), or a 400.
pub fn member<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>> {
    body.get(key).and_then(Value::as_object).ok_or_else(|| {
        Error::bad_request(format!("Missing required element '{key}' in request body."))
    })
}

fn key_ok(k: &str, allow_slash_space: bool) -> bool {
    !k.is_empty()
        && k.len() <= 255
        && k.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | ':' | '.')
                || (allow_slash_space && matches!(c, ' ' | '/'))
        })
}

/// A metadata or extra specs map: keys of 1 to 255 characters of `A-Z a-z 0-9 - _ : . / space`,
/// string values up to 255 characters. `null` is an empty map when `allow_null`.
pub fn metadata(
    field: &str,
    v: Option<&Value>,
    allow_null: bool,
) -> Result<BTreeMap<String, String>> {
    match v {
        None => Ok(BTreeMap::new()),
        Some(Value::Null) if allow_null => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                if !key_ok(k, true) {
                    return Err(invalid(field, &format!("Invalid key {k:?}.")));
                }
                match v {
                    Value::String(s) if s.chars().count() <= 255 => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(invalid(
                            field,
                            &format!(
                                "The value of {k:?} must be a string of at most 255 characters."
                            ),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(field, "It must be an object.")),
    }
}

/// A size in GiB: a positive integer, or a string of digits.
pub fn size(field: &str, v: &Value) -> Result<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    match n {
        Some(n) if (1..=i32::MAX as i64).contains(&n) => Ok(n),
        _ => Err(invalid(
            field,
            &format!("{v} is not a valid size: it must be an integer greater than 0."),
        )),
    }
}

/// An optional size (`null` and absent are `None`).
pub fn opt_size(field: &str, v: Option<&Value>) -> Result<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => size(field, v).map(Some),
    }
}

/// An optional string of at most `max` characters.
pub fn opt_string(field: &str, v: Option<&Value>, max: usize) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            field,
            &format!("It is longer than {max} characters."),
        )),
        Some(_) => Err(invalid(field, "It must be a string.")),
    }
}

/// A name: trimmed, at most 255 characters (Cinder strips surrounding white space).
pub fn opt_name(field: &str, v: Option<&Value>) -> Result<Option<String>> {
    Ok(opt_string(field, v, 255)?.map(|s| s.trim().to_string()))
}

/// Cinder's booleans: JSON booleans and the usual string spellings.
pub fn boolean(field: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => crate::service::query::parse_bool(s)
            .ok_or_else(|| invalid(field, &format!("{s:?} is not a boolean."))),
        _ => Err(invalid(field, "It must be a boolean.")),
    }
}

pub fn opt_boolean(field: &str, v: Option<&Value>) -> Result<Option<bool>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => boolean(field, v).map(Some),
    }
}

pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// An optional UUID string.
pub fn opt_uuid(field: &str, v: Option<&Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_uuid(s) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "It must be a UUID.")),
    }
}

/// Checks one metadata item body: `{"meta": {key: value}}` with exactly the URL's key.
pub fn meta_item(body: &Value, key: &str) -> Result<String> {
    let meta = body
        .get("meta")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("Malformed request body: 'meta' is required."))?;
    if meta.len() != 1 {
        return Err(Error::bad_request("Request body contains too many items."));
    }
    let (k, v) = meta.iter().next().expect("one item");
    if k != key {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    let map = metadata("meta", Some(&Value::Object(meta.clone())), false)?;
    let _ = v;
    Ok(map.get(key).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(size("size", &json!(3)).unwrap(), 3);
        assert_eq!(size("size", &json!("4")).unwrap(), 4);
        for bad in [
            json!("#$%"),
            json!(""),
            json!("0"),
            json!("-1"),
            json!(0),
            json!(1.5),
        ] {
            assert!(size("size", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_rules() {
        assert!(metadata("m", Some(&json!({"a": "b"})), false).is_ok());
        assert!(metadata("m", Some(&json!({"": "b"})), false).is_err());
        assert!(metadata("m", Some(&json!({"a": 1})), false).is_err());
        assert!(metadata("m", Some(&json!({"a": "x".repeat(256)})), false).is_err());
        assert!(metadata("m", Some(&json!(null)), true).unwrap().is_empty());
        assert!(metadata("m", Some(&json!(null)), false).is_err());
    }

    #[test]
    fn meta_items() {
        assert_eq!(meta_item(&json!({"meta": {"k": "v"}}), "k").unwrap(), "v");
        assert!(meta_item(&json!({"meta": {"k": "v"}}), "other").is_err());
        assert!(meta_item(&json!({"meta": {"k": "v", "l": "w"}}), "k").is_err());
    }
}
