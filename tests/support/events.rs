//! Capture of the `tracing` events a test's own thread emits.

/// Every `tracing` event emitted on this thread while it lives, as text, at
/// every level: for tests that check what was (or was not) reported. Use a
/// current-thread runtime, so that the cache's tasks run on this thread.
///
/// One global subscriber writes each event to the buffer of the thread that
/// emitted it: a thread-local subscriber would miss events whose callsites
/// other tests' threads had already registered as uninteresting.
pub struct Events {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

thread_local! {
    static SINK: std::cell::RefCell<Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Starts capturing the events of this thread.
pub fn capture_events() -> Events {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadSink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    SINK.with(|s| *s.borrow_mut() = Some(buf.clone()));
    Events { buf }
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

impl Drop for Events {
    fn drop(&mut self) {
        SINK.with(|s| *s.borrow_mut() = None);
    }
}

/// Writes to the capturing buffer of the current thread, if any.
struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        SINK.with(|s| {
            if let Some(buf) = &*s.borrow() {
                buf.lock().unwrap().extend_from_slice(data);
            }
        });
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
