//! Bad input through the admin RPC gets a clear error with a stable code and changes nothing:
//! same balances, history, coins and an empty mempool afterwards. Runs over the TCP admin
//! transport with its cookie, and through `sendero-cli`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{outside_address, wait_for, AdminMode, Chain, Gateway, SENDERO_CLI};
use serde_json::{json, Value};

/// The audit log's entries whose action starts with `prefix`.
fn audited(gw: &Gateway, prefix: &str) -> Vec<Value> {
    let entries = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    entries.into_iter().filter(|e| e["action"].as_str().unwrap().starts_with(prefix)).collect()
}

#[test]
fn bad_admin_input_is_refused_and_changes_nothing() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Tcp, "json", "");
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", Duration::from_secs(30), || gw.synced_height() == 101);

    let snapshot = || {
        (gw.balance(), gw.call("wallet.transactions", json!({})), gw.call("wallet.utxos", json!({})), chain.mempool())
    };
    let before = snapshot();
    let confirmed = before.0["confirmed_sat"].as_u64().unwrap();
    let good = outside_address(5).to_string();
    let mainnet = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu";

    let cases: Vec<(Value, &str)> = vec![
        (json!({"address": "bcrt1qnotanaddress", "amount_sat": 10_000}), "invalid_address"),
        (json!({"address": "", "amount_sat": 10_000}), "invalid_address"),
        (json!({"address": mainnet, "amount_sat": 10_000}), "wrong_network"),
        (json!({"address": good, "amount_sat": 0}), "invalid_amount"),
        (json!({"address": good, "amount_sat": -5}), "invalid_amount"),
        (json!({"address": good, "amount_sat": 1.5}), "invalid_amount"),
        (json!({"address": good, "amount_sat": "10000"}), "invalid_amount"),
        (json!({"address": good, "amount_sat": 100}), "invalid_amount"),
        (json!({"address": good, "amount_sat": confirmed + 1}), "insufficient_funds"),
        (json!({"address": good, "amount_sat": 21_000_000 * 100_000_000u64}), "insufficient_funds"),
        (json!({"address": good, "amount_sat": 10_000, "feerate_sat_vb": 0}), "invalid_feerate"),
        (json!({"address": good, "amount_sat": 10_000, "feerate_sat_vb": -1}), "invalid_feerate"),
        (json!({"address": good, "amount_sat": 10_000, "feerate_sat_vb": 1_000_000}), "invalid_feerate"),
        (json!({"address": good, "amount_sat": 10_000, "feerate_sat_vb": 1001}), "invalid_feerate"),
        (json!({"address": good}), "invalid_params"),
        (json!({"amount_sat": 10_000}), "invalid_params"),
        (json!({"address": good, "amount_sat": 10_000, "fee": 3}), "invalid_params"),
        (json!([good, 10_000]), "invalid_params"),
    ];
    for (params, expected) in &cases {
        assert_eq!(gw.error_code("wallet.send", params.clone()), *expected, "wallet.send {params}");
    }

    // What a client needs to act on insufficient funds is in the error's data.
    match gw.try_call("wallet.send", json!({"address": good, "amount_sat": confirmed + 1})) {
        Err(sendero::admin::ClientError::Rpc { data, rpc_code, .. }) => {
            assert_eq!(rpc_code, -32000);
            assert_eq!(data["available_sat"], confirmed, "{data}");
            assert!(data["needed_sat"].as_u64().unwrap() > confirmed);
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(gw.error_code("wallet.sendall", json!({})), "method_not_found");
    assert_eq!(gw.error_code("getinfo", json!({"verbose": true})), "invalid_params");
    let raw =
        |body: &str| gw.call_raw(body.as_bytes())["error"]["data"]["code"].as_str().unwrap_or_default().to_owned();
    assert_eq!(raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"), "parse_error");
    assert_eq!(raw("not json at all"), "parse_error");
    assert_eq!(raw("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getinfo\"}]"), "invalid_request");
    assert_eq!(raw("{\"id\":1,\"method\":\"getinfo\"}"), "invalid_request");

    // The same through the CLI: exit 1 and the stable code in --json output.
    let out = std::process::Command::new(SENDERO_CLI)
        .args([
            "--datadir",
            gw.datadir.to_str().unwrap(),
            "--admin-addr",
            &format!("127.0.0.1:{}", gw.admin_port.unwrap()),
        ])
        .args(["wallet.send", "--address", mainnet, "--amount-sat", "10000", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["error"]["code"], "wrong_network");

    // The TCP admin port wants the cookie.
    let mut stream = TcpStream::connect(("127.0.0.1", gw.admin_port.unwrap())).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"wallet.newaddress"}"#;
    write!(stream, "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 00\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");

    assert_eq!(snapshot(), before, "a refused call changed the wallet or the mempool");

    assert_eq!(audited(&gw, "wallet.send"), Vec::<Value>::new(), "a refused send is not audited");

    // And a good send still works afterwards, audited once signed and once sent.
    let sent = gw.call("wallet.send", json!({"address": good, "amount_sat": 10_000}));
    let txid = sent["txid"].as_str().unwrap().to_owned();
    assert_eq!(chain.mempool(), vec![txid.clone()]);
    assert_eq!(sent["feerate_source"], "fallback", "regtest has no fee estimate");
    let entries = audited(&gw, "wallet.send");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["wallet.send.requested", "wallet.send"], "{entries:?}");
    let (asked, done) = (&entries[0]["details"], &entries[1]["details"]);
    assert_eq!((asked["txid"].as_str(), asked["address"].as_str()), (Some(txid.as_str()), Some(good.as_str())));
    assert_eq!((asked["amount_sat"].as_u64(), asked["fee_sat"].clone()), (Some(10_000), sent["fee_sat"].clone()));
    assert_eq!((done["txid"].as_str(), done["request_seq"].clone()), (Some(txid.as_str()), entries[0]["seq"].clone()));
    assert_eq!(
        (sent["request_seq"].clone(), sent["audit_seq"].clone()),
        (entries[0]["seq"].clone(), entries[1]["seq"].clone())
    );

    // JSON logs: one object per line, refusals logged with their code.
    let log = gw.log();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "senderod ready"), "{log}");
    assert!(lines.iter().any(|l| l["fields"]["code"] == "wrong_network" && l["level"] == "INFO"), "{log}");
}

