//! The metadata proxy: a small HTTP/1 reverse proxy in the agent process, one listener per
//! router namespace (behind the `169.254.169.254:80` redirect, on the metadata port) and one per
//! isolated network's DHCP namespace (on `169.254.169.254:80` itself).
//!
//! A request is identified by its network (the listener's network, or for a router the
//! interface subnet containing the source address) and its source IP, looked up in
//! [`crate::Metadata::instances`], and forwarded to [`crate::Metadata::url`] + the guest's path
//! with Nova's headers: `X-Instance-ID`, `X-Instance-ID-Signature` = hex HMAC-SHA256(secret,
//! instance id), `X-Tenant-ID` (when known) and `X-Forwarded-For` (the guest's address). An
//! unknown source gets 404.
//!
//! A listener socket is made inside its namespace by a short-lived thread that `setns`es first
//! (a socket belongs to the namespace it was created in), then served by tokio. A namespace
//! deleted and made again has a new inode: the listener is made again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::{Mutex, RwLock};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{Cidr, HostNetwork};
use crate::procs::netns_inode;

/// Which instances a listener answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Router(String),
    Network(String),
}

#[derive(Debug, Default)]
struct Directory {
    url: String,
    secret: String,
    /// (network, ip) -> (instance id, project id).
    instances: HashMap<(String, IpAddr), (String, Option<String>)>,
    /// router -> (subnet, network) of its interfaces.
    routers: HashMap<String, Vec<(Cidr, String)>>,
}

struct Listener {
    inode: u64,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// The proxy: the directory (updated on every apply) and the listeners.
#[derive(Default)]
pub struct MetadataProxy {
    dir: Arc<RwLock<Directory>>,
    listeners: Mutex<HashMap<String, Listener>>,
}

impl Drop for MetadataProxy {
    fn drop(&mut self) {
        for (_, l) in self.listeners.lock().drain() {
            l.task.abort();
        }
    }
}

/// Nova's signature of an instance id.
pub fn sign(secret: &str, instance_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(instance_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Binds a TCP listener inside a named namespace.
pub fn bind_in_netns(ns: &str, addr: SocketAddr) -> Result<std::net::TcpListener> {
    let path = format!("/run/netns/{ns}");
    let ns = ns.to_string();
    std::thread::spawn(move || -> Result<std::net::TcpListener> {
        let f = std::fs::File::open(&path).map_err(|e| Error::Io(format!("{path}: {e}")))?;
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error::Io(format!(
                "setns {ns}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::Io(format!("binding {addr} in {ns}: {e}")))?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .join()
    .map_err(|_| Error::Io("metadata listener thread panicked".into()))?
}

impl MetadataProxy {
    /// Takes the directory from the desired state.
    pub fn update(&self, desired: &HostNetwork) {
        let mut d = Directory::default();
        if let Some(m) = &desired.metadata {
            d.url = m.url.trim_end_matches('/').to_string();
            d.secret = m.secret.clone();
            for i in &m.instances {
                d.instances.insert(
                    (i.network_id.clone(), i.ip),
                    (i.instance_id.clone(), i.project_id.clone()),
                );
            }
        }
        for r in &desired.routers {
            let subnets = r
                .interfaces
                .iter()
                .flat_map(|i| {
                    i.addresses
                        .iter()
                        .map(|a| (a.network(), i.network_id.clone()))
                })
                .collect();
            d.routers.insert(r.id.clone(), subnets);
        }
        *self.dir.write() = d;
    }

    /// Makes sure a listener `key` serves `scope` on `addr` inside namespace `ns`. Returns
    /// whether it had to (re)make it.
    pub fn ensure(
        &self,
        key: &str,
        ns: &str,
        addr: SocketAddr,
        scope: Scope,
        rt: &tokio::runtime::Handle,
    ) -> Result<bool> {
        let inode = netns_inode(ns).unwrap_or(0);
        {
            let mut ls = self.listeners.lock();
            if let Some(l) = ls.get(key) {
                if l.inode == inode && l.addr == addr && !l.task.is_finished() {
                    return Ok(false);
                }
                l.task.abort();
                ls.remove(key);
            }
        }
        let std_listener = bind_in_netns(ns, addr)?;
        let dir = self.dir.clone();
        let task = rt.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "metadata listener");
                    return;
                }
            };
            serve(listener, scope, dir).await;
        });
        self.listeners
            .lock()
            .insert(key.to_string(), Listener { inode, addr, task });
        Ok(true)
    }

    /// Stops every listener not in `keep`; returns the keys stopped.
    pub fn retain(&self, keep: &[String]) -> Vec<String> {
        let mut ls = self.listeners.lock();
        let gone: Vec<String> = ls.keys().filter(|k| !keep.contains(k)).cloned().collect();
        for k in &gone {
            if let Some(l) = ls.remove(k) {
                l.task.abort();
            }
        }
        gone
    }

    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.listeners.lock().keys().cloned().collect();
        k.sort();
        k
    }
}

async fn serve(listener: tokio::net::TcpListener, scope: Scope, dir: Arc<RwLock<Directory>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metadata accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let scope = scope.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let scope = scope.clone();
                let dir = dir.clone();
                async move { Ok::<_, Infallible>(handle(req, peer, &scope, &dir).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Who is asking: (instance id, project id).
fn identify(scope: &Scope, ip: IpAddr, dir: &Directory) -> Option<(String, Option<String>)> {
    let network = match scope {
        Scope::Network(n) => n.clone(),
        Scope::Router(r) => dir
            .routers
            .get(r)?
            .iter()
            .find(|(c, _)| c.contains(&ip))?
            .1
            .clone(),
    };
    dir.instances.get(&(network, ip)).cloned()
}

/// Splits `http://host:port/base` into (authority, base path).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let auth = if auth.contains(':') && !auth.ends_with(']') {
        auth.to_string()
    } else {
        format!("{auth}:80")
    };
    Some((auth, path.trim_end_matches('/').to_string()))
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    scope: &Scope,
    dir: &RwLock<Directory>,
) -> Response<Full<Bytes>> {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let (who, url, secret) = {
        let d = dir.read();
        (identify(scope, ip, &d), d.url.clone(), d.secret.clone())
    };
    let Some((instance, project)) = who else {
        tracing::info!(%ip, ?scope, "metadata request from an unknown address");
        return text(
            StatusCode::NOT_FOUND,
            "404 Not Found: no instance has this address\n",
        );
    };
    let Some((authority, base)) = split_url(&url) else {
        return text(StatusCode::BAD_GATEWAY, "metadata URL is not http://\n");
    };
    match forward(
        req,
        &authority,
        &base,
        &instance,
        project.as_deref(),
        &secret,
        ip,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, %instance, "metadata upstream");
            text(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the metadata service did not answer\n",
            )
        }
    }
}

