//! A small QMP (QEMU Machine Protocol) client: JSON lines over a unix socket.
//!
//! ```text
//!   QEMU -> {"QMP": {"version": ..., "capabilities": [...]}}      greeting
//!   us   -> {"execute": "qmp_capabilities", "id": 1}               leave negotiation mode
//!   QEMU -> {"return": {}, "id": 1}
//!   us   -> {"execute": "query-status", "id": 2}
//!   QEMU -> {"event": "RESET", "data": {...}, "timestamp": {...}}  events, any time
//!   QEMU -> {"return": {"status": "running", ...}, "id": 2}
//! ```
//!
//! One reader task per connection routes replies to their callers by `id` and fans events out on
//! a broadcast channel; [`Qmp::execute`] can be called from several tasks at once. Subscribe to
//! events *before* sending the command whose event you wait for (`device_del` ->
//! `DEVICE_DELETED`), or the event may come first.
//!
//! QEMU serves one QMP client per socket at a time: a second connection is accepted by the
//! kernel but not greeted until the first closes, which [`Qmp::connect`] reports as a timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, trace};

use crate::error::{Error, Result};

/// An asynchronous event from QEMU (`SHUTDOWN`, `RESET`, `DEVICE_DELETED`, `STOP`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    /// The event's `data`, or `Null` when it has none.
    pub data: Value,
}

type Reply = std::result::Result<Value, (String, String)>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

struct Shared {
    pending: parking_lot::Mutex<Pending>,
    events: broadcast::Sender<QmpEvent>,
}

struct Inner {
    path: PathBuf,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
    command_timeout: Duration,
    greeting: Value,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One QMP connection, past capabilities negotiation. Cheap to clone (all clones share the
/// connection); the connection closes when the last clone is dropped.
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const EVENT_BACKLOG: usize = 256;

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities, all within `timeout`. Commands
    /// then time out after `command_timeout` each.
    pub async fn connect(path: &Path, timeout: Duration, command_timeout: Duration) -> Result<Qmp> {
        let protocol = |reason: String| Error::QmpProtocol {
            path: path.to_path_buf(),
            reason,
        };
        let handshake = async {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|e| protocol(format!("connect: {e}")))?;
            let (read, write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let greeting = lines
                .next_line()
                .await
                .map_err(|e| protocol(format!("reading the greeting: {e}")))?
                .ok_or_else(|| protocol("closed before the greeting".into()))?;
            let greeting: Value = serde_json::from_str(&greeting)
                .map_err(|e| protocol(format!("greeting is not JSON: {e}")))?;
            let Some(greeting) = greeting.get("QMP").cloned() else {
                return Err(protocol(format!("unexpected greeting {greeting}")));
            };
            let (events, _) = broadcast::channel(EVENT_BACKLOG);
            let shared = Arc::new(Shared {
                pending: parking_lot::Mutex::new(Pending::default()),
                events,
            });
            let reader = tokio::spawn(read_loop(lines, shared.clone(), path.to_path_buf()));
            let qmp = Qmp {
                inner: Arc::new(Inner {
                    path: path.to_path_buf(),
                    writer: tokio::sync::Mutex::new(write),
                    shared,
                    next_id: AtomicU64::new(1),
                    reader,
                    command_timeout,
                    greeting,
                }),
            };
            qmp.execute("qmp_capabilities", None).await?;
            Ok(qmp)
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: format!("the QMP greeting on {}", path.display()),
                after: timeout,
            }),
        }
    }

    /// The `QMP` object of QEMU's greeting (its version and capabilities).
    pub fn greeting(&self) -> &Value {
        &self.inner.greeting
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<QmpEvent> {
        self.inner.shared.events.subscribe()
    }

    /// True once QEMU has closed the connection (it exited, or someone closed the socket).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.pending.lock().closed.is_some()
    }

    /// Runs one command and returns its `return` value. A QMP error reply is [`Error::Qmp`].
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.execute_with_timeout(command, arguments, self.inner.command_timeout)
            .await
    }

    /// [`Qmp::execute`] with its own timeout.
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = inner.shared.pending.lock();
            if let Some(reason) = &pending.closed {
                return Err(self.protocol(format!("{command}: {reason}")));
            }
            pending.waiters.insert(id, tx);
        }
        let mut message = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        trace!(path = %inner.path.display(), %line, "qmp send");
        line.push('\n');
        let written = {
            let mut writer = inner.writer.lock().await;
            match writer.write_all(line.as_bytes()).await {
                Ok(()) => writer.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            inner.shared.pending.lock().waiters.remove(&id);
            return Err(self.protocol(format!("sending {command}: {e}")));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((class, desc)))) => Err(Error::Qmp {
                command: command.to_string(),
                class,
                desc,
            }),
            Ok(Err(_)) => {
                let reason = inner.shared.pending.lock().closed.clone();
                Err(self.protocol(format!(
                    "{command}: {}",
                    reason.unwrap_or_else(|| "connection closed".into())
                )))
            }
            Err(_) => {
                inner.shared.pending.lock().waiters.remove(&id);
                Err(Error::Timeout {
                    what: format!("QMP {command} to answer"),
                    after: timeout,
                })
            }
        }
    }

    fn protocol(&self, reason: String) -> Error {
        Error::QmpProtocol {
            path: self.inner.path.clone(),
            reason,
        }
    }
}

