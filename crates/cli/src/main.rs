//! `veil`: runs the engine without a window, and talks to a running engine
//! (this one or the app's) over the control socket.

mod logging;
mod run;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use veil_engine::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "veil",
    version,
    about = "A local privacy proxy that tells the truth about what it covers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy engine in the foreground until Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Show the running engine's listener, mode, connections and traffic.
    Status {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Listen address of the mixed HTTP/CONNECT/SOCKS5 port (default 127.0.0.1:7890).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// `direct`, or `proxy` (through upstreams).
    #[arg(long)]
    mode: Option<Mode>,
    /// Config file to read instead of the usual `config.toml`.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("veil: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Status { json } => status::status(json).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veil: {e:#}");
            ExitCode::FAILURE
        }
    }
}
