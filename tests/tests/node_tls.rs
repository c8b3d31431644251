//! Traffic between nodes is encrypted (issue 5): with the cluster secret,
//! the supernode's and the tracker's HTTP APIs are served only over mutual
//! TLS with the cluster CA.
//!
//! - `plain_http_gets_no_api_answer`: a request in plain HTTP, even one
//!   signed with the secret, gets `401` and no API answer from either
//!   daemon; `/healthz` still answers in plain HTTP, and the same signed
//!   request over TLS gets its answer.
//! - `handshakes_without_a_member_certificate_are_refused`: a TLS client
//!   with no certificate, with one from a foreign CA, or with a member
//!   certificate of another secret gets no HTTP answer; a member does.
//! - `a_swarm_pull_with_the_secret_works_over_tls`: agents with the secret
//!   pull and verify the image, and announce to the tracker over TLS.
//! - `the_wire_between_agent_and_supernode_is_not_plaintext`: a forwarder
//!   recording the traffic between an agent and the supernode sees none of
//!   the API paths, manifests, blob bytes or the client's credentials
//!   (forwarded for the access check), while the pull verifies.
//! - `an_agent_without_the_secret_says_why_it_is_refused`: its log says
//!   (once) that the supernode requires the cluster secret;
//!   `an_agent_with_another_secret_says_the_handshake_fails`: its log says
//!   that the TLS handshake with the supernode fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use shoal_agent::p2p::ClusterTls;
use shoal_agent::p2p::tls::SERVER_NAME;
use shoal_agent::serve::TLS_HANDSHAKE_FAILURES;
use shoal_proto::Digest;
use shoal_proto::tracker_wire::AnnounceRequest;
use shoal_proto::wire::ClusterSecret;
use shoal_tests::cluster::{REPO, TAG, UPSTREAM_NAME, upstreams};
use shoal_tests::lock;
use shoal_tests::oci_pull::{client_with_basic_auth, pull};
use shoal_tests::procs::Daemon;
use shoal_tests::registry::basic_authorization;
use shoal_tests::swarm::{
    SECRET, SwarmCluster, SwarmOptions, amd64_image, args, https_url, member_auth, member_client,
    secured_supernode,
};
use shoal_tests::tap::Tap;
use shoal_tests::wait::poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A secret that is not the cluster's.
const OTHER_SECRET: &str = "another secret, also long enough\n";
/// The credentials a client pulls with in the wire test.
const WIRE_USER: &str = "alice";
const WIRE_PASSWORD: &str = "wire test password";
/// Bound on one raw exchange with a daemon.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

fn cluster_tls(contents: &str) -> ClusterTls {
    let secret = ClusterSecret::from_file_contents(contents.as_bytes()).expect("secret");
    ClusterTls::new(&secret).expect("cluster TLS")
}

/// The cluster's tracker, with [`SECRET`] in `secret`.
async fn tracker(secret: &std::path::Path) -> Daemon {
    Daemon::tracker_with(secret, &[]).await
}

