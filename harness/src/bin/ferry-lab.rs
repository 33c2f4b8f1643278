//! `ferry-lab`: everything Ferry needs to try it on Kubernetes without a cluster, as local
//! processes: a MariaDB source with a sample database, a TiDB target, a control plane (etcd,
//! kube-apiserver, kube-controller-manager), the node agent that runs pods as local processes,
//! and Ferry installed with `helm install` of `charts/ferry` as on a real cluster (the agent
//! runs the `ferry-operator` and `ferry` built next to this binary for Ferry's images).
//!
//! `ferry-lab up` starts it all, prints every endpoint and credential (throwaway lab values)
//! and the next steps of README.md's try-out, and runs until Ctrl-C or `ferry-lab down`.
//! `ferry-lab env` prints the shell variables of a running lab (`eval "$(ferry-lab env)"`).
//! Everything it writes lives in its directory, `$FERRY_LAB_DIR`, else `lab/` in the cache
//! directory (`$FERRY_CACHE_DIR`, default `~/.cache/ferry`): the servers' data, the pods'
//! files and logs, the kubeconfig, the example; it removes the directory when it stops. Needs
//! `dev/setup.sh` (Debian's `mariadb-server` and `etcd-server`, the Go tools, helm).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ferry_harness::kube_harness::install::{self, LocalBinaries};
use ferry_harness::kube_harness::{
    ControlPlane, KUBE_VERSION, NodeAgent, NodeAgentOptions, OPERATOR_IMAGE, OPERATOR_NAMESPACE,
    WORKER_BINARY, go_tool,
};
use ferry_harness::{MariaDb, SqlServer, TiDb};
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
    /// Start the lab, install Ferry with its Helm chart, and keep it all running until Ctrl-C
    /// or `ferry-lab down`.
    Up(UpArgs),
    /// Stop a running lab and remove its directory.
    Down,
    /// Print the endpoints of a running lab.
    Status,
    /// Print `export` lines for a running lab's kubeconfig, kubectl and servers, for
    /// `eval "$(ferry-lab env)"`.
    Env,
    /// Run one MariaDB server the way the tests start it, until SIGTERM or Ctrl-C.
    Mariadb(ServerArgs),
    /// Run one TiDB server (unistore) the way the tests start it, until SIGTERM or Ctrl-C.
    Tidb(ServerArgs),
}

