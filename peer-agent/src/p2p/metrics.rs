//! Names of the transport's Prometheus metrics (fixed: dashboards and tests
//! read them).

/// Counter: piece payload bytes sent to other peers.
pub const BYTES_SENT: &str = "shoal_agent_bytes_sent_total";
/// Gauge: peer connections open now, incoming and outgoing.
pub const PEERS_CONNECTED: &str = "shoal_agent_peers_connected";
/// Counter: piece requests from peers answered without the piece, by
/// `reason`: `busy` (at the upload cap), `not_have`, `redirect` (a seed
/// sent the requester to less distributed pieces), `no_such_piece` (an
/// index past the blob's last piece), `internal` (the piece could not be
/// read), `bad_request` (a garbage or truncated request: its stream is
/// reset), `timeout` (the request never arrived whole) or `cancelled` (the
/// requester reset the stream, or the connection failed, before the request
/// arrived whole).
///
/// Pieces received are counted by the swarm, which sees every source
/// (`shoal_agent_pieces_verified_total`,
/// `shoal_agent_pieces_rejected_total` in [`crate::swarm`]).
pub const REQUESTS_REFUSED: &str = "shoal_agent_piece_requests_refused_total";