/// An operator's send the gateway is killed in, once signed and audited but before its broadcast
/// (`wallet.send.asked`), is on record as asked and was never sent: after the restart the audit
/// log holds the request with its txid and no outcome, that transaction is nowhere, the balance
/// is whole, and the send asked again goes out once.
#[test]
fn a_send_cut_by_a_kill_is_on_record_as_asked_and_never_sent() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", "");
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", Duration::from_secs(30), || gw.synced_height() == 101);
    let before = gw.balance()["confirmed_sat"].as_u64().unwrap();
    let to = outside_address(6).to_string();

    gw.env = vec![("SENDERO_FAILPOINT".into(), "wallet.send.asked".into())];
    gw.restart();
    let cut = gw.try_call("wallet.send", json!({"address": to, "amount_sat": 25_000}));
    assert!(cut.is_err(), "the gateway died inside the call: {cut:?}");
    gw.wait_exit();
    assert!(gw.log().contains("failpoint reached: aborting"));
    gw.env.clear();
    gw.start_again();
    wait_for("sync", Duration::from_secs(30), || gw.synced_height() == 101);

    let entries = audited(&gw, "wallet.send");
    assert_eq!(entries.len(), 1, "the request, no outcome: {entries:?}");
    assert_eq!(entries[0]["action"], "wallet.send.requested");
    let never = entries[0]["details"]["txid"].as_str().unwrap().to_owned();
    assert_eq!(entries[0]["details"]["amount_sat"], 25_000);
    assert!(!chain.mempool().contains(&never) && chain.mempool().is_empty(), "nothing was broadcast");
    assert_eq!(gw.balance()["confirmed_sat"].as_u64(), Some(before), "the balance is whole");

    let height = chain.height();
    let sent = gw.call("wallet.send", json!({"address": to, "amount_sat": 25_000}));
    assert_eq!(chain.mempool(), vec![sent["txid"].as_str().unwrap().to_owned()]);
    chain.mine(1);
    assert_eq!(chain.paid_after(height).get(&to), Some(&1), "paid once");
    let actions: Vec<String> =
        audited(&gw, "wallet.send").iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["wallet.send.requested", "wallet.send.requested", "wallet.send"]);
}
