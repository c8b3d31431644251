//! Transport settings, with defaults from DESIGN.md ("Dependencies": quinn).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};

/// Settings of a [`P2pEndpoint`](super::P2pEndpoint).
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// UDP address to listen and dial from (one socket for both).
    pub listen: SocketAddr,
    /// Flow-control window of one stream. The quinn default (1.25 MB)
    /// caps one stream at ~62 MB/s at 20 ms RTT; 16 MiB allows ~800 MB/s.
    pub stream_receive_window: u32,
    /// Flow-control window of one connection, all streams together.
    pub connection_receive_window: u64,
    /// Bytes queued for sending per connection; at least 4× the stream
    /// window so several pieces stay in flight.
    pub send_window: u64,
    /// Concurrent piece requests a peer may have open on one connection.
    pub max_streams_per_connection: u32,
    /// Connections (incoming and outgoing) open at once; more are refused.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Ping interval that keeps a quiet connection (and NAT state) alive.
    pub keep_alive: Duration,
    /// Limit on dialling and the TLS handshake.
    pub connect_timeout: Duration,
    /// Limit on every single read from a peer (a header, a chunk of a
    /// piece) and on every write.
    pub io_timeout: Duration,
    /// Largest UDP payload this node accepts and probes for (path MTU
    /// discovery): see [`DEFAULT_MAX_UDP_PAYLOAD`].
    pub max_udp_payload: u16,
}

/// Default of [`P2pConfig::max_udp_payload`]: a 9000-byte jumbo frame less
/// the IPv6 and UDP headers. Connections start at QUIC's 1200 bytes and
/// path MTU discovery probes upwards, so a path of 1500-byte frames settles
/// at 1441 after a few lost probes ([`MTU_SEARCH_STEP`]), while jumbo-frame
/// networks (and loopback) carry six times fewer packets for the same
/// bytes. quinn's own default (1452) never tries.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 8952;
/// Smallest step of the path MTU search (quinn's default is 20 bytes).
/// Every probe is padded to the size it tries, and quinn parses padding
/// one byte at a time: climbing from 1200 to 8952 bytes took nine probes
/// per connection, and at the start of a fanout, when every node opens
/// dozens of connections at once, parsing them was a fifth of the CPU
/// time. With 240 the search takes six probes (a third fewer padded bytes)
/// and still settles at 1441 bytes on a path of 1500-byte frames.
pub const MTU_SEARCH_STEP: u16 = 240;
/// Smallest payload QUIC allows (RFC 9000, 14).
pub const MIN_UDP_PAYLOAD: u16 = 1200;
/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: u16 = 65527;

/// The `max_udp_payload` a daemon runs with: its flag, else its config
/// file's `p2p_max_udp_payload`, else [`DEFAULT_MAX_UDP_PAYLOAD`]; refused
/// outside what QUIC and UDP allow.
pub fn max_udp_payload(flag: Option<u16>, file: Option<u16>) -> Result<u16, String> {
    let bytes = flag.or(file).unwrap_or(DEFAULT_MAX_UDP_PAYLOAD);
    if (MIN_UDP_PAYLOAD..=MAX_UDP_PAYLOAD).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "p2p_max_udp_payload {bytes} is outside {MIN_UDP_PAYLOAD}..={MAX_UDP_PAYLOAD} bytes"
        ))
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7401)),
            stream_receive_window: 16 << 20,
            connection_receive_window: 64 << 20,
            send_window: 64 << 20,
            max_streams_per_connection: 64,
            max_connections: 512,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
        }
    }
}

impl P2pConfig {
    /// Defaults, listening on `listen`.
    pub fn with_listen(listen: SocketAddr) -> Self {
        P2pConfig {
            listen,
            ..Self::default()
        }
    }

    /// The quinn transport parameters these settings imply. Segmentation
    /// offload (GSO) stays on: it doubles loopback throughput here.
    pub fn transport(&self) -> Arc<TransportConfig> {
        let mut t = TransportConfig::default();
        t.stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u64(self.connection_receive_window).unwrap_or(VarInt::MAX))
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams_per_connection))
            // One `have` stream per direction.
            .max_concurrent_uni_streams(VarInt::from_u32(1))
            .max_idle_timeout(IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(Some(self.keep_alive))
            .enable_segmentation_offload(true);
        let mut mtu = MtuDiscoveryConfig::default();
        mtu.upper_bound(self.max_udp_payload)
            .minimum_change(MTU_SEARCH_STEP);
        t.mtu_discovery_config(Some(mtu));
        Arc::new(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let c = P2pConfig::default();
        assert!((8 << 20..=16 << 20).contains(&c.stream_receive_window));
        assert!(c.send_window >= 4 * u64::from(c.stream_receive_window));
        assert_eq!(c.max_streams_per_connection, 64);
        assert!(c.keep_alive < c.idle_timeout);
        assert_eq!(c.max_udp_payload, 8952);
        assert_eq!(max_udp_payload(None, None), Ok(8952));
        assert_eq!(max_udp_payload(Some(1452), Some(9000)), Ok(1452));
        assert_eq!(max_udp_payload(None, Some(9000)), Ok(9000));
        assert!(max_udp_payload(Some(1199), None).is_err());
        assert!(max_udp_payload(None, Some(65528)).is_err());
        c.transport();
    }
}