/// One server for a script (the benchmarks, dev/quickstart.sh): it prints `HOST:PORT` once the
/// server answers, and writes it to `--ready-file` too.
#[derive(clap::Args)]
struct ServerArgs {
    /// The port to listen on (loopback); default: a free one.
    #[arg(long)]
    port: Option<u16>,
    /// `source` (binary log on, ROW, FULL images) or `target`; MariaDB only.
    #[arg(long, value_enum, default_value = "target")]
    role: ServerRole,
    /// The directory the server's own directory (data, logs) is made in, removed on exit.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A file to write `HOST:PORT` to once the server answers.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// A file to write TiDB's status port to (TiDB only).
    #[arg(long)]
    status_port_file: Option<PathBuf>,
    /// More server arguments, after the harness's own (MariaDB only), e.g.
    /// `-- --innodb-buffer-pool-size=1G`.
    #[arg(last = true)]
    server_args: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ServerRole {
    Source,
    Target,
}

#[derive(clap::Args)]
struct UpArgs {
    /// Leave the operator out (install only the CRDs), to run it yourself, e.g. from an
    /// editor; the output says how.
    #[arg(long)]
    no_operator: bool,
    /// Run IMAGE's containers that have no command as COMMAND (split on spaces). Repeatable.
    /// Default: the operator image runs the `ferry-operator` next to this binary.
    #[arg(long = "image", value_name = "IMAGE=COMMAND")]
    images: Vec<String>,
    /// Run LOCAL where a container's command[0] is PATH. Repeatable. Default: the worker
    /// pods' /usr/local/bin/ferry runs the `ferry` next to this binary.
    #[arg(long = "executable", value_name = "PATH=LOCAL")]
    executables: Vec<String>,
}

const SOURCE_USER: &str = "ferry";
const SOURCE_PASSWORD: &str = "ferry-lab-source";
const TARGET_USER: &str = "ferry";
const TARGET_PASSWORD: &str = "ferry-lab-target";
const OPERATOR_START_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The try-out once the lab is up, as `(command, comment)`; `{bin}` is this binary's
/// directory. README.md's "Try it on Kubernetes without a cluster" shows the same commands
/// with `target/debug/`, and harness/tests/it/lab_readme.rs runs them from there and checks that
/// `up` printed them.
const NEXT_STEPS: &[(&str, &str)] = &[
    (r#"eval "$({bin}/ferry-lab env)""#, "KUBECONFIG, the lab's kubectl, FERRY_LAB_*"),
    ("kubectl apply -f $FERRY_LAB_DIR/example.yaml", "a MigrationSource and a MigrationJob"),
    ("kubectl get mj -w", "Incremental / Running within a minute; Ctrl-C"),
    (
        r#"mariadb -h 127.0.0.1 -P $FERRY_LAB_SOURCE_PORT -u root -e "INSERT INTO shop.customers (name) VALUES ('Hedy')""#,
        "a change on the source...",
    ),
    (
        r#"mariadb -h 127.0.0.1 -P $FERRY_LAB_TARGET_PORT -u root -e "SELECT id, name FROM shop.customers""#,
        "...replicated to TiDB",
    ),
    (
        r#"kubectl patch mj lab-shop --type merge -p '{"spec":{"paused":true}}'"#,
        "pause: the worker stops",
    ),
    (
        r#"kubectl patch mj lab-shop --type merge -p '{"spec":{"paused":false}}'"#,
        "resume from the checkpoint",
    ),
    (
        r#"kubectl patch mj lab-shop --type merge -p '{"spec":{"restartRequest":"1"}}'"#,
        "restart (a new value each time)",
    ),
    (
        "tail -n 20 $FERRY_LAB_DIR/pods/ferry-system_ferry-operator-*/logs/*.log",
        "the operator's log",
    ),
    ("tail -n 20 $FERRY_LAB_DIR/pods/default_lab-shop-worker-*/logs/*.log", "the workers' logs"),
    ("kubectl delete -f $FERRY_LAB_DIR/example.yaml", "stops the job; TiDB keeps the data"),
    ("{bin}/ferry-lab down", "stops the lab and removes $FERRY_LAB_DIR"),
];

/// The lab's directory and what it keeps there. Nothing else is written outside it: the
/// servers' and the control plane's temporary directories go to its `tmp/` (TMPDIR), helm's
/// caches to `helm/`, kubectl's (through `ferry-lab env`) to `kube-cache/`.
struct Lab {
    dir: PathBuf,
}

impl Lab {
    /// `$FERRY_LAB_DIR`, else `lab/` in the cache directory.
    fn from_env() -> Self {
        let dir = match std::env::var_os("FERRY_LAB_DIR") {
            Some(dir) => dir.into(),
            None => ferry_harness::cache_dir().join("lab"),
        };
        Self { dir }
    }

    /// Every entry the lab creates in its directory; the pid file last, so that it goes last.
    const ENTRIES: &[&str] = &[
        "lab.env",
        "example.yaml",
        "kubeconfig",
        "bin",
        "pods",
        "helm",
        "kube-cache",
        "tmp",
        "ferry-lab.pid",
    ];

    fn path(&self, entry: &str) -> PathBuf {
        debug_assert!(Self::ENTRIES.contains(&entry), "{entry} is not a lab entry");
        self.dir.join(entry)
    }

    fn running_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.path("ferry-lab.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // SAFETY: signal 0 only checks that the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0;
        // A zombie (exited, its parent has not waited yet) has stopped.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie =
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        (exists && !zombie).then_some(pid)
    }

    /// Removes every entry and then the directory if nothing else is in it (a directory named
    /// by FERRY_LAB_DIR may hold other files).
    fn remove(&self) -> anyhow::Result<()> {
        for entry in Self::ENTRIES {
            let path = self.dir.join(entry);
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(_) => Ok(()),
            };
            removed.with_context(|| format!("remove {}", path.display()))?;
        }
        if std::fs::remove_dir(&self.dir).is_err() && self.dir.exists() {
            eprintln!("left {} in place: it holds files the lab did not make", self.dir.display());
        }
        Ok(())
    }

    /// The shell lines of `ferry-lab env`.
    fn env_lines(&self, source_port: u16, target_port: u16, apiserver: &str) -> String {
        format!(
            "export FERRY_LAB_DIR={dir}\n\
             export KUBECONFIG={kubeconfig}\n\
             export KUBECACHEDIR={cache}\n\
             export PATH={bin}:\"$PATH\"\n\
             export FERRY_LAB_SOURCE_HOST=127.0.0.1 FERRY_LAB_SOURCE_PORT={source_port}\n\
             export FERRY_LAB_SOURCE_USER={SOURCE_USER} FERRY_LAB_SOURCE_PASSWORD={SOURCE_PASSWORD}\n\
             export FERRY_LAB_TARGET_HOST=127.0.0.1 FERRY_LAB_TARGET_PORT={target_port}\n\
             export FERRY_LAB_TARGET_USER={TARGET_USER} FERRY_LAB_TARGET_PASSWORD={TARGET_PASSWORD}\n\
             export FERRY_LAB_APISERVER={apiserver}\n",
            dir = shell_quote(&self.dir),
            kubeconfig = shell_quote(&self.path("kubeconfig")),
            cache = shell_quote(&self.path("kube-cache")),
            bin = shell_quote(&self.path("bin")),
        )
    }
}

/// `path` in single quotes for a POSIX shell.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
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
    let lab = Lab::from_env();
    match cli.command {
        Command::Up(args) => up(&lab, args),
        Command::Down => down(&lab),
        Command::Status => status(&lab),
        Command::Env => env(&lab),
        Command::Mariadb(args) => serve(args, Server::MariaDb),
        Command::Tidb(args) => serve(args, Server::TiDb),
    }
}