#[tokio::test]
async fn plain_http_gets_no_api_answer() {
    shoal_tests::http::install_crypto_provider();
    let tmp = shoal_tests::tmp::dir("node-tls-plain-");
    let (_registry, image, supernode, secret) = secured_supernode(tmp.path()).await;
    let tracker = tracker(&secret).await;
    let member = member_auth(SECRET);
    let plain = shoal_tests::http::client();
    let tls = member_client(SECRET);
    let manifest =
        format!("/api/v1/manifests?upstream={UPSTREAM_NAME}&repo={REPO}&reference={TAG}");

    for (daemon, name) in [(&supernode, "supernode"), (&tracker, "tracker")] {
        let health = plain
            .get(format!("{}/healthz", daemon.http_url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} /healthz: {e}"));
        assert_eq!(
            health.status(),
            StatusCode::OK,
            "{name}: /healthz in plain HTTP"
        );
    }

    // The supernode: a signed manifest request, in plain HTTP and over TLS.
    let signed_get = |client: &reqwest::Client, base: &str| {
        member.sign(
            client.get(format!("{base}{manifest}")),
            "GET",
            &manifest,
            b"",
        )
    };
    let resp = signed_get(&plain, &supernode.http_url())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "supernode in plain HTTP: {body}"
    );
    assert!(body.contains("only over TLS"), "supernode: {body}");
    assert!(
        !body.contains("schemaVersion"),
        "a manifest in plain HTTP: {body}"
    );
    let resp = signed_get(&tls, &https_url(&supernode))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "supernode over TLS");
    assert!(resp.text().await.unwrap().contains("schemaVersion"));

    // The tracker: a signed announce, in plain HTTP and over TLS.
    let announce = "/api/v1/announce";
    let body = serde_json::to_vec(&AnnounceRequest {
        blob: Digest::parse(&image.platform("amd64").layers[0].digest).unwrap(),
        upstream: UPSTREAM_NAME.into(),
        repo: REPO.into(),
        peer: 7,
        addr: "127.0.0.1:1".into(),
        pieces: None,
        upload_load: 0,
        labels: Default::default(),
        seed: false,
        stopped: true,
    })
    .unwrap();
    let signed_post = |client: &reqwest::Client, base: &str| {
        member
            .sign(
                client.post(format!("{base}{announce}")),
                "POST",
                announce,
                &body,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
    };
    let resp = signed_post(&plain, &tracker.http_url())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "tracker in plain HTTP: {text}"
    );
    assert!(
        !text.contains("interval_ms"),
        "an announce answer in plain HTTP: {text}"
    );
    let resp = signed_post(&tls, &https_url(&tracker))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "tracker over TLS: {text}");
    assert!(text.contains("interval_ms"), "{text}");
}

#[tokio::test]
async fn handshakes_without_a_member_certificate_are_refused() {
    shoal_tests::http::install_crypto_provider();
    let tmp = shoal_tests::tmp::dir("node-tls-handshake-");
    let (_registry, _image, supernode, secret) = secured_supernode(tmp.path()).await;
    let tracker = tracker(&secret).await;
    let cluster = cluster_tls(SECRET);
    let ca = cluster.ca_certificate();

    for (daemon, name) in [(&supernode, "supernode"), (&tracker, "tracker")] {
        let addr = daemon.http_addr();
        let member = cluster.http_client_config().unwrap();
        let answer = exchange(addr, member).await;
        assert!(
            answer
                .as_ref()
                .is_ok_and(|a| a.starts_with(b"HTTP/1.1 200")),
            "{name}: a member must get its answer: {answer:?}"
        );

        let strangers = [
            ("no certificate", outsider(&ca, None)),
            (
                "a foreign CA's certificate",
                outsider(&ca, Some(foreign_leaf())),
            ),
            (
                "another secret",
                cluster_tls(OTHER_SECRET).http_client_config().unwrap(),
            ),
        ];
        for (who, config) in strangers {
            let answer = exchange(addr, config).await;
            assert!(
                !answer.as_ref().is_ok_and(|a| a.starts_with(b"HTTP/")),
                "{name}: a client with {who} got an HTTP answer: {answer:?}"
            );
            eprintln!("{name}: client with {who} refused: {answer:?}");
        }
        let failures = daemon
            .metric_sum(TLS_HANDSHAKE_FAILURES)
            .await
            .unwrap_or(0.0);
        assert!(
            failures >= 2.0,
            "{name}: the server refused {failures} handshakes, expected the two without a \
             member certificate"
        );
    }
}

