//! The standard scenarios (DESIGN.md, "Benchmark scenarios") and the
//! validated configuration of one `run`, built from a scenario's defaults
//! and the command line's overrides (overrides win).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::bound::BoundParams;
use crate::torrent::PieceSize;
use crate::units::{MIB, Rate};

/// Seed of the benchmark image: every run distributes the same bytes.
pub const IMAGE_SEED: u64 = 0x5b0a_1000;

/// A named scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 10 nodes, 64 MiB in 2 layers, 16/4/4 MiB/s.
    Smoke,
    /// 50 nodes, 128 MiB in 4 layers, 16/4/4 MiB/s.
    FanoutSym,
    /// 50 nodes, 128 MiB in 4 layers, 16/2/8 MiB/s.
    FanoutUpbound,
}

/// A comparison system run next to Shoal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Baseline {
    /// Every node pulls from the upstream, whose total upload is capped at
    /// the seed rate.
    Direct,
    /// An aria2c seed and N aria2c leechers with a local opentracker.
    Bittorrent,
}

/// Whether systems run one after another or at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One system at a time: clean measurements, the default for the large
    /// scenarios.
    Sequential,
    /// All systems at once from a common start line: shorter wall time;
    /// fine while the machine's CPU is far from busy (the smoke scenario).
    Concurrent,
}

/// A scenario's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Number of nodes N.
    pub peers: usize,
    /// Image size F in MiB (layers; config and manifest come on top).
    pub image_mib: u64,
    /// Number of layers.
    pub layers: usize,
    /// Seed upload u_s.
    pub seed_up: Rate,
    /// Peer upload u.
    pub peer_up: Rate,
    /// Peer download d.
    pub peer_down: Rate,
    /// How systems are scheduled.
    pub schedule: Schedule,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 3] = [
        Scenario::Smoke,
        Scenario::FanoutSym,
        Scenario::FanoutUpbound,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Smoke => "smoke",
            Scenario::FanoutSym => "fanout-sym",
            Scenario::FanoutUpbound => "fanout-upbound",
        }
    }

    /// DESIGN.md's table row.
    pub fn defaults(self) -> Defaults {
        let (peers, image_mib, layers, us, u, d) = match self {
            Scenario::Smoke => (10, 64, 2, 16, 4, 4),
            Scenario::FanoutSym => (50, 128, 4, 16, 4, 4),
            Scenario::FanoutUpbound => (50, 128, 4, 16, 2, 8),
        };
        Defaults {
            peers,
            image_mib,
            layers,
            seed_up: Rate::mib_per_sec(us),
            peer_up: Rate::mib_per_sec(u),
            peer_down: Rate::mib_per_sec(d),
            schedule: match self {
                Scenario::Smoke => Schedule::Concurrent,
                _ => Schedule::Sequential,
            },
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| format!("unknown scenario `{s}`: smoke, fanout-sym or fanout-upbound"))
    }
}

/// Command-line values that replace a scenario's defaults.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--peers`.
    pub peers: Option<usize>,
    /// `--image-mib`.
    pub image_mib: Option<u64>,
    /// `--layers`.
    pub layers: Option<usize>,
    /// `--seed-up`.
    pub seed_up: Option<Rate>,
    /// `--peer-up`.
    pub peer_up: Option<Rate>,
    /// `--peer-down`.
    pub peer_down: Option<Rate>,
    /// `--schedule`.
    pub schedule: Option<Schedule>,
    /// `--baseline`, repeatable; `None` = the default (`direct`), an empty
    /// list = `none`.
    pub baselines: Option<Vec<Baseline>>,
    /// Piece swarming on (the default; off with `--no-p2p`).
    pub p2p: bool,
    /// `--bt-piece-size`.
    pub bt_piece_size: Option<PieceSize>,
    /// `--upstream URL`: a real registry instead of the embedded one.
    pub upstream: Option<String>,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count or size that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// More layers than MiB: layers would be smaller than 1 MiB.
    #[error("{layers} layers do not fit in {image_mib} MiB: use at most one layer per MiB")]
    TooManyLayers {
        /// Requested layers.
        layers: usize,
        /// Requested image size.
        image_mib: u64,
    },
    /// `--upstream` is not an http(s) URL.
    #[error("--upstream `{0}` must be an http:// or https:// URL, e.g. http://127.0.0.1:5000")]
    BadUpstream(String),
}

/// Everything one `run` needs, validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The scenario the defaults came from.
    pub scenario: Scenario,
    /// Number of nodes N.
    pub peers: usize,
    /// Bytes of layer data.
    pub layer_bytes: u64,
    /// Number of layers.
    pub layers: usize,
    /// Seed upload u_s.
    pub seed_up: Rate,
    /// Peer upload u.
    pub peer_up: Rate,
    /// Peer download d.
    pub peer_down: Rate,
    /// Baselines to run after (or with) Shoal, deduplicated.
    pub baselines: Vec<Baseline>,
    /// How systems are scheduled.
    pub schedule: Schedule,
    /// Where report.json, completion.svg and the logs go.
    pub out_dir: PathBuf,
    /// Where the daemon binaries are.
    pub bin_dir: PathBuf,
    /// Seed of the generated image.
    pub image_seed: u64,
    /// Run Shoal's peer-to-peer path (cluster secret, daemon rate caps).
    pub p2p: bool,
    /// Piece size of the BitTorrent baseline's torrent.
    pub bt_piece_size: PieceSize,
    /// A real registry to push the image to and pull from, instead of the
    /// embedded upstream; no trailing slash.
    pub upstream_url: Option<String>,
}