enum Server {
    MariaDb,
    TiDb,
}

/// Starts one server, announces its address, and keeps it until SIGTERM or SIGINT.
fn serve(args: ServerArgs, kind: Server) -> anyhow::Result<()> {
    let placement = ferry_harness::Placement { port: args.port, parent: args.dir.clone() };
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let (server, address): (Box<dyn std::any::Any>, String) = match kind {
            Server::MariaDb => {
                let role = match args.role {
                    ServerRole::Source => ferry_harness::Role::Source,
                    ServerRole::Target => ferry_harness::Role::Target,
                };
                let mut options = ferry_harness::MariaDbOptions::new(role);
                options.extra_args = args.server_args.clone();
                options.placement = placement;
                let server = MariaDb::start(options).await.context("start MariaDB")?;
                let address = format!("{}:{}", server.host(), server.port());
                (Box::new(server), address)
            }
            Server::TiDb => {
                if !args.server_args.is_empty() {
                    bail!("tidb takes no server arguments: {:?}", args.server_args);
                }
                let server = TiDb::start_at(&placement).await.context("start TiDB")?;
                if let Some(file) = &args.status_port_file {
                    std::fs::write(file, format!("{}\n", server.status_port()))
                        .with_context(|| format!("write {}", file.display()))?;
                }
                let address = format!("{}:{}", server.host(), server.port());
                (Box::new(server), address)
            }
        };
        if let Some(file) = &args.ready_file {
            std::fs::write(file, format!("{address}\n"))
                .with_context(|| format!("write {}", file.display()))?;
        }
        println!("{address}");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        // Dropping the handle stops the server and removes its directory.
        drop(server);
        Ok(())
    })
}

fn up(lab: &Lab, args: UpArgs) -> anyhow::Result<()> {
    if let Some(pid) = lab.running_pid() {
        bail!(
            "a lab is already running in {} (pid {pid}); stop it with `ferry-lab down`",
            lab.dir.display()
        );
    }
    // What a lab that was killed left behind.
    lab.remove()?;
    for dir in [&lab.dir, &lab.path("tmp")] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(lab.path("ferry-lab.pid"), std::process::id().to_string())
        .context("write the pid file")?;
    // SAFETY: no other thread runs yet (the runtime starts below), so nothing reads the
    // environment meanwhile. The servers, the control plane and helm inherit these (helm's
    // discovery cache would go to ~/.kube/cache without KUBECACHEDIR).
    unsafe {
        std::env::set_var("TMPDIR", lab.path("tmp"));
        std::env::set_var("KUBECACHEDIR", lab.path("kube-cache"));
        for (variable, dir) in [
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ] {
            std::env::set_var(variable, lab.path("helm").join(dir));
        }
    }
    let result = tokio::runtime::Runtime::new()
        .context("start the async runtime")
        .and_then(|runtime| runtime.block_on(run(lab, args)));
    let removed = lab.remove();
    result.and(removed)
}

/// What runs while the lab is up; dropped in this order.
struct Running {
    agent: NodeAgent,
    plane: ControlPlane,
    target: TiDb,
    source: MariaDb,
}

async fn run(lab: &Lab, args: UpArgs) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::pin!(stop);
    let started = Instant::now();
    let running = tokio::select! {
        running = start(lab, &args) => running?,
        _ = &mut stop => {
            eprintln!("stopped before the lab was up");
            return Ok(());
        }
    };
    print_summary(lab, &args, &running, started.elapsed())?;
    stop.await;
    eprintln!("stopping...");
    drop(running);
    eprintln!("stopped");
    Ok(())
}

