//! `GET /v2/images`: the query parameters Glance accepts (filters with the `in:`/`eq:`/`gt:`...
//! operators, `tag`, `member_status`, `visibility`, `os_hidden`, both sorting syntaxes,
//! `limit`/`marker`), applied to the images the caller may see.
//!
//! The tenancy scope is applied in SQL; filtering, sorting and paging run here over that set.

use std::cmp::Ordering;

use nubo_common::{Caller, Error, Result};

use crate::service::{require_reader, ImageService};
use crate::store;
use crate::store::images::{ImageRow, ListScope};
use crate::types::Visibility;

const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

/// A parsed listing request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub sort: Vec<(String, bool)>,
    pub member_status: String,
    pub visibility: Option<String>,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    /// Other filters, as given.
    pub filters: Vec<(String, String)>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub images: Vec<ImageRow>,
    /// The marker of the next page, when this page is full.
    pub next_marker: Option<String>,
}

impl ListQuery {
    /// Parses the query string pairs of `GET /v2/images`.
    pub fn parse(params: &[(String, String)]) -> Result<ListQuery> {
        let mut query = ListQuery {
            member_status: "accepted".into(),
            ..ListQuery::default()
        };
        let mut sort_new: Option<String> = None;
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "limit" => {
                    let limit: i64 = value
                        .trim()
                        .parse()
                        .map_err(|_| Error::bad_request("limit param must be an integer"))?;
                    if limit < 0 {
                        return Err(Error::bad_request("limit param must be positive"));
                    }
                    query.limit = Some(limit as usize);
                }
                "marker" => query.marker = Some(value.clone()),
                "member_status" => {
                    if !["pending", "accepted", "rejected", "all"].contains(&value.as_str()) {
                        return Err(Error::bad_request(format!("Invalid status: {value}")));
                    }
                    query.member_status = value.clone();
                }
                "tag" => query.tags.push(value.trim().to_string()),
                "sort" => sort_new = Some(value.clone()),
                "sort_key" => sort_keys.push(check_sort_key(value.trim())?),
                "sort_dir" => sort_dirs.push(check_sort_dir(value.trim())?),
                "visibility" => {
                    if !["community", "public", "private", "shared", "all"]
                        .contains(&value.as_str())
                    {
                        return Err(Error::bad_request(format!(
                            "Invalid visibility value: {value}"
                        )));
                    }
                    query.visibility = Some(value.clone());
                }
                "os_hidden" => {
                    query.os_hidden = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(Error::bad_request(format!(
                                "Invalid value '{value}' for 'os_hidden' filter. Valid values are 'true' or 'false'."
                            )))
                        }
                    }
                }
                "protected" => {
                    if value != "true" && value != "false" {
                        return Err(Error::bad_request(format!(
                            "Invalid value '{value}' for 'protected' filter. Valid values are 'true' or 'false'."
                        )));
                    }
                    query.filters.push((key.clone(), value.clone()));
                }
                "changes-since" => {
                    return Err(Error::bad_request(
                        "The \"changes-since\" filter is no longer available on v2.",
                    ))
                }
                _ => query.filters.push((key.clone(), value.clone())),
            }
        }
        if let Some(sort) = sort_new {
            if !sort_keys.is_empty() || !sort_dirs.is_empty() {
                return Err(Error::bad_request(
                    "Old and new sorting syntax cannot be combined",
                ));
            }
            for part in sort.trim().split(',') {
                let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
                let dir = if dir.trim().is_empty() { "desc" } else { dir };
                query
                    .sort
                    .push((check_sort_key(key.trim())?, check_sort_dir(dir.trim())?));
            }
        } else {
            if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
                return Err(Error::bad_request(
                    "Number of sort dirs does not match the number of sort keys",
                ));
            }
            if sort_keys.is_empty() {
                sort_keys.push("created_at".into());
            }
            let default = sort_dirs.first().copied().unwrap_or(true);
            for (i, key) in sort_keys.into_iter().enumerate() {
                let desc = if sort_dirs.len() > 1 {
                    sort_dirs[i]
                } else {
                    default
                };
                query.sort.push((key, desc));
            }
        }
        // Ties are broken by created_at then id, in the first direction.
        let tie_desc = query.sort.first().map(|s| s.1).unwrap_or(true);
        for key in ["created_at", "id"] {
            if !query.sort.iter().any(|(k, _)| k == key) {
                query.sort.push((key.to_string(), tie_desc));
            }
        }
        for (key, value) in &query.filters {
            check_filter(key, value)?;
        }
        Ok(query)
    }
}

fn check_sort_key(key: &str) -> Result<String> {
    if SORT_KEYS.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(Error::bad_request(format!(
            "Invalid sort key: {key}. It must be one of the following: {}.",
            SORT_KEYS.join(", ")
        )))
    }
}

