//! Where the test files are, found at run time: the package root from `CARGO_MANIFEST_DIR`,
//! which cargo sets for every test process, or the current directory (cargo runs tests from the
//! package root) when a test binary is started by hand.

use std::path::PathBuf;

/// The root of the `bitbucket-access` package.
pub fn package_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}
