//! Private images: a `docker-registry` behind authentication (htpasswd
//! Basic, and Bearer tokens from a token server), a supernode holding its
//! own credentials for it, and an agent, members of one cluster (the
//! agent's requests to the supernode are signed with the cluster secret and
//! carry the client's credentials beside the signature). A client with
//! valid credentials pulls through the agent; clients with none, with a
//! wrong password, or (token flow) with a login that grants nothing get
//! 401/403 for the tag, for the manifest by digest and for a layer,
//! although both sit on the agent's disk by then. No password reaches a
//! daemon's log. skopeo, a real client, answers the agent's challenge with
//! its credentials. With the supernode dead, an agent holding the
//! upstream's credentials itself (for its direct fallback) serves the same
//! clients the same way, checking each with the upstream directly.

use reqwest::StatusCode;
use shoal_tests::clients::{loopback_only, require_tool, run};
use shoal_tests::image::TestImage;
use shoal_tests::oci_pull::{PullRequest, client_with_basic_auth, pull};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::registry::{Registry, RegistryAuth, authorized_client, basic_authorization};
use shoal_tests::swarm::{SECRET, args, write_secret};
use shoal_tests::token_server::TokenServer;

const UPSTREAM: &str = "docker.io";
const REPO: &str = "team/private-app";
const TAG: &str = "1.0";
/// The supernode's own account.
const SUPERNODE: (&str, &str) = ("shoal", "supernode-pw-3d1f9a0c");
/// A client the upstream admits.
const ALICE: (&str, &str) = ("alice", "alice-pw-7c2e4b91");
/// A client that logs in but is granted nothing (token flow only).
const MALLORY: (&str, &str) = ("mallory", "mallory-pw-5a8e1d62");

/// Registry + supernode with the registry's credentials + agent.
struct Rig {
    agent: Daemon,
    supernode: Daemon,
    registry: Registry,
    image: TestImage,
    _dir: tempfile::TempDir,
}

/// Who holds the upstream's credentials, and whether the supernode lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Only the supernode has them; it serves the agent.
    Supernode,
    /// The agent has them too, and the supernode is killed before any
    /// pull: everything comes through the agent's direct fallback.
    AgentFallback,
}

impl Rig {
    /// Pushes the image with `push` (a client the registry lets push) and
    /// starts the daemons; only the supernode gets credentials.
    async fn start(registry: Registry, push: reqwest::Client, dir: tempfile::TempDir) -> Rig {
        Self::start_as(Setup::Supernode, registry, push, dir).await
    }

    /// [`Rig::start`], as `setup` says.
    async fn start_as(
        setup: Setup,
        registry: Registry,
        push: reqwest::Client,
        dir: tempfile::TempDir,
    ) -> Rig {
        let image = TestImage::standard();
        image.push(&push, &registry.url(), REPO, TAG).await;
        let secret = write_secret(dir.path(), SECRET);
        let password_file = dir.path().join("upstream-password");
        std::fs::write(&password_file, format!("{}\n", SUPERNODE.1)).unwrap();
        let upstream_table = format!(
            "[[upstream]]\nname = \"{UPSTREAM}\"\nurl = \"{}\"\nusername = \"{}\"\n\
             password_file = \"{}\"\n",
            registry.url(),
            SUPERNODE.0,
            password_file.display()
        );
        let config = dir.path().join("supernode.toml");
        std::fs::write(
            &config,
            format!(
                "cluster_secret_file = \"{}\"\n{upstream_table}",
                secret.display()
            ),
        )
        .unwrap();
        let upstreams = vec![(UPSTREAM.to_string(), registry.url())];
        let mut supernode = Daemon::supernode_with(
            &SupernodeOptions {
                upstreams: upstreams.clone(),
                upstream_cas: Vec::new(),
            },
            &["--config".into(), config.display().to_string()],
        )
        .await;
        let mut member = args(&[("--cluster-secret-file", secret.display().to_string())]);
        if setup == Setup::AgentFallback {
            let agent_config = dir.path().join("agent.toml");
            std::fs::write(&agent_config, &upstream_table).unwrap();
            member.extend(["--config".into(), agent_config.display().to_string()]);
        }
        let agent = Daemon::agent_with(&supernode, &upstreams, &member).await;
        if setup == Setup::AgentFallback {
            supernode.kill();
        }
        Rig {
            agent,
            supernode,
            registry,
            image,
            _dir: dir,
        }
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> (StatusCode, Option<String>, String) {
        let url = format!("{}/v2/{REPO}/{path}", self.agent.http_url());
        let resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        (status, challenge, body)
    }

    /// Alice pulls; then every client in `refused` is refused the tag, the
    /// manifest by digest and a layer, all on the agent's disk by then.
    async fn check(&self, refused: &[(&str, reqwest::Client)]) {
        let alice = client_with_basic_auth(ALICE.0, ALICE.1);
        let req = PullRequest::new(&self.agent.http_url(), REPO, TAG);
        let pulled = pull(&alice, &req)
            .await
            .unwrap_or_else(|e| panic!("alice's pull: {e}\n{}", self.registry.log_tail()));
        let layer = self.image.platforms[0].layers[0].digest.clone();
        assert!(pulled.blobs.iter().any(|(d, _)| *d == layer));
        let hex = &layer["sha256:".len()..];
        let stored = self
            .agent
            .data_dir()
            .join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
        assert!(
            stored.is_file(),
            "{} not on the agent's disk",
            stored.display()
        );

        let paths = [
            format!("manifests/{TAG}"),
            format!("manifests/{}", pulled.manifest_digest),
            format!("blobs/{layer}"),
        ];
        for (who, client) in refused {
            for path in &paths {
                let (status, challenge, body) = self.get(client, path).await;
                assert!(
                    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                    "{who} GET {path}: {status} {body}"
                );
                assert!(
                    body.contains("\"UNAUTHORIZED\"") || body.contains("\"DENIED\""),
                    "{who} GET {path}: {body}"
                );
                if status == StatusCode::UNAUTHORIZED {
                    let challenge = challenge.unwrap_or_default();
                    assert!(
                        challenge.starts_with("Bearer realm="),
                        "{who} GET {path}: {challenge:?}"
                    );
                }
            }
        }
        // Alice still gets what the others do not (her grant is cached),
        // but a digest alone opens no other repository.
        let (status, _, _) = self.get(&alice, &paths[2]).await;
        assert_eq!(status, StatusCode::OK);
        let url = format!("{}/v2/team/other/blobs/{layer}", self.agent.http_url());
        let resp = alice.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "GET {url}");
        self.assert_no_secret_in_logs();
    }

