//! The outbox on NATS JetStream (issue 16, item 3) against a real `nats-server`: every outbox
//! event reaches a JetStream consumer exactly once by id — across senderod aborted between
//! JetStream's acknowledgement and its cursor (the events are published again, JetStream drops
//! them by `Nats-Msg-Id`), a nats-server restart with payouts made while it was away (the outbox
//! keeps them; the gateway says so once), and a SIGKILL while events flow. Subjects are
//! `sendero.<event type>`, payloads the events' JSON as webhooks carry it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use common::nats::NatsServer;
use common::{onchain_payout, settled, wait_for, AdminMode, Chain, Gateway};
use futures_util::StreamExt;
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// The outbox as the gateway's store holds it: event id → (type, payload).
fn outbox(gw: &Gateway) -> BTreeMap<String, (String, String)> {
    let conn = common::books(&gw.datadir);
    let mut stmt = conn.prepare("SELECT event_id, event_type, payload FROM outbox").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))).unwrap();
    rows.map(Result::unwrap).collect()
}

/// One consumed message.
struct Consumed {
    id: String,
    subject: String,
    event_type: String,
    payload: String,
}

/// Everything in the stream, through a durable pull consumer from its start, each message acked.
fn consume(url: &str) -> Vec<Consumed> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = jetstream::new(client);
        let stream = js.get_stream("SENDERO").await.unwrap();
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                "test-reader",
                jetstream::consumer::pull::Config { durable_name: Some("test-reader".into()), ..Default::default() },
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let mut batch =
                consumer.fetch().max_messages(500).expires(Duration::from_secs(1)).messages().await.unwrap();
            let before = out.len();
            while let Some(message) = batch.next().await {
                let message = message.unwrap();
                let headers = message.headers.clone().unwrap_or_default();
                let header = |name: &str| headers.get(name).map(|v| v.to_string()).unwrap_or_default();
                out.push(Consumed {
                    id: header("Nats-Msg-Id"),
                    subject: message.subject.to_string(),
                    event_type: header("Sendero-Event-Type"),
                    payload: String::from_utf8_lossy(&message.payload).into_owned(),
                });
                message.ack().await.unwrap();
            }
            if out.len() == before {
                return out;
            }
        }
    })
}

/// The stream's message count.
fn stream_messages(url: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let Ok(client) = async_nats::connect(url).await else { return 0 };
        let Ok(mut stream) = jetstream::new(client).get_stream("SENDERO").await else { return 0 };
        stream.info().await.map(|i| i.state.messages).unwrap_or(0)
    })
}

/// Waits until every payout was broadcast, then mines a block.
fn mine_when_sent(chain: &Chain, gw: &Gateway, key: &str, payouts: &[String]) {
    wait_for("every payout broadcast", MINUTE, || {
        payouts.iter().all(|id| !common::payment(gw, key, id)["txid"].is_null())
    });
    chain.mine(1);
}

#[test]
fn every_outbox_event_reaches_a_jetstream_consumer_exactly_once_across_crashes_and_a_nats_restart() {
    let chain = Chain::start();
    let mut nats = NatsServer::start();
    let home = tempfile::tempdir().unwrap();
    let extra = format!("[events]\nnats_url = \"{}\"\n\n[routing]\nsaga_interval_ms = 100\n", nats.url());
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", &extra);
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("pay,read");
    let mut payouts = Vec::new();
    let pay = |gw: &Gateway, payouts: &mut Vec<String>, n: u8| {
        payouts.push(onchain_payout(gw, &key, 20_000 + u64::from(n), n, &format!("events-{n}")));
    };

    // Aborted after JetStream acknowledged the first events, before the cursor was saved.
    gw.stop();
    gw.env.push(("SENDERO_FAILPOINT".into(), "events.published".into()));
    gw.start_again();
    pay(&gw, &mut payouts, 1);
    gw.wait_exit();
    gw.env.clear();
    gw.start_again();
    wait_for("the republished events dropped by JetStream", MINUTE, || {
        gw.log().contains("events: JetStream dropped events published before a restart")
    });

    // Running: payouts confirm, their events flow.
    for n in 2..=4 {
        pay(&gw, &mut payouts, n);
    }
    mine_when_sent(&chain, &gw, &key, &payouts);

    // nats-server goes away; payouts go on and their events wait in the outbox.
    nats.stop();
    for n in 5..=7 {
        pay(&gw, &mut payouts, n);
    }
    mine_when_sent(&chain, &gw, &key, &payouts);
    for id in &payouts {
        settled(&gw, &key, id);
    }
    wait_for("the gateway to notice", MINUTE, || gw.log().contains("events: cannot publish to JetStream"));
    nats.start_again();

    // SIGKILL while events flow, then the rest.
    for n in 8..=10 {
        pay(&gw, &mut payouts, n);
    }
    gw.kill();
    gw.start_again();
    mine_when_sent(&chain, &gw, &key, &payouts);
    for id in &payouts {
        settled(&gw, &key, id);
    }

    let expected = outbox(&gw);
    wait_for("every outbox event in the stream", MINUTE, || stream_messages(&nats.url()) >= expected.len() as u64);
    let consumed = consume(&nats.url());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &consumed {
        *seen.entry(c.id.clone()).or_default() += 1;
        let (event_type, payload) = expected.get(&c.id).unwrap_or_else(|| panic!("{} is not an outbox event", c.id));
        assert_eq!(&c.event_type, event_type);
        assert_eq!(c.subject, format!("sendero.{event_type}"));
        assert_eq!(&c.payload, payload, "{}", c.id);
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "consumed more than once: {twice:?}");
    let missing: Vec<_> = expected.keys().filter(|id| !seen.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never consumed: {missing:?}");
    let settled_events = consumed.iter().filter(|c| c.event_type == "payment.settled").count();
    assert_eq!(settled_events, payouts.len());

    // One line when NATS went away, one when it came back: no line repeating while it was away.
    let log = gw.log();
    let warns = log.lines().filter(|l| l.contains("events: cannot publish to JetStream")).count();
    assert!(warns <= 2, "{warns} warnings:\n{log}");
    eprintln!(
        "{} events consumed once each ({} payouts, {} settled events); {warns} publish warning(s)",
        consumed.len(),
        payouts.len(),
        settled_events
    );
}
