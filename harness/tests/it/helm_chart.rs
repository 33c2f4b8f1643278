//! The Helm chart `charts/ferry`: `helm lint --strict`, every value variant rendered and checked
//! by kubernetes-validate (strict: unknown fields fail) against the harness's Kubernetes
//! version, the values schema rejecting bad values by name, and no drift from `deploy/` (RBAC,
//! CRDs, security contexts, tiers).
//!
//! kubernetes-validate knows the built-in kinds only. The CustomResourceDefinitions themselves
//! are built-in objects and are validated; the one custom resource the chart renders, the
//! prometheus-operator ServiceMonitor (`serviceMonitor.enabled`), is accepted unvalidated for
//! that kind only, and `service_monitor_scrapes_the_metrics_service` checks it by hand.
//!
//! Needs helm and kubernetes-validate (`dev/setup.sh`); fails, not skips, without them.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_harness::chart::{self, NAMESPACE, documents, repo_root, template, validate};
use serde_json::{Value, json};

type Docs = Vec<Value>;

fn render(set: &[&str]) -> anyhow::Result<Docs> {
    Ok(documents(&template(set)?)?)
}

fn kinds(docs: &Docs) -> Vec<(String, String)> {
    docs.iter().map(|d| (d["kind"].as_str().unwrap_or("").into(), name(d).into())).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

/// The one document of `kind` (and `name`, when given).
fn find<'a>(docs: &'a Docs, kind: &str, named: Option<&str>) -> &'a Value {
    let mut hits = docs.iter().filter(|d| d["kind"] == kind && named.is_none_or(|n| name(d) == n));
    let hit = hits.next().unwrap_or_else(|| panic!("no {kind} {named:?} in {:?}", kinds(docs)));
    assert!(hits.next().is_none(), "more than one {kind} {named:?}");
    hit
}

fn all_of<'a>(docs: &'a Docs, kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn read_yaml(path: &str) -> anyhow::Result<Docs> {
    Ok(documents(&std::fs::read_to_string(repo_root().join(path))?)?)
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn args(deployment: &Value) -> Vec<String> {
    let args = container(deployment)["args"].as_array().cloned().unwrap_or_default();
    args.iter().map(|a| a.as_str().unwrap_or_default().to_string()).collect()
}

fn env(deployment: &Value, variable: &str) -> Option<String> {
    let env = container(deployment)["env"].as_array().cloned().unwrap_or_default();
    env.iter().find(|e| e["name"] == variable).and_then(|e| e["value"].as_str()).map(Into::into)
}

#[test]
fn helm_lint_strict_passes() -> anyhow::Result<()> {
    let chart = chart::chart_dir();
    let out = chart::helm_run(&["lint", "--strict", chart.to_str().unwrap()])?;
    assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
    Ok(())
}

#[test]
fn versions_are_pinned_in_one_place() -> anyhow::Result<()> {
    let chart: Value =
        documents(&std::fs::read_to_string(chart::chart_dir().join("Chart.yaml"))?)?.remove(0);
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["appVersion"], workspace, "Chart.yaml appVersion vs the Cargo workspace");
    assert_eq!(chart["version"], workspace, "Chart.yaml version vs the Cargo workspace");
    let script = std::fs::read_to_string(repo_root().join("dev/install-helm.sh"))?;
    assert!(script.contains(&format!("HELM_VERSION=\"{}\"", chart::HELM_VERSION)));
    let pin = format!("KUBERNETES_VALIDATE_VERSION=\"{}\"", chart::KUBERNETES_VALIDATE_VERSION);
    assert!(script.contains(&pin), "dev/install-helm.sh installs another kubernetes-validate");
    Ok(())
}

