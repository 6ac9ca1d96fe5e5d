//! A `redis-server` of the test's own: a free loopback port, no persistence,
//! killed on drop. No test touches a Redis it did not start.
//!
//! A missing `redis-server` fails the test with a message saying how to get
//! one (`scripts/test` installs it): tests never skip silently.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments, such as
    /// `["--requirepass", "secret"]` or `["--maxmemory", "2mb"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// The directory the server runs in (its log is there).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--logfile",
            self.log_path().to_str().expect("utf-8 temp path"),
        ])
        .args(["--dir", self.dir.path().to_str().expect("utf-8 temp path")])
        .args(&self.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: run scripts/test (it installs it on Debian/Ubuntu) \
                 or install Redis 7+ yourself. Tests that need Redis never skip."
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut err = String::new();
                if let Some(mut e) = self.child.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("redis-server exited with {status}: {err}\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not accept connections within 10 s\n{}",
            self.log()
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        format!("--- redis-server log (port {}) ---\n{log}", self.port)
    }

    /// A synchronous redis-rs connection, for inspecting what the cache wrote.
    pub fn raw(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client");
        client
            .get_connection()
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the server stays connected but answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill {sig} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// A port that was free a moment ago, from the OS.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A cache under test, with the server it runs on when that is Redis.
pub struct TestCache {
    pub cache: iftb_cache::CacheManager,
    pub server: Option<RedisServer>,
}

/// A cache on the embedded backend.
pub async fn embedded() -> TestCache {
    let config = iftb_cache::CacheConfig::embedded();
    let cache = iftb_cache::CacheManager::connect(config)
        .await
        .expect("embedded");
    TestCache {
        cache,
        server: None,
    }
}

/// A cache on a fresh redis-server of its own.
pub async fn with_redis() -> TestCache {
    let server = RedisServer::start();
    let config = iftb_cache::CacheConfig::builder()
        .redis_url(&server.url())
        .build()
        .expect("config");
    let cache = iftb_cache::CacheManager::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log()));
    TestCache {
        cache,
        server: Some(server),
    }
}

/// Runs each listed `async fn(&TestCache)` as a test on both backends:
/// `on_embedded::name` and `on_redis::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::support::embedded().await;
                    super::$name(&t).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::support::with_redis().await;
                    super::$name(&t).await;
                }
            )*
        }
    };
}

/// Every `tracing` event emitted on this thread while the guard lives, as
/// text, at every level: for tests that check what was (or was not) reported.
pub struct Events {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Starts capturing events on this thread (use a current-thread runtime).
pub fn capture_events() -> Events {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || SharedBuf(sink.clone()))
        .finish();
    Events {
        buf,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Events {
    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Captured lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
