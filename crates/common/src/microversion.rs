//! OpenStack microversion negotiation, shared by the services that have microversions (Compute
//! and Block Storage). A client asks with `OpenStack-API-Version: <service> X.Y` (several
//! services may share one header, comma-separated) or a service's legacy header; `latest` means
//! the highest served; no header means the lowest. A version outside `[min, max]` is a 406, a
//! malformed one a 400. Each service describes itself with a [`Negotiation`] and keeps its own
//! thin extractor and middleware around these functions.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::Error;

/// A microversion `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// How one service negotiates: its name in `OpenStack-API-Version`, an optional legacy header
/// carrying the bare version, the range it serves, and the wording of its 400 for a malformed
/// version (Nova's and Cinder's differ, and clients show it to users).
#[derive(Debug, Clone, Copy)]
pub struct Negotiation {
    pub service: &'static str,
    pub legacy_header: Option<&'static str>,
    pub min: Version,
    pub max: Version,
    /// The 400 message for a malformed version; `{}` stands for the text the client sent.
    pub malformed: &'static str,
    /// The value of `Vary` on every response.
    pub vary: &'static str,
}

impl Negotiation {
    /// Parses `X.Y` or `latest` (which is `max`), without checking the range.
    pub fn parse(&self, text: &str) -> Result<Version, Error> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Ok(self.max);
        }
        let bad = || Error::bad_request(self.malformed.replace("{}", text));
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        Ok(Version(major, minor))
    }

    /// The version a request asks for, checked against the range.
    pub fn requested(&self, headers: &HeaderMap) -> Result<Version, Error> {
        let mut asked: Option<&str> = None;
        for value in headers.get_all("openstack-api-version") {
            let Ok(text) = value.to_str() else { continue };
            for part in text.split(',') {
                let mut words = part.split_whitespace();
                if words.next().map(|w| w.eq_ignore_ascii_case(self.service)) == Some(true) {
                    asked = words.next();
                }
            }
        }
        if asked.is_none() {
            if let Some(legacy) = self.legacy_header {
                asked = headers.get(legacy).and_then(|v| v.to_str().ok());
            }
        }
        let Some(text) = asked else {
            return Ok(self.min);
        };
        let version = self.parse(text)?;
        if version < self.min || version > self.max {
            return Err(Error::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {version} is not supported by the API. Minimum is {} and maximum is {}.",
                    self.min, self.max
                ),
            ));
        }
        Ok(version)
    }

    /// Says on a response which version served it (both headers) and that it varies by them.
    pub fn echo(&self, response: &mut Response, version: Version) {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("{} {version}", self.service)) {
            headers.insert("openstack-api-version", v);
        }
        if let Some(legacy) = self.legacy_header {
            if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
                headers.insert(legacy, v);
            }
        }
        headers.insert(http::header::VARY, HeaderValue::from_static(self.vary));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Negotiation = Negotiation {
        service: "compute",
        legacy_header: Some("x-openstack-nova-api-version"),
        min: Version(2, 1),
        max: Version(2, 9),
        malformed: "bad version {}",
        vary: "OpenStack-API-Version",
    };

    #[test]
    fn reads_the_service_part_the_legacy_header_and_bounds() {
        let mut h = HeaderMap::new();
        assert_eq!(TEST.requested(&h).unwrap(), Version(2, 1));
        h.insert(
            "openstack-api-version",
            "volume 3.5, compute 2.4".parse().unwrap(),
        );
        assert_eq!(TEST.requested(&h).unwrap(), Version(2, 4));
        h.insert("openstack-api-version", "compute latest".parse().unwrap());
        assert_eq!(TEST.requested(&h).unwrap(), Version(2, 9));
        h.insert("openstack-api-version", "compute 2.10".parse().unwrap());
        assert_eq!(
            TEST.requested(&h).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        h.insert("openstack-api-version", "compute 2.x".parse().unwrap());
        let err = TEST.requested(&h).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.message, "bad version 2.x");
        let mut legacy = HeaderMap::new();
        legacy.insert("x-openstack-nova-api-version", "2.3".parse().unwrap());
        assert_eq!(TEST.requested(&legacy).unwrap(), Version(2, 3));
        assert!(Version(2, 10) > Version(2, 9));
    }
}
