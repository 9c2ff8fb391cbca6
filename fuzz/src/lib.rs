//! What the fuzz targets share: a running engine to send bytes to.
//!
//! The inbound targets (`inbound_socks`, `http_head`) talk to a real engine
//! over loopback TCP, so the bytes take the path a client's take: the first
//! byte sniffed, then fast-socks5's handshake or hyper's HTTP/1.1 parser and
//! Veil's handlers behind them. Nothing leaves the machine: the engine is in
//! mode `proxy` with an empty bypass list and no rules, and its only
//! upstream is a sink in this process that accepts and hangs up, so every
//! request ends in Veil's own answer (a 502, a refusal, a SOCKS error).
//!
//! The runtime is single-threaded and driven by the fuzz thread itself, so
//! the engine's tasks run only while an input is being fed: coverage belongs
//! to that input.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use veil_engine::{
    Credentials, Engine, EngineConfig, EngineHandle, Limits, Mode, ProxyUrl, UpstreamSpec,
};

/// The inbound user of the engine that asks for credentials.
pub const USER: &str = "fuzzuser";
pub const PASSWORD: &str = "fuzzpass";

/// Longest an input may take before it counts as a hang (the engine gets
/// EOF right after the input, so it never has a reason to wait).
const HANG: Duration = Duration::from_secs(10);

pub struct Harness {
    pub rt: Runtime,
    /// Without inbound credentials.
    pub open: EngineHandle,
    /// With `USER`/`PASSWORD` (SOCKS5 user/password, HTTP Basic).
    pub auth: EngineHandle,
}

/// The engines, started on first use and kept for the process's life.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (open, auth) = rt.block_on(async {
            let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
            let sink_addr = sink.local_addr().expect("sink address");
            tokio::spawn(async move {
                // Accept and hang up: an upstream that is there but never
                // answers anything.
                while let Ok((stream, _)) = sink.accept().await {
                    drop(stream);
                }
            });
            let open = Engine::start(config(sink_addr, None))
                .await
                .expect("engine without credentials");
            let auth = Engine::start(config(
                sink_addr,
                Some(Credentials::new(USER.to_owned(), PASSWORD.to_owned())),
            ))
            .await
            .expect("engine with credentials");
            (open, auth)
        });
        Harness { rt, open, auth }
    })
}

fn config(sink: SocketAddr, auth: Option<Credentials>) -> EngineConfig {
    let url: ProxyUrl = format!("http://{sink}").parse().expect("sink URL");
    EngineConfig {
        listen: "127.0.0.1:0".parse().expect("listen address"),
        mode: Mode::Proxy,
        auth,
        limits: Limits {
            handshake_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        upstreams: vec![UpstreamSpec::new("sink", url)],
        bypass: Vec::new(),
        rules: Vec::new(),
        ..EngineConfig::default()
    }
}

/// Sends `input` to `engine`, closes the sending side and returns all the
/// engine wrote back before it closed. Panics on a hang.
pub fn exchange(h: &Harness, engine: &EngineHandle, input: &[u8]) -> Vec<u8> {
    let addr = engine.local_addr();
    h.rt.block_on(async {
        let talk = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect to engine");
            let (mut read, mut write) = stream.split();
            let send = async {
                let _ = write.write_all(input).await;
                let _ = write.shutdown().await;
            };
            let mut out = Vec::new();
            let receive = read.read_to_end(&mut out);
            let (_, _) = tokio::join!(send, receive);
            out
        };
        match tokio::time::timeout(HANG, talk).await {
            Ok(out) => out,
            Err(_) => panic!("the engine kept the connection open {HANG:?} after the input ended"),
        }
    })
}

/// Checks that `out` starts with an HTTP response from Veil that refuses or
/// fails (nothing can succeed: the only upstream never answers), and returns
/// its status. Only the first response is checked: after a `HEAD`, a body
/// length does not say where the next one starts.
pub fn check_http_response(out: &[u8]) -> Option<u16> {
    if out.is_empty() {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(out) {
        Ok(httparse::Status::Complete(_)) => {}
        other => panic!(
            "the engine wrote something that is not an HTTP response: {other:?} in {:?}",
            String::from_utf8_lossy(out)
        ),
    }
    let code = resp.code.expect("a complete response has a status");
    assert!(
        !(200..300).contains(&code),
        "a request succeeded although the only upstream never answers: {code}"
    );
    Some(code)
}
