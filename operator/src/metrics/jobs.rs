//! Per-MigrationJob series, rendered at each scrape from what each job last reported (the way
//! kube-state-metrics does): a job that changes phase or goes away leaves no stale series.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ferry_crds::job::{MigrationJobStatus, Phase, Stage};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

const PHASES: [Phase; 5] =
    [Phase::Pending, Phase::Running, Phase::Paused, Phase::Failed, Phase::Completed];

/// What a job last reported.
#[derive(Clone, Debug, PartialEq)]
struct JobSample {
    phase: Phase,
    stage: Option<Stage>,
    lag_seconds: Option<i64>,
    lag_bytes: Option<i64>,
    apply_rows_per_second: Option<i64>,
    copied_rows: Option<i64>,
    copied_bytes: Option<i64>,
    validated_rows: Option<i64>,
    validation_mismatches: Option<i64>,
}

/// The jobs' last reports, by `(namespace, name)`.
#[derive(Debug, Default)]
pub(super) struct JobCollector {
    jobs: Mutex<BTreeMap<(String, String), JobSample>>,
}

impl JobCollector {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<(String, String), JobSample>) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-insert of a sample.
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut jobs)
    }

    pub(super) fn observe(
        &self,
        namespace: &str,
        name: &str,
        phase: Phase,
        status: &MigrationJobStatus,
    ) {
        let incremental = status.incremental.as_ref();
        let sample = JobSample {
            phase,
            stage: status.stage,
            lag_seconds: incremental.and_then(|i| i.lag_seconds),
            lag_bytes: incremental.and_then(|i| i.lag_bytes),
            apply_rows_per_second: incremental.and_then(|i| i.rows_per_second),
            copied_rows: status.full.as_ref().map(|f| f.rows),
            copied_bytes: status.full.as_ref().map(|f| f.bytes),
            validated_rows: status.validation.as_ref().map(|v| v.rows_checked),
            validation_mismatches: status.validation.as_ref().map(|v| v.mismatched),
        };
        self.with(|jobs| jobs.insert((namespace.into(), name.into()), sample));
    }

    pub(super) fn forget(&self, namespace: &str, name: &str) {
        self.with(|jobs| jobs.remove(&(namespace.to_string(), name.to_string())));
    }
}

/// A per-job value: gauge or counter, and how to read it from a sample.
struct PerJob {
    name: &'static str,
    help: &'static str,
    counter: bool,
    value: fn(&JobSample) -> Option<i64>,
}

const PER_JOB: [PerJob; 7] = [
    PerJob {
        name: "ferry_job_lag_seconds",
        help: "Replication lag the worker reported: seconds between the newest applied event's \
               source time and now",
        counter: false,
        value: |j| j.lag_seconds,
    },
    PerJob {
        name: "ferry_job_lag_bytes",
        help: "Bytes of binlog between the applied position and the source's head",
        counter: false,
        value: |j| j.lag_bytes,
    },
    PerJob {
        name: "ferry_job_apply_rows_per_second",
        help: "Recent binlog apply throughput the worker reported (the status carries no count \
               of applied rows to derive it from)",
        counter: false,
        value: |j| j.apply_rows_per_second,
    },
    PerJob {
        // Counters get `_total` from the encoder.
        name: "ferry_job_copied_rows",
        help: "Rows the existing-data copy has written; starts again from 0 when the copy restarts",
        counter: true,
        value: |j| j.copied_rows,
    },
    PerJob {
        name: "ferry_job_copied_bytes",
        help: "Row data bytes the existing-data copy has sent to the target; starts again from 0 \
               when the copy restarts",
        counter: true,
        value: |j| j.copied_bytes,
    },
    PerJob {
        name: "ferry_job_validated_rows",
        help: "Rows continuous validation (spec.validation) compared and found equal since the \
               worker started",
        counter: true,
        value: |j| j.validated_rows,
    },
    PerJob {
        name: "ferry_job_validation_mismatches",
        help: "Rows continuous validation found different on the target while the source held \
               still, since the worker started",
        counter: true,
        value: |j| j.validation_mismatches,
    },
];

fn label(value: impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.with(|jobs| {
            encode_phase_counts(&mut encoder, jobs)?;
            let mut status = encoder.encode_descriptor(
                "ferry_job_status",
                "1 for each MigrationJob's current stage and phase",
                None,
                MetricType::Gauge,
            )?;
            for ((namespace, name), sample) in jobs.iter() {
                let stage = sample.stage.map(label).unwrap_or_default();
                let phase = label(sample.phase);
                let labels = [
                    ("namespace", namespace.as_str()),
                    ("migrationjob", name),
                    ("stage", &stage),
                    ("phase", &phase),
                ];
                ConstGauge::new(1i64).encode(status.encode_family(&labels)?)?;
            }
            for metric in &PER_JOB {
                let kind = if metric.counter { MetricType::Counter } else { MetricType::Gauge };
                let mut family = encoder.encode_descriptor(metric.name, metric.help, None, kind)?;
                for ((namespace, name), sample) in jobs.iter() {
                    let Some(value) = (metric.value)(sample) else { continue };
                    let labels = [("namespace", namespace.as_str()), ("migrationjob", name)];
                    let sample = family.encode_family(&labels)?;
                    if metric.counter {
                        ConstCounter::new(u64::try_from(value).unwrap_or(0)).encode(sample)?;
                    } else {
                        ConstGauge::new(value).encode(sample)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// `ferry_jobs`: how many jobs of each namespace are in each phase, 0 included.
fn encode_phase_counts(
    encoder: &mut DescriptorEncoder,
    jobs: &BTreeMap<(String, String), JobSample>,
) -> Result<(), std::fmt::Error> {
    let mut counts: BTreeMap<(&str, String), i64> = BTreeMap::new();
    for ((namespace, _), sample) in jobs {
        for phase in PHASES {
            counts.entry((namespace, label(phase))).or_default();
        }
        *counts.entry((namespace, label(sample.phase))).or_default() += 1;
    }
    let mut family = encoder.encode_descriptor(
        "ferry_jobs",
        "MigrationJobs by namespace and phase",
        None,
        MetricType::Gauge,
    )?;
    for ((namespace, phase), n) in counts {
        let labels = [("namespace", namespace), ("phase", phase.as_str())];
        ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
