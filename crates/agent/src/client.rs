//! How an agent talks to the API: the [`ControlPlane`] trait, and its HTTP implementation on
//! the internal agent API (`/internal/v1`, `Authorization: Bearer <agent secret>`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use nubo_compute::agent_api::{
    ConfigDriveContent, DesiredHost, HostRegistered, HostRegistration, ObservedHost, RequestAnswer,
    BEARER,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The API as an agent sees it. Errors are strings with the status (`"404 ..."`).
#[async_trait::async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    async fn register(&self, host: &str, reg: &HostRegistration) -> Result<HostRegistered, String>;
    /// Long-polls the desired state: answers once its generation passes `after`, or after `wait`.
    async fn desired(&self, host: &str, after: i64, wait: Duration) -> Result<DesiredHost, String>;
    async fn observe(&self, host: &str, report: &ObservedHost) -> Result<(), String>;
    async fn answer(&self, request: &str, answer: &RequestAnswer) -> Result<(), String>;
    async fn config_drive(&self, server: &str) -> Result<ConfigDriveContent, String>;
}

/// The internal agent API over HTTP/1.1 (plain HTTP; put TLS in front for remote hosts).
pub struct HttpControlPlane {
    /// `host:port`.
    authority: String,
    /// Path prefix, e.g. `/internal/v1`.
    prefix: String,
    secret: String,
}

impl HttpControlPlane {
    /// `api_url` like `http://127.0.0.1:8080`.
    pub fn new(api_url: &str, secret: &str) -> Result<HttpControlPlane, String> {
        let rest = api_url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{api_url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a.to_string(), format!("/{}", p.trim_end_matches('/'))),
            None => (rest.to_string(), String::new()),
        };
        let prefix = format!("{}/internal/v1", path.trim_end_matches('/'));
        Ok(HttpControlPlane {
            authority,
            prefix,
            secret: secret.to_string(),
        })
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Option<T>, String> {
        let work = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("connect {}: {e}", self.authority))?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let request = http::Request::builder()
                .method(method)
                .uri(format!("{}{}", self.prefix, path))
                .header(http::header::HOST, &self.authority)
                .header(
                    http::header::AUTHORIZATION,
                    format!("{BEARER}{}", self.secret),
                )
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "{} {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&bytes)
                ));
            }
            if bytes.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("bad answer: {e}"))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    fn json<T: Serialize>(value: &T) -> Option<Vec<u8>> {
        serde_json::to_vec(value).ok()
    }
}

#[async_trait::async_trait]
impl ControlPlane for HttpControlPlane {
    async fn register(&self, host: &str, reg: &HostRegistration) -> Result<HostRegistered, String> {
        self.call(
            http::Method::PUT,
            &format!("/hosts/{host}"),
            Self::json(reg),
            Duration::from_secs(10),
        )
        .await?
        .ok_or_else(|| "empty answer".to_string())
    }

    async fn desired(&self, host: &str, after: i64, wait: Duration) -> Result<DesiredHost, String> {
        self.call(
            http::Method::GET,
            &format!(
                "/hosts/{host}/desired?after={after}&wait={}",
                wait.as_secs()
            ),
            None,
            wait + Duration::from_secs(15),
        )
        .await?
        .ok_or_else(|| "empty answer".to_string())
    }

    async fn observe(&self, host: &str, report: &ObservedHost) -> Result<(), String> {
        self.call::<serde_json::Value>(
            http::Method::POST,
            &format!("/hosts/{host}/observed"),
            Self::json(report),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    async fn answer(&self, request: &str, answer: &RequestAnswer) -> Result<(), String> {
        self.call::<serde_json::Value>(
            http::Method::POST,
            &format!("/requests/{request}"),
            Self::json(answer),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    async fn config_drive(&self, server: &str) -> Result<ConfigDriveContent, String> {
        self.call(
            http::Method::GET,
            &format!("/servers/{server}/config-drive"),
            None,
            Duration::from_secs(10),
        )
        .await?
        .ok_or_else(|| "empty answer".to_string())
    }
}
