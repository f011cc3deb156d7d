//! The webhook SSRF guard on a real senderod: endpoints on loopback, private, link-local (the
//! cloud metadata address), CGNAT or unspecified addresses are refused at registration (400
//! `webhook_url_not_allowed`) unless `[webhooks] allow_private` lists their network, and so is
//! such an `operator_url` (senderod refuses to start); a receiver that answers with a redirect is
//! not followed (a failed delivery); and an endpoint registered while its network was allowed
//! gets nothing once it no longer is — neither by address nor by a name resolved at delivery.

mod common;

use std::time::Duration;

use common::webhook::Receiver;
use common::{http_post, wait_for, AdminMode, Chain, Gateway, SENDEROD};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn payout(gw: &Gateway, key: &str, sat: u64, seed: u8) -> String {
    common::onchain_payout(gw, key, sat, seed, &format!("guard-{seed}"))
}

/// The deliveries of `endpoint_id`.
fn deliveries(gw: &Gateway, endpoint_id: &str) -> Vec<Value> {
    gw.call("webhook.deliveries", json!({"endpoint_id": endpoint_id}))["deliveries"].as_array().unwrap().clone()
}

#[test]
fn webhooks_reach_no_private_address_unless_allowed_and_follow_no_redirect() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let allowed = "[webhooks]\nallow_private = [\"127.0.0.0/8\"]\nbackoff_base_secs = 1\nbackoff_max_secs = 1\n\
                   max_attempts = 2\n\n[routing]\nsaga_interval_ms = 100\n";
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", allowed);
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("pay,read");

    // Registration: every refused kind of address answers 400 webhook_url_not_allowed.
    for url in [
        "http://10.0.0.7/hooks",
        "http://172.16.5.4:8080/hooks",
        "http://192.168.1.10/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hooks",
        "http://0.0.0.0:80/hooks",
        "http://[::1]:8080/hooks",
        "http://[fd00::1]/hooks",
        "http://[fe80::1]/hooks",
        "http://[::ffff:10.0.0.1]/hooks",
    ] {
        let (status, e) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": url}));
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("webhook_url_not_allowed")), "{url}: {e}");
    }
    let listed = common::http_get_with_key(gw.api_port, "/v1/webhooks", Some(&key)).1;
    assert_eq!(listed["webhooks"], json!([]), "nothing was registered");

    // Allowed loopback: by address and by a name (resolved at each delivery).
    let by_address = Receiver::start(200);
    let by_name = Receiver::start(200);
    let target = Receiver::start(200);
    let redirecting = Receiver::start(302);
    *redirecting.location.lock().unwrap() = Some(target.url());
    let mut endpoints = vec![];
    for url in [by_address.url(), format!("http://localhost:{}/hooks", by_name.port), redirecting.url()] {
        let (status, hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": url}));
        assert_eq!(status, 201, "{url}: {hook}");
        endpoints.push(hook["endpoint_id"].as_str().unwrap().to_owned());
    }

    // Delivered to both; the redirect is not followed: a failed delivery, nothing at its target.
    let first = payout(&gw, &key, 20_000, 41);
    wait_for("payment.submitted at both receivers", MINUTE, || {
        !by_address.delivered("payment.submitted", &first).is_empty()
            && !by_name.delivered("payment.submitted", &first).is_empty()
    });
    wait_for("the redirected delivery failed", MINUTE, || {
        deliveries(&gw, &endpoints[2]).iter().any(|d| d["state"] == "failed")
    });
    let redirected = deliveries(&gw, &endpoints[2]);
    assert_eq!(redirected[0]["last_status"], 302, "{redirected:?}");
    assert_eq!(redirecting.hooks().len(), 1, "asked once, not retried");
    assert!(target.hooks().is_empty(), "the redirect was not followed");

    // The operator's endpoint is guarded too: a private operator_url stops the start.
    gw.stop();
    let config_path = gw.datadir.join("senderod.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let strict = config.replace("allow_private = [\"127.0.0.0/8\"]", "allow_private = []");
    assert_ne!(strict, config);
    std::fs::write(
        &config_path,
        strict.replace("[webhooks]\n", "[webhooks]\noperator_url = \"http://10.1.1.1/ops\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(SENDEROD).arg("--config").arg(&config_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("10.1.1.1"), "{stderr}");
    assert!(stderr.contains("operator_url") && stderr.contains("private"), "{stderr}");

    // Loopback no longer allowed: the endpoints registered while it was get nothing — the address
    // is checked again at every delivery, and the name resolved and checked before connecting.
    std::fs::write(&config_path, &strict).unwrap();
    gw.start_again();
    let (before_address, before_name) = (by_address.hooks().len(), by_name.hooks().len());
    let second = payout(&gw, &key, 20_000, 42);
    for endpoint in &endpoints[..2] {
        wait_for("the refused delivery recorded", MINUTE, || {
            deliveries(&gw, endpoint).iter().any(|d| d["payment_id"] == second.as_str() && d["state"] == "failed")
        });
        let refused: Vec<Value> =
            deliveries(&gw, endpoint).into_iter().filter(|d| d["payment_id"] == second.as_str()).collect();
        for d in &refused {
            assert_eq!(d["last_status"], Value::Null, "{d}");
            let error = d["last_error"].as_str().unwrap_or_default();
            assert!(error.starts_with("webhook_url_not_allowed") && error.contains("loopback"), "{d}");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(by_address.hooks().len(), before_address, "nothing sent to the address");
    assert_eq!(by_name.hooks().len(), before_name, "nothing sent to the name's address");
    let (status, e) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": by_address.url()}));
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("webhook_url_not_allowed")), "{e}");
}
