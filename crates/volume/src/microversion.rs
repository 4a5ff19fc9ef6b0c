//! Cinder's microversions: the client asks with `OpenStack-API-Version: volume 3.X`; `latest`
//! means the highest served; no header means 3.0. A version outside `[MIN, MAX]` is a 406, a
//! malformed one a 400. Every response echoes the version used and says `Vary` on the header.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use nubo_common::Error;

use nubo_common::microversion::Negotiation;
pub use nubo_common::microversion::Version;

/// The lowest microversion served.
pub const MIN: Version = Version(3, 0);
/// The highest microversion served: every request and response shape up to here is
/// implemented (the README lists what each version brings and how Nubo answers it).
pub const MAX: Version = Version(3, 71);

/// How Cinder negotiates (the shared rules live in `nubo_common::microversion`).
pub const NEGOTIATION: Negotiation = Negotiation {
    service: "volume",
    legacy_header: None,
    min: MIN,
    max: MAX,
    malformed: "Invalid API version request string {}: it must be 'X.Y' or 'latest'.",
    vary: "OpenStack-API-Version",
};

/// The microversion of the request being served (an extractor; 3.0 when none was negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Microversion(pub Version);

impl Microversion {
    /// True when the request's version is at least `3.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= Version(3, minor)
    }

    pub fn base() -> Microversion {
        Microversion(MIN)
    }

    pub fn latest() -> Microversion {
        Microversion(MAX)
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
    let mut response = next.run(request).await;
    echo(&mut response, version);
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
        h.insert("openstack-api-version", "volume 3.27".parse().unwrap());
        assert_eq!(requested(&h).unwrap(), Version(3, 27));
        h.insert(
            "openstack-api-version",
            "compute 2.1, volume latest".parse().unwrap(),
        );
        assert_eq!(requested(&h).unwrap(), MAX);
        h.insert("openstack-api-version", "volume 3.99".parse().unwrap());
        assert_eq!(
            requested(&h).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        h.insert("openstack-api-version", "volume 2.0".parse().unwrap());
        assert_eq!(
            requested(&h).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        h.insert("openstack-api-version", "volume 3.x".parse().unwrap());
        assert_eq!(requested(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(Microversion(Version(3, 42)).at_least(42));
        assert!(!Microversion(Version(3, 41)).at_least(42));
    }
}
