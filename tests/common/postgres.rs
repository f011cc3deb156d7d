//! A real PostgreSQL (Debian's `postgresql`, installed by `scripts/setup.sh`) for the tests: one
//! server per test process, started on first use with `initdb` in a temp dir on a free loopback
//! port, stopped (and its dir removed) when the process exits. Each gateway gets a database of
//! its own. As root (CI's containers) the server runs as the `postgres` user, as PostgreSQL
//! requires.
//!
//! `SENDERO_TEST_STORE=postgres` runs every test gateway's books on it (see
//! [`super::Gateway::start_with`]): the payments and FX suites run on both stores.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::wait_for;

/// Whether the tests' gateways keep their books on PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("SENDERO_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The running server.
pub struct PgServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Mutex<Option<std::process::Child>>,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static STOPPED: Mutex<bool> = Mutex::new(false);

fn bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(name)).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's {name} is not installed: run scripts/setup.sh (it installs Debian's postgresql)")
    })
}

/// The `postgres` user's ids when we are root (PostgreSQL refuses to run as root).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam's result is read at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(!pw.is_null(), "running as root and there is no postgres user: run scripts/setup.sh");
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(name: &str, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin(name));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        server.stop();
    }
}

impl PgServer {
    /// The server of this process, started on first use.
    pub fn get() -> &'static PgServer {
        SERVER.get_or_init(|| {
            let server = PgServer::start();
            // SAFETY: registering a plain function to run at exit.
            unsafe { libc::atexit(stop_at_exit) };
            server
        })
    }

    /// Servers of test processes that died without stopping theirs (SIGKILL, a crash).
    fn stop_orphans() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(owner) = name.strip_prefix("sendero-pg-").and_then(|p| p.parse::<u32>().ok()) else { continue };
            if Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let pidfile = std::fs::read_to_string(e.path().join("data/postmaster.pid")).unwrap_or_default();
            if let Some(pid) = pidfile.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: signalling the orphaned server named by its own pid file.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = std::fs::remove_dir_all(e.path());
        }
    }

    fn start() -> PgServer {
        PgServer::stop_orphans();
        let user = run_as();
        let dir = std::env::temp_dir().join(format!("sendero-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown pg dir");
        }
        let data = dir.join("data");
        let out = command("initdb", user)
            .args(["-A", "trust", "-U", "sendero", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = sendero::devchain::free_port().expect("port");
        let log = std::fs::File::create(dir.join("postgres.log")).expect("log");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).expect("chown log");
        }
        let child = command("postgres", user)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args(["-c", "max_connections=300", "-c", "shared_buffers=64MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        let server = PgServer { port, dir, child: Mutex::new(Some(child)) };
        wait_for("postgres to accept connections", Duration::from_secs(60), || {
            Command::new(bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "sendero", "-d", "postgres"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        server
    }

    /// A URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://sendero@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` with psql on database `db`; its output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.psql_result(db, sql).unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// Runs `sql` with psql on database `db`: its output, or what PostgreSQL said.
    pub fn psql_result(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "sendero", "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A new, empty database; its URL.
    pub fn new_database(&self, hint: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let clean: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(40)
            .collect();
        let name = format!("gw{}_{clean}", N.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Immediate shutdown and the dir removed (once).
    pub fn stop(&self) {
        let mut stopped = STOPPED.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return;
        }
        *stopped = true;
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // SAFETY: signalling the server we started (immediate shutdown).
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
