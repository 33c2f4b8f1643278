use std::collections::{BTreeMap, BTreeSet};

use ferry_crds::job::{FullProgress, IncrementalStatus, MigrationJobStatus, Phase, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::error::Error;
use crate::health::Health;

/// One sample of an exposition: its name and labels (its value is checked to be a number).
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
}

/// The samples of an OpenMetrics or Prometheus text exposition.
fn parse(exposition: &str) -> Vec<Sample> {
    let lines = exposition.lines().filter(|l| !l.starts_with('#') && !l.is_empty());
    lines
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            value.parse::<f64>().expect("a numeric value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, matchers(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            let labels = labels.into_iter().map(|(k, _, v)| (k, v)).collect();
            Sample { name: name.to_string(), labels }
        })
        .collect()
}

/// (label, operator, value) of a label matcher such as `phase="Failed"`.
type Matcher = (String, String, String);

/// `k="v",k2=~"v2"` as matchers, unescaping `\"` and `\\`.
fn matchers(text: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let op_at = rest.find(['=', '!']).expect("a matcher has an operator");
        let label = rest[..op_at].trim().to_string();
        let after = &rest[op_at..];
        let op_len =
            if after.starts_with("=~") || after.starts_with("!=") || after.starts_with("!~") {
                2
            } else {
                1
            };
        let op = after[..op_len].to_string();
        let quoted = after[op_len..].trim_start().strip_prefix('"').expect("a quoted value");
        let (mut value, mut chars, mut end) = (String::new(), quoted.char_indices(), quoted.len());
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c })),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((label, op, value));
        rest = quoted[end..].trim_start().trim_start_matches(',').trim_start();
    }
    out
}