/// The node agent's options: Ferry's images run as the binaries next to this one, unless
/// `--image`/`--executable` say otherwise; each binary in use must exist.
fn agent_options(lab: &Lab, args: &UpArgs) -> anyhow::Result<NodeAgentOptions> {
    let exe = std::env::current_exe().context("find this binary")?;
    let dir = exe.parent().context("the directory of this binary")?;
    let local = LocalBinaries { operator: dir.join("ferry-operator"), worker: dir.join("ferry") };
    let mut options =
        local.node_agent_options(NodeAgentOptions::default().pods_dir(lab.path("pods")));
    for image in &args.images {
        let (image, command) = split_pair(image)?;
        options = options.image(image, command.split_whitespace().map(String::from).collect());
    }
    for executable in &args.executables {
        let (path, local) = split_pair(executable)?;
        options = options.executable(path, local);
    }
    let operator = options.images.get(OPERATOR_IMAGE).and_then(|c| c.first());
    if !args.no_operator {
        require_binary(operator.map(Path::new), "ferry-operator", "ferry-operator")?;
    }
    require_binary(
        options.executables.get(WORKER_BINARY).map(PathBuf::as_path),
        "ferry",
        "ferry-worker",
    )?;
    Ok(options)
}

fn require_binary(path: Option<&Path>, binary: &str, package: &str) -> anyhow::Result<()> {
    match path {
        Some(path) if path.is_file() => Ok(()),
        _ => bail!(
            "{binary} is not built ({}): run `cargo build -p {package} --bin {binary}`",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        ),
    }
}

fn split_pair(value: &str) -> anyhow::Result<(String, String)> {
    let (a, b) = value.split_once('=').with_context(|| format!("{value}: expected A=B"))?;
    Ok((a.to_string(), b.to_string()))
}

async fn start(lab: &Lab, args: &UpArgs) -> anyhow::Result<Running> {
    // Everything that can be missing is checked before anything starts.
    let options = agent_options(lab, args)?;
    let kubectl = go_tool("kubectl", KUBE_VERSION)?;
    if !args.no_operator {
        ferry_harness::chart::helm()?;
    }
    eprintln!("starting MariaDB, TiDB and the control plane...");
    let (source, target, plane) =
        tokio::try_join!(start_source(), start_target(), ControlPlane::start())?;
    let agent = NodeAgent::start_with(&plane, options).await?;
    let client = plane.client().await?;
    create_secrets(&client).await?;
    if args.no_operator {
        plane.install_crds().await?;
    } else {
        eprintln!("installing Ferry with helm (charts/ferry)...");
        let kubeconfig = plane.kubeconfig().to_path_buf();
        // The chart's defaults, but for what the node agent needs (see helm_install).
        tokio::task::spawn_blocking(move || install::helm_install(&kubeconfig, &[]))
            .await
            .context("helm install")??;
        let holder = install::wait_for_operator(&client, OPERATOR_START_TIMEOUT).await?;
        tracing::info!(pod = %holder, "the operator is the leader");
    }
    write_files(lab, &plane, &kubectl, source.port(), target.port())?;
    Ok(Running { agent, plane, target, source })
}

async fn start_source() -> ferry_harness::Result<MariaDb> {
    let source = MariaDb::source().await?;
    source.exec(SAMPLE).await?;
    let privileges =
        "SELECT, RELOAD, LOCK TABLES, SHOW VIEW, REPLICATION SLAVE, REPLICATION CLIENT";
    source.create_user(SOURCE_USER, SOURCE_PASSWORD, privileges).await?;
    Ok(source)
}

async fn start_target() -> ferry_harness::Result<TiDb> {
    let target = TiDb::start().await?;
    target.create_user(TARGET_USER, TARGET_PASSWORD, "ALL PRIVILEGES").await?;
    Ok(target)
}

/// The Secrets the example refers to.
async fn create_secrets(client: &kube::Client) -> anyhow::Result<()> {
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
    Ok(())
}

/// The kubeconfig, the example, `lab.env` and `bin/kubectl`.
fn write_files(
    lab: &Lab,
    plane: &ControlPlane,
    kubectl: &Path,
    source_port: u16,
    target_port: u16,
) -> anyhow::Result<()> {
    std::fs::copy(plane.kubeconfig(), lab.path("kubeconfig")).context("copy the kubeconfig")?;
    std::fs::write(lab.path("example.yaml"), example_manifest(source_port, target_port))
        .context("write the example manifest")?;
    std::fs::create_dir_all(lab.path("bin")).context("create the lab's bin directory")?;
    std::os::unix::fs::symlink(kubectl, lab.path("bin").join("kubectl"))
        .context("link the lab's kubectl")?;
    let env = lab.env_lines(source_port, target_port, &plane.server_url());
    std::fs::write(lab.path("lab.env"), env).context("write lab.env")
}

