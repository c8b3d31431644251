//! Each Shoal daemon on its own: it starts on `127.0.0.1:0`, writes its
//! ready file, answers `/healthz` and `/metrics`; and the agent's routing of
//! registry requests to upstreams.

use shoal_tests::cluster::{Cluster, REPO, TAG, UPSTREAM_NAME, upstreams};
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::registry::Registry;

fn assert_loopback(addr: std::net::SocketAddr) {
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
}

#[tokio::test]
async fn tracker_starts_and_serves_health_and_metrics() {
    let tracker = Daemon::tracker().await;
    assert_loopback(tracker.http_addr());
    assert_eq!(tracker.p2p_addr(), None, "the tracker has no p2p address");
    // Prometheus text; it may be empty before anything was recorded.
    tracker.metrics().await;
}

#[tokio::test]
async fn supernode_and_agent_start_and_serve_health_and_metrics() {
    let registry = Registry::start().await;
    let supernode = Daemon::supernode(&SupernodeOptions {
        upstreams: upstreams(&registry),
        upstream_cas: Vec::new(),
    })
    .await;
    let agent = Daemon::agent(&supernode, &upstreams(&registry)).await;
    for daemon in [&supernode, &agent] {
        assert_loopback(daemon.http_addr());
        // Without a cluster secret there is no piece transport to report.
        assert_eq!(daemon.p2p_addr(), None);
        daemon.metrics().await;
    }
}

#[tokio::test]
async fn agent_routes_by_ns_by_path_prefix_and_to_the_default() {
    let cluster = Cluster::start(1).await;
    let agent = cluster.agent().http_url();
    let client = shoal_tests::http::client();
    let requests = [
        // Docker's registry-mirrors: no registry named, the default upstream.
        PullRequest::new(&agent, REPO, TAG),
        // containerd's hosts.toml mirrors: `?ns=docker.io`.
        PullRequest::new(&agent, REPO, TAG).with_ns(UPSTREAM_NAME),
        // registries.conf mirrors with location `ADDR/docker.io`.
        PullRequest::new(&agent, &format!("{UPSTREAM_NAME}/{REPO}"), TAG),
    ];
    for req in &requests {
        let pulled = pull(&client, req)
            .await
            .unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert_eq!(pulled.top_digest, cluster.image.index.digest);
        assert_eq!(
            pulled.manifest_digest,
            cluster.image.platform("amd64").manifest.digest
        );
    }
}

#[tokio::test]
async fn agent_refuses_unknown_namespaces() {
    let cluster = Cluster::start(1).await;
    let url = format!(
        "{}/v2/{REPO}/manifests/{TAG}?ns=registry.invalid",
        cluster.agent().http_url()
    );
    let resp = shoal_tests::http::client().get(&url).send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_client_error(), "GET {url}: {status}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("error body is not OCI JSON ({e}): {body}"));
    assert!(json["errors"].is_array(), "{body}");
}
