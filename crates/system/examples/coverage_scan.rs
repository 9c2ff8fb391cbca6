//! Times the coverage scan and one attribution lookup on a machine with at
//! least 500 extra sockets: this process opens 250 loopback TCP connections
//! (both ends: 500 sockets), then scans repeatedly.
//!
//! `cargo run --release -p veil-system --example coverage_scan [PAIRS] [RUNS]`

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use veil_engine::ClientLookup;
use veil_system::coverage;
use veil_system::sockets::{self, SocketTable};

fn stats(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.2} ms, median {:.2} ms, max {:.2} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    )
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(250);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let listen = listener.local_addr()?;
    let mut held = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs {
        held.push(TcpStream::connect(listen)?);
        held.push(listener.accept()?.0);
    }
    let table = sockets::table()?;
    let processes = std::fs::read_dir("/proc")?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    println!(
        "{} sockets in the table ({} opened here), {processes} processes",
        table.len(),
        held.len()
    );

    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(coverage::scan(listen)?);
        times.push(t.elapsed());
    }
    let report = last.expect("at least one run");
    println!("coverage scan: {} ({runs} runs)", stats(times));
    println!("  {}", report.summary());

    // Attribution: a client this process holds, cold (a new SocketTable:
    // a walk through every process) and warm (the recent-client list).
    let client = held[0].local_addr()?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let table = SocketTable::new();
        let t = Instant::now();
        let app = table.lookup(listen, &[client]);
        cold.push(t.elapsed());
        assert!(app[0].is_some(), "the lookup finds this process");
        let t = Instant::now();
        table.lookup(listen, &[client]);
        warm.push(t.elapsed());
    }
    println!("attribution lookup, cold: {}", stats(cold));
    println!("attribution lookup, warm: {}", stats(warm));
    Ok(())
}
