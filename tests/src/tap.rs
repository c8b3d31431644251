//! A TCP forwarder that records every byte crossing it, both ways: put
//! between two daemons, it shows what an eavesdropper on the network sees.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running forwarder to one target; stops (with its connections) on drop.
pub struct Tap {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Tap {
    /// Listens on `127.0.0.1:0` and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let addr = listener.local_addr().expect("tap address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, target, seen.clone()));
        Tap { addr, seen, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte forwarded so far, in either direction.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().expect("tap record").clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // Dropping the accept task drops its `JoinSet`: the connections end too.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, seen: Arc<Mutex<Vec<u8>>>) {
    let mut conns = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = TcpStream::connect(target).await else {
            continue;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        conns.spawn(copy(cr, sw, seen.clone()));
        conns.spawn(copy(sr, cw, seen.clone()));
    }
}

/// Copies `from` to `to`, recording every chunk, until either side ends.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.lock()
            .expect("tap record")
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
