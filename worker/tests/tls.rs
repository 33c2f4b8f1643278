//! Connections with every TLS mode of the API against a real MariaDB started with TLS, with
//! certificates made by the test (openssl CLI); and each kind of failure ending in a clear error
//! within a bounded time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_crds::TlsMode;
use ferry_e2e::SqlServer;
use ferry_e2e::{MariaDb, MariaDbOptions, Role};
use ferry_worker::config::{Endpoint, Password, TlsMaterial};
use ferry_worker::connect::{CONNECT_TIMEOUT, ConnectError, connect};
use mysql_async::prelude::Queryable;

const PASSWORD: &str = "tls-pw";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and a second
/// unrelated CA.
fn make_certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=ferry test {ca}"),
                "-keyout",
                &format!("{ca}-key.pem"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={who}"),
                "-keyout",
                &format!("{who}-key.pem"),
                "-out",
                &format!("{who}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
                "-out",
                &format!("{who}.pem"),
            ],
        );
    }
}

struct Tls {
    server: MariaDb,
    dir: tempfile::TempDir,
}

impl Tls {
    async fn start() -> Tls {
        let dir = tempfile::tempdir().expect("tempdir");
        make_certificates(dir.path());
        let file = |name: &str| dir.path().join(name).display().to_string();
        let options = MariaDbOptions::new(Role::Target)
            .arg(format!("--ssl-ca={}", file("ca.pem")))
            .arg(format!("--ssl-cert={}", file("server.pem")))
            .arg(format!("--ssl-key={}", file("server-key.pem")));
        let server = MariaDb::start(options).await.expect("start MariaDB with TLS");
        server
            .exec(&format!(
                "CREATE USER 'x509'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509; \
                 CREATE USER 'ssl'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL; \
                 GRANT SELECT ON *.* TO 'x509'@'%', 'ssl'@'%'"
            ))
            .await
            .expect("users");
        Tls { server, dir }
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).expect("pem")
    }

    fn endpoint(
        &self,
        user: &str,
        password: &str,
        mode: TlsMode,
        ca: &str,
        client: bool,
    ) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.server.port(),
            user: user.into(),
            password: Password::new(password),
            tls: TlsMaterial {
                mode,
                ca_pem: Some(self.pem(ca)),
                client_cert_pem: client.then(|| self.pem("client.pem")),
                client_key_pem: client.then(|| {
                    Password::new(String::from_utf8(self.pem("client-key.pem")).expect("key"))
                }),
            },
        }
    }
}

async fn cipher(endpoint: &Endpoint) -> String {
    let mut conn = connect(endpoint, "source")
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", endpoint.tls.mode));
    let row: Option<(String, String)> =
        conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.expect("status");
    row.map(|r| r.1).unwrap_or_default()
}

/// Connects expecting a failure; returns its message and checks it came in bounded time.
async fn failure(endpoint: &Endpoint) -> (ConnectError, String) {
    let started = Instant::now();
    let error = connect(endpoint, "source").await.expect_err("the connection should fail");
    assert!(
        started.elapsed() <= CONNECT_TIMEOUT + Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(!message.contains(PASSWORD), "the password leaked: {message}");
    (error, message)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tls_mode_connects() {
    let tls = Tls::start().await;
    let server_auth = tls.endpoint("ssl", PASSWORD, TlsMode::ServerAuth, "ca.pem", false);
    assert!(!cipher(&server_auth).await.is_empty(), "ServerAuth is not encrypted");
    let client_cert = tls.endpoint("x509", PASSWORD, TlsMode::ClientCert, "other-ca.pem", true);
    assert!(!cipher(&client_cert).await.is_empty(), "ClientCert is not encrypted");
    let mutual = tls.endpoint("x509", PASSWORD, TlsMode::Mutual, "ca.pem", true);
    assert!(!cipher(&mutual).await.is_empty(), "Mutual is not encrypted");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_are_clear_and_bounded() {
    let tls = Tls::start().await;

    let wrong_ca = tls.endpoint("ssl", PASSWORD, TlsMode::ServerAuth, "other-ca.pem", false);
    let (_, message) = failure(&wrong_ca).await;
    assert!(message.contains("check the TLS mode") || message.contains("certificate"), "{message}");

    let no_client_cert = tls.endpoint("x509", PASSWORD, TlsMode::ServerAuth, "ca.pem", false);
    let (_, message) = failure(&no_client_cert).await;
    assert!(message.contains("Access denied") && message.contains("x509@127.0.0.1"), "{message}");

    let mut incomplete = tls.endpoint("x509", PASSWORD, TlsMode::Mutual, "ca.pem", false);
    incomplete.tls.client_cert_pem = None;
    let (error, message) = failure(&incomplete).await;
    assert!(matches!(error, ConnectError::TlsConfig { .. }), "{message}");
    assert!(message.contains("client certificate"), "{message}");

    let wrong_password = tls.endpoint("x509", "not-the-password", TlsMode::Mutual, "ca.pem", true);
    let (_, message) = failure(&wrong_password).await;
    assert!(message.contains("check the user and the password"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_servers_fail_within_the_timeout() {
    // Nothing listens: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        password: Password::new(PASSWORD),
        tls: TlsMaterial::default(),
    };
    let (_, message) = failure(&endpoint).await;
    assert!(message.contains("nothing listens") || message.contains("refused"), "{message}");

    // Something accepts but never answers (a black hole): the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = Endpoint { port: silent.local_addr().expect("addr").port(), ..endpoint };
    let (error, message) = failure(&endpoint).await;
    assert!(matches!(error, ConnectError::Timeout { .. }), "{message}");
    assert!(message.contains("cannot reach"), "{message}");
}
