//! Container images built and run with podman (no Docker engine runs here). Images are built by
//! `dev/build-image.sh` around a binary the tests already have.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{HarnessError, Result, io_err};

/// A built image.
pub struct Image {
    pub tag: String,
    pub size_bytes: u64,
}

impl Image {
    /// Builds image `kind` (`ferry` or `operator`) around `binary`, tagged `tag`.
    pub fn build(kind: &str, binary: &Path, tag: &str) -> Result<Self> {
        let script = repo_root().join("dev/build-image.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(kind)
            .arg(binary)
            .arg(tag)
            .output()
            .map_err(io_err("run dev/build-image.sh"))?;
        check(&output, "dev/build-image.sh")?;
        let size = podman()
            .args(["image", "inspect", "--format", "{{.Size}}", tag])
            .output()
            .map_err(io_err("run podman (installed by dev/setup.sh)"))?;
        check(&size, "podman image inspect")?;
        let size_bytes = String::from_utf8_lossy(&size.stdout).trim().parse().unwrap_or(0);
        Ok(Self { tag: tag.to_string(), size_bytes })
    }

    /// The user the image runs as (`USER` of its Containerfile), e.g. `65532:65532`.
    pub fn user(&self) -> Result<String> {
        let output = podman()
            .args(["image", "inspect", "--format", "{{.Config.User}}", &self.tag])
            .output()
            .map_err(io_err("run podman image inspect"))?;
        check(&output, "podman image inspect")?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Whether the image runs as a user other than root (by name or uid 0).
    pub fn runs_as_non_root(&self) -> Result<bool> {
        let user = self.user()?;
        let uid = user.split(':').next().unwrap_or_default();
        Ok(!uid.is_empty() && uid != "0" && uid != "root")
    }

    /// Runs the image's entrypoint with `args` on the host network, as its non-root user with a
    /// read-only root filesystem; `mounts` are (host path, container path) read-only binds.
    pub fn run(&self, args: &[&str], mounts: &[(&Path, &str)]) -> Result<Output> {
        let mut command = podman();
        command.args(["run", "--rm", "--network", "host", "--read-only"]);
        for (host, container) in mounts {
            command.arg("--volume").arg(format!("{}:{container}:ro", host.display()));
        }
        command.arg(&self.tag).args(args);
        command.output().map_err(io_err("run podman"))
    }
}

/// podman as it works inside this sandbox: runc, cgroupfs, no default ulimits.
fn podman() -> Command {
    let conf = std::env::temp_dir().join("ferry-containers.conf");
    let _ = std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n");
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
    command
}

fn check(output: &Output, what: &str) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    Err(HarnessError::Start(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
