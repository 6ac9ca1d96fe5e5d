//! A `redis-server` of the test's own: a free loopback port, no persistence,
//! killed on drop. No test touches a Redis it did not start.
//!
//! A missing `redis-server` fails the test with a message saying how to get
//! one (`scripts/test` installs it): tests never skip silently.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The argument that stands for the server's port in `args`.
const PORT: &str = "{port}";

/// Ports tried before giving up, when other tests keep taking them.
const PORT_ATTEMPTS: usize = 5;

/// How a start ended, when it did not panic.
enum Started {
    Ready,
    PortTaken,
}

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// A config file passed first (`redis-server FILE ...`), in `dir`.
    conf: Option<PathBuf>,
    /// The log line that says the server listens.
    ready: &'static str,
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments, such as
    /// `["--requirepass", "secret"]` or `["--maxmemory", "2mb"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(extra.iter().map(|s| s.to_string()).collect())
    }

    /// A server speaking TLS only, on its port, with PEM files: its
    /// certificate and key, and the CA that signed them. Use [`tls_url`](Self::tls_url).
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path, extra: &[&str]) -> Self {
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let mut args: Vec<String> = ["--port", "0", "--tls-port", PORT]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (flag, file) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", ca),
        ] {
            args.extend([flag.to_string(), path(file)]);
        }
        args.extend(["--tls-auth-clients".into(), "no".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(args)
    }

    /// Starts a server on a free port. The port is free when the OS hands it
    /// out, but another test may bind it before this server does: then the
    /// server exits with "Address already in use", and a new port is tried.
    fn launch(args: Vec<String>) -> Self {
        Self::launch_with(args, None, "Server initialized")
    }

    /// A Sentinel (`redis-server sentinel.conf --sentinel`) whose config
    /// file holds `conf` (`sentinel monitor ..` lines): Sentinel rewrites
    /// that file as it learns the topology, so it lives in the server's dir.
    pub fn start_sentinel(conf: &str) -> Self {
        let args = vec!["--sentinel".to_string()];
        Self::launch_with(args, Some(conf), "Sentinel ID is")
    }

    fn launch_with(args: Vec<String>, conf: Option<&str>, ready: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let conf = conf.map(|text| {
            let path = dir.path().join("sentinel.conf");
            std::fs::write(&path, text).expect("write the config file");
            path
        });
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            args,
            conf,
            ready,
        };
        for _ in 0..PORT_ATTEMPTS {
            match server.try_spawn() {
                Started::Ready => return server,
                Started::PortTaken => server.port = free_port(),
            }
        }
        panic!(
            "no free port after {PORT_ATTEMPTS} attempts\n{}",
            server.log()
        );
    }

    /// The directory the server runs in (its log is there).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the server on its port; panics unless it comes up, or its port
    /// was taken.
    fn try_spawn(&mut self) -> Started {
        let port = self.port.to_string();
        let args = self.args.iter().map(|a| if a == PORT { &port } else { a });
        let mut cmd = Command::new("redis-server");
        cmd.args(self.conf.iter())
            .args([
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
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Counted before the server starts: it logs within a millisecond.
        let readied_before = self.times_ready();
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: run scripts/test (it installs it on Debian/Ubuntu) \
                 or install Redis 7+ yourself. Tests that need Redis never skip."
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_until_ready(readied_before)
    }

    /// How often this server's own log says it has bound its port (Redis
    /// logs "Server initialized" once it listens, before loading any data;
    /// a Sentinel its ID).
    /// A connection alone could reach another test's server that holds the
    /// port this one failed to bind.
    fn times_ready(&self) -> usize {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.matches(self.ready).count()
    }

    fn wait_until_ready(&mut self, readied_before: usize) -> Started {
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
                self.child = None;
                if self.log().contains("Address already in use") {
                    return Started::PortTaken;
                }
                panic!("redis-server exited with {status}: {err}\n{}", self.log());
            }
            let listening = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if listening && self.times_ready() > readied_before {
                return Started::Ready;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not accept connections within 10 s\n{}",
            self.log()
        );
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis://USERINFO@127.0.0.1:PORT/0`, such as `:password` or `user:password`.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("redis://{userinfo}@127.0.0.1:{}/0", self.port)
    }

    /// `rediss://127.0.0.1:PORT/0`, for a server from [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        format!("--- redis-server log (port {}) ---\n{log}", self.port)
    }

    /// A synchronous redis-rs connection, for inspecting what the cache wrote.
    pub fn raw(&self) -> redis::Connection {
        self.raw_at(&self.url())
    }

    /// As [`raw`](Self::raw), at a URL of [`url_with`](Self::url_with).
    pub fn raw_at(&self, url: &str) -> redis::Connection {
        let client = redis::Client::open(url).expect("client");
        client
            .get_connection()
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    /// `SET key value`, as another program would write it.
    pub fn raw_set(&self, key: &str, value: &[u8]) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .exec(&mut self.raw())
            .unwrap_or_else(|e| panic!("SET {key}: {e}\n{}", self.log()));
    }

    /// `GET key`, as bytes.
    pub fn raw_get(&self, key: &str) -> Vec<u8> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.raw())
            .unwrap_or_else(|e| panic!("GET {key}: {e}\n{}", self.log()))
    }

    /// `PTTL key`: milliseconds left, -1 for no expiry, -2 for no key.
    pub fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.raw())
            .unwrap_or_else(|e| panic!("PTTL {key}: {e}\n{}", self.log()))
    }

    /// Waits until the server has loaded its data set (after a restart with
    /// persistence it answers `LOADING` until then).
    pub fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut raw = self.raw();
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut raw)
                .unwrap_or_else(|e| panic!("INFO: {e}\n{}", self.log()));
            if info.lines().any(|l| l.trim() == "loading:0") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still loading after 10 s\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Zeroes the server's command counters (`CONFIG RESETSTAT`).
    pub fn reset_command_counts(&self) {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec(&mut self.raw())
            .unwrap();
    }

    /// Calls per command since the last reset, as the server counted them
    /// (`INFO commandstats`), leaving out our own probes and the connection
    /// handshake (subcommands show as `config|resetstat`).
    pub fn command_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.raw())
            .unwrap();
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let calls = rest.strip_prefix("calls=")?.split(',').next()?;
                Some((name.to_string(), calls.parse().ok()?))
            })
            .filter(|(name, _)| {
                let family = name.split('|').next().unwrap_or(name);
                !matches!(family, "info" | "config" | "client" | "hello")
            })
            .collect()
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
        if let Started::PortTaken = self.try_spawn() {
            panic!(
                "port {} was taken while the server was down\n{}",
                self.port,
                self.log()
            );
        }
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

/// Polls `done` every 10 ms until it holds; past `limit`, panics saying
/// `what` did not happen, with the `logs` of the processes involved.
pub fn wait_until(
    what: &str,
    limit: Duration,
    logs: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port that was free a moment ago, from the OS.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
