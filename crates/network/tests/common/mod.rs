//! A Networking API on a fresh SQLite file, driven through its router with `oneshot` (no
//! socket), and callers: `admin` (project `padmin`), `alice` (member of `pa`), `bob` (member of
//! `pb`), `reader` (reader of `pa`).

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use nubo_common::testing::{project_caller, StaticValidator};
use nubo_common::Db;
use nubo_network::{NetworkService, NetworkSettings};
use serde_json::{json, Value};
use tower::ServiceExt;

pub struct Api {
    pub router: Router,
    pub service: Arc<NetworkService>,
    _dir: tempfile::TempDir,
}

pub async fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("nubo.db").display());
    let db = Db::open(&url, 8).await.expect("db");
    let service = NetworkService::new(db, NetworkSettings::for_tests())
        .await
        .expect("service");
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
    let router = nubo_network::http::router(service.clone(), validator);
    Api {
        router,
        service,
        _dir: dir,
    }
}

impl Api {
    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cloud.test");
        if !token.is_empty() {
            req = req.header("x-auth-token", token);
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

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.raw(token, method, path, body.map(|b| b.to_string()))
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

    /// POSTs and insists on 201; returns the created member.
    pub async fn create(&self, token: &str, collection: &str, key: &str, attrs: Value) -> Value {
        let (status, body) = self
            .post(token, &format!("/v2.0/{collection}"), json!({ key: attrs }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {collection}: {body}");
        body[key].clone()
    }

    pub async fn network(&self, token: &str, name: &str) -> String {
        self.create(token, "networks", "network", json!({"name": name}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn subnet(&self, token: &str, network: &str, cidr: &str) -> String {
        let version = if cidr.contains(':') { 6 } else { 4 };
        self.create(
            token,
            "subnets",
            "subnet",
            json!({"network_id": network, "cidr": cidr, "ip_version": version}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// An external network (admin's) with an IPv4 subnet.
    pub async fn external(&self, cidr: &str) -> String {
        let net = self
            .create(
                "admin",
                "networks",
                "network",
                json!({"name": "public", "router:external": true}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.subnet("admin", &net, cidr).await;
        net
    }
}

pub fn kind(body: &Value) -> &str {
    body["NeutronError"]["type"].as_str().unwrap_or("")
}
