//! `veil`: runs the engine without a window, and talks to a running engine
//! (this one or the app's) over the control socket.

mod cache;
mod coverage;
mod env;
mod history;
mod ip;
mod leaks;
mod run;
mod status;
mod sysproxy;
mod upstream;
mod upstream_edit;

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
    /// The public IP the world sees directly and through Veil: masked or not.
    Ip {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Traffic per app and per host over the last hour, day or week.
    History {
        /// hour, day or week.
        #[arg(long, default_value = "hour")]
        range: veil_system::history::HistoryRange,
        /// Write every minute bucket of the range to FILE as CSV instead.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upstream proxies.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Point the OS's proxy setting at the running engine, or give back yours.
    #[command(subcommand)]
    Sysproxy(SysproxyCommand),
    /// The running engine's HTTP cache (plain HTTP only; HTTPS is never cached).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Which apps go through Veil, bypass it or use UDP, beside what a VPN would capture.
    Coverage {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check, locally and read-only, how names and traffic get past Veil.
    Leaks {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print proxy variables for shells and the CLI tools that read them.
    Env {
        /// bash, zsh, fish or powershell (default: from $SHELL).
        #[arg(long)]
        shell: Option<env::Shell>,
        /// Config file to read instead of the usual `config.toml`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Hits, misses, revalidations and what each tier holds.
    Stats {
        /// Print the counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop every stored response, in memory and on disk.
    Clear,
    /// Drop the stored responses of one http:// URL.
    Purge { url: String },
}

#[derive(Debug, Subcommand)]
enum SysproxyCommand {
    /// Ask the running engine to point the OS at itself (your settings are saved first).
    On,
    /// Ask the running engine to put your own settings back.
    Off,
    /// The OS's proxy settings now, beside the ones Veil saved.
    Status {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put back the settings saved by a Veil that is no longer running (after a crash).
    Restore {
        /// Do nothing, successfully, when a live Veil owns the setting or
        /// nothing is saved (what the login-time repair runs).
        #[arg(long)]
        if_stranded: bool,
        /// The Veil home to repair, instead of `VEIL_HOME` or the default.
        #[arg(long, value_name = "DIR")]
        veil_home: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UpstreamCommand {
    /// Add an upstream to config.toml: http://[USER@]HOST:PORT, https://... or socks5://...
    ///
    /// When the URL names a user, the password is asked for without echo (or
    /// read from standard input with --password-stdin) and stored in the OS
    /// keyring, never in config.toml. A running engine uses it after a restart.
    Add {
        /// A short name: the upstream's key in the keyring and in `veil status`.
        name: String,
        url: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Share of connections under weighted strategies.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Change an upstream: its name, URL or weight. The stored password is
    /// kept unless --password-stdin gives a new one; moving it to another
    /// host, port or user needs the password again.
    Edit {
        name: String,
        /// A new name (the password and the tray's choice follow it).
        #[arg(long)]
        rename: Option<String>,
        #[arg(long)]
        url: Option<String>,
        /// Read a new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        weight: Option<u32>,
    },
    /// List the configured upstreams and whether each has its password stored.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an upstream from config.toml and its password from the keyring.
    Remove { name: String },
    /// Add every proxy in a list: one URL per line (socks5://, http://, https://,
    /// optional user:password@), blank lines and # comments allowed.
    ///
    /// Each line is checked on its own: the good ones are added (named
    /// host:port), the others are listed with the reason. Passwords go to the
    /// OS keyring, never into config.toml.
    Import {
        /// The list's file, or - for standard input.
        file: PathBuf,
    },
    /// Measure an upstream proxy: connect, and fetch the check URL through it.
    Test {
        /// http://[user@]host:port, https://... or socks5://[user@]host:port.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        url: Option<String>,
        /// Test every configured upstream (a few at a time), fastest first.
        #[arg(long)]
        all: bool,
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
    /// Point the OS's proxy setting at Veil once the listener is ready; your
    /// own settings come back on exit (Ctrl-C, SIGTERM, SIGHUP).
    #[arg(long)]
    system_proxy: bool,
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
            Command::Ip { json } => ip::ip(json).await,
            Command::History { range, csv, json } => history::history(range, csv, json),
            Command::Upstream(UpstreamCommand::Test {
                url,
                all,
                check_url,
            }) => match url {
                Some(url) if !all => upstream::test(&url, check_url).await,
                _ => upstream::test_all(check_url).await,
            },
            Command::Upstream(UpstreamCommand::Import { file }) => upstream_edit::import(&file),
            Command::Upstream(UpstreamCommand::Add {
                name,
                url,
                password_stdin,
                weight,
            }) => upstream_edit::add(&name, &url, password_stdin, weight),
            Command::Upstream(UpstreamCommand::Edit {
                name,
                rename,
                url,
                password_stdin,
                weight,
            }) => upstream_edit::edit(&name, rename, url, password_stdin, weight),
            Command::Upstream(UpstreamCommand::List { json }) => upstream_edit::list(json),
            Command::Upstream(UpstreamCommand::Remove { name }) => upstream_edit::remove(&name),
            Command::Sysproxy(SysproxyCommand::On) => sysproxy::on().await,
            Command::Sysproxy(SysproxyCommand::Off) => sysproxy::off().await,
            Command::Sysproxy(SysproxyCommand::Status { json }) => sysproxy::status(json).await,
            Command::Sysproxy(SysproxyCommand::Restore {
                if_stranded,
                veil_home,
            }) => sysproxy::restore(if_stranded, veil_home),
            Command::Coverage { json } => coverage::coverage(json).await,
            Command::Leaks { json } => leaks::leaks(json).await,
            Command::Env { shell, config } => env::env(shell, config).await,
            Command::Cache(CacheCommand::Stats { json }) => cache::stats(json).await,
            Command::Cache(CacheCommand::Clear) => cache::clear().await,
            Command::Cache(CacheCommand::Purge { url }) => cache::purge(url).await,
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
