//! Members fetch from each other; outsiders get nothing.

use std::sync::Arc;

use futures_util::future::join_all;
use quinn::crypto::rustls::QuicClientConfig;
use shoal_proto::encode_frame;
use shoal_proto::wire::PieceRequest;

use super::*;

#[tokio::test]
async fn members_fetch_and_verify_every_piece() {
    let blob = random_blob(3 * 1024 * 1024 + 12_345, 1);
    let (provider, map) = MemProvider::with_blob(blob.clone(), 256 * 1024);
    let provider = Arc::new(provider);
    let server = node(SECRET, provider.clone()).start();
    let client = client(SECRET);

    let fetches = (0..map.piece_count()).map(|i| client.ep.fetch_piece(server.addr, &map, i));
    let pieces = join_all(fetches).await;
    let mut whole = Vec::new();
    for (i, p) in pieces.into_iter().enumerate() {
        let p = p.unwrap();
        assert_eq!(p.index() as usize, i);
        whole.extend_from_slice(&p.into_bytes());
    }
    assert_eq!(whole, blob);
    assert_eq!(provider.calls().1, map.piece_count() as usize);
    // One connection for all of it, found again in the cache.
    assert_eq!(client.ep.connected_peers(), vec![server.addr]);
    let a = client.ep.connect(server.addr).await.unwrap();
    let b = client.ep.connect(server.addr).await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[tokio::test]
async fn the_connection_works_both_ways() {
    let blob = random_blob(600_000, 2);
    let (provider, map) = MemProvider::with_blob(blob.clone(), 256 * 1024);
    let (holder_tx, mut holder_events) = mpsc::channel(16);
    let (fetcher_tx, mut fetcher_events) = mpsc::channel(16);
    let holder = node(SECRET, Arc::new(provider)).events(holder_tx).start();
    let fetcher = node(SECRET, Arc::new(MemProvider::default()))
        .events(fetcher_tx)
        .start();
    // The holder dials; the fetcher fetches over that same connection.
    holder.ep.connect(fetcher.addr).await.unwrap();
    let connected = PeerEvent::Connected { peer: holder.addr };
    assert_eq!(fetcher_events.recv().await, Some(connected));
    let piece = fetcher.ep.fetch_piece(holder.addr, &map, 2).await.unwrap();
    assert_eq!(piece.into_bytes(), blob.slice(512 * 1024..));
    let connected = PeerEvent::Connected { peer: fetcher.addr };
    assert_eq!(holder_events.recv().await, Some(connected));
    assert!(
        holder_events.try_recv().is_err(),
        "a second connection was opened"
    );
}

#[tokio::test]
async fn a_node_with_another_secret_gets_nothing() {
    let (provider, map) = MemProvider::with_blob(random_blob(300_000, 3), 256 * 1024);
    let provider = Arc::new(provider);
    let server = node(SECRET, provider.clone()).start();
    let outsider = client(b"some other cluster's secret");

    for i in 0..map.piece_count() {
        let err = outsider
            .ep
            .fetch_piece(server.addr, &map, i)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Connect { .. }),
            "expected a refused handshake, got {err}"
        );
        assert_eq!(err.peer(), Some(server.addr));
    }
    // The member does not trust the outsider's server either.
    let err = server.ep.connect(outsider.addr).await.unwrap_err();
    assert!(matches!(err, ConnectError::Handshake(_)), "{err}");
    assert_eq!(provider.calls(), (0, 0), "nothing may be looked up or read");
    assert!(server.ep.connected_peers().is_empty());
}

#[tokio::test]
async fn a_client_without_a_certificate_gets_nothing() {
    let (provider, map) = MemProvider::with_blob(random_blob(300_000, 4), 256 * 1024);
    let provider = Arc::new(provider);
    let server = node(SECRET, provider.clone()).start();

    // An outsider who knows the CA certificate (it is not secret) but has
    // no member certificate.
    let tls = ClusterTls::new(&secret(SECRET)).unwrap();
    let crypto = QuicClientConfig::try_from(tls.client_config_without_cert()).unwrap();
    let mut raw = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    raw.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));

    // In TLS 1.3 the client may consider the handshake done before the
    // server has refused it; whatever it then sends must get no answer.
    if let Ok(conn) = raw.connect(server.addr, tls::SERVER_NAME).unwrap().await {
        let attempt = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            let mut frame = Vec::new();
            let req = PieceRequest {
                digest: map.digest,
                index: 0,
            };
            encode_frame(&req, &mut frame).unwrap();
            send.write_all(&frame).await?;
            send.finish()?;
            Ok::<_, Box<dyn std::error::Error>>(recv.read_to_end(1 << 20).await?)
        };
        let result = attempt.await;
        assert!(result.is_err(), "an unauthenticated client got {result:?}");
    }
    assert_eq!(provider.calls(), (0, 0), "nothing may be looked up or read");
}

#[test]
fn the_secret_file_is_checked_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = load_cluster_secret(&missing).unwrap_err();
    assert!(matches!(err, SecretFileError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");

    let short = dir.path().join("short");
    std::fs::write(&short, "tooshort\n").unwrap();
    let err = load_cluster_secret(&short).unwrap_err().to_string();
    assert!(
        err.contains("short") && err.contains("at least 16"),
        "{err}"
    );

    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'x'; 1 << 20]).unwrap();
    let err = load_cluster_secret(&huge).unwrap_err().to_string();
    assert!(err.contains("at most"), "{err}");

    let good = dir.path().join("good");
    std::fs::write(&good, b"test cluster secret 0001\n").unwrap();
    assert_eq!(load_cluster_secret(&good).unwrap(), secret(SECRET));
}
