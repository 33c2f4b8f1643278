//! The ArgoCD health check for MigrationJob, run by a real Lua interpreter (Debian's lua5.4)
//! against sample objects in every phase, and kept equal to the copy in the argocd-cm patch.

use std::path::PathBuf;
use std::process::Command;

fn argocd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/argocd")
}

#[test]
fn health_check_maps_every_phase() {
    let output = Command::new("lua5.4")
        .arg(argocd_dir().join("health_test.lua"))
        .output()
        .expect("lua5.4 runs (installed by dev/setup.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn argocd_cm_patch_carries_the_script_verbatim() {
    let script = std::fs::read_to_string(argocd_dir().join("health.lua")).expect("health.lua");
    let patch = std::fs::read_to_string(argocd_dir().join("argocd-cm-health.yaml")).expect("patch");
    let value: serde_yaml::Value = serde_yaml::from_str(&patch).expect("patch is YAML");
    let embedded = value["data"]["resource.customizations.health.ferry.dev_MigrationJob"]
        .as_str()
        .expect("the health key is present");
    assert_eq!(embedded, script, "argocd-cm-health.yaml is out of date with health.lua");
}
