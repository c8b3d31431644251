//! A swarming deployment on loopback: one cluster secret, an upstream
//! registry holding a test image, a supernode seeding over QUIC, a tracker,
//! and agents that swap pieces. Everything is killed on drop (agents
//! first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shoal_agent::http_auth::Auth;
use shoal_agent::swarm::TrackerClient;
use shoal_proto::Digest;
use shoal_proto::tracker_wire::AnnounceRequest;
use shoal_proto::wire::ClusterSecret;
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::cluster::{REPO, TAG, UPSTREAM_NAME, upstreams};
use crate::image::{LayerSpec, PlatformSpec, TestImage};
use crate::oci_pull::{PullRequest, Pulled, pull};
use crate::procs::{Daemon, SupernodeOptions};
use crate::registry::Registry;

/// The cluster secret of the swarm tests.
pub const SECRET: &str = "swarm test cluster secret, 32 bytes\n";

/// Writes a cluster secret file (mode 0600) into `dir`.
pub fn write_secret(dir: &Path, contents: &str) -> PathBuf {
    let path = dir.join("cluster-secret");
    std::fs::write(&path, contents).expect("write secret");
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// A cluster member of the secret `contents` (a secret file's text), for
/// the tracker's and the supernode's APIs: signs requests and sends them
/// over TLS with a member certificate.
pub fn member_auth(contents: &str) -> Auth {
    let secret = ClusterSecret::from_file_contents(contents.as_bytes()).expect("secret");
    Auth::member(&secret).expect("member identity")
}

/// A reqwest client speaking TLS as a member of the cluster secret
/// `contents` (it signs nothing: sign with [`member_auth`]); the URLs it
/// is given must be `https://` ([`https_url`]).
pub fn member_client(contents: &str) -> reqwest::Client {
    member_auth(contents)
        .client_builder()
        .expect("member TLS")
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("member client")
}

/// `https://` and the HTTP address of `daemon`: its API as cluster
/// members reach it when it has the cluster secret.
pub fn https_url(daemon: &Daemon) -> String {
    format!("https://{}", daemon.http_addr())
}

/// `[("--flag", value), ..]` as command-line arguments.
pub fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.clone()])
        .collect()
}

/// A registry holding [`TestImage::standard`] as `REPO:TAG` and a supernode
/// with it as upstream and [`SECRET`] (written into `dir`) as its cluster
/// secret; also returns the secret file.
pub async fn secured_supernode(dir: &Path) -> (Registry, TestImage, Daemon, PathBuf) {
    let secret = write_secret(dir, SECRET);
    let registry = Registry::start().await;
    let image = TestImage::standard();
    image
        .push(&registry.client(), &registry.url(), REPO, TAG)
        .await;
    let supernode = Daemon::supernode_with(
        &SupernodeOptions {
            upstreams: upstreams(&registry),
            upstream_cas: Vec::new(),
        },
        &args(&[("--cluster-secret-file", secret.display().to_string())]),
    )
    .await;
    (registry, image, supernode, secret)
}

/// One linux/amd64 platform with layers of `sizes` MiB of random data,
/// keyed `key`, `key + 1`, ….
pub fn amd64_image(seed: u64, key: u64, sizes: &[usize]) -> TestImage {
    const MIB: usize = 1024 * 1024;
    let layers = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| LayerSpec {
            key: key + i as u64,
            size: size * MIB,
        })
        .collect();
    TestImage::generate(
        seed,
        &[PlatformSpec {
            os: "linux",
            architecture: "amd64",
            layers,
        }],
    )
}

/// How [`SwarmCluster::start`] sets the daemons up; `None` leaves a flag
/// at the daemon's default.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    /// Agents started.
    pub agents: usize,
    /// The supernode's `--upload-rate` (its QUIC seed).
    pub seed_rate: Option<String>,
    /// The supernode's `--max-uploads`.
    pub seed_uploads: Option<String>,
    /// Each agent's `--upload-rate`.
    pub agent_rate: Option<String>,
    /// The tracker's `--announce-interval` in seconds.
    pub announce_interval: String,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            agents: 2,
            seed_rate: None,
            seed_uploads: None,
            agent_rate: None,
            announce_interval: "1".into(),
        }
    }
}

/// A pull running in the background: the agent's index and the task.
pub type PullTask = (usize, JoinHandle<Result<Pulled, String>>);

/// Registry + supernode + tracker + agents sharing one cluster secret.
pub struct SwarmCluster {
    /// The agents (dropped first).
    pub agents: Vec<Daemon>,
    /// The tracker.
    pub tracker: Daemon,
    /// The supernode.
    pub supernode: Daemon,
    /// The upstream registry.
    pub registry: Registry,
    /// The image pushed as `REPO:TAG`.
    pub image: TestImage,
    /// The cluster secret file.
    pub secret: PathBuf,
    agent_args: Vec<String>,
    _tmp: TempDir,
}

