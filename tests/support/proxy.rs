//! A TCP proxy between a cache and the `redis-server` of its test, that
//! breaks the wire on demand: a delay, dropped connections, a reply cut by a
//! reset, a black hole. `RedisServer` fails the process (killed, frozen);
//! these are the faults of the network between, which Redis never sees.
//!
//! The proxy runs on a thread of its own, with a current-thread runtime made
//! there: it works the same under any test runtime, keeps forwarding while
//! the test's workers are busy or blocked, and stops when dropped (its
//! runtime, and every connection with it, goes with the thread). An I/O
//! error closes the connection it happened on, and nothing else.

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Bytes read from a socket at once.
const CHUNK: usize = 64 << 10;

/// How long the first half of a cut reply stands before the reset: the
/// client reads it as a reply in progress, then loses the connection.
const CUT_PAUSE: Duration = Duration::from_millis(5);

/// What the proxy does to the bytes between the cache and Redis. A new fault
/// applies at once to every connection, open or new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    None,
    /// Forward each chunk, both ways, this long after it arrived, in order.
    Delay(Duration),
    /// Close every connection, both sides, with a plain FIN; close new ones
    /// as soon as they are accepted.
    Drop,
    /// Cut the next reply of each connection, old or new: forward its first
    /// half, then reset the client's socket (ECONNRESET) and close Redis'.
    ResetMidReply,
    /// A black hole: forward nothing, either way, and close nothing; new
    /// connections are accepted and hear nothing. Cleared, the black-holed
    /// connections are closed (a real black hole never gives them back).
    HalfOpen,
}

/// A fault-injecting proxy to a Redis on a loopback port, until dropped.
pub struct FaultProxy {
    port: u16,
    fault: watch::Sender<Fault>,
    open: Arc<AtomicUsize>,
    /// Dropped to stop the proxy.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream_port`, forwarding (`Fault::None`).
    pub fn new(upstream_port: u16) -> Self {
        let listener = StdListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (fault, faults) = watch::channel(Fault::None);
        let open = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel();
        let shared = Shared {
            upstream_port,
            faults,
            open: Arc::clone(&open),
        };
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || run(listener, shared, stopped))
            .expect("a thread for the proxy");
        Self {
            port,
            fault,
            open,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `redis://127.0.0.1:PORT`, the proxy's own port.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switches to `fault`, for every connection at once. A connection
    /// handles the switch before any byte it reads after this returns.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every connection of one proxy shares.
#[derive(Clone)]
struct Shared {
    upstream_port: u16,
    faults: watch::Receiver<Fault>,
    open: Arc<AtomicUsize>,
}

/// One open client connection, counted while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(open))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The proxy thread: accepts until `stopped`, then drops the runtime and
/// with it every connection.
fn run(listener: StdListener, shared: Shared, stopped: oneshot::Receiver<()>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async move {
        let Ok(listener) = TcpListener::from_std(listener) else {
            return;
        };
        tokio::select! {
            _ = stopped => {}
            () = accept(listener, shared) => {}
        }
    });
}

async fn accept(listener: TcpListener, shared: Shared) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let counted = Counted::new(&shared.open);
                tokio::spawn(serve(client, shared.clone(), counted));
            }
            // Out of descriptors, say: try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One client connection, under the fault of the moment it was accepted,
/// then of every switch.
async fn serve(client: TcpStream, shared: Shared, _counted: Counted) {
    let mut faults = shared.faults;
    let _ = client.set_nodelay(true);
    let fault = *faults.borrow_and_update();
    match fault {
        Fault::Drop => return,
        Fault::HalfOpen => return black_hole(&client, None, &mut faults).await,
        Fault::None | Fault::Delay(_) | Fault::ResetMidReply => {}
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream_port)).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    relay(&client, &server, fault, &mut faults).await;
}

