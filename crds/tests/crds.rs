//! The committed CRD files (and their copies in deploy/ and the Helm chart) are current, structural as the API server requires, carry the rules
//! the API promises, and accept the example manifests.

use std::path::{Path, PathBuf};

use ferry_crds::crd;
use ferry_crds::validation::{schema_of, validate};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_crd_files_are_current() {
    for definition in crd::all() {
        for copy in crd::COPIES {
            let path = crate_dir().join(copy).join(crd::file_name(&definition));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == crd::to_yaml(&definition),
                "{} is stale: run `cargo run -p ferry-crds --bin crdgen` and commit the result",
                path.display()
            );
        }
    }
}

/// Every rule of a structural schema that the API server enforces, checked on every node.
fn structural_problems(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || map.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if !map.contains_key("type") && !preserves {
        problems.push(format!("{path}: no type"));
    }
    if map.contains_key("$ref") {
        problems.push(format!("{path}: $ref"));
    }
    if let Some(format) = map.get("format").and_then(Value::as_str)
        && format.starts_with("uint")
    {
        problems.push(format!("{path}: unsigned format {format}"));
    }
    for keyword in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = map.get(keyword).and_then(Value::as_array) {
            for branch in branches {
                if branch.get("type").is_some() {
                    problems.push(format!("{path}: type inside {keyword}"));
                }
            }
        }
    }
    if map.get("type") == Some(&json!("array")) {
        match map.get("items") {
            Some(items) => structural_problems(items, &format!("{path}[]"), problems),
            None => problems.push(format!("{path}: array without items")),
        }
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_problems(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(child) = map.get("additionalProperties").filter(|v| v.is_object()) {
        structural_problems(child, &format!("{path}.*"), problems);
    }
}

#[test]
fn schemas_are_structural() {
    for definition in crd::all() {
        let mut problems = Vec::new();
        structural_problems(&schema_of(&definition), "", &mut problems);
        assert!(problems.is_empty(), "{}: {problems:#?}", definition.spec.names.kind);
    }
}

#[test]
fn conditions_are_list_maps_keyed_by_type() {
    for definition in crd::all() {
        let conditions =
            &schema_of(&definition)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{}", definition.spec.names.kind);
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

#[test]
fn migration_job_has_printer_columns_short_names_and_a_status_subresource() {
    let job = crd::migration_job();
    let version = &job.spec.versions[0];
    let columns: Vec<(String, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.priority.unwrap_or(0)))
        .collect();
    for (name, priority) in [
        ("Stage", 0),
        ("Phase", 0),
        ("Progress", 0),
        ("Lag", 0),
        ("Age", 0),
        ("Tier", 1),
        ("Position", 1),
    ] {
        assert!(columns.contains(&(name.to_string(), priority)), "{name} missing: {columns:?}");
    }
    assert!(job.spec.names.short_names.iter().flatten().any(|s| s == "mj"));
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    assert_eq!(job.spec.scope, "Namespaced");
    assert_eq!(job.spec.group, "ferry.dev");
}

#[test]
fn source_target_and_mode_are_immutable() {
    let schema = schema_of(&crd::migration_job());
    for field in ["sourceRef", "target", "mode"] {
        let rules = &schema["properties"]["spec"]["properties"][field]["x-kubernetes-validations"];
        assert_eq!(rules[0]["rule"], "self == oldSelf", "{field}");
    }
}

fn job(spec: Value) -> Value {
    json!({"apiVersion": "ferry.dev/v1alpha1", "kind": "MigrationJob",
           "metadata": {"name": "j"}, "spec": spec})
}

fn valid_job_spec() -> Value {
    json!({
        "sourceRef": {"name": "src"},
        "target": {"host": "tidb", "port": 4000, "user": "root",
                   "passwordSecretRef": {"name": "s", "key": "k"}},
        "mode": "FullAndIncremental"
    })
}

fn job_problems(change: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut spec = valid_job_spec();
    change(&mut spec);
    validate(&crd::migration_job(), &job(spec)).iter().map(ToString::to_string).collect()
}

#[test]
fn a_valid_job_has_no_problems() {
    assert_eq!(job_problems(|_| {}), Vec::<String>::new());
}

type SpecChange = Box<dyn FnOnce(&mut Value)>;

#[test]
fn invalid_jobs_are_rejected_with_the_field_named() {
    let cases: Vec<(&str, SpecChange)> = vec![
        ("displayName", Box::new(|s| s["displayName"] = json!("9starts-with-digit"))),
        ("displayName", Box::new(|s| s["displayName"] = json!("a".repeat(60)))),
        ("tier", Box::new(|s| s["tier"] = json!("huge"))),
        ("port", Box::new(|s| s["target"]["port"] = json!(0))),
        ("safeModeDuration", Box::new(|s| s["safeModeDuration"] = json!("60"))),
        ("mode", Box::new(|s| s["mode"] = json!("Sometimes"))),
        ("caSecretRef", Box::new(|s| s["target"]["tls"] = json!({"mode": "ServerAuth"}))),
        ("clientCertSecretRef", Box::new(|s| s["target"]["tls"] = json!({"mode": "ClientCert"}))),
        (
            "file and pos, or gtidSet",
            Box::new(|s| {
                s["mode"] = json!("Incremental");
                s["incremental"] =
                    json!({"start": {"file": "b.000001", "pos": 4, "gtidSet": "0-1-5"}});
            }),
        ),
        (
            "only applies to mode Incremental",
            Box::new(|s| s["incremental"] = json!({"start": {"gtidSet": "0-1-5"}})),
        ),
        (
            "to.table needs from.table",
            Box::new(|s| {
                s["routes"] =
                    json!([{"from": {"database": "a"}, "to": {"database": "b", "table": "t"}}])
            }),
        ),
        (
            "routes.0.to.database",
            Box::new(|s| {
                s["routes"] = json!([{"from": {"database": "a"}, "to": {"database": "b*"}}])
            }),
        ),
        (
            "filters.0.ignore",
            Box::new(|s| {
                s["filters"] = json!([{"match": {"database": "a"}, "ignore": ["DropEverything"]}])
            }),
        ),
        (
            "filters.0.ignore",
            Box::new(|s| s["filters"] = json!([{"match": {"database": "a"}, "ignore": []}])),
        ),
        (
            "objects.exclude.0.database",
            Box::new(|s| s["objects"] = json!({"exclude": [{"database": ""}]})),
        ),
        ("unknown field", Box::new(|s| s["tyer"] = json!("small"))),
        ("caughtUpLag", Box::new(|s| s["cutover"] = json!({"caughtUpLag": "5"}))),
        ("caughtUpFor", Box::new(|s| s["cutover"] = json!({"caughtUpFor": "soon"}))),
        ("request", Box::new(|s| s["cutover"] = json!({"request": ""}))),
        (
            "cutover only applies to modes that replicate",
            Box::new(|s| {
                s["mode"] = json!("Full");
                s["cutover"] = json!({"caughtUpLag": "5s"});
            }),
        ),
        (
            // Told with the field's description, not the regular expression.
            "gtidSet: \"0-1-5,mysql-bin.000003\" is not in the expected form. GTID set to start",
            Box::new(|s| {
                s["mode"] = json!("Incremental");
                s["incremental"] = json!({"start": {"gtidSet": "0-1-5,mysql-bin.000003"}});
            }),
        ),
    ];
    for (expected, change) in cases {
        let problems = job_problems(change);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem mentioning {expected:?}, got {problems:?}"
        );
    }
}

/// The selection of the issue that asked for patterns, routes and filters, as written there;
/// and the exact-name manifests written before them still pass.
#[test]
fn selections_with_patterns_routes_and_filters_are_accepted() {
    let problems = job_problems(|s| {
        s["objects"] = json!({
            "databases": ["app_?", "shop"],
            "tables": [{"database": "crm", "table": "acct_*"}],
            "exclude": [{"database": "*", "table": "*_bak"}, {"database": "app_tmp"}],
            "caseSensitive": false,
        });
        s["routes"] = json!([
            {"from": {"database": "app_1"}, "to": {"database": "shop1"}},
            {"from": {"database": "shard_*", "table": "orders"}, "to": {"database": "shop", "table": "orders"}},
        ]);
        s["filters"] = json!([
            {"match": {"database": "*", "table": "audit_*"}, "ignore": ["Delete", "Truncate", "DropTable"]},
        ]);
    });
    assert!(problems.is_empty(), "{problems:?}");
    for objects in
        [json!({"databases": ["a"]}), json!({"tables": [{"database": "b", "table": "c"}]})]
    {
        let problems = job_problems(|s| s["objects"] = objects.clone());
        assert!(problems.is_empty(), "{objects}: {problems:?}");
    }
}

#[test]
fn gtid_sets_of_both_flavors_are_accepted() {
    for set in [
        "0-1-5",
        "0-1-5, 1-2-300",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n3e11fa47-71ca-11e1-9e33-c80aa9429563:2",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:tag_1:1-3",
    ] {
        let problems = job_problems(|s| {
            s["mode"] = json!("Incremental");
            s["incremental"] = json!({"start": {"gtidSet": set}});
        });
        assert!(problems.is_empty(), "{set:?}: {problems:?}");
    }
}

#[test]
fn private_link_needs_an_endpoint() {
    let source = json!({
        "apiVersion": "ferry.dev/v1alpha1", "kind": "MigrationSource", "metadata": {"name": "s"},
        "spec": {"type": "RDSMySQL", "host": "db", "user": "u",
                 "passwordSecretRef": {"name": "s", "key": "k"},
                 "connectivity": {"method": "PrivateLink"}}
    });
    let problems = validate(&crd::migration_source(), &source);
    assert!(problems.iter().any(|p| p.message.contains("endpointServiceName")), "{problems:?}");
}

fn example_documents() -> Vec<(PathBuf, Value)> {
    let dir = crate_dir().join("../deploy/examples");
    let mut documents = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/examples exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable example");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
            documents.push((path.clone(), value));
        }
    }
    documents
}

