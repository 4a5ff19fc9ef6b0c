//! The `memory` backend: the same semantics as `local`, in memory, for tests.
//!
//! Objects are layers, as on disk: an image layer holds its uploaded bytes, a volume layer holds
//! 64 KiB blocks written into it and reads everything else through its parent layer. Snapshot
//! and delete follow the same rules as `local` (see `store.rs`): a snapshot freezes the volume's
//! layer and gives the volume a new empty one; a layer lives while a name or a child layer needs
//! it. Clones are instant.
//!
//! Differences from `local`, on purpose:
//! * qcow2 images are stored and streamed back byte for byte, but not decoded: a clone of a qcow2
//!   image reads as zeros where nothing was written into the clone.
//! * `describe` returns paths under `/nubo-memory-blockstore/` that do not exist: only a fake
//!   hypervisor can "open" them.
//! * Guests are simulated by [`MemoryStore::write_at`]; faults by [`MemoryStore::fail_next`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::qcow2;
use crate::store::BlockStore;
use crate::types::{
    clone_size, grown_size, validate_name, volume_size, ByteStream, Capacity, DiskFormat,
    ImageInfo, ObjectInfo, ObjectKind, Op, QemuDisk, QemuLocation, Source, Usage,
};

/// Block size of volume layers.
const BLOCK: u64 = 64 * 1024;

/// Default capacity of a `MemoryStore::new()`.
const DEFAULT_CAPACITY: u64 = 1 << 40;

/// An in-memory block store. Cheap to clone; clones share the same objects.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    capacity: u64,
    next_layer: u64,
    layers: HashMap<u64, Layer>,
    names: BTreeMap<String, Entry>,
    faults: HashMap<Op, u32>,
}

#[derive(Debug, Clone)]
struct Entry {
    kind: ObjectKind,
    layer: u64,
    snapshot_of: Option<String>,
}

#[derive(Debug, Clone)]
struct Layer {
    parent: Option<u64>,
    virtual_size: u64,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Image { bytes: Bytes, format: DiskFormat },
    Blocks(BTreeMap<u64, Arc<[u8]>>),
}

impl Layer {
    fn format(&self) -> DiskFormat {
        match &self.content {
            Content::Image { format, .. } => *format,
            Content::Blocks(_) => DiskFormat::Qcow2,
        }
    }

