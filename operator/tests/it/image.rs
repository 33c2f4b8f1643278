//! The `ferry-operator` container image, built with podman around this crate's binary and run:
//! FROM scratch, non-root, read-only root filesystem.

use std::path::Path;

use ferry_harness::podman::Image;

#[test]
fn operator_image_runs_as_non_root_on_a_read_only_root() -> anyhow::Result<()> {
    let binary = Path::new(env!("CARGO_BIN_EXE_ferry-operator"));
    let image = Image::build("operator", binary, "localhost/ferry-operator:test")?;
    eprintln!("operator image (debug binary): {} MiB", image.size_bytes / 1024 / 1024);
    assert!(image.runs_as_non_root()?, "the image runs as {:?}", image.user()?);
    let version = image.run(&["--version"], &[])?;
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ferry-operator "));
    Ok(())
}
