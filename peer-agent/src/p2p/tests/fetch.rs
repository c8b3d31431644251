//! Refusals, bad pieces, upload caps, `have` updates, reconnection.

use std::sync::Arc;
use std::time::Instant;

use shoal_proto::wire::{ErrorCode, HaveError, HaveMessage, PieceResponse};
use shoal_proto::{Bitfield, PieceError, encode_frame};

use super::*;

#[tokio::test]
async fn a_bad_piece_is_an_error_naming_the_peer() {
    let (provider, map) = MemProvider::with_blob(random_blob(700_000, 5), 256 * 1024);
    let server = node(SECRET, Arc::new(provider.corrupt())).start();
    let client = client(SECRET);
    let err = client.fetch_err(server.addr, &map, 1).await;
    assert!(
        matches!(
            err,
            FetchError::BadPiece {
                peer,
                source: PieceError::HashMismatch { index: 1 }
            } if peer == server.addr
        ),
        "{err}"
    );
    assert!(err.is_misbehaviour());
    assert!(err.to_string().contains(&server.addr.to_string()));
}

/// A member gone bad, speaking raw quinn: answers every piece request
/// with `reply` and ends the stream.
fn raw_member(reply: Vec<u8>) -> std::net::SocketAddr {
    let tls = ClusterTls::new(&secret(SECRET)).unwrap();
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls.server_config().unwrap()).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let bad = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let bad_addr = bad.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = bad.accept().await.unwrap().await.unwrap();
        while let Ok((mut send, _recv)) = conn.accept_bi().await {
            let _ = send.write_all(&reply).await;
            let _ = send.finish();
        }
    });
    bad_addr
}

#[tokio::test]
async fn a_wrong_length_is_refused_before_the_payload() {
    // Announces a huge piece.
    let mut reply = Vec::new();
    encode_frame(&PieceResponse::Ok { len: u32::MAX }, &mut reply).unwrap();
    reply.extend_from_slice(&[0; 4096]);
    let bad_addr = raw_member(reply);
    let (_, map) = MemProvider::with_blob(random_blob(300_000, 6), 256 * 1024);
    let client = client(SECRET);
    let err = client.fetch_err(bad_addr, &map, 0).await;
    assert!(
        matches!(err, FetchError::BadPiece { peer, source: PieceError::WrongLength { .. } } if peer == bad_addr),
        "{err}"
    );
}

/// Bytes after the piece break the protocol, even when the piece itself
/// is right.
#[tokio::test]
async fn bytes_after_the_piece_are_refused() {
    let blob = random_blob(300_000, 12);
    let (_, map) = MemProvider::with_blob(blob.clone(), 256 * 1024);
    let piece = &blob[..256 * 1024];
    let mut reply = Vec::new();
    encode_frame(
        &PieceResponse::Ok {
            len: piece.len() as u32,
        },
        &mut reply,
    )
    .unwrap();
    reply.extend_from_slice(piece);
    reply.extend_from_slice(b"extra");
    let bad_addr = raw_member(reply);
    let client = client(SECRET);
    let err = client.fetch_err(bad_addr, &map, 0).await;
    assert!(
        matches!(&err, FetchError::Protocol { peer, reason } if *peer == bad_addr && reason.contains("5 bytes after the piece")),
        "{err}"
    );
}

#[tokio::test]
async fn refusals_are_told_apart() {
    let (provider, map) = MemProvider::with_blob(random_blob(600_000, 7), 256 * 1024);
    let provider = provider.without(map.digest, 1);
    let server = node(SECRET, Arc::new(provider)).start();
    let client = client(SECRET);
    let err = client.fetch_err(server.addr, &map, 1).await;
    assert!(matches!(err, FetchError::NotHave { .. }), "{err}");
    assert!(!err.is_misbehaviour());
    let (_, other) = MemProvider::with_blob(random_blob(1000, 8), 256 * 1024);
    let err = client.fetch_err(server.addr, &other, 0).await;
    assert!(matches!(err, FetchError::NotHave { .. }), "{err}");
    let err = client.fetch_err(server.addr, &map, 3).await;
    assert!(
        matches!(err, FetchError::NoSuchPiece { index: 3, count: 3 }),
        "{err}"
    );
    // A map that claims more pieces than the server's: the server refuses.
    let mut longer = (*map).clone();
    longer.size += 256 * 1024;
    longer.pieces.push(map.pieces[0]);
    let err = client.fetch_err(server.addr, &longer, 3).await;
    assert!(
        matches!(
            err,
            FetchError::Refused {
                code: ErrorCode::NoSuchPiece,
                ..
            }
        ),
        "{err}"
    );
    client.ep.fetch_piece(server.addr, &map, 2).await.unwrap();
}

