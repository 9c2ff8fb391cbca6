//! `veil upstream add|list|remove|import`: edit the `[[upstreams.server]]` list in
//! `config.toml` (comments and formatting kept) and keep each upstream's
//! password in the OS keyring, never in the file or on the command line.
//!
//! A running engine keeps the config it started with; it uses the change
//! after a restart.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use serde::Serialize;
use veil_engine::ProxyUrl;
use veil_system::config::ServerSection;
use veil_system::secrets::{self, SecretKey};
use veil_system::{Config, ConfigFile, Paths};

pub fn add(name: &str, url: &str, password_stdin: bool, weight: u32) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let parsed: ProxyUrl = url.parse()?;
    let mut file = ConfigFile::open(&paths.config_file)?;
    file.add_upstream(&ServerSection {
        name: name.to_owned(),
        url: parsed.to_string(),
        weight,
        password_env: None,
        ca_file: None,
    })?;

    let key = SecretKey::Upstream(name.to_owned());
    let stored = match &parsed.username {
        Some(user) => {
            let password = read_password(user, &parsed, password_stdin)?;
            // The keyring first: if it is unavailable, config.toml is not
            // touched and nothing half-added is left behind.
            secrets::set(&key, &password)?;
            true
        }
        None if password_stdin => bail!(
            "{parsed} names no user, so there is nothing to log in with; put the user in the URL \
             (scheme://USER@host:port)"
        ),
        None => false,
    };
    if let Err(e) = file.save() {
        if stored {
            let _ = secrets::delete(&key);
        }
        return Err(e.into());
    }
    println!(
        "added upstream {name:?} ({parsed}) to {}",
        file.path().display()
    );
    if stored {
        println!("its password is in the OS keyring (service \"veil\", entry {name:?})");
    }
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
    let mut file = ConfigFile::open(&paths.config_file)?;
    if !file.remove_upstream(name)? {
        bail!(
            "no upstream named {name:?} in {}",
            paths.config_file.display()
        );
    }
    file.save()?;
    println!(
        "removed upstream {name:?} from {}",
        paths.config_file.display()
    );
    match secrets::delete(&SecretKey::Upstream(name.to_owned())) {
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
