//! One `shoal-bench run`: generate the image (and push it to `--upstream`
//! if given), measure Shoal and the baselines (one after another, or
//! together from a common start line), then write `report.json` and
//! `completion.svg` into the output directory.
//!
//! A `bittorrent` baseline whose tools are not installed is left out with
//! a message naming the Debian packages, in the report's notes too; the
//! other systems still run, and the run counts as failed (exit status 1).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use crate::bound;
use crate::image::{PushError, synthetic};
use crate::plot::{PlotError, write_completion_svg};
use crate::progress::{self, Progress};
use crate::report::{Machine, Rates, Report, SystemReport};
use crate::scenario::{Baseline, RunConfig, Schedule};
use crate::systems::{self, REPO, SystemKind, SystemOutcome, SystemSpec, TAG};
use crate::torrent::Tools;

/// A system whose CPU seconds per wall second exceed this fraction of the
/// cores is reported as possibly CPU-bound.
const CPU_BOUND_FRACTION: f64 = 0.8;

/// Why a run produced no report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output directory or a file in it could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The plot failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The image could not be pushed to `--upstream`.
    #[error("push the benchmark image to {url}: {error}")]
    Push {
        /// The registry.
        url: String,
        /// What went wrong.
        error: PushError,
    },
}

/// What a run wrote.
#[derive(Debug)]
pub struct RunOutput {
    /// The report, as written.
    pub report: Report,
    /// `DIR/report.json`.
    pub report_path: PathBuf,
    /// `DIR/completion.svg`.
    pub plot_path: PathBuf,
    /// Systems that could not be measured at all, with the reason.
    pub failed_systems: Vec<(String, String)>,
}

impl RunOutput {
    /// Whether every system ran and every pull was verified.
    pub fn all_ok(&self) -> bool {
        self.failed_systems.is_empty() && self.report.systems.values().all(|s| s.failed_pulls == 0)
    }
}

/// Runs `cfg` and writes its report.
pub async fn run(cfg: &RunConfig) -> Result<RunOutput, RunError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(&cfg.out_dir).map_err(io(&cfg.out_dir))?;
    let (seed, bytes, layers) = (cfg.image_seed, cfg.layer_bytes, cfg.layers);
    let image = tokio::task::spawn_blocking(move || synthetic(seed, bytes, layers))
        .await
        .expect("image generation panicked");
    let image = Arc::new(image);
    let image_bytes = image.pull_bytes();

    let mut notes = Vec::new();
    let mut failed_systems = Vec::new();
    let mut kinds = vec![SystemKind::Shoal];
    for baseline in &cfg.baselines {
        match baseline {
            Baseline::Direct => kinds.push(SystemKind::Direct),
            Baseline::Bittorrent => match Tools::find() {
                Ok(_) => kinds.push(SystemKind::Bittorrent),
                Err(missing) => {
                    let name = SystemKind::Bittorrent.name();
                    eprintln!("shoal-bench: {missing}; running without the {name} baseline");
                    notes.push(format!("{name}: not measured: {missing}"));
                    failed_systems.push((name.to_string(), missing.to_string()));
                }
            },
        }
    }
    if let Some(url) = &cfg.upstream_url {
        let client = crate::http::client(Duration::from_secs(600));
        image
            .try_push(&client, url, REPO, TAG)
            .await
            .map_err(|error| RunError::Push {
                url: url.clone(),
                error,
            })?;
    }
    let start_line =
        (cfg.schedule == Schedule::Concurrent).then(|| Arc::new(Barrier::new(kinds.len())));
    let specs: Vec<SystemSpec> = kinds
        .iter()
        .map(|&kind| SystemSpec {
            kind,
            image: image.clone(),
            peers: cfg.peers,
            seed_up: cfg.seed_up,
            peer_up: cfg.peer_up,
            peer_down: cfg.peer_down,
            bin_dir: cfg.bin_dir.clone(),
            logs_dir: cfg.out_dir.join("logs").join(kind.name()),
            progress: Progress::new(kind.name(), cfg.peers),
            start_line: start_line.clone(),
            p2p: cfg.p2p,
            bt_piece_size: cfg.bt_piece_size,
            upstream_url: cfg.upstream_url.clone(),
        })
        .collect();
    let display = tokio::spawn(progress::display(
        specs.iter().map(|s| s.progress.clone()).collect(),
        Duration::from_millis(250),
    ));
    let results = measure(specs, cfg.schedule).await;
    let _ = display.await;

    let params = cfg.bound_params(image_bytes);
    let (kr, direct) = (bound::kumar_ross(&params), bound::direct(&params));
    let machine = Machine::detect();
    let mut systems = BTreeMap::new();
    for (kind, result) in kinds.iter().zip(results) {
        match result {
            Ok(outcome) => {
                notes.extend(outcome.notes.iter().cloned());
                let bound_s = if outcome.kind == SystemKind::Direct {
                    direct
                } else {
                    kr
                };
                systems.insert(
                    kind.name().to_string(),
                    SystemReport::new(&outcome, bound_s, image_bytes),
                );
            }
            Err(e) => {
                notes.push(format!("{}: not measured: {e}", kind.name()));
                failed_systems.push((kind.name().to_string(), e.to_string()));
            }
        }
    }
    notes.extend(cpu_notes(&systems, cfg.schedule, machine.nproc));
    let report = Report {
        scenario: cfg.scenario.name().to_string(),
        peers: cfg.peers,
        image_bytes,
        layers: cfg.layers,
        bound_s: kr,
        direct_bound_s: direct,
        rates_mib_s: Rates {
            seed_up: cfg.seed_up.as_mib_per_sec(),
            peer_up: cfg.peer_up.as_mib_per_sec(),
            peer_down: cfg.peer_down.as_mib_per_sec(),
        },
        schedule: match cfg.schedule {
            Schedule::Sequential => "sequential".into(),
            Schedule::Concurrent => "concurrent".into(),
        },
        notes,
        machine,
        systems,
    };
    let report_path = cfg.out_dir.join("report.json");
    let json = serde_json::to_vec_pretty(&report).expect("report serializes");
    std::fs::write(&report_path, json).map_err(io(&report_path))?;
    let plot_path = cfg.out_dir.join("completion.svg");
    write_completion_svg(&report, &plot_path)?;
    Ok(RunOutput {
        report,
        report_path,
        plot_path,
        failed_systems,
    })
}

