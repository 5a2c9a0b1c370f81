//! A real registry for the tests: Debian's `docker-registry` on a free loopback port, its
//! access log, and a tripwire in front of it that kills it once enough bytes went through.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `docker-registry serve` process on `127.0.0.1:<port>`, storing under its directory;
/// killed when dropped.
pub struct Registry {
    pub port: u16,
    dir: PathBuf,
    child: Arc<Mutex<Option<Child>>>,
}

impl Registry {
    /// Starts a registry with its config, storage and log under `dir`.
    pub fn start(dir: &Path) -> Registry {
        super::require("docker-registry");
        std::fs::create_dir_all(dir).unwrap();
        let port = slipway::run::ports::free_one().unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let registry = Registry { port, dir: dir.to_owned(), child: Arc::new(Mutex::new(None)) };
        registry.restart();
        registry
    }

    /// Starts the registry again on the same port and storage, once it is down.
    pub fn restart(&self) {
        let log =
            std::fs::File::options().create(true).append(true).open(self.dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !answers(self.port) {
            assert!(Instant::now() < deadline, "docker-registry did not answer:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `registry://127.0.0.1:<port>/<namespace>`.
    pub fn url(&self, namespace: &str) -> String {
        format!("registry://127.0.0.1:{}/{namespace}", self.port)
    }

    /// `127.0.0.1:<port>/<namespace>/<repository>`, as skopeo's `docker://` names it.
    pub fn skopeo_name(&self, namespace: &str, repository: &str) -> String {
        format!("docker://127.0.0.1:{}/{namespace}/{repository}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// How many blob uploads the registry has started so far.
    pub fn uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("http.request.method=POST") && l.contains("/blobs/uploads/"))
            .count()
    }

    pub fn kill(&self) {
        kill(&self.child);
    }

    /// A proxy on a new loopback port that forwards to this registry and kills it (SIGKILL)
    /// once, when `bytes` have gone from clients to it: a registry dying in the middle of a
    /// push. After a `restart` it forwards everything.
    pub fn tripwire(&self, bytes: u64) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = self.port;
        let wire = Arc::new(Wire {
            sent: AtomicU64::new(0),
            limit: bytes,
            tripped: AtomicBool::new(false),
            child: Arc::clone(&self.child),
        });
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let wire = Arc::clone(&wire);
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client_in, server_out, Some(&wire)));
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        port
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        kill(&self.child);
    }
}

fn kill(child: &Mutex<Option<Child>>) {
    if let Some(mut child) = child.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The tripwire's state: bytes sent on every connection together, and whether it fired.
struct Wire {
    sent: AtomicU64,
    limit: u64,
    tripped: AtomicBool,
    child: Arc<Mutex<Option<Child>>>,
}

/// Copies `from` to `to` until either side closes; through a wire, kills the registry the
/// first time the bytes copied pass its limit.
fn pump(mut from: TcpStream, mut to: TcpStream, wire: Option<&Wire>) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(wire) = wire
            && wire.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > wire.limit
            && !wire.tripped.swap(true, Ordering::SeqCst)
        {
            kill(&wire.child);
            break;
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Whether `GET /v2/` answers 200.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}
