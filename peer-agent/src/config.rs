//! Configuration shared by the daemons that talk to registries: the
//! `--upstream NAME=URL` list, per-upstream CA files and credentials, the
//! upstream client's timeouts, and loading the TOML file given with
//! `--config`.
//!
//! Two stages (STYLE.md 11): raw flags and a raw file are merged, flags
//! winning, then validated into typed values the rest of the code trusts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use shoal_proto::units::ByteSize;

use crate::serve::parse_duration;
use crate::upstream::{UpstreamConfig, UpstreamOptions};

/// The public Docker Hub registry, used when no upstream is configured.
pub const DOCKER_HUB: (&str, &str) = ("docker.io", "https://registry-1.docker.io");

/// Reads a TOML config file; `None` gives the defaults.
pub fn load_file<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// `--max-disk` from a flag or, failing that, the config file.
pub fn max_disk(flag: Option<ByteSize>, file: Option<&str>) -> anyhow::Result<Option<ByteSize>> {
    Ok(match (flag, file) {
        (Some(size), _) => Some(size),
        (None, Some(text)) => Some(
            text.parse::<ByteSize>()
                .map_err(|e| anyhow::anyhow!("max_disk: {e}"))?,
        ),
        (None, None) => None,
    })
}

/// The upstream client's timeout flags every daemon that talks to
/// registries takes (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct UpstreamTimeoutArgs {
    /// Longest time to establish a connection (TCP and TLS) to an upstream
    /// registry before the attempt counts as failed and is retried, e.g.
    /// 10s, 500ms, 1m (a bare number is seconds) [default: 10s].
    #[arg(long, env = "SHOAL_UPSTREAM_CONNECT_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub upstream_connect_timeout: Option<Duration>,
    /// Longest wait for the next bytes of an upstream response: from
    /// sending a request to its response headers (connecting and redirects
    /// included), then between two reads of the body. An upstream silent
    /// for longer is given up on; the request is retried, a blob resumed
    /// from where it broke off. E.g. 30s, 5s, 2m [default: 30s].
    #[arg(long, env = "SHOAL_UPSTREAM_READ_TIMEOUT", value_name = "DURATION",
          value_parser = parse_duration)]
    pub upstream_read_timeout: Option<Duration>,
}

impl UpstreamTimeoutArgs {
    /// The client options, from the flags over the config file's
    /// `upstream_connect_timeout` and `upstream_read_timeout` (as text,
    /// `30s`); flags win, defaults fill the rest.
    pub fn options_over(
        &self,
        file_connect: Option<&str>,
        file_read: Option<&str>,
    ) -> anyhow::Result<UpstreamOptions> {
        let pick = |flag: Option<Duration>, file: Option<&str>, name: &str| match (flag, file) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(text)) => parse_duration(text)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{name}: {e}")),
            (None, None) => Ok(None),
        };
        let mut opts = UpstreamOptions::default();
        let connect = pick(
            self.upstream_connect_timeout,
            file_connect,
            "upstream_connect_timeout",
        )?;
        if let Some(d) = connect {
            if d.is_zero() {
                bail!("--upstream-connect-timeout must be more than 0");
            }
            opts.connect_timeout = d;
        }
        let read = pick(
            self.upstream_read_timeout,
            file_read,
            "upstream_read_timeout",
        )?;
        if let Some(d) = read {
            if d.is_zero() {
                bail!("--upstream-read-timeout must be more than 0");
            }
            opts.request_timeout = d;
            opts.read_timeout = d;
        }
        Ok(opts)
    }
}

/// Parses `NAME=VALUE` (clap value parser for `--upstream` and `--upstream-ca`).
pub fn parse_name_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// One `[[upstream]]` table of the config file. `Debug` hides the password.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamEntry {
    /// The registry as clients name it (`docker.io`, `registry.example.com:5000`).
    pub name: String,
    /// Where to reach it.
    pub url: String,
    /// PEM file with extra CAs for this upstream.
    pub ca_file: Option<PathBuf>,
    /// Basic credentials (user name).
    pub username: Option<String>,
    /// Basic credentials (password). Prefer `password_file`.
    pub password: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for UpstreamEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamEntry")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// A validated upstream: its client-facing name and its client config.
#[derive(Debug, Clone)]
pub struct NamedUpstream {
    /// Name as clients use it.
    pub name: String,
    /// Connection settings.
    pub config: UpstreamConfig,
}

