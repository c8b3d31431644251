//! Which redirects from an upstream are followed: no server-side request
//! forgery through a redirect.
//!
//! Registries redirect blob downloads to object storage or a CDN, so the
//! client follows redirects. A remote upstream (or whoever controls its
//! responses) must not be able to turn the daemon into a proxy to the
//! daemon's own network: a redirect from an upstream on a public address to
//! a loopback, link-local (cloud metadata at 169.254.169.254), private,
//! shared (CGNAT) or unspecified address, or to `localhost`, is refused.
//! An upstream that is itself on such an address (a registry inside the
//! cluster) may redirect anywhere, as its operator chose to trust it.
//!
//! The check sees the URL only: a public host name that resolves to an
//! internal address is not caught here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// `Ok` if a redirect to `next` may be followed from a request that began
/// at `previous[0]` (the upstream's own URL); otherwise why not.
pub(super) fn check(previous: &[Url], next: &Url) -> Result<(), &'static str> {
    match previous.first() {
        Some(first) if !is_internal(first) && is_internal(next) => Err(
            "refusing a redirect from a public upstream to a loopback, link-local or private address",
        ),
        _ => Ok(()),
    }
}

/// Whether `url` names this host or a non-public network: by IP literal,
/// `localhost`, or no host at all.
fn is_internal(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => internal_v4(ip),
        Ok(IpAddr::V6(ip)) => internal_v6(ip),
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        // fc00::/7, unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10, link-local; fec0::/10, the old site-local.
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn from(upstream: &str, to: &str) -> Result<(), &'static str> {
        check(&[url(upstream)], &url(to))
    }

    #[test]
    fn public_upstream_cannot_redirect_inside() {
        for to in [
            "http://127.0.0.1/x",
            "http://127.1.2.3:8080/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://localhost:5000/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x",
            "http://172.16.5.4/x",
            "http://192.168.1.1/x",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[::]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fe80::1]/x",
            "http://[fd00::1]/x",
        ] {
            assert!(
                from("https://registry-1.docker.io/v2/", to).is_err(),
                "{to}"
            );
        }
    }

    #[test]
    fn public_targets_are_followed() {
        for to in [
            "https://production.cloudflare.docker.com/blob",
            "https://s3.amazonaws.com/bucket/key",
            "https://8.8.8.8/x",
            "https://100.128.0.1/x",
            "https://[2001:db8::1]/x",
            "https://localhost.example.com/x",
        ] {
            assert_eq!(from("https://registry-1.docker.io/v2/", to), Ok(()), "{to}");
        }
    }

    #[test]
    fn internal_upstream_may_redirect_anywhere() {
        for upstream in [
            "http://127.0.0.1:5000/v2/",
            "http://10.1.2.3/v2/",
            "http://registry.localhost/v2/",
            "http://[fd00::5]/v2/",
        ] {
            assert_eq!(from(upstream, "http://127.0.0.1:9000/blob"), Ok(()));
            assert_eq!(from(upstream, "https://s3.amazonaws.com/b"), Ok(()));
        }
    }

    #[test]
    fn the_first_url_decides_even_after_hops() {
        let hops = [
            url("https://registry.example.com/v2/"),
            url("https://cdn.example.com/b"),
        ];
        assert!(check(&hops, &url("http://127.0.0.1/")).is_err());
        let hops = [
            url("http://127.0.0.1:5000/v2/"),
            url("https://cdn.example.com/b"),
        ];
        assert_eq!(check(&hops, &url("http://127.0.0.1/")), Ok(()));
    }
}
