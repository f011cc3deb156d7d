//! FX quotes through the real HTTP API of a real senderod: scoped API keys made with
//! `sendero-cli`, quotes from the static rate table priced against the client and persisted, and
//! every refusal with its status and stable code.

mod common;

use common::{http_get_with_key, AdminMode, Chain, Gateway};

const FX: &str = r#"[fx]
pairs = ["BTC/EUR", "BTC/USD", "BTC/GBP"]
static_rates = { "BTC/EUR" = "85000", "BTC/USD" = "98000.5" }
markup_bps = 50
quote_ttl_secs = 30
"#;

#[test]
fn quotes_are_priced_against_the_client_for_keys_with_the_scope() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", FX);
    let get = |path: &str, key: Option<&str>| http_get_with_key(gw.api_port, path, key);

    let created = gw.cli(&["apikey.create", "--label", "shop", "--scopes", "quote,pay"]);
    assert_eq!(created["scopes"], serde_json::json!(["quote", "pay"]));
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let invoice_only =
        gw.cli(&["apikey.create", "--label", "pos", "--scopes", "invoice"])["key"].as_str().unwrap().to_owned();

    let eur = "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000";
    assert_eq!(get(eur, None).0, 401);
    assert_eq!(get(eur, Some("sk_not_a_key")).1["error"]["code"], "unauthorized");
    let (status, body) = get(eur, Some(&invoice_only));
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    // 1,000.00 EUR bought with BTC at 1/85,000 BTC per EUR, marked up 50 bps against the client:
    // the client pays ceil(1000 × 1.005 / 85000 BTC) in sats.
    let (status, q) = get(eur, Some(&key));
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["pair"], "EUR/BTC");
    assert_eq!(q["rate"], "0.00001182353");
    assert_eq!(q["markup_bps"], 50);
    assert_eq!(q["amount_minor"], 100_000);
    let exact = |num: u128, den: u128, up: bool| if up { num.div_ceil(den) } else { num / den };
    let sats = exact(100_000 * 100_000_000 * 10_050, 100 * 85_000 * 10_000, true);
    assert_eq!(q["amount_sat"], sats as u64);
    assert_eq!(sats, 1_182_353);
    let expires = chrono::DateTime::parse_from_rfc3339(q["expires_at"].as_str().unwrap()).unwrap().timestamp();
    let now = chrono::Utc::now().timestamp();
    assert!((25..=31).contains(&(expires - now)), "expires in {} s", expires - now);
    let quote_id = q["quote_id"].as_str().unwrap().to_owned();
    assert!(quote_id.starts_with("q_"));
    let conn = common::books(&gw.datadir);
    // Quotes are written in batches a few milliseconds after they are served.
    let stored = || {
        conn.query_row("SELECT api_key_id, amount_sat FROM fx_quotes WHERE quote_id = ?1", [&quote_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
    };
    common::wait_for("the quote to be stored", std::time::Duration::from_secs(5), || stored().is_ok());
    let (owner, stored_sat) = stored().unwrap();
    assert_eq!((owner, stored_sat as u128), (key_id.clone(), sats));

    // The other direction: the client sells 1,000,000 sat for EUR at 85,000 × 0.995.
    let (status, q) = get("/v1/fx/quote?base=BTC&quote=EUR&side=sell&amount_minor=1000000", Some(&key));
    assert_eq!(status, 200, "{q}");
    assert_eq!((q["pair"].as_str(), q["rate"].as_str()), (Some("BTC/EUR"), Some("84575")));
    assert_eq!((q["quote_amount_minor"].as_u64(), q["amount_sat"].as_u64()), (Some(84_575), Some(1_000_000)));

    // A decimal rate, selling USD for sats: rounded down, in the gateway's favour.
    let (_, q) = get("/v1/fx/quote?base=USD&quote=BTC&side=sell&amount_minor=5000", Some(&key));
    let sats = exact(5_000 * 100_000_000 * 9_950 * 10, 100 * 980_005 * 10_000, false);
    assert_eq!(q["amount_sat"], sats as u64, "{q}");

    // Refusals, each with its status and code.
    let refused = |path: &str| {
        let (status, body) = get(path, Some(&key));
        (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(refused("/v1/fx/quote?base=GBP&quote=BTC&side=buy&amount_minor=100"), (503, "rate_unavailable".into()));
    assert_eq!(refused("/v1/fx/quote?base=EUR&quote=USD&side=buy&amount_minor=100"), (400, "unsupported_pair".into()));
    assert_eq!(
        refused("/v1/fx/quote?base=XYZ&quote=BTC&side=buy&amount_minor=100"),
        (400, "unsupported_currency".into())
    );
    assert_eq!(refused("/v1/fx/quote?base=EUR&quote=BTC&side=hold&amount_minor=100"), (400, "invalid_side".into()));
    assert_eq!(refused("/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=-5"), (400, "invalid_amount".into()));
    assert_eq!(refused("/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=0"), (400, "invalid_amount".into()));
    assert_eq!(refused("/v1/fx/quote?quote=BTC&side=buy&amount_minor=100"), (400, "invalid_request".into()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM fx_quotes", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 3, "refused requests record no quote");

    // Keys are listed without secrets; a revoked key is refused from then on.
    let listed = gw.cli(&["apikey.list"]);
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&key));
    gw.cli(&["apikey.revoke", "--id", &key_id]);
    assert_eq!(get(eur, Some(&key)).0, 401);
    let listed = gw.cli(&["apikey.list"]);
    let revoked: Vec<(&str, bool)> = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["label"].as_str().unwrap(), k["revoked"].as_bool().unwrap()))
        .collect();
    assert!(revoked.contains(&("shop", true)) && revoked.contains(&("pos", false)), "{listed}");
}
