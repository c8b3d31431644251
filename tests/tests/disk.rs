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
//! - `max_disk_evicts_with_swarming_agents`: the same with a tracker, the
//!   supernode and 3 swarming agents, each with the quota: in each round
//!   one agent pulls, then the other two at once (from it, each other and
//!   the supernode); every store ends up holding just the image pulled
//!   last, every daemon evicted at least twice, and agents sent each other
//!   pieces.
//! - `max_disk_eviction_is_forgotten_towards_peers`: an agent evicts a
//!   blob while a slow peer downloads it from it; the peer is told at once
//!   (`Forget` on the `have` stream) instead of learning it from refused
//!   requests, so it never drops the honest agent as a liar.

use reqwest::StatusCode;
use shoal_tests::cluster::{REPO, UPSTREAM_NAME, upstreams};
use shoal_tests::image::{Blob, LayerSpec, PlatformSpec, TestImage, sha256_digest};
use shoal_tests::lock;
use shoal_tests::metrics::labelled;
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::registry::Registry;
use shoal_tests::swarm::{SECRET, args, received_from, write_secret};
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
    let secret_flags = if swarm {
        secret_args(&secret)
    } else {
        Vec::new()
    };
    let supernode = supernode(&registry, &secret_flags).await;
    let mut agent_args = secret_flags.clone();
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

/// The single layer of `img` (the quota tests' images have one).
fn layer(img: &TestImage) -> String {
    img.platform("amd64").layers[0].digest.clone()
}

