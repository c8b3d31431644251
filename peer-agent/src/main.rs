//! `shoal-agent`: see `shoal-agent --help`.

use clap::Parser;
use shoal_agent::agent::{AgentArgs, run};
use shoal_agent::daemon;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = AgentArgs::parse().into_config();
    daemon::main_body("shoal-agent", cfg, |c| c.log_format, run).await
}