/// Answers are read to their end: quinn stops (STOP_SENDING) a stream
/// dropped before its end was read, even when the end is already here,
/// which costs a datagram and its acknowledgement per request for nothing.
#[tokio::test]
async fn answered_requests_leave_no_stream_to_stop() {
    let (provider, map) = MemProvider::with_blob(random_blob(600_000, 11), 256 * 1024);
    let provider = provider.without(map.digest, 1);
    let server = node(SECRET, Arc::new(provider)).start();
    let client = client(SECRET);
    let pc = client.ep.connect(server.addr).await.unwrap();
    client.ep.fetch_piece(server.addr, &map, 0).await.unwrap();
    let err = client.fetch_err(server.addr, &map, 1).await;
    assert!(matches!(err, FetchError::NotHave { .. }), "{err}");
    client.ep.fetch_piece(server.addr, &map, 2).await.unwrap();
    // Anything queued by the last drop is sent at once; wait for it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stats = pc.conn.stats();
    assert!(stats.frame_tx.stream >= 2, "{:?}", stats.frame_tx);
    assert_eq!(stats.frame_tx.stop_sending, 0, "{:?}", stats.frame_tx);
}

#[tokio::test]
async fn beyond_the_upload_cap_the_answer_is_busy() {
    let (provider, map) = MemProvider::with_blob(random_blob(600_000, 9), 256 * 1024);
    let (provider, gate, mut entered) = provider.gated();
    let server = node(SECRET, Arc::new(provider)).max_uploads(1).start();
    let client = client(SECRET);
    let first = {
        let (ep, map) = (client.ep.clone(), map.clone());
        tokio::spawn(async move { ep.fetch_piece(server.addr, &map, 0).await })
    };
    assert_eq!(entered.recv().await, Some(0), "first upload started");
    assert_eq!(server.ep.server().active_uploads(), 1);
    let err = client.fetch_err(server.addr, &map, 1).await;
    assert!(matches!(err, FetchError::Busy { .. }), "{err}");
    gate.add_permits(1);
    first.await.unwrap().unwrap();
    gate.add_permits(1);
    client.ep.fetch_piece(server.addr, &map, 1).await.unwrap();
}

#[tokio::test]
async fn uploads_follow_the_rate_limit() {
    let (provider, map) = MemProvider::with_blob(random_blob(1 << 20, 10), 1 << 20);
    let limiter = Arc::new(RateLimiter::new(4 << 20, 64 << 10));
    let server = node(SECRET, Arc::new(provider)).limiter(limiter).start();
    let client = client(SECRET);
    client.ep.connect(server.addr).await.unwrap();
    let start = Instant::now();
    client.ep.fetch_piece(server.addr, &map, 0).await.unwrap();
    // 1 MiB at 4 MiB/s with a 64 KiB burst takes at least 234 ms.
    assert!(start.elapsed().as_millis() >= 230, "{:?}", start.elapsed());
}

#[tokio::test]
async fn have_updates_reach_the_peer_in_order() {
    let (tx, mut events) = mpsc::channel(16);
    let listener = node(SECRET, Arc::new(MemProvider::default()))
        .events(tx)
        .start();
    let sender = client(SECRET);
    let digest = Digest::of(b"blob");
    let early = HaveMessage::Have { digest, index: 0 };
    let err = sender
        .ep
        .send_have(listener.addr, &early)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HaveSendError::Order(HaveError::NoBitfield(_))),
        "{err}"
    );
    let mut bits = Bitfield::new(10);
    bits.set(3);
    let msgs = [
        HaveMessage::Bitfield { digest, bits },
        HaveMessage::Have { digest, index: 7 },
        HaveMessage::Forget { digest },
    ];
    for m in &msgs {
        sender.ep.send_have(listener.addr, m).await.unwrap();
    }
    let peer = sender.addr;
    assert_eq!(events.recv().await, Some(PeerEvent::Connected { peer }));
    for m in msgs {
        assert_eq!(events.recv().await, Some(PeerEvent::Have { peer, msg: m }));
    }
}

#[tokio::test]
async fn a_dead_cached_connection_is_replaced() {
    let (provider, map) = MemProvider::with_blob(random_blob(300_000, 11), 256 * 1024);
    let (tx, mut events) = mpsc::channel(16);
    let server = node(SECRET, Arc::new(provider)).start();
    let client = node(SECRET, Arc::new(MemProvider::default()))
        .events(tx)
        .start();
    client.ep.fetch_piece(server.addr, &map, 0).await.unwrap();
    let first = client.ep.connect(server.addr).await.unwrap();
    first.quinn().close(0u32.into(), b"test");
    let peer = server.addr;
    assert_eq!(events.recv().await, Some(PeerEvent::Connected { peer }));
    assert_eq!(events.recv().await, Some(PeerEvent::Disconnected { peer }));
    client.ep.fetch_piece(server.addr, &map, 1).await.unwrap();
    let second = client.ep.connect(server.addr).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.is_open());
}