/// Each variant renders objects that kubernetes-validate accepts, every object checked.
#[test]
fn every_variant_renders_valid_objects() -> anyhow::Result<()> {
    let variants: &[(&str, &[&str])] = &[
        ("defaults", &[]),
        ("no CRDs", &["crds.install=false"]),
        ("ServiceMonitor", &["serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom"]),
        ("custom tiers", &["tiers.small.cpuLimit=1500m", "tiers.xlarge.concurrency=64"]),
        ("one replica, no leader election", &["replicaCount=1", "leaderElection.enabled=false"]),
        ("text logs", &["logFormat=text", "logLevel=debug"]),
        (
            "scheduling",
            &[
                "nodeSelector.kubernetes\\.io/os=linux",
                "tolerations[0].key=dedicated",
                "tolerations[0].operator=Exists",
                "tolerations[0].effect=NoSchedule",
                "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
                "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=In",
                "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]=amd64",
                "imagePullSecrets[0].name=registry",
                "priorityClassName=system-cluster-critical",
            ],
        ),
        (
            "own service account",
            &["serviceAccount.name=migrator", "serviceAccount.annotations.team=data"],
        ),
        ("existing service account", &["serviceAccount.create=false", "serviceAccount.name=sa"]),
        ("as a subchart", &["enabled=true", "global.imageRegistry=registry.example"]),
        ("name overrides", &["nameOverride=mover", "fullnameOverride=data-mover"]),
        ("no PodDisruptionBudget", &["podDisruptionBudget.enabled=false"]),
        ("dashboard", &["grafanaDashboard.enabled=true", "grafanaDashboard.labels.team=db"]),
        ("PrometheusRule", &["prometheusRule.enabled=true", "prometheusRule.labels.release=p"]),
        ("watched namespaces", &["watchNamespaces={shop,crm}"]),
        (
            "worker pod template",
            &[
                "worker.podTemplate.imagePullSecrets[0].name=registry",
                "worker.podTemplate.nodeSelector.pool=migrations",
                "worker.podTemplate.tolerations[0].key=dedicated",
                "worker.podTemplate.tolerations[0].operator=Exists",
                "worker.podTemplate.priorityClassName=batch",
                "worker.podTemplate.labels.team=data",
            ],
        ),
    ];
    for (what, set) in variants {
        let manifest = template(set)?;
        let docs = documents(&manifest)?;
        let custom: &[&str] = if set.iter().any(|s| s.starts_with("serviceMonitor")) {
            &["ServiceMonitor"]
        } else if set.iter().any(|s| s.starts_with("prometheusRule")) {
            &["PrometheusRule"]
        } else {
            &[]
        };
        let result =
            validate(&manifest, custom).map_err(|e| anyhow::anyhow!("{what} ({set:?}): {e}"))?;
        assert_eq!(
            result.passed.len() + result.unknown.len(),
            docs.len(),
            "{what}: not every object was checked: {result:?}"
        );
        assert_eq!(result.unknown.len(), custom.len(), "{what}: {result:?}");
        for doc in &docs {
            let namespaced = !matches!(
                doc["kind"].as_str(),
                Some("CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding")
            );
            // The operator's Roles in the namespaces it watches.
            let watched = name(doc) == "ferry-operator"
                && matches!(doc["kind"].as_str(), Some("Role" | "RoleBinding"));
            if namespaced && !watched {
                assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{what}: {}", name(doc));
            }
        }
    }
    Ok(())
}

