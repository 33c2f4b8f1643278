//! What `harness/kind/run.sh` relies on, checked here where no Docker runs: its `helm` command
//! renders with exactly its `--set` values (names the chart's schema knows) into valid objects,
//! `harness/kind/databases.yaml` is valid, and the test it runs exists.
//!
//! Needs helm and kubernetes-validate (`dev/setup.sh`); fails, not skips, without them.

use ferry_harness::chart::{self, documents, repo_root, validate};

fn run_sh() -> String {
    std::fs::read_to_string(repo_root().join("harness/kind/run.sh")).expect("harness/kind/run.sh")
}

/// The words of the shell command starting with `start`, continuation lines joined, quotes
/// removed and `$VAR`/`${VAR}` replaced by the script's defaults (`VAR="${VAR:-default}"`).
fn command_words(script: &str, start: &str) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("run.sh has no `{start}` command"));
    let mut text = line.replace('"', "");
    for default in script.lines().filter_map(|l| l.split_once("=\"${")) {
        let (var, rest) = default;
        if let Some((_, value)) = rest.trim_end_matches("}\"").split_once(":-") {
            text = text.replace(&format!("${{{var}}}"), value).replace(&format!("${var}"), value);
        }
    }
    text.split_whitespace().map(String::from).collect()
}

/// The `--set` values of run.sh's helm command.
fn helm_sets(words: &[String]) -> Vec<String> {
    words.windows(2).filter(|w| w[0] == "--set").map(|w| w[1].clone()).collect()
}

#[test]
fn run_sh_helm_values_render_valid_objects() -> anyhow::Result<()> {
    let script = run_sh();
    let words = command_words(&script, "helm upgrade --install");
    assert!(words.contains(&"charts/ferry".to_string()), "{words:?}");
    let namespace = words.windows(2).find(|w| w[0] == "--namespace").map(|w| w[1].clone());
    assert_eq!(namespace.as_deref(), Some(chart::NAMESPACE), "the tests look there");
    let sets = helm_sets(&words);
    for key in ["image.repository", "image.tag", "worker.image.repository", "worker.image.tag"] {
        assert!(sets.iter().any(|s| s.starts_with(&format!("{key}="))), "{key} in {sets:?}");
    }
    assert!(!sets.iter().any(|s| s.contains('$')), "unresolved variable in {sets:?}");
    let set: Vec<&str> = sets.iter().map(String::as_str).collect();
    let manifest = chart::template(&set)?;
    let result = validate(&manifest, &[])?;
    assert_eq!(result.passed.len(), documents(&manifest)?.len(), "{result:?}");

    // The images run.sh builds and loads are the ones the operator and its workers use.
    let docs = documents(&manifest)?;
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "localhost/ferry-operator:e2e");
    let args = container["args"].as_array().unwrap();
    assert!(args.iter().any(|a| a == "--worker-image=localhost/ferry:e2e"), "{args:?}");
    let load = command_words(&script, "kind load docker-image");
    for image in ["localhost/ferry:e2e", "localhost/ferry-operator:e2e"] {
        assert!(load.iter().any(|w| w == image), "run.sh does not load {image}: {load:?}");
    }
    Ok(())
}

#[test]
fn kind_databases_are_valid() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("harness/kind/databases.yaml"))?;
    let result = validate(&text, &[])?;
    let docs = documents(&text)?;
    assert_eq!(result.passed.len(), docs.len(), "{result:?}");
    let services: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    for service in ["mariadb", "tidb"] {
        assert!(services.contains(&service), "run.sh forwards to service/{service}");
        assert!(run_sh().contains(&format!("{service}.ferry-harness-db.svc")));
    }
    Ok(())
}

#[test]
fn the_test_run_sh_runs_exists() {
    let words = command_words(&run_sh(), "cargo test");
    let after = |flag: &str| {
        let at = words.iter().position(|w| w == flag).unwrap_or_else(|| panic!("no {flag}"));
        words[at + 1].clone()
    };
    let (package, target, path) = (after("-p"), after("--test"), after("--exact"));
    assert_eq!(package, "ferry-operator");
    assert_eq!(target, "it", "the operator's integration tests are one binary, tests/it");
    let (module, name) =
        path.split_once("::").unwrap_or_else(|| panic!("{path} is not MODULE::TEST"));
    let file = repo_root().join(format!("operator/tests/it/{module}.rs"));
    let source = std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("{}", file.display()));
    let definition = format!("#[tokio::test]\nasync fn {name}()");
    assert!(source.contains(&definition), "{} has no test {name}", file.display());
}
