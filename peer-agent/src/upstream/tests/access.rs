//! Access checks send the client's credentials, never the configured ones.

use axum::http::HeaderValue;
use shoal_proto::Digest;

use super::fake::{AuthMode, BASIC_ALICE, repo, tag};
use super::serve_for_alice;
use crate::upstream::{AccessTarget, UpstreamError};

fn header(v: &'static str) -> HeaderValue {
    HeaderValue::from_static(v)
}

#[tokio::test]
async fn basic_upstream_checks_the_clients_credentials_only() {
    // Configured with alice's credentials, which must not count.
    let (fake, _, up) = serve_for_alice(AuthMode::Basic, false).await;
    let manifest = AccessTarget::Manifest(tag("1.0"));
    let err = up.check_access(&repo(), &manifest, None).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unauthorized(_)), "{err}");
    assert!(fake.seen_auth.lock().unwrap().iter().all(Option::is_none));

    let wrong = header("Basic YWxpY2U6d3Jvbmc=");
    let err = up
        .check_access(&repo(), &manifest, Some(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unauthorized(_)), "{err}");

    let ok = header(BASIC_ALICE);
    up.check_access(&repo(), &manifest, Some(&ok))
        .await
        .unwrap();
    let blob = AccessTarget::Blob(Digest::of(&fake.blob));
    up.check_access(&repo(), &blob, Some(&ok)).await.unwrap();
    // Content that is not in the repository grants nothing.
    let missing = AccessTarget::Manifest(tag("missing"));
    let err = up
        .check_access(&repo(), &missing, Some(&ok))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound), "{err}");
}

#[tokio::test]
async fn bearer_upstream_gets_a_token_for_the_clients_credentials() {
    let (fake, _, up) = serve_for_alice(AuthMode::Bearer, true).await;
    let manifest = AccessTarget::Manifest(tag("1.0"));
    let err = up.check_access(&repo(), &manifest, None).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unauthorized(m) if m.contains("token endpoint")),
        "{err}"
    );
    assert_eq!(fake.token_auth.lock().unwrap().clone(), [None]);

    up.check_access(&repo(), &manifest, Some(&header(BASIC_ALICE)))
        .await
        .unwrap();
    assert_eq!(
        fake.token_auth.lock().unwrap().last().unwrap().as_deref(),
        Some(BASIC_ALICE)
    );
    // A client holding a token sends it as it is.
    let token = header("Bearer tok-1");
    up.check_access(&repo(), &manifest, Some(&token))
        .await
        .unwrap();
    let err = up
        .check_access(&repo(), &manifest, Some(&header("Bearer forged")))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unauthorized(_)), "{err}");
}
