//! Backup and restore (issue 17, item 4): `sendero-cli backup.export` writes a tar of the books
//! and the Lightning node's channel state (never the mnemonic unless asked); the old gateway is
//! gone; `senderod --restore-from` with the mnemonic writes a new data dir, refusing a wrong
//! mnemonic, a damaged file or a data dir that holds a gateway without changing anything; the
//! restored gateway has the treasury's balance, the channel (same id, same balances) and the
//! books back, and pays over the channel through the public API.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ln::{channel, open_channel, pair_each, pay_b};
use common::{http_get_with_key, onchain_payout, settled, wait_for, AdminMode, Gateway, SENDEROD};
use sendero_wallet::bitcoin::hashes::Hash;
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// The tar's entries: name → bytes.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

/// `senderod --restore-from bundle` into `datadir` (regtest): (success, stdout + stderr).
fn restore(bundle: &Path, mnemonic: Option<&Path>, datadir: &Path, network: &str) -> (bool, String) {
    let mut cmd = Command::new(SENDEROD);
    cmd.args(["--config", "/dev/null", "--network", network, "--datadir"])
        .arg(datadir)
        .arg("--restore-from")
        .arg(bundle);
    if let Some(m) = mnemonic {
        cmd.arg("--mnemonic-file").arg(m);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `sendero-cli --json` that may fail: (success, its JSON output, stderr).
fn cli(datadir: &Path, args: &[&str]) -> (bool, Value, String) {
    let out =
        Command::new(common::SENDERO_CLI).arg("--datadir").arg(datadir).args(args).arg("--json").output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_backup_restores_the_treasury_the_channel_and_the_books_on_a_new_data_dir() {
    let mut p = pair_each("[batching]\nenabled = true\n", "");
    let channel_id = open_channel(&p, 600_000);
    let home = p._home.path().to_path_buf();
    let key = p.a.api_key("pay,read");
    let out = home.join("backup.tar");
    let with_mnemonic = home.join("backup-with-mnemonic.tar");
    let (before_balance, before_channel, before_ledger, mnemonic, onchain) = {
        let (a, chain) = (&p.a, &p.chain);

        // A day's business: a Lightning payment to B over the channel, an on-chain payout through
        // the API (confirmed), and a batched one still waiting for its batch.
        pay_b(&p, 25_000_000);
        let onchain = onchain_payout(a, &key, 40_000, 31, "backup-onchain");
        wait_for("the payout in the mempool", MINUTE, || !chain.mempool().is_empty());
        chain.mine(1);
        settled(a, &key, &onchain);
        let batched = common::coins::pay_batched_low(a, &key, &common::outside_address(32).to_string(), 15_000);

        // Refused while a payout is not yet with its rail; its id is named.
        let out_s = out.to_str().unwrap();
        let (ok, refused, _) = cli(&a.datadir, &["backup.export", "--out", out_s]);
        assert!(!ok);
        assert_eq!(refused["error"]["code"], "payouts_in_flight", "{refused}");
        assert!(refused["error"]["data"]["payment_ids"].as_array().unwrap().contains(&json!(batched)), "{refused}");
        assert!(!out.exists(), "a refused export wrote a file");
        a.call("batch.trigger", json!({}));
        wait_for("the batch in the mempool", MINUTE, || !chain.mempool().is_empty());
        chain.mine(1);
        settled(a, &key, &batched);
        wait_for("A's wallet at the tip", MINUTE, || a.synced_height() == u64::from(chain.height()));

        let before_balance = a.balance();
        let before_channel = channel(a).unwrap();
        let before_ledger = a.call("ledger.balances", json!({}));
        let mnemonic = std::fs::read_to_string(a.datadir.join("mnemonic")).unwrap();

        // The export: a 0600 tar, hashes as the manifest says, no mnemonic; not over an existing file.
        let exported = common::cli_json(&a.datadir, &["backup.export", "--out", out_s]);
        assert_eq!(exported["path"], out_s, "{exported}");
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        let manifest = &exported["manifest"];
        assert_eq!(manifest["includes_mnemonic"], false);
        assert_eq!(manifest["node_id"], p.a_id.as_str());
        assert_eq!(manifest["treasury"]["confirmed_sat"], before_balance["confirmed_sat"]);
        assert_eq!(manifest["channels"][0]["channel_id"], channel_id.as_str());
        let inside = entries(&out);
        let names: Vec<&str> = inside.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["manifest.json", "sendero.sqlite", "lightning/ldk_node_data.sqlite"], "{names:?}");
        assert!(!inside.iter().any(|(_, bytes)| String::from_utf8_lossy(bytes).contains(mnemonic.trim())));
        for f in manifest["files"].as_array().unwrap() {
            let (_, bytes) = inside.iter().find(|(n, _)| n == f["name"].as_str().unwrap()).unwrap();
            assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
            let hash = sendero_wallet::bitcoin::hashes::sha256::Hash::hash(bytes);
            assert_eq!(f["sha256"].as_str().unwrap(), hash.to_string());
        }
        let (ok, _, err) = cli(&a.datadir, &["backup.export", "--out", out_s]);
        assert!(!ok && err.contains("never writes over a file"), "exported over an existing file: {err}");
        assert_eq!(entries(&out).len(), inside.len());
        common::cli_json(
            &a.datadir,
            &["backup.export", "--include-mnemonic", "--out", with_mnemonic.to_str().unwrap()],
        );
        let m = entries(&with_mnemonic);
        assert_eq!(
            m.iter().find(|(n, _)| n == "mnemonic").map(|(_, b)| String::from_utf8_lossy(b).into_owned()),
            Some(mnemonic.clone())
        );
        let audited = a.call("audit.list", json!({}));
        let exports = audited["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "backup.export").count();
        assert_eq!(exports, 2, "{audited}");
        (before_balance, before_channel, before_ledger, mnemonic, onchain)
    };

    // The machine is lost: A stops for good. The operator kept the mnemonic and the backup.
    p.a.stop();
    let (b, chain) = (&p.b, &p.chain);
    let kept = home.join("kept-mnemonic");
    std::fs::write(&kept, &mnemonic).unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600)).unwrap();
    let new_dir = home.join("alice-restored");
    std::fs::create_dir_all(&new_dir).unwrap();

    // Refusals change nothing: B's mnemonic, no mnemonic, a damaged file, another network.
    let (ok, text) = restore(&out, Some(&b.datadir.join("mnemonic")), &new_dir, "regtest");
    assert!(!ok && text.contains("mnemonic_mismatch"), "{text}");
    let (ok, text) = restore(&out, None, &new_dir, "regtest");
    assert!(!ok && text.contains("mnemonic_required"), "{text}");
    let damaged = home.join("damaged.tar");
    let mut bytes = std::fs::read(&out).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, text) = restore(&damaged, Some(&kept), &new_dir, "regtest");
    assert!(!ok && text.contains("invalid_backup"), "{text}");
    let (ok, text) = restore(&out, Some(&kept), &new_dir, "signet");
    assert!(!ok && text.contains("network_mismatch"), "{text}");
    assert!(files_in(&new_dir).is_empty(), "a refused restore wrote {:?}", files_in(&new_dir));

    // A restore cut off half-way (its marker and a partial store): senderod will not start on
    // it, and running the restore again finishes it.
    std::fs::write(new_dir.join("restore.incomplete"), "restoring\n").unwrap();
    std::fs::write(new_dir.join("sendero.sqlite"), b"partial").unwrap();
    let started = Command::new(SENDEROD)
        .args(["--config", "/dev/null", "--network", "regtest", "--datadir"])
        .arg(&new_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success() && text.contains("did not finish"), "{text}");

    // The restore, then a second one refused on the data dir it wrote.
    let (ok, text) = restore(&out, Some(&kept), &new_dir, "regtest");
    assert!(ok, "{text}");
    eprintln!("{text}");
    assert_eq!(std::fs::read_to_string(new_dir.join("mnemonic")).unwrap(), mnemonic);
    let (ok, text) = restore(&with_mnemonic, None, &new_dir, "regtest");
    assert!(!ok && text.contains("datadir_not_empty"), "{text}");

    // The restored gateway: the treasury rescanned from the mnemonic, the channel back with B.
    let restored = Gateway::start_with(chain, &new_dir, AdminMode::Socket, "human", "[batching]\nenabled = true\n");
    common::ln::wait_ln_running(&restored);
    assert_eq!(common::ln::ln_info(&restored)["node_id"], p.a_id.as_str());
    wait_for("the restored wallet at the tip", MINUTE, || restored.synced_height() == u64::from(chain.height()));
    let after_balance = restored.balance();
    assert_eq!(after_balance["confirmed_sat"], before_balance["confirmed_sat"], "{after_balance}");
    wait_for("the channel usable again on both sides", MINUTE, || {
        channel(&restored).is_some_and(|c| c["usable"] == true) && channel(b).is_some_and(|c| c["usable"] == true)
    });
    let after_channel = channel(&restored).unwrap();
    assert_eq!(after_channel["channel_id"], channel_id.as_str());
    assert_eq!(after_channel["outbound_msat"], before_channel["outbound_msat"], "{after_channel}");
    assert_eq!(after_channel["capacity_sat"], before_channel["capacity_sat"]);
    assert_eq!(restored.call("ledger.balances", json!({}))["accounts"], before_ledger["accounts"]);

    // The books: the old payouts under the same API key; the same idempotency key answers the old
    // payment instead of paying again; a new Lightning payout over the restored channel settles.
    assert_eq!(settled(&restored, &key, &onchain)["status"], "SETTLED");
    let (status, listed) = http_get_with_key(restored.api_port, "/v1/payments?limit=10", Some(&key));
    assert_eq!(status, 200);
    assert_eq!(listed["payments"].as_array().unwrap().len(), 2, "{listed}");
    let (id, inv) = common::ln::api_pay_invoice(&restored, b, &key, 30_000);
    assert_eq!(settled(&restored, &key, &id)["status"], "SETTLED");
    let paid_to_b = common::ln::payment_by_hash(b, inv["payment_hash"].as_str().unwrap()).unwrap();
    assert_eq!(paid_to_b["status"], "succeeded");
    wait_for("the ledger exact", MINUTE, || restored.call("ledger.verify", json!({}))["ok"] == true);
    let log = restored.log();
    let loud: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ") || l.contains(" WARN ")).collect();
    assert!(loud.is_empty(), "the restored gateway complained:\n{}", loud.join("\n"));
    eprintln!(
        "restored: treasury {} sat, channel {} outbound {} msat (was {})",
        after_balance["confirmed_sat"], channel_id, after_channel["outbound_msat"], before_channel["outbound_msat"]
    );
}
