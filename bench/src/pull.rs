//! A puller that does what a container runtime does over the distribution
//! API, verifying every digest on the way: ping `/v2/`, GET the manifest by
//! tag (an index or a manifest), pick a platform, GET its manifest by digest,
//! GET the config and then the layers (three at a time, as dockerd does) and
//! check their sha256 and size.
//!
//! [`pull_with`] also times the pull, counts its bytes into a shared
//! progress counter and can cap the client's download rate with a
//! [`Throttle`] (the bench's per-node `--peer-down`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::error_chain;
use crate::image::media;
use crate::throttle::Throttle;

/// Accept header sent for manifests, as containerd sends it.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Layers fetched at once, as dockerd's default `max-concurrent-downloads`.
const LAYER_CONCURRENCY: usize = 3;

/// What to pull and from where.
#[derive(Clone, Debug)]
pub struct PullRequest {
    /// e.g. `http://127.0.0.1:PORT` (the agent).
    pub base_url: String,
    /// Repository, e.g. `library/shoal-e2e`.
    pub repo: String,
    /// Tag or digest.
    pub reference: String,
    /// Sent as `?ns=` like containerd does, if set.
    pub ns: Option<String>,
    /// Wanted platform, e.g. (`linux`, `amd64`).
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
}

impl PullRequest {
    /// A linux/amd64 pull of `repo:reference` from `base_url`.
    pub fn new(base_url: &str, repo: &str, reference: &str) -> PullRequest {
        PullRequest {
            base_url: base_url.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            reference: reference.to_string(),
            ns: None,
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }

    /// Adds `?ns=<registry>` to every request.
    pub fn with_ns(mut self, ns: &str) -> PullRequest {
        self.ns = Some(ns.to_string());
        self
    }

    fn url(&self, path: &str) -> String {
        let mut url = format!("{}/v2/{}/{path}", self.base_url, self.repo);
        if let Some(ns) = &self.ns {
            url.push_str("?ns=");
            url.push_str(ns);
        }
        url
    }
}

/// What a successful pull got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// Digest of what the tag resolved to (the index).
    pub top_digest: String,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// (digest, size) of the config and each layer, verified.
    pub blobs: Vec<(String, u64)>,
}

/// How to pull, beyond what: rate cap and progress reporting.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Caps the rate at which this client reads response bodies.
    pub throttle: Throttle,
    /// Every body byte received is added here as it arrives.
    pub progress: Option<Arc<AtomicU64>>,
}

/// A verified pull with its timing.
#[derive(Clone, Debug)]
pub struct TimedPull {
    /// What was pulled.
    pub pulled: Pulled,
    /// When the first request was sent.
    pub started: Instant,
    /// When the last blob was verified.
    pub finished: Instant,
    /// Body bytes received: manifests, config and layers.
    pub bytes: u64,
}

/// Why a pull failed. The messages carry the URL, and the registry's error
/// body where there is one.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// No response (connection refused, TLS failure, timeout).
    #[error("GET {url}: {detail}")]
    Request {
        /// The URL requested.
        url: String,
        /// The error with all its causes.
        detail: String,
    },
    /// A response with an error status.
    #[error("GET {url}: {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status received.
        status: reqwest::StatusCode,
        /// The response body (OCI error JSON, usually).
        body: String,
    },
    /// The body broke off.
    #[error("read {url} after {bytes} bytes: {detail}")]
    Body {
        /// The URL requested.
        url: String,
        /// Bytes received before the error.
        bytes: u64,
        /// The error with all its causes.
        detail: String,
    },
    /// The content is not what was asked for: wrong digest or size, not a
    /// manifest, no manifest for the wanted platform.
    #[error("{url}: {detail}")]
    Invalid {
        /// The URL requested.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// Pulls `req` with `client`; any failure (status, digest mismatch) is an
/// `Err` carrying the response status and body, for assertions on messages.
pub async fn pull(client: &reqwest::Client, req: &PullRequest) -> Result<Pulled, String> {
    pull_with(client, req, &PullOptions::default())
        .await
        .map(|timed| timed.pulled)
        .map_err(|e| e.to_string())
}

/// Pulls `req` with `client` under `opts`, timing it.
pub async fn pull_with(
    client: &reqwest::Client,
    req: &PullRequest,
    opts: &PullOptions,
) -> Result<TimedPull, PullError> {
    let started = Instant::now();
    let counter = AtomicU64::new(0);
    let ctx = Ctx {
        client,
        req,
        opts,
        counter: &counter,
    };
    let pulled = ctx.pull().await?;
    Ok(TimedPull {
        pulled,
        started,
        finished: Instant::now(),
        bytes: counter.load(Ordering::Relaxed),
    })
}

/// One pull in progress.
struct Ctx<'a> {
    client: &'a reqwest::Client,
    req: &'a PullRequest,
    opts: &'a PullOptions,
    counter: &'a AtomicU64,
}

