//! GTID positions as replication advances: MariaDB's `domain-server-seq` list (one GTID per
//! domain) and MySQL's GTID set (`uuid:1-5:7,uuid2:1-3`, intervals of executed transactions).

use std::collections::BTreeMap;

use super::event::MariaGtid;

/// The executed GTIDs, in whichever flavor the source uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GtidState {
    maria: BTreeMap<u32, MariaGtid>,
    mysql: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidState {
    /// Parses a GTID set in either flavor (parts may mix); the error names the part that is
    /// neither a MariaDB GTID nor a MySQL GTID set.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut state = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(gtid) = parse_maria(part) {
                state.maria.insert(gtid.domain, gtid);
            } else if let Some(sources) = parse_mysql(part) {
                for (source, intervals) in sources {
                    state.mysql.entry(source).or_default().extend(intervals);
                }
            } else {
                return Err(format!(
                    "`{part}` is neither a MariaDB GTID (domain-server-seq, such as 0-1-100) nor \
                     a MySQL GTID set (uuid:first-last, such as \
                     3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100)"
                ));
            }
        }
        for intervals in state.mysql.values_mut() {
            normalize(intervals);
        }
        Ok(state)
    }

    pub fn add_maria(&mut self, gtid: MariaGtid) {
        self.maria.insert(gtid.domain, gtid);
    }

    /// Adds transaction `gno` of `source` (`uuid` or `uuid:tag`).
    pub fn add_mysql(&mut self, source: &str, gno: u64) {
        let intervals = self.mysql.entry(source.to_ascii_lowercase()).or_default();
        match intervals.last_mut() {
            // The common case: the next transaction of the same source.
            Some(last) if last.1 + 1 == gno => last.1 = gno,
            _ => {
                intervals.push((gno, gno));
                normalize(intervals);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.maria.is_empty() && self.mysql.is_empty()
    }

    pub fn has_mysql(&self) -> bool {
        !self.mysql.is_empty()
    }

    /// The GTIDs of `self` that `executed` (a server's executed set) lacks; empty when the
    /// server holds every one. A MariaDB position counts as held when the server's GTID of the
    /// domain is the same one or a later sequence number.
    pub fn missing_from(&self, executed: &GtidState) -> GtidState {
        let maria = self.maria.iter().filter(|(domain, gtid)| {
            executed.maria.get(domain).is_none_or(|held| {
                held.seq < gtid.seq || (held.seq == gtid.seq && held.server != gtid.server)
            })
        });
        let mysql = self.mysql.iter().filter_map(|(source, intervals)| {
            let held = executed.mysql.get(source).map(Vec::as_slice).unwrap_or_default();
            let missing = subtract(intervals, held);
            (!missing.is_empty()).then(|| (source.clone(), missing))
        });
        GtidState {
            maria: maria.map(|(domain, gtid)| (*domain, *gtid)).collect(),
            mysql: mysql.collect(),
        }
    }
}

/// The parts of the sorted, merged `intervals` outside the sorted, merged `held`.
fn subtract(intervals: &[(u64, u64)], held: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut missing = Vec::new();
    for &(first, b) in intervals {
        let mut a = first;
        for &(h_a, h_b) in held.iter().filter(|&&(h_a, h_b)| h_b >= first && h_a <= b) {
            if h_a > a {
                missing.push((a, h_a - 1));
            }
            a = h_b.saturating_add(1);
            if a > b {
                break;
            }
        }
        if a <= b {
            missing.push((a, b));
        }
    }
    missing
}

impl std::fmt::Display for GtidState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let maria = self.maria.values().map(|g| g.to_string());
        let mysql = self.mysql.iter().map(|(source, intervals)| {
            let ranges = intervals
                .iter()
                .map(|&(a, b)| if a == b { format!(":{a}") } else { format!(":{a}-{b}") });
            format!("{source}{}", ranges.collect::<String>())
        });
        write!(f, "{}", maria.chain(mysql).collect::<Vec<_>>().join(","))
    }
}