    fn assert_no_secret_in_logs(&self) {
        for (user, password) in [SUPERNODE, ALICE, MALLORY] {
            let header = basic_authorization(user, password);
            let encoded = header.trim_start_matches("Basic ");
            for daemon in [&self.agent, &self.supernode] {
                let log = daemon.log();
                assert!(!log.is_empty());
                assert!(
                    !log.contains(password) && !log.contains(encoded),
                    "{user}'s password in a log:\n{log}"
                );
            }
        }
    }
}

fn anonymous() -> reqwest::Client {
    shoal_tests::http::client()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_upstream_serves_only_clients_it_admits() {
    let users = [SUPERNODE, ALICE];
    let registry = Registry::start_with_auth(RegistryAuth::Htpasswd(&users)).await;
    let push = authorized_client(&basic_authorization(SUPERNODE.0, SUPERNODE.1));
    let rig = Rig::start(registry, push, shoal_tests::tmp::dir("shoal-private-")).await;
    rig.check(&[
        ("anonymous", anonymous()),
        (
            "wrong password",
            client_with_basic_auth(ALICE.0, "not-her-password"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_upstream_serves_only_clients_it_admits() {
    let dir = shoal_tests::tmp::dir("shoal-private-");
    let tokens = TokenServer::start(dir.path(), &[SUPERNODE, ALICE, MALLORY], &[MALLORY.0]).await;
    let registry = Registry::start_with_auth(RegistryAuth::Token(&tokens)).await;
    let push = authorized_client(&format!("Bearer {}", tokens.mint(REPO, &["pull", "push"])));
    let rig = Rig::start(registry, push, dir).await;
    rig.check(&[
        ("anonymous", anonymous()),
        (
            "wrong password",
            client_with_basic_auth(ALICE.0, "not-her-password"),
        ),
        ("no access", client_with_basic_auth(MALLORY.0, MALLORY.1)),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_answers_the_challenge_with_its_credentials() {
    let users = [SUPERNODE, ALICE];
    let registry = Registry::start_with_auth(RegistryAuth::Htpasswd(&users)).await;
    let push = authorized_client(&basic_authorization(SUPERNODE.0, SUPERNODE.1));
    let rig = Rig::start(registry, push, shoal_tests::tmp::dir("shoal-private-")).await;
    let skopeo = require_tool("skopeo", "skopeo");
    let dir = shoal_tests::tmp::dir("shoal-skopeo-");
    let agent = rig.agent.http_addr();
    let authfile = dir.path().join("auth.json");
    let auth = basic_authorization(ALICE.0, ALICE.1);
    let auth = auth.trim_start_matches("Basic ");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths":{{"{agent}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let copy = |creds: Option<&std::path::Path>, dest: &str| {
        let mut cmd = tokio::process::Command::new(&skopeo);
        cmd.args(["--override-os", "linux", "--override-arch", "amd64"])
            .args(["copy", "--retry-times", "0", "--src-tls-verify=false"]);
        match creds {
            Some(file) => cmd.arg("--src-authfile").arg(file),
            None => cmd.arg("--src-no-creds"),
        };
        cmd.arg(format!("docker://{agent}/{REPO}:{TAG}"))
            .arg(format!("dir:{}", dir.path().join(dest).display()))
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .env_remove("REGISTRY_AUTH_FILE");
        loopback_only(&mut cmd);
        run(cmd, shoal_tests::wait::COMMAND_TIMEOUT)
    };
    let with = copy(Some(&authfile), "with").await;
    with.assert_success();
    let layer = &rig.image.platforms[0].layers[0].digest["sha256:".len()..];
    assert!(dir.path().join("with").join(layer).is_file(), "{with}");
    let without = copy(None, "without").await;
    assert!(!without.success(), "{without}");
    assert!(
        without.stderr.contains("unauthorized")
            || without.stderr.contains("authentication required"),
        "{without}"
    );
    rig.assert_no_secret_in_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_fallback_uses_its_own_credentials_and_checks_clients() {
    let users = [SUPERNODE, ALICE];
    let registry = Registry::start_with_auth(RegistryAuth::Htpasswd(&users)).await;
    let push = authorized_client(&basic_authorization(SUPERNODE.0, SUPERNODE.1));
    let dir = shoal_tests::tmp::dir("shoal-private-");
    let rig = Rig::start_as(Setup::AgentFallback, registry, push, dir).await;
    rig.check(&[
        ("anonymous", anonymous()),
        (
            "wrong password",
            client_with_basic_auth(ALICE.0, "not-her-password"),
        ),
    ])
    .await;
    let log = rig.agent.log();
    assert!(
        log.contains("fetching the manifest from the upstream directly")
            && log.contains("asking the upstream directly"),
        "the agent did not fall back to the upstream:\n{}",
        rig.agent.log_tail()
    );
}
