//! The public API's contract: an OpenAPI 3.1 document of every route, its parameters, bodies,
//! answers and error codes, the bearer-key scheme and each route's scopes. Served at
//! `GET /v1/openapi.json` and kept in the repository as `openapi.json` (`senderod --openapi`
//! prints it; a test fails when the file is stale, another when a route of the router is missing
//! here). The answers are checked against the live gateway by schemathesis in the test command.

use serde_json::{json, Map, Value};

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sendero payment gateway API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Quotes, payouts on the cheapest rail, invoices and webhooks of one self-hosted \
                Bitcoin/Lightning gateway. Money is integers: sats, msats and fiat minor units. Every \
                error is {\"error\": {\"code\", \"message\"}} with a stable code; a 503, 429 or 507 carries \
                Retry-After.",
        },
        "servers": [{"url": "http://127.0.0.1:8380"}],
        "security": [{"bearer": []}],
        "paths": linked(paths()),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API key (`sendero-cli apikey.create --scopes ...`). Each operation lists \
                    the scopes that may use it in x-scopes: a key with none of them gets 403, no key or an \
                    unknown or revoked one 401, a key beyond its rate limit 429.",
            }},
            "schemas": schemas(),
            "parameters": parameters(),
        },
    })
}

/// Why a payout (its route, its submit, a refund) cannot be served now: 503 with Retry-After.
const PAYOUT_UNAVAILABLE: &[&str] =
    &["lightning_starting", "channel_not_usable", "bitcoind_unavailable", "rate_unavailable", "node_unavailable"];

fn paths() -> Value {
    json!({
        "/v1/health": {"get": health()},
        "/v1/openapi.json": {"get": op("This document.", &[], None, &[("200", "The OpenAPI document", json!({"type": "object"}))], &[])},
        "/v1/fx/quote": {"get": quote()},
        "/v1/fx/execute": {"post": execute()},
        "/v1/payments/route": {"post": route()},
        "/v1/payments/submit": {"post": submit()},
        "/v1/payments": {"get": list("payments", "Payment", &["read", "pay"], &["SUBMITTED", "PENDING", "SETTLED", "FAILED"])},
        "/v1/payments/{id}": {"get": get_one("Payment", &["read", "pay"], "payment_not_found")},
        "/v1/invoices": {"post": invoice_create(), "get": list("invoices", "Invoice", &["invoice", "read"], &crate::api::invoices_list::STATUSES)},
        "/v1/invoices/{id}": {"get": get_one("Invoice", &["invoice", "read"], "invoice_not_found")},
        "/v1/invoices/{id}/refund": {"post": refund()},
        "/v1/webhooks": {"post": webhook_create(), "get": webhook_list()},
        "/v1/webhooks/{id}": {"delete": webhook_delete()},
    })
}

/// Names every operation (`operationId`: method and path) and links the answers a client uses
/// next: a quote to its execution, a route to its submit, a submit to the payment, an invoice
/// and a webhook endpoint to their own routes.
fn linked(mut paths: Value) -> Value {
    for (path, ops) in paths.as_object_mut().into_iter().flatten() {
        for (method, op) in ops.as_object_mut().into_iter().flatten() {
            let name = path.trim_start_matches("/v1/").replace(['/', '.'], "_").replace(['{', '}'], "");
            op["operationId"] = json!(format!("{method}_{name}"));
        }
    }
    let links = [
        (
            "/v1/fx/quote",
            "get",
            "200",
            "execute",
            json!({"operationId": "post_fx_execute",
            "requestBody": {"quote_id": "$response.body#/quote_id", "pair": "$response.body#/pair", "amount_minor": "$response.body#/amount_minor"}}),
        ),
        (
            "/v1/payments/route",
            "post",
            "200",
            "submit",
            json!({"operationId": "post_payments_submit",
            "requestBody": {"route_id": "$response.body#/route_id", "rail": "$response.body#/recommend"}}),
        ),
        (
            "/v1/payments/submit",
            "post",
            "202",
            "payment",
            json!({"operationId": "get_payments_id", "parameters": {"id": "$response.body#/payment_id"}}),
        ),
        (
            "/v1/invoices",
            "post",
            "201",
            "invoice",
            json!({"operationId": "get_invoices_id", "parameters": {"id": "$response.body#/invoice_id"}}),
        ),
        (
            "/v1/webhooks",
            "post",
            "201",
            "delete",
            json!({"operationId": "delete_webhooks_id", "parameters": {"id": "$response.body#/endpoint_id"}}),
        ),
    ];
    for (path, method, status, name, link) in links {
        paths[path][method]["responses"][status]["links"][name] = link;
    }
    paths
}

