//! The `ferry` container image, built with podman around this crate's binary and run for real:
//! FROM scratch, non-root, read-only root filesystem, host network.

use crate::support;

use std::path::Path;
use std::sync::OnceLock;

use ferry_harness::SqlServer;
use ferry_harness::podman::{Image, repo_root};

/// Built once for all tests of this file.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let binary = Path::new(env!("CARGO_BIN_EXE_ferry"));
        let image = Image::build("ferry", binary, "localhost/ferry:test").expect("build the image");
        eprintln!("ferry image (debug binary): {} MiB", image.size_bytes / 1024 / 1024);
        image
    })
}

#[test]
fn image_runs_the_cli_as_non_root_on_a_read_only_root() -> anyhow::Result<()> {
    assert!(image().runs_as_non_root()?, "the image runs as {:?}", image().user()?);
    let version = image().run(&["--version"], &[])?;
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ferry "));

    let examples = repo_root().join("deploy/examples");
    let validate =
        image().run(&["validate", "-f", "/manifests/full.yaml"], &[(&examples, "/manifests")])?;
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{validate:?}");
    assert!(stdout.contains("valid: 2 Secret(s)"), "{stdout}");
    Ok(())
}

#[tokio::test]
async fn image_migrates_between_two_mariadb_servers() -> anyhow::Result<()> {
    let setup = support::Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; \
             CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20), b BLOB); \
             INSERT INTO app.t VALUES (1, 'ferry', x'00ff'), (2, '🚢', NULL), (3, '', '')",
        )
        .await?;
    let manifest = setup.manifest("Full", "    databases: [app]");
    let dir = manifest.parent().expect("manifest in a directory");
    let output = image().run(&["migrate", "-f", "/manifests/job.yaml"], &[(dir, "/manifests")])?;
    assert!(
        output.status.success(),
        "ferry migrate in the container failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    setup.assert_same("app").await;
    Ok(())
}
