//! `PATCH /v2/images/{id}` documents in both media types Glance accepts:
//!
//! * `application/openstack-images-v2.0-json-patch` (JSON-schema draft 4 style):
//!   `[{"replace": "/name", "value": "x"}]`; `add` of an attribute that is already present is a
//!   409.
//! * `application/openstack-images-v2.1-json-patch` (draft 10, RFC 6902 style):
//!   `[{"op": "replace", "path": "/name", "value": "x"}]`; `add` replaces.
//!
//! Parsing checks the shape, the JSON pointer, the path depth and the read-only and reserved
//! names, like Glance's request deserializer, before the image is even looked up.

use nubo_common::{Error, Result};
use serde_json::Value;

use crate::service::validate;

pub const MEDIA_TYPE_V20: &str = "application/openstack-images-v2.0-json-patch";
pub const MEDIA_TYPE_V21: &str = "application/openstack-images-v2.1-json-patch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        match s {
            "add" => Some(Op::Add),
            "replace" => Some(Op::Replace),
            "remove" => Some(Op::Remove),
            _ => None,
        }
    }
}

/// One change of a patch document.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    /// The decoded JSON pointer (`/locations/0` -> `["locations", "0"]`).
    pub path: Vec<String>,
    pub value: Option<Value>,
    /// True for the v2.0 media type (draft 4 semantics of `add`).
    pub draft4: bool,
}

impl Change {
    pub fn root(&self) -> &str {
        &self.path[0]
    }
}

/// The 415 for a PATCH with another content type (the handler adds `Accept-Patch`).
pub fn unsupported_media_type() -> Error {
    Error::new(
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Image PATCH expects Content-Type one of: {MEDIA_TYPE_V20}, {MEDIA_TYPE_V21}"),
    )
}

