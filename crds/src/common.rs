//! Types shared by both kinds: Secret references and TLS settings.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret's data.
    pub key: String,
}

/// How the connection to a server is encrypted and authenticated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsMode {
    /// Plain TCP. Only for networks you trust.
    #[default]
    Disabled,
    /// Encrypt and verify the server's certificate against `caSecretRef`.
    ServerAuth,
    /// Encrypt and present a client certificate (`clientCertSecretRef`, `clientKeySecretRef`)
    /// without verifying the server.
    ClientCert,
    /// Both: verify the server against the CA and present a client certificate.
    Mutual,
}

impl TlsMode {
    /// Whether this mode verifies the server certificate against a CA.
    pub fn verifies_server(self) -> bool {
        matches!(self, Self::ServerAuth | Self::Mutual)
    }

    /// Whether this mode presents a client certificate.
    pub fn presents_client_cert(self) -> bool {
        matches!(self, Self::ClientCert | Self::Mutual)
    }
}

/// TLS settings of a connection. The Secrets hold PEM text.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    validation = Rule::new("!(self.mode in ['ServerAuth', 'Mutual']) || has(self.caSecretRef)")
        .message("tls.mode ServerAuth and Mutual need caSecretRef"),
    validation = Rule::new("!(self.mode in ['ClientCert', 'Mutual']) || (has(self.clientCertSecretRef) && has(self.clientKeySecretRef))")
        .message("tls.mode ClientCert and Mutual need clientCertSecretRef and clientKeySecretRef"),
)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Disabled, ServerAuth (CA), ClientCert (certificate and key) or Mutual (all three).
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM CA certificate that signed the server's certificate (ServerAuth, Mutual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// PEM client certificate (ClientCert, Mutual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretKeyRef>,
    /// PEM private key of the client certificate (ClientCert, Mutual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_secret_ref: Option<SecretKeyRef>,
}

impl TlsConfig {
    /// Every Secret reference this configuration names.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretKeyRef> {
        [&self.ca_secret_ref, &self.client_cert_secret_ref, &self.client_key_secret_ref]
            .into_iter()
            .flatten()
    }
}