async fn read_loop(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    shared: Arc<Shared>,
    path: PathBuf,
) {
    let reason = loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break "closed by QEMU".to_string(),
            Err(e) => break format!("read error: {e}"),
        };
        trace!(path = %path.display(), %line, "qmp recv");
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(e) => {
                debug!(path = %path.display(), error = %e, %line, "ignoring non-JSON QMP line");
                continue;
            }
        };
        if let Some(name) = message.get("event").and_then(Value::as_str) {
            let event = QmpEvent {
                name: name.to_string(),
                data: message.get("data").cloned().unwrap_or(Value::Null),
            };
            debug!(path = %path.display(), event = %event.name, data = %event.data, "qmp event");
            // No subscriber is fine: nobody waits for this event.
            let _ = shared.events.send(event);
            continue;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            debug!(path = %path.display(), %line, "ignoring QMP message without id");
            continue;
        };
        let reply = if let Some(value) = message.get("return") {
            Ok(value.clone())
        } else if let Some(error) = message.get("error") {
            let text = |key: &str| {
                error
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            Err((text("class"), text("desc")))
        } else {
            Err(("Unknown".to_string(), format!("unexpected reply {line}")))
        };
        if let Some(waiter) = shared.pending.lock().waiters.remove(&id) {
            let _ = waiter.send(reply);
        }
    };
    debug!(path = %path.display(), %reason, "qmp connection ended");
    let mut pending = shared.pending.lock();
    pending.closed = Some(reason);
    // Dropping the senders wakes every caller still waiting.
    pending.waiters.clear();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixListener;

    /// A scripted QMP server: greets, answers `qmp_capabilities`, then answers each command with
    /// what `respond` returns (a list of lines to send back, events included).
    pub(crate) async fn fake_server<F>(path: &Path, respond: F) -> JoinHandle<()>
    where
        F: Fn(&str, &Value, u64) -> Vec<String> + Send + 'static,
    {
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            write
                .write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}, \"capabilities\": []}}\n")
                .await
                .unwrap();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let message: Value = serde_json::from_str(&line).unwrap();
                let command = message["execute"].as_str().unwrap().to_string();
                let id = message["id"].as_u64().unwrap();
                let replies = if command == "qmp_capabilities" {
                    vec![format!("{{\"return\": {{}}, \"id\": {id}}}")]
                } else {
                    respond(&command, &message["arguments"], id)
                };
                for reply in replies {
                    write.write_all(reply.as_bytes()).await.unwrap();
                    write.write_all(b"\n").await.unwrap();
                }
            }
        })
    }

    #[tokio::test]
    async fn executes_and_routes_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake_server(&path, |command, arguments, id| match command {
            "query-status" => vec![
                r#"{"event": "RESET", "data": {"guest": false}, "timestamp": {"seconds": 1, "microseconds": 2}}"#.to_string(),
                format!(r#"{{"return": {{"status": "running", "running": true}}, "id": {id}}}"#),
            ],
            "device_del" => vec![
                format!(r#"{{"return": {{}}, "id": {id}}}"#),
                format!(
                    r#"{{"event": "DEVICE_DELETED", "data": {{"device": {}}}}}"#,
                    arguments["id"]
                ),
            ],
            _ => vec![format!(
                r#"{{"error": {{"class": "CommandNotFound", "desc": "The command {command} has not been found"}}, "id": {id}}}"#
            )],
        })
        .await;
        let qmp = Qmp::connect(&path, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(qmp.greeting()["version"]["qemu"]["major"], 7);
        let mut events = qmp.events();
        let status = qmp.execute("query-status", None).await.unwrap();
        assert_eq!(status["status"], "running");
        let event = events.recv().await.unwrap();
        assert_eq!(event.name, "RESET");
        assert_eq!(event.data["guest"], false);

        qmp.execute("device_del", Some(json!({"id": "disk-a"})))
            .await
            .unwrap();
        let event = events.recv().await.unwrap();
        assert_eq!(event.name, "DEVICE_DELETED");
        assert_eq!(event.data["device"], "disk-a");

        let error = qmp.execute("nope", None).await.unwrap_err();
        match error {
            Error::Qmp { command, class, .. } => {
                assert_eq!(command, "nope");
                assert_eq!(class, "CommandNotFound");
            }
            other => panic!("{other}"),
        }

        // Concurrent callers each get their own reply.
        let (a, b) = tokio::join!(
            qmp.execute("query-status", None),
            qmp.execute("query-status", None)
        );
        assert!(a.is_ok() && b.is_ok());

        server.abort();
        let _ = server.await;
        let error = qmp.execute("query-status", None).await.unwrap_err();
        assert!(matches!(error, Error::QmpProtocol { .. }), "{error}");
        // The reader notices the end of the stream on its own.
        for _ in 0..100 {
            if qmp.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(qmp.is_closed());
    }

    #[tokio::test]
    async fn greeting_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        // Accepts (by the kernel's backlog) but never greets, like a QEMU busy with another client.
        let _listener = UnixListener::bind(&path).unwrap();
        let error = Qmp::connect(&path, Duration::from_millis(200), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
        let error = Qmp::connect(
            &dir.path().join("missing.sock"),
            Duration::from_millis(200),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, Error::QmpProtocol { .. }), "{error}");
    }

    #[tokio::test]
    async fn command_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let _server = fake_server(&path, |_, _, _| Vec::new()).await;
        let qmp = Qmp::connect(&path, Duration::from_secs(5), Duration::from_millis(100))
            .await
            .unwrap();
        let error = qmp.execute("query-status", None).await.unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
    }
}
