//! Systems without a socket-table adapter: reading the table says so, and
//! every client stays unknown.

use std::io;

use veil_engine::ClientApp;

use super::{Socket, Want};

pub(super) fn read_table(_: Want, _: &mut Vec<Socket>) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "not available on this system ({}): Veil reads the socket table on Linux, Windows \
             and macOS only",
            std::env::consts::OS
        ),
    ))
}

pub(super) fn resolve(_: &mut [Socket], _: &[u32]) {}

pub(super) fn process(_: u32) -> Option<ClientApp> {
    None
}
