//! One-link throughput on loopback: Shoal piece fetches against a bare
//! quinn stream, in the same process and the same run.
//!
//! Server and client each get their own tokio runtime (one worker thread
//! each, so each side has a core as two processes would). The piece run
//! fetches and verifies pieces of an in-memory blob through
//! [`P2pEndpoint::fetch_piece`] with several requests in flight; the bare
//! run sends the same number of bytes over one quinn stream with the same
//! transport windows and GSO on, written with `write_chunk` and read with
//! `read_chunk` (no hashing, no framing). Runs alternate, best of each is
//! reported.
//!
//! ```text
//! cargo run --release -p shoal-agent --example p2p_throughput -- [MiB per run] [rounds] [in flight]
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{BoxFuture, join_all};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use shoal_agent::p2p::{ClusterTls, P2pConfig, P2pEndpoint, PieceProvider, PieceServer};
use shoal_proto::wire::ClusterSecret;
use shoal_proto::{Digest, PieceHasher, PieceMap};
use tokio::runtime::Runtime;

const PIECE_SIZE: u32 = 4 << 20;
const BLOB_SIZE: usize = 64 << 20;

/// One blob in memory.
struct Blob {
    map: Arc<PieceMap>,
    bytes: Bytes,
}

impl PieceProvider for Blob {
    fn piece_map(&self, digest: &Digest) -> Option<Arc<PieceMap>> {
        (*digest == self.map.digest).then(|| self.map.clone())
    }
    fn has_piece(&self, digest: &Digest, _index: u32) -> bool {
        *digest == self.map.digest
    }
    fn read_piece(&self, _digest: &Digest, index: u32) -> BoxFuture<'_, io::Result<Bytes>> {
        let r = self.map.piece_range(index);
        let piece = self.bytes.slice(r.start as usize..r.end as usize);
        Box::pin(async move { Ok(piece) })
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn blob() -> Blob {
    // Cheap pseudo-random content (an LCG), so hashing sees real data.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = Vec::with_capacity(BLOB_SIZE);
    while v.len() < BLOB_SIZE {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut h = PieceHasher::new(PIECE_SIZE);
    h.update(&v);
    Blob {
        map: Arc::new(h.finish().expect("piece map")),
        bytes: Bytes::from(v),
    }
}

fn config() -> P2pConfig {
    P2pConfig::with_listen(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Fetches `total` bytes of pieces with `in_flight` requests at a time.
async fn piece_run(
    client: &P2pEndpoint,
    server: SocketAddr,
    map: &PieceMap,
    total: u64,
    in_flight: usize,
) -> f64 {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let workers = (0..in_flight).map(|_| async {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n * u64::from(PIECE_SIZE) >= total {
                break;
            }
            let index = (n % u64::from(map.piece_count())) as u32;
            client.fetch_piece(server, map, index).await.expect("fetch");
        }
    });
    join_all(workers).await;
    mb_per_s(total, start)
}

fn mb_per_s(bytes: u64, start: Instant) -> f64 {
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// CPU seconds (user + system) used by this process so far, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// Wall-clock MB/s and MB per CPU-second (both sides together) of `run`.
fn measure(total: u64, run: impl FnOnce() -> f64) -> (f64, f64) {
    let cpu = cpu_secs();
    let wall = run();
    let used = cpu_secs() - cpu;
    (wall, total as f64 / 1e6 / used.max(0.01))
}

/// A bare quinn server: on each bidirectional stream, reads a u64 and
/// writes that many bytes. Returns its address.
fn bare_server(rt: &Runtime, payload: Bytes) -> (SocketAddr, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["bare.test".into()]).expect("cert");
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server tls");
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(tls).expect("quic tls"),
    ));
    sc.transport_config(config().transport());
    let endpoint = rt.block_on(async { bare_endpoint(Some(sc)) });
    let addr = endpoint.local_addr().expect("addr");
    rt.spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                let conn = incoming.await.expect("handshake");
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let mut len = [0u8; 8];
                    recv.read_exact(&mut len).await.expect("length");
                    let mut left = u64::from_be_bytes(len);
                    while left > 0 {
                        let n = left.min(payload.len() as u64) as usize;
                        send.write_chunk(payload.slice(..n)).await.expect("write");
                        left -= n as u64;
                    }
                    send.finish().expect("finish");
                }
            });
        }
    });
    (addr, der)
}