impl Ctx<'_> {
    async fn pull(&self) -> Result<Pulled, PullError> {
        let req = self.req;
        let ping = format!("{}/v2/", req.base_url);
        let resp = self.send(&ping, None).await?;
        if !(resp.status().is_success() || resp.status() == reqwest::StatusCode::UNAUTHORIZED) {
            return Err(status_error(&ping, resp).await);
        }

        let (top, top_digest) = self.get_manifest(&req.reference).await?;
        let media_type = top["mediaType"].as_str().unwrap_or_default();
        let (manifest, manifest_digest) =
            if media_type == media::INDEX || media_type == media::DOCKER_LIST {
                let digest = platform_digest(&top, req).map_err(|detail| PullError::Invalid {
                    url: req.url(&format!("manifests/{}", req.reference)),
                    detail,
                })?;
                self.get_manifest(&digest).await?
            } else {
                (top, top_digest.clone())
            };

        let config = manifest["config"].clone();
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let mut blobs = vec![self.get_blob(&config).await?];
        // Collected first: a lazy `map` over `&self` makes the future's
        // `Send` bound unprovable (a higher-ranked lifetime) for tokio::spawn.
        let fetches: Vec<_> = layers.iter().map(|d| self.get_blob(d)).collect();
        let mut fetches = futures_util::stream::iter(fetches).buffered(LAYER_CONCURRENCY);
        while let Some(layer) = fetches.next().await {
            blobs.push(layer?);
        }
        Ok(Pulled {
            top_digest,
            manifest_digest,
            blobs,
        })
    }

    async fn send(&self, url: &str, accept: Option<&str>) -> Result<reqwest::Response, PullError> {
        let mut builder = self.client.get(url);
        if let Some(accept) = accept {
            builder = builder.header(reqwest::header::ACCEPT, accept);
        }
        builder.send().await.map_err(|e| PullError::Request {
            url: url.to_string(),
            detail: error_chain(&e),
        })
    }

    /// Reads the whole body through the throttle, handing each chunk to
    /// `sink`.
    async fn read_body(
        &self,
        url: &str,
        resp: reqwest::Response,
        mut sink: Sink<'_>,
    ) -> Result<u64, PullError> {
        let mut got = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| PullError::Body {
                url: url.to_string(),
                bytes: got,
                detail: error_chain(&e),
            })?;
            let n = chunk.len() as u64;
            got += n;
            self.counter.fetch_add(n, Ordering::Relaxed);
            if let Some(progress) = &self.opts.progress {
                progress.fetch_add(n, Ordering::Relaxed);
            }
            sink.feed(chunk).await;
            self.opts.throttle.consume(n).await;
        }
        Ok(got)
    }

    async fn get_manifest(&self, reference: &str) -> Result<(Value, String), PullError> {
        let url = self.req.url(&format!("manifests/{reference}"));
        let resp = self.send(&url, Some(MANIFEST_ACCEPT)).await?;
        if !resp.status().is_success() {
            return Err(status_error(&url, resp).await);
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut hasher = Sha256::new();
        let mut body = Vec::new();
        let sink = Sink::Keep {
            hasher: &mut hasher,
            body: &mut body,
        };
        self.read_body(&url, resp, sink).await?;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let invalid = |detail: String| PullError::Invalid {
            url: url.clone(),
            detail,
        };
        if reference.starts_with("sha256:") && reference != digest {
            return Err(invalid(format!("body has digest {digest}")));
        }
        if let Some(h) = header_digest
            && h != digest
        {
            return Err(invalid(format!(
                "Docker-Content-Digest {h} but body has digest {digest}"
            )));
        }
        let json = serde_json::from_slice(&body).map_err(|e| invalid(format!("not JSON: {e}")))?;
        Ok((json, digest))
    }

    async fn get_blob(&self, descriptor: &Value) -> Result<(String, u64), PullError> {
        let Some(digest) = descriptor["digest"].as_str() else {
            return Err(PullError::Invalid {
                url: self.req.url("manifests"),
                detail: format!("descriptor without digest: {descriptor}"),
            });
        };
        let size = descriptor["size"].as_u64().unwrap_or(0);
        let url = self.req.url(&format!("blobs/{digest}"));
        let resp = self.send(&url, None).await?;
        if !resp.status().is_success() {
            return Err(status_error(&url, resp).await);
        }
        let mut hasher = BackgroundHasher::start();
        let got = self.read_body(&url, resp, Sink::Hash(&mut hasher)).await;
        let actual = format!("sha256:{}", hex::encode(hasher.finish().await));
        let got = got?;
        if actual != digest || got != size {
            return Err(PullError::Invalid {
                url,
                detail: format!("got {got} bytes with digest {actual}, want {size} bytes {digest}"),
            });
        }
        Ok((actual, got))
    }
}

