//! `veil cache stats|clear|purge URL`: the running engine's HTTP cache.
//! Only plain-HTTP responses are ever stored; HTTPS inside CONNECT is never
//! cached or inspected.

use anyhow::bail;
use veil_engine::CacheStats;
use veil_system::Paths;
use veil_system::control::{self, Reply, Request};

async fn ask(request: &Request) -> anyhow::Result<CacheStats> {
    let paths = Paths::discover()?;
    match control::request(&paths.control_socket(), request).await? {
        Reply::Cache { cache, .. } => Ok(*cache),
        Reply::Error { error, .. } => bail!("the engine answered: {error}"),
        other => bail!("unexpected answer from the engine: {other:?}"),
    }
}

pub async fn stats(json: bool) -> anyhow::Result<()> {
    let stats = ask(&Request::CacheStats).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print(&stats);
    }
    Ok(())
}

pub async fn clear() -> anyhow::Result<()> {
    let stats = ask(&Request::CacheClear).await?;
    println!("HTTP cache cleared");
    print(&stats);
    Ok(())
}

pub async fn purge(url: String) -> anyhow::Result<()> {
    let stats = ask(&Request::CachePurge { url: url.clone() }).await?;
    println!("purged {url}");
    print(&stats);
    Ok(())
}

fn print(s: &CacheStats) {
    println!(
        "HTTP cache (plain HTTP only; HTTPS is never cached): {}",
        if s.enabled { "on" } else { "off" }
    );
    println!(
        "  hits: {} from memory, {} from disk; misses: {}; hit ratio {:.1}%",
        s.hits_memory,
        s.hits_disk,
        s.misses,
        s.hit_ratio * 100.0
    );
    println!(
        "  revalidations: {} not modified, {} changed; {} requests waited for another's fetch",
        s.revalidated_not_modified, s.revalidated_changed, s.collapsed
    );
    println!(
        "  stored: {} objects / {} bytes in memory, {} objects / {} bytes on disk",
        s.memory_objects, s.memory_bytes, s.disk_objects, s.disk_bytes
    );
    println!(
        "  served from cache: {} bytes; {} too large to store; {} corrupt entries dropped",
        s.bytes_served, s.too_large, s.corrupt_dropped
    );
    let i = &s.invalidations;
    println!(
        "  invalidations: {} unsafe method, {} Location/Content-Location, {} route change, \
         {} no-store, {} purge, {} clear",
        i.unsafe_method, i.location, i.route_change, i.no_store, i.purge, i.clear
    );
    if s.disk_index_bytes > 0 {
        println!("  disk index: {} bytes in memory", s.disk_index_bytes);
    }
    if s.disk_write_errors > 0 {
        println!(
            "  disk: {} responses could not be written (disk full or failing); kept in memory only",
            s.disk_write_errors
        );
    }
}