/// An operation: summary, scopes (none: no key needed), request body schema, the successful
/// answers `(status, description, schema)`, and the error answers `(status, codes)`.
fn op(
    summary: &str,
    scopes: &[&str],
    body: Option<Value>,
    ok: &[(&str, &str, Value)],
    errors: &[(&str, &[&str])],
) -> Value {
    let mut responses = Map::new();
    for (status, description, schema) in ok {
        let answer = if schema.is_null() {
            json!({"description": description})
        } else {
            json!({"description": description, "content": {"application/json": {"schema": schema}}})
        };
        responses.insert((*status).into(), answer);
    }
    let mut errors: Vec<(&str, Vec<&str>)> = errors.iter().map(|(s, c)| (*s, c.to_vec())).collect();
    if !scopes.is_empty() {
        errors.push(("401", vec!["unauthorized"]));
        errors.push(("403", vec!["forbidden"]));
        errors.push(("429", vec!["rate_limited"]));
        errors.push(("507", vec!["storage_full"]));
    }
    errors.push(("404", vec!["not_found"]));
    errors.push(("405", vec!["method_not_allowed"]));
    errors.push(("408", vec!["request_timeout"]));
    errors.push(("413", vec!["body_too_large"]));
    errors.push(("415", vec!["unsupported_media_type"]));
    errors.push(("500", vec!["internal"]));
    for (status, codes) in errors {
        let entry = responses.entry(status).or_insert_with(|| error_response(&[]));
        let known = entry["x-error-codes"].as_array().cloned().unwrap_or_default();
        let mut all: Vec<Value> = known;
        all.extend(codes.iter().map(|c| Value::from(*c)));
        *entry = error_response(&all.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    }
    let mut v = json!({"summary": summary, "responses": responses, "x-scopes": scopes});
    if scopes.is_empty() {
        v["security"] = json!([]);
    }
    if let Some(schema) = body {
        v["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    v
}

fn error_response(codes: &[&str]) -> Value {
    json!({
        "description": format!("Error: {}", codes.join(", ")),
        "x-error-codes": codes,
        "headers": {"Retry-After": {"description": "Seconds to wait (429, 503, 507)", "schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// `(operation with parameters)`: adds `$ref` parameters by name.
fn with_params(mut op: Value, names: &[&str]) -> Value {
    op["parameters"] = names.iter().map(|n| json!({"$ref": format!("#/components/parameters/{n}")})).collect();
    op
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn health() -> Value {
    let health = reference("Health");
    op(
        "Whether bitcoind is reachable on the right chain (200, `ok` or `degraded` with alarms) or not (503, `unavailable`).",
        &[],
        None,
        &[("200", "Serving", health.clone()), ("503", "bitcoind unreachable or on another chain", health)],
        &[],
    )
}

fn quote() -> Value {
    let errors: &[(&str, &[&str])] = &[
        ("400", &["invalid_request", "invalid_amount", "invalid_side", "unsupported_currency", "unsupported_pair"]),
        ("503", &["rate_unavailable"]),
    ];
    let op = op(
        "An FX quote: the rate, moved against the client by the markup, with its expiry.",
        &["quote"],
        None,
        &[("200", "The quote", reference("Quote"))],
        errors,
    );
    with_params(op, &["base", "quote", "side", "amount_minor"])
}

fn execute() -> Value {
    let body = json!({"type": "object", "required": ["quote_id", "pair", "amount_minor"], "properties": {
        "quote_id": {"type": "string"}, "pair": {"type": "string"}, "amount_minor": {"type": "integer", "minimum": 0}}});
    let ok = json!({"type": "object", "required": ["status", "avg_rate", "fx_entry_id"], "properties": {
        "status": {"const": "filled"}, "avg_rate": {"type": "string"}, "fx_entry_id": {"type": "string"}}});
    let errors: &[(&str, &[&str])] = &[
        (
            "400",
            &["invalid_request", "invalid_amount", "idempotency_key_required", "quote_mismatch", "unsupported_pair"],
        ),
        ("404", &["quote_not_found"]),
        ("409", &["requote_required", "quote_already_filled", "quote_reserved", "idempotency_in_flight"]),
        ("410", &["quote_expired"]),
        ("422", &["fx_budget_exceeded", "idempotency_mismatch"]),
        ("503", &["rate_unavailable"]),
    ];
    with_params(
        op("Fills a quote (a trade at its rate).", &["pay"], Some(body), &[("200", "Filled", ok)], errors),
        &["idempotency_key"],
    )
}

fn route() -> Value {
    let body = json!({"type": "object", "required": ["amount", "destination"], "properties": {
        "amount": reference("Amount"),
        "destination": {"type": "string", "description": "An address, a BOLT11 invoice, a BOLT12 offer, a node id (keysend) or a BIP21 URI",
            "examples": ["bcrt1qs76af50mxrhccpz4cmw7ucus2xe40qkruzxztw"]},
        "direction": {"const": "payout"},
        "priority": {"enum": ["high", "normal", "low"]},
        "fx_quote_id": {"type": "string"},
        "method": {"type": "string", "description": "crypto, bitcoin, onchain, lightning or on_us"},
        "geo": {"type": "string", "description": "ISO 3166 alpha-2"}}});
    let errors: &[(&str, &[&str])] = &[
        (
            "400",
            &[
                "invalid_request",
                "invalid_amount",
                "destination_required",
                "invalid_destination",
                "wrong_network",
                "invoice_expired",
                "amount_mismatch",
                "invalid_geo",
                "invalid_priority",
                "quote_mismatch",
                "unsupported_currency",
                "unsupported_pair",
            ],
        ),
        ("404", &["quote_not_found"]),
        ("409", &["quote_already_filled"]),
        ("410", &["quote_expired"]),
        ("422", &["insufficient_funds", "no_route", "treasury_reserve", "method_not_supported", "quote_side_mismatch"]),
        ("503", PAYOUT_UNAVAILABLE),
    ];
    op(
        "Prices a payout on every rail and recommends one.",
        &["pay"],
        Some(body),
        &[("200", "The route", reference("Route"))],
        errors,
    )
}

fn submit() -> Value {
    let body = json!({"type": "object", "required": ["route_id"], "properties": {
        "route_id": {"type": "string"},
        "rail": {"enum": ["onchain", "onchain_batch", "lightning", "on_us"]},
        "psp": {"type": "string", "description": "The seed's name for the rail"},
        "fx_quote_id": {"type": "string"}}});
    let accepted = json!({"type": "object", "required": ["payment_id", "status"], "properties": {
        "payment_id": {"type": "string"}, "status": {"type": "string"}}});
    let errors: &[(&str, &[&str])] = &[
        (
            "400",
            &[
                "invalid_request",
                "invalid_rail",
                "idempotency_key_required",
                "quote_mismatch",
                "invalid_destination",
                "invoice_expired",
            ],
        ),
        ("404", &["route_not_found"]),
        ("409", &["route_already_submitted", "quote_already_used", "duplicate_payment", "idempotency_in_flight"]),
        ("410", &["route_expired", "quote_expired"]),
        (
            "422",
            &[
                "insufficient_funds",
                "rail_not_offered",
                "rail_disabled",
                "treasury_reserve",
                "limit_exceeded",
                "destination_not_allowed",
                "idempotency_mismatch",
            ],
        ),
        ("503", PAYOUT_UNAVAILABLE),
    ];
    with_params(
        op(
            "Submits a priced route: the payout is debited and paid exactly once.",
            &["pay"],
            Some(body),
            &[("202", "Accepted", accepted)],
            errors,
        ),
        &["idempotency_key"],
    )
}

fn list(field: &str, item: &str, scopes: &[&str], statuses: &[&str]) -> Value {
    let page = json!({"type": "object", "required": [field, "next_cursor"], "properties": {
        field: {"type": "array", "items": reference(item)}, "next_cursor": {"type": ["string", "null"]}}});
    let errors: &[(&str, &[&str])] = &[("400", &["invalid_status", "invalid_limit", "invalid_request"])];
    let mut op = with_params(
        op(
            &format!("This key's {field}, newest first, a page at a time."),
            scopes,
            None,
            &[("200", "A page", page)],
            errors,
        ),
        &["cursor", "limit"],
    );
    if let Some(params) = op["parameters"].as_array_mut() {
        params.push(json!({"name": "status", "in": "query", "required": false, "schema": {"enum": statuses}}));
    }
    op
}

fn get_one(item: &str, scopes: &[&str], not_found: &str) -> Value {
    let errors: &[(&str, &[&str])] = &[("404", &[not_found])];
    with_params(
        op(
            &format!("One of this key's {}s (another key's: 404).", item.to_lowercase()),
            scopes,
            None,
            &[("200", item, reference(item))],
            errors,
        ),
        &["id"],
    )
}

fn invoice_create() -> Value {
    let body = json!({"type": "object", "required": ["amount", "description"], "properties": {
        "amount": reference("Amount"),
        "description": {"type": "string"},
        "expiry_secs": {"type": "integer", "minimum": crate::invoice::MIN_EXPIRY_SECS, "maximum": crate::invoice::MAX_EXPIRY_SECS},
        "metadata": {},
        "speed": {"enum": ["high", "medium", "low"]}}});
    let errors: &[(&str, &[&str])] = &[
        (
            "400",
            &[
                "invalid_request",
                "invalid_amount",
                "invalid_currency",
                "invalid_description",
                "invalid_speed",
                "invalid_metadata",
                "idempotency_key_required",
                "unsupported_currency",
                "unsupported_pair",
            ],
        ),
        ("409", &["idempotency_in_flight"]),
        ("422", &["idempotency_mismatch"]),
        ("503", &["rate_unavailable", "lightning_starting", "bitcoind_unavailable", "node_unavailable"]),
    ];
    with_params(
        op(
            "An invoice priced in sats at a quote, payable on-chain or over Lightning (one BIP21).",
            &["invoice"],
            Some(body),
            &[("201", "Created", reference("Invoice"))],
            errors,
        ),
        &["idempotency_key"],
    )
}

fn refund() -> Value {
    let amount = json!({"oneOf": [{"enum": ["rate_then", "current_rate"]}, reference("Amount")]});
    let body = json!({"type": "object", "required": ["destination", "amount"], "properties": {
        "destination": {"type": "string", "examples": ["bcrt1qs76af50mxrhccpz4cmw7ucus2xe40qkruzxztw"]},
        "amount": amount,
        "priority": {"enum": ["high", "normal", "low"]},
        "rail": {"enum": ["onchain", "onchain_batch", "lightning", "on_us"]}}});
    let accepted = json!({"type": "object", "required": ["payment_id", "status", "invoice_id", "mode", "rail", "amount_sat"], "properties": {
        "payment_id": {"type": "string"}, "status": {"type": "string"}, "invoice_id": {"type": "string"},
        "mode": {"type": "string"}, "rail": {"type": "string"}, "destination": {"type": "string"},
        "amount_sat": {"type": "integer", "minimum": 0}, "amount_msat": {"type": "integer", "minimum": 0},
        "amount": reference("Amount"), "fx_quote_id": {"type": ["string", "null"]}}});
    let errors: &[(&str, &[&str])] = &[
        (
            "400",
            &[
                "invalid_request",
                "invalid_amount",
                "destination_required",
                "invalid_destination",
                "invalid_priority",
                "invalid_rail",
                "idempotency_key_required",
                "unsupported_currency",
                "unsupported_pair",
            ],
        ),
        ("404", &["invoice_not_found"]),
        ("409", &["nothing_received", "idempotency_in_flight", "duplicate_payment"]),
        (
            "422",
            &[
                "refund_exceeds_received",
                "insufficient_funds",
                "no_route",
                "rail_not_offered",
                "treasury_reserve",
                "limit_exceeded",
                "destination_not_allowed",
                "idempotency_mismatch",
            ],
        ),
        ("503", PAYOUT_UNAVAILABLE),
    ];
    let summary = "Refunds an invoice (at the invoice's rate, the current rate or an amount) as a payout, capped at what it received.";
    with_params(op(summary, &["pay"], Some(body), &[("202", "Accepted", accepted)], errors), &["id", "idempotency_key"])
}

fn webhook_create() -> Value {
    let body = json!({"type": "object", "required": ["url", "events"], "properties": {
        "url": {"type": "string", "format": "uri"}, "events": {"type": "array", "items": {"type": "string"}}}});
    let created = json!({"allOf": [reference("WebhookEndpoint"), {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}}]});
    let errors: &[(&str, &[&str])] =
        &[("400", &["invalid_request", "invalid_url", "invalid_event", "webhook_url_not_allowed"])];
    op(
        "Registers an endpoint for signed Standard Webhooks; the secret is shown once.",
        &["read", "quote", "invoice", "pay"],
        Some(body),
        &[("201", "Registered", created)],
        errors,
    )
}

fn webhook_list() -> Value {
    let page = json!({"type": "object", "required": ["webhooks"], "properties": {"webhooks": {"type": "array", "items": reference("WebhookEndpoint")}}});
    op(
        "This key's webhook endpoints.",
        &["read", "quote", "invoice", "pay"],
        None,
        &[("200", "The endpoints", page)],
        &[],
    )
}

fn webhook_delete() -> Value {
    let errors: &[(&str, &[&str])] = &[("404", &["webhook_not_found"])];
    with_params(
        op(
            "Deletes one of this key's endpoints.",
            &["read", "quote", "invoice", "pay"],
            None,
            &[("204", "Deleted", Value::Null)],
            errors,
        ),
        &["id"],
    )
}

fn parameters() -> Value {
    let query = |name: &str, required: bool, schema: Value| json!({"name": name, "in": "query", "required": required, "schema": schema});
    json!({
        "idempotency_key": {"name": "X-Idempotency-Key", "in": "header", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Same key and body: the stored answer, byte for byte; another body: 422 idempotency_mismatch."},
        "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        "cursor": query("cursor", false, json!({"type": "string"})),
        "limit": query("limit", false, json!({"type": "integer", "minimum": 1, "maximum": 100})),
        "base": query("base", true, json!({"type": "string", "examples": ["EUR"]})),
        "quote": query("quote", true, json!({"type": "string", "examples": ["BTC"]})),
        "side": query("side", true, json!({"enum": ["buy", "sell"]})),
        "amount_minor": query("amount_minor", true, json!({"type": "integer", "minimum": 0})),
    })
}

/// `/v1/health`'s answer: the status, open alarms, bitcoind, the wallet's sync and the Lightning
/// node (one of `disabled`, `starting` or `running`, each with its own fields).
fn health_schema() -> Value {
    let int = json!({"type": "integer", "minimum": 0});
    let opt_int = json!({"type": ["integer", "null"], "minimum": 0});
    let restarts = json!({"type": "integer", "minimum": 0, "description": "Times the node was stopped and started again since the daemon started because its background processing died (ldk-node could not write its state: a full disk); each is logged at ERROR"});
    let last_failure =
        json!({"type": ["string", "null"], "description": "The error ldk-node's background processing last died with"});
    json!({"type": "object", "required": ["status", "alarms", "network", "bitcoind", "wallet", "lightning"], "properties": {
        "status": {"enum": ["ok", "degraded", "unavailable"]},
        "alarms": {"type": "array", "description": "Open alarms (`degraded` while there is one)", "items": {
            "type": "object", "required": ["kind", "channel_id", "counterparty_node_id", "reason", "raised_at", "acknowledged_at"], "properties": {
                "kind": {"enum": ["channel.closed_unexpectedly"]}, "channel_id": {"type": "string"},
                "counterparty_node_id": {"type": "string"}, "reason": {"type": "string", "description": "ldk-node's closure reason"},
                "raised_at": {"type": "integer", "minimum": 0, "description": "Unix seconds"}, "acknowledged_at": opt_int}}},
        "network": {"type": "string"},
        "bitcoind": {"type": "object", "required": ["reachable", "chain_height", "headers", "initial_block_download", "error"], "properties": {
            "reachable": {"type": "boolean"}, "chain_height": opt_int, "headers": opt_int,
            "initial_block_download": {"type": "boolean"}, "error": {"type": ["string", "null"], "description": "Why the last poll failed"}}},
        "wallet": {"type": "object", "required": ["synced_height", "synced"], "properties": {
            "synced_height": int, "synced": {"type": "boolean", "description": "The wallet has applied every block bitcoind has"}}},
        "lightning": {"oneOf": [
            {"type": "object", "required": ["state"], "properties": {"state": {"enum": ["disabled"]}}},
            {"type": "object", "required": ["state", "waiting_for_bitcoind", "failed_starts", "last_error", "next_attempt_in_s", "restarts", "last_failure"], "properties": {
                "state": {"enum": ["starting"]}, "waiting_for_bitcoind": {"type": "boolean"}, "failed_starts": int,
                "last_error": {"type": ["string", "null"], "description": "Why the last start failed"},
                "next_attempt_in_s": {"type": ["integer", "null"], "minimum": 0, "description": "Seconds to the next try after a failed start"},
                "restarts": restarts.clone(), "last_failure": last_failure.clone()}},
            {"type": "object", "required": ["state", "node_id", "listening_addresses", "best_block_height", "peers", "channels", "usable_channels", "outbound_msat", "inbound_msat", "restarts", "last_failure"], "properties": {
                "state": {"enum": ["running"]}, "node_id": {"type": "string"}, "restarts": restarts, "last_failure": last_failure,
                "listening_addresses": {"type": "array", "items": {"type": "string"}}, "best_block_height": int,
                "peers": int, "channels": int, "usable_channels": int,
                "outbound_msat": {"type": "integer", "minimum": 0, "description": "What usable channels can send now"},
                "inbound_msat": {"type": "integer", "minimum": 0, "description": "What usable channels can receive now"}}}]}}})
}

fn schemas() -> Value {
    let int = json!({"type": "integer", "minimum": 0});
    let opt_int = json!({"type": ["integer", "null"], "minimum": 0});
    let opt_text = json!({"type": ["string", "null"]});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "retry_after_sec": int}}}},
        "Amount": {"type": "object", "required": ["minor_units", "currency"], "properties": {
            "minor_units": {"type": "integer", "minimum": 0, "examples": [25_000]},
            "currency": {"type": "string", "description": "SAT, BTC or a fiat currency the gateway quotes", "examples": ["SAT", "EUR"]}}},
        "Health": health_schema(),
        "Quote": {"type": "object", "required": ["pair", "rate", "markup_bps", "expires_at", "quote_id", "amount_minor", "amount_sat"], "properties": {
            "pair": {"type": "string"}, "rate": {"type": "string"}, "markup_bps": int, "expires_at": {"type": "string"},
            "quote_id": {"type": "string"}, "amount_minor": int, "quote_amount_minor": int, "amount_sat": int}},
        "Route": {"type": "object", "required": ["route_id", "expires_at", "candidates", "recommend", "unavailable"], "properties": {
            "route_id": {"type": "string"}, "expires_at": {"type": "string"}, "destination_kind": {"type": "string"},
            "amount": reference("Amount"), "amount_sat": int, "amount_msat": int, "fx_quote_id": opt_text,
            "priority": {"type": "string"}, "eta_bound_sec": int,
            "candidates": {"type": "array", "items": {"type": "object", "required": ["rail", "psp", "cost_sat", "eta_sec"], "properties": {
                "rail": {"type": "string"}, "psp": {"type": "string"}, "cost_sat": int, "eta_sec": int,
                "fee_rate_sat_vb": int, "fee_rate_sat_kvb": int, "vsize": int}}},
            "recommend": opt_text,
            "unavailable": {"type": "array", "items": {"type": "object", "required": ["rail", "code", "message"], "properties": {
                "rail": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
            "method": opt_text, "geo": opt_text}},
        "Payment": {"type": "object", "required": ["payment_id", "status", "state", "rail", "route_id", "destination", "amount", "amount_msat", "amount_sat", "created_at", "updated_at"], "properties": {
            "payment_id": {"type": "string"}, "status": {"enum": ["SUBMITTED", "PENDING", "SETTLED", "FAILED"]}, "state": {"type": "string"},
            "rail": {"enum": ["onchain", "onchain_batch", "lightning", "on_us"]}, "route_id": {"type": "string"}, "destination": {"type": "string"},
            "amount": reference("Amount"), "amount_msat": int, "amount_sat": int, "fx_quote_id": opt_text,
            "fee_paid_msat": opt_int, "fee_paid_sat": opt_int, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
            "final_at": opt_text, "txid": opt_text, "payment_hash": opt_text,
            "fee_rate_sat_vb": opt_int, "fee_rate_sat_kvb": opt_int,
            "failure": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}, "message": opt_text}},
            "waiting_for_fees": {"type": "object"}}},
        "Invoice": {"type": "object", "required": ["invoice_id", "status", "amount", "amount_sat", "address", "bip21", "received_msat", "expires_at", "created_at"], "properties": {
            "invoice_id": {"type": "string"}, "status": {"type": "string"}, "exception": opt_text, "amount": reference("Amount"),
            "amount_sat": int, "fx_quote_id": opt_text, "rate": opt_text, "description": {"type": "string"}, "metadata": {},
            "speed": {"type": "string"}, "address": {"type": "string"}, "bolt11": opt_text, "payment_hash": opt_text,
            "bip21": {"type": "string"}, "received_msat": int, "received_minor_units": int, "paid_via": opt_text,
            "expires_at": {"type": "string"}, "created_at": {"type": "string"}}},
        "WebhookEndpoint": {"type": "object", "required": ["endpoint_id", "url", "events", "state", "created_at"], "properties": {
            "endpoint_id": {"type": "string"}, "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
            "state": {"enum": ["enabled", "disabled"]}, "disabled_reason": opt_text, "created_at": int}},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::document;

    /// `(method, path)` of every route in the router (`api/mod.rs`).
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut routes = BTreeSet::new();
        for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
            let path = line.split('"').nth(1).unwrap_or_default().to_owned();
            for method in ["get", "post", "delete", "put", "patch"] {
                if line.contains(&format!("{method}(")) || line.contains(&format!("::{method}(")) {
                    routes.insert((method.to_owned(), path.replace(":id", "{id}")));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_is_in_the_contract_and_nothing_else() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, ops)| ops.as_object().into_iter().flatten().map(move |(m, _)| (m.clone(), path.clone())))
            .collect();
        let routed = routed();
        assert!(routed.len() >= 14, "{routed:?}");
        assert_eq!(documented, routed);
    }

    #[test]
    fn the_repository_copy_is_up_to_date() {
        let stored: serde_json::Value =
            serde_json::from_str(include_str!("../../../openapi.json")).unwrap_or(serde_json::Value::Null);
        assert!(
            stored == document(),
            "openapi.json is stale: run `cargo run -p sendero --bin senderod -- --openapi > openapi.json`"
        );
    }

    #[test]
    fn every_operation_answers_errors_in_one_shape_and_says_who_may_call_it() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let responses = op["responses"].as_object().cloned().unwrap_or_default();
                for status in ["404", "405", "413", "415", "500"] {
                    let r = &responses[status];
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
                let scopes = op["x-scopes"].as_array().map(Vec::len).unwrap_or_default();
                assert_eq!(scopes == 0, op["security"] == serde_json::json!([]), "{method} {path}");
                if scopes > 0 {
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403") && responses.contains_key("429")
                    );
                }
            }
        }
    }
}
