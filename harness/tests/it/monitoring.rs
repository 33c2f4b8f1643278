//! Ferry's alert rules, tested with Prometheus's own rule engine (promtool, built from the Go
//! module proxy by dev/build-go-tools.sh) against sample series, and the PrometheusRule resource
//! kept equal to the plain rule file.

use std::path::PathBuf;
use std::process::Command;

/// The `github.com/prometheus/prometheus` module version whose promtool dev/build-go-tools.sh
/// builds.
const PROMTOOL_VERSION: &str = "v0.316.0";

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

fn promtool(args: &[&str]) -> anyhow::Result<String> {
    let promtool = ferry_harness::tidb::go_tool("promtool", PROMTOOL_VERSION)?;
    let output = Command::new(promtool).args(args).current_dir(monitoring_dir()).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(output.status.success(), "promtool {args:?} failed:\n{text}");
    Ok(text)
}

#[test]
fn alert_rules_are_valid() -> anyhow::Result<()> {
    let text = promtool(&["check", "rules", "alerts.rules.yaml"])?;
    assert!(text.contains("SUCCESS: 6 rules found"), "{text}");
    Ok(())
}

#[test]
fn alerts_fire_exactly_on_their_sample_series() -> anyhow::Result<()> {
    let text = promtool(&["test", "rules", "alerts.test.yaml"])?;
    assert!(text.contains("SUCCESS"), "{text}");
    Ok(())
}

#[test]
fn prometheus_rule_resource_carries_the_same_groups() -> anyhow::Result<()> {
    let read = |name: &str| -> anyhow::Result<serde_yaml::Value> {
        Ok(serde_yaml::from_str(&std::fs::read_to_string(monitoring_dir().join(name))?)?)
    };
    let rules = read("alerts.rules.yaml")?;
    let resource = read("prometheus-rule.yaml")?;
    assert_eq!(resource["kind"], "PrometheusRule");
    assert_eq!(resource["spec"]["groups"], rules["groups"], "prometheus-rule.yaml is out of date");
    Ok(())
}
