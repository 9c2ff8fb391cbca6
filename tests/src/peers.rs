//! Real upstream proxies and the small servers around them, for the upstream
//! tests: Squid and tinyproxy (HTTP), microsocks (SOCKS5), a TLS front that
//! turns any of them into an `https://` proxy with a test CA, a TCP front that
//! counts the connections a proxy receives, and a DNS server that records
//! every name it is asked for.
//!
//! Each proxy is a child process on a free loopback port with its own temp
//! dir, started and waited for (its port accepts) within 15 seconds, and
//! killed when dropped. Each makes its outgoing connections from a loopback
//! address of its own (127.0.0.2, .3, ...), so an origin that echoes the
//! caller's IP shows which proxy a request left through.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use veil_engine::upstream::UpstreamSpec;

/// How long a peer gets to start accepting connections.
const START_WITHIN: Duration = Duration::from_secs(15);

/// A free port on 127.0.0.1. Another process could take it before the peer
/// binds it; on a test machine that race is rare enough.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("free port addr").port()
}

/// An upstream spec for the engine, with the password kept out of the URL as
/// the engine requires.
pub fn spec(name: &str, url: &str, password: Option<&str>) -> UpstreamSpec {
    let mut spec = UpstreamSpec::new(name, url.parse().expect("upstream URL parses"));
    spec.password = password.map(str::to_owned);
    spec
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                == Some("0")
        })
}

/// The uid and gid of a system account, read from /etc/passwd.
fn account(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .unwrap_or_else(|| panic!("no {name:?} account in /etc/passwd"))
}

/// A temp dir the peer can write to even after it drops root to `owner`.
fn peer_dir(owner: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("peer temp dir");
    if is_root() {
        let (uid, gid) = account(owner);
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown peer dir");
    }
    dir
}

/// A peer process with its temp dir; killed and waited for on drop.
struct Daemon {
    name: &'static str,
    child: Option<Child>,
    dir: TempDir,
}

