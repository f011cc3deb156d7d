//! `senderod --dev`: the README's run command. A private regtest bitcoind, a funded wallet, the API
//! and admin RPC up within a minute; READY=1 and STOPPING=1 told to systemd; SIGTERM stops both
//! processes; left idle for a minute it logs no ERROR or WARN. A port taken under bitcoind is told
//! apart from other start failures.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, wait_for, SENDEROD, SENDERO_CLI};
use serde_json::Value;

#[test]
fn dev_mode_serves_a_funded_gateway_and_stops_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let datadir = home.path().join("dev");
    let notify_path = home.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let port = sendero::devchain::free_port().unwrap();

    let started = Instant::now();
    let mut child = Command::new(SENDEROD)
        .args(["--dev", "--datadir", datadir.to_str().unwrap(), "--api-listen", &format!("127.0.0.1:{port}")])
        .env("BITCOIND_EXE", common::bitcoind_exe())
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.path().join("senderod.log")).unwrap())
        .spawn()
        .unwrap();

    let mut buf = [0u8; 256];
    let log = || std::fs::read_to_string(home.path().join("senderod.log")).unwrap_or_default();
    let n = match notify.recv(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("no READY=1 from senderod ({e}; exit status {:?}):\n{}", child.try_wait(), log()),
    };
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let ready_after = started.elapsed();
    assert!(ready_after < Duration::from_secs(60), "dev mode took {ready_after:?}");

    let (status, health) = http_get(port, "/v1/health");
    assert_eq!(status, 200, "{health}");
    let out =
        Command::new(SENDERO_CLI).args(["--datadir", datadir.to_str().unwrap(), "getinfo", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["chain_height"], 101);
    assert_eq!(info["wallet"]["synced_height"], 101);
    assert_eq!(info["wallet"]["synced"], true);
    assert_eq!(info["wallet"]["confirmed_sat"], 100 * 100_000_000u64);
    assert_eq!(info["wallet"]["immature_sat"], 99 * 50 * 100_000_000u64);

    // The Lightning node runs beside the wallet; `sendero-cli ln.channels` answers (no channel yet).
    let cli = |args: &[&str]| common::cli_json(&datadir, args);
    wait_for("the lightning node", Duration::from_secs(30), || {
        Command::new(SENDERO_CLI)
            .args(["--datadir", datadir.to_str().unwrap(), "ln.info"])
            .output()
            .unwrap()
            .status
            .success()
    });
    assert_eq!(cli(&["ln.channels"]), serde_json::json!({"channels": []}));
    assert_eq!(cli(&["ln.info"])["best_block_height"], 101);
    assert_eq!(cli(&["getinfo"])["lightning"]["state"], "running");

    // Quotes work offline from the static table, with the ready key dev mode made.
    let dev_key = std::fs::read_to_string(datadir.join("dev-api-key")).unwrap();
    let (status, quote) = common::http_get_with_key(
        port,
        "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000",
        Some(dev_key.trim()),
    );
    assert_eq!(status, 200, "{quote}");
    assert_eq!(quote["pair"], "EUR/BTC");
    assert!(quote["amount_sat"].as_u64().unwrap() > 1_000_000);

    // Secrets and the admin socket are private.
    for file in ["mnemonic", "admin.sock", "dev-api-key"] {
        let mode = std::fs::metadata(datadir.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // Dev mode tells where its key is, never the key: the log shows no secret.
    common::assert_no_secrets(&datadir, &log(), &[]);
    assert!(log().contains(&datadir.join("dev-api-key").display().to_string()), "{}", log());

    // Left idle for a minute, a healthy dev gateway logs no ERROR or WARN (bitcoind with no fee
    // estimate on regtest is routine, not news).
    let idle_from = log().len();
    std::thread::sleep(Duration::from_secs(60));
    let idle = log()[idle_from..].to_owned();
    let loud: Vec<&str> = idle.lines().filter(|l| l.contains(" ERROR ") || l.contains(" WARN ")).collect();
    assert!(loud.is_empty(), "{} ERROR or WARN lines in an idle minute:\n{}", loud.len(), loud.join("\n"));

    let pid_file = datadir.join("bitcoind/regtest/bitcoind.pid");
    let bitcoind_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let alive = |pid: i32| unsafe { libc::kill(pid, 0) } == 0;
    assert!(alive(bitcoind_pid));

    // SIGTERM: STOPPING=1, a clean exit, and the dev bitcoind gone with it.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("STOPPING=1 from senderod");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let status = child.wait().unwrap();
    assert!(status.success(), "senderod exit {status}");
    wait_for("dev bitcoind to exit", Duration::from_secs(10), || !alive(bitcoind_pid) || is_zombie(bitcoind_pid));
    assert!(!datadir.join("admin.sock").exists());
    assert_eq!(http_get(port, "/v1/health").0, 0, "API still answering after stop");
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}

/// A port taken between choosing it and bitcoind binding it (another test, another process) is
/// told apart from other start failures, so `Bitcoind::start` can pick fresh ports.
#[test]
fn a_port_taken_under_bitcoind_is_reported_as_taken_and_a_fresh_start_succeeds() {
    use sendero::devchain::{free_port, Bitcoind, DevChainError};
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p2p = taken.local_addr().unwrap().port();
    let exe = common::bitcoind_exe();
    match Bitcoind::start_on(&exe, &dir.path().join("a"), free_port().unwrap(), p2p) {
        Err(DevChainError::PortTaken(why)) => assert!(why.contains("debug.log"), "{why}"),
        Err(other) => panic!("a taken P2P port read as another failure: {other}"),
        Ok(_) => panic!("bitcoind started on a port another socket holds"),
    }
    let node = Bitcoind::start(&exe, &dir.path().join("b")).expect("start on fresh ports");
    assert_ne!(node.p2p_port(), p2p);
    assert!(node.chain_source().info().is_ok());
}
