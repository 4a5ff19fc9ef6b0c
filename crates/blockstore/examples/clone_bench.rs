//! Benchmark of the local backend: copy-on-write clone time, upload and download throughput.
//!
//! ```text
//! cargo run --release -p nubo-blockstore --example clone_bench [DIR]
//! ```
//!
//! Prints figures, asserts nothing. DIR (default: the system temp dir) must be on the disk to
//! measure; the baseline `cat file > copy` runs on the same disk in the same run. Needs about
//! 3 GiB free and qemu-utils.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use nubo_blockstore::{BlockStore, ByteStream, LocalStore, Source};
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1 << 20;
const CLONE_RUNS: usize = 20;
const TRANSFER_RUNS: usize = 3;
const TRANSFER_SIZE: u64 = 1 << 30;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = base.join(format!("nubo-clone-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run(&work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(work: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = LocalStore::open(work.join("blockstore"))?;
    println!("store: {}", store.dir().display());

    // Images: 10 MiB of data, and 10 GiB with 1 MiB of data (sparse).
    let started = Instant::now();
    store
        .store_image("image-10m", data_stream(10 * MIB, 10 * MIB))
        .await?;
    let small = started.elapsed();
    let started = Instant::now();
    store
        .store_image("image-10g", data_stream(10 * 1024 * MIB, MIB))
        .await?;
    let big = started.elapsed();
    println!(
        "store_image 10 MiB: {:.1} ms; 10 GiB sparse (1 MiB data): {:.1} ms",
        ms(small),
        ms(big)
    );

    for image in ["image-10m", "image-10g"] {
        let source = Source::Image(image.to_string());
        let mut times = Vec::new();
        for i in 0..CLONE_RUNS {
            let name = format!("{image}-clone-{i}");
            let started = Instant::now();
            store.create_clone(&source, &name, None).await?;
            times.push(started.elapsed());
        }
        for i in 0..CLONE_RUNS {
            store.delete(&format!("{image}-clone-{i}")).await?;
        }
        print_times(&format!("clone of {image}"), &mut times);
    }

    // Snapshot and clone-from-snapshot of a volume cloned from the big image.
    store
        .create_clone(&Source::Image("image-10g".into()), "volume-1", None)
        .await?;
    let mut snapshots = Vec::new();
    let mut from_snapshot = Vec::new();
    for i in 0..CLONE_RUNS {
        let started = Instant::now();
        store.snapshot("volume-1", &format!("snapshot-{i}")).await?;
        snapshots.push(started.elapsed());
        let started = Instant::now();
        store
            .create_clone(
                &Source::Snapshot(format!("snapshot-{i}")),
                &format!("volume-from-{i}"),
                None,
            )
            .await?;
        from_snapshot.push(started.elapsed());
    }
    print_times("snapshot of a volume", &mut snapshots);
    print_times("clone of a snapshot", &mut from_snapshot);

    // Upload and download of 1 GiB against cat on the same disk.
    let source = work.join("source.bin");
    write_random_file(&source, TRANSFER_SIZE)?;
    let copy = work.join("copy.bin");
    let download = work.join("download.bin");
    let mut cat = Vec::new();
    let mut cat_sync = Vec::new();
    let mut upload = Vec::new();
    let mut download_times = Vec::new();
    let mut download_std = Vec::new();
    let mut drain = Vec::new();
    for run in 0..TRANSFER_RUNS {
        cat.push(shell(&format!(
            "cat {} > {}",
            source.display(),
            copy.display()
        ))?);
        std::fs::remove_file(&copy)?;
        cat_sync.push(shell(&format!(
            "cat {} > {} && sync {}",
            source.display(),
            copy.display(),
            copy.display()
        ))?);
        std::fs::remove_file(&copy)?;

        let name = format!("image-1g-{run}");
        let stream = file_stream(std::fs::File::open(&source)?);
        let started = Instant::now();
        store.store_image(&name, stream).await?;
        upload.push(started.elapsed());

        let started = Instant::now();
        let mut out = tokio::fs::File::create(&download).await?;
        let mut stream = store.open_read(&name).await?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        drop(out);
        download_times.push(started.elapsed());
        std::fs::remove_file(&download)?;

        let started = Instant::now();
        let mut out = std::fs::File::create(&download)?;
        let mut stream = store.open_read(&name).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            tokio::task::block_in_place(|| std::io::Write::write_all(&mut out, &chunk))?;
        }
        drop(out);
        download_std.push(started.elapsed());
        std::fs::remove_file(&download)?;

        let started = Instant::now();
        let mut stream = store.open_read(&name).await?;
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk?.len();
        }
        assert_eq!(total as u64, TRANSFER_SIZE);
        drain.push(started.elapsed());
        store.delete(&name).await?;
    }
    println!("1 GiB transfers, median of {TRANSFER_RUNS} (page cache warm, same disk):");
    print_rate("cat file > copy", &mut cat);
    print_rate("cat file > copy && sync copy", &mut cat_sync);
    print_rate("store_image (fsyncs before rename)", &mut upload);
    print_rate(
        "open_read into a file, tokio::fs writes",
        &mut download_times,
    );
    print_rate("open_read into a file, std::fs writes", &mut download_std);
    print_rate("open_read drained, nothing written", &mut drain);
    Ok(())
}

/// A stream of `size` bytes in 1 MiB chunks: pseudo-random for the first `data` bytes, zeros
/// after (the zero chunks are shared, not allocated).
fn data_stream(size: u64, data: u64) -> ByteStream {
    static ZEROS: [u8; MIB as usize] = [0; MIB as usize];
    let chunks = (0..size.div_ceil(MIB)).map(move |i| {
        let len = (size - i * MIB).min(MIB) as usize;
        if i * MIB < data {
            Ok(Bytes::from(pseudo_random(len, i + 1)))
        } else {
            Ok(Bytes::from_static(&ZEROS[..len]))
        }
    });
    Box::pin(futures::stream::iter(chunks))
}

/// Streams a file from a blocking thread in 1 MiB chunks, like an HTTP body would arrive.
fn file_stream(mut file: std::fs::File) -> ByteStream {
    use std::io::Read;
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buffer = vec![0u8; MIB as usize];
        match file.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                buffer.truncate(n);
                if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ))
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    data
}

fn write_random_file(path: &Path, size: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..size / MIB {
        file.write_all(&pseudo_random(MIB as usize, i + 7))?;
    }
    file.flush()?;
    file.get_ref().sync_all()
}

fn shell(command: &str) -> std::io::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("sh").arg("-c").arg(command).status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("{command}: {status}")));
    }
    Ok(started.elapsed())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn print_times(label: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "{label}: median {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn print_rate(label: &str, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "  {label}: {:.0} MiB/s ({:.2} s)",
        TRANSFER_SIZE as f64 / MIB as f64 / median.as_secs_f64(),
        median.as_secs_f64()
    );
}
