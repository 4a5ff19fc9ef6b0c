//! Router tests without a socket: every route without a token (401), another project's
//! tokens (404 for what it cannot see, 403 for what it may see but not change), admin-only
//! calls, malformed bodies, the happy paths, and failed uploads (nothing left behind).

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use nubo_blockstore::{BlockStore, MemoryStore, Op};
use nubo_common::testing::{project_caller, StaticValidator};
use nubo_common::Db;
use nubo_image::{ImageService, ImageSettings};
use serde_json::{json, Value};
use tower::ServiceExt;

const V21: &str = "application/openstack-images-v2.1-json-patch";
const V20: &str = "application/openstack-images-v2.0-json-patch";

struct Cloud {
    router: Router,
    store: Arc<MemoryStore>,
}

async fn cloud_with(settings: ImageSettings) -> Cloud {
    let store = Arc::new(MemoryStore::new());
    let service = ImageService::new(Db::in_memory().await, store.clone(), settings)
        .await
        .unwrap();
    let validator = StaticValidator::new()
        .with(
            "admin",
            project_caller("admin", "p-admin", &["admin", "member", "reader"]),
        )
        .with(
            "alice",
            project_caller("alice", "p-a", &["member", "reader"]),
        )
        .with("alice-reader", project_caller("ann", "p-a", &["reader"]))
        .with("bob", project_caller("bob", "p-b", &["member", "reader"]))
        .with("bob-reader", project_caller("bert", "p-b", &["reader"]))
        .shared();
    Cloud {
        router: nubo_image::http::router(service, validator, "http://cloud"),
        store,
    }
}

