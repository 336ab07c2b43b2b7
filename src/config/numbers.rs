//! Whole numbers of the configuration, checked against their minimum.

use std::time::Duration;

use super::ConfigError;

/// A whole number of seconds of at least `min`.
pub(super) fn secs(value: i64, key: &str, min: i64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(positive(value, key, min)? as u64))
}

pub(super) fn positive(value: i64, key: &str, min: i64) -> Result<usize, ConfigError> {
    if value < min {
        return Err(ConfigError::new(
            key,
            format!("expected an integer of at least {min}, got {value}"),
        ));
    }
    usize::try_from(value)
        .map_err(|_| ConfigError::new(key, format!("{value} is too large for this machine")))
}
