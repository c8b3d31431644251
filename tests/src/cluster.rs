//! A whole Shoal deployment on loopback: an upstream registry holding the
//! test image, one supernode, and N agents, all killed on drop.

use crate::image::TestImage;
use crate::procs::{Daemon, SupernodeOptions};
use crate::registry::Registry;
use crate::tls::TestPki;

/// The registry name clients use; the agents' default upstream.
pub const UPSTREAM_NAME: &str = "docker.io";
/// Repository of the test image on the upstream.
pub const REPO: &str = "library/shoal-e2e";
/// Tag of the test image.
pub const TAG: &str = "1.0";
/// The image as a client names it.
pub const IMAGE_REF: &str = "docker.io/library/shoal-e2e:1.0";

/// Registry + supernode + agents.
pub struct Cluster {
    /// The agents (dropped first).
    pub agents: Vec<Daemon>,
    /// The supernode.
    pub supernode: Daemon,
    /// The upstream registry.
    pub registry: Registry,
    /// What was pushed as `REPO:TAG`.
    pub image: TestImage,
}

impl Cluster {
    /// Starts a plain-HTTP registry with [`TestImage::standard`] pushed as
    /// `REPO:TAG`, a supernode with it as the `docker.io` upstream, and
    /// `agents` agents.
    pub async fn start(agents: usize) -> Cluster {
        let (registry, image) = registry_with_image(None, &[REPO]).await;
        let supernode = Daemon::supernode(&SupernodeOptions {
            upstreams: upstreams(&registry),
            upstream_cas: Vec::new(),
        })
        .await;
        let agents = start_agents(&supernode, &upstreams(&registry), agents).await;
        Cluster {
            agents,
            supernode,
            registry,
            image,
        }
    }

    /// The first agent.
    pub fn agent(&self) -> &Daemon {
        &self.agents[0]
    }
}

/// Starts a registry (HTTPS with `pki`'s certificate if given) and pushes
/// [`TestImage::standard`] to each of `repos` with tag [`TAG`].
pub async fn registry_with_image(pki: Option<&TestPki>, repos: &[&str]) -> (Registry, TestImage) {
    let registry = match pki {
        Some(pki) => Registry::start_tls(pki).await,
        None => Registry::start().await,
    };
    let image = TestImage::standard();
    let client = registry.client();
    for repo in repos {
        image.push(&client, &registry.url(), repo, TAG).await;
    }
    (registry, image)
}

/// `[("docker.io", registry URL)]`.
pub fn upstreams(registry: &Registry) -> Vec<(String, String)> {
    vec![(UPSTREAM_NAME.to_string(), registry.url())]
}

/// Starts `n` agents against `supernode` concurrently.
pub async fn start_agents(
    supernode: &Daemon,
    upstreams: &[(String, String)],
    n: usize,
) -> Vec<Daemon> {
    futures_util::future::join_all((0..n).map(|_| Daemon::agent(supernode, upstreams))).await
}
