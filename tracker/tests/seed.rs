//! Seeding: a blob nobody has goes to exactly one supernode, the one
//! rendezvous hashing picks, in a signed request.

use std::time::Duration;

use http::StatusCode;
use shoal_proto::tracker_state::rendezvous;
use shoal_proto::tracker_wire::SeedRequest;
use shoal_tracker::Seeder;
use shoal_tracker::seed::SeedError;

use crate::util::{FakeSupernode, InProcess, announce, auth, blob, pieces, wait_for, wrong_auth};

#[tokio::test]
async fn a_blob_nobody_has_is_seeded_once_by_its_rendezvous_supernode() {
    let a = FakeSupernode::start(auth()).await;
    let b = FakeSupernode::start(auth()).await;
    let urls = [a.url.clone(), b.url.clone()];
    let t = InProcess::new(&urls, Duration::from_secs(1));
    let blobs: Vec<_> = (10..16).map(blob).collect();
    for (i, &digest) in blobs.iter().enumerate() {
        let (status, reply) = t.announce(&announce(digest, i as u64, None)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    let total = || a.requests().len() + b.requests().len();
    wait_for("seed requests", Duration::from_secs(10), async || {
        total() >= blobs.len()
    })
    .await;
    // More announces of the same blobs within the retry time, and a blob
    // that a peer holds pieces of: no further requests.
    for (i, &digest) in blobs.iter().enumerate() {
        t.announce(&announce(digest, 100 + i as u64, None)).await;
    }
    t.announce(&announce(blob(99), 1, Some(&pieces(4, 1))))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(), blobs.len());

    for fake in [&a, &b] {
        for r in fake.requests() {
            assert_eq!(r.target, "/api/v1/seed");
            assert!(r.signed, "unsigned seed request: {r:?}");
            let body = r.body.expect("a SeedRequest body");
            assert_eq!(body.upstream, "docker.io");
            assert_eq!(body.repo, "library/app");
            let winner = rendezvous(&body.digest, &urls).unwrap();
            assert_eq!(
                winner, &fake.url,
                "{} went to the wrong supernode",
                body.digest
            );
        }
    }
    let mut seeded: Vec<_> = a
        .requests()
        .iter()
        .chain(b.requests().iter())
        .map(|r| r.body.clone().unwrap().digest)
        .collect();
    seeded.sort();
    let mut expected = blobs.clone();
    expected.sort();
    assert_eq!(seeded, expected, "each blob exactly once");
    // Six blobs over two supernodes: both got work.
    assert!(!a.requests().is_empty() && !b.requests().is_empty());
}

#[tokio::test]
async fn seeder_signs_with_the_cluster_secret() {
    let ours = FakeSupernode::start(auth()).await;
    let theirs = FakeSupernode::start(wrong_auth()).await;
    let req = SeedRequest {
        upstream: "docker.io".into(),
        repo: "library/app".into(),
        digest: blob(1),
    };
    let seeder = Seeder::new(Some(auth())).unwrap();
    seeder.send(&format!("{}/", ours.url), &req).await.unwrap();
    let err = seeder.send(&theirs.url, &req).await.unwrap_err();
    assert!(
        matches!(
            err,
            SeedError::Rejected {
                status: StatusCode::UNAUTHORIZED,
                ..
            }
        ),
        "{err}"
    );
    // Nobody listening: a transport error, within the timeout.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = seeder
        .send(&format!("http://{closed}"), &req)
        .await
        .unwrap_err();
    assert!(matches!(err, SeedError::Transport(_)), "{err}");
    assert_eq!(ours.requests()[0].body.as_ref(), Some(&req));
}
