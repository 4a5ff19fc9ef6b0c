//! A Block Storage API on a fresh SQLite file and the in-memory block store, driven through its
//! router with `oneshot` (no socket). Callers: `admin` (project `padmin`), `alice` (member of
//! `pa`), `bob` (member of `pb`), `reader` (reader of `pa`).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use nubo_blockstore::{BlockStore, MemoryStore};
use nubo_common::testing::{project_caller, StaticValidator, HANG_LIMIT};
use nubo_common::Db;
use nubo_image::{ImageService, ImageSettings};
use nubo_volume::{StreamExporter, VolumeService, VolumeSettings};
use serde_json::{json, Value};
use tower::ServiceExt;

pub struct Api {
    pub router: Router,
    pub service: Arc<VolumeService>,
    pub image: Arc<ImageService>,
    pub store: Arc<MemoryStore>,
    _dir: tempfile::TempDir,
}

pub async fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("nubo.db").display());
    let db = Db::open(&url, 8).await.expect("db");
    let store = Arc::new(MemoryStore::new());
    let shared: Arc<dyn BlockStore> = store.clone();
    let image = ImageService::new(db.clone(), shared.clone(), ImageSettings::default())
        .await
        .expect("image service");
    let service = VolumeService::new(db, VolumeSettings::for_tests(), shared, image.clone())
        .await
        .expect("volume service");
    service.set_exporter(Arc::new(StreamExporter));
    let validator = StaticValidator::new()
        .with(
            "admin",
            project_caller("admin", "padmin", &["admin", "member", "reader"]),
        )
        .with(
            "alice",
            project_caller("alice", "pa", &["member", "reader"]),
        )
        .with("bob", project_caller("bob", "pb", &["member", "reader"]))
        .with("reader", project_caller("rita", "pa", &["reader"]))
        .shared();
    let router = nubo_volume::http::router(service.clone(), validator, "http://cloud.test");
    Api {
        router,
        service,
        image,
        store,
        _dir: dir,
    }
}

/// The project of each test caller.
pub fn project_of(token: &str) -> &'static str {
    match token {
        "admin" => "padmin",
        "bob" => "pb",
        _ => "pa",
    }
}

impl Api {
    /// Sends a request at microversion `mv` (3.0 when `None`); returns the status and the JSON
    /// body (`Null` when empty).
    pub async fn raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<String>,
        mv: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cloud.test");
        if !token.is_empty() {
            req = req.header("x-auth-token", token);
        }
        if let Some(mv) = mv {
            req = req.header("openstack-api-version", format!("volume {mv}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(Body::from(body.unwrap_or_default()))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    /// A call in the caller's project URL (`/v3/{project}/...`), at 3.71.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let full = format!("/v3/{}{path}", project_of(token));
        self.raw(
            token,
            method,
            &full,
            body.map(|b| b.to_string()),
            Some("3.71"),
        )
        .await
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(token, Method::DELETE, path, None).await
    }

    /// Creates a volume and waits until it is available.
    pub async fn volume(&self, token: &str, attrs: Value) -> Value {
        let (status, body) = self.post(token, "/volumes", json!({"volume": attrs})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "create volume: {body}");
        let id = body["volume"]["id"].as_str().unwrap().to_string();
        self.wait_volume(token, &id, "available").await
    }

    /// Polls a volume until its status is `status` (panics after [`HANG_LIMIT`]).
    pub async fn wait_volume(&self, token: &str, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + HANG_LIMIT;
        while Instant::now() < deadline {
            let (code, body) = self.get(token, &format!("/volumes/{id}")).await;
            assert_eq!(code, StatusCode::OK, "show volume {id}: {body}");
            if body["volume"]["status"] == status {
                return body["volume"].clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("volume {id} never reached {status}");
    }

    pub async fn snapshot(&self, token: &str, volume: &str) -> Value {
        let (status, body) = self
            .post(
                token,
                "/snapshots",
                json!({"snapshot": {"volume_id": volume, "name": "s"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "create snapshot: {body}");
        let id = body["snapshot"]["id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + HANG_LIMIT;
        while Instant::now() < deadline {
            let (_, b) = self.get(token, &format!("/snapshots/{id}")).await;
            if b["snapshot"]["status"] == "available" {
                return b["snapshot"].clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("snapshot {id} never became available");
    }

    /// Waits until a resource is gone (404).
    pub async fn wait_gone(&self, token: &str, path: &str) {
        let deadline = Instant::now() + HANG_LIMIT;
        while Instant::now() < deadline {
            let (code, _) = self.get(token, path).await;
            if code == StatusCode::NOT_FOUND {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} never went away");
    }
}
