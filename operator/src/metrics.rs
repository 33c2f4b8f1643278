//! Prometheus metrics in the text exposition format, served on `/metrics` with `/healthz` and
//! `/readyz` by a minimal HTTP server (no extra dependencies for three fixed pages).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ferry_crds::job::{MigrationJobStatus, Phase, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a job last reported, by `(namespace, name)`.
#[derive(Clone, Debug, Default, PartialEq)]
struct JobSample {
    phase: Option<Phase>,
    stage: Option<Stage>,
    lag_seconds: Option<i64>,
    full_bytes_per_second: Option<i64>,
    rows_per_second: Option<i64>,
    full_rows: Option<i64>,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<(String, String), JobSample>,
    reconciles: BTreeMap<&'static str, u64>,
    errors: BTreeMap<(&'static str, &'static str), u64>,
    leader: bool,
}

/// The operator's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    state: Arc<Mutex<State>>,
}

const PHASES: [Phase; 5] =
    [Phase::Pending, Phase::Running, Phase::Paused, Phase::Failed, Phase::Completed];

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of counters.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    pub fn reconciled(&self, controller: &'static str) {
        self.with(|s| *s.reconciles.entry(controller).or_default() += 1);
    }

    pub fn reconcile_error(&self, controller: &'static str, label: &'static str) {
        self.with(|s| *s.errors.entry((controller, label)).or_default() += 1);
    }

    pub fn set_leader(&self, leader: bool) {
        self.with(|s| s.leader = leader);
    }

    /// Records a job's phase and the lag and throughput its worker reported.
    pub fn observe_job(
        &self,
        namespace: &str,
        name: &str,
        phase: Phase,
        status: &MigrationJobStatus,
    ) {
        let incremental = status.incremental.as_ref();
        let sample = JobSample {
            phase: Some(phase),
            stage: status.stage,
            lag_seconds: incremental.and_then(|i| i.lag_seconds),
            rows_per_second: incremental.and_then(|i| i.rows_per_second),
            full_bytes_per_second: status.full.as_ref().map(|f| f.bytes_per_second),
            full_rows: status.full.as_ref().map(|f| f.rows),
        };
        self.with(|s| s.jobs.insert((namespace.into(), name.into()), sample));
    }

    pub fn forget_job(&self, namespace: &str, name: &str) {
        self.with(|s| s.jobs.remove(&(namespace.to_string(), name.to_string())));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            header(&mut out, "ferry_jobs", "gauge", "MigrationJobs by namespace and phase.");
            let mut counts: BTreeMap<(&str, String), u64> = BTreeMap::new();
            let namespaces: std::collections::BTreeSet<&str> =
                s.jobs.keys().map(|(ns, _)| ns.as_str()).collect();
            for ns in &namespaces {
                for p in PHASES {
                    counts.insert((ns, format!("{p:?}")), 0);
                }
            }
            for ((ns, _), sample) in &s.jobs {
                if let Some(p) = sample.phase {
                    *counts.entry((ns, format!("{p:?}"))).or_default() += 1;
                }
            }
            for ((ns, phase), n) in counts {
                let _ = writeln!(
                    out,
                    "ferry_jobs{{namespace=\"{}\",phase=\"{phase}\"}} {n}",
                    escape(ns)
                );
            }
            header(
                &mut out,
                "ferry_job_status",
                "gauge",
                "1 for each job's current stage and phase (the alerts key on it).",
            );
            for ((ns, job), sample) in &s.jobs {
                if let Some(phase) = sample.phase {
                    let stage = sample.stage.map(|st| format!("{st:?}")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "ferry_job_status{{namespace=\"{}\",job=\"{}\",stage=\"{stage}\",phase=\"{phase:?}\"}} 1",
                        escape(ns),
                        escape(job)
                    );
                }
            }
            header(&mut out, "ferry_reconciles_total", "counter", "Reconciles by controller.");
            for (c, n) in &s.reconciles {
                let _ = writeln!(out, "ferry_reconciles_total{{controller=\"{c}\"}} {n}");
            }
            header(
                &mut out,
                "ferry_reconcile_errors_total",
                "counter",
                "Failed reconciles by controller and error.",
            );
            for ((c, e), n) in &s.errors {
                let _ = writeln!(
                    out,
                    "ferry_reconcile_errors_total{{controller=\"{c}\",error=\"{e}\"}} {n}"
                );
            }
            type Get = fn(&JobSample) -> Option<i64>;
            let per_job: [(&str, &str, Get); 4] = [
                ("ferry_job_lag_seconds", "Replication lag the worker reported.", |j| {
                    j.lag_seconds
                }),
                (
                    "ferry_job_apply_rows_per_second",
                    "Binlog apply throughput the worker reported.",
                    |j| j.rows_per_second,
                ),
                (
                    "ferry_job_copy_bytes_per_second",
                    "Existing-data copy throughput the worker reported.",
                    |j| j.full_bytes_per_second,
                ),
                ("ferry_job_copied_rows", "Rows copied by the existing-data copy so far.", |j| {
                    j.full_rows
                }),
            ];
            for (name, help, get) in per_job {
                header(&mut out, name, "gauge", help);
                for ((ns, job), sample) in &s.jobs {
                    if let Some(v) = get(sample) {
                        let _ = writeln!(
                            out,
                            "{name}{{namespace=\"{}\",job=\"{}\"}} {v}",
                            escape(ns),
                            escape(job)
                        );
                    }
                }
            }
            header(
                &mut out,
                "ferry_leader",
                "gauge",
                "1 while this replica holds the leader lease.",
            );
            let _ = writeln!(out, "ferry_leader {}", u8::from(s.leader));
            out
        })
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `stop`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut stream, _)) = accepted else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/healthz" | "/readyz" => ("200 OK", "ok\n".to_string()),
                    _ => ("404 Not Found", "not found\n".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::IncrementalStatus;

    #[test]
    fn jobs_are_counted_by_phase_with_their_lag() {
        let m = Metrics::default();
        let status = MigrationJobStatus {
            incremental: Some(IncrementalStatus { lag_seconds: Some(3), ..Default::default() }),
            ..Default::default()
        };
        m.observe_job("shop", "a", Phase::Running, &status);
        m.observe_job("shop", "b", Phase::Failed, &MigrationJobStatus::default());
        m.reconcile_error("job", "kube");
        let text = m.render();
        assert!(text.contains("ferry_jobs{namespace=\"shop\",phase=\"Running\"} 1"), "{text}");
        assert!(text.contains("ferry_jobs{namespace=\"shop\",phase=\"Paused\"} 0"), "{text}");
        assert!(text.contains("ferry_job_lag_seconds{namespace=\"shop\",job=\"a\"} 3"), "{text}");
        assert!(
            text.contains("ferry_reconcile_errors_total{controller=\"job\",error=\"kube\"} 1"),
            "{text}"
        );
        m.forget_job("shop", "a");
        assert!(!m.render().contains("job=\"a\""));
    }

    #[test]
    fn every_metric_the_alerts_and_dashboard_use_is_exported() {
        let m = Metrics::default();
        let status = MigrationJobStatus {
            stage: Some(Stage::Incremental),
            full: Some(Default::default()),
            incremental: Some(IncrementalStatus {
                lag_seconds: Some(1),
                rows_per_second: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        m.observe_job("shop", "a", Phase::Running, &status);
        m.reconcile_error("job", "kube");
        let text = m.render();
        assert!(
            text.contains(
                "ferry_job_status{namespace=\"shop\",job=\"a\",stage=\"Incremental\",phase=\"Running\"} 1"
            ),
            "{text}"
        );
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitoring/");
        for file in ["alerts.rules.yaml", "grafana-dashboard.json"] {
            let used = std::fs::read_to_string(format!("{dir}{file}")).expect("monitoring file");
            for name in used.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if name.starts_with("ferry_") {
                    assert!(
                        text.contains(&format!("{name}{{")),
                        "{file} uses {name}, not exported"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn the_server_answers_metrics_and_health() {
        let m = Metrics::default();
        m.reconciled("source");
        let stop = CancellationToken::new();
        let addr =
            serve("127.0.0.1:0".parse().expect("addr"), m, stop.clone()).await.expect("bind");
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut body = String::new();
            s.read_to_string(&mut body).await.expect("read");
            body
        };
        assert!(get("/metrics").await.contains("ferry_reconciles_total{controller=\"source\"} 1"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        stop.cancel();
    }
}