    fn allocated(&self) -> u64 {
        match &self.content {
            Content::Image { bytes, .. } => bytes.len() as u64,
            Content::Blocks(blocks) => blocks.len() as u64 * BLOCK,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with 1 TiB of capacity.
    pub fn new() -> MemoryStore {
        MemoryStore::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty store that fails with `NoSpace` once `capacity` bytes are held.
    pub fn with_capacity(capacity: u64) -> MemoryStore {
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                capacity,
                next_layer: 1,
                layers: HashMap::new(),
                names: BTreeMap::new(),
                faults: HashMap::new(),
            })),
        }
    }

    /// Makes the next `times` calls of `op` fail with `Error::Injected` (before changing
    /// anything), to test the undo paths of callers.
    /// Every object's name, and how many layers the store holds (hidden ones included): tests
    /// compare them before and after to show nothing was left behind.
    pub fn contents(&self) -> (Vec<String>, usize) {
        let state = self.lock();
        (state.names.keys().cloned().collect(), state.layers.len())
    }

    pub fn fail_next(&self, op: Op, times: u32) {
        self.lock().faults.insert(op, times);
    }

    /// Writes `data` at `offset` into a volume, as a guest would.
    pub fn write_at(&self, name: &str, offset: u64, data: &[u8]) -> Result<()> {
        let mut state = self.lock();
        let entry = state.entry_of_kind(name, ObjectKind::Volume)?.clone();
        let layer = state.layers[&entry.layer].clone();
        let end = offset + data.len() as u64;
        if end > layer.virtual_size {
            return Err(Error::InvalidSize {
                size: end,
                reason: format!(
                    "writing past the end of {name} ({} bytes)",
                    layer.virtual_size
                ),
            });
        }
        let mut updates = Vec::new();
        let mut position = offset;
        while position < end {
            let number = position / BLOCK;
            let block_start = number * BLOCK;
            let mut block = state.read_block(entry.layer, number);
            let from = (position - block_start) as usize;
            let to = ((end - block_start).min(BLOCK)) as usize;
            let source_from = (position - offset) as usize;
            block[from..to].copy_from_slice(&data[source_from..source_from + (to - from)]);
            updates.push((number, Arc::<[u8]>::from(block)));
            position = block_start + to as u64;
        }
        let new_blocks = updates
            .iter()
            .filter(|(n, _)| match &layer.content {
                Content::Blocks(blocks) => !blocks.contains_key(n),
                Content::Image { .. } => true,
            })
            .count() as u64;
        state.ensure_space(new_blocks * BLOCK)?;
        let Some(Layer {
            content: Content::Blocks(blocks),
            ..
        }) = state.layers.get_mut(&entry.layer)
        else {
            return Err(Error::Inconsistent {
                reason: format!("volume {name} has no block layer"),
            });
        };
        blocks.extend(updates);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Counts down an injected fault for `op`.
    fn fault(&mut self, op: Op) -> Result<()> {
        if let Some(times) = self.faults.get_mut(&op) {
            if *times > 0 {
                *times -= 1;
                return Err(Error::Injected { op });
            }
        }
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.names.get(name).ok_or_else(|| Error::not_found(name))
    }

    fn entry_of_kind(&self, name: &str, kind: ObjectKind) -> Result<&Entry> {
        let entry = self.entry(name)?;
        if entry.kind != kind {
            return Err(Error::WrongKind {
                name: name.to_string(),
                actual: entry.kind,
                expected: match kind {
                    ObjectKind::Image => "an image",
                    ObjectKind::Volume => "a volume",
                    ObjectKind::Snapshot => "a snapshot",
                },
            });
        }
        Ok(entry)
    }

    fn ensure_free(&self, name: &str) -> Result<()> {
        if self.names.contains_key(name) {
            return Err(Error::AlreadyExists {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    fn used(&self) -> u64 {
        self.layers.values().map(Layer::allocated).sum()
    }

    fn ensure_space(&self, needed: u64) -> Result<()> {
        let free = self.capacity.saturating_sub(self.used());
        if needed > free {
            return Err(Error::NoSpace { needed, free });
        }
        Ok(())
    }

    fn add_layer(&mut self, layer: Layer) -> u64 {
        let id = self.next_layer;
        self.next_layer += 1;
        self.layers.insert(id, layer);
        id
    }

    /// A new empty volume layer on top of `parent`.
    fn overlay(&mut self, parent: u64, virtual_size: u64) -> u64 {
        self.add_layer(Layer {
            parent: Some(parent),
            virtual_size,
            content: Content::Blocks(BTreeMap::new()),
        })
    }

    fn info(&self, entry: &Entry) -> ObjectInfo {
        let layer = &self.layers[&entry.layer];
        ObjectInfo {
            kind: entry.kind,
            format: layer.format(),
            virtual_size: layer.virtual_size,
            size: match (&layer.content, entry.kind) {
                (Content::Image { bytes, .. }, ObjectKind::Image) => bytes.len() as u64,
                _ => layer.virtual_size,
            },
        }
    }

    /// Removes the layers no name reaches.
    fn collect_garbage(&mut self) {
        let mut kept = std::collections::HashSet::new();
        for entry in self.names.values() {
            let mut next = Some(entry.layer);
            while let Some(id) = next {
                if !kept.insert(id) {
                    break;
                }
                next = self.layers.get(&id).and_then(|l| l.parent);
            }
        }
        self.layers.retain(|id, _| kept.contains(id));
    }

    /// The guest-visible content of block `number` of `layer`.
    fn read_block(&self, layer: u64, number: u64) -> Vec<u8> {
        let chain = self.chain(layer);
        read_block(&chain, number)
    }

    /// `layer` and its ancestors, top first (cheap clones: blocks and bytes are shared).
    fn chain(&self, layer: u64) -> Vec<Layer> {
        let mut chain = Vec::new();
        let mut next = Some(layer);
        while let Some(id) = next {
            let Some(layer) = self.layers.get(&id) else {
                break;
            };
            chain.push(layer.clone());
            next = layer.parent;
        }
        chain
    }
}

/// Reads block `number` through a chain of layers (top first).
fn read_block(chain: &[Layer], number: u64) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK as usize];
    let start = number * BLOCK;
    let mut limit = u64::MAX;
    for layer in chain {
        // A layer never shows bytes past its own size, nor past any size above it.
        limit = limit.min(layer.virtual_size);
        if start >= limit {
            break;
        }
        let visible = (limit - start).min(BLOCK) as usize;
        match &layer.content {
            Content::Blocks(blocks) => {
                if let Some(data) = blocks.get(&number) {
                    block[..visible].copy_from_slice(&data[..visible]);
                    return block;
                }
            }
            Content::Image { bytes, format } => {
                if *format == DiskFormat::Raw && (start as usize) < bytes.len() {
                    let end = (start as usize + visible).min(bytes.len());
                    block[..end - start as usize].copy_from_slice(&bytes[start as usize..end]);
                }
                return block;
            }
        }
    }
    block
}

#[async_trait]
impl BlockStore for MemoryStore {
    async fn store_image(&self, name: &str, mut data: ByteStream) -> Result<ImageInfo> {
        validate_name(name)?;
        {
            let mut state = self.lock();
            state.fault(Op::StoreImage)?;
            state.ensure_free(name)?;
        }
        let mut bytes = BytesMut::new();
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(Error::Upload)?;
            self.lock()
                .ensure_space((bytes.len() + chunk.len()) as u64)?;
            bytes.extend_from_slice(&chunk);
        }
        let bytes = bytes.freeze();
        let head = &bytes[..bytes.len().min(qcow2::HEADER_LEN)];
        let info = qcow2::detect(head, bytes.len() as u64)?;
        let mut state = self.lock();
        state.ensure_free(name)?;
        state.ensure_space(info.size)?;
        let layer = state.add_layer(Layer {
            parent: None,
            virtual_size: info.virtual_size,
            content: Content::Image {
                bytes,
                format: info.format,
            },
        });
        state.names.insert(
            name.to_string(),
            Entry {
                kind: ObjectKind::Image,
                layer,
                snapshot_of: None,
            },
        );
        Ok(info)
    }

    async fn create_volume(&self, name: &str, size: u64) -> Result<ObjectInfo> {
        validate_name(name)?;
        let size = volume_size(size)?;
        let mut state = self.lock();
        state.fault(Op::CreateVolume)?;
        state.ensure_free(name)?;
        let layer = state.add_layer(Layer {
            parent: None,
            virtual_size: size,
            content: Content::Blocks(BTreeMap::new()),
        });
        let entry = Entry {
            kind: ObjectKind::Volume,
            layer,
            snapshot_of: None,
        };
        let info = state.info(&entry);
        state.names.insert(name.to_string(), entry);
        Ok(info)
    }

    async fn create_clone(
        &self,
        source: &Source,
        name: &str,
        size: Option<u64>,
    ) -> Result<ObjectInfo> {
        validate_name(name)?;
        let mut state = self.lock();
        state.fault(Op::CreateClone)?;
        state.ensure_free(name)?;
        let base = state.entry_of_kind(source.name(), source.kind())?.layer;
        let size = clone_size(state.layers[&base].virtual_size, size)?;
        if let Source::Volume(volume) = source {
            let base_size = state.layers[&base].virtual_size;
            let top = state.overlay(base, base_size);
            if let Some(entry) = state.names.get_mut(volume) {
                entry.layer = top;
            }
        }
        let layer = state.overlay(base, size);
        let entry = Entry {
            kind: ObjectKind::Volume,
            layer,
            snapshot_of: None,
        };
        let info = state.info(&entry);
        state.names.insert(name.to_string(), entry);
        Ok(info)
    }

    async fn snapshot(&self, volume: &str, snapshot: &str) -> Result<ObjectInfo> {
        validate_name(snapshot)?;
        let mut state = self.lock();
        state.fault(Op::Snapshot)?;
        state.ensure_free(snapshot)?;
        let frozen = state.entry_of_kind(volume, ObjectKind::Volume)?.layer;
        let size = state.layers[&frozen].virtual_size;
        let top = state.overlay(frozen, size);
        if let Some(entry) = state.names.get_mut(volume) {
            entry.layer = top;
        }
        let entry = Entry {
            kind: ObjectKind::Snapshot,
            layer: frozen,
            snapshot_of: Some(volume.to_string()),
        };
        let info = state.info(&entry);
        state.names.insert(snapshot.to_string(), entry);
        Ok(info)
    }

    async fn resize(&self, name: &str, new_size: u64) -> Result<ObjectInfo> {
        let mut state = self.lock();
        state.fault(Op::Resize)?;
        let entry = state.entry_of_kind(name, ObjectKind::Volume)?.clone();
        let layer = state.layers.get_mut(&entry.layer).expect("named layer");
        if let Some(size) = grown_size(layer.virtual_size, new_size)? {
            layer.virtual_size = size;
        }
        Ok(state.info(&entry))
    }

    async fn flatten(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        state.fault(Op::Flatten)?;
        let entry = state.entry_of_kind(name, ObjectKind::Volume)?.clone();
        let layer = state.layers[&entry.layer].clone();
        if layer.parent.is_none() {
            return Ok(());
        }
        let chain = state.chain(entry.layer);
        let mut blocks = BTreeMap::new();
        for number in 0..layer.virtual_size.div_ceil(BLOCK) {
            let block = read_block(&chain, number);
            if block.iter().any(|&b| b != 0) {
                blocks.insert(number, Arc::<[u8]>::from(block));
            }
        }
        let existing = layer.allocated();
        state.ensure_space((blocks.len() as u64 * BLOCK).saturating_sub(existing))?;
        state.layers.insert(
            entry.layer,
            Layer {
                parent: None,
                virtual_size: layer.virtual_size,
                content: Content::Blocks(blocks),
            },
        );
        state.collect_garbage();
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        state.fault(Op::Delete)?;
        let Some(entry) = state.names.get(name) else {
            return Ok(());
        };
        if entry.kind == ObjectKind::Volume {
            let snapshots: Vec<&str> = state
                .names
                .iter()
                .filter(|(_, e)| e.snapshot_of.as_deref() == Some(name))
                .map(|(n, _)| n.as_str())
                .collect();
            if !snapshots.is_empty() {
                return Err(Error::InUse {
                    name: name.to_string(),
                    reason: format!("it has snapshots: {}", snapshots.join(", ")),
                });
            }
        }
        state.names.remove(name);
        state.collect_garbage();
        Ok(())
    }

    async fn open_read(&self, name: &str) -> Result<ByteStream> {
        let mut state = self.lock();
        state.fault(Op::OpenRead)?;
        let entry = state.entry(name)?.clone();
        let chain = state.chain(entry.layer);
        drop(state);
        if let (ObjectKind::Image, Content::Image { bytes, .. }) = (entry.kind, &chain[0].content) {
            let bytes = bytes.clone();
            let chunks = (0..bytes.len()).step_by(BLOCK as usize).map(move |start| {
                let end = (start + BLOCK as usize).min(bytes.len());
                Ok(bytes.slice(start..end))
            });
            return Ok(Box::pin(futures::stream::iter(chunks)));
        }
        let size = chain[0].virtual_size;
        let chunks = (0..size.div_ceil(BLOCK)).map(move |number| {
            let mut block = read_block(&chain, number);
            block.truncate((size - number * BLOCK).min(BLOCK) as usize);
            Ok(Bytes::from(block))
        });
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.lock().names.contains_key(name))
    }

    async fn info(&self, name: &str) -> Result<ObjectInfo> {
        let state = self.lock();
        let entry = state.entry(name)?;
        Ok(state.info(entry))
    }

    async fn describe(&self, name: &str) -> Result<QemuDisk> {
        let state = self.lock();
        let entry = state.entry(name)?;
        let format = state.layers[&entry.layer].format();
        Ok(QemuDisk {
            location: QemuLocation::File(PathBuf::from(format!(
                "/nubo-memory-blockstore/{}.{format}",
                entry.layer
            ))),
            format,
            read_only: entry.kind != ObjectKind::Volume,
        })
    }

    async fn capacity(&self) -> Result<Capacity> {
        let state = self.lock();
        let used = state.used();
        Ok(Capacity {
            total: state.capacity,
            used,
            free: state.capacity.saturating_sub(used),
        })
    }

    async fn usage(&self, name: &str) -> Result<Usage> {
        let state = self.lock();
        let layer = &state.layers[&state.entry(name)?.layer];
        Ok(Usage {
            virtual_size: layer.virtual_size,
            allocated: layer.allocated(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(data: &'static [u8]) -> ByteStream {
        Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(data))]))
    }

    async fn read(store: &MemoryStore, name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunks = store.open_read(name).await.unwrap();
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn injected_failures_change_nothing() {
        let store = MemoryStore::new();
        store.store_image("image-1", stream(b"abc")).await.unwrap();
        store.fail_next(Op::CreateClone, 2);
        let source = Source::Image("image-1".into());
        for _ in 0..2 {
            let error = store
                .create_clone(&source, "disk-1", None)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::Injected {
                        op: Op::CreateClone
                    }
                ),
                "{error}"
            );
            assert!(!store.exists("disk-1").await.unwrap());
        }
        store.create_clone(&source, "disk-1", None).await.unwrap();
    }

    #[tokio::test]
    async fn capacity_is_enforced() {
        let store = MemoryStore::with_capacity(BLOCK * 2);
        let error = store
            .store_image(
                "image-1",
                Box::pin(futures::stream::iter(vec![Ok(Bytes::from(
                    vec![1u8; (BLOCK * 3) as usize],
                ))])),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::NoSpace { .. }), "{error}");
        store.create_volume("volume-1", BLOCK * 8).await.unwrap();
        store
            .write_at("volume-1", 0, &[1; BLOCK as usize * 2])
            .unwrap();
        let full = store.write_at("volume-1", BLOCK * 4, &[1]).unwrap_err();
        assert!(matches!(full, Error::NoSpace { .. }), "{full}");
        // Rewriting allocated blocks needs no new space.
        store.write_at("volume-1", 10, &[2; 100]).unwrap();
    }

    #[tokio::test]
    async fn writes_across_blocks_and_bounds() {
        let store = MemoryStore::new();
        store.create_volume("volume-1", BLOCK * 2).await.unwrap();
        store
            .write_at("volume-1", BLOCK - 2, &[7, 8, 9, 10])
            .unwrap();
        let content = read(&store, "volume-1").await;
        assert_eq!(
            &content[(BLOCK - 3) as usize..(BLOCK + 3) as usize],
            &[0, 7, 8, 9, 10, 0]
        );
        let past = store
            .write_at("volume-1", BLOCK * 2 - 1, &[1, 2])
            .unwrap_err();
        assert!(matches!(past, Error::InvalidSize { .. }), "{past}");
        store.store_image("image-1", stream(b"abc")).await.unwrap();
        let image = store.write_at("image-1", 0, &[1]).unwrap_err();
        assert!(matches!(image, Error::WrongKind { .. }), "{image}");
    }

    #[tokio::test]
    async fn qcow2_clones_read_zeros() {
        let store = MemoryStore::new();
        let mut head = vec![0u8; 512];
        head[..4].copy_from_slice(qcow2::MAGIC);
        head[4..8].copy_from_slice(&3u32.to_be_bytes());
        head[24..32].copy_from_slice(&4096u64.to_be_bytes());
        let data: &'static [u8] = head.leak();
        store.store_image("image-q", stream(data)).await.unwrap();
        store
            .create_clone(&Source::Image("image-q".into()), "disk-1", None)
            .await
            .unwrap();
        assert_eq!(read(&store, "disk-1").await, vec![0u8; 4096]);
    }
}
