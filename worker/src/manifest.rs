//! Multi-document YAML manifests (Secrets, MigrationSources, MigrationJobs) as `kubectl apply`
//! takes them: loading, validation as the API server would do it, and resolution of a job into
//! a [`JobConfig`] for the engine.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ferry_crds::job::MigrationJob;
use ferry_crds::source::MigrationSource;
use ferry_crds::validation::Problem;
use ferry_crds::{API_VERSION, SecretKeyRef, TlsConfig, crd};
use serde_json::Value;

use crate::config::{Endpoint, JobConfig, JobId, Owner, Password, TlsMaterial, parse_duration};

/// Namespace of objects whose metadata names none, as with kubectl.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("document {index}: not valid YAML: {message}")]
    Yaml { index: usize, message: String },
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<LocatedProblem>),
    #[error(
        "the manifest is {0} bytes; at most {MAX_MANIFEST_BYTES} are read (a manifest holds a few \
         Secrets, a MigrationSource and MigrationJobs: a few KiB)"
    )]
    TooLarge(usize),
    #[error(
        "the manifest nests collections {depth} deep at line {line}; at most {MAX_DEPTH} levels \
         are read (a MigrationJob needs fewer than 10): check its brackets and indentation"
    )]
    TooDeep { depth: usize, line: usize },
    #[error("the manifest has no MigrationJob; add one (see deploy/examples/)")]
    NoJob,
    #[error("the manifest has {0} MigrationJobs ({1}); choose one with --job NAME")]
    SeveralJobs(usize, String),
    #[error("no MigrationJob named {0} in the manifest")]
    UnknownJob(String),
}

/// A problem with the document it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedProblem {
    /// 1-based position of the document in the file; 0 for problems between documents.
    pub document: usize,
    /// `Kind name` of the document, as far as it could be read.
    pub object: String,
    pub problem: Problem,
}

impl fmt::Display for LocatedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document == 0 {
            write!(f, "{}: {}", self.object, self.problem)
        } else {
            write!(f, "document {} ({}): {}", self.document, self.object, self.problem)
        }
    }
}

/// A Secret's decoded data.
#[derive(Debug, Clone)]
pub struct Secret {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, Vec<u8>>,
}

