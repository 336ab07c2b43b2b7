//! The `store` setting and the `[postgres]` table: which inbox holds the events.

use std::time::Duration;

use super::ConfigError;
use super::numbers::{positive, secs};
use super::raw::RawPostgres;
use crate::secret::Secret;
use crate::store::{PostgresConfig, StoreKind};

/// Resolves `store` (empty = postgres when a URL is set, else sqlite) and validates the
/// PostgreSQL settings it needs.
pub(super) fn validate_store(
    store: &str,
    raw: RawPostgres,
    attempt_timeout: Duration,
) -> Result<StoreKind, ConfigError> {
    let url = raw.url.trim().to_owned();
    let url = url.as_str();
    let kind = match store.trim() {
        "" if url.is_empty() => "sqlite",
        "" => "postgres",
        other => other,
    };
    match kind {
        "sqlite" if url.is_empty() => Ok(StoreKind::Sqlite),
        "sqlite" => Err(ConfigError::new(
            "store",
            "is \"sqlite\" but postgres.url (WXPUSH_DATABASE_URL) is set; set store = \"postgres\" to use the database, or remove the URL",
        )),
        "postgres" => validate_postgres(url, raw, attempt_timeout).map(StoreKind::Postgres),
        other => Err(ConfigError::new(
            "store",
            format!("expected \"sqlite\" or \"postgres\", got '{other}'"),
        )),
    }
}

fn validate_postgres(
    url: &str,
    raw: RawPostgres,
    attempt_timeout: Duration,
) -> Result<PostgresConfig, ConfigError> {
    const URL_KEY: &str = "postgres.url (WXPUSH_DATABASE_URL)";
    if url.is_empty() {
        return Err(ConfigError::new(
            URL_KEY,
            "store = \"postgres\" needs a connection URL like postgres://user:password@host:5432/dbname",
        ));
    }
    let parsed = url.parse::<tokio_postgres::Config>().map_err(|e| {
        ConfigError::new(
            URL_KEY,
            format!(
                "not a PostgreSQL connection URL ({e}); expected postgres://user:password@host:5432/dbname"
            ),
        )
    })?;
    if parsed.get_hosts().is_empty() {
        return Err(ConfigError::new(
            URL_KEY,
            "names no host; expected postgres://user:password@host:5432/dbname",
        ));
    }
    let schema = raw.schema.trim().to_owned();
    let valid_schema = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if !valid_schema {
        return Err(ConfigError::new(
            "postgres.schema",
            format!(
                "expected a lowercase name of letters, digits and '_' (at most 63), got '{}'",
                raw.schema
            ),
        ));
    }
    let pool_size = positive(raw.pool_size, "postgres.pool_size", 2)?;
    let lease = secs(raw.lease_secs, "postgres.lease_secs", 1)?;
    if lease <= attempt_timeout {
        return Err(ConfigError::new(
            "postgres.lease_secs",
            format!(
                "must be longer than delivery.attempt_timeout_secs ({} s), or another instance could take an event while its attempt is still running; got {} s",
                attempt_timeout.as_secs(),
                lease.as_secs()
            ),
        ));
    }
    let ca_file =
        (!raw.ca_file.trim().is_empty()).then(|| std::path::PathBuf::from(raw.ca_file.trim()));
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        return Err(ConfigError::new(
            "postgres.ca_file",
            format!("{} is not a readable file", path.display()),
        ));
    }
    Ok(PostgresConfig {
        ca_file,
        url: Secret::new(url.to_owned()),
        target: describe_target(&parsed),
        schema,
        pool_size,
        lease,
    })
}

/// `user@host:port/db`, never the password.
fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawPostgres {
        RawPostgres {
            url: url.to_owned(),
            schema: "public".to_owned(),
            pool_size: 8,
            lease_secs: 60,
            ca_file: String::new(),
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_url_alone_selects_postgres_and_never_shows_the_password() -> Result<(), ConfigError> {
        let kind = validate_store(
            "",
            raw("postgres://app:s3cretpw@db.internal:6543/inbox"),
            TIMEOUT,
        )?;
        let StoreKind::Postgres(pg) = kind else {
            return Err(ConfigError::new("test", "expected postgres"));
        };
        assert_eq!(pg.target, "app@db.internal:6543/inbox");
        assert!(!format!("{pg:?}").contains("s3cretpw"));
        assert_eq!(validate_store("", raw(""), TIMEOUT)?, StoreKind::Sqlite);
        Ok(())
    }

    #[test]
    fn contradictions_and_bad_values_are_named() {
        let err = |store: &str, r: RawPostgres| {
            validate_store(store, r, TIMEOUT)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("postgres", raw("")).contains("needs a connection URL"));
        assert!(err("sqlite", raw("postgres://a@h/d")).contains("store = \"postgres\""));
        assert!(err("mysql", raw("")).contains("expected \"sqlite\" or \"postgres\""));
        let bad = err("", raw("postgres://app:s3cretpw@host:notaport/db"));
        assert!(bad.contains("not a PostgreSQL connection URL"), "{bad}");
        assert!(!bad.contains("s3cretpw"), "{bad}");
        let mut short = raw("postgres://a@h/d");
        short.lease_secs = 30;
        assert!(err("", short).contains("longer than delivery.attempt_timeout_secs"));
        let mut ca = raw("postgres://a@h/d?sslmode=require");
        ca.ca_file = "/nonexistent/ca.pem".to_owned();
        assert!(err("", ca).contains("postgres.ca_file"));
        let mut schema = raw("postgres://a@h/d");
        schema.schema = "Robert'); DROP".to_owned();
        assert!(err("", schema).contains("postgres.schema"));
    }
}
