//! Names of the transport's Prometheus metrics (fixed: dashboards and tests
//! read them).

/// Counter: piece payload bytes sent to other peers.
pub const BYTES_SENT: &str = "shoal_agent_bytes_sent_total";
/// Gauge: peer connections open now, incoming and outgoing.
pub const PEERS_CONNECTED: &str = "shoal_agent_peers_connected";
/// Counter: pieces received whose sha256 matched the piece map.
pub const PIECES_VERIFIED: &str = "shoal_agent_pieces_verified_total";
/// Counter: pieces received and refused (wrong hash or wrong length).
pub const PIECES_REJECTED: &str = "shoal_agent_pieces_rejected_total";
