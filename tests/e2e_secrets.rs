//! Secrets on a real senderod. A scripted day — an admin cookie over TCP, the operator's webhook,
//! an API key, a client's webhook endpoint, a payout, an invoice, a restart — leaves no secret in
//! the log: the harness checks every gateway's log of the whole suite when it drops it
//! (`common::assert_no_secrets`: the mnemonic's words in a row, `sk_` API keys, `whsec_` secrets,
//! admin cookies, the dev key); here it is also shown to catch each kind of leak. Every file that
//! holds a secret is created 0600, and senderod refuses to start while one is looser, naming the
//! file and the `chmod` to run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::webhook::Receiver;
use common::{assert_no_secrets, http_post, outside_address, wait_for, AdminMode, Chain, Gateway, SENDEROD};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The files of `datadir` that hold secrets, as they are while senderod runs.
const SECRET_FILES: &[&str] =
    &["mnemonic", "admin.cookie", "operator-webhook.secret", "sendero.sqlite", "sendero.sqlite-wal"];

#[test]
fn no_secret_reaches_the_log_and_secret_files_are_private() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let operator = Receiver::start(200);
    let extra = format!(
        "[webhooks]\noperator_url = \"{}\"\n\n[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = {{ \"BTC/EUR\" = \"85000\" }}\n",
        operator.url()
    );
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Tcp, "json", &extra);
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);

    // The day: a key, a webhook endpoint, a payout (delivered, settled), an invoice.
    let created = gw.call("apikey.create", json!({"label": "shop", "scopes": ["pay", "read", "invoice", "quote"]}));
    let key = created["key"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(200);
    let (status, hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": receiver.url()}));
    assert_eq!(status, 201, "{hook}");
    let whsec = hook["secret"].as_str().unwrap().to_owned();
    let body =
        json!({"amount": {"minor_units": 30_000, "currency": "SAT"}, "destination": outside_address(81).to_string()});
    let (status, r) = post(&gw, "/v1/payments/route", &key, None, &body);
    assert_eq!(status, 200, "{r}");
    let (status, paid) =
        post(&gw, "/v1/payments/submit", &key, Some("day-1"), &json!({"route_id": r["route_id"], "rail": "onchain"}));
    assert_eq!(status, 202, "{paid}");
    let id = paid["payment_id"].as_str().unwrap().to_owned();
    wait_for("the payout in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(1);
    wait_for("payment.settled delivered", MINUTE, || !receiver.delivered("payment.settled", &id).is_empty());
    common::ln::wait_ln_running(&gw);
    let order = json!({"amount": {"minor_units": 1_000, "currency": "EUR"}, "description": "order 1"});
    let (status, invoice) = post(&gw, "/v1/invoices", &key, Some("order-1"), &order);
    assert_eq!(status, 201, "{invoice}");

    // Every secret file is its owner's alone, from its creation on.
    for file in SECRET_FILES {
        assert_eq!(mode(&gw.datadir.join(file)), 0o600, "{file}");
    }
    gw.restart();
    let cookie = std::fs::read_to_string(gw.datadir.join("admin.cookie")).unwrap();

    // The log covered the day and shows none of its secrets; the check finds each kind of leak.
    let log = gw.log();
    for seen in ["webhook endpoint registered", "payment submitted", "operator webhook endpoint ready"] {
        assert!(log.contains(seen), "the log covers the day: {seen:?}");
    }
    assert_no_secrets(&gw.datadir, &log, &[cookie.trim().to_owned()]);
    let mnemonic = std::fs::read_to_string(gw.datadir.join("mnemonic")).unwrap();
    let words: Vec<&str> = mnemonic.split_whitespace().collect();
    for leak in [
        format!("seed={:?}", &words[3..8]),
        format!("hook secret {whsec}"),
        format!("Authorization: Bearer {key}"),
        format!("cookie {}", cookie.trim()),
    ] {
        let leaked = format!("{log}{leak}\n");
        let caught = std::panic::catch_unwind(|| assert_no_secrets(&gw.datadir, &leaked, &[]));
        assert!(caught.is_err(), "the check misses {leak:?}");
    }

    // A looser mode on any secret file stops the start, naming the file and the chmod to run.
    gw.stop();
    for file in ["mnemonic", "operator-webhook.secret", "sendero.sqlite"] {
        let path = gw.datadir.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let out = std::process::Command::new(SENDEROD)
            .arg("--config")
            .arg(gw.datadir.join("senderod.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: {stderr}");
        assert!(stderr.contains(&format!("chmod 600 {}", path.display())), "{file}: {stderr}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    gw.start_again();
    assert_eq!(gw.call("getinfo", json!({}))["network"], "regtest");
}
