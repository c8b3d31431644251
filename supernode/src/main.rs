//! `shoal-supernode`: see `shoal-supernode --help`.

use clap::Parser;
use shoal_agent::daemon;
use shoal_supernode::config::SupernodeArgs;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = SupernodeArgs::parse().into_config();
    daemon::main_body(
        "shoal-supernode",
        cfg,
        |c| c.log_format,
        shoal_supernode::run,
    )
    .await
}
