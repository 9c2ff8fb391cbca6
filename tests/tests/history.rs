//! The traffic history: bytes through the proxy land in SQLite minute
//! buckets under the right host, old buckets go after the retention, the
//! CSV export says the same as the query, and `veil history` reads what
//! `veil run` wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veil_system::history::{self, Clock, History, HistoryRange};
use veil_tests::veil_process::veil_command;
use veil_tests::{Origin, VeilProcess, curl, eventually, output_text, proxy_url, start_engine};

const BODY: usize = 50_000;

/// `minute_utc,kind,key,bytes_up,bytes_down` rows summed per (kind, key).
/// Keys here never need quoting, so a plain split is enough.
fn csv_totals(csv: &str) -> HashMap<(String, String), (u64, u64)> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("minute_utc,kind,key,bytes_up,bytes_down"),
        "{csv}"
    );
    let mut totals = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert!(
            f[0].len() == 20 && f[0].ends_with(":00Z") && f[0].as_bytes()[10] == b'T',
            "{line}"
        );
        let e = totals
            .entry((f[1].to_string(), f[2].to_string()))
            .or_insert((0, 0));
        e.0 += f[3].parse::<u64>().expect("bytes_up");
        e.1 += f[4].parse::<u64>().expect("bytes_down");
    }
    totals
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_lands_in_minute_buckets_and_retention_deletes_it() {
    let origin = Origin::start().await;
    let engine = Arc::new(start_engine(|_| {}).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let now_ms = Arc::new(AtomicU64::new(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64,
    ));
    let clock: Clock = {
        let now_ms = now_ms.clone();
        Arc::new(move || now_ms.load(Ordering::SeqCst))
    };
    let db = Arc::new(
        History::open_with_clock(&dir.path().join(history::FILE_NAME), 30, clock)
            .expect("history opens"),
    );
    let recorder = history::spawn_recorder(db.clone(), Duration::from_millis(50), {
        let engine = engine.clone();
        move || Some(engine.stats())
    });

    let out = curl(&[
        "-x",
        &proxy_url(engine.local_addr()),
        &origin.url(&format!("/bytes/{BODY}")),
    ])
    .await;
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.body.len(), BODY);

    // Written while the engine runs, not only at the end.
    let seen = eventually(Duration::from_secs(10), || {
        db.query(HistoryRange::Hour)
            .expect("query")
            .hosts
            .iter()
            .any(|h| h.key == "127.0.0.1" && h.bytes_down >= BODY as u64)
    })
    .await;
    assert!(seen, "{:#?}", db.query(HistoryRange::Hour));
    engine.shutdown().await;
    recorder.stop().await;

    let report = db.query(HistoryRange::Hour).expect("query");
    assert_eq!(report.bucket_s, 60);
    assert_eq!(report.series.len(), 60);
    let host = report
        .hosts
        .iter()
        .find(|h| h.key == "127.0.0.1")
        .expect("host row");
    assert_eq!(host.spark.len(), 60);
    assert_eq!(
        host.spark.iter().sum::<u64>(),
        host.bytes_up + host.bytes_down
    );
    let down: u64 = report.series.iter().map(|p| p.bytes_down).sum();
    assert!(down >= BODY as u64, "{:?}", report.series);
    // Samples do not count a byte twice: the series holds what the engine
    // counted, no more.
    let stats = engine.stats();
    assert_eq!(down, stats.bytes_down);
    assert_eq!(
        report.series.iter().map(|p| p.bytes_up).sum::<u64>(),
        stats.bytes_up
    );

    let day = db.query(HistoryRange::Day).expect("day");
    assert_eq!((day.bucket_s, day.series.len()), (900, 96));
    assert_eq!(day.hosts[0].bytes_down, host.bytes_down);

    let mut csv = Vec::new();
    let rows = db
        .export_csv(HistoryRange::Hour, &mut csv)
        .expect("csv export");
    let csv = String::from_utf8(csv).expect("utf8");
    assert_eq!(csv.lines().count(), rows + 1);
    let totals = csv_totals(&csv);
    assert_eq!(
        totals.get(&("host".into(), "127.0.0.1".into())),
        Some(&(host.bytes_up, host.bytes_down)),
        "{csv}"
    );
    assert_eq!(
        totals.get(&("total".into(), String::new())).map(|t| t.1),
        Some(down),
        "{csv}"
    );

    // 31 days later the 30-day retention deletes every bucket.
    now_ms.fetch_add(31 * 86_400_000, Ordering::SeqCst);
    assert!(db.prune().expect("prune") >= 2);
    let mut csv = Vec::new();
    assert_eq!(
        db.export_csv(HistoryRange::Week, &mut csv)
            .expect("csv export"),
        0
    );
    assert!(db.query(HistoryRange::Week).expect("week").hosts.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn veil_history_reads_what_veil_run_recorded() {
    let origin = Origin::start().await;
    let home = tempfile::tempdir().expect("home");
    let home = home.path().to_path_buf();

    let out = {
        let home = home.clone();
        tokio::task::spawn_blocking(move || veil_command(&home, &["history"]))
            .await
            .expect("veil history")
    };
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no traffic history yet"),
        "{}",
        output_text(&out)
    );

    let mut veil = {
        let home = home.clone();
        tokio::task::spawn_blocking(move || {
            VeilProcess::start(&home, &["--listen", "127.0.0.1:0"], &[])
        })
        .await
        .expect("start task")
        .expect("veil run starts")
    };
    // Two requests half a second apart on one kept-alive connection, so the
    // lookup of the client app (curl) finishes while it is open.
    let url = origin.url(&format!("/bytes/{BODY}"));
    let out = curl(&["-x", &proxy_url(veil.addr), "--rate", "2/s", &url, &url]).await;
    assert_eq!(out.status, 200, "{}", out.stderr);
    // SIGTERM: the recorder writes its last sample before veil exits.
    let stopped = tokio::task::spawn_blocking(move || veil.terminate())
        .await
        .expect("terminate");
    assert!(stopped, "veil run stops cleanly");

    let run = |args: Vec<String>| {
        let home = home.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            veil_command(&home, &args)
        })
    };
    let out = run(vec!["history".into(), "--json".into()])
        .await
        .expect("veil history");
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["range"], "hour");
    let host = report["hosts"]
        .as_array()
        .and_then(|hosts| hosts.iter().find(|h| h["key"] == "127.0.0.1"))
        .unwrap_or_else(|| panic!("no host row: {report}"));
    let host_down = host["bytes_down"].as_u64().expect("bytes_down");
    assert!(host_down >= 2 * BODY as u64, "{report}");
    let app = report["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["key"] == "curl"))
        .unwrap_or_else(|| panic!("no row for the app curl: {report}"));
    assert!(
        app["bytes_down"].as_u64().expect("bytes_down") >= 2 * BODY as u64,
        "{report}"
    );

    let csv_path = home.join("out.csv");
    let out = run(vec![
        "history".into(),
        "--range".into(),
        "day".into(),
        "--csv".into(),
        csv_path.display().to_string(),
    ])
    .await
    .expect("veil history --csv");
    assert!(out.status.success(), "{}", output_text(&out));
    let csv = std::fs::read_to_string(&csv_path).expect("csv written");
    let totals = csv_totals(&csv);
    assert_eq!(
        totals
            .get(&("host".into(), "127.0.0.1".into()))
            .map(|t| t.1),
        Some(host_down),
        "{csv}"
    );
    assert!(
        totals
            .get(&("app".into(), "curl".into()))
            .is_some_and(|t| t.1 >= 2 * BODY as u64),
        "the app's rows in the CSV: {csv}"
    );

    let out = run(vec!["history".into()]).await.expect("veil history");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        text.contains("last hour") && text.contains("127.0.0.1"),
        "{text}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("data").join(history::FILE_NAME))
            .expect("db file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the history is private");
    }
}

/// `retention_days = 0`: `veil history` says the history is off, and a
/// running `veil run` writes nothing (its buckets table stays empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_off_records_nothing_and_says_so() {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        "[history]\nretention_days = 0\n",
    )
    .expect("config");
    let veil = VeilProcess::start(home.path(), &["--listen", "127.0.0.1:0"], &[])
        .expect("veil run starts");
    let origin = Origin::start().await;
    let out = curl(&["-x", &proxy_url(veil.addr), &origin.url("/bytes/100")]).await;
    assert_eq!(out.status, 200, "{}", out.stderr);
    let out = veil.command(&["history"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("traffic history is off"),
        "{}",
        output_text(&out)
    );
    // SIGTERM: the recorder's last write runs, and still writes nothing.
    let mut veil = veil;
    assert!(veil.terminate(), "veil run stops");
    let db = home.path().join("data").join(history::FILE_NAME);
    if let Some(h) = History::open_read_only(&db).expect("open") {
        let report = h.query(HistoryRange::Hour).expect("query");
        assert!(
            report.hosts.is_empty() && report.apps.is_empty(),
            "{report:?}"
        );
    }
}
