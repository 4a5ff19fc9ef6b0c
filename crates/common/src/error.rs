//! The one public error type of every Nubo service, and how it becomes an OpenStack fault body.
//!
//! Service code returns [`Error`]: an HTTP status, a public message, an optional fault type (the
//! Neutron `type`, e.g. `IpAddressInUse`) and an optional internal context that is logged once and
//! never sent. `IntoResponse` produces the status and stashes the error in the response's
//! extensions; the [`render_faults`] layer of each service then writes the body in that service's
//! dialect ([`FaultStyle`]): Keystone's `{"error": {...}}`, Nova's and Cinder's
//! `{"itemNotFound": {...}}`, Neutron's `{"NeutronError": {...}}`, Glance's plain text.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure as a client sees it.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: StatusCode,
    pub message: String,
    /// A machine-readable fault type (Neutron's `NeutronError.type`); empty when the status says it all.
    pub kind: &'static str,
    /// Context for the log only (a SQL error, a command's stderr). Never sent to the client.
    pub internal: Option<String>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            kind: "",
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(StatusCode::CONFLICT, message)
    }

    pub fn over_limit(message: impl Into<String>) -> Error {
        Error::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Error {
        Error::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    pub fn method_not_allowed() -> Error {
        Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method is not allowed for the requested URL.",
        )
    }

    /// A server-side failure: the client gets a generic message, the log gets `context`.
    pub fn internal(context: impl std::fmt::Display) -> Error {
        Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "An unexpected error prevented the server from fulfilling your request."
                .into(),
            kind: "",
            internal: Some(context.to_string()),
        }
    }

    /// Sets the machine-readable fault type (Neutron's `type`).
    pub fn with_kind(mut self, kind: &'static str) -> Error {
        self.kind = kind;
        self
    }

    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Error {
        Error::internal(format!("database: {err}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::internal(format!("io: {err}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            tracing::error!(status = self.status.as_u16(), internal = %internal, "request failed");
        }
        let mut response = Response::new(Body::from(default_body(&self)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(self);
        response
    }
}

/// Which OpenStack service's fault dialect a router speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStyle {
    Keystone,
    /// Nova and Cinder share one shape.
    Nova,
    Neutron,
    Glance,
}

/// Middleware: rewrites the body of every error response produced from an [`Error`] into `style`.
pub async fn render_faults(style: FaultStyle, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<Error>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let (content_type, body) = fault_body(style, &error);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn default_body(error: &Error) -> String {
    fault_body(FaultStyle::Keystone, error).1
}

/// The body of a fault in a service's dialect.
pub fn fault_body(style: FaultStyle, error: &Error) -> (&'static str, String) {
    let code = error.status.as_u16();
    let title = error.status.canonical_reason().unwrap_or("Error");
    match style {
        FaultStyle::Keystone => (
            "application/json",
            json!({"error": {"code": code, "message": error.message, "title": title}}).to_string(),
        ),
        FaultStyle::Nova => {
            let key = match code {
                400 => "badRequest",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "itemNotFound",
                405 => "badMethod",
                409 => "conflictingRequest",
                413 => "overLimit",
                415 => "badMediaType",
                429 => "overLimit",
                501 => "notImplemented",
                503 => "serviceUnavailable",
                _ => "computeFault",
            };
            (
                "application/json",
                json!({key: {"code": code, "message": error.message}}).to_string(),
            )
        }
        FaultStyle::Neutron => {
            let kind = if error.kind.is_empty() {
                neutron_default_kind(code)
            } else {
                error.kind
            };
            (
                "application/json",
                json!({"NeutronError": {"type": kind, "message": error.message, "detail": ""}})
                    .to_string(),
            )
        }
        FaultStyle::Glance => (
            "text/plain; charset=UTF-8",
            format!("{code} {title}\n\n{}\n\n   ", error.message),
        ),
    }
}

fn neutron_default_kind(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "NotAuthorized",
        403 => "PolicyNotAuthorized",
        404 => "NotFound",
        409 => "Conflict",
        413 => "OverQuota",
        _ => "InternalError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_fault_has_code_message_title() {
        let (_, body) = fault_body(
            FaultStyle::Keystone,
            &Error::not_found("Could not find user: x."),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["title"], "Not Found");
        assert_eq!(v["error"]["message"], "Could not find user: x.");
    }

    #[test]
    fn nova_fault_key_depends_on_status() {
        let (_, body) = fault_body(FaultStyle::Nova, &Error::conflict("busy"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["conflictingRequest"]["code"], 409);
    }

    #[test]
    fn neutron_fault_uses_kind_when_set() {
        let err = Error::conflict("in use").with_kind("IpAddressInUse");
        let (_, body) = fault_body(FaultStyle::Neutron, &err);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["NeutronError"]["type"], "IpAddressInUse");
    }

    #[test]
    fn internal_errors_hide_their_context() {
        let err = Error::internal("database: disk I/O error at /secret/path");
        let (_, body) = fault_body(FaultStyle::Keystone, &err);
        assert!(!body.contains("/secret/path"));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
