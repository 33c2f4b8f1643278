//! `ferry validate` on good and bad manifests: exit codes and messages that name the problem;
//! the command line's completion scripts and log settings.

use std::process::Command;

const GOOD: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {source: pw1, target: pw2}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationSource
metadata: {name: src}
spec:
  type: MariaDB
  host: 127.0.0.1
  user: ferry
  passwordSecretRef: {name: creds, key: source}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationJob
metadata: {name: job}
spec:
  sourceRef: {name: src}
  target:
    host: 127.0.0.1
    port: 4000
    user: root
    passwordSecretRef: {name: creds, key: target}
  mode: Full
"#;

fn validate(manifest: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, manifest).expect("write manifest");
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate", "-f"])
        .arg(&path)
        .output()
        .expect("run ferry");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_valid_manifest_passes_with_a_summary() {
    let (code, text) = validate(GOOD);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("valid: 1 Secret(s), 1 MigrationSource(s), 1 MigrationJob(s): job (Full")
    );
}

#[test]
fn the_example_manifests_pass() {
    for name in ["full", "incremental", "full-and-incremental"] {
        let path = format!("{}/../deploy/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let (code, text) = validate(&std::fs::read_to_string(path).expect("example"));
        assert_eq!(code, 0, "{name}: {text}");
    }
}

/// Each bad manifest fails with exit 1 and a message containing every expected fragment.
#[test]
fn bad_manifests_fail_with_the_problem_named() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "unknown field",
            "  mode: Full",
            "  mode: Full\n  tiers: large",
            &["spec.tiers", "unknown field"],
        ),
        ("wrong type", "port: 4000", "port: four-thousand", &["spec.target.port", "integer"]),
        ("bad enum", "mode: Full", "mode: Everything", &["spec.mode", "Everything"]),
        (
            "missing secret",
            "{name: creds, key: target}",
            "{name: tidb, key: target}",
            &["spec.target.passwordSecretRef", "Secret tidb not found"],
        ),
        (
            "missing key",
            "{name: creds, key: source}",
            "{name: creds, key: pass}",
            &["MigrationSource src", "has no key pass", "source, target"],
        ),
        (
            "dangling sourceRef",
            "sourceRef: {name: src}",
            "sourceRef: {name: other}",
            &["spec.sourceRef.name", "no MigrationSource named other"],
        ),
        (
            "invalid object name",
            "metadata: {name: job}",
            "metadata: {name: My_Job}",
            &["metadata.name", "not a valid Kubernetes name"],
        ),
        (
            "invalid display name",
            "  mode: Full",
            "  mode: Full\n  displayName: 1-job",
            &["spec.displayName"],
        ),
        ("missing required field", "  user: ferry\n", "", &["spec", "user", "required"]),
        (
            "wrong apiVersion",
            "ferry.dev/v1alpha1\nkind: MigrationJob",
            "ferry.dev/v1\nkind: MigrationJob",
            &["apiVersion", "ferry.dev/v1alpha1"],
        ),
        ("unknown kind", "kind: Secret", "kind: ConfigMap", &["ConfigMap is not handled here"]),
        (
            "tls without CA",
            "    port: 4000",
            "    port: 4000\n    tls: {mode: Mutual}",
            &["spec.target.tls", "caSecretRef"],
        ),
        ("not YAML", "metadata: {name: src}", "metadata: {name: src", &["not valid YAML"]),
    ];
    for (what, from, to, expected) in cases {
        assert!(GOOD.contains(from), "{what}: fixture does not contain {from:?}");
        let (code, text) = validate(&GOOD.replacen(from, to, 1));
        assert_eq!(code, 1, "{what}: expected exit 1, got {code}: {text}");
        for fragment in *expected {
            assert!(text.contains(fragment), "{what}: expected {fragment:?} in:\n{text}");
        }
    }
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let bad = GOOD.replacen("mode: Full", "mode: Everything", 1).replacen(
        "type: MariaDB",
        "type: Oracle",
        1,
    );
    let (code, text) = validate(&bad);
    assert_eq!(code, 1);
    assert!(text.contains("spec.mode") && text.contains("spec.type"), "{text}");
}

#[test]
fn secret_values_never_appear_in_output() {
    let (code, text) = validate(&GOOD.replacen("key: target}", "key: nothere}", 1));
    assert_eq!(code, 1, "a missing Secret key must fail validation: {text}");
    assert!(text.contains("nothere"), "the missing key is not named: {text}");
    assert!(!text.contains("pw1") && !text.contains("pw2"), "{text}");
}

#[test]
fn a_missing_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate", "-f", "/nonexistent/job.yaml"])
        .output()
        .expect("run ferry");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/job.yaml"));
}

/// `ferry completion bash` prints a script bash loads, which completes the subcommands.
#[test]
fn completion_scripts_load_in_their_shell() {
    let ferry = env!("CARGO_BIN_EXE_ferry");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = Command::new(ferry).args(["completion", shell]).output().expect("run ferry");
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains("migrate") && script.contains("verify"), "{shell}: {script}");
    }
    let check = format!(
        "source <({ferry} completion bash) && complete -p ferry && \
         COMP_WORDS=(ferry mig); COMP_CWORD=1; _ferry ferry mig ferry; echo \"${{COMPREPLY[@]}}\""
    );
    let output = Command::new("bash").args(["-c", &check]).output().expect("run bash");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(printed.contains("complete") && printed.contains("migrate"), "{printed}");
}

/// Log lines follow RUST_LOG when FERRY_LOG is unset, and carry no colour codes when standard
/// error is not a terminal. The target is unreachable: `ferry migrate` logs its retry at WARN,
/// then gives up (`--retries 1`) with the error on standard error.
#[test]
fn logs_honour_rust_log_and_stay_plain_in_files() {
    let unreachable = GOOD.replace("port: 4000", "port: 1");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, unreachable).expect("write manifest");
    let stderr = |rust_log: &str| -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["migrate", "--retries", "1", "-f"])
            .arg(&path)
            .env_remove("FERRY_LOG")
            .env("RUST_LOG", rust_log)
            .output()
            .expect("run ferry");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(text.contains("error: cannot connect to the target"), "{text}");
        text
    };
    let shown = stderr("info");
    assert!(shown.contains("WARN") && shown.contains("retrying"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "colour codes in a log file: {shown:?}");
    let silenced = stderr("off");
    assert!(!silenced.contains("retrying"), "RUST_LOG=off still logs: {silenced}");
}
