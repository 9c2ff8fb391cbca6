//! SOCKS5 (RFC 1928, RFC 1929) on the mixed port, through fast-socks5's
//! server protocol: the CONNECT command with IPv4, IPv6 and domain-name
//! targets; no authentication, or username/password when inbound credentials
//! are set.

use std::net::SocketAddr;
use std::sync::Arc;

use fast_socks5::server::{Socks5ServerProtocol, SocksServerError};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::net::TcpStream;

use super::ConnGuard;
use super::relay::relay;
use crate::Target;
use crate::engine::Shared;
use crate::stats::Counted;

type Client = Counted<TcpStream>;

pub(super) async fn serve(shared: Arc<Shared>, guard: Arc<ConnGuard>, client: Client) {
    let timeout = shared.config.limits.handshake_timeout;
    let handshake = async {
        let proto = match &shared.config.auth {
            Some(creds) => {
                let ip = guard.throttled_ip;
                Socks5ServerProtocol::accept_password_auth(client, |user, pass| {
                    let Some(ip) = ip else {
                        return creds.matches(&user, &pass);
                    };
                    // Locked out: refused without looking at the guess.
                    if shared.logins.check(ip).is_err() {
                        return false;
                    }
                    let ok = creds.matches(&user, &pass);
                    if ok {
                        shared.logins.succeeded(ip);
                    } else {
                        shared.logins.failed(ip);
                    }
                    ok
                })
                .await?
                .0
            }
            None => Socks5ServerProtocol::accept_no_auth(client).await?,
        };
        proto.read_command().await
    };
    let (proto, command, target) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(parts)) => parts,
        Ok(Err(e)) => {
            shared.stats.count_rejected();
            // Never format the error's payload: it may hold what the client sent.
            tracing::debug!("SOCKS5 handshake refused: {}", describe(&e));
            return;
        }
        Err(_) => {
            tracing::debug!("SOCKS5 client too slow to finish its handshake");
            return;
        }
    };
    if let Some(why) = guard.refusal.get() {
        tracing::debug!("SOCKS5 client refused: {why}");
        let _ = proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
        return;
    }
    if command != Socks5Command::TCPConnect {
        shared.stats.count_rejected();
        let _ = proto.reply_error(&ReplyError::CommandNotSupported).await;
        return;
    }
    let target = match target {
        TargetAddr::Ip(addr) => match Target::from_addr(addr) {
            Ok(t) => t,
            Err(e) => {
                shared.stats.count_rejected();
                tracing::debug!("SOCKS5 target refused: {e}");
                let _ = proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
                return;
            }
        },
        TargetAddr::Domain(host, port) => match Target::new(&host, port) {
            Ok(t) => t,
            Err(e) => {
                shared.stats.count_rejected();
                tracing::debug!("SOCKS5 target refused: {e}");
                let _ = proto
                    .reply_error(&ReplyError::AddressTypeNotSupported)
                    .await;
                return;
            }
        },
    };
    guard.routed("socks5", &target);
    if guard.wants_host_loopback(&target) {
        shared.stats.count_rejected();
        tracing::debug!("{}", super::HOST_ITSELF);
        let _ = proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
        return;
    }
    let opened = match shared.outbound.open(&target).await {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!("connect failed: {e}");
            let _ = proto.reply_error(&e.socks_reply()).await;
            return;
        }
    };
    guard.carried_by(opened.lease.as_ref());
    let bound = opened
        .stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let client = match proto.reply_success(bound).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("SOCKS5 client went away: {}", describe(&e));
            return;
        }
    };
    let host = shared.stats.host(&target.host(), false);
    let tunnel = relay(client, bytes::Bytes::new(), opened, host, &shared.fds);
    guard.unless_idle(tunnel).await;
}

/// A short description of a handshake failure that leaves out anything the
/// client sent (fast-socks5's errors can carry it).
fn describe(e: &SocksServerError) -> &'static str {
    match e {
        SocksServerError::AuthenticationRejected => "wrong username or password",
        SocksServerError::AuthMethodUnacceptable(_) => "no acceptable authentication method",
        SocksServerError::UnsupportedSocksVersion(_) => "not SOCKS version 5",
        SocksServerError::UnknownCommand(_) => "unknown command",
        SocksServerError::EmptyUsername | SocksServerError::EmptyPassword => "empty credentials",
        _ => "malformed or interrupted handshake",
    }
}
