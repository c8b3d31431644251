//! Many pulls at once reach the upstream once per blob: ten concurrent
//! pulls through one agent, and one pull through each of ten agents that
//! share a supernode. The registry's access log must show exactly one GET of
//! each blob the pulls needed.

use shoal_tests::cluster::{Cluster, REPO, TAG, UPSTREAM_NAME};
use shoal_tests::lock;
use shoal_tests::oci_pull::{PullRequest, pull};

const PULLS: usize = 10;

/// Runs the pulls concurrently and checks each against the upstream image.
async fn pull_all(cluster: &Cluster, requests: Vec<PullRequest>) {
    let client = shoal_tests::http::client();
    let results = futures_util::future::join_all(requests.iter().map(|r| pull(&client, r))).await;
    let amd64 = cluster.image.platform("amd64");
    for (req, result) in requests.iter().zip(results) {
        let pulled = result.unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert_eq!(pulled.top_digest, cluster.image.index.digest);
        assert_eq!(pulled.manifest_digest, amd64.manifest.digest);
        assert_eq!(pulled.blobs.len(), amd64.layers.len() + 1);
    }
}

/// Exactly one upstream GET per blob of the pulled platform.
async fn assert_each_blob_fetched_once(cluster: &Cluster) {
    cluster.registry.settle().await;
    for blob in cluster.image.platform("amd64").blobs() {
        let gets = cluster.registry.blob_gets(REPO, &blob.digest);
        assert_eq!(
            gets,
            1,
            "upstream GETs of {} ({} bytes)\nrequests: {:#?}",
            blob.digest,
            blob.size(),
            cluster.registry.requests()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_pulls_through_one_agent_fetch_each_blob_once() {
    let _heavy = lock::heavy().await;
    let cluster = Cluster::start(1).await;
    let agent = cluster.agent().http_url();
    // All three ways clients name the registry, mixed.
    let requests = (0..PULLS)
        .map(|i| match i % 3 {
            0 => PullRequest::new(&agent, REPO, TAG),
            1 => PullRequest::new(&agent, REPO, TAG).with_ns(UPSTREAM_NAME),
            _ => PullRequest::new(&agent, &format!("{UPSTREAM_NAME}/{REPO}"), TAG),
        })
        .collect();
    pull_all(&cluster, requests).await;
    assert_each_blob_fetched_once(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_agents_sharing_a_supernode_fetch_each_blob_once() {
    let _heavy = lock::heavy().await;
    let cluster = Cluster::start(PULLS).await;
    let requests = cluster
        .agents
        .iter()
        .map(|a| PullRequest::new(&a.http_url(), REPO, TAG).with_ns(UPSTREAM_NAME))
        .collect();
    pull_all(&cluster, requests).await;
    assert_each_blob_fetched_once(&cluster).await;
}
