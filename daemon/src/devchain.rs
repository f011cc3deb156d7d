//! A private regtest `bitcoind` started and stopped by Sendero: dev mode runs one under its data
//! dir, and the end-to-end tests run one per test.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sendero_wallet::{BitcoindAuth, ChainSource};

/// The cached build that `scripts/bitcoind.sh` makes (kept in step with that script).
const CACHE_DIR: &str = "bitcoind-kernel-sys-0.4.1";
/// The build script, embedded so that `senderod --dev` can build bitcoind from anywhere.
const BUILD_SCRIPT: &str = include_str!("../../scripts/bitcoind.sh");

/// A dev-chain failure.
#[derive(Debug, thiserror::Error)]
pub enum DevChainError {
    /// No bitcoind could be found or built.
    #[error("bitcoind binary: {0}")]
    Binary(String),
    /// bitcoind did not start or did not answer in time.
    #[error("bitcoind did not start: {0}")]
    Start(String),
    /// A port chosen for bitcoind was taken by another process before bitcoind bound it.
    #[error("bitcoind could not bind its port: {0}")]
    PortTaken(String),
}

/// How many times [`Bitcoind::start`] picks fresh ports when one was taken under it.
const PORT_ATTEMPTS: u32 = 5;

/// Finds the bitcoind to run: `explicit` (config), then `BITCOIND_EXE`, then the cache; when none
/// exists, builds it with the embedded script (minutes; progress goes to the log).
pub fn resolve_bitcoind(explicit: &str) -> Result<PathBuf, DevChainError> {
    let env = std::env::var("BITCOIND_EXE").unwrap_or_default();
    for candidate in [explicit, env.as_str()] {
        if !candidate.is_empty() {
            let path = PathBuf::from(candidate);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(DevChainError::Binary(format!("{candidate} does not exist")))
            };
        }
    }
    let cached = cache_root().join(CACHE_DIR).join("bitcoind");
    if cached.is_file() {
        return Ok(cached);
    }
    tracing::warn!(
        cache = %cached.display(),
        "no bitcoind found: building Bitcoin Core from source now (about 6 minutes on 2 cores, once)"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| DevChainError::Binary(format!("run build script: {e}")))?;
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !Path::new(&printed).is_file() {
        return Err(DevChainError::Binary(format!("build failed ({}); see the lines above", out.status)));
    }
    Ok(PathBuf::from(printed))
}

fn cache_root() -> PathBuf {
    match std::env::var_os("SENDERO_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/sendero"),
    }
}

/// A running regtest bitcoind. Stopped (and waited for) on drop; also dies with its parent.
pub struct Bitcoind {
    child: Option<Child>,
    datadir: PathBuf,
    rpc_port: u16,
    p2p_port: u16,
}

impl Bitcoind {
    /// Starts `exe` on regtest with its data in `datadir`, and waits until its RPC answers.
    /// The ports are free when chosen; if another process binds one before bitcoind does, it
    /// starts again on fresh ports.
    pub fn start(exe: &Path, datadir: &Path) -> Result<Bitcoind, DevChainError> {
        let mut attempt = 1;
        loop {
            match Self::start_on(exe, datadir, free_port()?, free_port()?) {
                Err(DevChainError::PortTaken(why)) if attempt < PORT_ATTEMPTS => {
                    tracing::warn!(attempt, "{why}; starting bitcoind again on other ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Like [`Bitcoind::start`], on the given RPC and P2P ports (e.g. to restart a node where its
    /// clients expect it).
    pub fn start_on(exe: &Path, datadir: &Path, rpc_port: u16, p2p_port: u16) -> Result<Bitcoind, DevChainError> {
        std::fs::create_dir_all(datadir).map_err(|e| DevChainError::Start(format!("{}: {e}", datadir.display())))?;
        let mut cmd = Command::new(exe);
        cmd.arg("-regtest")
            .arg(format!("-datadir={}", datadir.display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={p2p_port}"))
            .args(["-server=1", "-txindex=1", "-fallbackfee=0.0001", "-listen=1", "-bind=127.0.0.1"])
            .args(["-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1", "-printtoconsole=0", "-dnsseed=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; this only asks the kernel to SIGTERM bitcoind when
        // the thread that started it dies, so a killed senderod never leaves its chain running.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| DevChainError::Start(format!("spawn {}: {e}", exe.display())))?;
        let mut node = Bitcoind { child: Some(child), datadir: datadir.to_path_buf(), rpc_port, p2p_port };
        node.wait_ready(Duration::from_secs(60))?;
        tracing::info!(rpc_port, p2p_port, datadir = %datadir.display(), "regtest bitcoind started");
        Ok(node)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), DevChainError> {
        let started = Instant::now();
        let chain = self.chain_source();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let why = format!("bitcoind exited with {status}; see {}", self.log_path().display());
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    return Err(if log.contains("Unable to bind") {
                        DevChainError::PortTaken(why)
                    } else {
                        DevChainError::Start(why)
                    });
                }
            }
            match chain.info() {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > limit => {
                    return Err(DevChainError::Start(format!("no RPC answer after {limit:?}: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The P2P port (127.0.0.1), for peers such as a Lightning node.
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// bitcoind's data dir.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The RPC cookie file.
    pub fn cookie_path(&self) -> PathBuf {
        self.datadir.join("regtest").join(".cookie")
    }

    /// bitcoind's own log.
    pub fn log_path(&self) -> PathBuf {
        self.datadir.join("regtest").join("debug.log")
    }

    /// A fresh RPC client for this node.
    pub fn chain_source(&self) -> ChainSource {
        ChainSource::new(self.rpc_url(), BitcoindAuth::Cookie(self.cookie_path()))
    }

    /// The bitcoind process's id, while it runs (tests pause it with SIGSTOP to simulate a hang).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Stops bitcoind through RPC and waits for it to exit (killing it after 30 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = self.chain_source().request_stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                tracing::info!("regtest bitcoind stopped");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("regtest bitcoind did not stop within 30 s; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral range
/// (`ip_local_port_range`) when there is room: a port from that range, once released, can be
/// taken as the local end of any outgoing connection before the process it was chosen for binds
/// it. Falls back to a port the kernel picks.
pub fn free_port() -> Result<u16, DevChainError> {
    let ephemeral_start = ephemeral_start();
    if ephemeral_start > FIRST + 1_000 {
        for _ in 0..64 {
            let port = rand::Rng::gen_range(&mut rand::thread_rng(), FIRST..ephemeral_start);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevChainError::Start(format!("no free port: {e}")))
}

/// The lowest port [`free_port`] picks from.
const FIRST: u16 = 10_000;

/// The first port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_come_from_below_the_ephemeral_range_and_can_be_bound() {
        let ephemeral_start = ephemeral_start();
        for _ in 0..20 {
            let port = free_port().unwrap();
            if ephemeral_start > FIRST + 1_000 {
                assert!((FIRST..ephemeral_start).contains(&port), "{port} is in the ephemeral range");
            }
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "{port} was not free");
        }
    }
}
