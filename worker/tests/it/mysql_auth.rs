//! Logins to a real MySQL 9.7 source, which has no `mysql_native_password` any more: users of
//! its default plugin, `caching_sha2_password`, migrate over TLS and over a plain connection
//! (the password then travels encrypted with the server's RSA public key, which the driver asks
//! the server for); a server that can take the password neither way, and a wrong password, stop
//! the job with an error that says what failed and how to fix it, and never shows the password.

use crate::support;

use std::path::{Path, PathBuf};

use ferry_crds::TlsMode;
use ferry_harness::{MariaDb, MySql, MySqlOptions, Role, Source, SourceKind, SqlServer, Target};
use ferry_worker::config::{Endpoint, Password, TlsMaterial};
use ferry_worker::connect::connect;
use serde::Deserialize;
use support::{PASSWORD, Setup};

const DATA: &str = "CREATE DATABASE app COLLATE utf8mb4_general_ci; \
    CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20), doc JSON); \
    INSERT INTO app.t VALUES (1, 'one', '{\"a\": 1}'), (2, 'two', NULL), (3, 'three', '[3]')";

/// Gives the running MySQL server the test's certificates (in its own directory, which mysqld
/// sees inside its chroot) and reloads its TLS context; returns the directory.
async fn serve_tls(source: &Source) -> PathBuf {
    let dir = source.dir().join("tls");
    std::fs::create_dir_all(&dir).expect("certificate directory");
    ferry_harness::certs::make_certificates(&dir).expect("test certificates");
    let chroot = ferry_harness::mysql::chroot_dir().expect("the MySQL chroot");
    let inside = Path::new("/").join(dir.strip_prefix(chroot).expect("a directory in the chroot"));
    let file = |name: &str| inside.join(name).display().to_string();
    source
        .exec(&format!(
            "SET GLOBAL ssl_ca = '{}'; SET GLOBAL ssl_cert = '{}'; SET GLOBAL ssl_key = '{}'; \
             ALTER INSTANCE RELOAD TLS",
            file("ca.pem"),
            file("server.pem"),
            file("server-key.pem")
        ))
        .await
        .expect("reload TLS with the test's certificates");
    dir
}

/// `yaml` with the source reached over TLS (ServerAuth) with `ca_pem`, carried in the Secret.
fn with_source_tls(yaml: &str, ca_pem: &str) -> String {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let mut object = serde_yaml::Value::deserialize(document).expect("a manifest document");
        match object["kind"].as_str() {
            Some("Secret") => object["stringData"]["ca.pem"] = ca_pem.into(),
            Some("MigrationSource") => {
                object["spec"]["tls"] = serde_yaml::from_str(
                    "{mode: ServerAuth, caSecretRef: {name: creds, key: ca.pem}}",
                )
                .expect("tls YAML");
            }
            _ => {}
        }
        documents.push(serde_yaml::to_string(&object).expect("manifest YAML"));
    }
    documents.join("---\n")
}

/// Writes a Full job of `app` as `user` with `password` (the same on both ends), over TLS when
/// `ca_pem` is given.
fn full_job(setup: &Setup, user: &str, password: &str, ca_pem: Option<&str>) -> PathBuf {
    let yaml = ferry_harness::JobManifest {
        source_kind: setup.source.source_kind(),
        name: "job",
        source_port: setup.source.port(),
        target_port: setup.target.port(),
        user,
        password,
        mode: "Full",
        spec: "  objects:\n    databases: [app]\n",
    }
    .yaml();
    let yaml = match ca_pem {
        Some(ca) => with_source_tls(&yaml, ca),
        None => yaml,
    };
    let path = setup.dir.path().join(format!("{user}.yaml"));
    std::fs::write(&path, yaml).expect("write the manifest");
    path
}

async fn plugin_of(source: &Source, user: &str) -> Vec<Option<String>> {
    let sql = format!("SELECT plugin FROM mysql.user WHERE user = '{user}'");
    source.query_strings(&sql).await.expect("the user's plugin")
}

