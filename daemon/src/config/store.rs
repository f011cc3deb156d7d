//! `[store]`: where the gateway keeps its books. SQLite in the data dir unless `url` names a
//! PostgreSQL database.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::store::StoreLocation;

/// `[store]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Empty: `sendero.sqlite` in the data dir. Else a PostgreSQL database,
    /// `postgres://user:password@host:port/database` (or `?host=/run/postgresql` for its Unix
    /// socket). The wallet and the Lightning node keep their own files in the data dir.
    pub url: String,
}

impl StoreConfig {
    /// Where the store is, for a gateway whose data dir is `datadir`.
    pub fn location(&self, datadir: &std::path::Path) -> StoreLocation {
        if self.url.is_empty() {
            StoreLocation::Sqlite(datadir.join("sendero.sqlite"))
        } else {
            StoreLocation::Postgres(self.url.clone())
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Ok(());
        }
        if !["postgres://", "postgresql://"].iter().any(|s| self.url.starts_with(s)) {
            return Err(ConfigError::Invalid(format!(
                "store.url {:?} is not a postgres:// URL (leave it empty for SQLite in the data dir)",
                redact(&self.url)
            )));
        }
        self.url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::Invalid(format!("store.url {:?}: {e}", redact(&self.url))))?;
        Ok(())
    }
}

/// `url` without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_once(['/', '?']).map_or((rest, ""), |(a, _)| (a, &rest[a.len()..]));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_unless_a_postgres_url() {
        let dir = std::path::Path::new("/var/lib/sendero");
        assert_eq!(StoreConfig::default().location(dir), StoreLocation::Sqlite(dir.join("sendero.sqlite")));
        let pg = StoreConfig { url: "postgres://sendero:pw@db:5432/books".into() };
        assert!(pg.check().is_ok());
        assert_eq!(pg.location(dir), StoreLocation::Postgres(pg.url.clone()));
        let bad = StoreConfig { url: "mysql://sendero:pw@db/books".into() };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("store.url") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://sendero:s3cret@db:5432/books"), "postgres://sendero:***@db:5432/books");
        assert_eq!(redact("postgres://db/books?sslmode=disable"), "postgres://db/books?sslmode=disable");
        assert_eq!(redact("postgres://u:p@h?host=/run/pg"), "postgres://u:***@h?host=/run/pg");
    }
}