/// Where a body's chunks go.
enum Sink<'a> {
    /// Hashed inline and kept (manifests: small, needed whole).
    Keep {
        hasher: &'a mut Sha256,
        body: &'a mut Vec<u8>,
    },
    /// Hashed on a thread of its own (blobs).
    Hash(&'a mut BackgroundHasher),
}

impl Sink<'_> {
    async fn feed(&mut self, chunk: Bytes) {
        match self {
            Sink::Keep { hasher, body } => {
                hasher.update(&chunk);
                body.extend_from_slice(&chunk);
            }
            Sink::Hash(h) => h.feed(chunk).await,
        }
    }
}

/// Bytes handed to the hashing thread at once: few thread hand-offs per
/// blob, little memory.
const HASH_BATCH: usize = 1 << 20;

/// Hashes a blob on a blocking thread of its own, so that receiving the
/// next bytes overlaps hashing the last ones (one core receives, the other
/// hashes), as a runtime's pull overlaps its reads and its digest check.
struct BackgroundHasher {
    batch: Vec<Bytes>,
    batched: usize,
    tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
    job: tokio::task::JoinHandle<Sha256>,
}

impl BackgroundHasher {
    fn start() -> BackgroundHasher {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(8);
        let job = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(batch) = rx.blocking_recv() {
                for chunk in batch {
                    hasher.update(&chunk);
                }
            }
            hasher
        });
        BackgroundHasher {
            batch: Vec::new(),
            batched: 0,
            tx,
            job,
        }
    }

    async fn feed(&mut self, chunk: Bytes) {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        self.batched = 0;
        let batch = std::mem::take(&mut self.batch);
        // The hashing thread ends only when the sender is dropped.
        let _ = self.tx.send(batch).await;
    }

    /// The sha256 of every byte fed.
    async fn finish(mut self) -> [u8; 32] {
        self.flush().await;
        drop(self.tx);
        self.job
            .await
            .expect("hashing thread panicked")
            .finalize()
            .into()
    }
}

/// The digest of `req`'s platform in an index.
fn platform_digest(index: &Value, req: &PullRequest) -> Result<String, String> {
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["platform"]["os"] == req.os.as_str()
                && m["platform"]["architecture"] == req.architecture.as_str()
        })
        .ok_or_else(|| {
            format!(
                "no {}/{} manifest in index {index}",
                req.os, req.architecture
            )
        })?;
    entry["digest"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "index entry without digest".to_string())
}

async fn status_error(url: &str, resp: reqwest::Response) -> PullError {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    PullError::Status {
        url: url.to_string(),
        status,
        body,
    }
}