/// A Full copy as a `caching_sha2_password` user over a plain connection, then as one that the
/// server admits only over TLS; a wrong password first, which must say so and nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn caching_sha2_users_migrate_over_plain_and_tls() {
    let mut setup =
        Setup::start_with_source(SourceKind::MySql, ferry_harness::TargetKind::MariaDb).await;
    let source = &setup.source;
    let native = "SELECT COUNT(*) FROM information_schema.PLUGINS \
                  WHERE PLUGIN_NAME = 'mysql_native_password'";
    assert_eq!(source.query_strings(native).await.expect("plugins"), [Some("0".into())]);
    assert_eq!(plugin_of(source, "ferry").await, [Some("caching_sha2_password".into())]);
    source.exec(DATA).await.expect("source data");

    let wrong = full_job(&setup, "ferry", "not-the-password", None);
    let (ok, log) = setup.run(&wrong, &[], &[]);
    assert!(!ok, "a wrong password migrated:\n{log}");
    assert!(log.contains("Access denied for user 'ferry'"), "{log}");
    assert!(log.contains("check the user and the password"), "{log}");
    assert!(!log.contains("RSA key pair"), "the wrong password was blamed on the server:\n{log}");
    assert!(!log.contains("not-the-password") && !log.contains(PASSWORD), "{log}");

    // `ferry` has never logged in, so the server has no cached hash: the first login is a full
    // authentication, which without TLS needs the server's RSA public key.
    let plain = full_job(&setup, "ferry", PASSWORD, None);
    let (ok, log) = setup.run(&plain, &[], &[]);
    assert!(ok, "the plain copy failed:\n{log}");
    setup.assert_same("app").await;
    assert!(!log.contains(PASSWORD), "the password reached the log");

    let certificates = serve_tls(&setup.source).await;
    let ca = std::fs::read_to_string(certificates.join("ca.pem")).expect("CA");
    setup
        .source
        .exec(&format!(
            "CREATE USER 'secure'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL; \
             GRANT ALL PRIVILEGES ON *.* TO 'secure'@'%'"
        ))
        .await
        .expect("a user admitted only over TLS");
    assert_eq!(plugin_of(&setup.source, "secure").await, [Some("caching_sha2_password".into())]);
    setup.target.create_user("secure", PASSWORD, "ALL PRIVILEGES").await.expect("target user");
    setup.target.exec("DROP DATABASE app; DROP DATABASE ferry_meta").await.expect("reset target");
    let tls = full_job(&setup, "secure", PASSWORD, Some(&ca));
    let (ok, log) = setup.run(&tls, &[], &[]);
    assert!(ok, "the TLS copy failed:\n{log}");
    setup.assert_same("app").await;
    assert!(!log.contains(PASSWORD), "the password reached the log");
}

/// A source without an RSA key pair cannot take a `caching_sha2_password` user's password over
/// a plain connection: it refuses the login with the same "Access denied" a wrong password gets.
/// Ferry tells the two apart and says what to change; TLS, the first remedy it names, works.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_without_rsa_keys_is_named_as_the_cause() {
    let options = MySqlOptions::new(Role::Source)
        .arg("--caching-sha2-password-auto-generate-rsa-keys=OFF")
        .arg("--caching-sha2-password-private-key-path=/nonexistent/private_key.pem")
        .arg("--caching-sha2-password-public-key-path=/nonexistent/public_key.pem");
    let (source, target) = tokio::join!(MySql::start(options), MariaDb::target());
    let source = Source::MySql(source.expect("start MySQL without RSA keys"));
    let target = Target::MariaDb(target.expect("start the target"));
    let mut setup = Setup::from_servers(source, target).await;
    setup.source.exec(DATA).await.expect("source data");

    let plain = full_job(&setup, "ferry", PASSWORD, None);
    let (ok, log) = setup.run(&plain, &[], &[]);
    assert!(!ok, "migrated without a way to send the password:\n{log}");
    for expected in [
        "Access denied for user 'ferry'",
        "the password was not checked",
        "RSA key pair",
        "tls.mode ServerAuth",
        "caching_sha2_password_auto_generate_rsa_keys=ON",
        "ALTER USER",
    ] {
        assert!(log.contains(expected), "no {expected:?} in:\n{log}");
    }
    assert!(!log.contains(PASSWORD), "the password reached the log:\n{log}");

    let certificates = serve_tls(&setup.source).await;
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: setup.source.port(),
        user: "ferry".into(),
        password: Password::new(PASSWORD),
        tls: TlsMaterial {
            mode: TlsMode::ServerAuth,
            ca_pem: Some(std::fs::read(certificates.join("ca.pem")).expect("CA")),
            ..TlsMaterial::default()
        },
    };
    connect(&endpoint, "source").await.expect("over TLS the same user and password log in");
}
