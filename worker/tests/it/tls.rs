//! Connections with every TLS mode of the API against a real MariaDB started with TLS, with
//! certificates made by the test (openssl CLI); and each kind of failure ending in a clear error
//! within a bounded time.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_crds::TlsMode;
use ferry_harness::SqlServer;
use ferry_harness::{MariaDb, MariaDbOptions, Role};
use ferry_worker::config::{Endpoint, Password, TlsMaterial};
use ferry_worker::connect::{CONNECT_TIMEOUT, ConnectError, connect};
use mysql_async::prelude::Queryable;

const PASSWORD: &str = "tls-pw";

struct Tls {
    server: MariaDb,
    dir: tempfile::TempDir,
}

impl Tls {
    async fn start() -> Tls {
        Self::start_as(Role::Target).await
    }

    /// A server in `role` (a source writes a binlog) that accepts TLS with the test's CA.
    async fn start_as(role: Role) -> Tls {
        let dir = tempfile::tempdir().expect("tempdir");
        ferry_harness::certs::make_certificates(dir.path()).expect("test certificates");
        let file = |name: &str| dir.path().join(name).display().to_string();
        let options = MariaDbOptions::new(role)
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

/// `ferry migrate` with a Mutual TLS source whose user is refused without a client certificate
/// (REQUIRE X509): the precheck, the copy and the binlog stream all connect over TLS, or the job
/// could not reach Incremental and replicate a row written afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_copies_and_replicates_over_mutual_tls() {
    let tls = Tls::start_as(Role::Source).await;
    let source = &tls.server;
    source
        .exec(&format!(
            "CREATE USER 'mover'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509; \
             GRANT ALL PRIVILEGES ON *.* TO 'mover'@'%'; \
             CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO app.t VALUES (1, 'copied'), (2, 'copied too')"
        ))
        .await
        .expect("source user and data");
    let target = MariaDb::target().await.expect("target");
    target.create_user("mover", PASSWORD, "ALL PRIVILEGES").await.expect("target user");

    let manifest = tls.dir.path().join("job.yaml");
    std::fs::write(&manifest, tls.manifest(target.port())).expect("write the manifest");
    let status_file = tls.dir.path().join("status.json");
    let log = std::fs::File::create(tls.dir.path().join("ferry.log")).expect("log file");
    let mut ferry = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["migrate", "-f"])
        .arg(&manifest)
        .arg("--status-file")
        .arg(&status_file)
        .env("FERRY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run ferry");
    let ferry_log =
        || std::fs::read_to_string(tls.dir.path().join("ferry.log")).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(90);
    let incremental = || {
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&status)
            .is_ok_and(|s| s["stage"] == "Incremental" && s["phase"] == "Running")
    };
    while !incremental() {
        assert!(ferry.try_wait().expect("ferry").is_none(), "ferry exited:\n{}", ferry_log());
        assert!(Instant::now() < deadline, "no Incremental stage:\n{}", ferry_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    source.exec("INSERT INTO app.t VALUES (3, 'replicated')").await.expect("source write");
    loop {
        let (mut src, mut dst) = (source.conn().await.unwrap(), target.conn().await.unwrap());
        match ferry_harness::assert_same_tables(&mut src, &mut dst, "app").await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("{e}\n{}", ferry_log()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let dumps = source
        .query_strings(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = 'mover' AND COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .expect("processlist");
    assert_eq!(dumps, [Some("1".to_string())], "the binlog stream is not the X509 user's");

    let sent = Command::new("kill").args(["-INT", &ferry.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let exit = ferry.wait().expect("wait for ferry");
    assert!(exit.success(), "ferry did not stop cleanly:\n{}", ferry_log());
    assert!(!ferry_log().contains(PASSWORD), "the password reached the log");
}

impl Tls {
    /// A FullAndIncremental job of `app` from this server (Mutual TLS, user `mover`) to a plain
    /// target on `target_port`; the PEM files travel in the Secret as the API would carry them.
    fn manifest(&self, target_port: u16) -> String {
        let pem = |name: &str| {
            let text = String::from_utf8(self.pem(name)).expect("PEM is text");
            text.lines().map(|line| format!("    {line}\n")).collect::<String>()
        };
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData:\n  \
             password: \"{PASSWORD}\"\n  ca.pem: |\n{}  cert.pem: |\n{}  key.pem: |\n{}---\n\
             apiVersion: ferry.dev/v1alpha1\nkind: MigrationSource\nmetadata: {{name: src}}\n\
             spec:\n  type: MariaDB\n  host: 127.0.0.1\n  port: {}\n  user: mover\n  \
             passwordSecretRef: {{name: creds, key: password}}\n  tls:\n    mode: Mutual\n    \
             caSecretRef: {{name: creds, key: ca.pem}}\n    \
             clientCertSecretRef: {{name: creds, key: cert.pem}}\n    \
             clientKeySecretRef: {{name: creds, key: key.pem}}\n---\n\
             apiVersion: ferry.dev/v1alpha1\nkind: MigrationJob\n\
             metadata: {{name: job, namespace: default}}\nspec:\n  sourceRef: {{name: src}}\n  \
             target:\n    host: 127.0.0.1\n    port: {target_port}\n    user: mover\n    \
             passwordSecretRef: {{name: creds, key: password}}\n  mode: FullAndIncremental\n  \
             objects:\n    databases: [app]\n",
            pem("ca.pem"),
            pem("client.pem"),
            pem("client-key.pem"),
            self.server.port(),
        )
    }
}