/// The validator really is strict: an unknown field or a wrong type fails (so a pass above
/// means something).
#[test]
fn kubernetes_validate_rejects_unknown_fields() -> anyhow::Result<()> {
    let mut docs = render(&[])?;
    let deployment = docs.iter_mut().find(|d| d["kind"] == "Deployment").expect("Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = json!("Always");
    let manifest = serde_yaml::to_string(deployment)?;
    let err = validate(&manifest, &[]).expect_err("an unknown field passed").to_string();
    assert!(err.contains("imagePullPolice"), "{err}");
    deployment["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("imagePullPolice");
    deployment["spec"]["replicas"] = json!("two");
    let err = validate(&serde_yaml::to_string(deployment)?, &[]).expect_err("a string replicas");
    assert!(err.to_string().contains("replicas"), "{err}");
    Ok(())
}

#[test]
fn crds_are_kept_on_uninstall_and_optional() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let crds = all_of(&docs, "CustomResourceDefinition");
    let names: BTreeSet<&str> = crds.iter().map(|c| name(c)).collect();
    assert_eq!(names, BTreeSet::from(["migrationjobs.ferry.dev", "migrationsources.ferry.dev"]));
    for crd in &crds {
        let annotations = &crd["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{}", name(crd));
        assert_eq!(
            annotations["argocd.argoproj.io/sync-options"],
            "ServerSideApply=true",
            "{}",
            name(crd)
        );
    }
    let without = render(&["crds.install=false"])?;
    assert!(all_of(&without, "CustomResourceDefinition").is_empty(), "{:?}", kinds(&without));
    let mut rest = kinds(&docs);
    rest.retain(|(kind, _)| kind != "CustomResourceDefinition");
    assert_eq!(kinds(&without), rest, "crds.install=false leaves everything else alone");
    Ok(())
}

#[test]
fn bad_values_are_rejected_naming_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (&["logFormat=yaml"], "/logFormat"),
        (&["replicaCount=two"], "/replicaCount"),
        (&["replicas=2"], "'replicas' not allowed"),
        (&["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["worker.image.pullPolicy=Sometimes"], "/worker/image/pullPolicy"),
        (&["tiers.small.concurrency=0"], "/tiers/small/concurrency"),
        (&["tiers.small.cpuLimit=lots"], "/tiers/small/cpuLimit"),
        (&["tiers.huge.concurrency=3"], "'huge' not allowed"),
        (&["tiers.small.threads=3"], "'threads' not allowed"),
        (&["metrics.port=70000"], "/metrics/port"),
        (&["leaderElection.leaseName=Not_A_Name"], "/leaderElection/leaseName"),
        (&["serviceMonitor.interval=often"], "/serviceMonitor/interval"),
        (&["crds.install=maybe"], "/crds/install"),
        (&["watchNamespaces={Shop}"], "/watchNamespaces/0"),
        (&["worker.podTemplate.nodeSelectors.a=b"], "'nodeSelectors' not allowed"),
        (&["fullnameOverride=Data_Mover"], "/fullnameOverride"),
        (&["podDisruptionBudget.maxUnavailable=some"], "/podDisruptionBudget/maxUnavailable"),
        (&["prometheusRule.enabled=yes"], "/prometheusRule/enabled"),
        // An existing account must be named.
        (&["serviceAccount.create=false"], "serviceAccount.name"),
        // Two replicas without the Lease would both reconcile: the template refuses.
        (&["leaderElection.enabled=false"], "leaderElection.enabled"),
    ];
    for (set, field) in cases {
        let err = match template(set) {
            Ok(_) => panic!("{set:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(field), "{set:?}: the error does not name {field}:\n{err}");
    }
}

/// Each value ends up where the operator reads it (its flags and environment, see
/// operator/src/run.rs and main.rs).
#[test]
fn values_reach_the_operator() -> anyhow::Result<()> {
    let default = render(&[])?;
    let deployment = find(&default, "Deployment", Some("ferry-operator"));
    let version = env!("CARGO_PKG_VERSION");
    let image = format!("ghcr.io/ferry-dev/ferry-operator:{version}");
    assert_eq!(container(deployment)["image"], image.as_str(), "tag defaults to appVersion");
    let args = args(deployment);
    for expected in [
        format!("--worker-image=ghcr.io/ferry-dev/ferry:{version}"),
        "--worker-image-pull-policy=IfNotPresent".into(),
        "--tiers=/etc/ferry/tiers.yaml".into(),
        "--metrics-addr=0.0.0.0:8080".into(),
        "--max-jobs-per-namespace=100".into(),
        "--leader-elect=true".into(),
        "--lease-name=ferry-operator".into(),
    ] {
        assert!(args.contains(&expected), "{expected} not in {args:?}");
    }
    assert_eq!(env(deployment, "FERRY_LOG_FORMAT").as_deref(), Some("json"));
    assert!(find(&default, "Role", None)["rules"][0]["resources"] == json!(["leases"]));

    let custom = render(&[
        "image.repository=registry.example/ferry-operator",
        "image.tag=v9",
        "image.pullPolicy=Always",
        "worker.image.repository=registry.example/ferry",
        "worker.image.tag=w1",
        "worker.image.pullPolicy=Never",
        "replicaCount=1",
        "leaderElection.enabled=false",
        "logFormat=text",
        "logLevel=debug",
        "metrics.port=9095",
        "maxJobsPerNamespace=7",
        "tiers.small.cpuLimit=2",
        "tiers.small.concurrency=3",
        "resources.limits.memory=1Gi",
    ])?;
    let deployment = find(&custom, "Deployment", None);
    assert_eq!(deployment["spec"]["replicas"], 1);
    let c = container(deployment);
    assert_eq!(c["image"], "registry.example/ferry-operator:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(c["ports"][0]["containerPort"], 9095);
    let args = self::args(deployment);
    for expected in [
        "--worker-image=registry.example/ferry:w1",
        "--worker-image-pull-policy=Never",
        "--metrics-addr=0.0.0.0:9095",
        "--max-jobs-per-namespace=7",
        "--leader-elect=false",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} not in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--lease-name")), "{args:?}");
    assert_eq!(env(deployment, "FERRY_LOG_FORMAT").as_deref(), Some("text"));
    assert_eq!(env(deployment, "FERRY_LOG").as_deref(), Some("debug"));
    assert!(all_of(&custom, "Role").is_empty() && all_of(&custom, "RoleBinding").is_empty());
    let service = find(&custom, "Service", Some("ferry-operator-metrics"));
    assert_eq!(service["spec"]["ports"][0]["port"], 9095);
    assert_eq!(service["metadata"]["annotations"]["prometheus.io/port"], "9095");

    // The tiers file is in the operator's format, quantities as strings even from --set.
    let tiers = tiers_of(&custom)?;
    assert_eq!(tiers["small"]["cpuLimit"], "2");
    assert_eq!(tiers["small"]["concurrency"], 3);
    assert_eq!(tiers["medium"]["cpuLimit"], "2");
    let checksum = |docs: &Docs| {
        find(docs, "Deployment", None)["spec"]["template"]["metadata"]["annotations"]
            ["checksum/tiers"]
            .clone()
    };
    assert_ne!(checksum(&default), checksum(&custom), "changed tiers roll the operator pods");
    Ok(())
}

/// With `watchNamespaces` the operator gets the ClusterRole's rules as a Role in each watched
/// namespace and no cluster-wide permission at all (no Secret of another namespace readable);
/// the flag names the same namespaces.
#[test]
fn watched_namespaces_get_roles_instead_of_a_cluster_role() -> anyhow::Result<()> {
    let cluster_wide = render(&[])?;
    let cluster_rules = &find(&cluster_wide, "ClusterRole", None)["rules"];
    let docs = render(&["watchNamespaces={shop,crm}"])?;
    assert!(all_of(&docs, "ClusterRole").is_empty(), "{:?}", kinds(&docs));
    assert!(all_of(&docs, "ClusterRoleBinding").is_empty(), "{:?}", kinds(&docs));
    for namespace in ["shop", "crm"] {
        let in_it = |kind: &str| {
            all_of(&docs, kind)
                .into_iter()
                .find(|d| d["metadata"]["namespace"] == namespace)
                .unwrap_or_else(|| panic!("no {kind} in {namespace}"))
                .clone()
        };
        let (role, binding) = (in_it("Role"), in_it("RoleBinding"));
        assert_eq!(&role["rules"], cluster_rules, "the ClusterRole's rules, in {namespace}");
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name(&role)})
        );
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    let args = args(find(&docs, "Deployment", None));
    assert!(args.contains(&"--watch-namespaces=shop,crm".to_string()), "{args:?}");
    let default_args = self::args(find(&cluster_wide, "Deployment", None));
    assert!(!default_args.iter().any(|a| a.starts_with("--watch-namespaces")), "{default_args:?}");
    Ok(())
}

/// `worker.podTemplate` reaches the operator as its --worker-pod-template file, with only the
/// fields set (an empty priorityClassName is no priority class); a change rolls the operator.
#[test]
fn the_worker_pod_template_reaches_the_operator() -> anyhow::Result<()> {
    let template_of = |docs: &Docs| -> anyhow::Result<Value> {
        let map = find(docs, "ConfigMap", Some("ferry-tiers"));
        let text = map["data"]["worker-pod.yaml"].as_str().unwrap_or_default();
        Ok(serde_yaml::from_str(text)?)
    };
    let default = render(&[])?;
    assert_eq!(template_of(&default)?, json!({}));
    let args = args(find(&default, "Deployment", None));
    assert!(args.contains(&"--worker-pod-template=/etc/ferry/worker-pod.yaml".to_string()));
    let custom = render(&[
        "worker.podTemplate.nodeSelector.pool=migrations",
        "worker.podTemplate.tolerations[0].key=dedicated",
        "worker.podTemplate.tolerations[0].operator=Exists",
        "worker.podTemplate.labels.team=data",
    ])?;
    assert_eq!(
        template_of(&custom)?,
        json!({
            "nodeSelector": {"pool": "migrations"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "labels": {"team": "data"},
        })
    );
    let checksum = |docs: &Docs| {
        find(docs, "Deployment", None)["spec"]["template"]["metadata"]["annotations"]
            ["checksum/worker-pod"]
            .clone()
    };
    assert_ne!(checksum(&default), checksum(&custom), "a changed template rolls the operator");
    Ok(())
}

fn tiers_of(docs: &Docs) -> anyhow::Result<Value> {
    let map = find(docs, "ConfigMap", Some("ferry-tiers"));
    let text = map["data"]["tiers.yaml"].as_str().unwrap_or_default();
    Ok(documents(text)?.pop().unwrap_or_default())
}

/// kubernetes-validate has no ServiceMonitor schema, so its fields are checked here: it selects
/// the metrics Service, by its port name, in the release namespace, honouring its labels.
#[test]
fn service_monitor_scrapes_the_metrics_service() -> anyhow::Result<()> {
    assert!(all_of(&render(&[])?, "ServiceMonitor").is_empty(), "off by default");
    let docs = render(&["serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom"])?;
    let monitor = find(&docs, "ServiceMonitor", None);
    let service = find(&docs, "Service", None);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "the Service lacks label {key}");
    }
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!([NAMESPACE]));
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "30s");
    // The operator's `namespace` label is the MigrationJob's: kept, not `exported_namespace`.
    assert_eq!(endpoint["honorLabels"], true, "docs/monitoring.md relies on honorLabels");
    let monitor_keys: BTreeSet<&str> =
        monitor["spec"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(monitor_keys, BTreeSet::from(["endpoints", "namespaceSelector", "selector"]));
    Ok(())
}

