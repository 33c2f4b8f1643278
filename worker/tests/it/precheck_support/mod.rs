//! Shared by the precheck tests: a JobConfig for harness servers, and lookups in the items.

use std::time::Duration;

use ferry_crds::Selection;
use ferry_crds::job::{CheckResult, MigrationMode, PrecheckItem, Tier};
use ferry_crds::source::SourceType;
use ferry_harness::SqlServer;
use ferry_worker::config::{Endpoint, JobConfig, JobId, Password, TlsMaterial};

/// An endpoint for a harness server and a user.
pub fn endpoint(server: &impl SqlServer, user: &str, password: &str) -> Endpoint {
    Endpoint {
        host: server.host().to_string(),
        port: server.port(),
        user: user.to_string(),
        password: Password::new(password),
        tls: TlsMaterial::default(),
    }
}

/// A MariaDB-to-MariaDB job as root on both ends, every schema, small tier.
pub fn config(source: &impl SqlServer, target: &impl SqlServer, mode: MigrationMode) -> JobConfig {
    JobConfig {
        id: JobId { namespace: "default".into(), name: "precheck-test".into() },
        owner: Default::default(),
        key: String::new(),
        source_type: SourceType::MariaDB,
        source: endpoint(source, "root", ""),
        target: endpoint(target, "root", ""),
        mode,
        selection: Selection::default(),
        tier: Tier::Small,
        concurrency: Tier::Small.default_concurrency(),
        safe_mode_duration: Duration::from_secs(60),
        merge: Default::default(),
        incremental_start: None,
        overwrite_conflicts_at: None,
        ddl_error_policy: Vec::new(),
        cutover: ferry_worker::config::CutoverSettings::from_spec(None),
        validation: None,
    }
}

/// Only these databases.
pub fn databases(names: &[&str]) -> Selection {
    Selection::databases(names)
}

pub async fn check(config: &JobConfig) -> Vec<PrecheckItem> {
    ferry_worker::precheck::check(config).await.expect("precheck runs")
}

/// The item named `name`; fails the test with every item shown when it is absent.
pub fn item<'a>(items: &'a [PrecheckItem], name: &str) -> &'a PrecheckItem {
    items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no item {name} in:\n{}", show(items)))
}

/// Asserts the item's result and that its observed value contains `observed`; a failure or
/// warning must also say why and what to do.
pub fn assert_item(items: &[PrecheckItem], name: &str, result: CheckResult, observed: &str) {
    let found = item(items, name);
    assert_eq!(found.result, result, "{name}:\n{}", show(items));
    let seen = found.observed.as_deref().unwrap_or("");
    assert!(seen.contains(observed), "{name}: observed {seen:?} lacks {observed:?}");
    if result != CheckResult::Pass {
        assert!(found.reason.as_deref().is_some_and(|r| !r.is_empty()), "{name} has no reason");
        assert!(found.remedy.as_deref().is_some_and(|r| !r.is_empty()), "{name} has no remedy");
    }
}

pub fn assert_absent(items: &[PrecheckItem], name: &str) {
    assert!(items.iter().all(|i| i.name != name), "{name} should not be checked:\n{}", show(items));
}

/// The names of the failed items. An empty list of items is itself an error: "no failure" must
/// not pass because nothing was checked.
pub fn failures(items: &[PrecheckItem]) -> Vec<&str> {
    assert!(!items.is_empty(), "the precheck returned no item at all");
    items.iter().filter(|i| i.result == CheckResult::Failure).map(|i| i.name.as_str()).collect()
}

pub fn show(items: &[PrecheckItem]) -> String {
    items
        .iter()
        .map(|i| {
            let (observed, reason) = (i.observed.as_deref(), i.reason.as_deref());
            // The reason says why a check failed (e.g. the connection error).
            format!(
                "  {:?} {}: {} {}",
                i.result,
                i.name,
                observed.unwrap_or(""),
                reason.unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
