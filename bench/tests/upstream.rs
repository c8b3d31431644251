//! The embedded upstream and the pull client together, in process: what
//! the benchmarks rely on (every digest verified, every byte counted,
//! ranges and HEAD answered), without daemons and without timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shoal_bench::image::synthetic;
use shoal_bench::pull::{PullOptions, PullRequest, pull, pull_with};
use shoal_bench::throttle::Throttle;
use shoal_bench::units::Rate;
use shoal_bench::upstream::{Upstream, UpstreamConfig};

const REPO: &str = "library/shoal-bench";
const TAG: &str = "bench";

async fn upstream(throttle: Throttle) -> (Upstream, Arc<shoal_bench::image::PlatformImage>) {
    let image = Arc::new(synthetic(42, 3 * 1024 * 1024 + 17, 3));
    let up = Upstream::start(UpstreamConfig {
        image: image.clone(),
        repo: REPO.into(),
        tag: TAG.into(),
        throttle,
    })
    .await
    .unwrap();
    (up, image)
}

fn client() -> reqwest::Client {
    shoal_bench::http::client(Duration::from_secs(60))
}

#[tokio::test]
async fn pulls_verify_and_every_byte_is_counted() {
    let (up, image) = upstream(Throttle::unlimited()).await;
    let progress = Arc::new(AtomicU64::new(0));
    let opts = PullOptions {
        throttle: Throttle::new(Rate::mib_per_sec(1024)),
        progress: Some(progress.clone()),
    };
    let timed = pull_with(&client(), &PullRequest::new(&up.url(), REPO, TAG), &opts)
        .await
        .unwrap();
    assert_eq!(timed.pulled.manifest_digest, image.manifest.digest);
    assert_eq!(timed.pulled.blobs.len(), 4);
    assert_eq!(timed.bytes, image.pull_bytes());
    assert_eq!(progress.load(Ordering::Relaxed), image.pull_bytes());
    assert!(timed.finished >= timed.started);

    // A second pull doubles the upstream's count; each blob was GET twice.
    pull(&client(), &PullRequest::new(&up.url(), REPO, TAG))
        .await
        .unwrap();
    assert_eq!(up.counters().bytes_sent(), 2 * image.pull_bytes());
    for blob in image.blobs() {
        assert_eq!(up.counters().requests(&blob.digest).gets, 2);
    }
    assert_eq!(up.counters().requests(&image.manifest.digest).gets, 2);
}

#[tokio::test]
async fn head_range_and_errors() {
    let (up, image) = upstream(Throttle::new(Rate::mib_per_sec(64))).await;
    let layer = &image.layers[1];
    let url = format!("{}/v2/{REPO}/blobs/{}", up.url(), layer.digest);
    let c = client();

    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        layer.size().to_string()
    );
    assert_eq!(
        head.headers()["docker-content-digest"],
        layer.digest.as_str()
    );

    let part = c
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", layer.size())
    );
    assert_eq!(part.bytes().await.unwrap(), layer.bytes.slice(10..20));

    let past = c
        .get(&url)
        .header("range", format!("bytes={}-", layer.size()))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);

    let by_digest = format!("{}/v2/{REPO}/manifests/{}", up.url(), image.manifest.digest);
    let m = c.get(&by_digest).send().await.unwrap();
    assert_eq!(
        m.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(m.bytes().await.unwrap(), image.manifest.bytes);

    let requests = up.counters().requests(&layer.digest);
    assert_eq!((requests.heads, requests.gets), (1, 2));
    // HEAD sends no body; the range sent 10 bytes; the 416 none.
    assert_eq!(up.counters().bytes_sent(), 10 + image.manifest.size());

    let missing = pull(&c, &PullRequest::new(&up.url(), REPO, "no-such-tag"))
        .await
        .unwrap_err();
    assert!(missing.contains("MANIFEST_UNKNOWN"), "{missing}");
    let push = c
        .post(format!("{}/v2/{REPO}/blobs/uploads/", up.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 405);
    assert!(push.text().await.unwrap().contains("UNSUPPORTED"));
}
