//! `shoal-tracker`: see `shoal-tracker --help`.

use clap::Parser;
use shoal_agent::daemon;
use shoal_tracker::TrackerArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = TrackerArgs::parse().into_config();
    daemon::main_body("shoal-tracker", cfg, |c| c.log_format, shoal_tracker::run).await
}