/// A bare quinn endpoint on the same socket and transport settings as
/// Shoal's.
fn bare_endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
    let c = config();
    let mut ep = quinn::EndpointConfig::default();
    ep.max_udp_payload_size(c.max_udp_payload).expect("payload");
    let socket = shoal_agent::p2p::socket::udp_socket(c.listen, c.max_udp_payload).expect("bind");
    quinn::Endpoint::new_with_abstract_socket(ep, server, socket, Arc::new(quinn::TokioRuntime))
        .expect("endpoint")
}

async fn bare_run(endpoint: &quinn::Endpoint, conn: &quinn::Connection, total: u64) -> f64 {
    let _ = endpoint;
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(&total.to_be_bytes()).await.expect("write");
    send.finish().expect("finish");
    let mut got = 0u64;
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.expect("read") {
        got += chunk.bytes.len() as u64;
    }
    assert_eq!(got, total);
    mb_per_s(total, start)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let total = args.first().copied().unwrap_or(1024) << 20;
    let rounds = args.get(1).copied().unwrap_or(3);
    let in_flight = args.get(2).copied().unwrap_or(4) as usize;

    let server_rt = runtime();
    let client_rt = runtime();
    let blob = Arc::new(blob());
    let map = blob.map.clone();
    let payload = blob.bytes.slice(..PIECE_SIZE as usize);

    // Shoal endpoints, same cluster.
    let secret = ClusterSecret::new(*b"throughput example secret").expect("secret");
    let server = server_rt.block_on(async {
        let tls = ClusterTls::new(&secret).expect("tls");
        let ep = P2pEndpoint::bind(config(), &tls, PieceServer::new(blob.clone(), 64), None)
            .expect("bind");
        let runner = ep.clone();
        tokio::spawn(async move { runner.run(std::future::pending()).await });
        ep
    });
    let server_addr = server.local_addr().expect("addr");
    let client = client_rt.block_on(async {
        let tls = ClusterTls::new(&secret).expect("tls");
        let empty = Arc::new(Blob {
            map: map.clone(),
            bytes: Bytes::new(),
        });
        P2pEndpoint::bind(config(), &tls, PieceServer::new(empty, 1), None).expect("bind")
    });

    // Bare quinn.
    let (bare_addr, bare_cert) = bare_server(&server_rt, payload);
    let (bare_ep, bare_conn) = client_rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(bare_cert).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut cc =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).expect("quic tls")));
        cc.transport_config(config().transport());
        let mut ep = bare_endpoint(None);
        ep.set_default_client_config(cc);
        let conn = ep
            .connect(bare_addr, "bare.test")
            .expect("connect")
            .await
            .expect("handshake");
        (ep, conn)
    });

    // Warm up both paths (connections, windows, congestion control).
    client_rt.block_on(async {
        piece_run(&client, server_addr, &map, 256 << 20, in_flight).await;
        bare_run(&bare_ep, &bare_conn, 256 << 20).await;
    });

    let (mut bare_best, mut piece_best) = ((0f64, 0f64), (0f64, 0f64));
    for round in 1..=rounds {
        let bare = measure(total, || {
            client_rt.block_on(bare_run(&bare_ep, &bare_conn, total))
        });
        let piece = measure(total, || {
            client_rt.block_on(piece_run(&client, server_addr, &map, total, in_flight))
        });
        println!(
            "round {round}: bare quinn {:.0} MB/s ({:.0} MB per CPU-s), shoal pieces {:.0} MB/s ({:.0} MB per CPU-s)",
            bare.0, bare.1, piece.0, piece.1
        );
        bare_best = (bare_best.0.max(bare.0), bare_best.1.max(bare.1));
        piece_best = (piece_best.0.max(piece.0), piece_best.1.max(piece.1));
    }
    println!(
        "best of {rounds} ({} MiB per run, {} MiB pieces, {in_flight} in flight, sha256 verified):",
        total >> 20,
        PIECE_SIZE >> 20
    );
    println!(
        "  wall clock: bare quinn {:.0} MB/s, shoal pieces {:.0} MB/s, ratio {:.2}",
        bare_best.0,
        piece_best.0,
        piece_best.0 / bare_best.0
    );
    println!(
        "  per CPU-second, both sides: bare quinn {:.0} MB, shoal pieces {:.0} MB, ratio {:.2}",
        bare_best.1,
        piece_best.1,
        piece_best.1 / bare_best.1
    );
}
