//! dockerd's JSON progress messages (`status`, `id`, `progressDetail`,
//! `progress`), built in the worker and relayed line by line by the loop.

use std::time::{Duration, Instant};

use crate::json;
use serde_json::Value;

/// A plain status line, with or without an id (`Pulling fs layer`).
pub fn status(id: Option<&str>, status: &str) -> Value {
    match id {
        Some(id) => json!({ "status": status, "progressDetail": {}, "id": id }),
        None => json!({ "status": status }),
    }
}

/// A progress line: the numbers the CLI draws, and dockerd's own bar text.
pub fn bar(id: &str, status: &str, current: u64, total: u64) -> Value {
    let mut detail = json!({ "current": current });
    if total > 0 {
        detail["total"] = json!(total);
    }
    json!({
        "status": status,
        "progressDetail": detail,
        "progress": bar_text(current, total),
        "id": id,
    })
}

/// `[=====>      ]  1.2MB/2.5MB` as dockerd's `JSONProgress.String` at its
/// default width.
pub fn bar_text(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(pct),
        " ".repeat(50 - pct),
        human_size(current),
        human_size(total)
    )
}

/// go-units `HumanSize`: decimal units, four significant digits.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1000.0 && i < UNITS.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    let int_digits = if x < 10.0 {
        1
    } else if x < 100.0 {
        2
    } else {
        3
    };
    let mut s = format!("{:.*}", 4 - int_digits, x);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// Rate limit for progress lines: one per interval, plus the last.
pub struct Throttle {
    last: Option<Instant>,
    every: Duration,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            last: None,
            every: Duration::from_millis(100),
        }
    }

    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_match_dockerd() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(2_152_000), "2.152MB");
        assert_eq!(human_size(772_790), "772.8kB");
        let t = bar_text(50, 100);
        assert!(t.starts_with("[=========================>"), "{t}");
        assert!(t.ends_with("     50B/100B"), "{t}");
    }
}