impl SwarmCluster {
    /// Starts the registry with `image` pushed as `REPO:TAG`, the
    /// supernode, the tracker and `opts.agents` agents.
    pub async fn start(image: TestImage, opts: &SwarmOptions) -> Self {
        let tmp = crate::tmp::dir("swarm-cluster-");
        let secret = write_secret(tmp.path(), SECRET);
        let secret_s = secret.display().to_string();
        let registry = Registry::start().await;
        image
            .push(&registry.client(), &registry.url(), REPO, TAG)
            .await;
        let mut seed_args = args(&[("--cluster-secret-file", secret_s.clone())]);
        if let Some(rate) = &opts.seed_rate {
            seed_args.extend(args(&[("--upload-rate", rate.clone())]));
        }
        if let Some(n) = &opts.seed_uploads {
            seed_args.extend(args(&[("--max-uploads", n.clone())]));
        }
        let supernode = Daemon::supernode_with(
            &SupernodeOptions {
                upstreams: upstreams(&registry),
                upstream_cas: Vec::new(),
            },
            &seed_args,
        )
        .await;
        let tracker = Daemon::tracker_with(
            &secret,
            &args(&[
                ("--supernode", supernode.http_url()),
                ("--announce-interval", opts.announce_interval.clone()),
            ]),
        )
        .await;
        let mut agent_args = args(&[
            ("--cluster-secret-file", secret_s),
            ("--tracker", tracker.http_url()),
        ]);
        if let Some(rate) = &opts.agent_rate {
            agent_args.extend(args(&[("--upload-rate", rate.clone())]));
        }
        let mut cluster = SwarmCluster {
            agents: Vec::new(),
            tracker,
            supernode,
            registry,
            image,
            secret,
            agent_args,
            _tmp: tmp,
        };
        let agents =
            futures_util::future::join_all((0..opts.agents).map(|_| cluster.start_agent(&[])))
                .await;
        cluster.agents = agents;
        cluster
    }

    /// Starts one more agent of this cluster (not added to `agents`), with
    /// `extra` flags.
    pub async fn start_agent(&self, extra: &[String]) -> Daemon {
        let mut flags = self.agent_args.clone();
        flags.extend_from_slice(extra);
        Daemon::agent_with(&self.supernode, &upstreams(&self.registry), &flags).await
    }

    /// A pull of `REPO:TAG` through `agent`.
    pub fn pull_request(agent: &Daemon) -> PullRequest {
        PullRequest::new(&agent.http_url(), REPO, TAG).with_ns(UPSTREAM_NAME)
    }

    /// The QUIC addresses of the agents `which`.
    pub fn p2p_addrs(&self, which: impl IntoIterator<Item = usize>) -> Vec<SocketAddr> {
        which
            .into_iter()
            .map(|i| self.agents[i].p2p_addr().expect("agent p2p address"))
            .collect()
    }

    /// Starts pulls of `REPO:TAG` through the agents `which`, in the
    /// background.
    pub fn spawn_pulls(&self, which: impl IntoIterator<Item = usize>) -> Vec<PullTask> {
        self.spawn_pulls_of(TAG, which)
    }

    /// Starts pulls of `REPO:tag` through the agents `which`, in the
    /// background.
    pub fn spawn_pulls_of(
        &self,
        tag: &str,
        which: impl IntoIterator<Item = usize>,
    ) -> Vec<PullTask> {
        let client = crate::http::client();
        which
            .into_iter()
            .map(|i| {
                let req =
                    PullRequest::new(&self.agents[i].http_url(), REPO, tag).with_ns(UPSTREAM_NAME);
                let client = client.clone();
                (i, tokio::spawn(async move { pull(&client, &req).await }))
            })
            .collect()
    }

    /// Waits for `pulls` of `REPO:TAG`; panics (with the agent's log)
    /// unless each verified and yielded the amd64 manifest of `image`.
    pub async fn expect_pulled(&self, pulls: Vec<PullTask>) {
        let want = self.image.platform("amd64").manifest.digest.clone();
        self.expect_pulled_manifest(pulls, &want).await;
    }

    /// Waits for `pulls`; panics (with the agent's log) unless each
    /// verified and yielded manifest `want`.
    pub async fn expect_pulled_manifest(&self, pulls: Vec<PullTask>, want: &str) {
        for (i, task) in pulls {
            let pulled = task
                .await
                .expect("pull task")
                .unwrap_or_else(|e| panic!("agent {i}: {e}\nlog:\n{}", self.agents[i].log_tail()));
            assert_eq!(pulled.manifest_digest, want, "agent {i}");
        }
    }

    /// The QUIC addresses the tracker hands out for `digest` now: asked
    /// by a probe peer that holds nothing and leaves again at once.
    pub async fn tracker_peers(&self, digest: &str) -> Vec<SocketAddr> {
        let contents = std::fs::read_to_string(&self.secret).expect("read secret");
        let client = TrackerClient::new(&self.tracker.http_url(), member_auth(&contents))
            .expect("tracker client");
        let mut req = AnnounceRequest {
            blob: Digest::parse(digest).expect("digest"),
            upstream: UPSTREAM_NAME.into(),
            repo: REPO.into(),
            peer: u64::MAX,
            addr: "127.0.0.1:1".into(),
            pieces: None,
            upload_load: 0,
            labels: Default::default(),
            seed: false,
            stopped: false,
        };
        let reply = client.announce(&req).await;
        req.stopped = true;
        let _ = client.announce(&req).await;
        let reply = reply.unwrap_or_else(|e| panic!("announce to the tracker: {e}"));
        reply
            .peers
            .iter()
            .filter_map(|p| p.addr.parse().ok())
            .collect()
    }

    /// The sum over the agents of metric `name` (all label sets).
    pub async fn agents_sum(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for a in &self.agents {
            total += a.metric_sum(name).await.unwrap_or(0.0);
        }
        total
    }

    /// Bytes the agents received from other agents
    /// (`shoal_agent_bytes_received_total{source="peer"}`).
    pub async fn peer_bytes(&self) -> f64 {
        let mut total = 0.0;
        for a in &self.agents {
            total += received_from(&a.metrics().await, "peer");
        }
        total
    }
}

/// `shoal_agent_bytes_received_total{source=SOURCE}` in Prometheus text.
pub fn received_from(metrics: &str, source: &str) -> f64 {
    let label = format!("source=\"{source}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("shoal_agent_bytes_received_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
