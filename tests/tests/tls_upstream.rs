//! An HTTPS upstream signed by a private CA: a supernode given the CA with
//! `--upstream-ca` pulls from it; one without it fails, and says that the
//! certificate is the problem.

use shoal_tests::cluster::{REPO, TAG, UPSTREAM_NAME, registry_with_image, upstreams};
use shoal_tests::image::TestImage;
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::registry::Registry;
use shoal_tests::tls::TestPki;

struct TlsUpstream {
    registry: Registry,
    image: TestImage,
    pki: TestPki,
    _dir: tempfile::TempDir,
}

async fn tls_upstream() -> TlsUpstream {
    let dir = shoal_tests::tmp::dir("shoal-pki-");
    let pki = TestPki::generate(dir.path());
    let (registry, image) = registry_with_image(Some(&pki), &[REPO]).await;
    assert!(registry.url().starts_with("https://"));
    TlsUpstream {
        registry,
        image,
        pki,
        _dir: dir,
    }
}

#[tokio::test]
async fn supernode_with_upstream_ca_pulls_from_https_upstream() {
    let up = tls_upstream().await;
    let supernode = Daemon::supernode(&SupernodeOptions {
        upstreams: upstreams(&up.registry),
        upstream_cas: vec![(UPSTREAM_NAME.to_string(), up.pki.ca_pem.clone())],
    })
    .await;
    let agent = Daemon::agent(&supernode, &upstreams(&up.registry)).await;
    let pulled = pull(
        &shoal_tests::http::client(),
        &PullRequest::new(&agent.http_url(), REPO, TAG),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pulled.top_digest, up.image.index.digest);
    assert_eq!(
        pulled.manifest_digest,
        up.image.platform("amd64").manifest.digest
    );
}

#[tokio::test]
async fn supernode_without_upstream_ca_reports_a_certificate_error() {
    let up = tls_upstream().await;
    let supernode = Daemon::supernode(&SupernodeOptions {
        upstreams: upstreams(&up.registry),
        upstream_cas: Vec::new(),
    })
    .await;
    let agent = Daemon::agent(&supernode, &upstreams(&up.registry)).await;
    let result = pull(
        &shoal_tests::http::client(),
        &PullRequest::new(&agent.http_url(), REPO, TAG),
    )
    .await;
    let err = match result {
        Ok(p) => panic!("pull without the CA succeeded: {p:?}"),
        Err(e) => e,
    };
    eprintln!("client error, as expected: {err}");
    let agent_log = agent.log();
    assert!(
        err.to_lowercase().contains("certificate")
            || agent_log.to_lowercase().contains("certificate"),
        "neither the client's error nor the agent's log mentions the certificate.\n\
         client error: {err}"
    );
}
