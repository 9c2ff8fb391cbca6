//! `config.toml`: parsed and checked (`Config::parse`, what `Config::load`
//! does with the file's text), then turned into the engine's configuration.
//!
//! Invariants: a config that validates serialises to TOML that parses and
//! validates to the same config; its engine configuration builds (passwords
//! given) and the engine's own check of it (the routing) passes: whatever
//! the system crate accepts, the engine accepts too.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use veil_engine::Routing;
use veil_system::config::SecretLookup;
use veil_system::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("config.toml");
    let Ok(config) = Config::parse(text, path) else {
        return;
    };
    let again = toml::to_string(&config)
        .unwrap_or_else(|e| panic!("a valid config does not serialise: {e}\n{config:?}"));
    let reparsed = Config::parse(&again, path)
        .unwrap_or_else(|e| panic!("a valid config reads back invalid: {e}\n{again}"));
    assert_eq!(
        config, reparsed,
        "config changed on the way through TOML:\n{again}"
    );

    let secret: &SecretLookup<'_> = &|_| Ok(Some("fuzz-password".to_owned()));
    match config.engine_config_with(secret) {
        Ok(engine) => {
            if let Err(e) = Routing::new(&engine.bypass, &engine.rules) {
                panic!("the engine refuses routing the config accepted: {e}");
            }
            assert!(engine.limits.max_connections >= 1);
        }
        // A password_env naming a variable that is not set.
        Err(ConfigError::MissingPassword { .. } | ConfigError::MissingUpstreamPassword { .. }) => {}
        Err(e) => panic!("a valid config has no engine configuration: {e}"),
    }
});