/// The objects of one manifest file, validated.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub secrets: Vec<Secret>,
    pub sources: Vec<MigrationSource>,
    pub jobs: Vec<MigrationJob>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let read_error = |source| ManifestError::Read { path: path.display().to_string(), source };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_MANIFEST_BYTES as u64 {
            return Err(ManifestError::TooLarge(size as usize));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Self::parse(&text)
    }

    /// Parses and validates manifest text; every problem is reported, not only the first.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        check_bounds(text)?;
        let documents = split_documents(text)?;
        let mut manifest = Manifest::default();
        let mut problems = Vec::new();
        for (index, document) in documents {
            manifest.add_document(index, document, &mut problems);
        }
        if problems.is_empty() {
            problems.extend(manifest.reference_problems());
        }
        if problems.is_empty() { Ok(manifest) } else { Err(ManifestError::Invalid(problems)) }
    }

    fn add_document(&mut self, index: usize, document: Value, problems: &mut Vec<LocatedProblem>) {
        let kind = document.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
        let name = document.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let object = format!("{} {}", if kind.is_empty() { "?" } else { &kind }, name);
        let mut report = |path: &str, message: String| {
            problems.push(LocatedProblem {
                document: index,
                object: object.trim().to_string(),
                problem: Problem { path: path.to_string(), message },
            })
        };
        if let Err(message) = check_name(name) {
            report("metadata.name", message);
        }
        match kind.as_str() {
            "Secret" => match parse_secret(&document) {
                Ok(secret) => self.secrets.push(secret),
                Err((path, message)) => report(&path, message),
            },
            "MigrationSource" | "MigrationJob" => {
                let api_version = document.get("apiVersion").and_then(Value::as_str);
                if api_version != Some(API_VERSION) {
                    report("apiVersion", format!("must be {API_VERSION}, found {api_version:?}"));
                    return;
                }
                let definition = if kind == "MigrationJob" {
                    crd::migration_job()
                } else {
                    crd::migration_source()
                };
                let schema_problems = ferry_crds::validation::validate(&definition, &document);
                if !schema_problems.is_empty() {
                    for p in schema_problems {
                        report(&p.path, p.message);
                    }
                    return;
                }
                let parsed = if kind == "MigrationJob" {
                    serde_json::from_value(document).map(|j| self.jobs.push(j))
                } else {
                    serde_json::from_value(document).map(|s| self.sources.push(s))
                };
                if let Err(e) = parsed {
                    report("", e.to_string());
                }
            }
            "" => {
                report("kind", "missing; expected Secret, MigrationSource or MigrationJob".into())
            }
            other => report(
                "kind",
                format!(
                    "{other} is not handled here; expected Secret, MigrationSource or MigrationJob"
                ),
            ),
        }
    }

    /// Cross-document problems: a job's source, and every Secret key referenced.
    fn reference_problems(&self) -> Vec<LocatedProblem> {
        let mut problems = Vec::new();
        for source in &self.sources {
            let ns = namespace_of(&source.metadata);
            let refs = secret_refs(&source.spec.password_secret_ref, source.spec.tls.as_ref());
            for (path, secret_ref) in refs {
                if let Err(message) = self.secret_value(&ns, secret_ref) {
                    let object = format!("MigrationSource {}", name_of(&source.metadata));
                    problems.push(located(object, format!("spec.{path}"), message));
                }
            }
        }
        for job in &self.jobs {
            let ns = namespace_of(&job.metadata);
            let job_name = name_of(&job.metadata);
            let object = format!("MigrationJob {job_name}");
            if self.source(&ns, &job.spec.source_ref.name).is_none() {
                let message = format!(
                    "no MigrationSource named {} in namespace {ns} in this manifest",
                    job.spec.source_ref.name
                );
                problems.push(located(object.clone(), "spec.sourceRef.name".into(), message));
            }
            let target = &job.spec.target;
            for (path, secret_ref) in secret_refs(&target.password_secret_ref, target.tls.as_ref())
            {
                if let Err(message) = self.secret_value(&ns, secret_ref) {
                    problems.push(located(object.clone(), format!("spec.target.{path}"), message));
                }
            }
        }
        problems
    }

    fn source(&self, namespace: &str, name: &str) -> Option<&MigrationSource> {
        self.sources
            .iter()
            .find(|s| namespace_of(&s.metadata) == namespace && name_of(&s.metadata) == name)
    }

    fn secret_value(&self, namespace: &str, secret_ref: &SecretKeyRef) -> Result<&[u8], String> {
        let secret = self
            .secrets
            .iter()
            .find(|s| s.namespace == namespace && s.name == secret_ref.name)
            .ok_or_else(|| {
                format!(
                    "Secret {} not found in namespace {namespace} in this manifest",
                    secret_ref.name
                )
            })?;
        secret.data.get(&secret_ref.key).map(Vec::as_slice).ok_or_else(|| {
            format!(
                "Secret {} has no key {} (keys: {})",
                secret_ref.name,
                secret_ref.key,
                secret.data.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// A one-line summary, as `ferry validate` prints it.
    pub fn summary(&self) -> String {
        let jobs: Vec<String> = self
            .jobs
            .iter()
            .map(|j| {
                format!("{} ({:?}, tier {:?})", name_of(&j.metadata), j.spec.mode, j.spec.tier)
            })
            .collect();
        format!(
            "valid: {} Secret(s), {} MigrationSource(s), {} MigrationJob(s){}{}",
            self.secrets.len(),
            self.sources.len(),
            self.jobs.len(),
            if jobs.is_empty() { "" } else { ": " },
            jobs.join(", ")
        )
    }

    /// The job named `name`, or the only job when `name` is absent, resolved for the engine.
    pub fn job_config(&self, name: Option<&str>) -> Result<JobConfig, ManifestError> {
        let job = match name {
            Some(name) => self
                .jobs
                .iter()
                .find(|j| name_of(&j.metadata) == name)
                .ok_or_else(|| ManifestError::UnknownJob(name.to_string()))?,
            None => match self.jobs.as_slice() {
                [job] => job,
                [] => return Err(ManifestError::NoJob),
                many => {
                    let names: Vec<String> = many.iter().map(|j| name_of(&j.metadata)).collect();
                    return Err(ManifestError::SeveralJobs(many.len(), names.join(", ")));
                }
            },
        };
        let namespace = namespace_of(&job.metadata);
        let source = self
            .source(&namespace, &job.spec.source_ref.name)
            .expect("references were checked when the manifest was parsed");
        let secrets =
            |namespace: &str| SecretLookup { manifest: self, namespace: namespace.into() };
        let spec = &job.spec;
        Ok(JobConfig {
            id: JobId { namespace: namespace.clone(), name: name_of(&job.metadata) },
            owner: Owner::Cli,
            key: String::new(),
            source_type: source.spec.source_type,
            source: secrets(&namespace).endpoint(
                &source.spec.host,
                source.spec.port,
                &source.spec.user,
                &source.spec.password_secret_ref,
                source.spec.tls.as_ref(),
            ),
            target: secrets(&namespace).endpoint(
                &spec.target.host,
                spec.target.port,
                &spec.target.user,
                &spec.target.password_secret_ref,
                spec.target.tls.as_ref(),
            ),
            mode: spec.mode,
            selection: ferry_crds::Selection::of(spec),
            tier: spec.tier,
            concurrency: spec.tier.default_concurrency(),
            safe_mode_duration: parse_duration(&spec.safe_mode_duration)
                .expect("the schema pattern admits only parseable durations"),
            incremental_start: spec.incremental.as_ref().and_then(|i| i.start.clone()),
            merge: crate::config::MergeLimits::from_spec(spec.incremental.as_ref()),
            overwrite_conflicts_at: spec.overwrite_conflicts_at.clone(),
            ddl_error_policy: spec.ddl_error_policy.clone(),
            cutover: crate::config::CutoverSettings::from_spec(spec.cutover.as_ref()),
            validation: crate::config::ValidationSettings::from_spec(spec.validation.as_ref()),
        })
    }
}

/// Objects read from somewhere other than a file: the API server, in the operator and in a
/// worker pod.
impl Manifest {
    /// A manifest of objects that already passed the API server's schema, with the
    /// cross-references checked as [`Manifest::parse`] checks them (the job's source exists, every
    /// Secret key referenced is present), so that [`Manifest::job_config`] can resolve a job.
    pub fn from_objects(
        secrets: Vec<Secret>,
        sources: Vec<MigrationSource>,
        jobs: Vec<MigrationJob>,
    ) -> Result<Self, ManifestError> {
        let manifest = Manifest { secrets, sources, jobs };
        let problems = manifest.reference_problems();
        if problems.is_empty() { Ok(manifest) } else { Err(ManifestError::Invalid(problems)) }
    }

    /// The endpoint of the source `namespace/name` of this manifest, its Secrets resolved;
    /// `None` when the manifest has no such source.
    pub fn source_endpoint(&self, namespace: &str, name: &str) -> Option<Endpoint> {
        let source = self.source(namespace, name)?;
        let lookup = SecretLookup { manifest: self, namespace: namespace.into() };
        Some(lookup.endpoint(
            &source.spec.host,
            source.spec.port,
            &source.spec.user,
            &source.spec.password_secret_ref,
            source.spec.tls.as_ref(),
        ))
    }
}

/// The target of `job` with its Secrets resolved (for the operator, which deletes the job's
/// checkpoints there when the job goes); `None` when a referenced key is not in `secrets`.
pub fn target_endpoint(secrets: Vec<Secret>, job: &MigrationJob) -> Option<Endpoint> {
    let namespace = namespace_of(&job.metadata);
    let manifest = Manifest { secrets, sources: Vec::new(), jobs: Vec::new() };
    let target = &job.spec.target;
    let refs = secret_refs(&target.password_secret_ref, target.tls.as_ref());
    if refs.iter().any(|(_, r)| manifest.secret_value(&namespace, r).is_err()) {
        return None;
    }
    let lookup = SecretLookup { manifest: &manifest, namespace };
    Some(lookup.endpoint(
        &target.host,
        target.port,
        &target.user,
        &target.password_secret_ref,
        target.tls.as_ref(),
    ))
}

/// Reads Secret values for one namespace of a validated manifest.
struct SecretLookup<'a> {
    manifest: &'a Manifest,
    namespace: String,
}

impl SecretLookup<'_> {
    fn bytes(&self, secret_ref: &SecretKeyRef) -> Vec<u8> {
        self.manifest
            .secret_value(&self.namespace, secret_ref)
            .expect("references were checked when the manifest was parsed")
            .to_vec()
    }

    fn endpoint(
        &self,
        host: &str,
        port: i32,
        user: &str,
        password: &SecretKeyRef,
        tls: Option<&TlsConfig>,
    ) -> Endpoint {
        let text = |r: &SecretKeyRef| String::from_utf8_lossy(&self.bytes(r)).into_owned();
        let tls = tls.cloned().unwrap_or_default();
        Endpoint {
            host: host.to_string(),
            port: u16::try_from(port).expect("the schema bounds ports to 1..=65535"),
            user: user.to_string(),
            password: Password::new(text(password).trim_end_matches(['\n', '\r'])),
            tls: TlsMaterial {
                mode: tls.mode,
                ca_pem: tls.ca_secret_ref.as_ref().map(|r| self.bytes(r)),
                client_cert_pem: tls.client_cert_secret_ref.as_ref().map(|r| self.bytes(r)),
                client_key_pem: tls.client_key_secret_ref.as_ref().map(|r| Password::new(text(r))),
            },
        }
    }
}

/// A cross-document problem; those are reported without a document number.
fn located(object: String, path: String, message: String) -> LocatedProblem {
    LocatedProblem { document: 0, object, problem: Problem { path, message } }
}

fn secret_refs<'a>(
    password: &'a SecretKeyRef,
    tls: Option<&'a TlsConfig>,
) -> Vec<(&'static str, &'a SecretKeyRef)> {
    let mut refs = vec![("passwordSecretRef", password)];
    if let Some(tls) = tls {
        let named = [
            ("tls.caSecretRef", &tls.ca_secret_ref),
            ("tls.clientCertSecretRef", &tls.client_cert_secret_ref),
            ("tls.clientKeySecretRef", &tls.client_key_secret_ref),
        ];
        refs.extend(named.into_iter().filter_map(|(p, r)| r.as_ref().map(|r| (p, r))));
    }
    refs
}

