//! A network link of fixed capacity in front of a server: a TCP relay on loopback whose
//! answers (server to client) share one pace of `bytes_per_second`, as the connections of a
//! machine share its uplink. Requests pass unpaced. For measuring what a design does over a
//! real network, where the upstream's link and not the machine's cores sets the speed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A relay running until dropped.
pub struct Link {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When the link is next free: each chunk sent reserves its transmission time after it.
type Pace = Arc<Mutex<Instant>>;

/// Starts a relay to `server` whose answers flow at `bytes_per_second` in all.
pub async fn start(server: SocketAddr, bytes_per_second: u64) -> anyhow::Result<Link> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind the link relay")?;
    let addr = listener.local_addr()?;
    let pace: Pace = Arc::new(Mutex::new(Instant::now()));
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let pace = pace.clone();
            tokio::spawn(async move {
                if let Ok(upstream) = TcpStream::connect(server).await {
                    let _ = relay(client, upstream, pace, bytes_per_second).await;
                }
            });
        }
    });
    Ok(Link { addr, task })
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    pace: Pace,
    bytes_per_second: u64,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let answers = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let sent = {
                let mut next = pace.lock().unwrap_or_else(|e| e.into_inner());
                let start = (*next).max(Instant::now());
                *next = start + Duration::from_secs_f64(n as f64 / bytes_per_second as f64);
                *next
            };
            tokio::time::sleep_until(sent).await;
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
    Ok(())
}
