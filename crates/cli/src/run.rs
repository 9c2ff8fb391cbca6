use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use veil_engine::{Engine, EngineHandle, Mode};
use veil_system::control::{ControlServer, Controller, Reply, Request, StatusReport};
use veil_system::{Config, Paths};

use crate::RunArgs;

struct CliController {
    engine: Arc<EngineHandle>,
}

impl Controller for CliController {
    fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Status => Reply::Status {
                ok: true,
                status: Box::new(StatusReport::new(self.engine.stats())),
            },
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    paths.create_dirs()?;
    let _log_guard = crate::logging::init(&paths.log_dir);

    let config_path = args.config.unwrap_or_else(|| paths.config_file.clone());
    let config = Config::load(&config_path)?;
    let mut engine_config = config.engine_config()?;
    if let Some(listen) = args.listen {
        engine_config.listen = listen;
    }
    if !args.upstreams.is_empty() {
        engine_config.upstreams = crate::upstream::specs_from_flags(&args.upstreams)?;
        engine_config.mode = Mode::Proxy;
    }
    if let Some(mode) = args.mode {
        engine_config.mode = mode;
    }
    if let Some(strategy) = args.strategy {
        engine_config.strategy = strategy;
    }

    // Claim the control socket before the port, so a second `veil run` fails
    // with a clear message instead of racing for the listener.
    let control = ControlServer::bind(&paths.control_socket()).await?;
    let engine = Arc::new(Engine::start(engine_config).await?);
    let listen = engine.local_addr();
    let stop = Arc::new(tokio::sync::Notify::new());
    let control_task = tokio::spawn(control.serve(
        Arc::new(CliController {
            engine: engine.clone(),
        }),
        {
            let stop = stop.clone();
            async move { stop.notified().await }
        },
    ));

    println!("veil: listening on {listen}");
    std::io::stdout().flush().context("writing to stdout")?;

    let signal = wait_for_signal().await?;
    tracing::info!("{signal}: shutting down");
    stop.notify_one();
    engine.shutdown().await;
    let _ = control_task.await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok("Ctrl-C")
}
