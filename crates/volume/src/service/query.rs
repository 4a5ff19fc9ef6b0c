//! Cinder's list parameters: `limit`, `offset`, `marker`, `sort=key[:dir],...` (or the older
//! `sort_key`/`sort_dir`), `with_count` (3.45), `all_tenants`/`project_id` (admins), and
//! filters: exact matches, `metadata={'k': 'v'}` (a Python dict, as clients send it),
//! `key~=value` "like" filters (3.34) and `created_at=gt:TIME` comparisons (3.60). Lists are
//! sorted and paged in memory: a project's volumes are few, and every filter is exact.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use nubo_common::{Error, Result};
use serde_json::{json, Value};

/// The most a page holds (Cinder's `osapi_max_limit`).
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub offset: usize,
    pub marker: Option<String>,
    /// (key, descending)
    pub sort: Vec<(String, bool)>,
    pub all_tenants: bool,
    pub project_id: Option<String>,
    pub with_count: bool,
    /// Everything else, in order.
    pub filters: Vec<(String, String)>,
    /// The raw pairs, to rebuild `next` links.
    pub raw: Vec<(String, String)>,
}

fn bad(what: &str, value: &str) -> Error {
    Error::bad_request(format!(
        "Invalid input received: {what} {value:?} is invalid."
    ))
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
        _ => None,
    }
}

