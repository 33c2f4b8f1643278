//! Checks a MigrationSource or MigrationJob document against its CRD without an API server:
//! the OpenAPI schema (types, enums, patterns, bounds, required fields), fields the schema does
//! not know (the API server's strict field validation) and the CEL rules.

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// One thing wrong with a document, at a JSON path such as `spec.target.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending field; empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The validation schema of a CRD's single version, as JSON.
pub fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("Ferry's CRDs always carry a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Every problem of `document` (a whole object with apiVersion, kind, metadata, spec) against
/// `crd`. `apiVersion`, `kind` and `metadata` are left to the caller, as the CRD schema does
/// not describe them.
pub fn validate(crd: &CustomResourceDefinition, document: &Value) -> Vec<Problem> {
    let schema = schema_of(crd);
    let mut body = document.clone();
    if let Some(object) = body.as_object_mut() {
        // The API server handles these itself; the CRD schema describes only the rest.
        for key in ["apiVersion", "kind", "metadata"] {
            object.remove(key);
        }
    }
    let mut problems = unknown_fields(&schema, &body, "");
    problems.extend(schema_problems(&schema, &body));
    if problems.is_empty() {
        // CEL rules assume a well-typed object, as on the API server.
        problems.extend(cel_problems(&schema, &body));
    }
    problems
}

fn schema_problems(schema: &Value, body: &Value) -> Vec<Problem> {
    let plain = strip_kubernetes_extensions(schema.clone());
    let validator = match jsonschema::draft4::new(&plain) {
        Ok(v) => v,
        Err(e) => return vec![problem("", format!("the CRD schema itself is invalid: {e}"))],
    };
    validator
        .iter_errors(body)
        .map(|e| {
            let message = match e.kind() {
                jsonschema::error::ValidationErrorKind::Pattern { .. } => {
                    pattern_message(&plain, &e.schema_path().to_string(), e.instance())
                }
                _ => None,
            };
            let message = message.unwrap_or_else(|| e.to_string());
            problem(&pointer_to_path(&e.instance_path().to_string()), message)
        })
        .collect()
}

/// A pattern mismatch told with the field's description instead of the regular expression.
fn pattern_message(schema: &Value, pattern_pointer: &str, value: &Value) -> Option<String> {
    let field = schema.pointer(pattern_pointer.strip_suffix("/pattern")?)?;
    let description = field.get("description")?.as_str()?.split_whitespace();
    Some(format!(
        "{value} is not in the expected form. {}",
        description.collect::<Vec<_>>().join(" ")
    ))
}

fn cel_problems(schema: &Value, body: &Value) -> Vec<Problem> {
    match kube_cel::validate(schema, body, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| problem(&e.field_path, e.message.clone()))
            .collect(),
    }
}

/// Fields present in `value` that the schema does not declare. The API server rejects them
/// under strict field validation (kubectl's default) and would otherwise drop them silently.
fn unknown_fields(schema: &Value, value: &Value, path: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return problems;
            };
            for (key, child) in map {
                let child_path = join(path, key);
                match props.get(key) {
                    Some(child_schema) => {
                        problems.extend(unknown_fields(child_schema, child, &child_path))
                    }
                    None => problems.push(problem(
                        &child_path,
                        format!(
                            "unknown field; known fields here: {}",
                            props.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    problems.extend(unknown_fields(item_schema, item, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    problems
}

/// jsonschema does not know the `x-kubernetes-*` keywords or `nullable`; `nullable: true` turns
/// into an explicit null type so that `field: null` stays valid as on the API server.
fn strip_kubernetes_extensions(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.retain(|k, _| !k.starts_with("x-kubernetes-"));
        if map.remove("nullable") == Some(Value::Bool(true))
            && let Some(Value::String(t)) = map.get("type").cloned()
        {
            map.insert("type".into(), serde_json::json!([t, "null"]));
        }
        for child in map.values_mut() {
            *child = strip_kubernetes_extensions(std::mem::take(child));
        }
    } else if let Value::Array(items) = &mut schema {
        for item in items {
            *item = strip_kubernetes_extensions(std::mem::take(item));
        }
    }
    schema
}

fn pointer_to_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem { path: path.to_string(), message: message.into() }
}
