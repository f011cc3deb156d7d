//! Webhooks from a real senderod to a local receiver over loopback HTTP: endpoints registered per
//! API key (secret shown once), payment.submitted / payment.settled delivered with a valid
//! Standard Webhooks signature, retried after 5xx with the same webhook-id, kept across a SIGKILL
//! of senderod, an endpoint answering 410 disabled, event filters, the delivery log and an
//! operator's redelivery.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::webhook::{signature_valid, Hook, Receiver};
use common::{http_get_with_key, http_post, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Routes and submits an on-chain payout; returns the payment id.
fn payout(gw: &Gateway, key: &str, sat: u64, seed: u8) -> String {
    common::onchain_payout(gw, key, sat, seed, &format!("payout-{seed}"))
}

#[test]
fn webhooks_are_signed_retried_and_survive_restarts() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let extra = "[webhooks]\nbackoff_base_secs = 1\nbackoff_max_secs = 2\nmax_attempts = 3\n\n\
                 [routing]\nsaga_interval_ms = 100\n";
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", extra);
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("pay,read");

    // Registration: 201 with the secret once; the listing never shows it; bad input refused.
    let receiver = Receiver::start(200);
    let (status, hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": receiver.url()}));
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && B64.decode(&secret[6..]).unwrap().len() == 32);
    assert_eq!(hook["events"], json!(["payment.submitted", "payment.settled", "payment.failed"]));
    let (_, listed) = http_get_with_key(gw.api_port, "/v1/webhooks", Some(&key));
    assert_eq!(listed["webhooks"][0]["endpoint_id"], hook["endpoint_id"]);
    assert!(listed.to_string().find("whsec_").is_none(), "{listed}");
    let code =
        |body: Value| post(&gw, "/v1/webhooks", &key, None, &body).1["error"]["code"].as_str().unwrap().to_owned();
    assert_eq!(code(json!({"url": "ftp://example.com/x"})), "invalid_url");
    assert_eq!(code(json!({"url": "not a url"})), "invalid_url");
    assert_eq!(code(json!({"url": receiver.url(), "events": ["payment.teleported"]})), "invalid_event");
    // Another key's endpoint that only wants settlements, and one that is gone.
    let other_key = gw.api_key("pay");
    let settled_only = Receiver::start(200);
    let (status, _) =
        post(&gw, "/v1/webhooks", &key, None, &json!({"url": settled_only.url(), "events": ["payment.settled"]}));
    assert_eq!(status, 201);
    let gone = Receiver::start(410);
    let (status, gone_hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": gone.url()}));
    assert_eq!(status, 201);
    let elsewhere = Receiver::start(200);
    assert_eq!(post(&gw, "/v1/webhooks", &other_key, None, &json!({"url": elsewhere.url()})).0, 201);

    // The first attempt gets a 500: retried with the same webhook-id, then delivered, signed.
    receiver.answers.lock().unwrap().push_back(500);
    let id = payout(&gw, &key, 50_000, 31);
    wait_for("payment.submitted delivered", MINUTE, || !receiver.delivered("payment.submitted", &id).is_empty());
    let attempts: Vec<Hook> = receiver
        .hooks()
        .into_iter()
        .filter(|h| serde_json::from_str::<Value>(&h.body).unwrap()["data"]["payment_id"] == id.as_str())
        .collect();
    assert_eq!(attempts.iter().map(|h| h.answered).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(attempts[0].headers["webhook-id"], attempts[1].headers["webhook-id"]);
    assert!(attempts[0].headers["webhook-id"].starts_with("evt_"));
    for h in &attempts {
        assert!(signature_valid(&secret, h), "{h:?}");
        let age = (common::unix_now() as i64 - h.headers["webhook-timestamp"].parse::<i64>().unwrap()).abs();
        assert!(age < 120, "timestamp is now-ish");
    }
    let tampered = Hook { body: attempts[1].body.replace("50000", "50001"), ..attempts[1].clone() };
    assert!(!signature_valid(&secret, &tampered), "a changed body fails the check");
    let body: Value = serde_json::from_str(&attempts[1].body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["data"]["status"].as_str()),
        (Some("payment.submitted"), Some("SUBMITTED"))
    );

    // Settlement after a block.
    chain.mine(1);
    wait_for("payment.settled delivered", MINUTE, || !receiver.delivered("payment.settled", &id).is_empty());
    let settled = &receiver.delivered("payment.settled", &id)[0];
    let data: Value = serde_json::from_str(&settled.body).unwrap();
    assert_eq!((data["data"]["status"].as_str(), data["data"]["amount_sat"].as_u64()), (Some("SETTLED"), Some(50_000)));
    assert!(data["data"]["txid"].is_string() && data["data"]["fee_paid_sat"].as_u64().unwrap() > 0, "{data}");
    wait_for("settlement at the filtered endpoint", MINUTE, || {
        settled_only.delivered("payment.settled", &id).len() == 1
    });
    assert!(settled_only.delivered("payment.submitted", &id).is_empty(), "it did not subscribe to submissions");
    assert!(elsewhere.hooks().is_empty(), "another key's endpoint hears nothing of this key's payments");

    // 410: the endpoint is disabled after its first answer.
    wait_for("the gone endpoint disabled", MINUTE, || {
        let (_, listed) = http_get_with_key(gw.api_port, "/v1/webhooks", Some(&key));
        listed["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["endpoint_id"] == gone_hook["endpoint_id"] && w["state"] == "disabled")
    });
    assert_eq!(gone.hooks().len(), 1, "no further attempt after 410");

    // The receiver is down (503) while senderod is killed: the delivery waits in the store and
    // goes out after the restart.
    *receiver.fallback.lock().unwrap() = 503;
    let id2 = payout(&gw, &key, 40_000, 32);
    wait_for("an attempt answered 503", MINUTE, || receiver.hooks().iter().any(|h| h.answered == 503));
    gw.kill();
    *receiver.fallback.lock().unwrap() = 200;
    gw.start_again();
    wait_for("payment.submitted delivered after the restart", MINUTE, || {
        !receiver.delivered("payment.submitted", &id2).is_empty()
    });

    // The delivery log, and a redelivery by the operator with the same webhook-id.
    let log = gw.call("webhook.deliveries", json!({"endpoint_id": hook["endpoint_id"]}));
    let first = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["payment_id"] == id.as_str() && d["event_type"] == "payment.submitted")
        .unwrap()
        .clone();
    assert_eq!(
        (first["state"].as_str(), first["attempts"].as_u64(), first["last_status"].as_u64()),
        (Some("delivered"), Some(2), Some(200))
    );
    let before = receiver.hooks().len();
    gw.call("webhook.redeliver", json!({"delivery_id": first["delivery_id"]}));
    wait_for("the redelivery", MINUTE, || receiver.hooks().len() > before);
    let again = receiver.hooks().last().cloned().unwrap();
    assert_eq!(again.headers["webhook-id"], first["event_id"].as_str().unwrap());
    assert!(signature_valid(&secret, &again));
    assert_eq!(gw.error_code("webhook.redeliver", json!({"delivery_id": 999_999})), "delivery_not_found");

    // Every final state produced a delivery; deleting the endpoint stops them.
    let (status, _) =
        common::http_delete(gw.api_port, &format!("/v1/webhooks/{}", hook["endpoint_id"].as_str().unwrap()), &key);
    assert_eq!(status, 204);
    let (_, listed) = http_get_with_key(gw.api_port, "/v1/webhooks", Some(&key));
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
}
