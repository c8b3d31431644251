//! The benchmark image: one platform, a config and `layers` layers of
//! seeded random bytes that add up to a given size.
//!
//! The layers are not tars (nothing unpacks them in a benchmark), so any
//! size is cheap to make: the cost is filling the bytes and hashing them.

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use serde_json::json;

use super::{Blob, PlatformImage, media};

/// Builds a linux/amd64 image whose layers hold `total_bytes` random bytes
/// split as evenly as possible into `layers` layers (at least one), all
/// derived from `seed`.
pub fn synthetic(seed: u64, total_bytes: u64, layers: usize) -> PlatformImage {
    let layers = layers.max(1);
    let mut blobs = Vec::with_capacity(layers);
    for i in 0..layers {
        let size = layer_size(total_bytes, layers, i);
        let mut rng = SmallRng::seed_from_u64(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9));
        let mut data = vec![0u8; size as usize];
        rng.fill_bytes(&mut data);
        blobs.push(Blob::new(media::LAYER_TAR, data));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.title": "shoal-bench"}},
        "rootfs": {
            "type": "layers",
            "diff_ids": blobs.iter().map(|b| b.digest.clone()).collect::<Vec<_>>(),
        },
    });
    PlatformImage::assemble("linux", "amd64", &config, blobs)
}

/// Size of layer `i` of `layers` sharing `total` bytes: the first
/// `total % layers` layers get one byte more.
fn layer_size(total: u64, layers: usize, i: usize) -> u64 {
    let layers = layers as u64;
    total / layers + u64::from((i as u64) < total % layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_add_up_to_the_requested_size() {
        let img = synthetic(7, 10_001, 3);
        let sizes: Vec<u64> = img.layers.iter().map(Blob::size).collect();
        assert_eq!(sizes, vec![3334, 3334, 3333]);
        assert_eq!(img.layers.len(), 3);
        assert_ne!(img.layers[0].digest, img.layers[1].digest);
        let manifest: serde_json::Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        assert_eq!(manifest["layers"][2]["size"], 3333);
        assert_eq!(manifest["config"]["digest"], img.config.digest.as_str());
    }

    #[test]
    fn same_seed_same_image() {
        assert_eq!(
            synthetic(1, 4096, 2).manifest.digest,
            synthetic(1, 4096, 2).manifest.digest
        );
        assert_ne!(
            synthetic(1, 4096, 2).manifest.digest,
            synthetic(2, 4096, 2).manifest.digest
        );
    }
}
