//! The multi-document YAML `ferry migrate -f` and `ferry precheck -f` read in tests: one Secret,
//! a MigrationSource on the source's port and a MigrationJob onto the target's, both on loopback.

use crate::SourceKind;

/// A job between two local servers; `spec` lines are appended to the MigrationJob's spec.
pub struct JobManifest<'a> {
    /// The kind of source server, declared as the MigrationSource's `spec.type`.
    pub source_kind: SourceKind,
    /// `namespace/name`'s name; the namespace is `default`.
    pub name: &'a str,
    pub source_port: u16,
    pub target_port: u16,
    pub user: &'a str,
    /// Both ends use it; an empty one is allowed (root without a password).
    pub password: &'a str,
    pub mode: &'a str,
    /// Further spec lines, indented by two spaces (e.g. `  objects:\n    databases: [app]`).
    pub spec: &'a str,
}

impl JobManifest<'_> {
    pub fn yaml(&self) -> String {
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: "{password}"}}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationSource
metadata: {{name: src}}
spec:
  type: {source_type}
  host: 127.0.0.1
  port: {source_port}
  user: {user}
  passwordSecretRef: {{name: creds, key: password}}
---
apiVersion: ferry.dev/v1alpha1
kind: MigrationJob
metadata: {{name: {name}, namespace: default}}
spec:
  sourceRef: {{name: src}}
  target:
    host: 127.0.0.1
    port: {target_port}
    user: {user}
    passwordSecretRef: {{name: creds, key: password}}
  mode: {mode}
{spec}
"#,
            password = self.password,
            source_type = self.source_kind.manifest_type(),
            source_port = self.source_port,
            target_port = self.target_port,
            user = self.user,
            name = self.name,
            mode = self.mode,
            spec = self.spec,
        )
    }
}
