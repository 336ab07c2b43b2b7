//! Wall-clock helpers: unix milliseconds and RFC 3339 formatting, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats unix milliseconds as RFC 3339 in UTC, e.g. `2026-11-28T12:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`2026-11-28T12:00:00Z`, with optional fractional seconds and a `Z` or
/// `±HH:MM` offset; `t` and a space accepted for `T`) or a bare date (`2026-11-28`, midnight
/// UTC) into unix milliseconds.
///
/// # Errors
/// A message saying the expected form.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "expected an RFC 3339 time like 2026-11-28T12:00:00Z (or +08:00), or a date like 2026-11-28; got '{}'",
            crate::escape::printable(&text.chars().take(40).collect::<String>())
        )
    };
    let text = text.trim();
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (year, month, day) = (num(y)?, num(m)?, num(d)?);
    if y.len() != 4
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
    {
        return Err(bad());
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let Some(time) = time else {
        return Ok(ms);
    };
    let (clock, offset_ms) = if let Some(rest) = time.strip_suffix(['Z', 'z']) {
        (rest, 0)
    } else {
        let i = time.rfind(['+', '-']).ok_or_else(bad)?;
        let (h, m) = time[i + 1..].split_once(':').ok_or_else(bad)?;
        let offset = num(h)? * 3_600_000 + num(m)? * 60_000;
        (
            &time[..i],
            if &time[i..=i] == "-" { -offset } else { offset },
        )
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = whole.split(':');
    let (Some(h), Some(mi), Some(se), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return Err(bad());
    };
    let (h, mi, se) = (num(h)?, num(mi)?, num(se)?);
    if h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        num(&digits)?
    };
    ms += (h * 3600 + mi * 60 + se) * 1000 + millis - offset_ms;
    Ok(ms)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day), proleptic Gregorian → days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, rfc3339};

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_288_000_123), "2025-11-28T00:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 1_764_288_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms));
        }
        assert_eq!(
            parse_rfc3339("2025-11-28T08:00:00+08:00"),
            Ok(1_764_288_000_000)
        );
        assert_eq!(parse_rfc3339("2025-11-28"), Ok(1_764_288_000_000));
        assert_eq!(
            parse_rfc3339("2025-11-27T23:30:00.5-00:30"),
            Ok(1_764_288_000_500)
        );
        for bad in [
            "",
            "2025-13-01",
            "2025-02-29",
            "yesterday",
            "2025-11-28T25:00:00Z",
            "2025-11-28T10:00:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
