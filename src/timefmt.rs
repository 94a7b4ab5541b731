//! Civil-time formatting and parsing (RFC 3339, HTTP dates) without a
//! calendar crate: UTC only, which is all the API uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    }
}

/// `2006-01-02T15:04:05.999999999Z` as Go's RFC3339Nano writes it
/// (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (secs, nanos) = split(t);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `Mon, 02 Jan 2006 15:04:05 GMT` for the Date header.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (secs, _) = split(t);
    let days = secs.div_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let s = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Seconds since the epoch of an IMF-fixdate (`Mon, 02 Jan 2006 15:04:05
/// GMT`, what `Last-Modified` carries).
pub fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, d, mo, y, hms, "GMT"] = f[..] else {
        return None;
    };
    let mo = MONTHS.iter().position(|m| *m == mo)? as u32 + 1;
    let (d, y): (u32, i64) = (d.parse().ok()?, y.parse().ok()?);
    let t: Vec<i64> = hms.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, m, sec] = t[..] else {
        return None;
    };
    if !(1..=31).contains(&d) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Parse a timestamp as the API takes it in `since`/`until`: Unix seconds
/// with an optional fraction (`1700000000.123456789`, what the CLI sends), or
/// RFC 3339 (`2024-01-02T03:04:05Z`, `...+01:00`, fraction optional).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Some(t) = parse_unix(s) {
        return Some(t);
    }
    parse_rfc3339(s)
}

fn parse_unix(s: &str) -> Option<SystemTime> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if sec.is_empty() || !sec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let secs: u64 = sec.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = parse_rfc3339_parts(s)?;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Seconds since the epoch of an RFC 3339 time, negative before 1970 (image
/// configs may say `0001-01-01T00:00:00Z`).
pub fn parse_rfc3339_secs(s: &str) -> Option<i64> {
    parse_rfc3339_parts(s).map(|(secs, _)| secs)
}

fn parse_rfc3339_parts(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let frac = &f[..digits.min(9)];
        nanos = format!("{frac:0<9}").parse().ok()?;
        rest = &f[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(y, mo, d) * 86_400 + (h as i64) * 3600 + (mi as i64) * 60 + sec as i64
            - offset;
    Some((secs, nanos))
}

/// The current time as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    rfc3339_nano(SystemTime::now())
}

/// Nanoseconds since the epoch (0 for times before it).
pub fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// A prune's `until`: a timestamp as `parse_timestamp` takes it, or a Go
/// duration before `now` (`10m`, `1h30m`, `2.5h`), as dockerd's
/// `GetTimestamp`.
pub fn parse_until(s: &str, now: SystemTime) -> Option<SystemTime> {
    if let Some(t) = parse_timestamp(s) {
        return Some(t);
    }
    now.checked_sub(parse_go_duration(s.trim())?)
}

/// Go's `time.ParseDuration` for non-negative values.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_durations() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        let ago = |s: &str| parse_until(s, now).map(|t| now.duration_since(t).unwrap().as_secs());
        assert_eq!(ago("1h"), Some(3600));
        assert_eq!(ago("1h30m"), Some(5400));
        assert_eq!(ago("2.5h"), Some(9000));
        assert_eq!(ago("90s"), Some(90));
        assert_eq!(ago("0s"), Some(0));
        // "0" is the epoch, as in dockerd's GetTimestamp.
        assert_eq!(ago("0"), Some(100_000));
        assert_eq!(
            parse_until("50000", now),
            Some(UNIX_EPOCH + Duration::from_secs(50000))
        );
        assert_eq!(parse_until("1x", now), None);
        assert_eq!(parse_until("h", now), None);
        assert_eq!(parse_until("", now), None);
    }

    #[test]
    fn formats_and_parses() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(http_date(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_timestamp("1700000000.12"), Some(t));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.12Z"), Some(t));
        assert_eq!(parse_timestamp("2023-11-14T23:13:20.12+01:00"), Some(t));
        assert_eq!(parse_timestamp("0"), Some(UNIX_EPOCH));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2023-13-14T22:13:20Z"), None);
        assert_eq!(
            parse_rfc3339_secs("2023-11-14T22:13:20Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339_secs("1969-12-31T23:59:59Z"), Some(-1));
        assert!(parse_rfc3339_secs("0001-01-01T00:00:00Z").is_some_and(|s| s < 0));
        for days in [-1000i64, 0, 59, 60, 365, 11_000, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
