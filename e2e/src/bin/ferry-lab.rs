//! `ferry-lab`: everything Ferry needs to try it on Kubernetes without a cluster, as local
//! processes: a MariaDB source with a sample database, a TiDB target, a control plane (etcd,
//! kube-apiserver, kube-controller-manager) with Ferry's CRDs installed, and the node agent that
//! runs pods as local processes.
//!
//! `ferry-lab up` starts it all, prints every endpoint and credential (throwaway lab values)
//! and the kubeconfig path, and runs until Ctrl-C or `ferry-lab down`. Its state (pid file,
//! kubeconfig, `lab.env`, an example manifest) lives in `~/.cache/ferry/lab/` (or
//! `$FERRY_CACHE_DIR/lab/`, or `$FERRY_LAB_DIR`). Needs the binaries of `dev/build-go-tools.sh`, Debian's
//! `mariadb-server` and `etcd-server`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ferry_e2e::SqlServer;
use ferry_e2e::kube_harness::{ControlPlane, NodeAgent, NodeAgentOptions};
use ferry_e2e::{MariaDb, TiDb};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

#[derive(Parser)]
#[command(name = "ferry-lab", about = "A throwaway MariaDB, TiDB and Kubernetes for trying Ferry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the lab and keep it running until Ctrl-C or `ferry-lab down`.
    Up {
        /// Run IMAGE's containers that have no command as COMMAND (split on spaces), e.g.
        /// `ferry-worker=/path/to/ferry-worker`. Repeatable.
        #[arg(long = "image", value_name = "IMAGE=COMMAND")]
        images: Vec<String>,
        /// Run LOCAL where a container's command[0] is PATH, e.g.
        /// `/usr/local/bin/ferry-worker=target/debug/ferry-worker`. Repeatable.
        #[arg(long = "executable", value_name = "PATH=LOCAL")]
        executables: Vec<String>,
    },
    /// Stop a running lab.
    Down,
    /// Print the endpoints of a running lab.
    Status,
}

/// Where the worker image has the `ferry` binary (the operator's pods run it).
const WORKER_BINARY: &str = "/usr/local/bin/ferry";

const SOURCE_USER: &str = "ferry";
const SOURCE_PASSWORD: &str = "ferry-lab-source";
const TARGET_USER: &str = "ferry";
const TARGET_PASSWORD: &str = "ferry-lab-target";

const SAMPLE: &str = "CREATE DATABASE shop; \
    CREATE TABLE shop.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, \
      email VARCHAR(200) UNIQUE, created_at DATETIME DEFAULT CURRENT_TIMESTAMP); \
    CREATE TABLE shop.orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, \
      total DECIMAL(12,2) NOT NULL, status ENUM('new','paid','shipped') DEFAULT 'new', \
      note TEXT, KEY (customer_id)); \
    INSERT INTO shop.customers (name, email) VALUES ('Ada','ada@example.com'), \
      ('Grace','grace@example.com'), ('Linus','linus@example.com'); \
    INSERT INTO shop.orders (customer_id, total, status, note) VALUES (1, 19.99, 'paid', NULL), \
      (1, 5.00, 'new', 'gift'), (2, 120.50, 'shipped', 'fragile'), (3, 7.25, 'paid', '✓ ok'); \
    CREATE DATABASE billing; \
    CREATE TABLE billing.invoices (id INT PRIMARY KEY, order_id BIGINT, amount DECIMAL(12,2)); \
    INSERT INTO billing.invoices VALUES (1, 1, 19.99), (2, 3, 120.50)";

/// The lab's state: `$FERRY_LAB_DIR`, else `lab/` in the cache directory.
fn lab_dir() -> PathBuf {
    match std::env::var_os("FERRY_LAB_DIR") {
        Some(dir) => dir.into(),
        None => ferry_e2e::cache_dir().join("lab"),
    }
}

fn pid_file() -> PathBuf {
    lab_dir().join("ferry-lab.pid")
}

fn running_pid() -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file()).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive.then_some(pid)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,kube_client=warn,kube_client::client::builder=off".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Up { images, executables } => {
            let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
            runtime.block_on(up(images, executables))
        }
        Command::Down => down(),
        Command::Status => status(),
    }
}

