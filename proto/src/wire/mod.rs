//! The peer-to-peer wire protocol: what two agents say to each other over
//! one QUIC connection, and how daemons authenticate to each other.
//!
//! A connection is negotiated with the ALPN [`ALPN`] (`shoal/2`); a future
//! incompatible protocol gets a new ALPN instead of a version field in every
//! message. Peers prove cluster membership during the TLS handshake itself
//! (member certificates derived from the [`ClusterSecret`], built by the
//! agent's transport), so no application message carries credentials and
//! nothing below is exchanged before both sides are authenticated.
//!
//! On the connection:
//!
//! - one bidirectional stream per piece request: the client writes one
//!   [`PieceRequest`] frame, the server answers one [`PieceResponse`] frame
//!   and, after [`PieceResponse::Ok`], exactly `len` raw piece bytes (not
//!   framed, so they can go from the socket to the file unchanged); a seed
//!   may answer [`PieceResponse::Redirect`] instead, naming pieces it would
//!   rather send;
//! - one unidirectional `have` stream in each direction, a sequence of
//!   [`HaveMessage`] frames: for each blob the full bitfield first, then
//!   single indices. [`HaveSequence`] checks that order on both ends.
//!
//! Every message is a [`Message`](crate::frame::Message) with a tight
//! `MAX_LEN`, framed by [`encode_frame`](crate::frame::encode_frame) and
//! [`FrameDecoder`](crate::frame::FrameDecoder).
//!
//! HTTP APIs between daemons (agent → tracker, agent → supernode) carry an
//! `Authorization: Shoal …` header made and checked by [`HttpAuth`], keyed by
//! the same cluster secret.
//!
//! Modules: [`piece`] (request and response headers), [`have`] (bitfield
//! updates), [`secret`] (the cluster secret and key derivation),
//! [`http_auth`] (request signatures).

pub mod have;
pub mod http_auth;
pub mod piece;
pub mod secret;

pub use have::{HaveError, HaveMessage, HaveSequence};
pub use http_auth::{AUTH_SCHEME, HttpAuth, HttpAuthError};
pub use piece::{ErrorCode, MAX_HINT, PieceRequest, PieceResponse};
pub use secret::{ClusterSecret, SecretError};

/// ALPN protocol identifier of Shoal's peer-to-peer protocol, version 2:
/// piece maps list sha256 chaining values ([`crate::PieceMap`]); version 1
/// listed each piece's own sha256, so the two cannot verify each other's
/// pieces and must not connect.
pub const ALPN: &[u8] = b"shoal/2";

#[cfg(test)]
mod tests;
