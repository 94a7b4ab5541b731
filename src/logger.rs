//! A stderr logger behind the `log` facade, in dockerd's logfmt style.

use std::io::Write;
use std::time::SystemTime;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = r.level().as_str().to_ascii_lowercase();
        let line = format!(
            "time=\"{}\" level={level} msg={:?}\n",
            crate::timefmt::rfc3339_nano(SystemTime::now()),
            r.args().to_string()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

pub fn init(level: log::LevelFilter) {
    static LOGGER: StderrLogger = StderrLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
