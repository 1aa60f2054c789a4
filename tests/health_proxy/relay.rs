//! A real TCP relay on a random port that forwards every connection, byte for byte, to an address set after
//! it starts: how a test points a target at hale's own port when that port is only known once hale runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

pub struct Relay {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound address");
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let connections = Arc::new(AtomicUsize::new(0));
        let (to, count) = (upstream.clone(), connections.clone());
        // Runs until the test's runtime ends.
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let Some(target) = *to.lock().unwrap() else {
                    continue; // not forwarding yet: the connection is closed
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            addr,
            upstream,
            connections,
        }
    }

    /// Forwards every later connection to `upstream`.
    pub fn forward_to(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(upstream);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
