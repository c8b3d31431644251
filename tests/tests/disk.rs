//! Disk space (issue 5, "Faults"): a full disk and the `--max-disk` quota.
//!
//! - `full_disk_*`: the agent's data dir is a small tmpfs, filled up but
//!   for 2 MiB. An 8 MiB blob is refused with a clear OCI error (507,
//!   before any byte of a body that could not be completed), nothing of it
//!   appears in the store, the agent keeps serving the blob it has, and
//!   once the space is freed the same request succeeds. Once over HTTP
//!   from the supernode (no cluster secret), once in pieces (swarm).
//! - `max_disk_evicts_the_least_recently_used_image`: agent and supernode
//!   with a quota smaller than two images; pulling image B evicts image A's
//!   blobs, and pulling A again works (and evicts B's).

use reqwest::StatusCode;
use shoal_tests::cluster::{REPO, UPSTREAM_NAME, upstreams};
use shoal_tests::image::{Blob, LayerSpec, PlatformSpec, TestImage, sha256_digest};
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::registry::Registry;
use shoal_tests::swarm::{SECRET, args, write_secret};
use shoal_tests::tmpfs::Tmpfs;

const MIB: usize = 1024 * 1024;

fn image(seed: u64, layers: &[(u64, usize)]) -> TestImage {
    TestImage::generate(
        seed,
        &[PlatformSpec {
            os: "linux",
            architecture: "amd64",
            layers: layers
                .iter()
                .map(|&(key, size)| LayerSpec { key, size })
                .collect(),
        }],
    )
}