fn print_summary(
    lab: &Lab,
    args: &UpArgs,
    running: &Running,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let Running { agent, plane, target, source } = running;
    let exe = std::env::current_exe().context("find this binary")?;
    let bin = exe.parent().context("the directory of this binary")?.display().to_string();
    let times = plane.start_times();
    let operator = if args.no_operator {
        format!(
            "not installed (--no-operator); run it against the lab with\n                \
             KUBECONFIG={kubeconfig} {bin}/ferry-operator --leader-elect=false \
             --metrics-addr=127.0.0.1:0",
            kubeconfig = shell_quote(&lab.path("kubeconfig")),
        )
    } else {
        format!(
            "installed with `helm install {release} charts/ferry` in namespace \
             {OPERATOR_NAMESPACE}; it runs {bin}/ferry-operator",
            release = install::RELEASE,
        )
    };
    println!(
        "ferry-lab is up after {elapsed:.1?} (etcd {:.1?}, kube-apiserver {:.1?}, \
         kube-controller-manager {:.1?})\n\
         \n\
         MariaDB source  127.0.0.1:{sp}  user {SOURCE_USER} / {SOURCE_PASSWORD} (root: no \
         password)  databases shop, billing; binlog ROW\n\
         TiDB target     127.0.0.1:{tp}  user {TARGET_USER} / {TARGET_PASSWORD} (root: no \
         password)  status http://127.0.0.1:{tsp}/status\n\
         kube-apiserver  {api}  (etcd {etcd})\n\
         kubeconfig      {kc}  (admin, system:masters)\n\
         node            {node}  (pods run as local processes; their files and logs: {pods})\n\
         operator        {operator}\n\
         workers         their {WORKER_BINARY} runs {bin}/ferry (nothing is installed there)\n\
         Secrets         default/lab-source, default/lab-target (key: password)\n\
         example         {example}\n\
         lab directory   {dir}  (removed when the lab stops)\n\
         \n\
         Next, in another terminal (README.md, \"Try it on Kubernetes without a cluster\"):\n\
         \n{steps}\n\
         Stop with Ctrl-C or `ferry-lab down`.",
        times.etcd,
        times.apiserver,
        times.controller_manager.unwrap_or_default(),
        sp = source.port(),
        tp = target.port(),
        tsp = target.status_port(),
        api = plane.server_url(),
        etcd = plane.etcd_url(),
        kc = lab.path("kubeconfig").display(),
        node = agent.node_name(),
        pods = agent.pods_dir().display(),
        example = lab.path("example.yaml").display(),
        dir = lab.dir.display(),
        steps = next_steps(&bin),
    );
    Ok(())
}

/// [`NEXT_STEPS`] for the binaries in `bin`, the comments of short commands aligned.
fn next_steps(bin: &str) -> String {
    const COLUMN: usize = 46;
    let mut out = String::new();
    for (command, comment) in NEXT_STEPS {
        let command = command.replace("{bin}", bin);
        out.push_str(&format!("  {command:<COLUMN$}  # {comment}\n"));
    }
    out
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

fn down(lab: &Lab) -> anyhow::Result<()> {
    let Some(pid) = lab.running_pid() else {
        println!("no lab is running in {}", lab.dir.display());
        return lab.remove();
    };
    // SAFETY: sends SIGTERM to the pid the running lab wrote; no memory is involved.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!("could not signal pid {pid}: {}", std::io::Error::last_os_error());
    }
    // The lab removes its directory, the pid file last, then exits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.running_pid() == Some(pid) {
        if Instant::now() > deadline {
            bail!("the lab (pid {pid}) did not stop within 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("lab (pid {pid}) stopped; {} removed", lab.dir.display());
    Ok(())
}

fn status(lab: &Lab) -> anyhow::Result<()> {
    match lab.running_pid() {
        Some(pid) => {
            let env = std::fs::read_to_string(lab.path("lab.env")).unwrap_or_default();
            println!("lab running (pid {pid}) in {}\n{env}", lab.dir.display());
        }
        None => println!("no lab is running in {}", lab.dir.display()),
    }
    Ok(())
}

fn env(lab: &Lab) -> anyhow::Result<()> {
    let env = match lab.running_pid() {
        Some(_) => std::fs::read_to_string(lab.path("lab.env")).ok(),
        None => None,
    };
    match env {
        Some(env) => {
            print!("{env}");
            Ok(())
        }
        None => bail!(
            "no lab is up in {}: start one with `ferry-lab up` (FERRY_LAB_DIR names another \
             directory)",
            lab.dir.display()
        ),
    }
}
