//! `veil history`: traffic per app and per host from the history database,
//! read directly (read-only), whether or not an engine runs.

use std::path::PathBuf;
use veil_system::units::bytes;

use anyhow::Context;
use veil_system::Paths;
use veil_system::history::{self, History, HistoryRange, HistoryRow};

pub fn history(range: HistoryRange, csv: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    if veil_system::Config::load(&paths.config_file).is_ok_and(|c| c.history.retention_days == 0) {
        println!(
            "the traffic history is off: nothing is recorded ([history] retention_days = 0 in \
             {}, or the app's Settings)",
            paths.config_file.display()
        );
        return Ok(());
    }
    let path = paths.data_dir.join(history::FILE_NAME);
    let Some(db) = History::open_read_only(&path)? else {
        anyhow::bail!(
            "no traffic history yet ({} does not exist); it is written while `veil run` or \
             the Veil app runs",
            path.display()
        );
    };
    if let Some(file) = csv {
        let out = std::fs::File::create(&file)
            .with_context(|| format!("cannot create {}", file.display()))?;
        let rows = db.export_csv(range, std::io::BufWriter::new(out))?;
        eprintln!(
            "veil: {rows} minute buckets of the last {range} written to {}",
            file.display()
        );
        return Ok(());
    }
    let report = db.query(range)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let up: u64 = report.series.iter().map(|p| p.bytes_up).sum();
    let down: u64 = report.series.iter().map(|p| p.bytes_down).sum();
    println!(
        "last {range}: {} up, {} down (buckets of {} s)",
        bytes(up),
        bytes(down),
        report.bucket_s
    );
    let spark: Vec<u64> = report
        .series
        .iter()
        .map(|p| p.bytes_up + p.bytes_down)
        .collect();
    println!("  {}", sparkline(&spark));
    for (title, rows) in [("apps", &report.apps), ("hosts", &report.hosts)] {
        if rows.is_empty() {
            continue;
        }
        println!("{title}:");
        for row in rows.iter() {
            print_row(row);
        }
    }
    Ok(())
}

fn print_row(row: &HistoryRow) {
    println!(
        "  {:<32} {:>10} up {:>10} down  {}",
        row.key,
        bytes(row.bytes_up),
        bytes(row.bytes_down),
        sparkline(&row.spark)
    );
}

/// Block characters scaled to the largest value; a blank for nothing.
fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                BARS[((v as u128 * 7) / max as u128) as usize]
            }
        })
        .collect()
}
