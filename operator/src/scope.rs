//! Which namespaces the operator watches: every one (the default, with cluster-wide RBAC) or
//! the ones `--watch-namespaces` lists, each with its own Role, so that the operator needs no
//! cluster-wide read of Secrets. The controllers then run once per namespace, each watching
//! namespaced APIs only.

use std::future::Future;

use futures::future::join_all;
use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource};
use tokio_util::sync::CancellationToken;

/// The namespaces the operator acts in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchScope {
    /// Empty: every namespace.
    namespaces: Vec<String>,
}

impl WatchScope {
    /// Only `namespaces` (blank names dropped, duplicates once); none: every namespace.
    pub fn new(namespaces: impl IntoIterator<Item = String>) -> Self {
        let mut namespaces: Vec<String> = namespaces
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        Self { namespaces }
    }

    /// What one controller instance watches each: `None` for every namespace at once.
    pub fn watched(&self) -> Vec<Option<String>> {
        if self.namespaces.is_empty() {
            return vec![None];
        }
        self.namespaces.iter().cloned().map(Some).collect()
    }
}

/// The API of `K` in `namespace`, or in every namespace for `None`.
pub fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs `controller` once per watched namespace until `shutdown`. When one instance stops on
/// its own the others are stopped too, so the caller sees the controller stop as one.
pub async fn run_each<F, Fut>(scope: &WatchScope, shutdown: CancellationToken, controller: F)
where
    F: Fn(Option<String>, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let stop = shutdown.child_token();
    let instances = scope.watched().into_iter().map(|namespace| {
        let stop = stop.clone();
        let instance = controller(namespace, stop.clone());
        async move {
            instance.await;
            stop.cancel();
        }
    });
    join_all(instances).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_namespaces_means_all_at_once() {
        assert_eq!(WatchScope::new(Vec::new()).watched(), [None]);
        assert_eq!(WatchScope::new([" ".to_string()]).watched(), [None]);
        let scope = WatchScope::new(["b", "a", "b"].map(String::from));
        assert_eq!(scope.watched(), [Some("a".to_string()), Some("b".to_string())]);
    }

    #[tokio::test]
    async fn one_instance_stopping_on_its_own_stops_the_others() {
        let scope = WatchScope::new(["a", "b", "c"].map(String::from));
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicUsize::new(0));
        run_each(&scope, shutdown.clone(), |namespace, stop| {
            let stopped = stopped.clone();
            async move {
                // "b" ends by itself; the others wait for the stop it causes.
                if namespace.as_deref() != Some("b") {
                    stop.cancelled().await;
                }
                stopped.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        assert_eq!(stopped.load(Ordering::Relaxed), 3);
        assert!(!shutdown.is_cancelled(), "the caller's token is left for it to judge");
    }
}
