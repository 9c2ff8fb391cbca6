//! `veil env` as a shell user runs it: `eval "$(veil env)"` makes curl go
//! through the running engine, names resolve at Veil (`socks5h://`), and
//! the bypass list reaches `no_proxy` in a form curl understands.

use std::process::Command;

use tempfile::TempDir;
use veil_tests::veil_process::veil_bin;
use veil_tests::{Origin, VeilProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_veil_env_sends_curl_through_the_engine() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    // No loopback in the bypass list, so curl's no_proxy lets the loopback
    // origin go through the engine.
    std::fs::write(
        home.path().join("config.toml"),
        "[proxy]\nbypass = [\"*.corp.example\", \"10.0.0.0/8\"]\n",
    )
    .expect("config");
    let veil = VeilProcess::start(home.path(), &["--listen", "127.0.0.1:0"], &[])
        .expect("veil run starts");
    let origin = Origin::start().await;

    let env = veil.command(&["env", "--shell", "bash"]);
    assert!(env.status.success(), "{env:?}");
    let printed = String::from_utf8_lossy(&env.stdout).into_owned();
    let addr = veil.addr;
    assert!(
        printed.contains(&format!("export http_proxy='http://{addr}'")),
        "the running engine's port, not the file's default: {printed}"
    );
    assert!(
        printed.contains(&format!("export all_proxy='socks5h://{addr}'")),
        "{printed}"
    );
    assert!(
        printed.contains("export no_proxy='.corp.example,10.0.0.0/8'"),
        "{printed}"
    );

    let url = origin.url("/ip");
    let script = format!(
        "unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY; \
         eval \"$({} env --shell bash)\" && curl -sS --max-time 20 {url}",
        veil_bin().display()
    );
    let before = origin.connections();
    let home_dir = home.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .env("VEIL_HOME", &home_dir)
            .output()
            .expect("bash runs")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "127.0.0.1");
    assert!(origin.connections() > before);
    let status = veil.command(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert!(
        status["requests_total"].as_u64().unwrap_or(0) >= 1,
        "curl went through Veil: {status}"
    );

    let fish = veil.command(&["env", "--shell", "fish"]);
    assert!(
        String::from_utf8_lossy(&fish.stdout)
            .contains(&format!("set -gx https_proxy 'http://{addr}'"))
    );
    let ps = veil.command(&["env", "--shell", "powershell"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout)
            .contains(&format!("$env:HTTPS_PROXY = 'http://{addr}'"))
    );
}
