//! The upstream a system fetches from, counting every body byte it sends:
//! the embedded registry, or with `--upstream URL` the bench's forwarding
//! [`Proxy`] in front of that registry (so that a real registry's bytes
//! are counted the same way, manifests included).

use super::{REPO, SystemSpec, TAG};
use crate::proxy::Proxy;
use crate::throttle::Throttle;
use crate::upstream::{Upstream, UpstreamConfig};

/// A running upstream; stops when dropped.
#[derive(Debug)]
pub enum Source {
    /// The embedded registry serving the spec's image.
    Embedded(Upstream),
    /// The proxy in front of `--upstream`.
    Proxied(Proxy),
}

impl Source {
    /// Starts the upstream for `spec`, its total upload capped by
    /// `throttle`.
    pub async fn start(spec: &SystemSpec, throttle: Throttle) -> std::io::Result<Source> {
        match &spec.upstream_url {
            Some(url) => Proxy::start(url, throttle).await.map(Source::Proxied),
            None => Upstream::start(UpstreamConfig {
                image: spec.image.clone(),
                repo: REPO.into(),
                tag: TAG.into(),
                throttle,
            })
            .await
            .map(Source::Embedded),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self {
            Source::Embedded(u) => u.url(),
            Source::Proxied(p) => p.url(),
        }
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        match self {
            Source::Embedded(u) => u.counters().bytes_sent(),
            Source::Proxied(p) => p.bytes_sent(),
        }
    }

    /// For the report: how the bytes were counted, when not by the
    /// embedded registry.
    pub fn note(&self, system: &str, spec: &SystemSpec) -> Option<String> {
        let url = spec.upstream_url.as_deref()?;
        let capped = if system == "direct" {
            "caps the total upload at the seed rate and "
        } else {
            ""
        };
        Some(format!(
            "{system}: upstream is {url}, reached through the bench's forwarding proxy, which \
             {capped}counts the body bytes it passes on (upstream× = those bytes / image bytes)"
        ))
    }
}
