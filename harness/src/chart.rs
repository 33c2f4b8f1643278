//! The Helm chart (`charts/ferry`) and the tools that check it: helm and kubernetes-validate,
//! both installed by `dev/install-helm.sh` (from `dev/setup.sh`) into the cache directory.
//! Missing tools are an error that says so, never a skipped test.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::kube_harness::KUBE_VERSION;
use crate::{HarnessError, Result, io_err};

/// The helm `dev/install-helm.sh` installs (as `<cache>/bin/helm-<version>`).
pub const HELM_VERSION: &str = "v4.1.4";
/// The kubernetes-validate `dev/install-helm.sh` installs into `<cache>/venv`.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// Release name and namespace of the chart in the tests, as the README installs it.
pub const RELEASE: &str = "ferry";
pub const NAMESPACE: &str = "ferry-system";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/ferry")
}

fn missing(what: &str, path: &Path) -> HarnessError {
    HarnessError::Start(format!(
        "{what} is not installed: {} does not exist. Run `dev/setup.sh` (or just \
         `dev/install-helm.sh`), which installs it into the cache directory (FERRY_CACHE_DIR, \
         default ~/.cache/ferry)",
        path.display()
    ))
}

/// The pinned helm binary.
pub fn helm() -> Result<PathBuf> {
    let path = crate::cache_dir().join("bin").join(format!("helm-{HELM_VERSION}"));
    if path.is_file() { Ok(path) } else { Err(missing(&format!("helm {HELM_VERSION}"), &path)) }
}

/// The pinned kubernetes-validate command.
pub fn kubernetes_validate() -> Result<PathBuf> {
    let path = crate::cache_dir().join("venv/bin/kubernetes-validate");
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(&format!("kubernetes-validate {KUBERNETES_VALIDATE_VERSION}"), &path))
    }
}

/// Output of a command: stdout on success, else an error with everything it printed.
fn run(mut command: Command, input: Option<&str>) -> Result<String> {
    let shown = format!("{command:?}");
    let mut child = command
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(format!("run {shown}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.unwrap_or_default().as_bytes()).map_err(io_err("write stdin"))?;
    drop(stdin);
    let out = child.wait_with_output().map_err(io_err(format!("wait for {shown}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(HarnessError::Start(format!("{shown} failed:\n{stderr}{stdout}")));
    }
    Ok(stdout)
}

/// Runs helm with `args` from the repository root.
pub fn helm_run(args: &[&str]) -> Result<String> {
    let mut command = Command::new(helm()?);
    command.args(args);
    run(command, None)
}

/// `helm template` of the chart as release [`RELEASE`] in [`NAMESPACE`] with `--set` values
/// (`key=value`). A value the schema rejects is an error whose message names it.
pub fn template(set: &[&str]) -> Result<String> {
    let chart = chart_dir();
    let mut args = vec!["template", RELEASE, chart.to_str().expect("UTF-8 path")];
    args.extend(["--namespace", NAMESPACE]);
    for value in set {
        args.extend(["--set", value]);
    }
    helm_run(&args)
}

/// What kubernetes-validate said about a manifest that passed.
#[derive(Debug, Default)]
pub struct Validation {
    /// `kind/name` of every resource checked against its schema.
    pub passed: Vec<String>,
    /// Kinds it has no schema for (custom resources), all among those allowed.
    pub unknown: Vec<String>,
}

/// Checks every document of `manifest` with `kubernetes-validate --strict` (unknown fields are
/// errors) against the harness's Kubernetes version. Kinds it has no schema for are errors,
/// except those in `unknown_allowed` (custom resources whose CRD it cannot know).
pub fn validate(manifest: &str, unknown_allowed: &[&str]) -> Result<Validation> {
    let mut command = Command::new(kubernetes_validate()?);
    let version = KUBE_VERSION.trim_start_matches('v');
    command.args(["--strict", "--kubernetes-version", version, "-"]);
    let output = run(command, Some(manifest))?;
    let mut result = Validation::default();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("INFO ") {
            let resource = rest.split("for resource ").nth(1).and_then(|r| r.split(' ').next());
            result.passed.push(resource.unwrap_or(rest).to_string());
        } else if let Some(rest) = line.strip_prefix("WARN ") {
            let kind = rest.split("schema for kind ").nth(1).and_then(|r| r.split(' ').next());
            match kind {
                Some(kind) if unknown_allowed.contains(&kind) => result.unknown.push(kind.into()),
                _ => {
                    return Err(HarnessError::Mismatch(format!(
                        "kubernetes-validate could not check a resource: {line}"
                    )));
                }
            }
        } else if !line.trim().is_empty() {
            return Err(HarnessError::Mismatch(format!("kubernetes-validate: {line}")));
        }
    }
    Ok(result)
}

/// The documents of a multi-document YAML stream as JSON values (empty documents dropped).
/// Parsed through `serde_yaml::Value` first, which rejects duplicate keys that a template could
/// produce and that the API server would reject.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document)
            .map_err(|e| HarnessError::Mismatch(format!("invalid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(&value)
            .map_err(|e| HarnessError::Mismatch(format!("YAML without a JSON form: {e}")))?;
        out.push(json);
    }
    Ok(out)
}
