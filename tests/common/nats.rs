//! A real `nats-server` with JetStream (Debian's package, installed by `scripts/setup.sh`) on a
//! free loopback port with its store in a temp dir; stopped and started again on the same port
//! and store, so its streams survive the restart as a production server's would.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// The running server.
pub struct NatsServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn exe() -> PathBuf {
    let found = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].into_iter().map(PathBuf::from).find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("nats-server is not installed: run scripts/setup.sh (it installs Debian's nats-server)")
    })
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let port = sendero::devchain::free_port().expect("port");
        let mut server = NatsServer { port, dir: tempfile::tempdir().expect("tempdir"), child: None };
        server.start_again();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and store; returns once it accepts connections.
    pub fn start_again(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log");
        let child = Command::new(exe())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        wait_for("nats-server to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
