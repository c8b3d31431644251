//! JSON bodies of the tracker API (documented in `docs/API.md`, "Tracker
//! API") and their conversion to and from `shoal_proto::tracker_state`.
//!
//! Unknown fields are ignored, so that newer agents can add fields without
//! breaking older trackers.

use std::collections::BTreeMap;

use crate::swarm::PeerId;
use crate::tracker_state::{Announce, AnnounceReply, PeerInfo};
use crate::{Bitfield, Digest, RepoName};
use serde::{Deserialize, Serialize};

/// Longest upstream name accepted.
const MAX_UPSTREAM_LEN: usize = 255;

/// `POST /api/v1/announce` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceRequest {
    /// The blob.
    pub blob: Digest,
    /// The upstream registry the blob comes from, as configured on the
    /// supernodes (`docker.io`).
    pub upstream: String,
    /// A repository holding the blob there (`library/app`).
    pub repo: String,
    /// The announcing peer's id.
    pub peer: u64,
    /// Where other peers reach it (its QUIC address, `IP:PORT`).
    pub addr: String,
    /// Pieces it holds; `null` (or absent) before it knows the piece map.
    #[serde(default)]
    pub pieces: Option<Bitfield>,
    /// Share of its upload capacity in use, 0–100.
    #[serde(default)]
    pub upload_load: u8,
    /// Locality labels (`zone`, `rack`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether it is a supernode seeding the blob.
    #[serde(default)]
    pub seed: bool,
    /// Whether it leaves the swarm of this blob.
    #[serde(default)]
    pub stopped: bool,
}

/// Why an announce body was refused before it reached the swarm state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `upload_load` above 100.
    #[error("upload_load {0} is not a percentage (0-100)")]
    UploadLoad(u8),
    /// `upstream` is empty, too long or has characters no registry host
    /// name has.
    #[error("upstream {0:?} is not a registry name")]
    Upstream(String),
    /// `repo` is not a valid repository name.
    #[error("repo: {0}")]
    Repo(#[from] crate::NameError),
    /// `addr` is empty.
    #[error("addr must not be empty")]
    EmptyAddr,
}

/// Where a blob can be fetched from upstream: what a seeding request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Upstream registry name.
    pub upstream: String,
    /// Repository in that registry.
    pub repo: RepoName,
}

impl AnnounceRequest {
    /// Checks the fields the swarm state does not check, and splits the
    /// request into the state's [`Announce`] and the blob's [`Origin`].
    pub fn into_parts(self) -> Result<(Announce, Origin), RequestError> {
        if self.upload_load > 100 {
            return Err(RequestError::UploadLoad(self.upload_load));
        }
        if !valid_upstream(&self.upstream) {
            let shown = self.upstream.chars().take(100).collect();
            return Err(RequestError::Upstream(shown));
        }
        let repo = RepoName::parse(&self.repo)?;
        if self.addr.is_empty() {
            return Err(RequestError::EmptyAddr);
        }
        let announce = Announce {
            blob: self.blob,
            peer: PeerId(self.peer),
            addr: self.addr,
            pieces: self.pieces.unwrap_or_else(|| Bitfield::new(0)),
            upload_load: self.upload_load,
            labels: self.labels,
            seed: self.seed,
            stopped: self.stopped,
        };
        let origin = Origin {
            upstream: self.upstream,
            repo,
        };
        Ok((announce, origin))
    }
}

/// A registry name as configured with `--upstream NAME=URL`: a host name
/// with an optional port (`docker.io`, `registry.example.com:5000`).
fn valid_upstream(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_UPSTREAM_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// One peer in an [`AnnounceResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerJson {
    /// Its id.
    pub peer: u64,
    /// Its address.
    pub addr: String,
    /// Whether it is a seed (supernode).
    pub seed: bool,
}

/// `POST /api/v1/announce` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResponse {
    /// Peers to connect to, best first.
    pub peers: Vec<PeerJson>,
    /// Milliseconds until the next announce.
    pub interval_ms: u64,
}

impl From<AnnounceReply> for AnnounceResponse {
    fn from(r: AnnounceReply) -> Self {
        AnnounceResponse {
            peers: r.peers.into_iter().map(PeerJson::from).collect(),
            interval_ms: u64::try_from(r.interval.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl From<PeerInfo> for PeerJson {
    fn from(p: PeerInfo) -> Self {
        PeerJson {
            peer: p.peer.0,
            addr: p.addr,
            seed: p.seed,
        }
    }
}

/// `GET /api/v1/swarm/{digest}` response body: a debug view of one swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmView {
    /// The blob.
    pub blob: Digest,
    /// The upstream and repository last announced for it.
    pub upstream: Option<String>,
    /// See `upstream`.
    pub repo: Option<String>,
    /// The peers, by id.
    pub peers: Vec<SwarmPeer>,
}

/// One peer in a [`SwarmView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmPeer {
    /// Its id.
    pub peer: u64,
    /// Pieces it holds.
    pub pieces: u32,
    /// Pieces in the blob (0 if it does not know the piece map yet).
    pub total: u32,
}

/// `POST {supernode}/api/v1/seed` request body, sent by the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRequest {
    /// Upstream registry name.
    pub upstream: String,
    /// Repository in that registry.
    pub repo: String,
    /// The blob to fetch and seed.
    pub digest: Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AnnounceRequest {
        serde_json::from_str(
            r#"{"blob":"sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "upstream":"docker.io","repo":"library/app","peer":7,"addr":"127.0.0.1:1",
                "pieces":null,"future_field":1}"#,
        )
        .unwrap()
    }

    #[test]
    fn optional_fields_default() {
        let (a, o) = request().into_parts().unwrap();
        assert_eq!(a.peer, PeerId(7));
        assert!(a.pieces.is_empty());
        assert_eq!(a.upload_load, 0);
        assert!(a.labels.is_empty() && !a.seed && !a.stopped);
        assert_eq!(o.upstream, "docker.io");
        assert_eq!(o.repo.as_str(), "library/app");
    }

    #[test]
    fn invalid_fields_are_refused() {
        let mut r = request();
        r.upload_load = 101;
        assert_eq!(r.into_parts(), Err(RequestError::UploadLoad(101)));
        for bad in ["", "docker.io/x", "a b", &"x".repeat(300)] {
            let mut r = request();
            r.upstream = bad.into();
            assert!(matches!(r.into_parts(), Err(RequestError::Upstream(_))));
        }
        let mut r = request();
        r.repo = "Library/App".into();
        assert!(matches!(r.into_parts(), Err(RequestError::Repo(_))));
        let mut r = request();
        r.addr.clear();
        assert_eq!(r.into_parts(), Err(RequestError::EmptyAddr));
    }
}
