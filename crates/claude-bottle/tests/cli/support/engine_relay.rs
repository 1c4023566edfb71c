//! A relay in front of the engine that records the request line of every
//! API call passing through: what a command asked the engine, whatever
//! else the tests running alongside do to it. It can also play an engine
//! that hangs: from a given request on, nothing more is passed either way;
//! or a connection that drops: [`EngineRelay::cut`] closes every one open.
//! Over TLS it relays the bytes unread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Listens on loopback; each connection is relayed to the engine that
/// `DOCKER_HOST` names (a Unix socket or `tcp://`), or the local socket.
pub(crate) struct EngineRelay {
    /// For the command's `DOCKER_HOST`.
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<String>>>,
    open: Arc<Mutex<Vec<Box<dyn Stream>>>>,
}

/// When the relay stops passing anything on: from the first request whose
/// line holds `from` on, for every connection, old and new.
struct Hang {
    from: Option<String>,
    hung: AtomicBool,
}

impl Hang {
    fn is_hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }

    /// Holds the calling thread for good once hung.
    fn hold_if_hung(&self) {
        while self.is_hung() {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

trait Stream: Read + Write + Send {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>>;
    fn shut(&self);
    /// Passes on the end of what the client sends (an exec's stdin).
    fn shut_write(&self);
}

impl Stream for UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn shut(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
    fn shut_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn shut(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
    fn shut_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

fn dial_engine() -> std::io::Result<Box<dyn Stream>> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if let Some(address) = host.strip_prefix("tcp://") {
        Ok(Box::new(TcpStream::connect(address)?))
    } else {
        let path = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock");
        Ok(Box::new(UnixStream::connect(path)?))
    }
}

impl EngineRelay {
    pub(crate) fn start() -> Self {
        Self::hanging_from(None)
    }

    /// A relay that hangs from the first request whose line holds `from`.
    pub(crate) fn hanging_from(from: Option<&str>) -> Self {
        let hang = Arc::new(Hang {
            from: from.map(str::to_owned),
            hung: AtomicBool::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let open: Arc<Mutex<Vec<Box<dyn Stream>>>> = Arc::default();
        let (seen, held) = (requests.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (seen, hang, held) = (seen.clone(), hang.clone(), held.clone());
                std::thread::spawn(move || {
                    hang.hold_if_hung();
                    relay(client, &seen, &hang, &held);
                });
            }
        });
        Self {
            url,
            requests,
            open,
        }
    }

    /// Closes every connection open through it, both ways, as a network
    /// that drops would; new ones are relayed as before.
    pub(crate) fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            stream.shut();
        }
    }

    /// `METHOD PATH` of every request so far, in order.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Copies the engine's answers back as they come, and the client's
/// requests forward one at a time, recording each request line. After an
/// upgrade (attach, exec) or a chunked body the rest is copied unread.
fn relay(
    client: TcpStream,
    seen: &Mutex<Vec<String>>,
    hang: &Hang,
    open: &Mutex<Vec<Box<dyn Stream>>>,
) {
    let Ok(mut engine) = dial_engine() else {
        return;
    };
    let (Ok(mut from_engine), Ok(mut to_client)) = (engine.try_clone_box(), client.try_clone())
    else {
        return;
    };
    if let (Ok(engine), Ok(client)) = (engine.try_clone_box(), client.try_clone()) {
        open.lock()
            .unwrap()
            .extend([engine, Box::new(client) as Box<dyn Stream>]);
    }
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_engine, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut requests = BufReader::new(client);
    if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty()) {
        // Encrypted: nothing to read, all to pass.
        let _ = std::io::copy(&mut requests, &mut engine);
        engine.shut_write();
        return;
    }
    loop {
        let mut head = Vec::new();
        let mut length = 0u64;
        let mut opaque = false;
        loop {
            let mut line = String::new();
            match requests.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if head.is_empty() {
                let request: Vec<&str> = line.split_whitespace().take(2).collect();
                seen.lock().unwrap().push(request.join(" "));
                if hang
                    .from
                    .as_ref()
                    .is_some_and(|from| line.contains(from.as_str()))
                {
                    hang.hung.store(true, Ordering::SeqCst);
                }
                // The connection stays open, and nothing is answered.
                hang.hold_if_hung();
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            opaque |= lower.starts_with("transfer-encoding:") || lower.starts_with("upgrade:");
            head.extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
        }
        if engine.write_all(&head).is_err() {
            return;
        }
        if opaque {
            let _ = std::io::copy(&mut requests, &mut engine);
            engine.shut_write();
            return;
        }
        if std::io::copy(&mut (&mut requests).take(length), &mut engine).is_err() {
            return;
        }
    }
}