/// Merges `--upstream` / `--upstream-ca` flags with the file's
/// `[[upstream]]` tables. When flags name upstreams, they define the list
/// and its order (the first is the default registry); the file still
/// supplies CA files and credentials for those names. With neither, the
/// list is Docker Hub alone.
pub fn merge_upstreams(
    flags: &[(String, String)],
    ca_flags: &[(String, String)],
    file: &[UpstreamEntry],
) -> anyhow::Result<Vec<NamedUpstream>> {
    let mut list: Vec<UpstreamEntry> = if flags.is_empty() {
        file.to_vec()
    } else {
        flags
            .iter()
            .map(|(name, url)| {
                let mut e = file
                    .iter()
                    .find(|e| &e.name == name)
                    .cloned()
                    .unwrap_or_default();
                e.name = name.clone();
                e.url = url.clone();
                e
            })
            .collect()
    };
    if list.is_empty() {
        list.push(UpstreamEntry {
            name: DOCKER_HUB.0.into(),
            url: DOCKER_HUB.1.into(),
            ..Default::default()
        });
    }
    for (name, ca) in ca_flags {
        match list.iter_mut().find(|e| &e.name == name) {
            Some(e) => e.ca_file = Some(PathBuf::from(ca)),
            None => bail!("--upstream-ca names {name:?}, which is not a configured upstream"),
        }
    }
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        validate_name(&e.name)?;
        if out.iter().any(|u: &NamedUpstream| u.name == e.name) {
            bail!("upstream {:?} is configured twice", e.name);
        }
        let url = reqwest::Url::parse(&e.url)
            .with_context(|| format!("upstream {:?}: invalid URL {:?}", e.name, e.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!(
                "upstream {:?}: URL must be http:// or https:// with a host, got {:?}",
                e.name,
                e.url
            );
        }
        let password = match (&e.password, &e.password_file) {
            (_, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| {
                        format!(
                            "upstream {:?}: cannot read password file {}",
                            e.name,
                            f.display()
                        )
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            (p, None) => p.clone(),
        };
        out.push(NamedUpstream {
            name: e.name.clone(),
            config: UpstreamConfig {
                url: e.url.trim_end_matches('/').to_owned(),
                ca_file: e.ca_file,
                username: e.username,
                password,
            },
        });
    }
    Ok(out)
}

/// A registry name: a host with an optional port (`docker.io`,
/// `registry.example.com:5000`, `127.0.0.1:5000`).
fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        && !name.starts_with(['.', '-', ':']);
    if ok {
        Ok(())
    } else {
        bail!("invalid upstream name {name:?}: expected a registry host[:port]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn defaults_to_docker_hub() {
        let u = merge_upstreams(&[], &[], &[]).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].name, "docker.io");
        assert_eq!(u[0].config.url, "https://registry-1.docker.io");
    }

    #[test]
    fn flags_define_order_and_file_adds_credentials() {
        let file = vec![UpstreamEntry {
            name: "ghcr.io".into(),
            url: "https://ignored".into(),
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        }];
        let u = merge_upstreams(
            &[
                nv("docker.io", "http://127.0.0.1:5000/"),
                nv("ghcr.io", "https://ghcr.io"),
            ],
            &[nv("docker.io", "/ca.pem")],
            &file,
        )
        .unwrap();
        assert_eq!(u[0].name, "docker.io");
        assert_eq!(u[0].config.url, "http://127.0.0.1:5000");
        assert_eq!(u[0].config.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(u[1].config.url, "https://ghcr.io");
        assert_eq!(u[1].config.username.as_deref(), Some("u"));
    }

    #[test]
    fn debug_hides_the_password() {
        let e = UpstreamEntry {
            name: "r".into(),
            password: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn upstream_timeouts_flags_win_over_file() {
        let none = UpstreamTimeoutArgs::default();
        assert_eq!(
            none.options_over(None, None).unwrap(),
            UpstreamOptions::default()
        );
        let o = none.options_over(Some("2s"), Some("500ms")).unwrap();
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.read_timeout, Duration::from_millis(500));
        assert_eq!(o.request_timeout, Duration::from_millis(500));
        assert_eq!(o.retries, UpstreamOptions::default().retries);
        let flags = UpstreamTimeoutArgs {
            upstream_connect_timeout: Some(Duration::from_secs(7)),
            upstream_read_timeout: Some(Duration::from_secs(3)),
        };
        let o = flags.options_over(Some("2s"), Some("500ms")).unwrap();
        assert_eq!(o.connect_timeout, Duration::from_secs(7));
        assert_eq!(o.read_timeout, Duration::from_secs(3));
        assert!(none.options_over(Some("soon"), None).is_err());
        assert!(none.options_over(None, Some("0s")).is_err());
        let zero = UpstreamTimeoutArgs {
            upstream_connect_timeout: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(zero.options_over(None, None).is_err());
    }

    #[test]
    fn refuses_bad_input() {
        assert!(merge_upstreams(&[nv("docker.io", "ftp://x")], &[], &[]).is_err());
        assert!(merge_upstreams(&[nv("a/b", "http://x")], &[], &[]).is_err());
        assert!(merge_upstreams(&[nv("a", "http://x"), nv("a", "http://y")], &[], &[]).is_err());
        assert!(merge_upstreams(&[nv("a", "http://x")], &[nv("b", "/ca")], &[]).is_err());
        assert!(parse_name_value("novalue").is_err());
        assert_eq!(parse_name_value("a=b=c").unwrap(), nv("a", "b=c"));
    }
}
