//! `shoal-agent`: see `shoal-agent --help`.

use clap::Parser;
use shoal_agent::agent::{AgentArgs, run};
use shoal_agent::daemon;

fn main() -> std::process::ExitCode {
    let args = AgentArgs::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.worker_threads {
        rt.worker_threads(usize::from(n));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal-agent: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let cfg = args.into_config();
        daemon::main_body("shoal-agent", cfg, |c| c.log_format, run).await
    })
}
