//! Neutron's list semantics over wire-shaped resources: attribute filters (`?name=a&name=b` is
//! an OR, different attributes AND), tag filters (`tags`, `tags-any`, `not-tags`,
//! `not-tags-any`), `fields=`, `sort_key`/`sort_dir`, and `limit`/`marker`/`page_reverse`
//! pagination with `<collection>_links`.
//!
//! Services build the visible resources as JSON objects (pushing the cheap, selective filters
//! such as `device_id` down into SQL first) and hand them to [`apply`], which does the rest the
//! way Neutron's API layer does: unknown filter attributes are a 400 (the `filter-validation`
//! extension), a page is `limit` items after the marker in the sorted order, and the links carry
//! the request's own parameters with the marker replaced.

use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

/// Parameters that are not attribute filters.
const RESERVED: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

/// A parsed list request.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// The raw query pairs, in order (for links).
    pub raw: Vec<(String, String)>,
    /// Attribute filters: attribute -> accepted values (OR).
    pub filters: Vec<(String, Vec<String>)>,
    pub fields: Vec<String>,
    /// `(key, ascending)`.
    pub sorts: Vec<(String, bool)>,
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub page_reverse: bool,
    pub tags_all: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags_all: Vec<String>,
    pub not_tags_any: Vec<String>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(message).with_kind("HTTPBadRequest")
}

/// Python's repr of a list of strings, which Neutron puts in some messages.
pub fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ListParams {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListParams> {
        let mut p = ListParams {
            raw: pairs.to_vec(),
            ..Default::default()
        };
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "fields" => {
                    for f in csv(value) {
                        if !p.fields.contains(&f) {
                            p.fields.push(f);
                        }
                    }
                }
                "sort_key" if !value.is_empty() => sort_keys.push(value.clone()),
                "sort_dir" if !value.is_empty() => sort_dirs.push(value.clone()),
                "limit" => {
                    let limit: i64 = value.trim().parse().map_err(|_| {
                        Error::bad_request(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        ))
                    })?;
                    if limit < 0 {
                        return Err(Error::bad_request(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        )));
                    }
                    p.limit = (limit > 0).then_some(limit as usize);
                }
                "marker" if !value.is_empty() => p.marker = Some(value.clone()),
                "page_reverse" => p.page_reverse = value.eq_ignore_ascii_case("true"),
                "tags" => p.tags_all.extend(csv(value)),
                "tags-any" => p.tags_any.extend(csv(value)),
                "not-tags" => p.not_tags_all.extend(csv(value)),
                "not-tags-any" => p.not_tags_any.extend(csv(value)),
                k if RESERVED.contains(&k) => {}
                _ => {
                    if value.is_empty() {
                        continue;
                    }
                    match p.filters.iter_mut().find(|(k, _)| k == key) {
                        Some((_, values)) => values.push(value.clone()),
                        None => p.filters.push((key.clone(), vec![value.clone()])),
                    }
                }
            }
        }
        if sort_keys.len() != sort_dirs.len() {
            return Err(bad("The number of sort_keys and sort_dirs must be same"));
        }
        let invalid: Vec<String> = sort_dirs
            .iter()
            .filter(|d| *d != "asc" && *d != "desc")
            .cloned()
            .collect();
        if !invalid.is_empty() {
            return Err(bad(format!(
                "{} is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
                py_list(&invalid)
            )));
        }
        p.sorts = sort_keys
            .into_iter()
            .zip(sort_dirs.iter().map(|d| d == "asc"))
            .collect();
        Ok(p)
    }

    /// The single value of filter `key`, when exactly one was given (for pushing into SQL).
    pub fn single(&self, key: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| (v.len() == 1).then(|| v[0].as_str()))
    }

    /// All values of filter `key`.
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.filters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    pub fn has_tag_filters(&self) -> bool {
        !(self.tags_all.is_empty()
            && self.tags_any.is_empty()
            && self.not_tags_all.is_empty()
            && self.not_tags_any.is_empty())
    }
}

/// What one resource type allows: the attributes that may be filtered and sorted on.
pub struct Schema {
    pub collection: &'static str,
    pub filters: &'static [&'static str],
}

/// The answer to a list request.
pub struct Page {
    pub items: Vec<Value>,
    /// `<collection>_links`, present only when the request paginated.
    pub links: Option<Vec<Value>>,
}

impl Page {
    /// The response body: `{"<collection>": [...], "<collection>_links": [...]}`.
    pub fn into_body(self, collection: &str) -> Value {
        let mut body = Map::new();
        body.insert(collection.to_string(), Value::Array(self.items));
        if let Some(links) = self.links {
            body.insert(format!("{collection}_links"), Value::Array(links));
        }
        Value::Object(body)
    }
}

/// Parses a boolean the way Neutron's `convert_to_boolean` does.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn value_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Bool(b) => parse_bool(wanted) == Some(*b),
        Value::Number(n) => match (n.as_f64(), wanted.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Null => wanted.eq_ignore_ascii_case("none") || wanted.eq_ignore_ascii_case("null"),
        Value::Array(items) => items.iter().any(|i| value_matches(i, wanted)),
        Value::Object(_) => false,
    }
}