/// Names follow the overrides, every object the chart makes carries the new prefix, and with
/// `serviceAccount.create=false` the operator runs as (and is bound to) the named account.
#[test]
fn names_and_service_account_follow_the_values() -> anyhow::Result<()> {
    let docs = render(&["fullnameOverride=data-mover"])?;
    for doc in docs.iter().filter(|d| d["kind"] != "CustomResourceDefinition") {
        assert!(name(doc).starts_with("data-mover"), "{} {}", doc["kind"], name(doc));
    }
    let docs = render(&["nameOverride=mover"])?;
    assert_eq!(name(find(&docs, "Deployment", None)), "ferry-mover-operator");

    let docs = render(&["serviceAccount.create=false", "serviceAccount.name=platform-sa"])?;
    assert!(all_of(&docs, "ServiceAccount").is_empty(), "{:?}", kinds(&docs));
    let pod = &find(&docs, "Deployment", None)["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "platform-sa");
    let binding = find(&docs, "ClusterRoleBinding", None);
    assert_eq!(binding["subjects"][0]["name"], "platform-sa");
    Ok(())
}

/// A parent chart that lists Ferry as a dependency renders it (Helm passes `global` and the
/// dependency's `enabled` condition through the values schema), and leaves it out when off.
#[test]
fn composes_as_a_subchart() -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let chart = chart::chart_dir();
    let version = env!("CARGO_PKG_VERSION");
    std::fs::write(
        parent.path().join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: ferry\n    \
             version: {version}\n    repository: file://{}\n    condition: ferry.enabled\n",
            chart.display()
        ),
    )?;
    std::fs::write(
        parent.path().join("values.yaml"),
        "global:\n  imageRegistry: registry.example\nferry:\n  enabled: true\n  replicaCount: 1\n",
    )?;
    let dir = parent.path().to_str().expect("utf-8 temp dir");
    chart::helm_run(&["dependency", "build", dir])?;
    let render = |extra: &[&str]| -> anyhow::Result<Docs> {
        let mut args = vec!["template", "ferry", dir, "--namespace", NAMESPACE];
        args.extend(extra);
        Ok(documents(&chart::helm_run(&args)?)?)
    };
    let docs = render(&[])?;
    assert_eq!(find(&docs, "Deployment", None)["spec"]["replicas"], 1);
    let docs = render(&["--set", "ferry.enabled=false"])?;
    assert!(all_of(&docs, "Deployment").is_empty(), "{:?}", kinds(&docs));
    Ok(())
}

