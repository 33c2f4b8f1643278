//! The `ferry` container image, built with podman around this crate's binary and run for real:
//! FROM scratch, non-root, read-only root filesystem.

use std::path::Path;

use ferry_e2e::podman::{Image, repo_root};

#[test]
fn image_runs_the_cli_as_non_root_on_a_read_only_root() -> anyhow::Result<()> {
    let image =
        Image::build("ferry", Path::new(env!("CARGO_BIN_EXE_ferry")), "localhost/ferry:test")?;
    eprintln!("ferry image (debug binary): {} MiB", image.size_bytes / 1024 / 1024);

    let version = image.run(&["--version"], &[])?;
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ferry "));

    let examples = repo_root().join("deploy/examples");
    let validate =
        image.run(&["validate", "-f", "/manifests/full.yaml"], &[(&examples, "/manifests")])?;
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{validate:?}");
    assert!(stdout.contains("valid: 2 Secret(s)"), "{stdout}");
    Ok(())
}
