//! `nubo bench volumes`: Block Storage figures, printed and never asserted, on an in-process
//! cloud (`Cloud::open` on a scratch data dir with the local qcow2 block store): a volume made
//! from a 1 GiB image and from a 10 GiB image (`POST /volumes` with `imageRef` -> `available`;
//! a copy-on-write clone, so the figure should not depend on the image's size), an empty
//! volume, and a volume from a snapshot. Attach-until-the-guest-sees-the-disk needs root, QEMU
//! and the data plane: scripts/acceptance/volume-cli.sh measures and prints it. The machine is
//! shared and noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use nubo_common::config::Config;
use nubo_common::Caller;
use nubo_volume::service::volumes::CreateVolume;
use nubo_volume::service::Ctx;
use nubo_volume::VolumeService;
use serde_json::json;

use crate::server::Cloud;

#[derive(Args, Clone)]
pub struct VolumeBench {
    /// Volumes made per phase.
    #[arg(long, default_value_t = 20)]
    volumes: usize,
    /// Size of the small image, GiB.
    #[arg(long, default_value_t = 1)]
    small_gib: u64,
    /// Size of the big image, GiB (its bytes are uploaded once: this takes a while).
    #[arg(long, default_value_t = 10)]
    big_gib: u64,
}

const GIB: u64 = 1 << 30;

fn median(mut ms: Vec<f64>) -> (f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Uploads an image of `gib` GiB (a non-zero pattern, streamed in 4 MiB chunks); returns its id.
async fn image_of(cloud: &Cloud, caller: &Caller, name: &str, gib: u64) -> anyhow::Result<String> {
    let record = cloud
        .image
        .create_image(
            caller,
            json!({"name": name, "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    let chunk = Bytes::from(vec![0x5a_u8; 4 << 20]);
    let chunks = (gib * GIB) / chunk.len() as u64;
    let data = futures::stream::iter((0..chunks).map(move |_| Ok(chunk.clone())));
    let t = Instant::now();
    cloud
        .image
        .upload_image(caller, record.id.as_str(), Some(gib * GIB), Box::pin(data))
        .await?;
    println!(
        "  (uploaded the {gib} GiB image in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    Ok(record.id.to_string())
}

/// Makes one volume and polls (1 ms) until `available`; returns (id, milliseconds).
async fn create_available(
    volume: &Arc<VolumeService>,
    ctx: &Ctx,
    req: CreateVolume,
) -> anyhow::Result<(String, f64)> {
    let t = Instant::now();
    let v = volume.create_volume(ctx, req).await?;
    loop {
        let row = volume
            .load_volume(&v.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("volume {} vanished", v.id))?;
        match row.status.as_str() {
            "available" => break,
            "creating" | "downloading" if t.elapsed() < Duration::from_secs(600) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            other => anyhow::bail!("volume {} ended {other}", v.id),
        }
    }
    Ok((v.id, t.elapsed().as_secs_f64() * 1000.0))
}

async fn phase(
    volume: &Arc<VolumeService>,
    ctx: &Ctx,
    label: &str,
    n: usize,
    req: impl Fn() -> CreateVolume,
) -> anyhow::Result<Vec<String>> {
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let (id, ms) = create_available(volume, ctx, req()).await?;
        times.push(ms);
        ids.push(id);
    }
    let (p50, p99) = median(times);
    println!("{label}: median {p50:.1} ms, p99 {p99:.1} ms ({n} volumes)");
    Ok(ids)
}

pub async fn run(args: VolumeBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("nubo-bench-volumes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.server.data_dir = dir.clone();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.identity.admin_password = "bench-secret".into();
    let cloud = Cloud::open(config).await?;
    println!(
        "nubo bench volumes: 2-core shared machine, figures are noisy; debug or release as built; block store {}",
        dir.display()
    );
    let outcome = async {
        let admin = cloud
            .identity
            .issue_token(
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": "bench-secret"}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}),
            )
            .await?;
        let caller = admin.caller();
        let ctx = Ctx::internal(&caller);
        let volume = cloud.volume.clone();
        let n = args.volumes;
        // Room for every phase (the default quota is 10 volumes and 1,000 GiB).
        let project = caller.project_id().unwrap_or_default().to_string();
        volume
            .update_quota_set(
                &ctx,
                &project,
                &json!({"quota_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1}}),
            )
            .await?;

        let ids = phase(&volume, &ctx, "empty 1 GiB volume -> available", n, || {
            CreateVolume {
                size: Some(1),
                ..Default::default()
            }
        })
        .await?;
        cleanup(&volume, &ctx, &ids).await;

        let mut images = Vec::new();
        for gib in [args.small_gib, args.big_gib] {
            let image = image_of(&cloud, &caller, &format!("bench-{gib}g"), gib).await?;
            let size = gib as i64;
            let id = image.clone();
            let ids = phase(
                &volume,
                &ctx,
                &format!("volume from a {gib} GiB image -> available"),
                n,
                || CreateVolume {
                    size: Some(size),
                    image_ref: Some(id.clone()),
                    ..Default::default()
                },
            )
            .await?;
            cleanup(&volume, &ctx, &ids).await;
            images.push(image);
        }

        let (source, _) = create_available(
            &volume,
            &ctx,
            CreateVolume {
                size: Some(args.small_gib as i64),
                image_ref: images.first().cloned(),
                ..Default::default()
            },
        )
        .await?;
        let snap = volume
            .create_snapshot(&ctx, &json!({"snapshot": {"volume_id": source}}))
            .await?;
        let snap_id = snap.id.clone();
        for _ in 0..6000 {
            if volume.get_snapshot(&ctx, &snap_id).await?.status == "available" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ids = phase(
            &volume,
            &ctx,
            "volume from a snapshot -> available",
            n,
            || CreateVolume {
                snapshot_id: Some(snap_id.clone()),
                ..Default::default()
            },
        )
        .await?;
        cleanup(&volume, &ctx, &ids).await;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn cleanup(volume: &Arc<VolumeService>, ctx: &Ctx, ids: &[String]) {
    for id in ids {
        let _ = volume.delete_volume(ctx, id, false, false).await;
    }
}
