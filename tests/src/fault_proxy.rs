//! A loopback TCP proxy in front of the emulator that can make storage
//! unreachable, flaky or slow for the clients pointed at it, and only for them:
//! other tests keep talking to the emulator directly, so pausing "storage" here
//! never freezes anybody else (SIGSTOP on the shared emulator would).
//!
//! Modes (switch at any time with [`FaultProxy::set`]):
//! - [`Mode::Healthy`]: bytes are forwarded as they come;
//! - [`Mode::Refuse`]: new connections are accepted and closed at once, and every
//!   open connection is cut (a request in flight may or may not have reached the
//!   emulator: the caller cannot tell, as with a network partition);
//! - [`Mode::Delay`]: each chunk a client sends waits before it is forwarded;
//! - [`Mode::Flaky`]: each new connection is refused with the given probability
//!   (per mille), and each forwarded request chunk is cut with the same odds.
//!
//! Binds 127.0.0.1 only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    Refuse,
    Delay(Duration),
    Flaky { per_mille: u32 },
}

/// What the proxy did, for the report.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub cut: AtomicU64,
    pub delayed_chunks: AtomicU64,
}

impl FaultCounts {
    pub fn summary(&self) -> String {
        format!(
            "connections {}  refused {}  cut mid-stream {}  delayed request chunks {}",
            self.connections.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.cut.load(Ordering::Relaxed),
            self.delayed_chunks.load(Ordering::Relaxed)
        )
    }
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT` per upstream, in the order given to
    /// [`FaultProxy::start`], to give to the clients under test.
    pub endpoints: Vec<String>,
    mode: watch::Sender<Mode>,
    pub counts: Arc<FaultCounts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|task| task.abort());
    }
}

impl FaultProxy {
    /// Starts one listener on a free loopback port per upstream (an
    /// `http://127.0.0.1:PORT` URL each: the local stack's DynamoDB engine and
    /// moto are separate servers), all switched by the one [`FaultProxy::set`].
    pub async fn start(upstreams: &[&str]) -> FaultProxy {
        let (mode, watcher) = watch::channel(Mode::Healthy);
        let counts = Arc::new(FaultCounts::default());
        let (mut endpoints, mut tasks) = (Vec::new(), Vec::new());
        for upstream in upstreams {
            let target = upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            assert!(
                target.starts_with("127.0.0.1:") || target.starts_with("localhost:"),
                "the fault proxy only fronts a loopback emulator, not {upstream}"
            );
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            endpoints.push(format!("http://{}", listener.local_addr().unwrap()));
            let loop_ = accept_loop(listener, target, watcher.clone(), counts.clone());
            tasks.push(tokio::spawn(loop_));
        }
        FaultProxy {
            endpoints,
            mode,
            counts,
            tasks,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

/// A cheap deterministic coin (the proxy needs no crypto-grade randomness).
fn roll(seq: u64, per_mille: u32) -> bool {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 1000) < u64::from(per_mille)
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    mode: watch::Receiver<Mode>,
    counts: Arc<FaultCounts>,
) {
    let seq = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let n = seq.fetch_add(1, Ordering::Relaxed);
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let current = *mode.borrow();
        let refuse = match current {
            Mode::Refuse => true,
            Mode::Flaky { per_mille } => roll(n, per_mille),
            _ => false,
        };
        if refuse {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        tokio::spawn(connection(
            client,
            target.clone(),
            mode.clone(),
            counts.clone(),
            seq.clone(),
        ));
    }
}

async fn connection(
    client: TcpStream,
    target: String,
    mut mode: watch::Receiver<Mode>,
    counts: Arc<FaultCounts>,
    seq: Arc<AtomicU64>,
) {
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let to_upstream = {
        let mode = mode.clone();
        let counts = counts.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = client_read.read(&mut buf).await?;
                if n == 0 {
                    return up_write.shutdown().await;
                }
                let current = *mode.borrow();
                match current {
                    Mode::Delay(d) => {
                        counts.delayed_chunks.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                    }
                    Mode::Flaky { per_mille } => {
                        if roll(seq.fetch_add(1, Ordering::Relaxed), per_mille) {
                            counts.cut.fetch_add(1, Ordering::Relaxed);
                            // Half the cuts after the request went through: the
                            // emulator acts, the caller never hears back.
                            if roll(seq.fetch_add(1, Ordering::Relaxed), 500) {
                                up_write.write_all(&buf[..n]).await?;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            return Err(std::io::Error::other("cut"));
                        }
                    }
                    Mode::Refuse => return Err(std::io::Error::other("refused")),
                    Mode::Healthy => {}
                }
                up_write.write_all(&buf[..n]).await?;
            }
        }
    };
    let to_client = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = up_read.read(&mut buf).await?;
            if n == 0 {
                return client_write.shutdown().await;
            }
            client_write.write_all(&buf[..n]).await?;
        }
    };
    // Entering Refuse cuts every open connection (pooled ones included).
    let cut_on_refuse = async move {
        loop {
            if mode.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if *mode.borrow() == Mode::Refuse {
                return;
            }
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(to_upstream, to_client) } => {
            if r.is_err() {
                // Cut on purpose or the peer went away: both sockets drop here.
            }
        }
        _ = cut_on_refuse => {
            counts.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}
