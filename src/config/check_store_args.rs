//! `coracle check-store`'s command line.

use std::path::PathBuf;

use super::{Command, DEFAULT_DATA_ROOT};

/// `check-store`'s flags (the data root defaults as the daemon's does).
pub(super) fn parse(args: &[String]) -> Result<Command, String> {
    let mut opts = crate::store::check::Options {
        data_root: PathBuf::from(DEFAULT_DATA_ROOT),
        repair: false,
        deep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repair" => opts.repair = true,
            "--deep" => opts.deep = true,
            "--data-root" | "-g" => {
                opts.data_root = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("flag needs an argument: --data-root")?
            }
            s if s.starts_with("--data-root=") => {
                opts.data_root = PathBuf::from(&s["--data-root=".len()..])
            }
            other => return Err(format!("check-store: unknown flag: {other}")),
        }
    }
    Ok(Command::CheckStore(opts))
}
