//! Real clients pulling the multi-platform test image through one agent
//! (backed by one supernode and the upstream registry), each configured with
//! the documented example for it; each must end with the upstream's digest.

use shoal_tests::clients::containerd::Containerd;
use shoal_tests::clients::docker::Dockerd;
use shoal_tests::clients::skopeo::{Platforms, Skopeo};
use shoal_tests::cluster::{Cluster, IMAGE_REF};
use shoal_tests::lock;

#[tokio::test]
async fn skopeo_pulls_through_the_agent() {
    let cluster = Cluster::start(1).await;
    let skopeo = Skopeo::with_mirror(&cluster.agent().http_addr().to_string());

    let all = skopeo
        .copy(IMAGE_REF, Platforms::All)
        .await
        .unwrap_or_else(|out| panic!("{out}"));
    assert_eq!(all.manifest_digest, cluster.image.index.digest);

    let arm = skopeo
        .copy(IMAGE_REF, Platforms::Arch("arm64"))
        .await
        .unwrap_or_else(|out| panic!("{out}"));
    assert_eq!(
        arm.manifest_digest,
        cluster.image.platform("arm64").manifest.digest
    );
}

#[tokio::test]
async fn ctr_pulls_through_the_agent() {
    let _heavy = lock::heavy().await;
    let cluster = Cluster::start(1).await;
    let containerd = Containerd::start().await;
    let out = containerd
        .pull(
            &cluster.agent().http_addr().to_string(),
            IMAGE_REF,
            "linux/amd64",
        )
        .await;
    assert!(out.success(), "{out}");
    assert_eq!(
        containerd.image_digest(IMAGE_REF).await.as_deref(),
        Some(cluster.image.index.digest.as_str())
    );
}

#[tokio::test]
async fn dockerd_pulls_through_the_agent() {
    let _heavy = lock::heavy().await;
    let cluster = Cluster::start(1).await;
    let dockerd = Dockerd::start(&cluster.agent().http_addr().to_string()).await;
    let out = dockerd.pull(IMAGE_REF).await;
    assert!(out.success(), "{out}");
    let digests = dockerd.repo_digests(IMAGE_REF).await;
    let want = format!("@{}", cluster.image.index.digest);
    assert!(
        digests.iter().any(|d| d.ends_with(&want)),
        "RepoDigests {digests:?} lack {want}"
    );
}
