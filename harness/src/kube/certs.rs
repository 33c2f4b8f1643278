//! The throwaway PKI of a control plane: one CA, the API server's serving certificate, client
//! certificates for the admin and the controller manager, and the service-account signing key.
//! Everything is generated with `rcgen` (ECDSA P-256) and written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{HarnessError, Result, io_err};

/// PEM files of a control plane, all inside one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    /// CA certificate (signs every other certificate; clients trust it).
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// API server serving certificate for 127.0.0.1, localhost and the in-cluster names.
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    /// Client certificate of the admin (group `system:masters`).
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Client certificate of `system:kube-controller-manager`.
    pub controller_manager_cert: PathBuf,
    pub controller_manager_key: PathBuf,
    /// Service-account token signing key (private, PKCS#8) and its public key.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

/// The admin user's name in certificates and kubeconfigs.
pub const ADMIN_USER: &str = "ferry-admin";

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> HarnessError + '_ {
    move |e| HarnessError::Start(format!("generate {what}: {e}"))
}

impl Pki {
    /// Generates every key and certificate into `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err("create the PKI directory"))?;
        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem).map_err(io_err(format!("write {}", path.display())))?;
            Ok(path)
        };

        let ca_key = KeyPair::generate().map_err(cert_err("the CA key"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_err("the CA certificate"))?;
        ca_params.distinguished_name.push(DnType::CommonName, "ferry-test-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err("the CA certificate"))?;
        let ca_cert_path = write("ca.crt", ca_cert.pem())?;
        let ca_key_path = write("ca.key", ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |name: &str,
                    sans: Vec<String>,
                    cn: &str,
                    orgs: &[&str],
                    usage: ExtendedKeyUsagePurpose|
         -> Result<(PathBuf, PathBuf)> {
            let key = KeyPair::generate().map_err(cert_err(name))?;
            let mut params = CertificateParams::new(sans).map_err(cert_err(name))?;
            params.distinguished_name.push(DnType::CommonName, cn);
            for org in orgs {
                params.distinguished_name.push(DnType::OrganizationName, *org);
            }
            params.key_usages =
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).map_err(cert_err(name))?;
            Ok((
                write(&format!("{name}.crt"), cert.pem())?,
                write(&format!("{name}.key"), key.serialize_pem())?,
            ))
        };

        let sans = [
            "127.0.0.1",
            "localhost",
            "10.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from)
        .to_vec();
        let (apiserver_cert, apiserver_key) =
            leaf("apiserver", sans, "kube-apiserver", &[], ExtendedKeyUsagePurpose::ServerAuth)?;
        let (admin_cert, admin_key) = leaf(
            "admin",
            Vec::new(),
            ADMIN_USER,
            &["system:masters"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let (controller_manager_cert, controller_manager_key) = leaf(
            "controller-manager",
            Vec::new(),
            "system:kube-controller-manager",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        let sa = KeyPair::generate().map_err(cert_err("the service-account key"))?;
        let service_account_key = write("sa.key", sa.serialize_pem())?;
        let service_account_pub = write("sa.pub", sa.public_key_pem())?;

        Ok(Self {
            dir: dir.to_path_buf(),
            ca_cert: ca_cert_path,
            ca_key: ca_key_path,
            apiserver_cert,
            apiserver_key,
            admin_cert,
            admin_key,
            controller_manager_cert,
            controller_manager_key,
            service_account_key,
            service_account_pub,
        })
    }
}