/// Runs every system, each on its own thread and runtime, one after
/// another or all at once.
async fn measure(
    specs: Vec<SystemSpec>,
    schedule: Schedule,
) -> Vec<Result<SystemOutcome, systems::SystemError>> {
    let join = |handle| async move {
        tokio::task::spawn_blocking(move || systems::join(handle))
            .await
            .unwrap_or_else(|e| Err(systems::SystemError::Runtime(e.to_string())))
    };
    let mut results = Vec::new();
    match schedule {
        Schedule::Sequential => {
            for spec in specs {
                let progress = spec.progress.clone();
                results.push(join(systems::run_isolated(spec)).await);
                progress.finish();
            }
        }
        Schedule::Concurrent => {
            let handles: Vec<_> = specs.into_iter().map(systems::run_isolated).collect();
            for handle in handles {
                results.push(join(handle).await);
            }
        }
    }
    results
}

/// Warnings when the CPU, not the caps, may have limited a run.
fn cpu_notes(
    systems: &BTreeMap<String, SystemReport>,
    schedule: Schedule,
    nproc: usize,
) -> Vec<String> {
    let limit = CPU_BOUND_FRACTION * nproc as f64;
    let mut notes: Vec<String> = systems
        .iter()
        .filter_map(|(name, s)| {
            let load = s.cpu_per_wall?;
            (load > limit).then(|| {
                format!(
                    "{name} used {load:.2} CPU-seconds per second on {nproc} cores: \
                     the CPU, not the caps, may have limited it"
                )
            })
        })
        .collect();
    if schedule == Schedule::Concurrent {
        let total: f64 = systems.values().filter_map(|s| s.cpu_per_wall).sum();
        if total > limit && notes.is_empty() {
            notes.push(format!(
                "systems ran concurrently and together used {total:.2} CPU-seconds per second \
                 on {nproc} cores: rerun with --schedule sequential"
            ));
        }
    }
    notes
}