/// `fixed_ips=ip_address=X`, `fixed_ips=subnet_id=Y`, `fixed_ips=ip_address_substr=Z`: a port
/// matches when one of its fixed IPs satisfies every kind given.
fn fixed_ips_match(value: &Value, wanted: &[String]) -> bool {
    let mut ips = Vec::new();
    let mut subnets = Vec::new();
    let mut substrs = Vec::new();
    for w in wanted {
        match w.split_once('=') {
            Some(("ip_address", v)) => ips.push(v),
            Some(("subnet_id", v)) => subnets.push(v),
            Some(("ip_address_substr", v)) => substrs.push(v),
            _ => {}
        }
    }
    let Value::Array(entries) = value else {
        return false;
    };
    entries.iter().any(|e| {
        let ip = e["ip_address"].as_str().unwrap_or("");
        let subnet = e["subnet_id"].as_str().unwrap_or("");
        (ips.is_empty() || ips.contains(&ip))
            && (subnets.is_empty() || subnets.contains(&subnet))
            && (substrs.is_empty() || substrs.iter().any(|s| ip.contains(s)))
    })
}

fn tags_of(item: &Value) -> Vec<&str> {
    item["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// True when `item` passes every filter of `params`.
pub fn matches(item: &Value, params: &ListParams) -> bool {
    for (key, wanted) in &params.filters {
        let value = &item[key.as_str()];
        let ok = if key == "fixed_ips" {
            fixed_ips_match(value, wanted)
        } else if key == "tenant_id" || key == "project_id" {
            let project = item
                .get("project_id")
                .or_else(|| item.get("tenant_id"))
                .unwrap_or(&Value::Null);
            wanted.iter().any(|w| value_matches(project, w))
        } else {
            wanted.iter().any(|w| value_matches(value, w))
        };
        if !ok {
            return false;
        }
    }
    if params.has_tag_filters() {
        let tags = tags_of(item);
        let has = |t: &String| tags.contains(&t.as_str());
        if !params.tags_all.iter().all(has) {
            return false;
        }
        if !params.tags_any.is_empty() && !params.tags_any.iter().any(has) {
            return false;
        }
        if !params.not_tags_all.is_empty() && params.not_tags_all.iter().all(has) {
            return false;
        }
        if params.not_tags_any.iter().any(has) {
            return false;
        }
    }
    true
}

/// Refuses filters and sort keys the resource does not have.
pub fn validate(params: &ListParams, schema: &Schema) -> Result<()> {
    let invalid: Vec<String> = params
        .filters
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !schema.filters.contains(&k.as_str()))
        .collect();
    if !invalid.is_empty() {
        return Err(bad(format!(
            "{} is invalid attribute for filtering",
            py_list(&invalid)
        )));
    }
    let invalid: Vec<String> = params
        .sorts
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !schema.filters.contains(&k.as_str()) || k == "fixed_ips")
        .collect();
    if !invalid.is_empty() {
        return Err(bad(format!(
            "{} is invalid attribute for sort_keys",
            py_list(&invalid)
        )));
    }
    Ok(())
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Where links point: the URL of the collection as the client addressed it.
pub struct LinkBase<'a> {
    /// `http://host:port/network/v2.0/networks`
    pub url: &'a str,
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn link(base: &LinkBase, params: &ListParams, marker: Option<&str>, reverse: bool) -> String {
    let mut pairs: Vec<(String, String)> = params
        .raw
        .iter()
        .filter(|(k, _)| k != "marker" && k != "page_reverse")
        .cloned()
        .collect();
    if let Some(m) = marker {
        pairs.push(("marker".into(), m.to_string()));
    }
    if reverse {
        pairs.push(("page_reverse".into(), "True".into()));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}?{}", base.url, query.join("&"))
}

/// Filters, sorts, paginates and projects `items` (in the service's natural order).
pub fn apply(
    items: Vec<Value>,
    params: &ListParams,
    schema: &Schema,
    base: &LinkBase,
) -> Result<Page> {
    validate(params, schema)?;
    let mut items: Vec<Value> = items.into_iter().filter(|i| matches(i, params)).collect();
    let mut sorts = params.sorts.clone();
    if params.limit.is_some() && !sorts.iter().any(|(k, _)| k == "id") {
        sorts.push(("id".into(), true));
    }
    if !sorts.is_empty() {
        items.sort_by(|a, b| {
            for (key, asc) in &sorts {
                let ord = compare(&a[key.as_str()], &b[key.as_str()]);
                let ord = if *asc { ord } else { ord.reverse() };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let mut links = None;
    if let Some(limit) = params.limit {
        let position = match &params.marker {
            Some(marker) => items.iter().position(|i| i["id"].as_str() == Some(marker)),
            None => Some(if params.page_reverse { items.len() } else { 0 }),
        };
        let page: Vec<Value> = match position {
            None => Vec::new(),
            Some(i) if params.page_reverse => items[i.saturating_sub(limit)..i].to_vec(),
            Some(i) => {
                let start = if params.marker.is_some() { i + 1 } else { i };
                items[start.min(items.len())..(start + limit).min(items.len())].to_vec()
            }
        };
        let mut l = Vec::new();
        let first = page.first().and_then(|i| i["id"].as_str());
        let last = page.last().and_then(|i| i["id"].as_str());
        if page.len() >= limit || params.page_reverse {
            l.push(json!({"rel": "next", "href": link(base, params, last, false)}));
        }
        if !(page.len() < limit && params.page_reverse) {
            l.push(json!({"rel": "previous", "href": link(base, params, first, true)}));
        }
        links = Some(l);
        items = page;
    }
    if !params.fields.is_empty() {
        items = items
            .into_iter()
            .map(|item| project(item, &params.fields))
            .collect();
    }
    Ok(Page { items, links })
}

/// Keeps only `fields` of a resource (all of them when `fields` is empty).
pub fn project(item: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return item;
    }
    match item {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema = Schema {
        collection: "networks",
        filters: &["id", "name", "shared", "mtu", "tags", "fixed_ips"],
    };

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn nets() -> Vec<Value> {
        (0..5)
            .map(|i| {
                json!({"id": format!("id{i}"), "name": format!("n{}", i % 2), "shared": i == 3,
                       "mtu": 1400 + i, "tags": if i == 1 {json!(["a", "b"])} else {json!(["a"])}})
            })
            .collect()
    }

    fn run(q: &[(&str, &str)]) -> Result<Page> {
        let params = ListParams::parse(&pairs(q))?;
        apply(
            nets(),
            &params,
            &SCHEMA,
            &LinkBase {
                url: "http://h/network/v2.0/networks",
            },
        )
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.items
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn filters_or_within_and_across() {
        let page = run(&[("name", "n0"), ("mtu", "1402")]).unwrap();
        assert_eq!(ids(&page), ["id2"]);
        let page = run(&[("id", "id1"), ("id", "id4")]).unwrap();
        assert_eq!(ids(&page), ["id1", "id4"]);
        let page = run(&[("shared", "True")]).unwrap();
        assert_eq!(ids(&page), ["id3"]);
        let page = run(&[("tags", "a,b")]).unwrap();
        assert_eq!(ids(&page), ["id1"]);
        let page = run(&[("not-tags-any", "b")]).unwrap();
        assert_eq!(page.items.len(), 4);
    }

    #[test]
    fn unknown_filters_and_sort_keys_are_400() {
        assert_eq!(run(&[("bogus", "x")]).err().unwrap().status, 400);
        assert_eq!(
            run(&[("sort_key", "bogus"), ("sort_dir", "asc")])
                .err()
                .unwrap()
                .status,
            400
        );
        assert_eq!(run(&[("sort_key", "name")]).err().unwrap().status, 400);
        assert_eq!(run(&[("limit", "-1")]).err().unwrap().status, 400);
    }

    #[test]
    fn pagination_walks_forward_and_back() {
        let page = run(&[("limit", "2"), ("sort_key", "mtu"), ("sort_dir", "desc")]).unwrap();
        assert_eq!(ids(&page), ["id4", "id3"]);
        let links = page.links.unwrap();
        assert_eq!(links[0]["rel"], "next");
        assert!(links[0]["href"].as_str().unwrap().contains("marker=id3"));
        let page = run(&[
            ("limit", "2"),
            ("sort_key", "mtu"),
            ("sort_dir", "desc"),
            ("marker", "id3"),
        ])
        .unwrap();
        assert_eq!(ids(&page), ["id2", "id1"]);
        let page = run(&[("limit", "2"), ("marker", "id3"), ("page_reverse", "True")]).unwrap();
        assert_eq!(ids(&page), ["id1", "id2"]);
        let page = run(&[("limit", "2"), ("marker", "id3")]).unwrap();
        assert_eq!(ids(&page), ["id4"]);
        let links = page.links.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "previous");
    }

    #[test]
    fn fields_project() {
        let page = run(&[("fields", "id"), ("fields", "name")]).unwrap();
        let keys: Vec<&String> = page.items[0].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn fixed_ip_filters_match_one_entry() {
        let port = json!({"fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"},
                                         {"subnet_id": "s2", "ip_address": "10.1.0.5"}]});
        let p = |q: &[(&str, &str)]| ListParams::parse(&pairs(q)).unwrap();
        assert!(matches(&port, &p(&[("fixed_ips", "ip_address=10.0.0.5")])));
        assert!(!matches(
            &port,
            &p(&[
                ("fixed_ips", "ip_address=10.0.0.5"),
                ("fixed_ips", "subnet_id=s2")
            ])
        ));
        assert!(matches(
            &port,
            &p(&[("fixed_ips", "ip_address_substr=10.1")])
        ));
    }
}