/// True for descending.
fn check_sort_dir(dir: &str) -> Result<bool> {
    match dir {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(Error::bad_request(format!("Invalid sort direction: {dir}"))),
    }
}

/// Glance's `split_filter_op`: `in:a,b` -> ("in", "a,b"); a bare value (or an ISO time) is `eq`.
fn split_op(value: &str) -> (&str, &str) {
    match value.split_once(':') {
        Some(_) if nubo_common::time::parse(value).is_some() => ("eq", value),
        Some((op, rest)) => (op, rest),
        None => ("eq", value),
    }
}

/// Glance's `split_filter_value_for_quotes`: a comma-separated list where `"..."` may hold commas.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

const OP_FIELDS: &[&str] = &["name", "id", "status", "container_format", "disk_format"];
const TIME_FIELDS: &[&str] = &["created_at", "updated_at"];
const NUMERIC_FIELDS: &[&str] = &["size", "virtual_size", "min_ram", "min_disk"];

fn check_filter(key: &str, value: &str) -> Result<()> {
    if let Some(field) = key
        .strip_suffix("_min")
        .or_else(|| key.strip_suffix("_max"))
    {
        if NUMERIC_FIELDS.contains(&field) || !field.is_empty() {
            value.trim().parse::<i64>().map_err(|_| {
                Error::bad_request("Unable to filter on a range with a non-numeric value.")
            })?;
        }
        return Ok(());
    }
    if OP_FIELDS.contains(&key) {
        let (op, _) = split_op(value);
        if op != "in" && op != "eq" {
            return Err(Error::bad_request(format!(
                "Unable to filter by unknown operator '{op}'."
            )));
        }
    }
    if TIME_FIELDS.contains(&key) {
        let (op, time) = split_op(value);
        if !["gt", "gte", "lt", "lte", "eq", "neq"].contains(&op) {
            return Err(Error::bad_request(format!(
                "Unable to filter by unknown operator '{op}'."
            )));
        }
        if nubo_common::time::parse(time).is_none() {
            return Err(Error::bad_request(format!(
                "Bad \"{key}\" query filter format. Use ISO 8601 DateTime notation."
            )));
        }
    }
    Ok(())
}

/// The value of a column or property as text, for equality filters.
fn field(image: &ImageRow, key: &str) -> Option<String> {
    Some(match key {
        "id" => image.id.to_string(),
        "name" => image.name.clone()?,
        "status" => image.status.as_str().to_string(),
        "visibility" => image.visibility.as_str().to_string(),
        "owner" => image.owner.clone()?,
        "disk_format" => image.disk_format.clone()?,
        "container_format" => image.container_format.clone()?,
        "size" => image.size?.to_string(),
        "virtual_size" => image.virtual_size?.to_string(),
        "checksum" => image.checksum.clone()?,
        "os_hash_algo" => image.os_hash_algo.clone()?,
        "os_hash_value" => image.os_hash_value.clone()?,
        "min_disk" => image.min_disk.to_string(),
        "min_ram" => image.min_ram.to_string(),
        "protected" => image.protected.to_string(),
        "created_at" => image.created_at.clone(),
        "updated_at" => image.updated_at.clone(),
        other => image.properties.get(other)?.clone(),
    })
}

fn numeric(image: &ImageRow, key: &str) -> Option<i64> {
    match key {
        "size" => image.size,
        "virtual_size" => image.virtual_size,
        "min_ram" => Some(image.min_ram),
        "min_disk" => Some(image.min_disk),
        _ => None,
    }
}

fn matches(image: &ImageRow, key: &str, value: &str) -> bool {
    if let Some(field_name) = key.strip_suffix("_min") {
        let bound: i64 = value.trim().parse().unwrap_or(i64::MIN);
        return numeric(image, field_name).is_some_and(|n| n >= bound);
    }
    if let Some(field_name) = key.strip_suffix("_max") {
        let bound: i64 = value.trim().parse().unwrap_or(i64::MAX);
        return numeric(image, field_name).is_some_and(|n| n <= bound);
    }
    if TIME_FIELDS.contains(&key) {
        let (op, time) = split_op(value);
        let (Some(threshold), Some(actual)) = (
            nubo_common::time::parse(time),
            field(image, key).and_then(|t| nubo_common::time::parse(&t)),
        ) else {
            return false;
        };
        // Glance stores seconds; compare at that precision.
        let actual = actual.timestamp();
        let threshold = threshold.timestamp();
        return match op {
            "gt" => actual > threshold,
            "gte" => actual >= threshold,
            "lt" => actual < threshold,
            "lte" => actual <= threshold,
            "neq" => actual != threshold,
            _ => actual == threshold,
        };
    }
    let actual = field(image, key);
    if OP_FIELDS.contains(&key) {
        let (op, operand) = split_op(value);
        return match op {
            "in" => actual.is_some_and(|a| split_list(operand).contains(&a)),
            _ => actual.as_deref() == Some(operand),
        };
    }
    actual.as_deref() == Some(value)
}

