//! Typed manifests for tests: the Secret, MigrationSource and MigrationJob objects a test
//! creates on a cluster or writes for `ferry migrate -f` and `ferry precheck -f`. They are
//! built from the ferry_crds and k8s-openapi types, so a misspelt field fails to compile
//! instead of being ignored by the server the test talks to.

use std::collections::BTreeMap;

use ferry_crds::job::{MigrationMode, ObjectSelection, SourceRef, Target, Tier};
use ferry_crds::source::{MigrationSourceSpec, SourceType};
use ferry_crds::{MigrationJob, MigrationJobSpec, MigrationSource, SecretKeyRef};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::SourceKind;

/// Where the servers a test starts listen.
pub const LOOPBACK: &str = "127.0.0.1";

/// The key every test Secret holds its password under.
pub const PASSWORD_KEY: &str = "password";

/// Secret `name` holding `password` under [`PASSWORD_KEY`].
pub fn password_secret(name: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        string_data: Some(BTreeMap::from([(PASSWORD_KEY.into(), password.into())])),
        ..Secret::default()
    }
}

/// The password of Secret `secret` (made by [`password_secret`]).
pub fn password_ref(secret: &str) -> SecretKeyRef {
    SecretKeyRef { name: secret.into(), key: PASSWORD_KEY.into() }
}

/// MigrationSource `name`: a server of `source_type` on this host's `port`, logged in as
/// `user` with the password in Secret `secret`.
pub fn source(
    name: &str,
    source_type: SourceType,
    port: u16,
    user: &str,
    secret: &str,
) -> MigrationSource {
    MigrationSource::new(
        name,
        MigrationSourceSpec {
            source_type,
            host: LOOPBACK.into(),
            port: port.into(),
            user: user.into(),
            password_secret_ref: password_ref(secret),
            connectivity: None,
            tls: None,
        },
    )
}

/// The target on this host's `port`, written as `user` with the password in Secret `secret`.
pub fn target(port: u16, user: &str, secret: &str) -> Target {
    Target {
        host: LOOPBACK.into(),
        port: port.into(),
        user: user.into(),
        password_secret_ref: password_ref(secret),
        tls: None,
    }
}

/// MigrationJob `name` from MigrationSource `source` into `target` in `mode`, every other field
/// at its default (as a user's manifest that leaves them out); tests set the fields they need.
pub fn job(name: &str, source: &str, target: Target, mode: MigrationMode) -> MigrationJob {
    MigrationJob::new(
        name,
        job_spec(
            json!({"sourceRef": SourceRef { name: source.into() }, "target": target, "mode": mode}),
        ),
    )
}

/// MigrationJob `name` as [`job`], with its `tier` and the databases it migrates.
pub fn job_of_databases(
    name: &str,
    source: &str,
    target: Target,
    mode: MigrationMode,
    tier: Tier,
    databases: &[&str],
) -> MigrationJob {
    let mut job = job(name, source, target, mode);
    job.spec.tier = tier;
    job.spec.objects = Some(only_databases(databases));
    job
}

/// A selection of whole databases.
pub fn only_databases(databases: &[&str]) -> ObjectSelection {
    let databases = databases.iter().map(|d| d.to_string()).collect();
    ObjectSelection { databases, ..ObjectSelection::default() }
}

/// The spec `fields` say, through serde, so that the fields they leave out take the defaults a
/// user's manifest gets.
fn job_spec(fields: Value) -> MigrationJobSpec {
    serde_json::from_value(fields).expect("sourceRef, target and mode make a MigrationJob spec")
}

/// Objects as one multi-document YAML stream, as `kubectl apply -f` and `ferry migrate -f` read.
pub fn yaml_stream(objects: &[Value]) -> String {
    let documents: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("JSON values serialize as YAML"))
        .collect();
    documents.join("---\n")
}

/// A job between two local servers, as `ferry migrate -f` and `ferry precheck -f` read it: one
/// Secret `creds`, MigrationSource `src` on the source's port and MigrationJob `name` (namespace
/// `default`) onto the target's.
pub struct JobManifest<'a> {
    /// The kind of source server, declared as the MigrationSource's `spec.type`.
    pub source_kind: SourceKind,
    pub name: &'a str,
    pub source_port: u16,
    pub target_port: u16,
    pub user: &'a str,
    /// Both ends use it; an empty one is allowed (root without a password).
    pub password: &'a str,
    /// `Full`, `Incremental` or `FullAndIncremental`.
    pub mode: &'a str,
    /// Further spec fields as YAML lines indented by two spaces (e.g.
    /// `  objects:\n    databases: [app]`), set over the job's spec.
    pub spec: &'a str,
}

impl JobManifest<'_> {
    pub fn yaml(&self) -> String {
        let source_type = self.source_kind.source_type();
        let source = source("src", source_type, self.source_port, self.user, "creds");
        let target = target(self.target_port, self.user, "creds");
        let mode: MigrationMode = serde_json::from_value(json!(self.mode))
            .unwrap_or_else(|e| panic!("mode {:?}: {e}", self.mode));
        let mut job = job(self.name, "src", target, mode);
        job.metadata.namespace = Some("default".into());
        let mut job = serde_json::to_value(job).expect("a MigrationJob serializes");
        let extra: Value = serde_yaml::from_str(&format!("spec:\n{}", self.spec))
            .unwrap_or_else(|e| panic!("spec lines {:?} are not YAML: {e}", self.spec));
        if let (Some(spec), Some(Value::Object(fields))) =
            (job["spec"].as_object_mut(), extra.get("spec"))
        {
            spec.extend(fields.clone());
        }
        let objects = [to_value(&password_secret("creds", self.password)), to_value(&source), job];
        yaml_stream(&objects)
    }
}

/// The object with its apiVersion and kind, as a manifest lists it.
fn to_value<K: kube::Resource<DynamicType = ()> + serde::Serialize>(object: &K) -> Value {
    let mut value = serde_json::to_value(object).expect("a Kubernetes object serializes");
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    value
}
