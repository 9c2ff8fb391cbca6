//! `veil upstream add|edit|list|remove|import`: edit the `[[upstreams.server]]`
//! list in `config.toml` (comments and formatting kept) and keep each
//! upstream's password in the OS keyring, never in the file or on the command
//! line; the checks and the writing are `veil_system::upstream_edit`'s, which
//! the window's Upstreams page uses too.
//!
//! A running engine keeps the config it started with; it uses the change
//! after a restart.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use serde::Serialize;
use veil_engine::ProxyUrl;
use veil_system::secrets::{self, SecretKey};
use veil_system::upstream_edit::{self as edit, UpstreamChange};
use veil_system::upstream_import::OsKeyring;
use veil_system::{Config, ConfigFile, Paths};

pub fn add(name: &str, url: &str, password_stdin: bool, weight: u32) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let parsed: ProxyUrl = url.parse()?;
    let password = match &parsed.username {
        Some(user) => Some(read_password(user, &parsed, password_stdin)?),
        None if password_stdin => bail!(
            "{parsed} names no user, so there is nothing to log in with; put the user in the URL \
             (scheme://USER@host:port)"
        ),
        None => None,
    };
    let change = UpstreamChange {
        original_name: None,
        name: name.to_owned(),
        url: url.to_owned(),
        password,
        weight,
    };
    let saved = edit::save(&paths.config_file, &change, &OsKeyring)?;
    println!(
        "added upstream {name:?} ({}) to {}",
        saved.url,
        paths.config_file.display()
    );
    if saved.password_stored {
        println!("its password is in the OS keyring (service \"veil\", entry {name:?})");
    }
    println!("a running engine uses it after a restart");
    Ok(())
}

/// `veil upstream edit NAME`: what is not given stays as it is.
pub fn edit(
    name: &str,
    rename: Option<String>,
    url: Option<String>,
    password_stdin: bool,
    weight: Option<u32>,
) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let config = Config::load(&paths.config_file)?;
    let Some(current) = config.upstreams.server.iter().find(|s| s.name == name) else {
        bail!(
            "no upstream named {name:?} in {}",
            paths.config_file.display()
        );
    };
    let url = url.unwrap_or_else(|| current.url.clone());
    let parsed: ProxyUrl = url.parse()?;
    let password = match (&parsed.username, password_stdin) {
        (Some(user), true) => Some(read_password(user, &parsed, true)?),
        (None, true) => bail!("{parsed} names no user, so a password has nothing to log in with"),
        (_, false) => None,
    };
    let new_name = rename.unwrap_or_else(|| name.to_owned());
    let change = UpstreamChange {
        original_name: Some(name.to_owned()),
        name: new_name.clone(),
        url,
        password,
        weight: weight.unwrap_or(current.weight),
    };
    let saved = edit::save(&paths.config_file, &change, &OsKeyring)?;
    println!(
        "upstream {new_name:?} is now {} (weight {}) in {}",
        saved.url,
        change.weight,
        paths.config_file.display()
    );
    println!("a running engine uses it after a restart");
    Ok(())
}

fn read_password(user: &str, url: &ProxyUrl, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!(
            "password for {user} at {}:{}: ",
            url.host, url.port
        ))
        .context("reading the password")?
    } else {
        bail!(
            "{url} names the user {user:?}: give its password with --password-stdin, or run \
             this in a terminal to be asked (passwords are never taken as arguments)"
        );
    };
    if password.is_empty() {
        bail!("the password is empty; nothing was added");
    }
    Ok(password)
}

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    url: String,
    weight: u32,
    /// `keyring`, `keyring (missing)`, `env VAR`, `none needed`, or why the
    /// keyring could not be asked.
    password: String,
}

pub fn list(json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let config = Config::load(&paths.config_file)?;
    let listed: Vec<Listed> = config
        .upstreams
        .server
        .iter()
        .map(|s| {
            let user = s.url.parse::<ProxyUrl>().ok().and_then(|u| u.username);
            let password = match (&s.password_env, user) {
                (Some(var), _) => format!("env {var}"),
                (None, None) => "none needed".into(),
                (None, Some(_)) => match secrets::get(&SecretKey::Upstream(s.name.clone())) {
                    Ok(Some(_)) => "keyring".into(),
                    Ok(None) => "keyring (missing: run `veil upstream add` again)".into(),
                    Err(e) => format!("unknown: {e}"),
                },
            };
            Listed {
                name: s.name.clone(),
                url: s.url.clone(),
                weight: s.weight,
                password,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if listed.is_empty() {
        println!("no upstreams configured; add one with `veil upstream add NAME URL`");
        return Ok(());
    }
    println!(
        "strategy {}; {} upstream(s) in {}",
        config.upstreams.strategy,
        listed.len(),
        paths.config_file.display()
    );
    for l in &listed {
        println!(
            "  {:<14} {:<44} weight {:<3} password: {}",
            l.name, l.url, l.weight, l.password
        );
    }
    Ok(())
}

pub fn remove(name: &str) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let _kept = edit::remove(&paths.config_file, name)?;
    println!(
        "removed upstream {name:?} from {}",
        paths.config_file.display()
    );
    match edit::forget(&OsKeyring, name) {
        Ok(true) => println!("and its password from the OS keyring"),
        Ok(false) => {}
        Err(e) => eprintln!("veil: its keyring entry could not be deleted: {e}"),
    }
    Ok(())
}

/// `veil upstream import FILE`: every good line added, every other one
/// listed with its reason. Fails only when nothing could be added.
pub fn import(file: &std::path::Path) -> anyhow::Result<()> {
    use veil_system::upstream_import;
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin().lock()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let paths = Paths::discover()?;
    let mut config_file = ConfigFile::open(&paths.config_file)?;
    let plan = upstream_import::plan(&text, &config_file.config()?);
    let summary = upstream_import::apply(&mut config_file, plan, &upstream_import::OsKeyring)?;
    for added in &summary.added {
        let password = if added.password_stored {
            "; password in the OS keyring"
        } else {
            ""
        };
        println!(
            "added   line {:<4} {:?} ({}){password}",
            added.line, added.name, added.url
        );
    }
    for refused in &summary.refused {
        println!(
            "refused line {:<4} {}: {}",
            refused.line, refused.text, refused.reason
        );
    }
    println!(
        "{} added, {} refused{}",
        summary.added.len(),
        summary.refused.len(),
        if summary.added.is_empty() {
            String::new()
        } else {
            format!(
                " ({}); a running engine uses them after a restart",
                paths.config_file.display()
            )
        }
    );
    if summary.added.is_empty() && !summary.refused.is_empty() {
        bail!("no line of {} could be imported", file.display());
    }
    Ok(())
}