/// Forwards both ways under `fault` and each switch, until a side closes,
/// an error, or a fault that ends the connection. Returning closes both
/// sockets (a FIN, unless [`cut`] set the client's to reset).
async fn relay(
    client: &TcpStream,
    server: &TcpStream,
    mut fault: Fault,
    faults: &mut watch::Receiver<Fault>,
) {
    let (mut up, mut down) = (Line::default(), Line::default());
    let (mut from_client, mut from_server) = (vec![0; CHUNK], vec![0; CHUNK]);
    loop {
        // Biased: a switch is seen before any byte read after it.
        tokio::select! {
            biased;
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                fault = *faults.borrow_and_update();
                match fault {
                    Fault::Drop => return,
                    Fault::HalfOpen => return black_hole(client, Some(server), faults).await,
                    Fault::None | Fault::Delay(_) | Fault::ResetMidReply => {}
                }
            }
            () = up.due() => {
                if up.send_next(server).await.is_err() {
                    return;
                }
            }
            () = down.due() => {
                if down.send_next(client).await.is_err() {
                    return;
                }
            }
            read = read_chunk(client, &mut from_client) => match read {
                Ok(n) if n > 0 => up.push(due(fault), &from_client[..n]),
                _ => return,
            },
            read = read_chunk(server, &mut from_server) => match read {
                Ok(n) if n > 0 && fault == Fault::ResetMidReply => {
                    return cut(client, &mut down, &from_server[..n]).await;
                }
                Ok(n) if n > 0 => down.push(due(fault), &from_server[..n]),
                _ => return,
            },
        }
    }
}

/// When a chunk read now may be forwarded under `fault`.
fn due(fault: Fault) -> Instant {
    match fault {
        Fault::Delay(delay) => Instant::now() + delay,
        _ => Instant::now(),
    }
}

/// Forwards what was due to the client before, then the first half of
/// `reply` (at least a byte, never all of it when it has two), then sets the
/// client's socket to reset when the caller drops it.
async fn cut(client: &TcpStream, down: &mut Line, reply: &[u8]) {
    let keep = (reply.len() / 2).max(1);
    if down.send_all(client).await.is_err() || write_all(client, &reply[..keep]).await.is_err() {
        return;
    }
    tokio::time::sleep(CUT_PAUSE).await;
    let _ = client.set_zero_linger();
}

/// Reads and discards what either side sends, closing nothing, until the
/// fault switches or the client leaves; then the caller closes both.
async fn black_hole(
    client: &TcpStream,
    mut server: Option<&TcpStream>,
    faults: &mut watch::Receiver<Fault>,
) {
    let (mut from_client, mut from_server) = (vec![0; CHUNK], vec![0; CHUNK]);
    loop {
        tokio::select! {
            biased;
            _ = faults.changed() => return,
            read = read_chunk(client, &mut from_client) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
            }
            read = read_maybe(server, &mut from_server) => {
                if !matches!(read, Ok(n) if n > 0) {
                    // Redis left: the client still hears nothing.
                    server = None;
                }
            }
        }
    }
}

/// Bytes read from one side, waiting for their time to be written to the
/// other, in the order they came.
#[derive(Default)]
struct Line(VecDeque<(Instant, Vec<u8>)>);

impl Line {
    fn push(&mut self, due: Instant, bytes: &[u8]) {
        self.0.push_back((due, bytes.to_vec()));
    }

    /// Ready when the oldest chunk is due; never, when there is none.
    async fn due(&self) {
        match self.0.front() {
            Some((due, _)) => tokio::time::sleep_until(*due).await,
            None => std::future::pending().await,
        }
    }

    async fn send_next(&mut self, to: &TcpStream) -> io::Result<()> {
        match self.0.pop_front() {
            Some((_, bytes)) => write_all(to, &bytes).await,
            None => Ok(()),
        }
    }

    /// Every waiting chunk, now.
    async fn send_all(&mut self, to: &TcpStream) -> io::Result<()> {
        while !self.0.is_empty() {
            self.send_next(to).await?;
        }
        Ok(())
    }
}

/// One read; 0 at the end of the stream. Cancel-safe: nothing is read
/// until the socket is readable, and then at once.
async fn read_chunk(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return done,
        }
    }
}

/// As [`read_chunk`], on a socket that may be gone: then never ready.
async fn read_maybe(stream: Option<&TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match stream {
        Some(stream) => read_chunk(stream, buf).await,
        None => std::future::pending().await,
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
