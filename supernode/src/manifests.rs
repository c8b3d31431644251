//! Tag resolution and the manifest cache.
//!
//! A tag is resolved to a digest at most once per TTL per tag, with a HEAD
//! where the upstream allows it (registries count manifest GETs as pulls);
//! manifests are cached by digest forever, since a digest names exactly one
//! content. Concurrent requests for one tag wait for one resolution. When
//! the upstream fails, a previously resolved tag is still served (stale)
//! rather than failing a rollout over a registry outage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_agent::registry::RegistryError;
use shoal_agent::store::ContentStore;
use shoal_agent::upstream::{Upstream, UpstreamError};
use shoal_proto::media::MANIFEST_ACCEPT;
use shoal_proto::{Digest, Reference, RepoName};

/// A manifest ready to serve.
#[derive(Debug, Clone)]
pub struct CachedManifest {
    /// Media type.
    pub media_type: String,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Content, byte for byte as the upstream sent it.
    pub bytes: Bytes,
}

type TagKey = (String, RepoName, String);

/// Manifests by digest (on disk) and tag resolutions (in memory, with TTL).
pub struct ManifestCache {
    store: ContentStore,
    ttl: Duration,
    tags: Mutex<HashMap<TagKey, (Digest, Instant)>>,
    inflight: Mutex<HashMap<TagKey, Arc<tokio::sync::Mutex<()>>>>,
}

fn manifest_error(e: UpstreamError, reference: &Reference) -> RegistryError {
    match e {
        UpstreamError::NotFound => RegistryError::manifest_unknown(reference),
        other => other.into(),
    }
}

impl ManifestCache {
    /// A cache storing manifests in `store` and reusing tag resolutions for `ttl`.
    pub fn new(store: ContentStore, ttl: Duration) -> Self {
        ManifestCache {
            store,
            ttl,
            tags: Mutex::default(),
            inflight: Mutex::default(),
        }
    }

    /// The manifest `reference` of `repo` on `upstream`.
    pub async fn get(
        &self,
        upstream: &Upstream,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<CachedManifest, RegistryError> {
        match reference {
            Reference::Digest(d) => self.by_digest(upstream, repo, d).await,
            Reference::Tag(t) => {
                let key = (
                    upstream.name().to_owned(),
                    repo.clone(),
                    t.as_str().to_owned(),
                );
                let lock = self
                    .inflight
                    .lock()
                    .expect("lock")
                    .entry(key.clone())
                    .or_default()
                    .clone();
                let result = {
                    let _one_at_a_time = lock.lock().await;
                    self.by_tag(upstream, repo, reference, &key).await
                };
                let mut inflight = self.inflight.lock().expect("lock");
                if Arc::strong_count(&lock) == 2 {
                    inflight.remove(&key);
                }
                result
            }
        }
    }

    async fn stored(&self, digest: &Digest) -> Option<CachedManifest> {
        let (media_type, bytes) = self.store.get_manifest(digest).await?;
        Some(CachedManifest {
            media_type,
            digest: *digest,
            bytes,
        })
    }

    async fn by_digest(
        &self,
        upstream: &Upstream,
        repo: &RepoName,
        d: &Digest,
    ) -> Result<CachedManifest, RegistryError> {
        if let Some(m) = self.stored(d).await {
            return Ok(m);
        }
        let reference = Reference::Digest(*d);
        let m = upstream
            .get_manifest(repo, &reference, &MANIFEST_ACCEPT)
            .await
            .map_err(|e| manifest_error(e, &reference))?;
        self.keep(m.digest, m.media_type, m.bytes).await
    }

    async fn by_tag(
        &self,
        upstream: &Upstream,
        repo: &RepoName,
        reference: &Reference,
        key: &TagKey,
    ) -> Result<CachedManifest, RegistryError> {
        let known = self.tags.lock().expect("lock").get(key).copied();
        if let Some((d, at)) = known
            && at.elapsed() < self.ttl
            && let Some(m) = self.stored(&d).await
        {
            return Ok(m);
        }
        let head = upstream
            .head_manifest(repo, reference, &MANIFEST_ACCEPT)
            .await;
        match head {
            Ok(h) => {
                if let Some(m) = self.stored(&h.digest).await {
                    self.remember(key, h.digest);
                    return Ok(m);
                }
            }
            Err(UpstreamError::NotFound) => return Err(RegistryError::manifest_unknown(reference)),
            Err(e) if e.is_retryable() => return self.stale_or(known, key, e, reference).await,
            // Some registries refuse HEAD or omit the digest header: use GET.
            Err(e) => tracing::debug!(error = %e, "manifest HEAD failed; using GET"),
        }
        match upstream
            .get_manifest(repo, reference, &MANIFEST_ACCEPT)
            .await
        {
            Ok(m) => {
                let digest = m.digest;
                let out = self.keep(digest, m.media_type, m.bytes).await?;
                self.remember(key, digest);
                Ok(out)
            }
            Err(e) if e.is_retryable() => self.stale_or(known, key, e, reference).await,
            Err(e) => Err(manifest_error(e, reference)),
        }
    }

    /// Serves the last known resolution when the upstream is unavailable.
    async fn stale_or(
        &self,
        known: Option<(Digest, Instant)>,
        key: &TagKey,
        e: UpstreamError,
        reference: &Reference,
    ) -> Result<CachedManifest, RegistryError> {
        if let Some((d, _)) = known
            && let Some(m) = self.stored(&d).await
        {
            tracing::warn!(upstream = %key.0, repo = %key.1, tag = %key.2, error = %e,
                "upstream unavailable; serving the last known resolution of this tag");
            return Ok(m);
        }
        Err(manifest_error(e, reference))
    }

    fn remember(&self, key: &TagKey, digest: Digest) {
        self.tags
            .lock()
            .expect("lock")
            .insert(key.clone(), (digest, Instant::now()));
    }

    async fn keep(
        &self,
        digest: Digest,
        media_type: String,
        bytes: Bytes,
    ) -> Result<CachedManifest, RegistryError> {
        if let Err(e) = self.store.put_manifest(&digest, &media_type, &bytes).await {
            tracing::warn!(%digest, error = %e, "cannot store manifest; serving it uncached");
        }
        Ok(CachedManifest {
            media_type,
            digest,
            bytes,
        })
    }
}
