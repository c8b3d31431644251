//! Manifests: HEAD for cheap tag resolution, GET with a size bound and a
//! digest check.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};
use shoal_proto::{Digest, Reference, RepoName};

use super::request::{Req, content_length, header_str};
use super::{Inner, Manifest, ManifestHead, UpstreamError};

/// Largest manifest accepted (the limit registries and containerd use).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// Manifest media types asked for when the caller passes none: OCI and
/// Docker, single-platform and multi-platform.
pub const DEFAULT_MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

impl Inner {
    pub(super) fn manifest_req(
        &self,
        method: Method,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Req, UpstreamError> {
        let accept = if accept.is_empty() {
            DEFAULT_MANIFEST_MEDIA_TYPES
        } else {
            accept
        };
        let value = HeaderValue::from_str(&accept.join(", "))
            .map_err(|_| UpstreamError::Config(format!("invalid Accept media types {accept:?}")))?;
        let mut req = Req::new(
            method,
            self.url(&format!("/v2/{repo}/manifests/{reference}")),
        );
        req.headers.insert(ACCEPT, value);
        Ok(req)
    }

    pub(super) async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<ManifestHead, UpstreamError> {
        let req = self.manifest_req(Method::HEAD, repo, reference, accept)?;
        let resp = self.send_authed(&req, repo).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp).await);
        }
        let headers = resp.headers();
        let announced = match header_str(headers, DOCKER_CONTENT_DIGEST) {
            Some(s) => Some(Digest::parse(s).map_err(|e| {
                UpstreamError::Protocol(format!("unusable Docker-Content-Digest: {e}"))
            })?),
            None => None,
        };
        let digest = match (reference, announced) {
            (Reference::Digest(asked), Some(got)) if got != *asked => {
                return Err(UpstreamError::DigestMismatch {
                    expected: *asked,
                    actual: got,
                });
            }
            (_, Some(got)) => got,
            (Reference::Digest(asked), None) => *asked,
            (Reference::Tag(_), None) => {
                return Err(UpstreamError::Protocol(
                    "HEAD response has no Docker-Content-Digest; fetch the manifest instead".into(),
                ));
            }
        };
        let media_type = media_type(headers).ok_or_else(|| {
            UpstreamError::Protocol("manifest HEAD response has no Content-Type".into())
        })?;
        let size = content_length(headers)?.ok_or_else(|| {
            UpstreamError::Protocol("manifest HEAD response has no Content-Length".into())
        })?;
        Ok(ManifestHead {
            digest,
            media_type,
            size,
        })
    }

    pub(super) async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Manifest, UpstreamError> {
        let req = self.manifest_req(Method::GET, repo, reference, accept)?;
        let mut resp = self.send_authed(&req, repo).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp).await);
        }
        let bytes = self.read_body(&mut resp, MAX_MANIFEST_SIZE).await?;
        let actual = Digest::of(&bytes);
        let headers = resp.headers();
        let expected = match reference {
            Reference::Digest(asked) => Some(*asked),
            // For a tag only the upstream's own claim can be checked.
            Reference::Tag(_) => header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|s| {
                Digest::parse(s)
                    .inspect_err(|e| tracing::debug!(error = %e, "ignoring Docker-Content-Digest"))
                    .ok()
            }),
        };
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(UpstreamError::DigestMismatch { expected, actual });
        }
        let media_type = media_type(headers)
            .or_else(|| embedded_media_type(&bytes))
            .ok_or_else(|| {
                UpstreamError::Protocol("manifest has neither Content-Type nor mediaType".into())
            })?;
        Ok(Manifest {
            digest: actual,
            media_type,
            bytes,
        })
    }
}

/// `Content-Type` without parameters, if present and not empty.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, CONTENT_TYPE.as_str())?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_owned())
}

/// The manifest's own `mediaType` field.
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()?
        .media_type
        .filter(|m| !m.is_empty())
}