fn parse_maria(text: &str) -> Option<MariaGtid> {
    let mut it = text.split('-');
    let gtid = MariaGtid {
        domain: it.next()?.parse().ok()?,
        server: it.next()?.parse().ok()?,
        seq: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(gtid)
}

/// A GTID source (`uuid` or `uuid:tag`) and inclusive intervals of its transaction numbers.
type SourceIntervals = (String, Vec<(u64, u64)>);

/// `uuid:a-b:c[:tag:d-e...]` into its sources (`uuid`, `uuid:tag`) and their inclusive
/// intervals: as MySQL 8.4 prints a set, a tag applies to the intervals after it, up to the next
/// tag.
fn parse_mysql(text: &str) -> Option<Vec<SourceIntervals>> {
    let mut parts = text.split(':');
    let uuid = parts.next()?.trim().to_ascii_lowercase();
    if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    let mut sources = vec![(uuid.clone(), Vec::new())];
    for part in parts {
        let part = part.trim();
        if part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            sources.push((format!("{uuid}:{}", part.to_ascii_lowercase()), Vec::new()));
            continue;
        }
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (a <= b && a > 0).then_some(())?;
        sources.last_mut()?.1.push((a, b));
    }
    // Every source named needs intervals, except the bare uuid before a tag.
    let (first, tagged) = sources.split_first()?;
    let complete =
        tagged.iter().all(|(_, i)| !i.is_empty()) && (!first.1.is_empty() || !tagged.is_empty());
    complete.then(|| sources.into_iter().filter(|(_, i)| !i.is_empty()).collect())
}

/// Sorts intervals and merges the ones that overlap or touch.
fn normalize(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mysql_sets_grow_and_merge() {
        let mut state =
            GtidState::parse(&format!("{}:1-5:8, {UUID}:7", UUID.to_uppercase())).unwrap();
        assert_eq!(state.to_string(), format!("{UUID}:1-5:7-8"));
        state.add_mysql(UUID, 9);
        state.add_mysql(UUID, 6);
        state.add_mysql("aaaaaaaa-71ca-11e1-9e33-c80aa9429562", 1);
        assert_eq!(state.to_string(), format!("{UUID}:1-9,aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1"));
    }

    #[test]
    fn maria_positions_keep_one_gtid_per_domain() {
        let mut state = GtidState::parse("0-1-10,1-2-5").unwrap();
        state.add_maria(MariaGtid { domain: 0, server: 1, seq: 11 });
        assert_eq!(state.to_string(), "0-1-11,1-2-5");
    }

    #[test]
    fn missing_gtids_are_named_per_flavor() {
        let other = "aaaaaaaa-71ca-11e1-9e33-c80aa9429562";
        let missing = |mine: &str, executed: &str| {
            let (mine, executed) = (GtidState::parse(mine), GtidState::parse(executed));
            mine.unwrap().missing_from(&executed.unwrap()).to_string()
        };
        assert_eq!(missing(&format!("{UUID}:1-10"), &format!("{UUID}:1-20,{other}:1")), "");
        assert_eq!(
            missing(&format!("{UUID}:1-10"), &format!("{UUID}:1-3:6-7:10-12")),
            format!("{UUID}:4-5:8-9")
        );
        assert_eq!(
            missing(&format!("{UUID}:1-5,{other}:1-2"), &format!("{UUID}:1-5")),
            format!("{other}:1-2")
        );
        assert_eq!(
            missing(&format!("{UUID}:5-9"), &format!("{UUID}:1-6,{UUID}:9")),
            format!("{UUID}:7-8")
        );
        assert_eq!(missing("0-1-10,1-2-5", "0-1-12,1-2-5"), "");
        assert_eq!(missing("0-1-10,1-2-5", "0-1-9"), "0-1-10,1-2-5");
        assert_eq!(missing("0-1-10", "0-2-10"), "0-1-10", "the same seq of another server");
    }

    #[test]
    fn tagged_and_bad_text() {
        let state = GtidState::parse(&format!("{UUID}:tag1:1-3")).unwrap();
        assert_eq!(state.to_string(), format!("{UUID}:tag1:1-3"));
        // As MySQL prints gtid_executed: untagged intervals first, then each tag's.
        let state = GtidState::parse(&format!("{UUID}:1-58:a_tag:1-4:7:other:2")).unwrap();
        let expected = format!("{UUID}:1-58,{UUID}:a_tag:1-4:7,{UUID}:other:2");
        assert_eq!(state.to_string(), expected);
        assert!(GtidState::parse("").unwrap().is_empty());
        for bad in ["not a gtid", "0-1", "0-1-2x", &format!("{UUID}:5-2"), UUID] {
            let error = GtidState::parse(&format!("0-1-2,{bad}")).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