async fn forward(
    req: Request<Incoming>,
    authority: &str,
    base: &str,
    instance: &str,
    project: Option<&str>,
    secret: &str,
    ip: IpAddr,
) -> std::result::Result<Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, 1 << 20)
        .collect()
        .await
        .map_err(|e| format!("request body: {e}"))?
        .to_bytes();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = Request::builder()
        .method(parts.method)
        .uri(format!("{base}{pq}"));
    for (k, v) in parts.headers.iter() {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name)
            || name == "host"
            || name.starts_with("x-instance-")
            || name == "x-tenant-id"
            || name == "x-forwarded-for"
        {
            continue;
        }
        out = out.header(k, v);
    }
    out = out
        .header("host", authority)
        .header("x-instance-id", instance)
        .header("x-instance-id-signature", sign(secret, instance))
        .header("x-forwarded-for", ip.to_string());
    if let Some(p) = project {
        out = out.header("x-tenant-id", p);
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let work = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, 16 << 20)
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?
            .to_bytes();
        let mut r = Response::from_parts(parts, Full::new(bytes));
        for h in HOP_BY_HOP {
            r.headers_mut().remove(h);
        }
        Ok::<_, String>(r)
    };
    tokio::time::timeout(Duration::from_secs(15), work)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metadata, MetadataInstance, Router, RouterInterface};

    #[test]
    fn signature_is_novas() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'secret', b'i-1', hashlib.sha256).hexdigest())"
        assert_eq!(
            sign("secret", "i-1"),
            "d0eb6bf7ee2f44ba139cba554da58398da170e9d2f8f3621162c9a07fc576524"
        );
        assert_eq!(sign("secret", "i-1").len(), 64);
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:8774/md/"),
            Some(("127.0.0.1:8774".into(), "/md".into()))
        );
        assert_eq!(
            split_url("http://meta"),
            Some(("meta:80".into(), "".into()))
        );
        assert_eq!(split_url("https://x"), None);
    }

    #[test]
    fn identifies_by_network_and_source() {
        let mut d = HostNetwork {
            metadata: Some(Metadata {
                url: "http://127.0.0.1:1".into(),
                secret: "s".into(),
                instances: vec![MetadataInstance {
                    network_id: "n1".into(),
                    ip: "10.1.0.12".parse().unwrap(),
                    instance_id: "vm2".into(),
                    project_id: Some("p".into()),
                }],
            }),
            ..Default::default()
        };
        d.routers.push(Router {
            id: "r1".into(),
            gateway: None,
            enable_snat: true,
            interfaces: vec![RouterInterface {
                port_id: "qr".into(),
                network_id: "n1".into(),
                mac: "02:00:00:00:00:01".into(),
                addresses: vec!["10.1.0.1/24".parse().unwrap()],
            }],
            routes: vec![],
            floating_ips: vec![],
        });
        let p = MetadataProxy::default();
        p.update(&d);
        let dir = p.dir.read();
        let ip: IpAddr = "10.1.0.12".parse().unwrap();
        assert_eq!(
            identify(&Scope::Router("r1".into()), ip, &dir),
            Some(("vm2".into(), Some("p".into())))
        );
        assert_eq!(
            identify(&Scope::Network("n1".into()), ip, &dir).unwrap().0,
            "vm2"
        );
        assert_eq!(identify(&Scope::Network("n2".into()), ip, &dir), None);
        assert_eq!(
            identify(
                &Scope::Router("r1".into()),
                "10.1.0.13".parse().unwrap(),
                &dir
            ),
            None
        );
    }
}