impl ListParams {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListParams> {
        let mut p = ListParams {
            raw: pairs.to_vec(),
            ..ListParams::default()
        };
        let mut sort_keys: Vec<String> = Vec::new();
        let mut sort_dirs: Vec<String> = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => {
                    let n: i64 = v.trim().parse().map_err(|_| bad("limit", v))?;
                    if n < 0 {
                        return Err(bad("limit", v));
                    }
                    p.limit = Some(n as usize);
                }
                "offset" => {
                    let n: i64 = v.trim().parse().map_err(|_| bad("offset", v))?;
                    if n < 0 {
                        return Err(bad("offset", v));
                    }
                    p.offset = n as usize;
                }
                "marker" => p.marker = Some(v.clone()),
                "sort" => {
                    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
                        sort_keys.push(key.trim().to_string());
                        sort_dirs.push(dir.trim().to_string());
                    }
                }
                "sort_key" => sort_keys.extend(v.split(',').map(|s| s.trim().to_string())),
                "sort_dir" => sort_dirs.extend(v.split(',').map(|s| s.trim().to_string())),
                "all_tenants" => p.all_tenants = parse_bool(v).unwrap_or(true),
                "project_id" => p.project_id = Some(v.clone()),
                "with_count" => p.with_count = parse_bool(v).unwrap_or(false),
                _ => p.filters.push((k.clone(), v.clone())),
            }
        }
        for (i, key) in sort_keys.iter().enumerate() {
            if key.is_empty() {
                return Err(bad("sort key", key));
            }
            let dir = sort_dirs
                .get(i)
                .or(sort_dirs.last())
                .map(String::as_str)
                .unwrap_or("desc")
                .to_ascii_lowercase();
            let desc = match dir.as_str() {
                "asc" => false,
                "desc" => true,
                _ => return Err(bad("sort direction", &dir)),
            };
            p.sort.push((key.clone(), desc));
        }
        Ok(p)
    }

    /// Takes a filter out (the last value given).
    pub fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.filters.retain(|(k, v)| {
            if k == key {
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        found
    }
}

/// A `metadata` filter value: `{'k': 'v'}` (Python) or `{"k": "v"}` (JSON).
pub fn parse_dict(text: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .ok()?;
    let map = v.as_object()?;
    Some(
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
    )
}

/// Compares a field against a filter value: exact, `~` like (substring), or `op:value` for
/// times (`gt`, `gte`, `lt`, `lte`, `eq`, `neq`).
pub fn matches(field: &str, value: &str, like: bool, time: bool) -> bool {
    if like {
        return field.to_lowercase().contains(&value.to_lowercase());
    }
    if time {
        let (op, when) = match value.split_once(':') {
            Some((op, rest)) if ["gt", "gte", "lt", "lte", "eq", "neq"].contains(&op) => (op, rest),
            _ => ("eq", value),
        };
        let (Some(a), Some(b)) = (
            nubo_common::time::parse(field),
            nubo_common::time::parse(when),
        ) else {
            return false;
        };
        return match op {
            "gt" => a > b,
            "gte" => a >= b,
            "lt" => a < b,
            "lte" => a <= b,
            "neq" => a != b,
            _ => a == b,
        };
    }
    field == value
}

/// Sorts `rows` by `keys` (default `created_at desc, id desc`) through `field`, which renders
/// a row's sortable value (numbers zero-padded). Keys outside `allowed` are a 400.
pub fn sort<T>(
    rows: &mut [T],
    keys: &[(String, bool)],
    allowed: &[&str],
    field: impl Fn(&T, &str) -> String,
) -> Result<()> {
    let mut keys: Vec<(String, bool)> = keys.to_vec();
    for (k, _) in &keys {
        if !allowed.contains(&k.as_str()) {
            return Err(Error::bad_request(format!(
                "Invalid input received: sort key {k} is invalid."
            )));
        }
    }
    if keys.is_empty() {
        keys.push(("created_at".into(), true));
    }
    if !keys.iter().any(|(k, _)| k == "id") {
        let desc = keys.last().map(|k| k.1).unwrap_or(true);
        keys.push(("id".into(), desc));
    }
    rows.sort_by(|a, b| {
        for (k, desc) in &keys {
            let ord = field(a, k).cmp(&field(b, k));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    Ok(())
}

/// A page of a sorted list, and whether a next page may exist.
pub struct Page<T> {
    pub items: Vec<T>,
    pub count: usize,
    pub more: bool,
}

/// Applies marker, offset and limit to a sorted list; `id` gives each row's id.
pub fn page<T>(
    mut rows: Vec<T>,
    p: &ListParams,
    id: impl Fn(&T) -> &str,
    not_found: impl Fn(&str) -> Error,
) -> Result<Page<T>> {
    let count = rows.len();
    if let Some(marker) = &p.marker {
        let at = rows
            .iter()
            .position(|r| id(r) == marker)
            .ok_or_else(|| not_found(marker))?;
        rows.drain(..=at);
    }
    if p.offset > 0 {
        let n = p.offset.min(rows.len());
        rows.drain(..n);
    }
    let limit = p.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let more = rows.len() >= limit && (p.limit.is_some() || rows.len() > limit);
    rows.truncate(limit);
    Ok(Page {
        items: rows,
        count,
        more,
    })
}

/// `[{"href": ..., "rel": "next"}]` when a next page may exist: the request's URL with the
/// marker of the last item.
pub fn next_links(url: &str, p: &ListParams, last_id: Option<&str>, more: bool) -> Option<Value> {
    if !more {
        return None;
    }
    let last = last_id?;
    let mut pairs: Vec<(String, String)> = p
        .raw
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    pairs.push(("marker".into(), last.to_string()));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    Some(json!([{"href": format!("{url}?{}", query.join("&")), "rel": "next"}]))
}

/// Percent-encodes a query component.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_sort_and_paging() {
        let p = ListParams::parse(&pairs(&[
            ("sort", "name:asc,size"),
            ("limit", "2"),
            ("status", "available"),
        ]))
        .unwrap();
        assert_eq!(p.sort, vec![("name".into(), false), ("size".into(), true)]);
        assert_eq!(p.limit, Some(2));
        assert_eq!(p.filters, pairs(&[("status", "available")]));
        let p = ListParams::parse(&pairs(&[("sort_key", "id"), ("sort_dir", "asc")])).unwrap();
        assert_eq!(p.sort, vec![("id".into(), false)]);
        assert!(ListParams::parse(&pairs(&[("limit", "x")])).is_err());
        assert!(ListParams::parse(&pairs(&[("limit", "-1")])).is_err());
        assert!(ListParams::parse(&pairs(&[("sort", "id:sideways")])).is_err());
    }

    #[test]
    fn dicts_and_comparisons() {
        let d = parse_dict("{'Type': 'work'}").unwrap();
        assert_eq!(d.get("Type").map(String::as_str), Some("work"));
        assert!(matches("vol-abc", "ab", true, false));
        assert!(matches(
            "2026-01-02T00:00:00Z",
            "gt:2026-01-01T00:00:00",
            false,
            true
        ));
        assert!(!matches(
            "2026-01-02T00:00:00Z",
            "lt:2026-01-01T00:00:00",
            false,
            true
        ));
    }

    #[test]
    fn pages_with_marker_and_links() {
        let rows: Vec<String> = (1..=5).map(|i| format!("id{i}")).collect();
        let p = ListParams::parse(&pairs(&[("limit", "2"), ("marker", "id1")])).unwrap();
        let page = page(
            rows,
            &p,
            |r| r.as_str(),
            |m| Error::not_found(m.to_string()),
        )
        .unwrap();
        assert_eq!(page.items, vec!["id2".to_string(), "id3".to_string()]);
        assert!(page.more);
        let links = next_links("http://h/x", &p, Some("id3"), page.more).unwrap();
        assert_eq!(links[0]["href"], "http://h/x?limit=2&marker=id3");
    }
}
