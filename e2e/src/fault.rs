//! A TCP proxy between Ferry and a server that injects network faults while a job runs: added
//! latency, every open connection cut at once (reset, as a failed middlebox or a restarted load
//! balancer does), and a blackhole that holds all traffic without closing anything (a partition).
//! Tests change the faults at any instant; new connections see the faults in force.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Result, io_err};

/// Faults applied to every byte that passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay added to each chunk of data, both ways.
    pub latency: Duration,
    /// Hold all traffic (connections stay open) until cleared.
    pub blackhole: bool,
}

/// A running proxy; it stops and drops its connections when dropped.
pub struct FaultProxy {
    port: u16,
    faults: Arc<Mutex<Faults>>,
    /// Bumped to cut every open connection.
    cuts: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> Result<FaultProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.map_err(io_err("bind the fault proxy"))?;
        let port = listener.local_addr().map_err(io_err("the fault proxy's port"))?.port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (cuts, _) = watch::channel(0);
        let accept =
            tokio::spawn(accept_loop(listener, upstream_port, faults.clone(), cuts.clone()));
        Ok(FaultProxy { port, faults, cuts, accept })
    }

    /// The port clients connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Puts `faults` in force for all connections, open and new.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Resets every open connection now (new ones are accepted as before).
    pub fn cut_all(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream_port: u16,
    faults: Arc<Mutex<Faults>>,
    cuts: watch::Sender<u64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let faults = faults.clone();
        let cut = cuts.subscribe();
        tokio::spawn(async move {
            if let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                relay(client, upstream, faults, cut).await;
            }
        });
    }
}

/// Relays both ways until either side closes or the connection is cut; a cut resets both
/// sockets (zero linger), so each peer sees a reset rather than an orderly close.
async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    faults: Arc<Mutex<Faults>>,
    mut cut: watch::Receiver<u64>,
) {
    for stream in [&client, &upstream] {
        let _ = stream.set_nodelay(true);
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let cut_now = async {
        let _ = cut.changed().await;
    };
    tokio::select! {
        _ = pump(&mut client_read, &mut upstream_write, &faults) => {}
        _ = pump(&mut upstream_read, &mut client_write, &faults) => {}
        _ = cut_now => {
            for half in [&client_write, &upstream_write] {
                let _ = half.as_ref().set_zero_linger();
            }
        }
    }
}

async fn pump(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf, faults: &Mutex<Faults>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let now = *faults.lock().unwrap_or_else(|e| e.into_inner());
            if !now.blackhole {
                tokio::time::sleep(now.latency).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
