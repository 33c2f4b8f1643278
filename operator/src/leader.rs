//! Leader election on a `coordination.k8s.io` Lease, so that two replicas are safe: only the
//! holder reconciles. The holder renews every `renew` interval; another replica takes over once
//! the lease has not been renewed for `duration`. A holder that cannot renew in time stops
//! (`lost` is cancelled) rather than risk two active controllers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use crate::error::{Result, kube_err};

/// Where the lease lives and how it is timed.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
}

/// A held lease: renewed in the background until released or lost.
pub struct Leadership {
    pub lost: CancellationToken,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Waits until this replica holds the lease (or `shutdown` is cancelled: `None`).
pub async fn acquire(
    client: Client,
    settings: LeaseSettings,
    shutdown: &CancellationToken,
) -> Result<Option<Leadership>> {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    loop {
        if try_take(&api, &settings).await? {
            tracing::info!(identity = %settings.identity, lease = %settings.name, "became the leader");
            let lost = CancellationToken::new();
            let stop = CancellationToken::new();
            let task = tokio::spawn(renew_loop(api, settings, lost.clone(), stop.clone()));
            return Ok(Some(Leadership { lost, stop, task }));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(settings.renew) => {}
        }
    }
}

impl Leadership {
    /// Stops renewing and gives the lease up so that a standby takes over at once.
    pub async fn release(self, client: Client, settings: &LeaseSettings) {
        self.stop.cancel();
        let _ = self.task.await;
        let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
        if let Ok(Some(mut lease)) = api.get_opt(&settings.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(settings.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                if let Err(e) = api.replace(&settings.name, &PostParams::default(), &lease).await {
                    tracing::warn!("could not release the leader lease: {e}");
                }
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref() else { return true };
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed.0.as_second() + seconds < now.as_second()
}

/// Takes the lease if it is free, expired or already ours. A conflicting write means another
/// replica was faster: not taken.
async fn try_take(api: &Api<Lease>, settings: &LeaseSettings) -> Result<bool> {
    let existing = api
        .get_opt(&settings.name)
        .await
        .map_err(kube_err(format!("read lease {}", settings.name)))?;
    let duration = i32::try_from(settings.duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(settings.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(settings.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(kube_err("create the leader lease")(e)),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let ours = spec.holder_identity.as_deref() == Some(settings.identity.as_str());
    let free = spec.holder_identity.is_none() || expired(spec, Timestamp::now());
    if !ours && !free {
        return Ok(false);
    }
    if !ours {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now());
    }
    spec.holder_identity = Some(settings.identity.clone());
    spec.lease_duration_seconds = Some(duration);
    spec.renew_time = Some(now());
    // `replace` carries the resourceVersion we read: optimistic concurrency between replicas.
    match api.replace(&settings.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(kube_err("take the leader lease")(e)),
    }
}

async fn renew_loop(
    api: Api<Lease>,
    settings: LeaseSettings,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(settings.renew) => {}
        }
        match try_take(&api, &settings).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("another replica holds the leader lease now; stopping");
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!("could not renew the leader lease: {e}");
                if last_renewal.elapsed() >= settings.duration {
                    tracing::error!(
                        "leader lease not renewed within {:?}; stopping",
                        settings.duration
                    );
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
