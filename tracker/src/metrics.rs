//! Names of the tracker's Prometheus metrics (fixed: dashboards and tests
//! read them), and their descriptions.

/// Counter: announces accepted.
pub const ANNOUNCES: &str = "shoal_tracker_announces_total";
/// Gauge: peer entries over all blobs.
pub const PEERS: &str = "shoal_tracker_peers";
/// Gauge: blobs tracked.
pub const BLOBS: &str = "shoal_tracker_blobs";
/// Counter: seeding requests to supernodes, by `result`: `ok` (2xx),
/// `rejected` (another status), `failed` (no answer in time, connection
/// error) or `dropped` (too many requests in flight already).
pub const SEED_REQUESTS: &str = "shoal_tracker_seed_requests_total";

/// Registers the descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(ANNOUNCES, "Announces accepted.");
    metrics::describe_gauge!(PEERS, "Peer entries over all blobs.");
    metrics::describe_gauge!(BLOBS, "Blobs tracked.");
    metrics::describe_counter!(
        SEED_REQUESTS,
        "Seeding requests sent to supernodes, by result (ok, rejected, failed, dropped)."
    );
}
