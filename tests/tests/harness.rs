//! The harness checked on its own, without any Shoal daemon: the registry,
//! the image generator, the TLS material, the verifying puller, and each
//! real client pulling with the registry itself as its mirror.

use shoal_tests::clients::containerd::Containerd;
use shoal_tests::clients::docker::Dockerd;
use shoal_tests::clients::skopeo::{Platforms, Skopeo};
use shoal_tests::cluster::{IMAGE_REF, REPO, TAG, registry_with_image};
use shoal_tests::lock;
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::tls::TestPki;

#[tokio::test]
async fn registry_counts_gets_apart_from_heads() {
    let (registry, image) = registry_with_image(None, &[REPO]).await;
    let client = registry.client();
    let layer = &image.platform("amd64").layers[0];
    let url = format!("{}/v2/{REPO}/blobs/{}", registry.url(), layer.digest);
    for _ in 0..2 {
        let body = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body, layer.bytes);
    }
    let head = client.head(&url).send().await.unwrap();
    assert!(head.status().is_success());
    registry.settle().await;

    assert_eq!(
        registry.blob_gets(REPO, &layer.digest),
        2,
        "{:#?}",
        registry.requests()
    );
    assert_eq!(registry.count_requests("HEAD", &layer.digest), 1);
    let other = &image.platform("arm64").layers[1];
    assert_eq!(registry.blob_gets(REPO, &other.digest), 0);
    // The push itself is in the log too: one PUT per distinct blob.
    assert_eq!(
        registry.count_requests("PUT", &format!("/v2/{REPO}/blobs/uploads/")),
        image.blobs().len()
    );
}

#[tokio::test]
async fn generated_image_pulls_and_verifies_for_both_platforms() {
    let (registry, image) = registry_with_image(None, &[REPO]).await;
    let client = registry.client();
    for arch in ["amd64", "arm64"] {
        let mut req = PullRequest::new(&registry.url(), REPO, TAG);
        req.architecture = arch.to_string();
        let pulled = pull(&client, &req).await.unwrap();
        let platform = image.platform(arch);
        assert_eq!(pulled.top_digest, image.index.digest);
        assert_eq!(pulled.manifest_digest, platform.manifest.digest);
        let want: Vec<_> = platform
            .blobs()
            .map(|b| (b.digest.clone(), b.size()))
            .collect();
        assert_eq!(pulled.blobs, want);
    }
    // The platforms share their base layer.
    assert_eq!(
        image.platform("amd64").layers[0].digest,
        image.platform("arm64").layers[0].digest
    );
    let missing = pull(
        &client,
        &PullRequest::new(&registry.url(), REPO, "no-such-tag"),
    )
    .await;
    assert!(missing.unwrap_err().contains("MANIFEST_UNKNOWN"));
}

#[tokio::test]
async fn tls_registry_is_trusted_only_with_the_test_ca() {
    let dir = shoal_tests::tmp::dir("shoal-pki-");
    let pki = TestPki::generate(dir.path());
    let (registry, image) = registry_with_image(Some(&pki), &[REPO]).await;
    assert!(registry.url().starts_with("https://127.0.0.1:"));

    let pulled = pull(
        &registry.client(),
        &PullRequest::new(&registry.url(), REPO, TAG),
    )
    .await
    .unwrap();
    assert_eq!(pulled.top_digest, image.index.digest);

    let untrusting = shoal_tests::http::client();
    let err = pull(&untrusting, &PullRequest::new(&registry.url(), REPO, TAG))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn skopeo_pulls_with_the_registry_as_its_mirror() {
    // The mirror location `ADDR/docker.io` puts `docker.io/` before the
    // repository, so the registry must hold the image under that name.
    let mirror_repo = format!("docker.io/{REPO}");
    let (registry, image) = registry_with_image(None, &[&mirror_repo]).await;
    let skopeo = Skopeo::with_mirror(&registry.addr().to_string());

    let all = skopeo
        .copy(IMAGE_REF, Platforms::All)
        .await
        .unwrap_or_else(|out| panic!("{out}"));
    assert_eq!(all.manifest_digest, image.index.digest, "{}", all.output);

    let arm = skopeo
        .copy(IMAGE_REF, Platforms::Arch("arm64"))
        .await
        .unwrap_or_else(|out| panic!("{out}"));
    let arm64 = image.platform("arm64");
    assert_eq!(arm.manifest_digest, arm64.manifest.digest);
    for blob in arm64.blobs() {
        let file = arm.dir.join(blob.digest.trim_start_matches("sha256:"));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            blob.bytes,
            "{}",
            file.display()
        );
    }
    registry.settle().await;
    assert!(registry.count_requests("GET", &format!("/v2/{mirror_repo}/manifests/")) > 0);
}

#[tokio::test]
async fn ctr_pulls_with_the_registry_as_its_mirror() {
    let _heavy = lock::heavy().await;
    let (registry, image) = registry_with_image(None, &[REPO]).await;
    let containerd = Containerd::start().await;
    let out = containerd
        .pull(&registry.addr().to_string(), IMAGE_REF, "linux/amd64")
        .await;
    assert!(out.success(), "{out}");
    assert_eq!(
        containerd.image_digest(IMAGE_REF).await.as_deref(),
        Some(image.index.digest.as_str())
    );
    registry.settle().await;
    // containerd names the registry it means in `?ns=`.
    assert!(
        registry.count_requests("GET", "ns=docker.io") > 0,
        "{:#?}",
        registry.requests()
    );
    for blob in image.platform("amd64").blobs() {
        assert_eq!(registry.blob_gets(REPO, &blob.digest), 1, "{}", blob.digest);
    }
}

#[tokio::test]
async fn dockerd_pulls_with_the_registry_as_its_mirror() {
    let _heavy = lock::heavy().await;
    let (registry, image) = registry_with_image(None, &[REPO]).await;
    let dockerd = Dockerd::start(&registry.addr().to_string()).await;
    let out = dockerd.pull(IMAGE_REF).await;
    assert!(out.success(), "{out}");
    let digests = dockerd.repo_digests(IMAGE_REF).await;
    assert!(
        digests
            .iter()
            .any(|d| d.ends_with(&format!("@{}", image.index.digest))),
        "RepoDigests {digests:?} lack {}",
        image.index.digest
    );
}
