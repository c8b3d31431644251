//! The client against a fake registry (see `fake`), over HTTP and HTTPS.

mod access;
mod fake;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use shoal_proto::{Digest, Reference};

use super::{Upstream, UpstreamConfig, UpstreamError, UpstreamOptions};
use fake::{
    AuthMode, BASIC_ALICE, Fake, MANIFEST, OCI_MANIFEST, alice, client, collect, opts, repo, serve,
    tag,
};

/// A fake registry asking for `auth` (its token endpoint wanting basic
/// credentials when `token_needs_basic`), its address, and a client
/// configured with alice's credentials.
async fn serve_for_alice(
    auth: AuthMode,
    token_needs_basic: bool,
) -> (Arc<Fake>, SocketAddr, Upstream) {
    let (fake, addr) = serve(Fake {
        auth,
        token_needs_basic,
        ..Fake::default()
    })
    .await;
    (fake, addr, alice(addr))
}

#[tokio::test]
async fn anonymous_manifest_and_blob() {
    let (fake, addr) = serve(Fake::default()).await;
    let up = client(addr);
    assert_eq!(up.name(), "fake");

    let head = up
        .head_manifest(&repo(), &tag("1.0"), &[OCI_MANIFEST])
        .await
        .unwrap();
    assert_eq!(head.digest, Digest::of(MANIFEST));
    assert_eq!(head.media_type, OCI_MANIFEST);
    assert_eq!(head.size, MANIFEST.len() as u64);

    let m = up.get_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    assert_eq!(&m.bytes[..], MANIFEST);
    assert_eq!(m.digest, head.digest);
    assert_eq!(m.media_type, OCI_MANIFEST);
    let by_digest = up
        .get_manifest(&repo(), &Reference::Digest(m.digest), &[])
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, m.bytes);

    let digest = Digest::of(&fake.blob);
    let body = up.get_blob(&repo(), &digest, 0).await.unwrap();
    assert_eq!((body.total_size, body.offset), (fake.blob.len() as u64, 0));
    assert_eq!(collect(body).await.unwrap(), fake.blob);
    assert_eq!(fake.hits(), 4);
    assert!(fake.seen_auth.lock().unwrap().iter().all(Option::is_none));
}

#[tokio::test]
async fn bearer_token_is_fetched_once_and_cached() {
    let (fake, addr) = serve(Fake {
        auth: AuthMode::Bearer,
        ..Fake::default()
    })
    .await;
    let up = client(addr);
    up.get_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    up.head_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    let body = up
        .get_blob(&repo(), &Digest::of(&fake.blob), 0)
        .await
        .unwrap();
    assert_eq!(collect(body).await.unwrap(), fake.blob);

    assert_eq!(fake.token_hits(), 1, "the token is cached");
    assert_eq!(
        fake.hits(),
        4,
        "one anonymous 401, then three authorised requests"
    );
    let query = fake.token_queries.lock().unwrap()[0].clone();
    assert!(query.contains("service=fake.registry"), "{query}");
    assert!(
        query.contains("scope=repository%3Alibrary%2Fapp%3Apull"),
        "{query}"
    );
    assert_eq!(
        fake.token_auth.lock().unwrap()[0],
        None,
        "anonymous token request"
    );
    let seen = fake.seen_auth.lock().unwrap().clone();
    assert_eq!(seen[0], None);
    assert!(
        seen[1..]
            .iter()
            .all(|a| a.as_deref() == Some("Bearer tok-1")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn bearer_realm_gets_basic_credentials_and_concurrent_requests_share_a_token() {
    let (fake, addr, up) = serve_for_alice(AuthMode::Bearer, true).await;
    let digest = Digest::of(&fake.blob);
    let pulls = (0..5).map(|_| {
        let up = up.clone();
        async move { collect(up.get_blob(&repo(), &digest, 0).await?).await }
    });
    for r in futures_util::future::join_all(pulls).await {
        assert_eq!(r.unwrap(), fake.blob);
    }
    assert_eq!(fake.token_hits(), 1);
    assert_eq!(
        fake.token_auth.lock().unwrap()[0].as_deref(),
        Some(BASIC_ALICE)
    );

    let anonymous = client(addr);
    let err = anonymous
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unauthorized(m) if m.contains("token endpoint") && m.contains("bad credentials")),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth() {
    let (fake, addr, up) = serve_for_alice(AuthMode::Basic, false).await;
    up.get_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    up.get_manifest(&repo(), &tag("1.0"), &[]).await.unwrap();
    assert_eq!(
        fake.hits(),
        3,
        "after the first challenge credentials are sent up front"
    );
    let seen = fake.seen_auth.lock().unwrap().clone();
    assert_eq!(
        seen,
        [None, Some(BASIC_ALICE.into()), Some(BASIC_ALICE.into())]
    );

    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unauthorized(m) if m.contains("none are configured")),
        "{err}"
    );

    let mut cfg = UpstreamConfig::new(format!("http://{addr}"));
    cfg.username = Some("alice".into());
    cfg.password = Some("wrong".into());
    let wrong = Upstream::new("fake", &cfg, &opts()).unwrap();
    let err = wrong
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unauthorized(m) if m.contains("authentication required")),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn server_error_is_retried() {
    let fake = Fake::default().with_script(&[(StatusCode::INTERNAL_SERVER_ERROR, None)]);
    let (fake, addr) = serve(fake).await;
    client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap();
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_the_retries() {
    let fake = Fake::default().with_script(&[(StatusCode::SERVICE_UNAVAILABLE, None); 10]);
    let (fake, addr) = serve(fake).await;
    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Status { status: 503, message } if message.contains("SCRIPTED: scripted failure")),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(fake.hits(), 1 + opts().retries as usize);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let (fake, addr) = serve(Fake::default()).await;
    let up = client(addr);
    let err = up
        .get_manifest(&repo(), &tag("missing"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound), "{err}");
    let err = up
        .head_manifest(&repo(), &tag("missing"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound), "{err}");
    assert_eq!(fake.hits(), 2);

    let fake = Fake::default().with_script(&[(StatusCode::BAD_REQUEST, None)]);
    let (fake, addr) = serve(fake).await;
    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 400, .. }),
        "{err}"
    );
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let fake = Fake::default().with_script(&[(StatusCode::TOO_MANY_REQUESTS, Some("1"))]);
    let (fake, addr) = serve(fake).await;
    let start = Instant::now();
    client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.hits(), 2);

    let fake = Fake::default().with_script(&[(StatusCode::TOO_MANY_REQUESTS, Some("3600"))]);
    let (fake, addr) = serve(fake).await;
    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::TooManyRequests { retry_after: Some(d) } if d == Duration::from_secs(3600)),
        "{err}"
    );
    assert_eq!(fake.hits(), 1, "an hour is not worth waiting for");
}