impl Daemon {
    /// Spawns `argv` with output going to files in `dir`, and waits until
    /// 127.0.0.1:`port` accepts a connection.
    async fn spawn(name: &'static str, dir: TempDir, argv: &[&str], port: u16) -> Self {
        let out = File::create(dir.path().join("stdout")).expect("peer stdout file");
        let err = File::create(dir.path().join("stderr")).expect("peer stderr file");
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts ({e}); install it with scripts/bootstrap"));
        let mut daemon = Self {
            name,
            child: Some(child),
            dir,
        };
        let deadline = tokio::time::Instant::now() + START_WITHIN;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return daemon;
            }
            if let Some(child) = daemon.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{name} exited ({status}) before listening: {}",
                    daemon.logs()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{name} is not listening on port {port}: {}", daemon.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the peer printed, for a failure message.
    fn logs(&self) -> String {
        ["stdout", "stderr", "cache.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Squid as an HTTP upstream.
#[derive(Debug)]
pub struct Squid {
    pub port: u16,
    daemon: Daemon,
}

impl Squid {
    /// Squid on a free port, connecting out from `outgoing`.
    pub async fn start(outgoing: Ipv4Addr) -> Self {
        let port = free_port();
        let dir = peer_dir("proxy");
        let d = dir.path().display();
        let user = if is_root() {
            "cache_effective_user proxy\ncache_effective_group proxy\n"
        } else {
            ""
        };
        // No "deny CONNECT !SSL_ports": the tests tunnel to the origin's port.
        let conf = format!(
            "http_port 127.0.0.1:{port}
{user}pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log none
cache_store_log none
netdb_filename none
coredump_dir {d}
pinger_enable off
cache deny all
cache_mem 8 MB
shutdown_lifetime 0 seconds
tcp_outgoing_address {outgoing}
http_access allow localhost
http_access deny all
"
        );
        let conf_path = dir.path().join("squid.conf");
        std::fs::write(&conf_path, conf).expect("write squid.conf");
        let conf_path = conf_path.display().to_string();
        let daemon = Daemon::spawn("squid", dir, &["squid", "-N", "-f", &conf_path], port).await;
        Self { port, daemon }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// tinyproxy as an HTTP upstream, optionally with Basic authentication.
#[derive(Debug)]
pub struct Tinyproxy {
    pub port: u16,
    daemon: Daemon,
}

impl Tinyproxy {
    /// tinyproxy on a free port, connecting out from `bind`. Without any
    /// `ConnectPort` line it tunnels to every port.
    pub async fn start(bind: Ipv4Addr, basic_auth: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let dir = peer_dir("nobody");
        let d = dir.path().display();
        let user = if is_root() {
            "User nobody\nGroup nogroup\n"
        } else {
            ""
        };
        let auth = basic_auth
            .map(|(u, p)| format!("BasicAuth {u} {p}\n"))
            .unwrap_or_default();
        let conf = format!(
            "{user}Port {port}
Listen 127.0.0.1
Bind {bind}
Timeout 600
MaxClients 100
LogLevel Error
PidFile \"{d}/tinyproxy.pid\"
Allow 127.0.0.1
{auth}"
        );
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let conf_path = conf_path.display().to_string();
        let daemon = Daemon::spawn(
            "tinyproxy",
            dir,
            &["tinyproxy", "-d", "-c", &conf_path],
            port,
        )
        .await;
        Self { port, daemon }
    }

    /// `http://[user@]127.0.0.1:PORT`, the user being the one of `basic_auth`.
    pub fn url(&self, user: Option<&str>) -> String {
        match user {
            Some(u) => format!("http://{u}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// microsocks as a SOCKS5 upstream, optionally with username/password.
#[derive(Debug)]
pub struct Microsocks {
    pub port: u16,
    user: Option<String>,
    daemon: Daemon,
}

impl Microsocks {
    /// microsocks on a free port, connecting out from `bind`.
    pub async fn start(bind: Ipv4Addr, auth: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let port_arg = port.to_string();
        let bind_arg = bind.to_string();
        let mut argv = vec![
            "microsocks",
            "-i",
            "127.0.0.1",
            "-p",
            &port_arg,
            "-b",
            &bind_arg,
        ];
        if let Some((user, pass)) = auth {
            argv.extend(["-u", user, "-P", pass]);
        }
        let daemon = Daemon::spawn("microsocks", peer_dir("root"), &argv, port).await;
        Self {
            port,
            user: auth.map(|(u, _)| u.to_owned()),
            daemon,
        }
    }

    /// `socks5://[user@]127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.user {
            Some(u) => format!("socks5://{u}@127.0.0.1:{}", self.port),
            None => format!("socks5://127.0.0.1:{}", self.port),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// Accepts on 127.0.0.1:0 and hands each connection to `serve`, counting
/// them; stops when dropped.
fn accept_loop<F, Fut>(listener: TcpListener, serve: F) -> (Arc<AtomicU64>, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (count, task)
}

/// A plain TCP front that passes every connection on to `to` and counts
/// them: it shows how often the engine knocks on an upstream's door.
#[derive(Debug)]
pub struct CountingFront {
    pub addr: SocketAddr,
    count: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CountingFront {
    pub async fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("front binds");
        let addr = listener.local_addr().expect("front addr");
        let (count, task) = accept_loop(listener, move |mut client| async move {
            if let Ok(mut upstream) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        Self { addr, count, task }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for CountingFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS-terminating front with a certificate from a fresh test CA: each
/// decrypted connection is passed on to a plain proxy, which makes that
/// proxy an `https://` upstream.
#[derive(Debug)]
pub struct TlsFront {
    pub addr: SocketAddr,
    /// The test CA's certificate (PEM), for the upstream's `ca_file`.
    pub ca_file: PathBuf,
    _dir: TempDir,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// A front on 127.0.0.1:0 whose certificate names `127.0.0.1` and
    /// `localhost`, passing connections on to `to`.
    pub async fn start(to: SocketAddr) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Veil test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "Veil test proxy");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let dir = tempfile::tempdir().expect("TLS front temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write ca.pem");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("TLS front binds");
        let addr = listener.local_addr().expect("TLS front addr");
        let (_, task) = accept_loop(listener, move |client| {
            let acceptor = acceptor.clone();
            async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                if let Ok(mut upstream) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            }
        });
        Self {
            addr,
            ca_file,
            _dir: dir,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A DNS server (UDP) that answers `A 127.0.0.1` for every name, with no
/// address for other types, and records each name it was asked about: the
/// witness that the engine looked a name up, or did not.
#[derive(Debug)]
pub struct RecordingDns {
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl RecordingDns {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("DNS binds");
        let addr = socket.local_addr().expect("DNS addr");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(answer) = answer(&query, &seen) else {
                    continue;
                };
                let _ = socket.send_to(&answer, from).await;
            }
        });
        Self {
            addr,
            queries,
            task,
        }
    }

    /// Every name asked about so far (lower case, no trailing dot), one
    /// entry per question, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn answer(query: &Message, seen: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    for q in &query.queries {
        let name = q.name().to_ascii();
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.trim_end_matches('.').to_ascii_lowercase());
        reply.add_query(q.clone());
        if q.query_type() == RecordType::A {
            reply.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            ));
        }
    }
    reply.to_vec().ok()
}

impl Drop for RecordingDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP server on 127.0.0.1 that accepts and never speaks, holding every
/// connection open: a tunnel to it ends only when the proxy ends it. Stops
/// when dropped.
pub struct Silent {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