/// Largest manifest read: far above any real one, well below what takes the parser long.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Deepest nesting read. The YAML parser takes time that grows steeply with nesting (100 KB of
/// brackets took 16 s), so depth is measured by a linear scan before parsing.
const MAX_DEPTH: usize = 64;

/// Rejects manifests too large or too deeply nested to parse in bounded time.
fn check_bounds(text: &str) -> Result<(), ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(text.len()));
    }
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let too_deep = |depth| ManifestError::TooDeep { depth, line: number + 1 };
        let block = block_depth(line, &mut indents);
        for depth in flow_depths(line, &mut flow) {
            if block + depth > MAX_DEPTH {
                return Err(too_deep(block + depth));
            }
        }
        if block > MAX_DEPTH {
            return Err(too_deep(block));
        }
    }
    Ok(())
}

/// Block nesting at a line: the stack of indentations it is under, counting each `- ` that
/// opens a sequence item on the line as one more level. Blank and comment lines keep it.
fn block_depth(line: &str, indents: &mut Vec<usize>) -> usize {
    let content = line.trim_start_matches([' ', '-', '\t']);
    if content.is_empty() || content.starts_with('#') {
        return indents.len();
    }
    let mut column = line.len() - line.trim_start_matches([' ', '\t']).len();
    loop {
        while indents.last().is_some_and(|&top| top >= column) {
            indents.pop();
        }
        indents.push(column);
        let rest = &line[column..];
        match rest.strip_prefix('-') {
            Some(after) if after.starts_with([' ', '\t']) => {
                column = line.len() - after.trim_start_matches([' ', '\t']).len();
            }
            _ => return indents.len(),
        }
    }
}

