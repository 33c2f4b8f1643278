//! Building precheck items and summing them up.

use ferry_crds::job::{CheckResult, PrecheckItem};

/// An item that passed, with what was seen.
pub fn pass(name: &str, observed: impl Into<String>) -> PrecheckItem {
    item(name, CheckResult::Pass, observed.into(), None, None)
}

/// An item the job can live with; the reason says what to expect.
pub fn warning(
    name: &str,
    observed: impl Into<String>,
    reason: impl Into<String>,
    remedy: impl Into<String>,
) -> PrecheckItem {
    item(name, CheckResult::Warning, observed.into(), Some(reason.into()), Some(remedy.into()))
}

/// An item that stops the job until the remedy is applied.
pub fn failure(
    name: &str,
    observed: impl Into<String>,
    reason: impl Into<String>,
    remedy: impl Into<String>,
) -> PrecheckItem {
    item(name, CheckResult::Failure, observed.into(), Some(reason.into()), Some(remedy.into()))
}

fn item(
    name: &str,
    result: CheckResult,
    observed: String,
    reason: Option<String>,
    remedy: Option<String>,
) -> PrecheckItem {
    PrecheckItem {
        name: name.to_string(),
        result,
        observed: (!observed.is_empty()).then_some(observed),
        reason,
        remedy,
    }
}

/// How many names an observed value lists before "and N more": the status must stay small on
/// sources with thousands of tables.
pub const LIST_LIMIT: usize = 10;

/// `a, b, c and 12 more`.
pub fn list<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(LIST_LIMIT).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if names.len() > LIST_LIMIT {
        text.push_str(&format!(" and {} more", names.len() - LIST_LIMIT));
    }
    text
}

/// Counts of each result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub warnings: usize,
    pub failures: usize,
}

impl Summary {
    pub fn of(items: &[PrecheckItem]) -> Self {
        let count = |r: CheckResult| items.iter().filter(|i| i.result == r).count();
        Self {
            passed: count(CheckResult::Pass),
            warnings: count(CheckResult::Warning),
            failures: count(CheckResult::Failure),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} warning(s), {} failure(s)",
            self.passed, self.warnings, self.failures
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        let text = list(&names);
        assert!(text.starts_with("t0, t1,"));
        assert!(text.ends_with("t9 and 15 more"), "{text}");
        assert_eq!(list(&["a", "b"]), "a, b");
    }
}
