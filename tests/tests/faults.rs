//! Upstream faults and hostile clients, against a real supernode and agent
//! in front of the programmable [`FaultUpstream`]: a broken or corrupted
//! blob is never served complete nor stored, transient errors are retried
//! or resumed, persistent ones end in an OCI error (not a hang), and
//! requests the agent refuses never reach the upstream. Daemons killed
//! (SIGKILL) in the middle of writing a blob leave nothing under its name
//! and start clean. An upstream cannot redirect the daemons to their own
//! network (no open proxy).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use shoal_tests::fault_upstream::{
    Fault, FaultUpstream, Fetched, Logged, Times, blob_path, fetch, files_under, manifest_path,
    oci_code, raw_request, stored_blob,
};
use shoal_tests::image::{Blob, LayerSpec, PlatformSpec, TestImage, sha256_digest};
use shoal_tests::oci_pull::{PullRequest, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::wait::poll;

const REPO: &str = "library/faulty";
const TAG: &str = "1.0";

/// One platform, a 1 MiB layer and a small one.
fn image() -> TestImage {
    let layer = |key, size| LayerSpec { key, size };
    TestImage::generate(
        0xfa17,
        &[PlatformSpec {
            os: "linux",
            architecture: "amd64",
            layers: vec![layer(1, 1 << 20), layer(2, 64 << 10)],
        }],
    )
}

type Task = tokio::task::JoinHandle<Fetched>;

/// N of an upstream request with `Range: bytes=N-`, N > 0.
fn resume_offset(r: &Logged) -> Option<u64> {
    let range = r.range.as_deref()?;
    let n = range
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()?;
    (n > 0).then_some(n)
}

/// Fake upstream + real supernode + real agent.
struct Rig {
    agent: Daemon,
    supernode: Daemon,
    up: FaultUpstream,
    image: TestImage,
    client: reqwest::Client,
}

impl Rig {
    async fn start() -> Rig {
        Self::start_with(&[]).await
    }

    /// [`Rig::start`] with extra flags for the supernode.
    async fn start_with(supernode_flags: &[String]) -> Rig {
        let image = image();
        let up = FaultUpstream::start(&image, &[REPO], TAG).await;
        let upstreams = vec![("docker.io".to_string(), up.url())];
        let opts = SupernodeOptions {
            upstreams: upstreams.clone(),
            upstream_cas: Vec::new(),
        };
        let supernode = Daemon::supernode_with(&opts, supernode_flags).await;
        let agent = Daemon::agent(&supernode, &upstreams).await;
        Rig {
            agent,
            supernode,
            up,
            image,
            client: shoal_tests::http::client(),
        }
    }

    fn layer(&self) -> Blob {
        self.image.platforms[0].layers[0].clone()
    }

    fn config(&self) -> Blob {
        self.image.platforms[0].config.clone()
    }

    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Fetched {
        let url = format!("{}{target}", self.agent.http_url());
        fetch(&self.client, &url, headers).await
    }

    /// Starts a GET of `target` on the agent in the background.
    fn spawn_get(&self, target: &str, headers: &[(&'static str, &'static str)]) -> Task {
        let (client, url) = (
            self.client.clone(),
            format!("{}{target}", self.agent.http_url()),
        );
        let headers = headers.to_vec();
        tokio::spawn(async move { fetch(&client, &url, &headers).await })
    }

    async fn get_blob(&self, blob: &Blob) -> Fetched {
        self.get(&blob_path(REPO, &blob.digest), &[]).await
    }

    fn stores(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("agent", self.agent.data_dir()),
            ("supernode", self.supernode.data_dir()),
        ]
    }

    /// With the fault at `path` cleared, `blob` comes through verified and
    /// both daemons store it.
    async fn recovers(&self, path: &str, blob: &Blob) {
        self.up.clear(path);
        let got = self.get_blob(blob).await;
        assert!(got.is_verified(blob), "{got:?}");
        self.assert_stored(blob, true);
    }

    fn assert_stored(&self, blob: &Blob, want: bool) {
        for (name, dir) in self.stores() {
            let path = stored_blob(&dir, &blob.digest);
            assert_eq!(path.exists(), want, "{name}: {}", path.display());
            if want {
                let bytes = std::fs::read(&path).expect("read stored blob");
                assert_eq!(
                    sha256_digest(&bytes),
                    blob.digest,
                    "{name} stored bad bytes"
                );
            }
        }
    }

    /// Whatever either store holds under the blob's name verifies.
    fn assert_nothing_bad_stored(&self, blob: &Blob) {
        for (name, dir) in self.stores() {
            let path = stored_blob(&dir, &blob.digest);
            if let Ok(bytes) = std::fs::read(&path) {
                assert_eq!(
                    sha256_digest(&bytes),
                    blob.digest,
                    "{name} stored bad bytes"
                );
            }
        }
    }

    /// Waits (bounded) until no download is left in either `tmp/`.
    async fn wait_tmp_empty(&self) {
        let stores = self.stores();
        let res = poll(
            "tmp/ of agent and supernode to empty",
            Duration::from_secs(30),
            || {
                let left: Vec<PathBuf> = stores
                    .iter()
                    .flat_map(|(_, dir)| files_under(&dir.join("tmp")))
                    .collect();
                async move { Ok(left.is_empty().then_some(())) }
            },
        )
        .await;
        if let Err(e) = res {
            let left: Vec<_> = stores
                .iter()
                .map(|(_, d)| files_under(&d.join("tmp")))
                .collect();
            panic!("{e}: {left:?}");
        }
    }

    async fn pull(&self) -> Result<shoal_tests::oci_pull::Pulled, String> {
        pull(
            &self.client,
            &PullRequest::new(&self.agent.http_url(), REPO, TAG),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_blob_is_never_served_complete_nor_stored() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::Truncate, Times::Always);

    let got = rig.get_blob(&layer).await;
    assert!(got.failed_visibly() && !got.is_verified(&layer), "{got:?}");
    if let Some(status) = got.status.filter(|s| !s.is_success()) {
        assert!(
            status.is_server_error() && got.oci_code().is_some(),
            "{got:?}"
        );
    }
    let log = rig.up.requests_for(&path);
    // The supernode resumes where the cut left it (the agent's own
    // resumes then start the supernode's download afresh).
    assert!(log.len() >= 2 && log[0].range.is_none(), "{log:?}");
    assert!(resume_offset(&log[1]).is_some(), "{log:?}");
    rig.wait_tmp_empty().await;
    rig.assert_stored(&layer, false);

    rig.recovers(&path, &layer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_truncated_once_is_resumed_with_a_range_request() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::Truncate, Times::First(1));

    let got = rig.get_blob(&layer).await;
    assert!(got.is_verified(&layer), "{got:?}");
    let log = rig.up.requests_for(&path);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].fault, log[0].range.as_deref()),
        (Some(Fault::Truncate), None)
    );
    let offset = resume_offset(&log[1]).unwrap_or_else(|| panic!("{log:?}"));
    // At most half: the fake cuts after half (less if not all was flushed).
    assert!(offset <= layer.size() / 2, "{log:?}");
    assert_eq!(log[1].status, 206);
    rig.assert_stored(&layer, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_never_served_complete_nor_stored() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::Corrupt, Times::Always);

    let got = rig.get_blob(&layer).await;
    assert!(got.failed_visibly() && !got.is_verified(&layer), "{got:?}");
    assert!(
        (got.body.len() as u64) < layer.size(),
        "all bytes sent: {got:?}"
    );
    rig.wait_tmp_empty().await;
    for (name, dir) in rig.stores() {
        let stored = files_under(&dir.join("blobs"));
        assert!(stored.is_empty(), "{name} stored {stored:?}");
    }
    assert!(rig.supernode.log().contains("does not match digest"));

    rig.up.clear(&path);
    let pulled = rig.pull().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(pulled.blobs.contains(&(layer.digest.clone(), layer.size())));
    rig.assert_stored(&layer, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_is_resolved_once_per_ttl_and_manifests_by_digest_once() {
    let rig = Rig::start().await;
    let tag = manifest_path(REPO, TAG);
    for _ in 0..5 {
        rig.pull().await.unwrap_or_else(|e| panic!("{e}"));
    }
    // Five pulls within the supernode's 30 s tag TTL: one HEAD for the tag,
    // and one GET for each manifest (the index, then the platform's).
    assert_eq!(rig.up.count("HEAD", &tag), 1, "{:?}", rig.up.requests());
    let requests = rig.up.requests();
    let manifest_gets: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .map(|r| r.path.as_str())
        .collect();
    assert!(!manifest_gets.is_empty());
    for path in &manifest_gets {
        assert_eq!(rig.up.count("GET", path), 1, "{requests:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_upstream_errors_are_retried() {
    let rig = Rig::start().await;
    let (layer, config) = (rig.layer(), rig.config());
    let tag = manifest_path(REPO, TAG);
    rig.up.fail(&tag, Fault::ServerError, Times::First(1));
    rig.up.fail(
        &blob_path(REPO, &layer.digest),
        Fault::ServerError,
        Times::First(1),
    );
    rig.up.fail(
        &blob_path(REPO, &config.digest),
        Fault::RateLimit,
        Times::First(1),
    );

    rig.pull().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.up.count("HEAD", &tag), 2, "{:?}", rig.up.requests());
    for (blob, first) in [(&layer, 500), (&config, 429)] {
        let log = rig.up.requests_for(&blob_path(REPO, &blob.digest));
        let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [first, 200], "{log:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_manifest_500_is_a_5xx_oci_error() {
    let rig = Rig::start().await;
    let path = manifest_path(REPO, TAG);
    rig.up.fail(&path, Fault::ServerError, Times::Always);
    let got = tokio::time::timeout(Duration::from_secs(120), rig.get(&path, &[]))
        .await
        .expect("the agent must answer, not hang");
    assert!(got.status.is_some_and(|s| s.is_server_error()), "{got:?}");
    assert!(got.oci_code().is_some(), "{got:?}");
    let tries = rig.up.requests_for(&path).len();
    assert!((1..=20).contains(&tries), "{tries} upstream requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_registries_are_refused_without_contacting_the_upstream() {
    let rig = Rig::start().await;
    let digest = rig.layer().digest;
    for target in [
        format!("/v2/{REPO}/manifests/{TAG}?ns=other.example"),
        format!("/v2/{REPO}/blobs/{digest}?ns=other.example"),
        format!("/v2/other.example:5000/{REPO}/manifests/{TAG}"),
        format!("/v2/other.example:5000/{REPO}/blobs/{digest}"),
    ] {
        let got = rig.get(&target, &[]).await;
        let status = got.status.unwrap_or_else(|| panic!("{target}: {got:?}"));
        assert!(status.is_client_error(), "{target}: {got:?}");
        assert!(got.oci_code().is_some(), "{target}: {got:?}");
    }
    assert_eq!(rig.up.total(), 0, "{:?}", rig.up.requests());

    // An unknown first segment that is a valid name component is part of
    // the repository name on the default upstream, never another registry.
    let got = rig.get("/v2/other.example/app/manifests/1.0", &[]).await;
    assert_eq!(got.status, Some(StatusCode::NOT_FOUND), "{got:?}");
    assert!(got.oci_code().is_some(), "{got:?}");
    let log = rig.up.requests();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|r| r.path == "/v2/other.example/app/manifests/1.0"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_oci_errors_and_never_reach_the_upstream() {
    let rig = Rig::start().await;
    let d = rig.layer().digest;
    let long_tag = "t".repeat(300);
    let sha512 = format!("sha512:{}", "ab".repeat(64));
    let md5 = format!("md5:{}", "ab".repeat(16));
    let upper = format!("sha256:{}", d["sha256:".len()..].to_uppercase());
    let long_name = "a/".repeat(30_000);
    let mut cases: Vec<(&str, String)> = vec![
        ("GET", "/v2/../etc/passwd".into()),
        ("GET", "/v2/a/%2e%2e/b/manifests/x".into()),
        ("GET", "/v2/a/manifests/..%2f..%2fx".into()),
        ("GET", format!("/v2/..%2f..%2fetc/blobs/{d}")),
        ("GET", "/v2/Library/App/manifests/1.0".into()),
        ("GET", format!("/v2/{REPO}/manifests/{long_tag}")),
        (
            "GET",
            format!("/v2/{REPO}/manifests/{TAG}?ns=..%2f..%2fetc"),
        ),
        ("GET", format!("/v2/{long_name}x/manifests/{TAG}")),
    ];
    for digest in ["sha256:zz", &sha512, &md5, &upper, "sha256:", ":"] {
        cases.push(("GET", format!("/v2/{REPO}/blobs/{digest}")));
        cases.push(("GET", format!("/v2/{REPO}/manifests/{digest}")));
    }
    for method in ["PUT", "DELETE", "POST", "PATCH"] {
        cases.push((method, manifest_path(REPO, TAG)));
        cases.push((method, blob_path(REPO, &d)));
        cases.push((method, "/v2/x/blobs/uploads/".into()));
    }
    cases.push(("GET", "/v2/x/blobs/uploads/".into()));
    cases.push(("GET", "/v2/x/blobs/uploads/some-id".into()));

    let mut wrong = Vec::new();
    for (method, target) in &cases {
        let shown = shoal_tests::child::tail_str(target, 100);
        match raw_request(rig.agent.http_addr(), method, target).await {
            Ok(r) if (400..500).contains(&r.status) && oci_code(&r.body).is_some() => {}
            Ok(r) => wrong.push(format!(
                "{method} …{shown}: {} {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => wrong.push(format!("{method} …{shown}: {e}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not a 4xx OCI error:\n{}",
        wrong.join("\n")
    );
    assert_eq!(rig.up.total(), 0, "{:?}", rig.up.requests());

    // Longer than any URI hyper accepts (64 KiB): hyper itself answers 414
    // with an empty body before the router runs, so no OCI JSON here.
    let huge = format!("/v2/{}/manifests/{TAG}", "a/".repeat(50_000));
    let r = raw_request(rig.agent.http_addr(), "GET", &huge)
        .await
        .unwrap();
    assert!((400..500).contains(&r.status), "100 KB path: {}", r.status);

    let health = rig.get("/healthz", &[]).await;
    assert_eq!(health.status, Some(StatusCode::OK), "{health:?}");
    assert_eq!(rig.up.total(), 0, "{:?}", rig.up.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_a_stored_blob() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    assert!(rig.get_blob(&layer).await.is_verified(&layer));
    rig.assert_stored(&layer, true);
    let path = blob_path(REPO, &layer.digest);
    let size = layer.size();

    let head = rig.get(&path, &[(RANGE.as_str(), "bytes=0-9")]).await;
    assert_eq!(head.status, Some(StatusCode::PARTIAL_CONTENT), "{head:?}");
    assert_eq!(head.body, layer.bytes[..10]);
    assert_eq!(
        head.header(CONTENT_RANGE),
        Some(&format!("bytes 0-9/{size}")[..])
    );
    assert_eq!(head.header(CONTENT_LENGTH), Some("10"));

    let tail = rig.get(&path, &[(RANGE.as_str(), "bytes=-7")]).await;
    assert_eq!(tail.status, Some(StatusCode::PARTIAL_CONTENT), "{tail:?}");
    assert_eq!(tail.body, layer.bytes[layer.bytes.len() - 7..]);

    for bad in ["bytes=999999999-", "bytes=x-y", "bytes=5-2", "chunks=0-1"] {
        let got = rig.get(&path, &[(RANGE.as_str(), bad)]).await;
        assert_eq!(
            got.status,
            Some(StatusCode::RANGE_NOT_SATISFIABLE),
            "{bad}: {got:?}"
        );
        assert!(got.oci_code().is_some(), "{bad}: {got:?}");
    }
    assert_eq!(
        rig.up.count("GET", &path),
        1,
        "ranges are served from the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upstream_body_cut_off_is_refetched() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::Stall, Times::First(1));

    let client = rig.spawn_get(&path, &[]);
    poll(
        "the stalled request to reach the upstream",
        Duration::from_secs(30),
        || {
            let n = rig.up.requests_for(&path).len();
            async move { Ok((n > 0).then_some(())) }
        },
    )
    .await
    .unwrap();
    rig.up.release_stalls();
    let got = tokio::time::timeout(Duration::from_secs(120), client)
        .await
        .expect("bounded")
        .expect("client task");
    assert!(got.is_verified(&layer), "{got:?}");
    assert_eq!(rig.up.count("GET", &path), 2, "{:?}", rig.up.requests());
    rig.assert_stored(&layer, true);
}

/// A stall nobody releases: the upstream sends the headers of a blob and
/// then nothing, on a connection it keeps open. The upstream client's
/// read timeout (`--upstream-read-timeout 3s` here, 30 s by default) gives
/// up on it and the blob is fetched again; the client gets the verified
/// blob within a bounded time. (The existing
/// `stalled_upstream_body_cut_off_is_refetched` ends its stall by cutting
/// the connection; this one waits for the timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_that_never_ends_times_out_and_is_refetched() {
    let rig = Rig::start_with(&["--upstream-read-timeout".into(), "3s".into()]).await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::Stall, Times::First(1));
    let got = tokio::time::timeout(Duration::from_secs(150), rig.get_blob(&layer))
        .await
        .expect("a stalled upstream must not hang the client");
    assert!(got.is_verified(&layer), "{got:?}");
    let log = rig.up.requests_for(&path);
    assert!(log.len() >= 2, "{log:?}");
    assert_eq!(log[0].fault, Some(Fault::Stall), "{log:?}");
    rig.assert_stored(&layer, true);
    // The configured timeout, not the default, gave up on the stall.
    let supernode_log = rig.supernode.log();
    assert!(
        supernode_log.contains("no data for 3s"),
        "{}",
        rig.supernode.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_rate_limit_is_a_429_with_retry_after() {
    let rig = Rig::start().await;
    let config = rig.config();
    let path = blob_path(REPO, &config.digest);
    rig.up.fail(&path, Fault::RateLimit, Times::Always);
    let got = rig.get_blob(&config).await;
    assert_eq!(got.status, Some(StatusCode::TOO_MANY_REQUESTS), "{got:?}");
    assert_eq!(got.oci_code().as_deref(), Some("TOOMANYREQUESTS"));
    assert!(
        got.header("retry-after").is_some(),
        "no Retry-After: {got:?}"
    );
    rig.up.clear(&path);
    assert!(rig.get_blob(&config).await.is_verified(&config));
}

/// A range of a blob still downloading must not complete before the blob
/// is verified: its bytes may be bad.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_of_a_blob_in_flight_is_not_served_unverified() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::CorruptThenStall, Times::Always);
    let whole = rig.spawn_get(&path, &[]);
    let tmp = rig.agent.data_dir().join("tmp");
    let half = layer.size() / 2;
    poll(
        "the agent to hold the bad first half",
        Duration::from_secs(30),
        || {
            let lens = files_under(&tmp)
                .into_iter()
                .filter_map(|p| p.metadata().ok());
            let have = lens.map(|m| m.len()).max().unwrap_or(0);
            async move { Ok((have >= half).then_some(())) }
        },
    )
    .await
    .unwrap();
    let mut ranged = rig.spawn_get(&path, &[("range", "bytes=0-9")]);
    // An agent that serves unverified bytes answers at once; give it a moment.
    if let Ok(early) = tokio::time::timeout(Duration::from_secs(1), &mut ranged).await {
        let early = early.expect("range task");
        assert!(early.failed_visibly(), "range served unverified: {early:?}");
    }
    // Releases the stall: the blob ends with a digest mismatch.
    rig.up.clear(&path);
    let (whole, ranged) = (whole.await.unwrap(), ranged.await.unwrap());
    assert!(
        whole.failed_visibly() && !whole.is_verified(&layer),
        "{whole:?}"
    );
    assert!(ranged.failed_visibly(), "{ranged:?}");
    assert!(!stored_blob(&rig.agent.data_dir(), &layer.digest).exists());
    assert!(rig.get_blob(&layer).await.is_verified(&layer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Without piece hashes, a digest mismatch is only known once the whole blob
/// has been streamed, so a request that saw bad bytes must fail (it never
/// gets a complete body); the client's retry then gets the refetched blob.
async fn blob_corrupted_once_fails_that_pull_and_the_retry_verifies() {
    let rig = Rig::start().await;
    let layer = rig.layer();
    rig.up.fail(
        &blob_path(REPO, &layer.digest),
        Fault::Corrupt,
        Times::First(1),
    );
    let first = rig.get_blob(&layer).await;
    // Either the bad bytes reached the agent and this pull fails visibly, or
    // the supernode's stream broke before them and the agent's resume got
    // the refetched content: never a complete body that does not verify.
    assert!(
        first.failed_visibly() || first.is_verified(&layer),
        "{first:?}"
    );
    // The supernode may already hold the refetched, verified blob.
    rig.assert_nothing_bad_stored(&layer);
    let retry = rig.get_blob(&layer).await;
    assert!(retry.is_verified(&layer), "{retry:?}");
    rig.assert_stored(&layer, true);
}

/// A crash between writing a blob and renaming it into place: agent and
/// supernode hold half of it (in `tmp/`) when both are SIGKILLed. Nothing
/// under the blob's name, before or after the restart; `tmp/` is emptied
/// on start; the next request fetches and verifies the blob afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_killed_mid_write_leave_nothing_that_looks_complete() {
    let mut rig = Rig::start().await;
    let layer = rig.layer();
    let path = blob_path(REPO, &layer.digest);
    rig.up.fail(&path, Fault::CorruptThenStall, Times::First(1));
    let pending = rig.spawn_get(&path, &[]);
    let half = layer.size() / 2;
    for (name, dir) in rig.stores() {
        let tmp = dir.join("tmp");
        poll(
            &format!("the {name} to hold half of the blob in tmp/"),
            Duration::from_secs(30),
            || {
                let have = files_under(&tmp)
                    .into_iter()
                    .filter_map(|p| p.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0);
                async move { Ok((have >= half).then_some(())) }
            },
        )
        .await
        .unwrap();
    }
    rig.assert_stored(&layer, false);

    rig.supernode.restart().await;
    rig.agent.restart().await;
    pending.abort();
    for (name, dir) in rig.stores() {
        let left = files_under(&dir.join("tmp"));
        assert!(left.is_empty(), "{name} kept {left:?} in tmp/");
    }
    rig.assert_stored(&layer, false);

    rig.recovers(&path, &layer).await;
}

/// No open proxy through redirects: upstreams named by a public-looking
/// host name (this machine's, resolving to loopback) that redirect every
/// request. The one redirecting to the canary by IP literal (loopback) is
/// refused: the client gets an OCI error and the canary sees nothing. The
/// control, redirecting to the same canary by host name, is followed: the
/// canary is hit, so the refusal is the redirect check's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_upstream_cannot_redirect_to_a_loopback_address() {
    use shoal_tests::redirector::{Server, loopback_name};

    let (name, ip) = loopback_name().await;
    let canary = Server::canary(ip).await;
    let to_ip = Server::redirector(ip, &format!("http://{}", canary.addr())).await;
    let to_name = Server::redirector(ip, &format!("http://{name}:{}", canary.addr().port())).await;
    let upstreams = vec![
        (
            "docker.io".to_string(),
            format!("http://{name}:{}", to_ip.addr().port()),
        ),
        (
            "quay.io".to_string(),
            format!("http://{name}:{}", to_name.addr().port()),
        ),
    ];
    let supernode = Daemon::supernode(&SupernodeOptions {
        upstreams: upstreams.clone(),
        upstream_cas: Vec::new(),
    })
    .await;
    let agent = Daemon::agent(&supernode, &upstreams).await;
    let client = shoal_tests::http::client();
    let blob = format!("sha256:{}", "5".repeat(64));
    let get = |ns: &str| {
        let url = format!("{}/v2/{REPO}/blobs/{blob}?ns={ns}", agent.http_url());
        let client = client.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(120), fetch(&client, &url, &[]))
                .await
                .expect("the agent must answer, not hang")
        }
    };

    let got = get("docker.io").await;
    assert!(to_ip.hits() > 0, "the upstream was never asked: {got:?}");
    assert_eq!(
        canary.hits(),
        0,
        "a redirect to {} was followed\n{}",
        canary.addr(),
        supernode.log_tail()
    );
    let status = got.status.unwrap_or_else(|| panic!("{got:?}"));
    assert!(!status.is_success() && got.oci_code().is_some(), "{got:?}");
    assert!(
        supernode.log().contains("refusing a redirect"),
        "{}",
        supernode.log_tail()
    );

    let got = get("quay.io").await;
    assert!(
        canary.hits() > 0,
        "the redirect by host name was not followed either: {got:?}\n{}",
        supernode.log_tail()
    );
}
