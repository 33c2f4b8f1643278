//! A TCP proxy between Ferry and a server that injects network faults while a job runs: added
//! latency, a bandwidth limit, every open connection cut at once (reset, as a failed middlebox or
//! a restarted load balancer does), a connection reset after a number of bytes in one direction
//! (in the middle of a statement or of a result), half-open connections (one direction stops
//! delivering while the other works and the socket stays up) and a blackhole that holds all
//! traffic without closing anything (a partition). Tests change the faults at any instant; new
//! connections see the faults in force.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Result, io_err};

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From Ferry to the server: statements.
    ToServer,
    /// From the server to Ferry: results, the binlog stream.
    ToClient,
}

/// Faults applied to every byte that passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay added to each chunk of data, both ways.
    pub latency: Duration,
    /// Hold all traffic (connections stay open) until cleared.
    pub blackhole: bool,
    /// At most this many bytes a second per connection and direction.
    pub bandwidth: Option<u64>,
    /// Reset a connection once this many bytes went its way since the faults were set: the
    /// bytes before pass, the rest of the statement or result never arrives.
    pub reset_after: Option<(Direction, u64)>,
    /// Connections that carry bytes this way while set stop delivering them for good (the
    /// bytes are swallowed; the socket and the other direction stay up).
    pub half_open: Option<Direction>,
}

/// The faults in force and how many times they were set (byte counts restart at each set).
#[derive(Debug, Default)]
struct Current {
    faults: Faults,
    generation: u64,
}

/// A running proxy; it stops and drops its connections when dropped.
pub struct FaultProxy {
    port: u16,
    current: Arc<Mutex<Current>>,
    /// Connections reset by [`Faults::reset_after`] so far.
    byte_resets: Arc<AtomicU64>,
    /// Connections made half-open by [`Faults::half_open`] so far.
    half_opened: Arc<AtomicU64>,
    /// Bumped to cut every open connection.
    cuts: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

/// What every relayed connection shares with the proxy.
#[derive(Clone)]
struct Shared {
    current: Arc<Mutex<Current>>,
    byte_resets: Arc<AtomicU64>,
    half_opened: Arc<AtomicU64>,
}

impl Shared {
    fn now(&self) -> (Faults, u64) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.faults, current.generation)
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> Result<FaultProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.map_err(io_err("bind the fault proxy"))?;
        let port = listener.local_addr().map_err(io_err("the fault proxy's port"))?.port();
        let shared = Shared {
            current: Arc::default(),
            byte_resets: Arc::default(),
            half_opened: Arc::default(),
        };
        let (cuts, _) = watch::channel(0);
        let accept =
            tokio::spawn(accept_loop(listener, upstream_port, shared.clone(), cuts.clone()));
        Ok(FaultProxy {
            port,
            current: shared.current,
            byte_resets: shared.byte_resets,
            half_opened: shared.half_opened,
            cuts,
            accept,
        })
    }

    /// The port clients connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Puts `faults` in force for all connections, open and new.
    pub fn set(&self, faults: Faults) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.faults = faults;
        current.generation += 1;
    }

    /// Resets every open connection now (new ones are accepted as before).
    pub fn cut_all(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Connections reset after a number of bytes so far.
    pub fn byte_resets(&self) -> u64 {
        self.byte_resets.load(Ordering::SeqCst)
    }

    /// Connections made half-open so far.
    pub fn half_opened(&self) -> u64 {
        self.half_opened.load(Ordering::SeqCst)
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
    shared: Shared,
    cuts: watch::Sender<u64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let shared = shared.clone();
        let cut = cuts.subscribe();
        tokio::spawn(async move {
            if let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                relay(client, upstream, shared, cut).await;
            }
        });
    }
}

/// How one direction of a connection ended.
enum End {
    /// A peer closed its side, or a write failed.
    Closed,
    /// A fault resets the connection.
    Reset,
}

/// Relays both ways until either side closes or the connection is cut; a cut resets both
/// sockets (zero linger), so each peer sees a reset rather than an orderly close.
async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    shared: Shared,
    mut cut: watch::Receiver<u64>,
) {
    for stream in [&client, &upstream] {
        let _ = stream.set_nodelay(true);
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let cut_now = async {
        let _ = cut.changed().await;
        End::Reset
    };
    let end = tokio::select! {
        end = pump(&mut client_read, &mut upstream_write, &shared, Direction::ToServer) => end,
        end = pump(&mut upstream_read, &mut client_write, &shared, Direction::ToClient) => end,
        end = cut_now => end,
    };
    if let End::Reset = end {
        for half in [&client_write, &upstream_write] {
            let _ = half.as_ref().set_zero_linger();
        }
    }
}

/// One direction of a connection, with the faults in force.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    shared: &Shared,
    direction: Direction,
) -> End {
    let mut buffer = vec![0u8; 64 * 1024];
    // Bytes passed since the faults were last set, and which setting that was.
    let (mut passed, mut counted_in) = (0u64, 0u64);
    let mut half_open = false;
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (faults, generation) = wait_out_blackhole(shared).await;
        if generation != counted_in {
            (passed, counted_in) = (0, generation);
        }
        if !half_open && faults.half_open == Some(direction) {
            half_open = true;
            shared.half_opened.fetch_add(1, Ordering::SeqCst);
        }
        if half_open {
            continue;
        }
        let mut end = n;
        let reset = match faults.reset_after {
            Some((way, limit)) if way == direction && passed + n as u64 >= limit => {
                end = limit.saturating_sub(passed) as usize;
                true
            }
            _ => false,
        };
        tokio::time::sleep(faults.latency + transfer_time(end, faults.bandwidth)).await;
        if to.write_all(&buffer[..end]).await.is_err() {
            break;
        }
        passed += end as u64;
        if reset {
            let _ = to.flush().await;
            shared.byte_resets.fetch_add(1, Ordering::SeqCst);
            return End::Reset;
        }
    }
    let _ = to.shutdown().await;
    End::Closed
}

/// Waits while the blackhole is set; returns the faults in force then.
async fn wait_out_blackhole(shared: &Shared) -> (Faults, u64) {
    loop {
        let (faults, generation) = shared.now();
        if !faults.blackhole {
            return (faults, generation);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long `bytes` take at `bandwidth` bytes a second.
fn transfer_time(bytes: usize, bandwidth: Option<u64>) -> Duration {
    match bandwidth {
        Some(rate) if rate > 0 => Duration::from_secs_f64(bytes as f64 / rate as f64),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_megabyte_at_a_megabyte_a_second_takes_a_second() {
        assert_eq!(transfer_time(1 << 20, Some(1 << 20)), Duration::from_secs(1));
        assert_eq!(transfer_time(1 << 20, None), Duration::ZERO);
    }
}
