//! Garbage from a connected member and from strangers on the UDP port.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

use super::*;
use crate::p2p::stream::PROTOCOL_ERROR;

/// Sends `bytes` on a new stream of `conn` and returns how the server
/// ended it.
async fn send_raw(
    conn: &quinn::Connection,
    bytes: &[u8],
) -> Result<Vec<u8>, quinn::ReadToEndError> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(1 << 20).await
}

#[tokio::test]
async fn garbage_frames_kill_only_their_stream() {
    let (provider, map) = MemProvider::with_blob(random_blob(600_000, 12), 256 * 1024);
    let provider = Arc::new(provider);
    let server = node(SECRET, provider.clone()).start();
    let member = client(SECRET);
    let pc = member.ep.connect(server.addr).await.unwrap();
    let conn = pc.quinn();
    let mut frame = Vec::new();
    let req = shoal_proto::wire::PieceRequest {
        digest: map.digest,
        index: 0,
    };
    shoal_proto::encode_frame(&req, &mut frame).unwrap();
    let mut with_junk = frame.clone();
    with_junk.extend_from_slice(b"junk");
    let garbage: [&[u8]; 6] = [
        &[],                             // no request at all
        &with_junk,                      // a request, then junk
        &[0xff, 0xff, 0xff, 0xff],       // oversized length
        &[0, 0, 0, 10, 1, 2],            // truncated body
        &[0, 0, 0, 1, 0xff],             // malformed body
        &[0, 0, 0x10, 0, 0xaa, 0xbb, 0], // above the request's limit
    ];
    for g in garbage {
        let err = send_raw(conn, g).await.unwrap_err();
        let reset = quinn::ReadToEndError::Read(quinn::ReadError::Reset(PROTOCOL_ERROR));
        assert_eq!(err, reset, "{g:?}");
    }
    assert_eq!(provider.calls().1, 0);
    // The connection survives, and so do other peers' transfers.
    assert!(pc.is_open());
    member.ep.fetch_piece(server.addr, &map, 0).await.unwrap();
    let other = client(SECRET);
    other.ep.fetch_piece(server.addr, &map, 1).await.unwrap();
    assert!(Arc::ptr_eq(
        &pc,
        &member.ep.connect(server.addr).await.unwrap()
    ));
}

#[tokio::test]
async fn garbage_on_the_have_stream_closes_only_it() {
    let (provider, map) = MemProvider::with_blob(random_blob(300_000, 13), 256 * 1024);
    let server = node(SECRET, Arc::new(provider)).start();
    let member = client(SECRET);
    let pc = member.ep.connect(server.addr).await.unwrap();
    let mut have = pc.quinn().open_uni().await.unwrap();
    have.write_all(&[0xff; 64]).await.unwrap();
    assert_eq!(have.stopped().await, Ok(Some(PROTOCOL_ERROR)));
    member.ep.fetch_piece(server.addr, &map, 0).await.unwrap();
    assert!(pc.is_open());
}

#[tokio::test]
async fn random_datagrams_change_nothing() {
    let (provider, map) = MemProvider::with_blob(random_blob(300_000, 14), 256 * 1024);
    let provider = Arc::new(provider);
    let server = node(SECRET, provider.clone()).start();
    let noise = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(15);
    for i in 0..500 {
        let len = rng.random_range(1..=1500);
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if i % 2 == 0 {
            // Look like a QUIC v1 long header (Initial) now and then.
            d[0] = 0xc0 | (d[0] & 0x0f);
            if len >= 5 {
                d[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
        }
        noise.send_to(&d, server.addr).await.unwrap();
    }
    // The socket delivers in order: once this handshake completes, every
    // datagram above has been processed.
    let member = client(SECRET);
    member.ep.fetch_piece(server.addr, &map, 1).await.unwrap();
    assert_eq!(provider.calls().1, 1);
    assert!(
        server
            .ep
            .connected_peers()
            .iter()
            .all(|&p| p == member.addr),
        "{:?}",
        server.ep.connected_peers()
    );
}
