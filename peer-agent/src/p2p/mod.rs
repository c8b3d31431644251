//! Peer-to-peer transport: pieces and `have` updates between members of a
//! cluster, over QUIC (quinn) with mutual TLS.
//!
//! # Authentication
//!
//! Every daemon reads the cluster secret ([`load_cluster_secret`]). The
//! transport turns it into a certificate authority: HKDF-SHA256 of the
//! secret seeds an Ed25519 CA key that every member derives identically,
//! and each node issues itself a leaf certificate from it at startup
//! ([`ClusterTls`]). Connections use TLS 1.3 with certificates required on
//! both sides and verified by rustls' standard WebPKI verifiers against
//! that CA alone. This was chosen over self-signed certificates plus an
//! HMAC exchanged over TLS exporter material because it keeps the stock
//! verifiers (nothing like "skip verification" anywhere), authenticates
//! before QUIC accepts a single stream (so there is no window in which a
//! stranger's request is read), needs no extra protocol round trip, and
//! rcgen makes issuing the certificates a few lines. A node without the
//! secret cannot chain a certificate to the CA, so its handshake fails and
//! it is served nothing. HTTP APIs between daemons use the same secret for
//! request signatures ([`shoal_proto::wire::HttpAuth`]).
//!
//! # Modules
//!
//! - [`config`]: windows, limits and timeouts ([`P2pConfig`]);
//! - [`tls`]: the cluster CA and member certificates;
//! - [`endpoint`]: one UDP socket, one cached connection per peer
//!   ([`P2pEndpoint`]);
//! - [`connection`]: a peer connection and the task serving it
//!   ([`PeerConnection`]);
//! - [`client`]: fetching and verifying a piece ([`VerifiedPiece`]);
//! - [`server`]: answering piece requests ([`PieceServer`],
//!   [`PieceProvider`]);
//! - [`have`]: the `have` stream and [`PeerEvent`]s;
//! - [`limit`]: the upload [`RateLimiter`];
//! - [`metrics`]: metric names.
//!
//! Every read from a peer has a size limit (the frame's `MAX_LEN`, the
//! piece's length from the map) and a timeout; a peer that sends garbage
//! loses that stream, not its other streams and not other peers'.

pub mod client;
pub mod config;
pub mod connection;
pub mod endpoint;
pub mod have;
pub mod limit;
pub mod metrics;
pub mod server;
pub mod socket;
mod stream;
pub mod tls;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use client::{FetchError, VerifiedPiece};
pub use config::P2pConfig;
pub use connection::PeerConnection;
pub use endpoint::{BindError, ConnectError, P2pEndpoint};
pub use have::{HaveSendError, PeerEvent};
pub use limit::RateLimiter;
pub use server::{PieceProvider, PieceServer, ServeGate};
use shoal_proto::wire::{ClusterSecret, SecretError};
pub use tls::{ClusterTls, TlsSetupError};

/// Why the cluster secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file could not be read.
    #[error("cannot read cluster secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The contents are not an acceptable secret.
    #[error("cluster secret file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: SecretError,
    },
}

/// Reads `--cluster-secret-file`: at least 16 bytes after trimming
/// surrounding whitespace. Warns if other users may read the file.
pub fn load_cluster_secret(path: &Path) -> Result<ClusterSecret, SecretFileError> {
    let read_err = |source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(path = %path.display(), "cluster secret file is readable by every user; chmod 600 it");
    }
    let mut contents = Vec::new();
    // One byte past the limit is enough to tell "too long".
    file.take(ClusterSecret::MAX_LEN as u64 + 1)
        .read_to_end(&mut contents)
        .map_err(read_err)?;
    ClusterSecret::from_file_contents(&contents).map_err(|source| SecretFileError::Invalid {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
