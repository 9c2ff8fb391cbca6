//! `veil env`: proxy variables for shells, for the command-line tools that
//! ignore the desktop's proxy setting (curl, git, pip, npm, Go programs...).

use std::path::PathBuf;

use veil_system::control::{self, Reply, Request};
use veil_system::env::{ProxyVars, Shell as EnvShell};
use veil_system::{Config, Paths};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

impl From<Shell> for EnvShell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => EnvShell::Posix,
            Shell::Zsh => EnvShell::Posix,
            Shell::Fish => EnvShell::Fish,
            Shell::Powershell => EnvShell::PowerShell,
        }
    }
}

pub async fn env(shell: Option<Shell>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let config = Config::load(&config.unwrap_or_else(|| paths.config_file.clone()))?;
    // A running engine may listen elsewhere than the file says (`--listen`).
    let listen = match control::request(&paths.control_socket(), &Request::Status).await {
        Ok(Reply::Status { status, .. }) => status.engine.listen,
        _ => config.proxy.listen,
    };
    let user = config.proxy.auth.as_ref().map(|a| a.username.clone());
    let vars = ProxyVars::new(listen, &config.proxy.bypass, user.as_deref());
    let shell = shell.map(EnvShell::from).unwrap_or_else(EnvShell::detect);
    print!("{}", vars.render(shell));
    if let Some(user) = user {
        eprintln!(
            "veil: the listener asks for credentials; the URLs name the user {user:?} but, so \
             that no password is printed, you add \":PASSWORD\" after it yourself"
        );
    }
    Ok(())
}