fn compare(a: &ImageRow, b: &ImageRow, key: &str) -> Ordering {
    match key {
        "size" => a.size.cmp(&b.size),
        "created_at" | "updated_at" => {
            let t = |i: &ImageRow| field(i, key).and_then(|t| nubo_common::time::parse(&t));
            t(a).cmp(&t(b))
        }
        _ => field(a, key).cmp(&field(b, key)),
    }
}

impl ImageService {
    /// The images `caller` may list that match `query`, one page.
    pub async fn list_images(&self, caller: &Caller, query: &ListQuery) -> Result<Page> {
        require_reader(caller)?;
        let project = caller.project_id().map(str::to_string);
        let scope = if caller.is_admin() {
            ListScope::All
        } else if let Some(project_id) = project.clone() {
            ListScope::Project {
                project_id,
                member_status: (query.member_status != "all").then(|| query.member_status.clone()),
            }
        } else {
            ListScope::PublicOnly
        };
        let mut images = store::images::list(&self.db, &scope).await?;
        images.retain(|image| {
            let visible = match query.visibility.as_deref() {
                Some("all") => true,
                Some(v) => image.visibility.as_str() == v,
                // Community images are listed by default only for their owner.
                None => {
                    image.visibility != Visibility::Community
                        || (project.is_some() && image.owner == project)
                }
            };
            visible
                && image.os_hidden == query.os_hidden
                && query.tags.iter().all(|t| image.tags.contains(t))
                && query
                    .filters
                    .iter()
                    .all(|(key, value)| matches(image, key, value))
        });
        images.sort_by(|a, b| {
            for (key, desc) in &query.sort {
                let order = compare(a, b, key);
                if order != Ordering::Equal {
                    return if *desc { order.reverse() } else { order };
                }
            }
            Ordering::Equal
        });
        if let Some(marker) = &query.marker {
            // The marker must be an image the caller can see (Glance answers 400 otherwise).
            let visible_marker = match store::images::get(&self.db, marker).await? {
                Some(image) => self.can_see(caller, &image).await?,
                None => false,
            };
            if !visible_marker {
                return Err(Error::bad_request(format!(
                    "No image found with ID {marker}"
                )));
            }
            match images.iter().position(|i| i.id.as_str() == marker) {
                Some(at) => {
                    images.drain(..=at);
                }
                None => {
                    // The marker is filtered out: start after where it would sort.
                    let marker_row = store::images::get(&self.db, marker).await?;
                    if let Some(m) = marker_row {
                        images.retain(|i| {
                            for (key, desc) in &query.sort {
                                let order = compare(i, &m, key);
                                if order != Ordering::Equal {
                                    let order = if *desc { order.reverse() } else { order };
                                    return order == Ordering::Greater;
                                }
                            }
                            false
                        });
                    }
                }
            }
        }
        let limit = query
            .limit
            .unwrap_or(self.settings.default_page)
            .min(self.settings.max_page);
        let full = images.len() >= limit && limit > 0;
        images.truncate(limit);
        let next_marker = if full && !images.is_empty() {
            images.last().map(|i| i.id.to_string())
        } else {
            None
        };
        Ok(Page {
            images,
            next_marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery> {
        ListQuery::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn sorting_syntaxes() {
        let query = q(&[("sort", "size:desc,name")]).unwrap();
        assert_eq!(query.sort[0], ("size".to_string(), true));
        assert_eq!(query.sort[1], ("name".to_string(), true));
        let query = q(&[("sort_key", "name"), ("sort_dir", "asc")]).unwrap();
        assert_eq!(query.sort[0], ("name".to_string(), false));
        assert_eq!(query.sort[1], ("created_at".to_string(), false));
        let query = q(&[]).unwrap();
        assert_eq!(query.sort[0], ("created_at".to_string(), true));
        assert!(q(&[("sort", "size"), ("sort_key", "name")]).is_err());
        assert!(q(&[("sort_key", "bogus")]).is_err());
        assert!(q(&[("sort_dir", "up")]).is_err());
    }

    #[test]
    fn filter_checks() {
        assert!(q(&[("limit", "x")]).is_err());
        assert!(q(&[("limit", "-1")]).is_err());
        assert!(q(&[("size_min", "big")]).is_err());
        assert!(q(&[("name", "foo:bar")]).is_err());
        assert!(q(&[("name", "in:a,\"b,c\"")]).is_ok());
        assert!(q(&[("created_at", "gt:2020-01-01T00:00:00Z")]).is_ok());
        assert!(q(&[("created_at", "gt:yesterday")]).is_err());
        assert!(q(&[("visibility", "everyone")]).is_err());
        assert!(q(&[("member_status", "maybe")]).is_err());
        assert!(q(&[("changes-since", "2020-01-01")]).is_err());
        assert_eq!(split_list("a,\"b,c\",d"), vec!["a", "b,c", "d"]);
    }
}
