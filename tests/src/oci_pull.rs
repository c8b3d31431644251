//! A puller that does what a container runtime does over the distribution
//! API, verifying every digest on the way: ping `/v2/`, GET the manifest by
//! tag (an index), pick a platform, GET its manifest by digest, GET the config
//! and each layer and check their sha256 and size.

use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::error_chain;
use crate::image::media;

/// Accept header sent for manifests, as containerd sends it.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

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

/// Pulls `req` with `client`; any failure (status, digest mismatch) is an
/// `Err` carrying the response status and body, for assertions on messages.
pub async fn pull(client: &reqwest::Client, req: &PullRequest) -> Result<Pulled, String> {
    let ping = format!("{}/v2/", req.base_url);
    let resp = client
        .get(&ping)
        .send()
        .await
        .map_err(|e| format!("GET {ping}: {}", error_chain(&e)))?;
    if !(resp.status().is_success() || resp.status() == reqwest::StatusCode::UNAUTHORIZED) {
        return Err(describe(&ping, resp).await);
    }

    let (top, top_digest) = get_manifest(client, req, &req.reference).await?;
    let media_type = top["mediaType"].as_str().unwrap_or_default().to_string();
    let (manifest, manifest_digest) = if media_type == media::INDEX
        || media_type == media::DOCKER_LIST
    {
        let entry = top["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["platform"]["os"] == req.os.as_str()
                    && m["platform"]["architecture"] == req.architecture.as_str()
            })
            .ok_or_else(|| format!("no {}/{} manifest in index {top}", req.os, req.architecture))?;
        let digest = entry["digest"]
            .as_str()
            .ok_or("index entry without digest")?;
        get_manifest(client, req, digest).await?
    } else {
        (top, top_digest.clone())
    };

    let mut wanted = vec![manifest["config"].clone()];
    wanted.extend(manifest["layers"].as_array().cloned().unwrap_or_default());
    let mut blobs = Vec::new();
    // Config first, then layers three at a time, as dockerd does.
    let config = wanted.remove(0);
    blobs.push(get_blob(client, req, &config).await?);
    let mut layers =
        futures_util::stream::iter(wanted.iter().map(|d| get_blob(client, req, d))).buffered(3);
    while let Some(layer) = layers.next().await {
        blobs.push(layer?);
    }
    Ok(Pulled {
        top_digest,
        manifest_digest,
        blobs,
    })
}

async fn get_manifest(
    client: &reqwest::Client,
    req: &PullRequest,
    reference: &str,
) -> Result<(Value, String), String> {
    let url = req.url(&format!("manifests/{reference}"));
    let resp = client
        .get(&url)
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(describe(&url, resp).await);
    }
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("read {url}: {}", error_chain(&e)))?;
    let digest = crate::image::sha256_digest(&body);
    if reference.starts_with("sha256:") && reference != digest {
        return Err(format!("{url}: body has digest {digest}"));
    }
    if let Some(h) = header_digest
        && h != digest
    {
        return Err(format!(
            "{url}: Docker-Content-Digest {h} but body has digest {digest}"
        ));
    }
    let json = serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
    Ok((json, digest))
}

async fn get_blob(
    client: &reqwest::Client,
    req: &PullRequest,
    descriptor: &Value,
) -> Result<(String, u64), String> {
    let digest = descriptor["digest"]
        .as_str()
        .ok_or_else(|| format!("descriptor without digest: {descriptor}"))?;
    let size = descriptor["size"].as_u64().unwrap_or(0);
    let url = req.url(&format!("blobs/{digest}"));
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(describe(&url, resp).await);
    }
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| format!("read {url} after {got} bytes: {}", error_chain(&e)))?;
        got += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest || got != size {
        return Err(format!(
            "{url}: got {got} bytes with digest {actual}, want {size} bytes {digest}"
        ));
    }
    Ok((actual, got))
}

async fn describe(url: &str, resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    format!("GET {url}: {status}: {body}")
}
