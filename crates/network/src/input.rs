//! Request bodies as Neutron validates them: the resource member (`{"network": {...}}`), typed
//! attribute readers that answer a wrong type with Neutron's "Invalid input for X" 400, and a
//! final check that refuses unknown attributes ("Unrecognized attribute(s)") and read-only ones
//! ("Attribute 'x' not allowed in POST", "Cannot update read-only attribute x").

use nubo_common::{Error, Result};
use serde_json::{Map, Value};

use crate::addr::{Cidr, Ip, Mac};

/// Whether a body creates or updates a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
}

/// A 400 in Neutron's attribute-validation shape.
pub fn invalid(attr: &str, reason: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Invalid input for {attr}. Reason: {reason}."))
        .with_kind("HTTPBadRequest")
}

/// A 400 `InvalidInput` ("Invalid input for operation: ...").
pub fn invalid_input(message: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Invalid input for operation: {message}.")).with_kind("InvalidInput")
}

/// `repr()` of a JSON value the way Python prints it in Neutron's messages.
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The attributes of one resource body, consumed as they are read.
pub struct Input {
    pub op: Op,
    map: Map<String, Value>,
    /// Attributes the resource has but the client may not set in this operation.
    read_only: &'static [&'static str],
}

impl Input {
    pub fn new(op: Op, map: Map<String, Value>, read_only: &'static [&'static str]) -> Input {
        Input { op, map, read_only }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn peek(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// A string attribute; `null` is refused.
    pub fn string(&mut self, key: &str, max_len: usize) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > max_len {
                    Err(invalid(
                        key,
                        format!("'{s}' exceeds maximum length of {max_len}"),
                    ))
                } else {
                    Ok(Some(s))
                }
            }
            Some(other) => Err(invalid(
                key,
                format!("'{}' is not a valid string", repr(&other)),
            )),
        }
    }

    /// A string attribute that may be `null`: `Some(None)` is an explicit null.
    pub fn nullable_string(&mut self, key: &str, max_len: usize) -> Result<Option<Option<String>>> {
        match self.map.get(key) {
            Some(Value::Null) => {
                self.map.remove(key);
                Ok(Some(None))
            }
            _ => Ok(self.string(key, max_len)?.map(Some)),
        }
    }

    /// A boolean; also accepts Neutron's string spellings ("True", "false", "1").
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => crate::query::parse_bool(&s)
                .map(Some)
                .ok_or_else(|| invalid(key, format!("'{s}' cannot be converted to boolean"))),
            Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Some(n.as_i64() == Some(1)))
            }
            Some(other) => Err(invalid(
                key,
                format!("'{}' cannot be converted to boolean", repr(&other)),
            )),
        }
    }

    /// An integer (a number or a numeric string); `Some(None)` for an explicit null.
    pub fn integer(&mut self, key: &str) -> Result<Option<Option<i64>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => to_int(&v)
                .map(|n| Some(Some(n)))
                .ok_or_else(|| invalid(key, format!("'{}' is not an integer", repr(&v)))),
        }
    }

    /// A list attribute; `null` counts as an empty list when `null_is_empty`.
    pub fn list(&mut self, key: &str, null_is_empty: bool) -> Result<Option<Vec<Value>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(Value::Null) if null_is_empty => Ok(Some(Vec::new())),
            Some(other) => Err(invalid(key, format!("'{}' is not a list", repr(&other)))),
        }
    }

    /// A list of strings.
    pub fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        match self.list(key, true)? {
            None => Ok(None),
            Some(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(invalid(
                        key,
                        format!("'{}' is not a valid string", repr(&other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }

    /// An object attribute (`binding:profile`); `null` is an empty object.
    pub fn object(&mut self, key: &str) -> Result<Option<Map<String, Value>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(Value::Null) => Ok(Some(Map::new())),
            Some(other) => Err(invalid(
                key,
                format!("'{}' is not a dictionary", repr(&other)),
            )),
        }
    }

    /// The project a create acts for: `project_id`/`tenant_id` in the body (which must agree),
    /// else the caller's. Only admins may name another project.
    pub fn project(&mut self, caller_project: &str, is_admin: bool) -> Result<String> {
        let p = self.string("project_id", 255)?;
        let t = self.string("tenant_id", 255)?;
        if let (Some(p), Some(t)) = (&p, &t) {
            if p != t {
                return Err(
                    Error::bad_request("'project_id' and 'tenant_id' do not match")
                        .with_kind("HTTPBadRequest"),
                );
            }
        }
        match p.or(t) {
            Some(project) if project != caller_project && !is_admin => Err(Error::bad_request(
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
            )
            .with_kind("HTTPBadRequest")),
            Some(project) if project.is_empty() => Err(invalid("project_id", "'' is not a valid project id")),
            Some(project) => Ok(project),
            None => Ok(caller_project.to_string()),
        }
    }

    /// Refuses whatever is left: read-only attributes and unknown ones.
    pub fn finish(self) -> Result<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort();
        if let Some(k) = keys.iter().find(|k| self.read_only.contains(&k.as_str())) {
            let message = match self.op {
                Op::Create => format!("Attribute '{k}' not allowed in POST"),
                Op::Update => format!("Cannot update read-only attribute {k}"),
            };
            return Err(Error::bad_request(message).with_kind("HTTPBadRequest"));
        }
        let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Err(
            Error::bad_request(format!("Unrecognized attribute(s) '{}'", names.join(", ")))
                .with_kind("HTTPBadRequest"),
        )
    }
}

pub fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads an IP address attribute (`gateway_ip`, `ip_address` ...).
pub fn parse_ip(attr: &str, value: &str) -> Result<Ip> {
    Ip::parse(value).ok_or_else(|| invalid(attr, format!("'{value}' is not a valid IP address")))
}

/// Reads a CIDR attribute that must be a network address (`cidr`, `destination`).
pub fn parse_subnet(attr: &str, value: &str) -> Result<Cidr> {
    let cidr = Cidr::parse(value)
        .ok_or_else(|| invalid(attr, format!("'{value}' is not a valid IP subnet")))?;
    if !cidr.is_network() {
        return Err(invalid(
            attr,
            format!(
                "'{value}' isn't a recommended CIDR, use '{}' instead",
                cidr.network()
            ),
        ));
    }
    Ok(cidr)
}

pub fn parse_mac(attr: &str, value: &str) -> Result<Mac> {
    let mac = Mac::parse(value)
        .ok_or_else(|| invalid(attr, format!("'{value}' is not a valid MAC address")))?;
    if mac.is_zero() || mac.is_multicast() {
        return Err(invalid(
            attr,
            format!("'{value}' is not a valid MAC address"),
        ));
    }
    Ok(mac)
}

/// The member `key` of a request body, or Neutron's 400.
pub fn member(mut body: Value, key: &str) -> Result<Map<String, Value>> {
    match body.get_mut(key).map(Value::take) {
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(
            Error::bad_request(format!("Invalid format: {key} must be a dictionary"))
                .with_kind("HTTPBadRequest"),
        ),
        None => Err(
            Error::bad_request(format!("Unable to find '{key}' in request body"))
                .with_kind("HTTPBadRequest"),
        ),
    }
}

/// A create body: one resource under `key`, or a bulk list under `plural`.
pub enum CreateBody {
    One(Map<String, Value>),
    Bulk(Vec<Map<String, Value>>),
}

pub fn create_body(body: Value, key: &str, plural: &str) -> Result<CreateBody> {
    if let Some(Value::Array(items)) = body.get(plural) {
        if items.is_empty() {
            return Err(Error::bad_request("Resources required").with_kind("HTTPBadRequest"));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Object(map) => out.push(map.clone()),
                _ => {
                    return Err(Error::bad_request(format!(
                        "Invalid format: {plural} must be a list of dictionaries"
                    ))
                    .with_kind("HTTPBadRequest"))
                }
            }
        }
        return Ok(CreateBody::Bulk(out));
    }
    member(body, key).map(CreateBody::One)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value, op: Op) -> Input {
        Input::new(op, v.as_object().unwrap().clone(), &["id", "status"])
    }

    #[test]
    fn types_are_checked() {
        let mut i = input(
            json!({"name": 5, "admin_state_up": "False", "mtu": "1400"}),
            Op::Create,
        );
        assert_eq!(i.string("name", 255).unwrap_err().status, 400);
        assert_eq!(i.boolean("admin_state_up").unwrap(), Some(false));
        assert_eq!(i.integer("mtu").unwrap(), Some(Some(1400)));
        i.finish().unwrap();
    }

    #[test]
    fn leftovers_are_refused() {
        let i = input(json!({"bogus": 1}), Op::Create);
        let err = i.finish().unwrap_err();
        assert!(err.message.contains("Unrecognized attribute(s) 'bogus'"));
        let i = input(json!({"status": "x"}), Op::Update);
        let err = i.finish().unwrap_err();
        assert!(err
            .message
            .contains("Cannot update read-only attribute status"));
    }

    #[test]
    fn project_rules() {
        let mut i = input(json!({"tenant_id": "p2"}), Op::Create);
        assert_eq!(i.project("p1", false).unwrap_err().status, 400);
        let mut i = input(json!({"project_id": "p2"}), Op::Create);
        assert_eq!(i.project("p1", true).unwrap(), "p2");
    }

    #[test]
    fn cidrs_must_be_networks() {
        assert!(parse_subnet("cidr", "10.0.0.0/24").is_ok());
        let err = parse_subnet("cidr", "10.0.0.1/24").unwrap_err();
        assert!(err.message.contains("10.0.0.0/24"));
    }
}