#[tokio::test]
async fn a_verified_piece_is_written_at_its_offset() {
    let blob = random_blob(700_000, 16);
    let (provider, map) = MemProvider::with_blob(blob.clone(), 256 * 1024);
    let server = node(SECRET, Arc::new(provider)).start();
    let client = client(SECRET);
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(std::fs::File::create(dir.path().join("data")).unwrap());
    for index in [2, 0, 1] {
        let piece = client
            .ep
            .fetch_piece(server.addr, &map, index)
            .await
            .unwrap();
        let offset = map.piece_range(index).start;
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            crate::blob_file::write_chunks_at(&file, piece.chunks(), offset)
        })
        .await
        .unwrap()
        .unwrap();
    }
    assert_eq!(std::fs::read(dir.path().join("data")).unwrap(), blob);
}

/// A bulk transfer on loopback keeps the 8952-byte jumbo packets that path
/// MTU discovery reaches: every segmented send fits the kernel's 64 KiB
/// limit. Without the cap, batches of 8 to 10 such packets were refused by
/// the kernel and silently dropped, and QUIC's black-hole detection fell
/// back to 1200-byte packets. (Losses are not asserted: a loaded machine
/// makes QUIC declare late packets lost.)
#[tokio::test]
async fn jumbo_packets_in_segmented_sends_are_not_lost() {
    let (provider, map) = MemProvider::with_blob(random_blob(32 << 20, 11), 4 << 20);
    let server = node(SECRET, Arc::new(provider)).start();
    let client = client(SECRET);
    // Twice: the first round lets MTU discovery climb.
    for _ in 0..2 {
        let fetches = (0..map.piece_count()).map(|i| client.ep.fetch_piece(server.addr, &map, i));
        for piece in futures_util::future::join_all(fetches).await {
            piece.unwrap();
        }
    }
    // The uploader's side of the connection.
    let conn = server.ep.connect(client.addr).await.unwrap();
    let st = conn.conn.stats();
    assert!(
        st.path.current_mtu > 1452,
        "MTU {} ({} of {} packets lost)",
        st.path.current_mtu,
        st.path.lost_packets,
        st.path.sent_packets
    );
}

/// A UDP socket on a path of 1500-byte frames: datagrams (or segments of
/// a segmented send) larger than 1472 bytes are lost, as a router drops
/// them.
#[derive(Debug)]
struct EthernetPath(Arc<dyn quinn::AsyncUdpSocket>);

/// Largest UDP payload in a 1500-byte IPv4 packet.
const ETHERNET_PAYLOAD: usize = 1472;

impl quinn::AsyncUdpSocket for EthernetPath {
    fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn quinn::UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &quinn::udp::Transmit) -> io::Result<()> {
        let packet = transmit.segment_size.unwrap_or(transmit.contents.len());
        if packet > ETHERNET_PAYLOAD {
            return Ok(());
        }
        self.0.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut std::task::Context,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> std::task::Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.0.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// Path MTU discovery with the transport's settings (its search step,
/// `MTU_SEARCH_STEP`) still finds most of a 1500-byte path, not just
/// QUIC's 1200 bytes: with steps of 300 or more it stops at 1200.
#[tokio::test]
async fn a_path_of_1500_byte_frames_settles_above_1400_bytes() {
    use crate::p2p::config::P2pConfig;
    let config = P2pConfig::default();
    let tls = ClusterTls::new(&secret(SECRET)).unwrap();
    let endpoint = |server: Option<quinn::ServerConfig>| {
        let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, std).unwrap();
        let mut ep_config = quinn::EndpointConfig::default();
        ep_config
            .max_udp_payload_size(config.max_udp_payload)
            .unwrap();
        quinn::Endpoint::new_with_abstract_socket(
            ep_config,
            server,
            Arc::new(EthernetPath(socket)),
            Arc::new(quinn::TokioRuntime),
        )
        .unwrap()
    };
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls.server_config().unwrap()).unwrap();
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server_config.transport_config(config.transport());
    let server = endpoint(Some(server_config));
    let server_addr = server.local_addr().unwrap();
    let client_crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls.client_config().unwrap()).unwrap();
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(config.transport());
    let client = endpoint(None);
    let accepted = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        recv.read_to_end(usize::MAX).await.unwrap();
        conn
    });
    let conn = client
        .connect_with(client_config, server_addr, crate::p2p::tls::SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    // Data while the search runs, until it has ended (a lost probe is
    // retried before the search moves on).
    let mut send = conn.open_uni().await.unwrap();
    let chunk = Bytes::from(vec![7u8; 64 << 10]);
    let started = Instant::now();
    let mut probes = (0, Instant::now());
    while started.elapsed() < std::time::Duration::from_secs(20) {
        send.write_chunk(chunk.clone()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let sent = conn.stats().path.sent_plpmtud_probes;
        if sent != probes.0 {
            probes = (sent, Instant::now());
        } else if sent > 0 && probes.1.elapsed() > std::time::Duration::from_secs(2) {
            break;
        }
    }
    send.finish().unwrap();
    let _server_conn = accepted.await.unwrap();
    let st = conn.stats();
    assert!(
        (1400..=ETHERNET_PAYLOAD as u16).contains(&st.path.current_mtu),
        "MTU {} after {} probes ({} lost)",
        st.path.current_mtu,
        st.path.sent_plpmtud_probes,
        st.path.lost_plpmtud_probes
    );
}
