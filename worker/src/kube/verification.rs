//! Verification on request: for a new `spec.verify.request` the worker compares every selected
//! table ([`crate::verify`], as `ferry verify` does) beside the running job and reports
//! `status.verification` (progress while it runs, then the differences by table with sample
//! keys) and the `Verified` condition.

use std::time::Duration;

use chrono::Utc;
use ferry_crds::verification::{
    SAMPLE_KEYS, TableDifferences, VERIFIED, VerificationState, VerificationStatus,
};

use crate::config::JobConfig;
use crate::report::{StatusReporter, set_condition};
use crate::verify::{self, Report, RowDiff, TableReport};

/// Runs the verification `request` and reports it; a failure is reported, never fatal to the job.
pub async fn run_request(config: &JobConfig, reporter: &StatusReporter, request: String) {
    tracing::info!(request = %request, "verification requested");
    let started = Utc::now().to_rfc3339();
    reporter.update(|s| {
        s.verification = Some(VerificationStatus {
            request: request.clone(),
            state: VerificationState::Running,
            tables_done: 0,
            tables_total: 0,
            rows_compared: 0,
            tables: Vec::new(),
            position: None,
            message: None,
            started: started.clone(),
            finished: None,
        });
        let message = "comparing every selected table of source and target";
        set_condition(&mut s.conditions, VERIFIED, false, "Running", message);
    });
    reporter.publish().await;
    let options = verify::Options {
        concurrency: config.concurrency.max(1),
        settle_timeout: Duration::from_secs(60),
        catch_up_timeout: Duration::from_secs(120),
        only: None,
    };
    let progress = |p: &verify::Progress| {
        reporter.update(|s| {
            if let Some(v) = s.verification.as_mut() {
                v.tables_done = p.tables_done as i64;
                v.tables_total = p.tables_total as i64;
                v.rows_compared = p.rows_compared as i64;
                v.position = p.position.clone();
            }
        })
    };
    let result = verify::run_reporting(config, &options, progress).await;
    reporter.update(|s| {
        let Some(v) = s.verification.as_mut() else { return };
        v.finished = Some(Utc::now().to_rfc3339());
        let (equal, reason, message) = match &result {
            Ok(report) => {
                record(v, report);
                let (reason, message) = outcome(report);
                (report.equal, reason, message)
            }
            Err(error) => {
                tracing::warn!(error = %error, "verification failed");
                v.state = VerificationState::Failed;
                v.message = Some(error.to_string());
                (false, "Failed", format!("verification could not conclude: {error}"))
            }
        };
        set_condition(&mut s.conditions, VERIFIED, equal, reason, message);
    });
    reporter.publish().await;
}

/// Puts a finished report into the status.
fn record(status: &mut VerificationStatus, report: &Report) {
    status.state =
        if report.equal { VerificationState::Equal } else { VerificationState::Different };
    status.tables_done = report.tables.len() as i64;
    status.tables_total = report.tables.len() as i64;
    status.rows_compared = report.tables.iter().map(|t| t.rows_compared as i64).sum();
    status.tables = report.tables.iter().filter(|t| !t.is_equal()).map(differences).collect();
    status.position = report.position.clone().or(status.position.take());
    status.message = (!report.notes.is_empty()).then(|| report.notes.join("; "));
}

/// The condition's reason and message for a finished report.
fn outcome(report: &Report) -> (&'static str, String) {
    let rows: u64 = report.tables.iter().map(|t| t.rows_compared).sum();
    if report.equal {
        let message = format!("{} tables, {rows} rows: equal", report.tables.len());
        return ("Equal", message);
    }
    let differing: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.is_equal())
        .map(|t| crate::sql::qualified(&t.database, &t.table))
        .collect();
    ("Differences", format!("rows differ in {}; see status.verification", differing.join(", ")))
}

/// One differing table: counts and a few keys of each kind.
fn differences(table: &TableReport) -> TableDifferences {
    let kinds: [(&str, &Vec<RowDiff>); 4] = [
        ("missing", &table.missing),
        ("extra", &table.extra),
        ("different", &table.different),
        ("unsettled", &table.unsettled),
    ];
    let sample_keys = kinds
        .iter()
        .flat_map(|(kind, rows)| {
            rows.iter().take(SAMPLE_KEYS).map(move |r| format!("{kind}: {}", r.key.join(", ")))
        })
        .collect();
    TableDifferences {
        database: table.database.clone(),
        table: table.table.clone(),
        missing: table.missing.len() as i64,
        extra: table.extra.len() as i64,
        different: table.different.len() as i64,
        unsettled: table.unsettled.len() as i64,
        sample_keys,
        problem: table.problem.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str) -> RowDiff {
        RowDiff { key: vec![key.to_string()], count: 1 }
    }

    #[test]
    fn a_differing_table_shows_counts_and_a_few_keys_of_each_kind() {
        let table = TableReport {
            database: "app".into(),
            table: "items".into(),
            missing: (1..=7).map(|i| row(&i.to_string())).collect(),
            different: vec![row("'k'")],
            rows_compared: 100,
            ..Default::default()
        };
        let report = Report { equal: false, tables: vec![table], ..Default::default() };
        let mut status = VerificationStatus {
            request: "r".into(),
            state: VerificationState::Running,
            tables_done: 0,
            tables_total: 0,
            rows_compared: 0,
            tables: Vec::new(),
            position: Some("b.000001:4".into()),
            message: None,
            started: String::new(),
            finished: None,
        };
        record(&mut status, &report);
        assert_eq!(status.state, VerificationState::Different);
        assert_eq!((status.tables_done, status.rows_compared), (1, 100));
        let items = &status.tables[0];
        assert_eq!((items.missing, items.different, items.extra), (7, 1, 0));
        assert_eq!(items.sample_keys.len(), SAMPLE_KEYS + 1);
        assert_eq!(items.sample_keys.last().map(String::as_str), Some("different: 'k'"));
        assert_eq!(status.position.as_deref(), Some("b.000001:4"));
        assert_eq!(outcome(&report).0, "Differences");
    }
}