async fn cloud() -> Cloud {
    cloud_with(ImageSettings::default()).await
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Cloud {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("x-auth-token", token);
        }
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: Body,
    ) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-auth-token", token)
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        self.send(request).await
    }

    async fn create(&self, token: &str, body: Value) -> String {
        let reply = self
            .call(Method::POST, "/v2/images", Some(token), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    async fn upload(&self, token: &str, id: &str, data: Vec<u8>) -> Reply {
        self.raw(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            token,
            "application/octet-stream",
            Body::from(data),
        )
        .await
    }

    /// How many images `GET /v2/images{query}` lists for `token`.
    async fn count(&self, token: &str, query: &str) -> usize {
        let reply = self
            .call(
                Method::GET,
                &format!("/v2/images{query}"),
                Some(token),
                None,
            )
            .await;
        reply.json()["images"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(usize::MAX)
    }

    async fn show(&self, token: &str, id: &str) -> Reply {
        self.call(Method::GET, &format!("/v2/images/{id}"), Some(token), None)
            .await
    }

    async fn patch(&self, token: &str, id: &str, media: &str, doc: Value) -> Reply {
        self.raw(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            token,
            media,
            Body::from(doc.to_string()),
        )
        .await
    }
}

fn raw_image() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn discovery_is_public() {
    let c = cloud().await;
    let reply = c.call(Method::GET, "/", None, None).await;
    assert_eq!(reply.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(reply.json()["versions"][0]["status"], "CURRENT");
    assert_eq!(
        c.call(Method::GET, "/versions", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.call(Method::GET, "/v1/images", None, None).await.status,
        StatusCode::MULTIPLE_CHOICES
    );
}

#[tokio::test]
async fn every_route_needs_a_token() {
    let c = cloud().await;
    let id = "00000000-0000-0000-0000-000000000001";
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/v2/images".into()),
        (Method::POST, "/v2/images".into()),
        (Method::GET, format!("/v2/images/{id}")),
        (Method::PATCH, format!("/v2/images/{id}")),
        (Method::DELETE, format!("/v2/images/{id}")),
        (Method::GET, format!("/v2/images/{id}/file")),
        (Method::PUT, format!("/v2/images/{id}/file")),
        (Method::PUT, format!("/v2/images/{id}/tags/t")),
        (Method::DELETE, format!("/v2/images/{id}/tags/t")),
        (Method::POST, format!("/v2/images/{id}/actions/deactivate")),
        (Method::POST, format!("/v2/images/{id}/actions/reactivate")),
        (Method::GET, format!("/v2/images/{id}/members")),
        (Method::POST, format!("/v2/images/{id}/members")),
        (Method::GET, format!("/v2/images/{id}/members/p")),
        (Method::PUT, format!("/v2/images/{id}/members/p")),
        (Method::DELETE, format!("/v2/images/{id}/members/p")),
        (Method::GET, "/v2/schemas/image".into()),
        (Method::GET, "/v2/schemas/images".into()),
        (Method::GET, "/v2/schemas/member".into()),
        (Method::GET, "/v2/schemas/members".into()),
        (Method::GET, "/v2/schemas/metadefs/namespace".into()),
        (Method::GET, "/v2/info/import".into()),
        (Method::GET, "/v2/info/stores".into()),
        (Method::GET, "/v2/info/usage".into()),
        (Method::GET, "/v2/metadefs/namespaces".into()),
        (Method::POST, "/v2/metadefs/namespaces".into()),
        (Method::GET, "/v2/metadefs/resource_types".into()),
        (Method::GET, "/v2/metadefs/namespaces/ns/objects".into()),
        (Method::GET, "/v2/metadefs/namespaces/ns/properties".into()),
        (Method::GET, "/v2/metadefs/namespaces/ns/tags".into()),
    ];
    for (method, path) in routes {
        for token in [None, Some("not-a-token")] {
            let reply = c.call(method.clone(), &path, token, None).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert!(String::from_utf8_lossy(&reply.body).starts_with("401 Unauthorized"));
        }
    }
}

#[tokio::test]
async fn image_lifecycle() {
    let c = cloud().await;
    let id = c
        .create("alice", json!({"name": "img", "disk_format": "raw", "container_format": "bare", "os_distro": "x"}))
        .await;
    let shown = c.show("alice", &id).await.json();
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["visibility"], "shared");
    assert_eq!(shown["owner"], "p-a");
    assert_eq!(shown["os_distro"], "x");
    assert_eq!(shown["size"], Value::Null);
    // No data yet: 204.
    let reply = c
        .call(
            Method::GET,
            &format!("/v2/images/{id}/file"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let data = raw_image();
    assert_eq!(
        c.upload("alice", &id, data.clone()).await.status,
        StatusCode::NO_CONTENT
    );
    let shown = c.show("alice", &id).await.json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["size"], data.len());
    assert_eq!(shown["virtual_size"], data.len());
    assert_eq!(shown["checksum"], format!("{:x}", Md5::digest(&data)));
    assert_eq!(shown["os_hash_algo"], "sha512");
    use sha2::Sha512;
    assert_eq!(
        shown["os_hash_value"],
        format!("{:x}", Sha512::digest(&data))
    );
    let reply = c
        .call(
            Method::GET,
            &format!("/v2/images/{id}/file"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.as_ref(), data.as_slice());
    assert_eq!(
        reply.headers["content-md5"],
        shown["checksum"].as_str().unwrap()
    );
    // A second upload is a conflict.
    assert_eq!(
        c.upload("alice", &id, data.clone()).await.status,
        StatusCode::CONFLICT
    );

    // PATCH, both media types.
    let reply = c
        .patch(
            "alice",
            &id,
            V21,
            json!([
                {"op": "replace", "path": "/name", "value": "renamed"},
                {"op": "add", "path": "/k", "value": "v"},
                {"op": "add", "path": "/tags", "value": ["a", "b"]},
                {"op": "replace", "path": "/min_ram", "value": 64},
                {"op": "replace", "path": "/protected", "value": true},
            ]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let view = reply.json();
    assert_eq!(view["name"], "renamed");
    assert_eq!(view["k"], "v");
    assert_eq!(view["min_ram"], 64);
    assert_eq!(view["tags"], json!(["a", "b"]));
    assert_eq!(
        c.patch("alice", &id, V20, json!([{"add": "/k", "value": "w"}]))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.patch("alice", &id, V20, json!([{"replace": "/k", "value": "w"}]))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.patch("alice", &id, V20, json!([{"remove": "/nope"}]))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.patch("alice", &id, V20, json!([{"remove": "/name"}]))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "replace", "path": "/size", "value": 1}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "add", "path": "/locations/-", "value": {}}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let reply = c.patch("alice", &id, "application/json", json!([])).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.headers.contains_key("accept-patch"));

    // Tags.
    let tag = |m: Method, t: &str| (m, format!("/v2/images/{id}/tags/{t}"));
    let (m, p) = tag(Method::PUT, "c");
    assert_eq!(
        c.call(m, &p, Some("alice"), None).await.status,
        StatusCode::NO_CONTENT
    );
    let (m, p) = tag(Method::DELETE, "a");
    assert_eq!(
        c.call(m, &p, Some("alice"), None).await.status,
        StatusCode::NO_CONTENT
    );
    let (m, p) = tag(Method::DELETE, "a");
    assert_eq!(
        c.call(m, &p, Some("alice"), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.show("alice", &id).await.json()["tags"], json!(["b", "c"]));

    // Listing with filters.
    assert_eq!(c.count("alice", "?tag=b").await, 1);
    assert_eq!(c.count("alice", "?tag=zz").await, 0);
    assert_eq!(c.count("alice", "?name=in:renamed,other").await, 1);
    assert_eq!(c.count("alice", "?k=w&status=active").await, 1);
    assert_eq!(
        c.count("alice", &format!("?size_min={}", data.len() + 1))
            .await,
        0
    );
    let reply = c
        .call(
            Method::GET,
            "/v2/images?sort=bogus:asc",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Deactivate: downloads refused for non-admins, then reactivate.
    let action = |a: &str| format!("/v2/images/{id}/actions/{a}");
    assert_eq!(
        c.call(Method::POST, &action("deactivate"), Some("alice"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.show("alice", &id).await.json()["status"], "deactivated");
    assert_eq!(
        c.call(
            Method::GET,
            &format!("/v2/images/{id}/file"),
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::GET,
            &format!("/v2/images/{id}/file"),
            Some("admin"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        c.call(Method::POST, &action("reactivate"), Some("alice"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.show("alice", &id).await.json()["status"], "active");

    // Protected images refuse deletion; then delete for real, data gone from the store.
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "replace", "path": "/protected", "value": false}])
        )
        .await
        .status,
        StatusCode::OK
    );
    assert!(c.store.exists(&format!("image-{id}")).await.unwrap());
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.show("alice", &id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());
}

#[tokio::test]
async fn other_projects_see_404_or_403() {
    let c = cloud().await;
    let private = c.create("alice", json!({"name": "p", "visibility": "private", "disk_format": "raw", "container_format": "bare"})).await;
    let public = c.create("admin", json!({"name": "pub", "visibility": "public", "disk_format": "raw", "container_format": "bare"})).await;
    let community = c.create("alice", json!({"name": "c", "visibility": "community", "disk_format": "raw", "container_format": "bare"})).await;

    // Bob cannot see alice's private image: 404 everywhere.
    let p = |s: &str| format!("/v2/images/{private}{s}");
    for (method, path, body) in [
        (Method::GET, p(""), None),
        (Method::DELETE, p(""), None),
        (Method::GET, p("/file"), None),
        (Method::PUT, p("/tags/x"), None),
        (Method::DELETE, p("/tags/x"), None),
        (Method::POST, p("/actions/deactivate"), None),
        (Method::GET, p("/members"), None),
        (Method::POST, p("/members"), Some(json!({"member": "p-b"}))),
        (Method::GET, p("/tasks"), None),
    ] {
        let reply = c.call(method.clone(), &path, Some("bob"), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    assert_eq!(
        c.patch(
            "bob",
            &private,
            V21,
            json!([{"op": "replace", "path": "/name", "value": "x"}])
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.upload("bob", &private, vec![1, 2, 3]).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = c
        .call(Method::GET, "/v2/images", Some("bob"), None)
        .await
        .json();
    let ids: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&private.as_str()));
    assert!(ids.contains(&public.as_str()));
    // Community images are not listed by default for others, but are readable.
    assert!(!ids.contains(&community.as_str()));
    assert_eq!(c.show("bob", &community).await.status, StatusCode::OK);
    let listed = c
        .call(
            Method::GET,
            "/v2/images?visibility=community",
            Some("bob"),
            None,
        )
        .await
        .json();
    assert_eq!(listed["images"].as_array().unwrap().len(), 1);

    // Bob sees the public image but may not change it: 403.
    let q = |s: &str| format!("/v2/images/{public}{s}");
    assert_eq!(c.show("bob", &public).await.status, StatusCode::OK);
    assert_eq!(
        c.call(Method::DELETE, &q(""), Some("bob"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(Method::PUT, &q("/tags/x"), Some("bob"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(Method::POST, &q("/actions/deactivate"), Some("bob"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "bob",
            &public,
            V21,
            json!([{"op": "replace", "path": "/name", "value": "x"}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.upload("bob", &public, vec![1, 2, 3]).await.status,
        StatusCode::FORBIDDEN
    );
    // Members of a non-shared image: 403.
    assert_eq!(
        c.call(Method::GET, &q("/members"), Some("bob"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Readers of the owning project read but do not write.
    assert_eq!(
        c.show("alice-reader", &private).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.call(Method::DELETE, &p(""), Some("alice-reader"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::POST,
            "/v2/images",
            Some("alice-reader"),
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // Admin sees everything.
    assert_eq!(c.show("admin", &private).await.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_only_calls_are_refused_to_members() {
    let c = cloud().await;
    // Publicizing.
    let reply = c
        .call(
            Method::POST,
            "/v2/images",
            Some("alice"),
            Some(json!({"name": "x", "visibility": "public"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let id = c.create("alice", json!({"name": "x"})).await;
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.patch(
            "admin",
            &id,
            V21,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}])
        )
        .await
        .status,
        StatusCode::OK
    );
    // Owner changes and images for another project.
    assert_eq!(
        c.patch(
            "alice",
            &id,
            V21,
            json!([{"op": "replace", "path": "/owner", "value": "p-b"}])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::POST,
            "/v2/images",
            Some("alice"),
            Some(json!({"owner": "p-b"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let reply = c
        .call(
            Method::POST,
            "/v2/images",
            Some("admin"),
            Some(json!({"owner": "p-b"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["owner"], "p-b");
    // Metadata definitions.
    assert_eq!(
        c.call(
            Method::POST,
            "/v2/metadefs/namespaces",
            Some("alice"),
            Some(json!({"namespace": "n"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::POST,
            "/v2/metadefs/namespaces",
            Some("admin"),
            Some(json!({"namespace": "n", "visibility": "public"}))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        c.call(
            Method::DELETE,
            "/v2/metadefs/namespaces/n",
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::GET,
            "/v2/metadefs/namespaces/n",
            Some("alice"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let c = cloud().await;
    let id = c.create("alice", json!({"name": "x"})).await;
    let bad = |path: String, method: Method| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("x-auth-token", "alice")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap()
    };
    for (path, method) in [
        ("/v2/images".to_string(), Method::POST),
        (format!("/v2/images/{id}/members"), Method::POST),
        (format!("/v2/images/{id}/members/p-b"), Method::PUT),
        ("/v2/metadefs/namespaces".to_string(), Method::POST),
    ] {
        assert_eq!(
            c.send(bad(path.clone(), method)).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    let reply = c
        .raw(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            "alice",
            V21,
            Body::from("{not json"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Schema violations.
    for body in [
        json!({"disk_format": "wrong"}),
        json!({"container_format": "wrong"}),
        json!({"min_ram": -1}),
        json!({"custom": 5}),
        json!({"id": "not-a-uuid"}),
        json!([1, 2]),
    ] {
        assert_eq!(
            c.call(
                Method::POST,
                "/v2/images",
                Some("alice"),
                Some(body.clone())
            )
            .await
            .status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    // Read-only and reserved attributes: 403.
    for body in [
        json!({"status": "active"}),
        json!({"self": "x"}),
        json!({"os_glance_foo": "bar"}),
        json!({"deleted": "1"}),
    ] {
        assert_eq!(
            c.call(
                Method::POST,
                "/v2/images",
                Some("alice"),
                Some(body.clone())
            )
            .await
            .status,
            StatusCode::FORBIDDEN,
            "{body}"
        );
    }
    // Bad list parameters.
    for q in [
        "limit=x",
        "marker=00000000-0000-0000-0000-00000000dead",
        "sort_dir=up",
        "visibility=everyone",
        "member_status=x",
    ] {
        assert_eq!(
            c.call(Method::GET, &format!("/v2/images?{q}"), Some("alice"), None)
                .await
                .status,
            StatusCode::BAD_REQUEST,
            "{q}"
        );
    }
    // Uploads need octet-stream.
    let reply = c
        .raw(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            "alice",
            "text/plain",
            Body::from("x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn sharing() {
    let c = cloud().await;
    let id = c
        .create(
            "alice",
            json!({"name": "s", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let members = format!("/v2/images/{id}/members");
    let reply = c
        .call(
            Method::POST,
            &members,
            Some("alice"),
            Some(json!({"member": "p-b"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "pending");
    assert_eq!(
        c.call(
            Method::POST,
            &members,
            Some("alice"),
            Some(json!({"member": "p-b"}))
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.call(Method::POST, &members, Some("alice"), Some(json!({})))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Pending: readable, listed only with member_status=pending.
    assert_eq!(c.show("bob", &id).await.status, StatusCode::OK);
    assert_eq!(c.count("bob", "").await, 0);
    assert_eq!(
        c.count("bob", "?member_status=pending&visibility=shared")
            .await,
        1
    );
    // The owner cannot accept for the member; the member can; bad statuses are 400.
    let me = format!("{members}/p-b");
    assert_eq!(
        c.call(
            Method::PUT,
            &me,
            Some("alice"),
            Some(json!({"status": "accepted"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::PUT,
            &me,
            Some("bob"),
            Some(json!({"status": "maybe"}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.call(
            Method::PUT,
            &me,
            Some("bob-reader"),
            Some(json!({"status": "accepted"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(
            Method::PUT,
            &me,
            Some("bob"),
            Some(json!({"status": "accepted"}))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(c.count("bob", "").await, 1);
    // The member sees only itself; the owner sees all.
    assert_eq!(
        c.call(Method::GET, &members, Some("bob"), None)
            .await
            .json()["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.call(Method::GET, &me, Some("bob"), None).await.json()["status"],
        "accepted"
    );
    // Members may read but not change, nor remove themselves.
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            Some("bob"),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(Method::DELETE, &me, Some("bob"), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call(Method::DELETE, &me, Some("alice"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.show("bob", &id).await.status, StatusCode::NOT_FOUND);
    // Only shared images have members.
    let private = c
        .create("alice", json!({"name": "p", "visibility": "private"}))
        .await;
    assert_eq!(
        c.call(
            Method::POST,
            &format!("/v2/images/{private}/members"),
            Some("alice"),
            Some(json!({"member": "p-b"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn pagination_has_next_links() {
    let c = cloud().await;
    for i in 0..5 {
        c.create("alice", json!({"name": format!("img{i}")})).await;
    }
    let first = c
        .call(
            Method::GET,
            "/v2/images?limit=2&sort=name:asc",
            Some("alice"),
            None,
        )
        .await
        .json();
    let names: Vec<&str> = first["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["img0", "img1"]);
    let next = first["next"].as_str().unwrap().to_string();
    assert!(
        next.starts_with("/v2/images?limit=2&sort=name%3Aasc&marker="),
        "{next}"
    );
    let mut seen = names.len();
    let mut link = Some(next);
    while let Some(next) = link {
        let page = c.call(Method::GET, &next, Some("alice"), None).await.json();
        seen += page["images"].as_array().unwrap().len();
        link = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 5);
}

#[tokio::test]
async fn failed_uploads_leave_nothing_behind() {
    let settings = ImageSettings {
        quota_bytes: 1 << 20,
        ..ImageSettings::default()
    };
    let c = cloud_with(settings).await;
    let new = |name: &'static str, format: &'static str| {
        c.create(
            "alice",
            json!({"name": name, "disk_format": format, "container_format": "bare"}),
        )
    };

    // The body breaks halfway: back to queued, nothing stored; a retry works.
    let id = new("broken", "raw").await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![7u8; 65536])),
        Err(std::io::Error::other("client went away")),
    ];
    let reply = c
        .raw(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            "alice",
            "application/octet-stream",
            Body::from_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let shown = c.show("alice", &id).await.json();
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["size"], Value::Null);
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());
    assert_eq!(
        c.upload("alice", &id, raw_image()).await.status,
        StatusCode::NO_CONTENT
    );

    // The block store fails: killed, nothing stored, not listed.
    let id = new("store-fails", "raw").await;
    c.store.fail_next(Op::StoreImage, 1);
    assert_eq!(
        c.upload("alice", &id, raw_image()).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(c.show("alice", &id).await.json()["status"], "killed");
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());
    let listed = c
        .call(Method::GET, "/v2/images", Some("alice"), None)
        .await
        .json();
    assert!(!listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str()));

    // Over the byte quota (1 MiB, 300 kB used): 413, queued, nothing stored.
    let id = new("too-big", "raw").await;
    let reply = c.upload("alice", &id, vec![1u8; 900_000]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(c.show("alice", &id).await.json()["status"], "queued");
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());
    // The same without a Content-Length (chunked): cut while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..20).map(|_| Ok(Bytes::from(vec![1u8; 65536]))).collect();
    let reply = c
        .raw(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            "alice",
            "application/octet-stream",
            Body::from_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(c.show("alice", &id).await.json()["status"], "queued");
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());

    // Raw data declared qcow2: 415, queued, the stored data removed.
    let id = new("not-qcow2", "qcow2").await;
    assert_eq!(
        c.upload("alice", &id, vec![0u8; 4096]).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(c.show("alice", &id).await.json()["status"], "queued");
    assert!(!c.store.exists(&format!("image-{id}")).await.unwrap());

    // Formats must be set before data.
    let id = c.create("alice", json!({"name": "no-format"})).await;
    assert_eq!(
        c.upload("alice", &id, vec![0u8; 10]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn count_quota_is_413() {
    let settings = ImageSettings {
        quota_images: 2,
        ..ImageSettings::default()
    };
    let c = cloud_with(settings).await;
    c.create("alice", json!({})).await;
    c.create("alice", json!({})).await;
    let reply = c
        .call(Method::POST, "/v2/images", Some("alice"), Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Another project has its own quota.
    c.create("bob", json!({})).await;
    let usage = c
        .call(Method::GET, "/v2/info/usage", Some("alice"), None)
        .await
        .json();
    assert_eq!(
        usage["usage"]["image_count_total"],
        json!({"limit": 2, "usage": 2})
    );
}

#[tokio::test]
async fn boot_and_snapshot_images() {
    let store = Arc::new(MemoryStore::new());
    let service = ImageService::new(
        Db::in_memory().await,
        store.clone(),
        ImageSettings::default(),
    )
    .await
    .unwrap();
    let alice = project_caller("alice", "p-a", &["member", "reader"]);
    let bob = project_caller("bob", "p-b", &["member", "reader"]);
    let image = service
        .create_image(&alice, json!({"name": "b", "disk_format": "raw", "container_format": "bare", "visibility": "private"}))
        .await
        .unwrap();
    let id = image.id.clone();
    assert_eq!(
        service
            .image_for_boot(&alice, &id)
            .await
            .unwrap_err()
            .status,
        StatusCode::CONFLICT
    );
    let data: nubo_blockstore::ByteStream =
        Box::pin(futures::stream::iter(vec![Ok(Bytes::from(vec![
            5u8;
            8192
        ]))]));
    service
        .upload_image(&alice, id.as_str(), None, data)
        .await
        .unwrap();
    let boot = service.image_for_boot(&alice, &id).await.unwrap();
    assert_eq!(
        boot.source(),
        nubo_blockstore::Source::Image(format!("image-{id}"))
    );
    assert!(service
        .image_for_boot(&bob, &id)
        .await
        .unwrap_err()
        .is_not_found());

    // A server disk cloned from it, snapshotted, becomes an image.
    store
        .create_clone(&boot.source(), "disk-1", None)
        .await
        .unwrap();
    store.snapshot("disk-1", "snapshot-1").await.unwrap();
    let snap = service
        .create_image_from_snapshot(
            &alice,
            "snapshot-1",
            nubo_image::SnapshotImage {
                name: "snap".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(snap.status.as_str(), "active");
    assert_eq!(snap.size, Some(8192));
    let boot = service.image_for_boot(&alice, &snap.id).await.unwrap();
    assert_eq!(
        boot.source(),
        nubo_blockstore::Source::Snapshot("snapshot-1".into())
    );
    // The hashes arrive in the background.
    let deadline = std::time::Instant::now() + nubo_common::testing::HANG_LIMIT;
    while std::time::Instant::now() < deadline {
        if service
            .get_image(&alice, snap.id.as_str())
            .await
            .unwrap()
            .checksum
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let snap = service.get_image(&alice, snap.id.as_str()).await.unwrap();
    assert_eq!(
        snap.checksum.unwrap(),
        format!("{:x}", Md5::digest(vec![5u8; 8192]))
    );
}

#[tokio::test]
async fn uploads_of_a_dead_node_are_queued_again() {
    let db = Db::in_memory().await;
    let store = Arc::new(MemoryStore::new());
    let service = ImageService::new(db.clone(), store.clone(), ImageSettings::default())
        .await
        .unwrap();
    let alice = project_caller("alice", "p-a", &["member", "reader"]);
    let dead = service
        .create_image(&alice, json!({"name": "dead"}))
        .await
        .unwrap();
    let live = service
        .create_image(&alice, json!({"name": "live"}))
        .await
        .unwrap();
    // One upload's node stopped beating long ago, the other is beating now.
    for (id, beat) in [
        (dead.id.as_str(), "2000-01-01T00:00:00.000000Z".to_string()),
        (live.id.as_str(), nubo_common::time::now_rfc3339()),
    ] {
        sqlx::query("UPDATE images SET status = 'saving', heartbeat = ? WHERE id = ?")
            .bind(beat)
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
    }
    // Another API node starting on the same database sweeps.
    let other = ImageService::new(db.clone(), store, ImageSettings::default())
        .await
        .unwrap();
    let status = |id: &nubo_image::ImageId| {
        let other = other.clone();
        let alice = alice.clone();
        let id = id.to_string();
        async move { other.get_image(&alice, &id).await.unwrap().status.as_str() }
    };
    assert_eq!(status(&dead.id).await, "queued");
    assert_eq!(status(&live.id).await, "saving");
}

/// `GET /v2/images/{id}/tasks`: an image's import tasks (none: uploads finish in their request);
/// a missing image is a 404.
#[tokio::test]
async fn image_tasks_are_empty() {
    let c = cloud().await;
    let id = c
        .create(
            "alice",
            json!({"name": "t", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let reply = c
        .call(
            Method::GET,
            &format!("/v2/images/{id}/tasks"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"tasks": []}));
    let missing = c
        .call(
            Method::GET,
            "/v2/images/8c7a3b3e-0000-4000-8000-000000000000/tasks",
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
