//! `shoal-bench`: the command line. Parses flags, resolves them into the
//! library's validated configuration, runs, prints, maps failures to exit
//! codes (0 ok, 1 a system or pull failed, 2 bad usage, 130 interrupted).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use shoal_bench::daemon::find_bin_dir;
use shoal_bench::mirror::{MirrorConfig, MirrorUpstream};
use shoal_bench::scenario::{Baseline, Overrides, RunConfig, Scenario, Schedule};
use shoal_bench::torrent::PieceSize;
use shoal_bench::units::{MIB, Rate};

/// Measures how fast Shoal gets an image to every node of a cluster, next
/// to direct pulls and the theoretical bound, all on this machine.
///
/// Every daemon runs as its own process on 127.0.0.1 in a temporary
/// directory and is killed when the bench ends, also on Ctrl-C. The daemon
/// binaries are taken from the directory of this executable (where cargo
/// builds them: `cargo build --workspace --bins`) or from --bin-dir.
#[derive(Parser, Debug)]
#[command(name = "shoal-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fanout benchmark: N nodes pull one image at the same time, through
    /// Shoal and through the baselines, under per-node rate caps.
    ///
    /// Prints a table, and writes DIR/report.json and DIR/completion.svg
    /// (completion-time CDF per system with the Kumar–Ross bound marked)
    /// plus the daemons' logs in DIR/logs/.
    Run(RunArgs),
    /// Pull-through mirror benchmark: one large blob pulled straight from
    /// the upstream, then cold through an agent and its supernode, then
    /// warm from the agent's store. Prints times, the cold/direct ratio and
    /// the warm throughput; writes DIR/mirror.json.
    Mirror(MirrorArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario whose parameters are the defaults (DESIGN.md's table):
    /// smoke = 10 nodes, 64 MiB in 2 layers, seed/peer-up/peer-down
    /// 16/4/4 MiB/s; fanout-sym = 50 nodes, 128 MiB in 4 layers, 16/4/4;
    /// fanout-upbound = 50 nodes, 128 MiB in 4 layers, 16/2/8.
    #[arg(long, value_enum, default_value = "smoke")]
    scenario: ScenarioArg,
    /// Number of nodes (agents, and pulling clients) N.
    #[arg(long, value_name = "N")]
    peers: Option<usize>,
    /// Image size F in MiB (the layers' bytes, random, so incompressible).
    #[arg(long, value_name = "F")]
    image_mib: Option<u64>,
    /// Number of layers the image is split into.
    #[arg(long, value_name = "L")]
    layers: Option<usize>,
    /// Upload cap of the seed (Shoal's supernode; the direct baseline's
    /// registry, shared by all its clients). RATE is MiB/s when bare;
    /// suffixes: KiB, MiB, GiB, KB, MB, GB, Kbit, Mbit, Gbit (e.g. 16,
    /// 16MiB, 100Mbit).
    #[arg(long, value_name = "RATE")]
    seed_up: Option<Rate>,
    /// Upload cap of each node's agent. Same units as --seed-up.
    #[arg(long, value_name = "RATE")]
    peer_up: Option<Rate>,
    /// Download cap of each node (enforced by each pulling client). Same
    /// units as --seed-up.
    #[arg(long, value_name = "RATE")]
    peer_down: Option<Rate>,
    /// Baseline to run next to Shoal; repeatable. `direct`: every node
    /// pulls straight from the upstream registry, whose total upload is
    /// capped at the seed rate. `bittorrent`: a local opentracker, one
    /// aria2c seed capped at the seed rate and N aria2c leechers capped at
    /// the peer rates, sharing the image's blobs as one torrent; needs
    /// aria2c, opentracker and mktorrent (Debian packages aria2,
    /// opentracker, mktorrent): when one is missing, the run says so,
    /// measures the other systems and exits with status 1. `none`: Shoal
    /// only. Default: direct.
    #[arg(long = "baseline", value_enum, value_name = "BASELINE")]
    baselines: Vec<BaselineArg>,
    /// Piece size of the bittorrent baseline's torrent: a power of two
    /// from 32KiB to 256MiB, e.g. 256KiB, 1MiB, 4MiB (bare: bytes).
    #[arg(long, value_name = "SIZE", default_value = "256KiB")]
    bt_piece_size: PieceSize,
    /// A real registry to use instead of the embedded one, e.g.
    /// http://127.0.0.1:5000: the bench pushes the generated image to it
    /// (as library/shoal-bench:bench, through the registry HTTP API), and
    /// Shoal's supernode and agents and the direct pulls fetch from it
    /// through a forwarding proxy of the bench's, which counts the bytes
    /// the registry sends (and, for direct, caps them at the seed rate).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Run the systems one after another (clean measurements) or at the same
    /// time from a common start line (shorter). Default: concurrent for
    /// smoke, sequential for the others.
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,
    /// Run Shoal without its peer-to-peer path: agents fetch whole blobs
    /// from the supernode over HTTP and no daemon enforces a cap (the report
    /// says so). By default the daemons get a generated cluster secret,
    /// agents swarm verified pieces over QUIC, and the rate caps are given
    /// to them as --upload-rate/--download-rate.
    #[arg(long)]
    no_p2p: bool,
    /// Output directory. Default: a new directory ./bench-out/<UTC time>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Directory holding shoal-tracker, shoal-supernode and shoal-agent.
    /// Default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct MirrorArgs {
    /// Size of the blob in MiB.
    #[arg(long, value_name = "B", default_value_t = 1024)]
    blob_mib: u64,
    /// The upstream registry. Default: docker-registry (Debian's
    /// /usr/bin/docker-registry, the blob pushed to it through the HTTP
    /// API) when installed, else the bench's embedded registry.
    #[arg(long, value_enum)]
    upstream: Option<MirrorUpstreamArg>,
    /// Output directory. Default: a new directory
    /// ./bench-out/mirror-<UTC time>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Directory holding shoal-tracker, shoal-supernode and shoal-agent.
    /// Default: the directory of this executable.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScenarioArg {
    Smoke,
    FanoutSym,
    FanoutUpbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BaselineArg {
    Direct,
    Bittorrent,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScheduleArg {
    Sequential,
    Concurrent,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MirrorUpstreamArg {
    DockerRegistry,
    Embedded,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        tokio::select! {
            code = execute(cli) => code.unwrap_or_else(|e| {
                eprintln!("shoal-bench: {e:#}");
                ExitCode::FAILURE
            }),
            signal = interrupted() => {
                let killed = shoal_bench::child::kill_all();
                eprintln!("\nshoal-bench: {signal}: killed {killed} child processes");
                ExitCode::from(130)
            }
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Mirror(args) => mirror(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = match args.scenario {
        ScenarioArg::Smoke => Scenario::Smoke,
        ScenarioArg::FanoutSym => Scenario::FanoutSym,
        ScenarioArg::FanoutUpbound => Scenario::FanoutUpbound,
    };
    let baselines = (!args.baselines.is_empty()).then(|| {
        args.baselines
            .iter()
            .filter_map(|b| match b {
                BaselineArg::Direct => Some(Baseline::Direct),
                BaselineArg::Bittorrent => Some(Baseline::Bittorrent),
                BaselineArg::None => None,
            })
            .collect()
    });
    let overrides = Overrides {
        peers: args.peers,
        image_mib: args.image_mib,
        layers: args.layers,
        seed_up: args.seed_up,
        peer_up: args.peer_up,
        peer_down: args.peer_down,
        schedule: args.schedule.map(|s| match s {
            ScheduleArg::Sequential => Schedule::Sequential,
            ScheduleArg::Concurrent => Schedule::Concurrent,
        }),
        baselines,
        p2p: !args.no_p2p,
        bt_piece_size: Some(args.bt_piece_size),
        upstream: args.upstream,
    };
    let bin_dir = find_bin_dir(args.bin_dir.as_deref())?;
    let out = args.out.unwrap_or_else(|| default_out(""));
    let cfg = RunConfig::resolve(scenario, &overrides, out, bin_dir)?;
    eprintln!(
        "shoal-bench: scenario {} with {} nodes, output in {}",
        cfg.scenario,
        cfg.peers,
        cfg.out_dir.display()
    );
    let output = shoal_bench::run::run(&cfg).await?;
    print!("{}", shoal_bench::report::render_table(&output.report));
    println!(
        "\nwrote {} and {}",
        output.report_path.display(),
        output.plot_path.display()
    );
    Ok(if output.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn mirror(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.blob_mib > 0, "--blob-mib must be at least 1");
    let cfg = MirrorConfig {
        blob_bytes: args.blob_mib * MIB,
        upstream: args.upstream.map(|u| match u {
            MirrorUpstreamArg::DockerRegistry => MirrorUpstream::DockerRegistry,
            MirrorUpstreamArg::Embedded => MirrorUpstream::Embedded,
        }),
        bin_dir: find_bin_dir(args.bin_dir.as_deref())?,
        out_dir: args.out.unwrap_or_else(|| default_out("mirror-")),
    };
    let report = shoal_bench::mirror::run(&cfg)
        .await
        .context("mirror benchmark")?;
    print!("{}", shoal_bench::mirror::render(&report));
    println!("\nwrote {}", cfg.out_dir.join("mirror.json").display());
    Ok(ExitCode::SUCCESS)
}

/// `./bench-out/<prefix><UTC YYYYMMDD-HHMMSS>`, with a suffix if taken.
fn default_out(prefix: &str) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = Path::new("bench-out").join(format!("{prefix}{}", utc_stamp(secs)));
    let mut path = base.clone();
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = PathBuf::from(format!("{}-{n}", base.display()));
    }
    path
}

/// `YYYYMMDD-HHMMSS` in UTC for `secs` since the epoch (civil-from-days,
/// after Howard Hinnant).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(951_825_600), "20000229-120000");
    }

    #[test]
    fn cli_parses_the_documented_forms() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "shoal-bench",
            "run",
            "--scenario",
            "fanout-upbound",
            "--peer-down",
            "100Mbit",
            "--baseline",
            "none",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            args.peer_down,
            Some(Rate::from_bytes_per_sec(12_500_000).unwrap())
        );
        assert_eq!(args.baselines, vec![BaselineArg::None]);
        assert_eq!(args.bt_piece_size, PieceSize::DEFAULT);
        let cli = Cli::try_parse_from([
            "shoal-bench",
            "run",
            "--baseline",
            "direct",
            "--baseline",
            "bittorrent",
            "--bt-piece-size",
            "1MiB",
            "--upstream",
            "http://127.0.0.1:5000",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            args.baselines,
            vec![BaselineArg::Direct, BaselineArg::Bittorrent]
        );
        assert_eq!(args.bt_piece_size.bytes(), 1 << 20);
        assert_eq!(args.upstream.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(Cli::try_parse_from(["shoal-bench", "run", "--bt-piece-size", "3MiB"]).is_err());
    }
}