/// Panics unless each of `daemons` stores `present`'s layer and not
/// `gone`'s.
fn expect_holds(what: &str, daemons: &[&Daemon], present: &TestImage, gone: &TestImage) {
    for daemon in daemons {
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
}

/// Panics unless `daemon` evicted at least twice and its store is within
/// `quota` bytes (and not empty).
async fn expect_quota_kept(daemon: &Daemon, quota: usize) {
    let evictions = daemon.metric_sum("shoal_store_evictions_total").await;
    assert!(
        evictions.unwrap_or(0.0) >= 2.0,
        "evictions: {evictions:?}\n{}",
        daemon.log_tail()
    );
    let bytes = daemon.metric_sum("shoal_store_bytes").await.unwrap_or(0.0);
    assert!(
        bytes > 0.0 && bytes <= quota as f64,
        "shoal_store_bytes {bytes}\n{}",
        daemon.log_tail()
    );
}

/// Pulls `REPO:tag` through each of `agents` at once; panics (with the
/// agent's log) unless every pull verified and yielded `img`'s manifest.
async fn pull_through(agents: &[&Daemon], tag: &str, img: &TestImage) {
    let client = shoal_tests::http::client();
    let requests: Vec<PullRequest> = agents
        .iter()
        .map(|a| PullRequest::new(&a.http_url(), REPO, tag).with_ns(UPSTREAM_NAME))
        .collect();
    let results = futures_util::future::join_all(requests.iter().map(|r| pull(&client, r))).await;
    for (agent, result) in agents.iter().zip(results) {
        let pulled =
            result.unwrap_or_else(|e| panic!("pull {tag}: {e}\nlog:\n{}", agent.log_tail()));
        assert_eq!(
            pulled.manifest_digest,
            img.platform("amd64").manifest.digest,
            "pull {tag}"
        );
    }
}

/// Two 4 MiB single-layer images pushed as `REPO:a` and `REPO:b`.
async fn two_images() -> (Registry, TestImage, TestImage) {
    let a = image(0xaaaa, &[(51, 4 * MIB)]);
    let b = image(0xbbbb, &[(52, 4 * MIB)]);
    let registry = Registry::start().await;
    for (img, tag) in [(&a, "a"), (&b, "b")] {
        img.push(&registry.client(), &registry.url(), REPO, tag)
            .await;
    }
    (registry, a, b)
}

/// `--max-disk`: room for one of [`two_images`], not both.
const QUOTA: usize = 6 * MIB;

/// `--max-disk` [`QUOTA`].
fn quota_args() -> Vec<String> {
    args(&[("--max-disk", "6MiB".into())])
}

/// A supernode with `registry` as its upstream and `flags`.
async fn supernode(registry: &Registry, flags: &[String]) -> Daemon {
    let opts = SupernodeOptions {
        upstreams: upstreams(registry),
        ..SupernodeOptions::default()
    };
    Daemon::supernode_with(&opts, flags).await
}

/// What swarming agents need: a cluster secret, a supernode with it (of
/// `registry`, with `supernode_flags`), and a tracker announcing every
/// second.
struct Swarm {
    tracker: Daemon,
    supernode: Daemon,
    secret: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl Swarm {
    async fn start(registry: &Registry, supernode_flags: &[String]) -> Swarm {
        let tmp = shoal_tests::tmp::dir("disk-swarm-");
        let secret = write_secret(tmp.path(), SECRET);
        let supernode = supernode(
            registry,
            &[secret_args(&secret), supernode_flags.to_vec()].concat(),
        )
        .await;
        let tracker = Daemon::tracker_with(
            &secret,
            &args(&[
                ("--supernode", supernode.http_url()),
                ("--announce-interval", "1".into()),
            ]),
        )
        .await;
        Swarm {
            tracker,
            supernode,
            secret,
            _tmp: tmp,
        }
    }

    /// An agent's flags: the cluster secret and the tracker.
    fn agent_args(&self) -> Vec<String> {
        [
            secret_args(&self.secret),
            args(&[("--tracker", self.tracker.http_url())]),
        ]
        .concat()
    }
}

/// `--cluster-secret-file SECRET`.
fn secret_args(secret: &std::path::Path) -> Vec<String> {
    args(&[("--cluster-secret-file", secret.display().to_string())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_disk_evicts_the_least_recently_used_image() {
    let (registry, a, b) = two_images().await;
    let supernode = supernode(&registry, &quota_args()).await;
    let agent = Daemon::agent_with(&supernode, &upstreams(&registry), &quota_args()).await;
    let both = [&agent, &supernode];
    for (img, other, tag) in [(&a, &b, "a"), (&b, &a, "b"), (&a, &b, "a")] {
        pull_through(&[&agent], tag, img).await;
        if tag == "b" {
            expect_holds("after pulling B", &both, img, other);
        }
    }
    expect_holds("after pulling A again", &both, &a, &b);
    for daemon in both {
        expect_quota_kept(daemon, QUOTA).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_disk_evicts_with_swarming_agents() {
    let _heavy = lock::heavy().await;
    let (registry, a, b) = two_images().await;
    let swarm = Swarm::start(&registry, &quota_args()).await;
    let supernode = &swarm.supernode;
    let agent_args = [swarm.agent_args(), quota_args()].concat();
    let ups = upstreams(&registry);
    let agents = futures_util::future::join_all(
        (0..3).map(|_| Daemon::agent_with(supernode, &ups, &agent_args)),
    )
    .await;
    let all: Vec<&Daemon> = agents.iter().chain([supernode]).collect();

    let peer_bytes = || async {
        let mut total = 0.0;
        for agent in &agents {
            total += received_from(&agent.metrics().await, "peer");
        }
        total
    };
    let mut before = 0.0;
    for (img, other, tag, what) in [
        (&a, &b, "a", "after pulling A"),
        (&b, &a, "b", "after pulling B"),
        (&a, &b, "a", "after pulling A again"),
    ] {
        // One agent first, then two at once: these find a complete peer
        // through the tracker, besides the supernode and each other.
        pull_through(&[&agents[0]], tag, img).await;
        pull_through(&[&agents[1], &agents[2]], tag, img).await;
        expect_holds(what, &all, img, other);
        let now = peer_bytes().await;
        eprintln!(
            "disk swarm: {what}: {:.1} MiB from peers so far",
            now / MIB as f64
        );
        // Also after an eviction: a blob fetched again is announced
        // afresh (a restated bitfield), so peers find it.
        assert!(
            now - before >= MIB as f64,
            "{what}: the later agents received {} bytes from their peers\n{}",
            now - before,
            agents[1].log_tail()
        );
        before = now;
    }
    for daemon in all {
        expect_quota_kept(daemon, QUOTA).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_disk_eviction_is_forgotten_towards_peers() {
    let _heavy = lock::heavy().await;
    let (registry, a, b) = two_images().await;
    let swarm = Swarm::start(&registry, &[]).await;
    let ups = upstreams(&registry);
    let holder_args = [swarm.agent_args(), quota_args()].concat();
    let holder = Daemon::agent_with(&swarm.supernode, &ups, &holder_args).await;
    // Slow enough that most of A's 16 pieces are still missing when the
    // holder evicts it.
    let slow_args = [
        swarm.agent_args(),
        args(&[("--download-rate", "512KiB".into())]),
    ]
    .concat();
    let slow = Daemon::agent_with(&swarm.supernode, &ups, &slow_args).await;

    pull_through(&[&holder], "a", &a).await;
    let blob = a.platform("amd64").layers[0].clone();
    let download = {
        let url = format!(
            "{}/v2/{REPO}/blobs/{}?ns={UPSTREAM_NAME}",
            slow.http_url(),
            blob.digest
        );
        tokio::spawn(async move {
            let resp = shoal_tests::http::client().get(&url).send().await?;
            let status = resp.status();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?))
        })
    };
    // The slow agent found the holder (through the tracker) and fetches
    // pieces from it.
    let found = shoal_tests::wait::poll(
        "the slow agent to fetch from the holder",
        std::time::Duration::from_secs(30),
        || async {
            let sent = holder
                .metric_sum("shoal_agent_bytes_sent_total")
                .await
                .unwrap_or(0.0);
            Ok::<_, String>((sent > 0.0).then_some(()))
        },
    )
    .await;
    found.unwrap_or_else(|e| panic!("{e}\n{}", slow.log_tail()));
    assert!(
        !download.is_finished(),
        "the slow download finished too early"
    );

    // Image B evicts A's layer from the holder mid-download.
    pull_through(&[&holder], "b", &b).await;
    assert!(
        !stored(&holder.data_dir(), &blob.digest).exists(),
        "the holder kept A's layer beyond its quota"
    );

    let (status, body) = download
        .await
        .expect("download task")
        .expect("slow download");
    assert_eq!(status, StatusCode::OK, "{}", slow.log_tail());
    assert_eq!(sha256_digest(&body), blob.digest, "served bytes");
    // Those in flight when the `Forget` arrived (9 without it).
    let refused = labelled(
        &holder.metrics().await,
        "shoal_agent_piece_requests_refused_total",
        "reason=\"not_have\"",
    );
    eprintln!("forget: the holder refused {refused} requests as not held");
    let liars = labelled(
        &slow.metrics().await,
        "shoal_agent_peers_dropped_total",
        "reason=\"lied_about_pieces\"",
    );
    assert_eq!(
        liars,
        0.0,
        "the honest holder was dropped as a liar after its eviction\n{}",
        slow.log_tail()
    );
}
