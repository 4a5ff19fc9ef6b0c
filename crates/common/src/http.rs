//! HTTP plumbing shared by every service: the request-id and tracing middleware, per-route
//! metrics rendered for Prometheus, `/healthz`, and a JSON body extractor that answers malformed
//! JSON with a 400 in the service's dialect (axum's own would answer 415/422).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::Error;

/// The request id of the current request (`req-<uuid>`), as handlers may want it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Outermost middleware: gives each request an id, a tracing span carrying it, echoes it in
/// `x-openstack-request-id`, and logs one line per request.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %path,
        user_id = tracing::field::Empty,
    );
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request done");
        } else {
            tracing::debug!(status, elapsed_ms, "request done");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct RouteStats {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request counts and latencies per (method, route, status).
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String, u16), RouteStats>>,
}

pub type SharedMetrics = Arc<Metrics>;

impl Metrics {
    pub fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let mut routes = self.routes.lock();
        let stats = routes
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        stats.count += 1;
        stats.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let routes = self.routes.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP nubo_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE nubo_http_requests_total counter\n");
        for ((method, route, status), stats) in routes.iter() {
            out.push_str(&format!(
                "nubo_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}\n",
                stats.count
            ));
        }
        out.push_str("# HELP nubo_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE nubo_http_request_duration_seconds histogram\n");
        for ((method, route, status), stats) in routes.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "nubo_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}\n",
                    stats.buckets[i]
                ));
            }
            out.push_str(&format!(
                "nubo_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n",
                stats.count
            ));
            out.push_str(&format!(
                "nubo_http_request_duration_seconds_sum{{{labels}}} {}\n",
                stats.sum_seconds
            ));
            out.push_str(&format!(
                "nubo_http_request_duration_seconds_count{{{labels}}} {}\n",
                stats.count
            ));
        }
        out
    }
}

/// Route-level middleware (install with `Router::route_layer`): records the matched route's
/// count and latency.
pub async fn record_metrics(
    State(metrics): State<SharedMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn metrics_handler(State(metrics): State<SharedMetrics>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// A JSON request body. Malformed JSON, or JSON of the wrong shape, is a 400 with serde's reason;
/// the content type is not checked (clients are inconsistent about it, and so is OpenStack).
pub struct JsonBody<T>(pub T);

/// The largest JSON body any API accepts.
pub const MAX_JSON_BODY: usize = 1 << 20;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| Error::bad_request(format!("Could not read the request body: {e}")))?;
        if bytes.len() > MAX_JSON_BODY {
            return Err(Error::over_limit("Request is too large."));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, mapping failure to a 400 that says why.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Error::bad_request(format!("Malformed request body: {e}"))
        } else {
            Error::bad_request(format!("Invalid input for request body: {e}"))
        }
    })
}

/// The base URL a request was addressed to (`http://host:port`), from its `Host` header, so that
/// links point back where the client came from; falls back to `default`.
pub fn request_base_url(headers: &http::HeaderMap, default: &str) -> String {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    match headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        Some(host) => format!("{}://{host}", forwarded_proto.unwrap_or("http")),
        None => default.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_counts_and_buckets() {
        let metrics = Metrics::default();
        metrics.record(&Method::GET, "/identity/v3/users", 200, 0.002);
        metrics.record(&Method::GET, "/identity/v3/users", 200, 0.2);
        let text = metrics.render();
        assert!(text.contains(
            "nubo_http_requests_total{method=\"GET\",route=\"/identity/v3/users\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.0025\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }

    #[test]
    fn malformed_json_is_a_400() {
        let err = parse_json::<serde_json::Value>(b"{not json").unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Shape {
            name: String,
        }
        let err = parse_json::<Shape>(b"{\"name\": 5}").unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    }
}