fn split_pair(value: &str) -> anyhow::Result<(String, String)> {
    let (a, b) = value.split_once('=').with_context(|| format!("{value}: expected A=B"))?;
    Ok((a.to_string(), b.to_string()))
}

async fn up(images: Vec<String>, executables: Vec<String>) -> anyhow::Result<()> {
    if let Some(pid) = running_pid() {
        bail!("a lab is already running (pid {pid}); stop it with `ferry-lab down`");
    }
    let mut options = NodeAgentOptions::default();
    for image in &images {
        let (image, command) = split_pair(image)?;
        options = options.image(image, command.split_whitespace().map(String::from).collect());
    }
    for executable in &executables {
        let (path, local) = split_pair(executable)?;
        options = options.executable(path, local);
    }
    // The operator's worker pods run /usr/local/bin/ferry; use the `ferry` built next to this
    // binary (same cargo target directory) unless told otherwise.
    if !options.executables.contains_key(WORKER_BINARY)
        && let Some(ferry) = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("ferry")))
            .filter(|p| p.is_file())
    {
        options = options.executable(WORKER_BINARY, ferry);
    }
    let dir = lab_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(pid_file(), std::process::id().to_string()).context("write the pid file")?;
    let result = run(options, &dir).await;
    let _ = std::fs::remove_file(pid_file());
    result
}

