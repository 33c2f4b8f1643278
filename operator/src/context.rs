//! What every reconcile shares: the client, settings, the event recorder, the metrics and the
//! readiness.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::events::EventKind;
use crate::health::Health;
use crate::job::decisions::Backoff;
use crate::job::pod::PodSettings;
use crate::metrics::Metrics;
use crate::scope::WatchScope;

/// Field manager of the operator's server-side applies (the worker uses `ferry-worker`).
pub const FIELD_MANAGER: &str = "ferry-operator";

/// The operator's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub pod: PodSettings,
    /// Most MigrationJobs per namespace; later ones wait (the reference product allows 100).
    pub max_jobs_per_namespace: usize,
    /// How often a MigrationSource is checked again when nothing changes.
    pub source_recheck: Duration,
    pub backoff: Backoff,
    /// The namespaces the controllers watch.
    pub scope: WatchScope,
}

/// Shared by the reconcilers.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// What `/readyz` reports.
    pub health: Health,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Metrics,
        health: Health,
        instance: String,
    ) -> Self {
        let reporter = Reporter { controller: "ferry-operator".into(), instance: Some(instance) };
        let recorder = Recorder::new(client.clone(), reporter);
        Self { client, settings, recorder, metrics, health }
    }

    /// Publishes an event about `object`; a failure is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectReference,
        kind: EventKind,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: match kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(reason, "could not publish an event: {e}");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