impl RunConfig {
    /// `scenario`'s defaults with `o` applied, validated.
    pub fn resolve(
        scenario: Scenario,
        o: &Overrides,
        out_dir: PathBuf,
        bin_dir: PathBuf,
    ) -> Result<RunConfig, ConfigError> {
        let d = scenario.defaults();
        let peers = o.peers.unwrap_or(d.peers);
        let image_mib = o.image_mib.unwrap_or(d.image_mib);
        let layers = o.layers.unwrap_or(d.layers);
        if peers == 0 {
            return Err(ConfigError::Zero("--peers"));
        }
        if image_mib == 0 {
            return Err(ConfigError::Zero("--image-mib"));
        }
        if layers == 0 {
            return Err(ConfigError::Zero("--layers"));
        }
        if layers as u64 > image_mib {
            return Err(ConfigError::TooManyLayers { layers, image_mib });
        }
        let mut baselines = o
            .baselines
            .clone()
            .unwrap_or_else(|| vec![Baseline::Direct]);
        baselines.sort();
        baselines.dedup();
        let upstream_url = match &o.upstream {
            Some(url) => {
                let trimmed = url.trim().trim_end_matches('/');
                let scheme_ok = ["http://", "https://"].iter().any(|s| {
                    trimmed
                        .strip_prefix(s)
                        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
                });
                if !scheme_ok {
                    return Err(ConfigError::BadUpstream(url.clone()));
                }
                Some(trimmed.to_string())
            }
            None => None,
        };
        Ok(RunConfig {
            scenario,
            peers,
            layer_bytes: image_mib * MIB,
            layers,
            seed_up: o.seed_up.unwrap_or(d.seed_up),
            peer_up: o.peer_up.unwrap_or(d.peer_up),
            peer_down: o.peer_down.unwrap_or(d.peer_down),
            baselines,
            schedule: o.schedule.unwrap_or(d.schedule),
            out_dir,
            bin_dir,
            image_seed: IMAGE_SEED,
            p2p: o.p2p,
            bt_piece_size: o.bt_piece_size.unwrap_or_default(),
            upstream_url,
        })
    }

    /// The bounds' inputs for an image of `file_bytes`.
    pub fn bound_params(&self, file_bytes: u64) -> BoundParams {
        BoundParams {
            peers: self.peers,
            file_bytes,
            seed_up: self.seed_up,
            peer_up: self.peer_up,
            peer_down: self.peer_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: &Overrides) -> Result<RunConfig, ConfigError> {
        RunConfig::resolve(Scenario::Smoke, o, "out".into(), "bin".into())
    }

    #[test]
    fn defaults_are_designs_table() {
        let smoke = resolve(&Overrides::default()).unwrap();
        assert_eq!(smoke.peers, 10);
        assert_eq!(smoke.layer_bytes, 64 * MIB);
        assert_eq!(smoke.layers, 2);
        assert_eq!(smoke.seed_up, Rate::mib_per_sec(16));
        assert_eq!(smoke.peer_up, Rate::mib_per_sec(4));
        assert_eq!(smoke.peer_down, Rate::mib_per_sec(4));
        assert_eq!(smoke.baselines, vec![Baseline::Direct]);
        assert_eq!(smoke.schedule, Schedule::Concurrent);
        let up = Scenario::FanoutUpbound.defaults();
        assert_eq!((up.peers, up.image_mib, up.layers), (50, 128, 4));
        assert_eq!(
            (up.peer_up, up.peer_down),
            (Rate::mib_per_sec(2), Rate::mib_per_sec(8))
        );
        assert_eq!(up.schedule, Schedule::Sequential);
        assert_eq!(Scenario::FanoutSym.defaults().peer_up, Rate::mib_per_sec(4));
    }

    #[test]
    fn overrides_win_and_are_validated() {
        let o = Overrides {
            peers: Some(3),
            image_mib: Some(8),
            baselines: Some(vec![]),
            ..Overrides::default()
        };
        let cfg = resolve(&o).unwrap();
        assert_eq!((cfg.peers, cfg.layer_bytes, cfg.layers), (3, 8 * MIB, 2));
        assert!(cfg.baselines.is_empty());
        let zero = Overrides {
            peers: Some(0),
            ..Overrides::default()
        };
        assert_eq!(resolve(&zero).unwrap_err(), ConfigError::Zero("--peers"));
        let thin = Overrides {
            image_mib: Some(2),
            layers: Some(3),
            ..Overrides::default()
        };
        assert!(matches!(
            resolve(&thin),
            Err(ConfigError::TooManyLayers { .. })
        ));
    }

    #[test]
    fn baselines_piece_size_and_upstream() {
        let o = Overrides {
            baselines: Some(vec![
                Baseline::Bittorrent,
                Baseline::Direct,
                Baseline::Direct,
            ]),
            upstream: Some("http://127.0.0.1:5000/".into()),
            ..Overrides::default()
        };
        let cfg = resolve(&o).unwrap();
        assert_eq!(cfg.baselines, vec![Baseline::Direct, Baseline::Bittorrent]);
        assert_eq!(cfg.bt_piece_size, PieceSize::DEFAULT);
        assert_eq!(cfg.upstream_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(resolve(&Overrides::default()).unwrap().upstream_url, None);
        for bad in ["127.0.0.1:5000", "ftp://x", "http://", "http://a b"] {
            let o = Overrides {
                upstream: Some(bad.into()),
                ..Overrides::default()
            };
            assert_eq!(
                resolve(&o).unwrap_err(),
                ConfigError::BadUpstream(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert!("huge".parse::<Scenario>().is_err());
    }
}
