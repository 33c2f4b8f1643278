//! The workspace's own binaries, built from inside a test that runs them (as pods, as the lab).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::{HarnessError, Result, io_err};

/// Builds every binary and test of the workspace at `root` with `cargo` (a test's
/// `env!("CARGO")`), so that the binaries run the current code. After `cargo test --workspace`
/// there is nothing left to build and it returns at once.
pub fn build(cargo: &Path, root: &Path) -> Result<()> {
    let args = ["build", "--workspace", "--tests", "--bins"];
    let mut command = Command::new(cargo);
    command.args(args).current_dir(root);
    for (name, _) in std::env::vars_os() {
        if describes_the_test_package(&name) {
            command.env_remove(name);
        }
    }
    let status = command.status().map_err(io_err("run cargo build"))?;
    if !status.success() {
        return Err(HarnessError::Start(format!("cargo {} failed: {status}", args.join(" "))));
    }
    Ok(())
}

/// Variables `cargo test` gives a test process about the test's package. The nested cargo must
/// not inherit them: build scripts that watch them (`rerun-if-env-changed`; ring's watches
/// CARGO_MANIFEST_DIR, CARGO_PKG_NAME and OUT_DIR) would see values the outer build did not
/// have and run again, and ring and all above it (kube, mysql_async, the workspace) would be
/// rebuilt: 90 s and more for each test binary that builds, twice in CI.
fn describes_the_test_package(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("CARGO_PKG_")
        || matches!(
            name.as_ref(),
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::describes_the_test_package;
    use std::ffi::OsStr;

    #[test]
    fn only_the_test_packages_variables_are_left_out() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "OUT_DIR"] {
            assert!(describes_the_test_package(OsStr::new(name)), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "RUSTFLAGS", "PATH", "CARGO"] {
            assert!(!describes_the_test_package(OsStr::new(name)), "{name}");
        }
    }
}