/// The PodDisruptionBudget selects the operator's pods and lets a drain evict one at a time.
#[test]
fn disruption_budget_covers_the_operator_pods() -> anyhow::Result<()> {
    let docs = render(&[])?;
    let budget = find(&docs, "PodDisruptionBudget", None);
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    let pod_labels = &find(&docs, "Deployment", None)["spec"]["template"]["metadata"]["labels"];
    let selector = budget["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
    for (key, value) in selector {
        assert_eq!(&pod_labels[key], value, "the operator pods lack label {key}");
    }
    let off = render(&["podDisruptionBudget.enabled=false"])?;
    assert!(all_of(&off, "PodDisruptionBudget").is_empty());
    Ok(())
}

/// The PrometheusRule and the dashboard ConfigMap carry deploy/monitoring's alerts and dashboard
/// (the chart's files/monitoring are byte copies), off by default.
#[test]
fn monitoring_toggles_ship_deploys_alerts_and_dashboard() -> anyhow::Result<()> {
    for file in ["alerts.rules.yaml", "grafana-dashboard.json"] {
        assert_eq!(
            std::fs::read_to_string(chart::chart_dir().join("files/monitoring").join(file))?,
            std::fs::read_to_string(repo_root().join("deploy/monitoring").join(file))?,
            "charts/ferry/files/monitoring/{file} differs from deploy/monitoring/{file}: copy it"
        );
    }
    let default = render(&[])?;
    assert!(all_of(&default, "PrometheusRule").is_empty());
    assert!(default.iter().all(|d| !name(d).ends_with("-dashboard")), "{:?}", kinds(&default));

    let docs = render(&["prometheusRule.enabled=true", "grafanaDashboard.enabled=true"])?;
    let rule = find(&docs, "PrometheusRule", None);
    let rules = read_yaml("deploy/monitoring/alerts.rules.yaml")?.remove(0);
    assert_eq!(rule["spec"]["groups"], rules["groups"]);
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    let dashboard = find(&docs, "ConfigMap", Some("ferry-dashboard"));
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dashboard["data"]["ferry.json"].as_str().unwrap_or(""))?;
    let file =
        std::fs::read_to_string(repo_root().join("deploy/monitoring/grafana-dashboard.json"))?;
    assert_eq!(json, serde_json::from_str::<Value>(&file)?);
    Ok(())
}

