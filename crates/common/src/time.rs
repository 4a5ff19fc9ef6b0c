//! Timestamps in the shapes OpenStack puts on the wire, and one place to read the clock.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `2026-11-25T18:51:37.123456+00:00`-free RFC 3339 with `Z`, microseconds: how rows store time.
pub fn now_rfc3339() -> String {
    to_rfc3339(now())
}

pub fn to_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Keystone's token times: `2026-11-25T18:51:37.000000Z`.
pub fn keystone_format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Nova's, Neutron's and Glance's resource times: `2026-11-25T18:51:37Z`.
pub fn seconds_format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses what [`to_rfc3339`] wrote (and any RFC 3339 time, or a naive one taken as UTC).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let t = parse("2026-11-25T18:51:37.123456Z").unwrap();
        assert_eq!(keystone_format(t), "2026-11-25T18:51:37.123456Z");
        assert_eq!(seconds_format(t), "2026-11-25T18:51:37Z");
        assert_eq!(parse(&to_rfc3339(t)), Some(t));
        assert!(parse("2026-11-25T18:51:37").is_some());
        assert!(parse("not a time").is_none());
    }
}