#[tokio::test]
async fn blob_from_offset_with_range() {
    let (fake, addr) = serve(Fake::default()).await;
    let body = client(addr)
        .get_blob(&repo(), &Digest::of(&fake.blob), 12_345)
        .await
        .unwrap();
    assert_eq!(
        (body.total_size, body.offset),
        (fake.blob.len() as u64, 12_345)
    );
    assert_eq!(collect(body).await.unwrap(), fake.blob[12_345..]);
}

#[tokio::test]
async fn blob_from_offset_when_range_is_ignored() {
    let (fake, addr) = serve(Fake {
        ignore_range: true,
        ..Fake::default()
    })
    .await;
    let body = client(addr)
        .get_blob(&repo(), &Digest::of(&fake.blob), 12_345)
        .await
        .unwrap();
    assert_eq!(
        (body.total_size, body.offset),
        (fake.blob.len() as u64, 12_345)
    );
    assert_eq!(collect(body).await.unwrap(), fake.blob[12_345..]);
    let len = fake.blob.len() as u64;
    let end = client(addr)
        .get_blob(&repo(), &Digest::of(&fake.blob), len)
        .await
        .unwrap();
    assert!(collect(end).await.unwrap().is_empty());
    let err = client(addr)
        .get_blob(&repo(), &Digest::of(&fake.blob), len + 1)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Protocol(_)), "{err}");
}

#[tokio::test]
async fn stalled_blob_body_times_out() {
    let (fake, addr) = serve(Fake {
        stall_blob: true,
        ..Fake::default()
    })
    .await;
    let read_timeout = Duration::from_millis(300);
    let up = Upstream::new(
        "fake",
        &UpstreamConfig::new(format!("http://{addr}")),
        &UpstreamOptions {
            read_timeout,
            ..opts()
        },
    )
    .unwrap();
    let body = up
        .get_blob(&repo(), &Digest::of(&fake.blob), 0)
        .await
        .unwrap();
    let mut stream = body.stream;
    let mut got = 0;
    let start = Instant::now();
    let err = loop {
        match stream.next().await.expect("the stream ends with an error") {
            Ok(chunk) => got += chunk.len(),
            Err(e) => break e,
        }
    };
    assert_eq!(got, 1000);
    assert!(
        matches!(&err, UpstreamError::Timeout(m) if m.contains("no data")),
        "{err}"
    );
    assert!(start.elapsed() < read_timeout * 3, "{:?}", start.elapsed());
    assert!(stream.next().await.is_none(), "nothing after the error");
}

#[tokio::test]
async fn headers_that_never_come_time_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let o = UpstreamOptions {
        request_timeout: Duration::from_millis(300),
        retries: 1,
        ..opts()
    };
    let up = Upstream::new("silent", &UpstreamConfig::new(format!("http://{addr}")), &o).unwrap();
    let start = Instant::now();
    let err = up
        .head_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Connect(_)), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn manifest_by_digest_must_match() {
    let (_, addr) = serve(Fake {
        manifest: Bytes::from_static(br#"{"tampered":true}"#),
        ..Fake::default()
    })
    .await;
    let asked = Digest::of(MANIFEST);
    let err = client(addr)
        .get_manifest(&repo(), &Reference::Digest(asked), &[])
        .await
        .unwrap_err();
    match err {
        UpstreamError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, asked);
            assert_eq!(actual, Digest::of(br#"{"tampered":true}"#));
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn oversized_manifest_is_refused() {
    let big = Bytes::from(vec![b' '; super::MAX_MANIFEST_SIZE + 1]);
    let (_, addr) = serve(Fake {
        manifest: big,
        ..Fake::default()
    })
    .await;
    let err = client(addr)
        .get_manifest(&repo(), &tag("1.0"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::TooLarge(n) if n > super::MAX_MANIFEST_SIZE as u64),
        "{err}"
    );
}

#[tokio::test]
async fn blob_redirect_to_storage_drops_authorization() {
    let (storage, storage_addr) = serve(Fake::default()).await;
    let (registry, addr) = serve(Fake {
        auth: AuthMode::Bearer,
        redirect_blobs_to: Some(format!("http://{storage_addr}")),
        ..Fake::default()
    })
    .await;
    let digest = Digest::of(&storage.blob);
    let body = client(addr).get_blob(&repo(), &digest, 100).await.unwrap();
    assert_eq!(body.total_size, storage.blob.len() as u64);
    assert_eq!(collect(body).await.unwrap(), storage.blob[100..]);
    assert_eq!(
        registry
            .seen_auth
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .as_deref(),
        Some("Bearer tok-1")
    );
    assert_eq!(
        *storage.seen_auth.lock().unwrap(),
        [None],
        "no Authorization to another host"
    );
}