/// Parses a PATCH request body sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Change>> {
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let draft4 = match mime.as_deref() {
        Some(MEDIA_TYPE_V20) => true,
        Some(MEDIA_TYPE_V21) => false,
        _ => return Err(unsupported_media_type()),
    };
    let doc: Value = nubo_common::http::parse_json(body)?;
    let Value::Array(raw_changes) = doc else {
        return Err(Error::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    let mut changes = Vec::with_capacity(raw_changes.len());
    for raw in raw_changes {
        let Value::Object(raw) = raw else {
            return Err(Error::bad_request("Operations must be JSON objects."));
        };
        let (op, pointer) = if draft4 {
            let mut found = None;
            for (name, op) in [
                ("add", Op::Add),
                ("remove", Op::Remove),
                ("replace", Op::Replace),
            ] {
                if raw.contains_key(name) {
                    if found.is_some() {
                        return Err(Error::bad_request(
                            "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                        ));
                    }
                    found = Some((op, name));
                }
            }
            let Some((op, name)) = found else {
                return Err(Error::bad_request(
                    "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                ));
            };
            (op, raw.get(name).cloned())
        } else {
            let op = match raw.get("op") {
                None => {
                    return Err(Error::bad_request(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    ))
                }
                Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
                    Error::bad_request(format!(
                        "Invalid operation: `{s}`. It must be one of the following: add, remove, replace."
                    ))
                })?,
                Some(other) => {
                    return Err(Error::bad_request(format!(
                        "Invalid operation: `{other}`. It must be one of the following: add, remove, replace."
                    )))
                }
            };
            let Some(path) = raw.get("path") else {
                return Err(Error::bad_request(
                    "Unable to find 'path' in JSON Schema change",
                ));
            };
            (op, Some(path.clone()))
        };
        let Some(Value::String(pointer)) = pointer else {
            return Err(Error::bad_request("The path of a change must be a string."));
        };
        let path = decode_pointer(&pointer)?;
        check_depth(op, &path)?;
        let value = if op == Op::Remove {
            None
        } else {
            let name = match op {
                Op::Add => "add",
                _ => "replace",
            };
            Some(raw.get("value").cloned().ok_or_else(|| {
                Error::bad_request(format!(
                    "Operation \"{name}\" requires a member named \"value\"."
                ))
            })?)
        };
        let change = Change {
            op,
            path,
            value,
            draft4,
        };
        check_change(&change)?;
        changes.push(change);
    }
    Ok(changes)
}

/// Decodes a JSON pointer, accepting only Glance's restricted form.
fn decode_pointer(pointer: &str) -> Result<Vec<String>> {
    let bad = |why: &str| Err(Error::bad_request(format!("Pointer `{pointer}` {why}")));
    if !pointer.starts_with('/') {
        return bad("does not start with \"/\".");
    }
    let rest = &pointer[1..];
    if pointer.len() > 1 && pointer.ends_with('/') {
        return bad("end with \"/\".");
    }
    if rest.contains('/') && rest.split('/').any(|p| p.trim().is_empty()) {
        return bad("contains adjacent \"/\".");
    }
    if rest.trim().is_empty() {
        return bad("does not contains valid token.");
    }
    let mut chars = pointer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0') | Some('1')) {
            return bad("contains \"~\" not part of a recognized escape sequence.");
        }
    }
    Ok(rest
        .split('/')
        .map(|part| {
            part.replace("~1", "/")
                .replace("~0", "~")
                .trim()
                .to_string()
        })
        .collect())
}

fn check_depth(op: Op, path: &[String]) -> Result<()> {
    let expected = if path[0] == "locations" {
        match op {
            Op::Replace => 1,
            _ => 2,
        }
    } else {
        1
    };
    if path.len() != expected {
        return Err(Error::bad_request(format!(
            "Invalid JSON pointer for this resource: '/{}'",
            path.join("/")
        )));
    }
    Ok(())
}

fn check_change(change: &Change) -> Result<()> {
    let root = change.root();
    if validate::READ_ONLY.contains(&root) {
        return Err(Error::forbidden(format!(
            "Attribute '{root}' is read-only."
        )));
    }
    if validate::is_reserved(root) {
        return Err(Error::forbidden(format!("Attribute '{root}' is reserved.")));
    }
    if let Some(value) = &change.value {
        if change.path.len() == 1 {
            validate::check_value(root, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_media_types() {
        let v20 = parse(
            Some(MEDIA_TYPE_V20),
            br#"[{"replace": "/name", "value": "x"}, {"remove": "/foo"}]"#,
        )
        .unwrap();
        assert_eq!(v20[0].op, Op::Replace);
        assert_eq!(v20[0].path, vec!["name"]);
        assert!(v20[0].draft4);
        assert_eq!(v20[1].op, Op::Remove);
        let v21 = parse(
            Some("application/openstack-images-v2.1-json-patch; charset=utf-8"),
            br#"[{"op": "add", "path": "/a~1b", "value": "x"}]"#,
        )
        .unwrap();
        assert_eq!(v21[0].path, vec!["a/b"]);
        assert!(!v21[0].draft4);
    }

    #[test]
    fn refusals() {
        let status =
            |ct: Option<&str>, body: &str| parse(ct, body.as_bytes()).unwrap_err().status.as_u16();
        assert_eq!(status(Some("application/json"), "[]"), 415);
        assert_eq!(status(None, "[]"), 415);
        assert_eq!(status(Some(MEDIA_TYPE_V21), "{}"), 400);
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V21),
                "[{\"op\": \"move\", \"path\": \"/a\"}]"
            ),
            400
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V21),
                "[{\"op\": \"add\", \"path\": \"/a\"}]"
            ),
            400
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V21),
                "[{\"op\": \"add\", \"path\": \"a\", \"value\": \"x\"}]"
            ),
            400
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V21),
                "[{\"op\": \"add\", \"path\": \"/a/b\", \"value\": \"x\"}]"
            ),
            400
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V21),
                "[{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"active\"}]"
            ),
            403
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V20),
                "[{\"add\": \"/os_glance_foo\", \"value\": \"bar\"}]"
            ),
            403
        );
        assert_eq!(
            status(
                Some(MEDIA_TYPE_V20),
                "[{\"add\": \"/min_ram\", \"value\": \"x\"}]"
            ),
            400
        );
        assert_eq!(status(Some(MEDIA_TYPE_V20), "not json"), 400);
    }
}