/// The NOTES printed after `helm install` say what to do next.
#[test]
fn notes_say_what_to_do_next() -> anyhow::Result<()> {
    let chart = chart::chart_dir();
    let install = |extra: &[&str]| -> anyhow::Result<String> {
        let mut args = vec!["install", "ferry", chart.to_str().unwrap()];
        args.extend(["--namespace", NAMESPACE, "--dry-run=client"]);
        args.extend(extra);
        Ok(chart::helm_run(&args)?)
    };
    let out = install(&[])?;
    let notes = out.split("NOTES:").nth(1).unwrap_or_else(|| panic!("no NOTES in\n{out}"));
    for expected in [
        "MigrationSource",
        "MigrationJob",
        "kubectl get migrationsources,migrationjobs",
        "deploy/examples/full-and-incremental.yaml",
        "kubectl -n ferry-system get lease ferry-operator",
        "keeps the CRDs",
    ] {
        assert!(notes.contains(expected), "NOTES lack {expected:?}:\n{notes}");
    }
    assert!(repo_root().join("deploy/examples/full-and-incremental.yaml").is_file());
    assert!(!notes.contains("crds.install is false"));
    let out = install(&["--set", "crds.install=false"])?;
    assert!(out.contains("kubectl apply --server-side -f deploy/crds/"), "{out}");
    Ok(())
}

// --- no drift from deploy/ --------------------------------------------------------------------

fn without_metadata_extras(mut crd: Value) -> Value {
    let meta = crd["metadata"].as_object_mut().expect("metadata");
    meta.remove("annotations");
    meta.remove("labels");
    crd
}

#[test]
fn chart_crds_are_deploys_crds() -> anyhow::Result<()> {
    let docs = render(&[])?;
    for file in ["migrationjobs.yaml", "migrationsources.yaml"] {
        let deploy = read_yaml(&format!("deploy/crds/{file}"))?.remove(0);
        let rendered = find(&docs, "CustomResourceDefinition", Some(name(&deploy)));
        assert_eq!(
            without_metadata_extras(rendered.clone()),
            deploy,
            "charts/ferry renders another {file} than deploy/crds: run crdgen"
        );
        let copy = Path::new("charts/ferry/files/crds").join(file);
        assert_eq!(
            std::fs::read_to_string(repo_root().join(&copy))?,
            std::fs::read_to_string(repo_root().join("deploy/crds").join(file))?,
            "{} differs from deploy/crds/{file}: run `cargo run -p ferry-crds --bin crdgen`",
            copy.display()
        );
    }
    Ok(())
}

