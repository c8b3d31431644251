//! The real `shoal-tracker` binary on loopback.

use std::process::Command;
use std::time::Duration;

use http::StatusCode;

use shoal_proto::wire::ClusterSecret;

use crate::util::{
    Client, FakeSupernode, SECRET, TrackerProcess, announce, auth, blob, metric, peer_ids, pieces,
    secret_file, swarm_peers, wait_for, wrong_auth,
};

#[tokio::test]
async fn restarted_tracker_is_rebuilt_from_announces_and_expires_silent_peers() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let args = [
        "--cluster-secret-file",
        secret.to_str().unwrap(),
        "--announce-interval",
        "1",
    ];
    let b = blob(20);
    let first = TrackerProcess::start(&args).await;
    let c = Client::new(first.url(), Some(auth()));
    c.announce(&announce(b, 1, Some(&pieces(4, 4)))).await;
    let (status, reply) = c.announce(&announce(b, 2, None)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(peer_ids(&reply), [1]);
    // A stranger is refused.
    let stranger = Client::new(first.url(), Some(wrong_auth()));
    let (status, json) = stranger.announce(&announce(b, 3, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["errors"][0]["code"], "UNAUTHORIZED");
    drop(first);

    // A new process knows nothing until the peers announce again.
    let second = TrackerProcess::start(&args).await;
    let c = Client::new(second.url(), Some(auth()));
    let (status, _) = c.swarm(b).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, reply) = c.announce(&announce(b, 2, None)).await;
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());
    let (_, reply) = c.announce(&announce(b, 1, Some(&pieces(4, 3)))).await;
    assert_eq!(peer_ids(&reply), [2]);
    let (_, view) = c.swarm(b).await;
    assert_eq!(swarm_peers(&view), [(1, 3), (2, 0)]);

    // Peer 2 keeps announcing, peer 1 falls silent and expires (3.3 s).
    wait_for("peer 1 to expire", Duration::from_secs(15), async || {
        c.announce(&announce(b, 2, None)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        swarm_peers(&c.swarm(b).await.1) == [(2, 0)]
    })
    .await;
    let text = c.metrics().await;
    assert!(
        metric(&text, "shoal_tracker_announces_total").unwrap() >= 4.0,
        "{text}"
    );
    assert_eq!(metric(&text, "shoal_tracker_peers"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "shoal_tracker_blobs"), Some(1.0), "{text}");
}

#[tokio::test]
async fn binary_seeds_through_the_supernode_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    // The tracker dials the supernode's `http://` URL over TLS.
    let sn = FakeSupernode::start_tls(auth(), &ClusterSecret::new(SECRET).unwrap()).await;
    let t = TrackerProcess::start(&[
        "--cluster-secret-file",
        secret.to_str().unwrap(),
        "--supernode",
        &sn.url,
    ])
    .await;
    let c = Client::new(t.url(), Some(auth()));
    let (status, _) = c.announce(&announce(blob(21), 1, None)).await;
    assert_eq!(status, StatusCode::OK);
    wait_for("the seed request", Duration::from_secs(10), async || {
        metric(
            &c.metrics().await,
            r#"shoal_tracker_seed_requests_total{result="ok"}"#,
        ) == Some(1.0)
    })
    .await;
    let requests = sn.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].signed);
    assert_eq!(requests[0].body.as_ref().unwrap().digest, blob(21));
}

#[test]
fn binary_refuses_to_start_without_a_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-tracker"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SHOAL_CLUSTER_SECRET_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cluster-secret-file"), "{stderr}");
}

#[tokio::test]
async fn binary_without_auth_warns_loudly() {
    let t = TrackerProcess::start(&["--insecure-no-auth"]).await;
    let c = Client::new(t.url(), None);
    let (status, json) = c.announce(&announce(blob(22), 1, None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(t.log().contains("INSECURE"), "{}", t.log());
}
