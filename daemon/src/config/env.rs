//! The TOML tree and the `SENDERO_<SECTION>_<KEY>` environment variables applied over it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Config, ConfigError};

/// Environment variables that start with `SENDERO_` but are not configuration keys.
pub(super) const NON_CONFIG_ENV: &[&str] = &["SENDERO_CACHE", "SENDERO_FAILPOINT", "SENDERO_TEST_STORE"];

/// `$HOME`, or `/` when unset.
pub(super) fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

pub(super) fn parse_tree(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    let tree: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse { origin: origin.to_owned(), message: e.to_string() })?;
    // Type-check the file on its own so that an unknown key is reported against the file.
    toml::Value::Table(tree.clone())
        .try_into::<Config>()
        .map_err(|e| ConfigError::Parse { origin: origin.to_owned(), message: e.message().to_owned() })?;
    Ok(tree)
}

/// Every configuration key as `(section, key)` (section empty for top-level keys), with its
/// environment variable name: `SENDERO_<SECTION>_<KEY>` in upper case.
pub fn env_keys() -> BTreeMap<String, (String, String)> {
    let mut keys = BTreeMap::new();
    let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Config::default()) else {
        return keys;
    };
    for (name, value) in defaults {
        match value {
            toml::Value::Table(section) => {
                for key in section.keys() {
                    keys.insert(format!("SENDERO_{}_{}", name, key).to_uppercase(), (name.clone(), key.clone()));
                }
            }
            _ => {
                keys.insert(format!("SENDERO_{name}").to_uppercase(), (String::new(), name));
            }
        }
    }
    keys
}

pub(super) fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let keys = env_keys();
    let defaults = toml::Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for (var, raw) in env {
        if !var.starts_with("SENDERO_") || NON_CONFIG_ENV.contains(&var.as_str()) {
            continue;
        }
        let Some((section, key)) = keys.get(&var) else {
            return Err(ConfigError::Parse {
                origin: "environment".into(),
                message: format!("unknown variable {var}"),
            });
        };
        let default =
            if section.is_empty() { defaults.get(key) } else { defaults.get(section).and_then(|s| s.get(key)) };
        let value = match default {
            Some(toml::Value::Integer(_)) => {
                raw.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| ConfigError::Parse {
                    origin: "environment".into(),
                    message: format!("{var} must be an integer, not {raw:?}"),
                })?
            }
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_owned()))
                    .collect(),
            ),
            Some(toml::Value::Boolean(_)) => {
                raw.trim().parse::<bool>().map(toml::Value::Boolean).map_err(|_| ConfigError::Parse {
                    origin: "environment".into(),
                    message: format!("{var} must be true or false, not {raw:?}"),
                })?
            }
            _ => toml::Value::String(raw),
        };
        let table = if section.is_empty() {
            &mut *tree
        } else {
            match tree.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => t,
                _ => return Err(ConfigError::Invalid(format!("[{section}] must be a table"))),
            }
        };
        table.insert(key.clone(), value);
    }
    Ok(())
}