/// The flow nesting (`[`, `{`) after each bracket of a line, outside quoted strings and
/// comments. Quotes are followed within the line only: a multi-line quoted string counts its
/// later lines' brackets, which only overestimates.
fn flow_depths(line: &str, flow: &mut usize) -> Vec<usize> {
    let mut depths = Vec::new();
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') if previous.is_whitespace() || "[{,".contains(previous) => {
                quote = Some(c)
            }
            (None, '#') if previous.is_whitespace() => break,
            (None, '[' | '{') => {
                *flow += 1;
                depths.push(*flow);
            }
            (None, ']' | '}') => *flow = flow.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    depths
}

fn split_documents(text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| ManifestError::Yaml { index, message: e.to_string() })?;
        if value.is_null() {
            continue; // an empty document, such as after a trailing `---`
        }
        let json = serde_json::to_value(value)
            .map_err(|e| ManifestError::Yaml { index, message: e.to_string() })?;
        documents.push((index, json));
    }
    Ok(documents)
}

fn parse_secret(document: &Value) -> Result<Secret, (String, String)> {
    let name = document.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace = document
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE);
    let mut data = BTreeMap::new();
    if let Some(map) = document.get("data").and_then(Value::as_object) {
        for (key, value) in map {
            let encoded = value
                .as_str()
                .ok_or_else(|| (format!("data.{key}"), "must be a base64 string".to_string()))?;
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| {
                    (
                        format!("data.{key}"),
                        format!("is not valid base64 ({e}); use stringData for plain text"),
                    )
                })?;
            data.insert(key.clone(), decoded);
        }
    }
    if let Some(map) = document.get("stringData").and_then(Value::as_object) {
        for (key, value) in map {
            let text = value
                .as_str()
                .ok_or_else(|| (format!("stringData.{key}"), "must be a string".to_string()))?;
            data.insert(key.clone(), text.as_bytes().to_vec());
        }
    }
    Ok(Secret { namespace: namespace.to_string(), name: name.to_string(), data })
}

/// Kubernetes object names: DNS subdomains (lowercase letters, digits, `-` and `.`).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing; every object needs a name".into());
    }
    let valid_chars =
        name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let valid_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.len() > 253 || !valid_chars || !valid_ends {
        return Err(format!(
            "{name:?} is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit (put a free-form name in spec.displayName)"
        ));
    }
    Ok(())
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}
