//! Logs for `veil run` and the app, through `tracing`.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Daily log files kept; older ones are deleted when a log starts or rolls
/// over, so an app left running for months does not fill the disk.
pub const KEEP_LOG_FILES: usize = 14;

/// Logs to stderr and to a daily file `log_dir/NAME.DATE` (the last
/// [`KEEP_LOG_FILES`] are kept). `RUST_LOG` picks the level (default `info`).
///
/// The SOCKS5 library logs the bytes of usernames and passwords at debug
/// level; its logs are switched off whatever `RUST_LOG` says, so no setting
/// can put a password in a log.
/// Log lines queued for the writer thread at most.
const LOG_QUEUE_LINES: usize = 4096;

pub fn init(log_dir: &Path, name: &str) -> Option<WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info"))
            .add_directive("fast_socks5=off".parse().expect("static directive"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter());
    let (file, guard) = match std::fs::create_dir_all(log_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| appender(log_dir, name).map_err(|e| e.to_string()))
    {
        Ok(appender) => {
            // The default queue holds 128,000 lines whose slots are all
            // written at start: 4 MiB of resident memory for a log that
            // sees a few lines a minute. Past this many, lines are dropped
            // rather than stalling the engine.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .lossy(true)
                .finish(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            (Some(layer), Some(guard))
        }
        Err(e) => {
            eprintln!("veil: logging to stderr only: {e}");
            (None, None)
        }
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    guard
}

/// The daily file appender, pruning all but the newest [`KEEP_LOG_FILES`]
/// files of this name.
fn appender(
    log_dir: &Path,
    name: &str,
) -> Result<tracing_appender::rolling::RollingFileAppender, tracing_appender::rolling::InitError> {
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .max_log_files(KEEP_LOG_FILES)
        .build(log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_daily_logs_are_pruned_and_other_files_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        for day in 1..=20 {
            std::fs::write(dir.path().join(format!("veil.log.2026-01-{day:02}")), "x")
                .expect("old log");
        }
        std::fs::write(dir.path().join("veil-app.log.2026-01-01"), "the app's").expect("app log");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("other file");
        drop(appender(dir.path(), "veil.log").expect("appender"));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let ours = names.iter().filter(|n| n.starts_with("veil.log.")).count();
        assert!(ours <= KEEP_LOG_FILES, "{names:?}");
        assert!(
            names.contains(&"veil-app.log.2026-01-01".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&"notes.txt".to_owned()), "{names:?}");
    }
}
