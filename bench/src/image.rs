//! Seeded OCI images, built in memory, and pushing them to a registry
//! through the distribution HTTP API.
//!
//! Two kinds:
//!
//! - [`TestImage`]: a real multi-platform image for the end-to-end tests.
//!   Each layer is a gzip'd tar holding one file of random bytes; the config
//!   has the `rootfs.diff_ids` runtimes verify when they unpack; the platform
//!   manifests are OCI image manifests and the tag points at an OCI index.
//!   Layers with the same [`LayerSpec`] are byte-identical, so platforms can
//!   share them as real images do.
//! - [`synthetic`]: one platform manifest, a config and L layers of random
//!   bytes (not valid tars) totalling F bytes: what the benchmarks
//!   distribute, cheap to generate at any size.
//!
//! [`push`] uploads either kind to a real registry.

use std::collections::HashMap;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use serde_json::json;
use sha2::{Digest, Sha256};

mod push;
mod synthetic;

pub use push::PushError;
pub use synthetic::synthetic;

/// OCI media types.
pub mod media {
    /// OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// gzip'd tar layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Uncompressed tar layer.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Docker manifest list (accepted by pullers).
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest (accepted by pullers).
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A content-addressed blob (a manifest, a config or a layer).
#[derive(Clone, Debug)]
pub struct Blob {
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// Media type as referenced by its parent.
    pub media_type: &'static str,
    /// The content.
    pub bytes: Bytes,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&bytes),
            media_type,
            bytes: Bytes::from(bytes),
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// One layer: `size` random bytes derived from the image seed and `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerSpec {
    /// Same key and size, same layer.
    pub key: u64,
    /// Size of the file inside the layer, in bytes.
    pub size: usize,
}

/// One platform of an image.
#[derive(Clone, Debug)]
pub struct PlatformSpec {
    /// e.g. `linux`.
    pub os: &'static str,
    /// e.g. `amd64`.
    pub architecture: &'static str,
    /// Layers, bottom first.
    pub layers: Vec<LayerSpec>,
}

/// One platform's image: manifest, config and layers.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// e.g. `linux`.
    pub os: &'static str,
    /// e.g. `amd64`.
    pub architecture: &'static str,
    /// The OCI image manifest.
    pub manifest: Blob,
    /// The image config.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Blob>,
}

impl PlatformImage {
    /// The image of `os`/`architecture` with `config` (the image config's
    /// JSON) and `layers`, bottom first, and an OCI manifest listing them.
    fn assemble(
        os: &'static str,
        architecture: &'static str,
        config: &serde_json::Value,
        layers: Vec<Blob>,
    ) -> PlatformImage {
        let config = Blob::new(media::CONFIG, to_json(config));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        PlatformImage {
            os,
            architecture,
            manifest: Blob::new(media::MANIFEST, to_json(&manifest)),
            config,
            layers,
        }
    }

    /// Config and layers: everything a runtime downloads for this platform.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// Bytes a runtime downloads for this platform: manifest, config and
    /// layers.
    pub fn pull_bytes(&self) -> u64 {
        self.manifest.size() + self.blobs().map(Blob::size).sum::<u64>()
    }
}

/// A multi-platform image: an OCI index over platform manifests.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// The OCI index the tag points at.
    pub index: Blob,
    /// The platforms, in index order.
    pub platforms: Vec<PlatformImage>,
}

impl TestImage {
    /// The image the end-to-end tests pull: linux/amd64 with three layers
    /// (2 MiB, 3 MiB, 256 KiB) and linux/arm64 with two (sharing the 2 MiB
    /// base layer).
    pub fn standard() -> TestImage {
        const MIB: usize = 1024 * 1024;
        let base = LayerSpec {
            key: 1,
            size: 2 * MIB,
        };
        TestImage::generate(
            0x5eed_0001,
            &[
                PlatformSpec {
                    os: "linux",
                    architecture: "amd64",
                    layers: vec![
                        base,
                        LayerSpec {
                            key: 2,
                            size: 3 * MIB,
                        },
                        LayerSpec {
                            key: 3,
                            size: MIB / 4,
                        },
                    ],
                },
                PlatformSpec {
                    os: "linux",
                    architecture: "arm64",
                    layers: vec![
                        base,
                        LayerSpec {
                            key: 4,
                            size: 2 * MIB,
                        },
                    ],
                },
            ],
        )
    }

    /// Builds an image from `platforms`, deterministically from `seed`.
    pub fn generate(seed: u64, platforms: &[PlatformSpec]) -> TestImage {
        let mut layers: HashMap<LayerSpec, (Blob, String)> = HashMap::new();
        let mut built = Vec::new();
        for p in platforms {
            let mut blobs = Vec::new();
            let mut diff_ids = Vec::new();
            for spec in &p.layers {
                let (blob, diff_id) = layers
                    .entry(*spec)
                    .or_insert_with(|| make_layer(seed, *spec))
                    .clone();
                blobs.push(blob);
                diff_ids.push(diff_id);
            }
            let config = json!({
                "created": "2024-01-01T00:00:00Z",
                "architecture": p.architecture,
                "os": p.os,
                "config": {
                    "Cmd": ["/bin/true"],
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "Labels": {"org.opencontainers.image.title": "shoal-e2e"},
                },
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            built.push(PlatformImage::assemble(
                p.os,
                p.architecture,
                &config,
                blobs,
            ));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::INDEX,
            "manifests": built.iter().map(|p| {
                let mut d = p.manifest.descriptor();
                d["platform"] = json!({"architecture": p.architecture, "os": p.os});
                d
            }).collect::<Vec<_>>(),
        });
        TestImage {
            index: Blob::new(media::INDEX, to_json(&index)),
            platforms: built,
        }
    }

    /// The image for one architecture; panics if there is none.
    pub fn platform(&self, architecture: &str) -> &PlatformImage {
        self.platforms
            .iter()
            .find(|p| p.architecture == architecture)
            .unwrap_or_else(|| panic!("test image has no {architecture} platform"))
    }

    /// Every distinct config and layer blob of every platform.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut seen = std::collections::HashSet::new();
        self.platforms
            .iter()
            .flat_map(PlatformImage::blobs)
            .filter(|b| seen.insert(b.digest.clone()))
            .collect()
    }
}

fn to_json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize JSON")
}

/// Builds one layer: returns the gzip'd tar blob and the diff_id (sha256 of
/// the uncompressed tar).
fn make_layer(seed: u64, spec: LayerSpec) -> (Blob, String) {
    let mut rng = SmallRng::seed_from_u64(seed ^ spec.key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut data = vec![0u8; spec.size];
    rng.fill_bytes(&mut data);

    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_mtime(1_700_000_000);
    dir.set_size(0);
    tar.append_data(&mut dir, "shoal/", std::io::empty())
        .expect("tar dir");
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_mtime(1_700_000_000);
    file.set_size(data.len() as u64);
    tar.append_data(
        &mut file,
        format!("shoal/layer-{}.bin", spec.key),
        &data[..],
    )
    .expect("tar file");
    let tar = tar.into_inner().expect("finish tar");
    let diff_id = sha256_digest(&tar);

    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    let gz = gz.finish().expect("finish gzip");
    (Blob::new(media::LAYER_GZIP, gz), diff_id)
}