/// Where `digest`'s complete blob lives in the store under `data_dir`.
fn stored(data_dir: &std::path::Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// `GET` of a blob through `agent`: status and body (or why the body
/// broke off).
async fn get_blob(agent: &Daemon, blob: &Blob) -> (StatusCode, Result<bytes::Bytes, String>) {
    let url = format!(
        "{}/v2/{REPO}/blobs/{}?ns={UPSTREAM_NAME}",
        agent.http_url(),
        blob.digest
    );
    let resp = shoal_tests::http::client()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    (status, resp.bytes().await.map_err(|e| e.to_string()))
}

/// Expects `blob` whole and verified through `agent`.
async fn expect_blob(agent: &Daemon, blob: &Blob) {
    let (status, body) = get_blob(agent, blob).await;
    assert_eq!(status, StatusCode::OK, "{}", agent.log_tail());
    let body = body.unwrap_or_else(|e| panic!("body: {e}\n{}", agent.log_tail()));
    assert_eq!(sha256_digest(&body), blob.digest, "served bytes");
}

async fn full_disk(swarm: bool) {
    let tmp = shoal_tests::tmp::dir("disk-full-");
    let secret = write_secret(tmp.path(), SECRET);
    let tmpfs = Tmpfs::mount("24m");
    let data_dir = tmpfs.path().join("agent");
    let image = image(0xd15c, &[(41, MIB), (42, 8 * MIB)]);
    let (small, big) = {
        let layers = &image.platform("amd64").layers;
        (layers[0].clone(), layers[1].clone())
    };
    let registry = Registry::start().await;
    image
        .push(&registry.client(), &registry.url(), REPO, "1.0")
        .await;
    let secret_args = if swarm {
        args(&[("--cluster-secret-file", secret.display().to_string())])
    } else {
        Vec::new()
    };
    let supernode = Daemon::supernode_with(
        &SupernodeOptions {
            upstreams: upstreams(&registry),
            upstream_cas: Vec::new(),
        },
        &secret_args,
    )
    .await;
    let mut agent_args = secret_args.clone();
    agent_args.extend(args(&[("--data-dir", data_dir.display().to_string())]));
    let agent = Daemon::agent_with(&supernode, &upstreams(&registry), &agent_args).await;

    expect_blob(&agent, &small).await;
    let filler = tmpfs.fill("filler", 2 * MIB as u64);

    let (status, body) = get_blob(&agent, &big).await;
    assert_eq!(
        status,
        StatusCode::INSUFFICIENT_STORAGE,
        "an 8 MiB blob on a disk with 2 MiB free (body: {})\n{}",
        match &body {
            Ok(b) => String::from_utf8_lossy(&b[..b.len().min(500)]).into_owned(),
            Err(e) => format!("broke off: {e}"),
        },
        agent.log_tail()
    );
    let body = body.expect("error body");
    let err: serde_json::Value = serde_json::from_slice(&body).expect("OCI JSON error body");
    let entry = &err["errors"][0];
    assert_eq!(entry["code"], "UNAVAILABLE", "{err}");
    let message = entry["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk full"), "unclear message: {message}");
    assert!(
        !stored(&data_dir, &big.digest).exists(),
        "a partial blob is visible in the store"
    );
    let leftovers: Vec<_> = std::fs::read_dir(data_dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");

    // Still serving what it has, and healthy.
    expect_blob(&agent, &small).await;
    let health = shoal_tests::http::client()
        .get(format!("{}/healthz", agent.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Space back: the same request succeeds.
    std::fs::remove_file(filler).unwrap();
    expect_blob(&agent, &big).await;
    assert!(stored(&data_dir, &big.digest).is_file());
    drop(agent);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_whole_blobs_get_a_clear_error_and_recover() {
    full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_pieced_downloads_get_a_clear_error_and_recover() {
    full_disk(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_disk_evicts_the_least_recently_used_image() {
    let a = image(0xaaaa, &[(51, 4 * MIB)]);
    let b = image(0xbbbb, &[(52, 4 * MIB)]);
    let registry = Registry::start().await;
    for (img, tag) in [(&a, "a"), (&b, "b")] {
        img.push(&registry.client(), &registry.url(), REPO, tag)
            .await;
    }
    // Room for one image, not two.
    let quota = args(&[("--max-disk", "6MiB".into())]);
    let supernode = Daemon::supernode_with(
        &SupernodeOptions {
            upstreams: upstreams(&registry),
            upstream_cas: Vec::new(),
        },
        &quota,
    )
    .await;
    let agent = Daemon::agent_with(&supernode, &upstreams(&registry), &quota).await;
    let client = shoal_tests::http::client();
    let pull_tag =
        |tag: &str| PullRequest::new(&agent.http_url(), REPO, tag).with_ns(UPSTREAM_NAME);
    let layer = |img: &TestImage| img.platform("amd64").layers[0].digest.clone();
    let check = |what: &str, present: &TestImage, gone: &TestImage| {
        for daemon in [&agent, &supernode] {
            let dir = daemon.data_dir();
            assert!(
                stored(&dir, &layer(present)).is_file(),
                "{what}: {} lacks the image just pulled",
                dir.display()
            );
            assert!(
                !stored(&dir, &layer(gone)).exists(),
                "{what}: {} kept the other image beyond its quota",
                dir.display()
            );
        }
    };

    for (img, other, tag) in [(&a, &b, "a"), (&b, &a, "b"), (&a, &b, "a")] {
        let pulled = pull(&client, &pull_tag(tag))
            .await
            .unwrap_or_else(|e| panic!("pull {tag}: {e}\n{}", agent.log_tail()));
        assert_eq!(
            pulled.manifest_digest,
            img.platform("amd64").manifest.digest
        );
        if tag == "b" {
            check("after pulling B", img, other);
        }
    }
    check("after pulling A again", &a, &b);
    for daemon in [&agent, &supernode] {
        let evictions = daemon.metric_sum("shoal_store_evictions_total").await;
        assert!(
            evictions.unwrap_or(0.0) >= 2.0,
            "evictions: {evictions:?}\n{}",
            daemon.log_tail()
        );
        let bytes = daemon.metric_sum("shoal_store_bytes").await.unwrap_or(0.0);
        assert!(
            bytes > 0.0 && bytes <= (6 * MIB) as f64,
            "shoal_store_bytes {bytes}"
        );
    }
}