/// Roles, bindings and the operator's identity are those of deploy/rbac/operator.yaml.
#[test]
fn chart_rbac_is_deploys_rbac() -> anyhow::Result<()> {
    let chart = render(&[])?;
    let deploy = read_yaml("deploy/rbac/operator.yaml")?;
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        let ours = all_of(&chart, kind);
        let theirs = all_of(&deploy, kind);
        assert_eq!(ours.len(), theirs.len(), "number of {kind}s");
        for (ours, theirs) in ours.iter().zip(theirs) {
            // With release `ferry` in ferry-system the names are deploy/'s too.
            assert_eq!(name(ours), name(theirs), "{kind} name");
            assert_eq!(ours["rules"], theirs["rules"], "{kind} {} rules", name(ours));
            assert_eq!(ours["roleRef"], theirs["roleRef"], "{kind} {} roleRef", name(ours));
            assert_eq!(ours["subjects"], theirs["subjects"], "{kind} {} subjects", name(ours));
        }
    }
    let deployment = find(&chart, "Deployment", None);
    let account = &deployment["spec"]["template"]["spec"]["serviceAccountName"];
    assert_eq!(account, &find(&chart, "ServiceAccount", None)["metadata"]["name"]);
    Ok(())
}

/// The operator Deployment runs as deploy/'s does: same security contexts, probes, mounts,
/// resources, replicas, flags and environment; the tiers and the Service are the same too.
#[test]
fn chart_operator_is_deploys_operator() -> anyhow::Result<()> {
    let chart = render(&[])?;
    let ours = find(&chart, "Deployment", None);
    let theirs = read_yaml("deploy/operator/deployment.yaml")?.remove(0);
    let (pod, their_pod) = (&ours["spec"]["template"]["spec"], &theirs["spec"]["template"]["spec"]);
    assert_eq!(pod["securityContext"], their_pod["securityContext"], "pod securityContext");
    let (c, theirs_c) = (container(ours), container(&theirs));
    assert_eq!(c["securityContext"], theirs_c["securityContext"], "container securityContext");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    for field in ["livenessProbe", "readinessProbe", "volumeMounts", "ports", "resources"] {
        assert_eq!(c[field], theirs_c[field], "container {field}");
    }
    for field in ["volumes", "terminationGracePeriodSeconds", "serviceAccountName"] {
        assert_eq!(pod[field], their_pod[field], "pod {field}");
    }
    assert_eq!(ours["spec"]["replicas"], theirs["spec"]["replicas"]);
    let flag = |a: &String| a.split('=').next().unwrap_or_default().to_string();
    let our_flags: BTreeSet<String> = args(ours).iter().map(flag).collect();
    for their_flag in args(&theirs).iter().map(flag) {
        assert!(our_flags.contains(&their_flag), "the chart drops {their_flag}");
    }
    for variable in ["POD_NAME", "POD_NAMESPACE", "FERRY_LOG_FORMAT"] {
        let has = |c: &Value| c["env"].as_array().unwrap().iter().any(|e| e["name"] == variable);
        assert!(has(c) && has(theirs_c), "{variable}");
    }
    assert_eq!(env(ours, "FERRY_LOG_FORMAT"), env(&theirs, "FERRY_LOG_FORMAT"));
    // Pods select the same way, so dashboards and alerts keyed on the label keep working.
    let ours_labels = &ours["spec"]["template"]["metadata"]["labels"];
    assert_eq!(ours_labels["app.kubernetes.io/name"], "ferry-operator");

    let deploy_tiers = read_yaml("deploy/operator/tiers.yaml")?.remove(0);
    assert_eq!(tiers_of(&chart)?, deploy_tiers, "values.yaml tiers vs deploy/operator/tiers.yaml");

    let service = find(&chart, "Service", None);
    let their_service = read_yaml("deploy/operator/service.yaml")?.remove(0);
    assert_eq!(name(service), name(&their_service));
    assert_eq!(service["spec"]["ports"], their_service["spec"]["ports"]);
    for (key, value) in their_service["metadata"]["annotations"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["annotations"][key], value, "Service annotation {key}");
    }
    Ok(())
}
