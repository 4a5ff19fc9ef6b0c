//! Image upload and download throughput over HTTP on loopback, against `cat file > copy` on the
//! same disk in the same run. Printed, never asserted; the machine is shared and noisy: run it
//! twice and read both.
//!
//! ```text
//! cargo run --release -p nubo-image --example transfer_bench [-- SIZE_MIB [DIR]]
//! ```
//!
//! A throw-away Image service (SQLite + a local block store in DIR, default a temporary
//! directory under /var/tmp) serves the real router on 127.0.0.1; the client streams a file of
//! SIZE_MIB (default 1024) pseudo-random MiB with `PUT /v2/images/{id}/file` (the server hashes
//! md5 + sha512 and fsyncs, as always) and streams it back with `GET` into a file. `cat` is
//! timed twice: plain (page cache only) and followed by `sync FILE` (durable, like the store).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use nubo_common::testing::{project_caller, StaticValidator};
use nubo_common::Db;
use nubo_image::{ImageService, ImageSettings};

fn mib_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / seconds
}

fn make_file(path: &Path, mib: u64) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block)?;
    }
    file.flush()
}

fn timed_shell(script: &str) -> f64 {
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh runs");
    assert!(status.success(), "{script} failed");
    started.elapsed().as_secs_f64()
}

type Sender = hyper::client::conn::http1::SendRequest<
    http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let dir: PathBuf = match args.get(2) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(format!("/var/tmp/nubo-image-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.raw");
    println!(
        "nubo image transfer bench: {mib} MiB in {} (2-core shared machine; figures are noisy)",
        dir.display()
    );
    make_file(&source, mib).unwrap();
    timed_shell(&format!("sync {}", source.display()));
    let bytes = mib << 20;

    // The baseline, on the same disk: best of two runs each.
    let copy = dir.join("copy.raw");
    let mut cat = f64::MAX;
    let mut cat_sync = f64::MAX;
    for _ in 0..2 {
        cat = cat.min(timed_shell(&format!(
            "cat {} > {}",
            source.display(),
            copy.display()
        )));
        let _ = std::fs::remove_file(&copy);
        timed_shell("sync");
        cat_sync = cat_sync.min(timed_shell(&format!(
            "cat {} > {} && sync {}",
            source.display(),
            copy.display(),
            copy.display()
        )));
        let _ = std::fs::remove_file(&copy);
        timed_shell("sync");
    }

    // The service, on the same disk.
    let db = Db::open(&format!("sqlite://{}", dir.join("bench.db").display()), 4)
        .await
        .unwrap();
    let store = nubo_blockstore::LocalStore::open(dir.join("blockstore")).unwrap();
    let settings = ImageSettings {
        quota_bytes: 0,
        quota_images: 0,
        ..ImageSettings::default()
    };
    let service = ImageService::new(db, Arc::new(store), settings)
        .await
        .unwrap();
    let validator = StaticValidator::new()
        .with(
            "bench",
            project_caller("bench", "p-bench", &["admin", "member", "reader"]),
        )
        .shared();
    let router = nubo_image::http::router(service, validator, "http://127.0.0.1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut client = connect(addr).await;
    let create = http::Request::post("/v2/images")
        .header("host", addr.to_string())
        .header("x-auth-token", "bench")
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(
                r#"{"name": "bench", "disk_format": "raw", "container_format": "bare"}"#,
            ))
            .map_err(|never| match never {})
            .boxed(),
        )
        .unwrap();
    let response = client.send_request(create).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let image: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = image["id"].as_str().unwrap().to_string();

    // Upload.
    let file = tokio::fs::File::open(&source).await.unwrap();
    let frames = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map_ok(Frame::data);
    let upload = http::Request::put(format!("/v2/images/{id}/file"))
        .header("host", addr.to_string())
        .header("x-auth-token", "bench")
        .header("content-type", "application/octet-stream")
        .header("content-length", bytes.to_string())
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    timed_shell("sync");
    let started = Instant::now();
    let response = client.send_request(upload).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    let up = started.elapsed().as_secs_f64();
    assert_eq!(status, http::StatusCode::NO_CONTENT, "upload failed");

    // Download into a file.
    let target = dir.join("download.raw");
    let download = http::Request::get(format!("/v2/images/{id}/file"))
        .header("host", addr.to_string())
        .header("x-auth-token", "bench")
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    timed_shell("sync");
    let started = Instant::now();
    let response = client.send_request(download).await.unwrap();
    let mut body = response.into_body();
    // Plain blocking writes, as `cat` does (tokio::fs would add a thread hop per chunk).
    let mut out = std::fs::File::create(&target).unwrap();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
            out.write_all(&data).unwrap();
        }
    }
    drop(out);
    let down = started.elapsed().as_secs_f64();
    assert_eq!(received, bytes, "short download");

    println!(
        "  cat file > copy           {:8.1} MiB/s",
        mib_s(bytes, cat)
    );
    println!(
        "  cat file > copy && sync   {:8.1} MiB/s",
        mib_s(bytes, cat_sync)
    );
    println!(
        "  upload   (PUT, md5+sha512, fsync)  {:8.1} MiB/s  = {:3.0}% of cat, {:3.0}% of cat+sync",
        mib_s(bytes, up),
        100.0 * cat / up,
        100.0 * cat_sync / up
    );
    println!(
        "  download (GET into a file)         {:8.1} MiB/s  = {:3.0}% of cat",
        mib_s(bytes, down),
        100.0 * cat / down
    );
    if args.get(2).is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
