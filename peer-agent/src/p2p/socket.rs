//! The UDP socket under quinn: kernel buffers sized for a busy node, and
//! segmented sends kept within what the kernel accepts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `listen` for QUIC with packets of at most `max_udp_payload`
/// bytes: enlarged kernel buffers, and no more packets per segmented
/// (GSO) send than the kernel takes ([`SegmentCapped`]).
pub fn udp_socket(
    listen: SocketAddr,
    max_udp_payload: u16,
) -> io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
    let socket = std::net::UdpSocket::bind(listen)?;
    size_socket_buffers(&socket);
    let socket = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket)?;
    Ok(Arc::new(SegmentCapped::new(socket, max_udp_payload)))
}

/// Most bytes one segmented (GSO) send may carry: the kernel takes it as a
/// single datagram before cutting it into packets, so it must fit IPv4's
/// 16-bit total length less the IP and UDP headers.
const MAX_SEGMENTED_SEND: usize = 65_535 - 20 - 8;

/// The UDP socket quinn sends through, allowing no more packets per
/// segmented send than fit in [`MAX_SEGMENTED_SEND`] at the largest
/// payload the endpoint probes for.
///
/// quinn batches up to 10 packets per send, and quinn-udp drops a send the
/// kernel refuses as too large (`EMSGSIZE`) without a word, as it does a
/// lost MTU probe. With 8952-byte packets, every batch of 8 to 10 vanished:
/// QUIC counted the packets lost, shrank its window and sent them again, and
/// piece requests waited out their 10 s timeout. quinn's own 1452-byte
/// default never reaches the limit.
#[derive(Debug)]
struct SegmentCapped {
    inner: Arc<dyn quinn::AsyncUdpSocket>,
    max_segments: usize,
}

impl SegmentCapped {
    fn new(inner: Arc<dyn quinn::AsyncUdpSocket>, max_udp_payload: u16) -> Self {
        let max_segments = (MAX_SEGMENTED_SEND / usize::from(max_udp_payload).max(1)).max(1);
        SegmentCapped {
            inner,
            max_segments,
        }
    }
}

impl quinn::AsyncUdpSocket for SegmentCapped {
    fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn quinn::UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &quinn::udp::Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut std::task::Context,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> std::task::Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments().min(self.max_segments)
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Kernel buffer asked for each direction of the UDP socket.
const SOCKET_BUFFER: usize = 4 << 20;

/// Enlarges the socket's kernel buffers: at the default (about 200 KiB) a
/// node that is busy for a few milliseconds overflows its receive buffer,
/// and QUIC takes the dropped datagrams for congestion, shrinking every
/// connection's window. The privileged (`…FORCE`) variant is tried first,
/// so root is not held to `net.core.rmem_max`; failure costs only speed.
fn size_socket_buffers(socket: &std::net::UdpSocket) {
    use rustix::net::sockopt;
    let recv = sockopt::set_socket_recv_buffer_size_force(socket, SOCKET_BUFFER)
        .or_else(|_| sockopt::set_socket_recv_buffer_size(socket, SOCKET_BUFFER));
    let send = sockopt::set_socket_send_buffer_size_force(socket, SOCKET_BUFFER)
        .or_else(|_| sockopt::set_socket_send_buffer_size(socket, SOCKET_BUFFER));
    if let Err(e) = recv.and(send) {
        tracing::debug!(error = %e, "cannot enlarge the UDP socket buffers");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel reports twice the size asked for (its bookkeeping), and
    /// without privilege caps the request at `net.core.rmem_max`.
    #[test]
    fn socket_buffers_are_enlarged() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = rustix::net::sockopt::socket_recv_buffer_size(&socket).expect("get");
        size_socket_buffers(&socket);
        let recv = rustix::net::sockopt::socket_recv_buffer_size(&socket).expect("get");
        let send = rustix::net::sockopt::socket_send_buffer_size(&socket).expect("get");
        let limit = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(0)
        };
        // Whether this process may exceed the limits (CAP_NET_ADMIN).
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let privileged =
            rustix::net::sockopt::set_socket_recv_buffer_size_force(&probe, SOCKET_BUFFER).is_ok();
        let want = |max: usize| {
            if privileged {
                SOCKET_BUFFER
            } else {
                SOCKET_BUFFER.min(max)
            }
        };
        assert!(
            recv >= want(limit("/proc/sys/net/core/rmem_max")),
            "receive buffer {recv} (was {before})"
        );
        assert!(
            send >= want(limit("/proc/sys/net/core/wmem_max")),
            "send buffer {send}"
        );
    }
}