async fn run(options: NodeAgentOptions, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("starting MariaDB, TiDB and the control plane...");
    let (source, target, plane) = tokio::try_join!(
        async {
            let source = MariaDb::source().await?;
            source.exec(SAMPLE).await?;
            source
                .create_user(
                    SOURCE_USER,
                    SOURCE_PASSWORD,
                    "SELECT, RELOAD, LOCK TABLES, SHOW VIEW, REPLICATION SLAVE, REPLICATION CLIENT",
                )
                .await?;
            Ok::<_, ferry_e2e::HarnessError>(source)
        },
        async {
            let target = TiDb::start().await?;
            target.create_user(TARGET_USER, TARGET_PASSWORD, "ALL PRIVILEGES").await?;
            Ok(target)
        },
        async {
            let plane = ControlPlane::start().await?;
            plane.install_crds().await?;
            Ok(plane)
        },
    )?;
    let worker = options
        .executables
        .get(WORKER_BINARY)
        .map(|p| format!("{WORKER_BINARY} runs {}", p.display()))
        .unwrap_or_else(|| {
            format!("none: build `ferry` (cargo build -p ferry-worker) or pass --executable {WORKER_BINARY}=PATH")
        });
    let agent = NodeAgent::start_with(&plane, options).await?;
    let client = plane.client().await?;
    for (name, password) in [("lab-source", SOURCE_PASSWORD), ("lab-target", TARGET_PASSWORD)] {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"password": password},
        }))?;
        Api::<Secret>::namespaced(client.clone(), "default")
            .patch(name, &PatchParams::apply("ferry-lab").force(), &Patch::Apply(&secret))
            .await
            .with_context(|| format!("create Secret {name}"))?;
    }

    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(plane.kubeconfig(), &kubeconfig).context("copy the kubeconfig")?;
    let example = dir.join("example.yaml");
    std::fs::write(&example, example_manifest(source.port(), target.port()))
        .context("write the example manifest")?;
    let env = format!(
        "export KUBECONFIG={kc}\n\
         export FERRY_LAB_SOURCE_HOST=127.0.0.1 FERRY_LAB_SOURCE_PORT={sp}\n\
         export FERRY_LAB_SOURCE_USER={SOURCE_USER} FERRY_LAB_SOURCE_PASSWORD={SOURCE_PASSWORD}\n\
         export FERRY_LAB_TARGET_HOST=127.0.0.1 FERRY_LAB_TARGET_PORT={tp}\n\
         export FERRY_LAB_TARGET_USER={TARGET_USER} FERRY_LAB_TARGET_PASSWORD={TARGET_PASSWORD}\n\
         export FERRY_LAB_APISERVER={api}\n",
        kc = kubeconfig.display(),
        sp = source.port(),
        tp = target.port(),
        api = plane.server_url(),
    );
    std::fs::write(dir.join("lab.env"), &env).context("write lab.env")?;

    let kubectl =
        ferry_e2e::kube_harness::go_tool("kubectl", ferry_e2e::kube_harness::KUBE_VERSION)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "not built (dev/build-go-tools.sh kube builds it)".into());
    let times = plane.start_times();
    println!(
        "ferry-lab is up after {:.1?} (etcd {:.1?}, kube-apiserver {:.1?}, \
         kube-controller-manager {:.1?})\n\
         \n\
         MariaDB source  127.0.0.1:{sp}  user {SOURCE_USER} / {SOURCE_PASSWORD} (root: no \
         password)  databases shop, billing; binlog ROW\n\
         TiDB target     127.0.0.1:{tp}  user {TARGET_USER} / {TARGET_PASSWORD} (root: no \
         password)  status http://127.0.0.1:{tsp}/status\n\
         kube-apiserver  {api}  (etcd {etcd})\n\
         kubeconfig      {kc}  (admin, system:masters)\n\
         kubectl         {kubectl}\n\
         node            {node}  (pods run as local processes; their files: {pods})\n\
         worker binary   {worker}\n\
         Secrets         default/lab-source, default/lab-target (key: password)\n\
         example         {example}  (kubectl apply -f it)\n\
         environment     source {envfile}\n\
         \n\
         Stop with Ctrl-C or `ferry-lab down`.",
        started.elapsed(),
        times.etcd,
        times.apiserver,
        times.controller_manager.unwrap_or_default(),
        sp = source.port(),
        tp = target.port(),
        tsp = target.status_port(),
        api = plane.server_url(),
        etcd = plane.etcd_url(),
        kc = kubeconfig.display(),
        kubectl = kubectl,
        node = agent.node_name(),
        worker = worker,
        pods = agent.pods_dir().display(),
        example = example.display(),
        envfile = dir.join("lab.env").display(),
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("wait for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    eprintln!("stopping...");
    drop(agent);
    drop(plane);
    drop(target);
    drop(source);
    let _ = std::fs::remove_file(dir.join("lab.env"));
    eprintln!("stopped");
    Ok(())
}

fn example_manifest(source_port: u16, target_port: u16) -> String {
    format!(
        "# Ferry resources for the lab's servers (the Secrets already exist).\n\
         apiVersion: ferry.dev/v1alpha1\n\
         kind: MigrationSource\n\
         metadata:\n  name: lab-mariadb\n\
         spec:\n  type: MariaDB\n  host: 127.0.0.1\n  port: {source_port}\n  user: {SOURCE_USER}\n\
         \x20 passwordSecretRef:\n    name: lab-source\n    key: password\n\
         ---\n\
         apiVersion: ferry.dev/v1alpha1\n\
         kind: MigrationJob\n\
         metadata:\n  name: lab-shop\n\
         spec:\n  displayName: lab_shop\n  sourceRef:\n    name: lab-mariadb\n\
         \x20 target:\n    host: 127.0.0.1\n    port: {target_port}\n    user: {TARGET_USER}\n\
         \x20   passwordSecretRef:\n      name: lab-target\n      key: password\n\
         \x20 mode: FullAndIncremental\n  objects:\n    databases: [shop, billing]\n"
    )
}

fn down() -> anyhow::Result<()> {
    let Some(pid) = running_pid() else {
        println!("no lab is running");
        let _ = std::fs::remove_file(pid_file());
        return Ok(());
    };
    // SAFETY: sends SIGTERM to the pid the running lab wrote; no memory is involved.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!("could not signal pid {pid}: {}", std::io::Error::last_os_error());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_pid() == Some(pid) {
        if Instant::now() > deadline {
            bail!("the lab (pid {pid}) did not stop within 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("lab (pid {pid}) stopped");
    Ok(())
}

fn status() -> anyhow::Result<()> {
    match running_pid() {
        Some(pid) => {
            let env = std::fs::read_to_string(lab_dir().join("lab.env")).unwrap_or_default();
            println!("lab running (pid {pid})\n{env}");
        }
        None => println!("no lab is running"),
    }
    Ok(())
}
