//! The API in process: authentication, validation, peers finding each
//! other, and expiry (with paused time).

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use shoal_tracker::Auth;

use crate::util::{
    InProcess, announce, auth, blob, peer_ids, pieces, request, swarm_peers, wrong_auth,
};

const INTERVAL: Duration = Duration::from_secs(1);

fn error_code(body: &serde_json::Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_requests_are_refused_and_change_nothing() {
    let t = InProcess::new(&[], INTERVAL);
    let b = blob(1);
    let body = serde_json::to_vec(&announce(b, 1, Some(&pieces(8, 8)))).unwrap();
    let other_body = serde_json::to_vec(&announce(b, 9, Some(&pieces(8, 8)))).unwrap();
    let path = "/api/v1/announce";
    let good = auth();
    let cases = [
        ("unsigned", request(Method::POST, path, &body, None)),
        (
            "other secret",
            request(Method::POST, path, &body, Some(&wrong_auth())),
        ),
        ("other body", {
            let mut r = request(Method::POST, path, &other_body, Some(&good));
            *r.body_mut() = body.clone().into();
            r
        }),
        ("other path", {
            let mut r = request(Method::POST, "/api/v1/announce?x", &body, Some(&good));
            *r.uri_mut() = path.parse().unwrap();
            r
        }),
        ("garbage header", {
            let mut r = request(Method::POST, path, &body, None);
            r.headers_mut().insert(
                http::header::AUTHORIZATION,
                "Shoal ts=1,sig=zz".parse().unwrap(),
            );
            r
        }),
    ];
    for (what, req) in cases {
        let (status, json) = t.call(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {json}");
        assert_eq!(error_code(&json), "UNAUTHORIZED", "{what}: {json}");
        assert!(!json["errors"][0]["message"].as_str().unwrap().is_empty());
    }
    // The debug view needs a signature too.
    let (status, _) = t
        .call(request(
            Method::GET,
            &format!("/api/v1/swarm/{b}"),
            b"",
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was recorded: the blob is unknown and a member sees nobody.
    let (status, json) = t.swarm(b).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&json), "BLOB_UNKNOWN");
    let (status, reply) = t.announce(&announce(b, 2, None)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());
}

#[tokio::test]
async fn two_peers_announcing_one_blob_see_each_other() {
    let t = InProcess::new(&[], INTERVAL);
    let b = blob(2);
    // Peer 1 holds 3 of 4 pieces (a complete peer is told nobody: others
    // come to it).
    let (status, reply) = t.announce(&announce(b, 1, Some(&pieces(4, 3)))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());
    let ms = reply["interval_ms"].as_u64().unwrap();
    assert!((900..=1100).contains(&ms), "interval {ms} ms");

    let (_, reply) = t.announce(&announce(b, 2, Some(&pieces(4, 1)))).await;
    assert_eq!(peer_ids(&reply), [1]);
    let p = &reply["peers"][0];
    assert_eq!(p["addr"], "127.0.0.1:40001");
    assert_eq!(p["seed"], false);
    let (_, reply) = t.announce(&announce(b, 1, Some(&pieces(4, 3)))).await;
    assert_eq!(peer_ids(&reply), [2]);

    let (status, view) = t.swarm(b).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(swarm_peers(&view), [(1, 3), (2, 1)]);
    assert_eq!(view["upstream"], "docker.io");
    assert_eq!(view["repo"], "library/app");
    assert_eq!(view["peers"][0]["total"], 4);

    // Another blob is another swarm.
    let (_, reply) = t.announce(&announce(blob(3), 3, None)).await;
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());

    // A peer that leaves is gone at once.
    let mut leave = announce(b, 2, None);
    leave["stopped"] = json!(true);
    let (status, reply) = t.announce(&leave).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());
    let (_, view) = t.swarm(b).await;
    assert_eq!(swarm_peers(&view), [(1, 3)]);
}

#[tokio::test]
async fn invalid_announces_get_a_clear_400() {
    let t = InProcess::new(&[], INTERVAL);
    let b = blob(4);
    t.announce(&announce(b, 1, Some(&pieces(8, 2)))).await;
    let with = |key: &str, value: serde_json::Value| {
        let mut a = announce(b, 2, None);
        a[key] = value;
        a
    };
    let cases = [
        (with("blob", json!("sha256:xyz")), "digest"),
        (with("upload_load", json!(101)), "upload_load"),
        (with("upload_load", json!(1000)), "u8"),
        (with("repo", json!("UPPER/case")), "repo"),
        (with("upstream", json!("")), "upstream"),
        (with("addr", json!("")), "addr"),
        (with("peer", json!(-1)), "u64"),
        (with("pieces", json!(pieces(9, 1))), "bitfield of 9 pieces"),
        (with("addr", json!("a".repeat(300))), "longer than"),
        (json!({"blob": b}), "missing field"),
    ];
    for (body, expect) in cases {
        let (status, json) = t.announce(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(error_code(&json), "ANNOUNCE_INVALID", "{json}");
        let message = json["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{expect:?} not in {message:?}");
    }
    let raw = request(
        Method::POST,
        "/api/v1/announce",
        b"{not json",
        Some(&auth()),
    );
    assert_eq!(t.call(raw).await.0, StatusCode::BAD_REQUEST);
    // Bodies past the limit are refused before anything else.
    let huge = vec![b' '; 65 * 1024];
    let req = request(Method::POST, "/api/v1/announce", &huge, Some(&auth()));
    assert_eq!(t.call(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // The swarm view checks its digest; unknown paths are 404.
    let req = request(Method::GET, "/api/v1/swarm/sha256:12", b"", Some(&auth()));
    let (status, json) = t.call(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&json), "DIGEST_INVALID");
    let req = request(Method::GET, "/api/v1/nothing", b"", Some(&auth()));
    assert_eq!(t.call(req).await.0, StatusCode::NOT_FOUND);
    // The first peer is untouched.
    let (_, view) = t.swarm(b).await;
    assert_eq!(swarm_peers(&view), [(1, 2)]);
}

#[tokio::test(start_paused = true)]
async fn peers_that_stop_announcing_expire() {
    // With a 1 s interval an entry lives 3 intervals plus the 10% jitter:
    // 3.3 s after its last announce.
    let t = InProcess::new(&[], INTERVAL);
    let b = blob(5);
    t.announce(&announce(b, 1, Some(&pieces(4, 4)))).await;
    t.announce(&announce(b, 2, None)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, reply) = t.announce(&announce(b, 2, None)).await;
    assert_eq!(peer_ids(&reply), [1], "peer 1 still fresh at 2 s");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, view) = t.swarm(b).await;
    assert_eq!(swarm_peers(&view), [(2, 0)], "peer 1 expired at 3.3 s");
    let (_, reply) = t.announce(&announce(blob(6), 3, None)).await;
    assert_eq!(peer_ids(&reply), Vec::<u64>::new());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = t.swarm(b).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "peer 2 expired at 5.3 s");
}

#[tokio::test]
async fn insecure_mode_accepts_unsigned_requests() {
    let t = InProcess::with_auth(&[], INTERVAL, Auth::Insecure);
    let body = serde_json::to_vec(&announce(blob(7), 1, None)).unwrap();
    let (status, json) = t
        .call(request(Method::POST, "/api/v1/announce", &body, None))
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
}