fn status(stage: Stage) -> MigrationJobStatus {
    MigrationJobStatus {
        stage: Some(stage),
        full: Some(FullProgress { rows: 1200, bytes: 56_000, ..Default::default() }),
        incremental: Some(IncrementalStatus {
            lag_seconds: Some(4),
            lag_bytes: Some(900),
            rows_per_second: Some(50),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const PHASES: [Phase; 5] =
    [Phase::Pending, Phase::Running, Phase::Paused, Phase::Failed, Phase::Completed];
const STAGES: [Stage; 4] = [Stage::Precheck, Stage::Full, Stage::Incremental, Stage::Completed];

/// The operator's registry with every series it can export: a job in each phase and stage,
/// both controllers reconciling and failing.
fn everything() -> Vec<Sample> {
    let metrics = Metrics::default();
    for (i, phase) in PHASES.into_iter().enumerate() {
        for (j, stage) in STAGES.into_iter().enumerate() {
            metrics.observe_job("shop", &format!("job-{i}-{j}"), phase, &status(stage));
        }
    }
    let errors = [
        Error::Unnamed("x".into()),
        Error::WorkerStillRunning(1, "x".into()),
        Error::Finalizer { object: "x".into(), message: "x".into() },
    ];
    for controller in ["job", "source"] {
        metrics.controller_started(controller);
        drop(metrics.reconcile_started(controller));
        metrics.reconcile_error(controller, "kube");
        for error in &errors {
            metrics.reconcile_error(controller, error.metric_label());
        }
    }
    metrics.set_leader(true);
    parse(&metrics.render())
}

#[test]
fn jobs_are_exported_by_namespace_and_migrationjob() {
    let m = Metrics::default();
    m.observe_job("shop", "a", Phase::Running, &status(Stage::Full));
    m.observe_job("shop", "b", Phase::Failed, &MigrationJobStatus::default());
    drop(m.reconcile_started("job"));
    m.reconcile_error("job", "kube");
    let text = m.render();
    for line in [
        "ferry_jobs{namespace=\"shop\",phase=\"Running\"} 1",
        "ferry_jobs{namespace=\"shop\",phase=\"Paused\"} 0",
        "ferry_job_status{namespace=\"shop\",migrationjob=\"a\",stage=\"Full\",phase=\"Running\"} 1",
        "ferry_job_status{namespace=\"shop\",migrationjob=\"b\",stage=\"\",phase=\"Failed\"} 1",
        "ferry_job_lag_seconds{namespace=\"shop\",migrationjob=\"a\"} 4",
        "ferry_job_copied_rows_total{namespace=\"shop\",migrationjob=\"a\"} 1200",
        "ferry_job_copied_bytes_total{namespace=\"shop\",migrationjob=\"a\"} 56000",
        "# TYPE ferry_job_copied_rows counter",
        "ferry_reconciles_total{controller=\"job\"} 1",
        "ferry_reconcile_errors_total{controller=\"job\",error=\"kube\"} 1",
        "ferry_reconcile_duration_seconds_count{controller=\"job\"} 1",
        "ferry_leader 0",
        concat!("ferry_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let clashing = parse(&text).into_iter().filter(|s| s.labels.contains_key("job"));
    assert_eq!(clashing.count(), 0, "a `job` label clashes with Prometheus' own:\n{text}");
    m.forget_job("shop", "a");
    assert!(!m.render().contains("migrationjob=\"a\""));
}

/// Where a monitoring file uses Ferry's series: PromQL expressions, and Grafana legends.
#[derive(Default)]
struct Uses {
    /// (where, expression)
    exprs: Vec<(String, String)>,
    /// (where, legend or annotation, the expression it labels)
    templates: Vec<(String, String, String)>,
}

fn monitoring(file: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitoring/");
    std::fs::read_to_string(format!("{dir}{file}")).expect("monitoring file")
}

fn uses() -> Uses {
    let mut uses = Uses::default();
    let rules: serde_yaml::Value = serde_yaml::from_str(&monitoring("alerts.rules.yaml")).unwrap();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = format!("alert {}", rule["alert"].as_str().unwrap_or("?"));
            let expr = rule["expr"].as_str().expect("expr").to_string();
            for text in rule["annotations"].as_mapping().into_iter().flat_map(|m| m.values()) {
                let text = text.as_str().unwrap_or_default().to_string();
                uses.templates.push((name.clone(), text, expr.clone()));
            }
            uses.exprs.push((name, expr));
        }
    }
    let tests: serde_yaml::Value = serde_yaml::from_str(&monitoring("alerts.test.yaml")).unwrap();
    for test in tests["tests"].as_sequence().expect("tests") {
        for series in test["input_series"].as_sequence().into_iter().flatten() {
            let text = series["series"].as_str().expect("series").to_string();
            uses.exprs.push(("alerts.test.yaml".into(), text));
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&monitoring("grafana-dashboard.json")).unwrap();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let name = format!("panel {}", panel["title"].as_str().unwrap_or("?"));
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr").to_string();
            if let Some(legend) = target["legendFormat"].as_str() {
                uses.templates.push((name.clone(), legend.to_string(), expr.clone()));
            }
            uses.exprs.push((name.clone(), expr));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if variable["type"] == "query" {
            let query = variable["query"].as_str().expect("query").to_string();
            uses.exprs.push((format!("variable {}", variable["name"]), query));
        }
    }
    uses
}

/// Each `ferry_*` series an expression selects, with its matchers.
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("ferry_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let after = &tail[end..];
        let (found, consumed) = match after.strip_prefix('{') {
            Some(inner) => {
                let close = inner.find('}').expect("a selector closes");
                (matchers(&inner[..close]), end + 1 + close + 1)
            }
            None => (Vec::new(), end),
        };
        out.push((name, found));
        rest = &tail[consumed..];
    }
    out
}

/// Labels an expression groups, joins or reads by: `by (...)`, `on (...)`, `label_values(..., x)`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for keyword in ["by", "without", "on", "ignoring", "group_left", "group_right"] {
        let mut rest = expr;
        while let Some(at) = rest.find(keyword) {
            let before_ok =
                rest[..at].chars().last().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
            let after = rest[at + keyword.len()..].trim_start();
            rest = &rest[at + keyword.len()..];
            if !before_ok {
                continue;
            }
            let Some(list) = after.strip_prefix('(') else { continue };
            let list = &list[..list.find(')').expect("a label list closes")];
            labels.extend(list.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
        }
    }
    if let Some(args) = expr.strip_prefix("label_values(") {
        let label = args.trim_end_matches(')').rsplit(',').next().expect("a label");
        labels.push(label.trim().to_string());
    }
    labels
}

/// `{{ $labels.x }}` in alert annotations, `{{x}}` in legends.
fn template_labels(text: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap_or_default().trim();
        let inner = inner.strip_prefix("$labels.").unwrap_or(inner);
        if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !inner.is_empty() {
            labels.push(inner.to_string());
        }
    }
    labels
}

/// Labels Prometheus attaches to every series of a scrape target (the tests' sample series may
/// carry them); `job` and `namespace` are not among them: Ferry's own series must not rely on
/// them.
const TARGET_LABELS: [&str; 2] = ["instance", "pod"];

/// Labels whose values come from a fixed set (the others name objects): an expression that
/// matches one of them must match a value the operator writes.
const ENUMERATED_LABELS: [&str; 4] = ["stage", "phase", "controller", "error"];

/// Every series name, label and label value the alerts, their tests and the dashboard use is
/// one the operator's registry exports.
#[test]
fn every_series_the_alerts_and_dashboard_use_is_exported() {
    let samples = everything();
    let labels_of = |name: &str| -> BTreeSet<&str> {
        let of_name = samples.iter().filter(|s| s.name == name);
        of_name.flat_map(|s| s.labels.keys().map(String::as_str)).collect()
    };
    let uses = uses();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (place, expr) in &uses.exprs {
        let mut available = BTreeSet::new();
        for (name, found) in selectors(expr) {
            seen += 1;
            let labels = labels_of(&name);
            if labels.is_empty() && !samples.iter().any(|s| s.name == name) {
                problems.push(format!("{place}: series {name} is not exported"));
                continue;
            }
            available.extend(labels.iter().map(|l| l.to_string()));
            for (label, op, value) in found {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                if !labels.contains(label.as_str()) {
                    problems.push(format!("{place}: {name} has no label {label}"));
                } else if op == "=" && ENUMERATED_LABELS.contains(&label.as_str()) {
                    let has = |s: &&Sample| s.name == name && s.labels.get(&label) == Some(&value);
                    if !samples.iter().any(|s| has(&s)) {
                        problems.push(format!("{place}: {name} never has {label}=\"{value}\""));
                    }
                }
            }
        }
        for label in grouping_labels(expr) {
            if label != "le" && !available.contains(&label) {
                problems.push(format!("{place}: groups by {label}, which its series lack"));
            }
        }
    }
    for (place, text, expr) in &uses.templates {
        let available: BTreeSet<String> = selectors(expr)
            .iter()
            .flat_map(|(name, _)| labels_of(name))
            .map(str::to_string)
            .collect();
        for label in template_labels(text) {
            if !available.contains(&label) {
                problems.push(format!("{place}: {text:?} uses label {label}, which {expr} lacks"));
            }
        }
    }
    assert!(seen > 10, "found only {seen} uses of ferry_ series");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_series_check_catches_an_unknown_label() {
    let samples = everything();
    let (name, found) = selectors("max by (namespace) (ferry_job_status{job=\"x\"})").remove(0);
    assert_eq!(name, "ferry_job_status");
    let has_job_label =
        samples.iter().any(|s| s.name == name && s.labels.contains_key(&found[0].0));
    assert!(!has_job_label, "the operator exports a `job` label");
    assert_eq!(grouping_labels("sum by (a, b) (x) and on(c) y"), ["a", "b", "c"]);
    assert_eq!(template_labels("{{ $labels.migrationjob }} {{phase}}"), ["migrationjob", "phase"]);
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn the_server_answers_metrics_health_and_readiness() {
    let metrics = Metrics::default();
    drop(metrics.reconcile_started("source"));
    let health = Health::default();
    let stop = CancellationToken::new();
    let any_port = "127.0.0.1:0".parse().expect("addr");
    let addr =
        super::server::serve(any_port, metrics, health.clone(), stop.clone()).await.expect("bind");
    let page = get(addr, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-type: application/openmetrics-text"), "{page}");
    assert!(page.contains("ferry_reconciles_total{controller=\"source\"} 1"), "{page}");
    assert!(page.trim_end().ends_with("# EOF"), "{page}");
    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    let standby = get(addr, "/readyz").await;
    assert!(standby.starts_with("HTTP/1.1 200") && standby.contains("standing by"), "{standby}");
    health.leading();
    health.controller_running("job");
    health.controller_stopped("source");
    let broken = get(addr, "/readyz").await;
    assert!(broken.starts_with("HTTP/1.1 503"), "{broken}");
    assert!(broken.contains("[-]controller source: stopped"), "{broken}");
    stop.cancel();
}
