//! `veil`: runs the engine without a window, and talks to a running engine
//! (this one or the app's) over the control socket.

mod logging;
mod run;
mod status;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use veil_engine::{Mode, Strategy};

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
    /// Upstream proxies.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
}

#[derive(Debug, Subcommand)]
enum UpstreamCommand {
    /// Measure an upstream proxy: connect, and fetch the check URL through it.
    Test {
        /// http://[user@]host:port, https://... or socks5://[user@]host:port.
        url: String,
        /// Plain http:// URL to fetch through it (default: the configured
        /// health-check URL; without one, only the connection is tested).
        #[arg(long)]
        check_url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Listen address of the mixed HTTP/CONNECT/SOCKS5 port (default 127.0.0.1:7890).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// `direct`, or `proxy` (through upstreams; the default when --upstream is given).
    #[arg(long)]
    mode: Option<Mode>,
    /// Upstream proxy URL, instead of the configured ones (repeat for a pool).
    /// A password for a URL with a user is read from VEIL_UPSTREAM_PASSWORD.
    #[arg(long = "upstream", value_name = "URL")]
    upstreams: Vec<String>,
    /// How to pick among upstreams: roundrobin, leastconn, first or fastest.
    #[arg(long)]
    strategy: Option<Strategy>,
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
            Command::Upstream(UpstreamCommand::Test { url, check_url }) => {
                upstream::test(&url, check_url).await
            }
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