/// Over TLS with `config`, `GET /healthz` and everything read back (the
/// error, if the handshake or the read fails).
async fn exchange(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Vec<u8>, String> {
    let run = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: shoal\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok(answer)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// A client that trusts the cluster CA `ca` (the server is genuine) and
/// presents `cert`, or nothing.
fn outsider(
    ca: &CertificateDer<'static>,
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match cert {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A client certificate for [`SERVER_NAME`] signed by a CA of its own.
fn foreign_leaf() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_pull_with_the_secret_works_over_tls() {
    let _heavy = lock::heavy().await;
    let image = amd64_image(0x7151, 0x7150, &[4, 2]);
    let c = SwarmCluster::start(image, &SwarmOptions::default()).await;
    let pulls = c.spawn_pulls(0..c.agents.len());
    tokio::time::timeout(Duration::from_secs(300), c.expect_pulled(pulls))
        .await
        .expect("pulls finish");
    // The agents announced over TLS: the tracker knows them as holders.
    let layer = c.image.platform("amd64").layers[0].digest.clone();
    let holders = poll(
        "the tracker to list the agents",
        Duration::from_secs(60),
        || {
            let (c, layer) = (&c, &layer);
            async move {
                let peers = c.tracker_peers(layer).await;
                Ok((!peers.is_empty()).then_some(peers))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ntracker log:\n{}", c.tracker.log_tail()));
    eprintln!("the tracker lists {holders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_between_agent_and_supernode_is_not_plaintext() {
    shoal_tests::http::install_crypto_provider();
    let tmp = shoal_tests::tmp::dir("node-tls-wire-");
    let (registry, image, supernode, secret) = secured_supernode(tmp.path()).await;
    let tap = Tap::start(supernode.http_addr()).await;
    // `http://`: a member upgrades it to TLS (docs/SECURITY.md).
    let agent = Daemon::agent_at(
        &format!("http://{}", tap.addr()),
        &upstreams(&registry),
        &args(&[("--cluster-secret-file", secret.display().to_string())]),
    )
    .await;
    // With credentials: the agent checks them with the supernode, in
    // `Shoal-Client-Authorization` (the open registry admits anyone).
    let client = client_with_basic_auth(WIRE_USER, WIRE_PASSWORD);
    let req = SwarmCluster::pull_request(&agent);
    let pulled = pull(&client, &req)
        .await
        .unwrap_or_else(|e| panic!("pull: {e}\nagent log:\n{}", agent.log_tail()));
    let platform = image.platform("amd64");
    assert_eq!(pulled.manifest_digest, platform.manifest.digest);

    let seen = tap.seen();
    assert!(
        seen.len() > 1024,
        "only {} bytes crossed the forwarder: the agent did not use it",
        seen.len()
    );
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("an API path", b"/api/v1/".to_vec()),
        ("an HTTP header", b"HTTP/1.1".to_vec()),
        ("the repository", REPO.as_bytes().to_vec()),
        ("the tag", format!("reference={TAG}").into_bytes()),
        (
            "the credentials header",
            b"shoal-client-authorization".to_vec(),
        ),
        (
            "the client's credentials",
            basic_authorization(WIRE_USER, WIRE_PASSWORD).into_bytes(),
        ),
        ("the manifest", platform.manifest.bytes[..64].to_vec()),
        ("the index", image.index.bytes[..64].to_vec()),
    ];
    for layer in &platform.layers {
        secrets.push(("a layer", layer.bytes[..64].to_vec()));
    }
    let leaked: Vec<&str> = secrets
        .iter()
        .filter(|(_, needle)| seen.windows(needle.len()).any(|w| w == needle.as_slice()))
        .map(|(what, _)| *what)
        .collect();
    assert!(
        leaked.is_empty(),
        "crossed the network in clear: {leaked:?} ({} bytes recorded)",
        seen.len()
    );
    assert_eq!(
        seen[..2],
        [0x16, 0x03],
        "the agent's first bytes are not a TLS handshake record"
    );
}

#[tokio::test]
async fn an_agent_without_the_secret_says_why_it_is_refused() {
    let tmp = shoal_tests::tmp::dir("node-tls-nosecret-");
    let (registry, _image, supernode, _secret) = secured_supernode(tmp.path()).await;
    let agent = Daemon::agent(&supernode, &upstreams(&registry)).await;
    poll(
        "the agent to explain the refusal",
        Duration::from_secs(60),
        || {
            let log = agent.log();
            async move {
                Ok(log
                    .contains("the supernode requires the cluster secret")
                    .then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log_tail()));
    assert_eq!(
        agent
            .log()
            .matches("the supernode requires the cluster secret")
            .count(),
        1,
        "explained once"
    );
}

#[tokio::test]
async fn an_agent_with_another_secret_says_the_handshake_fails() {
    let tmp = shoal_tests::tmp::dir("node-tls-othersecret-");
    let (registry, _image, supernode, _secret) = secured_supernode(tmp.path()).await;
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other = shoal_tests::swarm::write_secret(&other, OTHER_SECRET);
    let agent = Daemon::agent_with(
        &supernode,
        &upstreams(&registry),
        &args(&[("--cluster-secret-file", other.display().to_string())]),
    )
    .await;
    let said = "cannot complete the TLS handshake with the supernode";
    poll(
        "the agent to explain the failure",
        Duration::from_secs(60),
        || {
            let log = agent.log();
            async move { Ok(log.contains(said).then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent.log_tail()));
}
