//! Nova's microversions: the client asks with `OpenStack-API-Version: compute 2.X` (or the
//! legacy `X-OpenStack-Nova-API-Version: 2.X`), `latest` means the highest we serve, no header
//! means 2.1. Versions outside `[MIN, MAX]` are a 406; malformed ones a 400. Every response
//! echoes the version used in both headers and says `Vary` on them.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use nubo_common::Error;

/// The lowest microversion served.
pub const MIN: Version = Version(2, 1);
/// The highest microversion served: every response shape up to here is implemented and checked
/// against Tempest's schemas.
pub const MAX: Version = Version(2, 96);

/// A microversion `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32);

impl Version {
    /// True when the request's version is at least `2.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self >= Version(2, minor)
    }

    pub fn parse(text: &str) -> Result<Version, Error> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Ok(MAX);
        }
        let bad = || {
            Error::bad_request(format!(
                "Invalid format for API version: {text}. Expected 'X.Y'"
            ))
        };
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        Ok(Version(major, minor))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The microversion of the request being served (an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Microversion(pub Version);

impl Microversion {
    pub fn at_least(self, minor: u32) -> bool {
        self.0.at_least(minor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Microversion {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Microversion, Error> {
        Ok(parts
            .extensions
            .get::<Microversion>()
            .copied()
            .unwrap_or(Microversion(MIN)))
    }
}

/// Reads the requested version from the headers.
pub fn requested(headers: &http::HeaderMap) -> Result<Version, Error> {
    let mut asked: Option<&str> = None;
    for value in headers.get_all("openstack-api-version") {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let mut words = part.split_whitespace();
            if words.next().map(|w| w.eq_ignore_ascii_case("compute")) == Some(true) {
                asked = words.next();
            }
        }
    }
    if asked.is_none() {
        asked = headers
            .get("x-openstack-nova-api-version")
            .and_then(|v| v.to_str().ok());
    }
    match asked {
        None => Ok(MIN),
        Some(text) => {
            let version = Version::parse(text)?;
            if version < MIN || version > MAX {
                return Err(Error::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "Version {version} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."
                    ),
                ));
            }
            Ok(version)
        }
    }
}

/// Middleware: negotiates the version, hands it to handlers, echoes it on the response.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let version = match requested(request.headers()) {
        Ok(v) => v,
        Err(e) => {
            let mut response = e.into_response();
            echo(&mut response, MIN);
            return response;
        }
    };
    request.extensions_mut().insert(Microversion(version));
    let request_id = request
        .extensions()
        .get::<nubo_common::http::RequestId>()
        .map(|r| r.0.clone());
    let mut response = next.run(request).await;
    echo(&mut response, version);
    // Nova also names the request id `x-compute-request-id`.
    if let Some(v) = request_id.and_then(|r| HeaderValue::from_str(&r).ok()) {
        response.headers_mut().insert("x-compute-request-id", v);
    }
    response
}

fn echo(response: &mut Response, version: Version) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("compute {version}")) {
        headers.insert("openstack-api-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        headers.insert("x-openstack-nova-api-version", v);
    }
    headers.insert(
        http::header::VARY,
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds() {
        let mut h = http::HeaderMap::new();
        assert_eq!(requested(&h).unwrap(), MIN);
        h.insert("openstack-api-version", "compute 2.47".parse().unwrap());
        assert_eq!(requested(&h).unwrap(), Version(2, 47));
        h.insert("openstack-api-version", "compute latest".parse().unwrap());
        assert_eq!(requested(&h).unwrap(), MAX);
        h.insert("openstack-api-version", "compute 3.0".parse().unwrap());
        assert_eq!(
            requested(&h).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        h.insert("openstack-api-version", "compute 2.x".parse().unwrap());
        assert_eq!(requested(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
        let mut legacy = http::HeaderMap::new();
        legacy.insert("x-openstack-nova-api-version", "2.10".parse().unwrap());
        assert_eq!(requested(&legacy).unwrap(), Version(2, 10));
        assert!(Version(2, 10) > Version(2, 9));
    }
}
