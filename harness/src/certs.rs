//! Test certificates made with the openssl CLI: a CA, a server certificate for 127.0.0.1 and a
//! client certificate signed by it, and a second, unrelated CA.
//!
//! Files written into the directory: `ca.pem`, `other-ca.pem`, `server.pem`, `server-key.pem`,
//! `client.pem`, `client-key.pem` (and their keys and requests).

use std::path::Path;
use std::process::Command;

use crate::{HarnessError, Result, io_err};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io_err("run openssl"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(HarnessError::Start(format!("openssl {args:?}: {stderr}")));
    }
    Ok(())
}

/// Writes the certificates into `dir`, valid for two days.
pub fn make_certificates(dir: &Path) -> Result<()> {
    for ca in ["ca", "other-ca"] {
        let subject = format!("/CN=ferry test {ca}");
        let (key, cert) = (format!("{ca}-key.pem"), format!("{ca}.pem"));
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
                "-keyout", &key, "-out", &cert,
            ],
        )?;
    }
    let extensions = [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"),
    ];
    for (who, extension) in extensions {
        let ext = format!("{who}.ext");
        std::fs::write(dir.join(&ext), extension)
            .map_err(io_err("write an openssl extension file"))?;
        let (subject, key, csr) =
            (format!("/CN={who}"), format!("{who}-key.pem"), format!("{who}.csr"));
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out",
                &csr,
            ],
        )?;
        let cert = format!("{who}.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        )?;
    }
    Ok(())
}
