//! A network namespace joined to this one by a veth pair: a test "internet"
//! host whose address is not this machine's, so traffic to it truly leaves
//! loopback. Needs root (`ip netns add`); the name is unique per test run,
//! and the namespace and its link are deleted when dropped.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// One namespace with a /30 between it and this one.
pub struct Netns {
    pub name: String,
    host_link: String,
    /// This side's address on the veth pair.
    pub host_ip: Ipv4Addr,
    /// The namespace's address: the remote "internet" host.
    pub peer_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates the namespace, the veth pair and the addresses. An error
    /// says what failed (usually: not root).
    pub fn create() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // 10.231.0.0/16 cut into /30s, one per (process, namespace).
        let slot = (pid.wrapping_mul(8).wrapping_add(n)) % 16384;
        let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + slot * 4;
        let ns = Self {
            name: format!("veiltest-{pid}-{n}"),
            host_link: format!("vt{}h{n}", pid % 100_000),
            host_ip: Ipv4Addr::from(base + 1),
            peer_ip: Ipv4Addr::from(base + 2),
        };
        let peer_link = format!("vt{}p{n}", pid % 100_000);
        ip(&["netns", "add", &ns.name]).map_err(|e| {
            format!("cannot create a network namespace (these tests need root): {e}")
        })?;
        // From here on, Drop cleans up whatever was made.
        let host = format!("{}/30", ns.host_ip);
        let peer = format!("{}/30", ns.peer_ip);
        ip(&[
            "link",
            "add",
            &ns.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer_link,
        ])?;
        ip(&["link", "set", &peer_link, "netns", &ns.name])?;
        ip(&["addr", "add", &host, "dev", &ns.host_link])?;
        ip(&["link", "set", &ns.host_link, "up"])?;
        ip(&["-n", &ns.name, "addr", "add", &peer, "dev", &peer_link])?;
        ip(&["-n", &ns.name, "link", "set", &peer_link, "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip netns exec NAME program args...`, with stdin and stdout piped.
    pub fn spawn(&self, program: &str, args: &[&str]) -> std::io::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it
        // ours; the explicit delete covers a half-made setup.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}
