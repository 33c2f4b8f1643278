//! The tier of a job decides its worker pod's CPU and memory and the engine's concurrency.
//! The mapping is a setting (`--tiers FILE`, YAML); [`Tiers::default`] is the built-in one.

use std::path::Path;

use ferry_crds::job::Tier;
use serde::{Deserialize, Serialize};

/// Resources and concurrency of one tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TierSettings {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
    /// Connections the worker copies and applies with.
    pub concurrency: usize,
}

/// Every tier's settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub small: TierSettings,
    pub medium: TierSettings,
    pub large: TierSettings,
    pub xlarge: TierSettings,
}

/// Why a tiers file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TiersError {
    #[error("cannot read the tiers file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "the tiers file {path} is not valid: {message}; it needs small, medium, large and xlarge, \
         each with cpuRequest, cpuLimit, memoryRequest, memoryLimit and concurrency"
    )]
    Invalid { path: String, message: String },
}

fn tier(
    cpu: &str,
    cpu_limit: &str,
    memory: &str,
    memory_limit: &str,
    concurrency: usize,
) -> TierSettings {
    TierSettings {
        cpu_request: cpu.into(),
        cpu_limit: cpu_limit.into(),
        memory_request: memory.into(),
        memory_limit: memory_limit.into(),
        concurrency,
    }
}

impl Default for Tiers {
    /// Limits follow the API's tier documentation (1, 2, 4, 8 CPUs; 4 to 32 connections);
    /// requests are half, so a job fits on a busy node and bursts when it can.
    fn default() -> Self {
        Self {
            small: tier("500m", "1", "512Mi", "1Gi", Tier::Small.default_concurrency()),
            medium: tier("1", "2", "1Gi", "2Gi", Tier::Medium.default_concurrency()),
            large: tier("2", "4", "2Gi", "4Gi", Tier::Large.default_concurrency()),
            xlarge: tier("4", "8", "4Gi", "8Gi", Tier::Xlarge.default_concurrency()),
        }
    }
}

impl Tiers {
    /// Reads a YAML tiers file.
    pub fn load(path: &Path) -> Result<Self, TiersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| TiersError::Read { path: shown.clone(), source })?;
        let tiers: Tiers = serde_yaml::from_str(&text)
            .map_err(|e| TiersError::Invalid { path: shown.clone(), message: e.to_string() })?;
        for (name, settings) in tiers.all() {
            if settings.concurrency == 0 {
                let message = format!("{name}.concurrency must be at least 1");
                return Err(TiersError::Invalid { path: shown, message });
            }
        }
        Ok(tiers)
    }

    /// The settings of `tier`.
    pub fn get(&self, tier: Tier) -> &TierSettings {
        match tier {
            Tier::Small => &self.small,
            Tier::Medium => &self.medium,
            Tier::Large => &self.large,
            Tier::Xlarge => &self.xlarge,
        }
    }

    fn all(&self) -> [(&'static str, &TierSettings); 4] {
        [
            ("small", &self.small),
            ("medium", &self.medium),
            ("large", &self.large),
            ("xlarge", &self.xlarge),
        ]
    }
}

/// The tier's name as in `spec.tier`.
pub fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Small => "small",
        Tier::Medium => "medium",
        Tier::Large => "large",
        Tier::Xlarge => "xlarge",
    }
}

/// The tier named `name` (`spec.tier` spelling).
pub fn parse_tier(name: &str) -> Option<Tier> {
    [Tier::Small, Tier::Medium, Tier::Large, Tier::Xlarge]
        .into_iter()
        .find(|t| tier_name(*t) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_grow_with_the_tier() {
        let tiers = Tiers::default();
        assert_eq!(tiers.get(Tier::Small).cpu_limit, "1");
        assert_eq!(tiers.get(Tier::Xlarge).concurrency, 32);
        for t in [Tier::Small, Tier::Medium, Tier::Large, Tier::Xlarge] {
            assert_eq!(parse_tier(tier_name(t)), Some(t));
        }
    }

    #[test]
    fn a_tiers_file_round_trips_and_bad_ones_say_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("ferry-tiers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.yaml");
        let mut tiers = Tiers::default();
        tiers.small.concurrency = 2;
        std::fs::write(&good, serde_yaml::to_string(&tiers).expect("yaml")).expect("write");
        assert_eq!(Tiers::load(&good).expect("loads"), tiers);
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "small: {cpuRequest: '1'}\n").expect("write");
        let message = Tiers::load(&bad).expect_err("incomplete").to_string();
        assert!(message.contains("small, medium, large and xlarge"), "{message}");
        tiers.large.concurrency = 0;
        std::fs::write(&bad, serde_yaml::to_string(&tiers).expect("yaml")).expect("write");
        let message = Tiers::load(&bad).expect_err("zero").to_string();
        assert!(message.contains("large.concurrency"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