#[test]
fn example_manifests_validate_against_the_crds() {
    let documents = example_documents();
    let mut kinds = Vec::new();
    for (path, document) in &documents {
        let kind = document["kind"].as_str().unwrap_or_default();
        kinds.push(kind.to_string());
        let definition = match kind {
            "MigrationJob" => crd::migration_job(),
            "MigrationSource" => crd::migration_source(),
            _ => continue,
        };
        let problems = validate(&definition, document);
        assert!(problems.is_empty(), "{}: {problems:?}", short(path));
        let typed = match kind {
            "MigrationJob" => {
                serde_json::from_value::<ferry_crds::MigrationJob>(document.clone()).map(|_| ())
            }
            _ => {
                serde_json::from_value::<ferry_crds::MigrationSource>(document.clone()).map(|_| ())
            }
        };
        assert!(typed.is_ok(), "{}: {typed:?}", short(path));
    }
    assert!(kinds.iter().filter(|k| *k == "MigrationJob").count() >= 3, "{kinds:?}");
}

fn short(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `kubectl explain` describes each kind in words (not kube-derive's placeholder), and
/// `kubectl get` shows a job's Ready condition and its lag as a number.
#[test]
fn kinds_explain_themselves_and_columns_are_typed() {
    for definition in crd::all() {
        let yaml = crd::to_yaml(&definition);
        let crd: Value = serde_yaml::from_str(&yaml).expect("CRD YAML");
        let version = &crd["spec"]["versions"][0];
        let description = version["schema"]["openAPIV3Schema"]["description"].as_str();
        let description = description.unwrap_or_default();
        assert!(description.len() > 80, "{}: {description:?}", crd::file_name(&definition));
        assert!(!description.contains("Auto-generated"), "{description}");
        let columns = version["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
        let column = |name: &str| columns.iter().find(|c| c["name"] == name).cloned();
        assert!(column("Ready").is_some(), "no Ready column: {columns:?}");
        if crd["spec"]["names"]["kind"] == "MigrationJob" {
            assert_eq!(column("Lag").map(|c| c["type"].clone()), Some(json!("integer")));
        }
    }
}
