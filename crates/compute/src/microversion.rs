//! Nova's microversions: the client asks with `OpenStack-API-Version: compute 2.X` (or the
//! legacy `X-OpenStack-Nova-API-Version: 2.X`), `latest` means the highest we serve, no header
//! means 2.1. Versions outside `[MIN, MAX]` are a 406; malformed ones a 400. Every response
//! echoes the version used in both headers and says `Vary` on them.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::HeaderValue;
use nubo_common::Error;

use nubo_common::microversion::Negotiation;
pub use nubo_common::microversion::Version;

/// The lowest microversion served.
pub const MIN: Version = Version(2, 1);
/// The highest microversion served: every response shape up to here is implemented and checked
/// against Tempest's schemas.
pub const MAX: Version = Version(2, 96);

/// How Nova negotiates (the shared rules live in `nubo_common::microversion`).
pub const NEGOTIATION: Negotiation = Negotiation {
    service: "compute",
    legacy_header: Some("x-openstack-nova-api-version"),
    min: MIN,
    max: MAX,
    malformed: "Invalid format for API version: {}. Expected 'X.Y'",
    vary: "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
};

/// The microversion of the request being served (an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Microversion(pub Version);

impl Microversion {
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= Version(2, minor)
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
    NEGOTIATION.requested(headers)
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
    NEGOTIATION.echo(response, version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

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
