//! The dashboard's HTML: the login form and the page of figures. Every string from data is
//! escaped; every figure a test reads carries `data-figure="<section>.<key>"` and shows its
//! integer with thousands separators.

use std::fmt::Write;

use serde_json::Value;

use super::figures::{Fees, Figures, Payouts, Rates, Section};
use super::plot;
use super::text::{esc, sep};
use crate::webhook::Backlog;

/// Saga states in the order a payout goes through them.
const STATES: [&str; 6] = ["submitted", "debited", "sending", "sent", "settled", "failed"];

const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;margin:24px;color:#1d2733;background:#f6f7f9}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccd3db}\
table{border-collapse:collapse;background:#fff;margin:4px 0}td,th{padding:4px 10px;border:1px solid #dde3e9;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#66717d;font-size:13px}\
.unavailable{color:#a12a2a}.ok{color:#1c7a38}.stale,.missing{color:#9a6400}.failing{color:#a12a2a}\
.bar{display:flex;width:260px;height:14px;border:1px solid #99a4b0;background:#fff}\
.out{background:#2f6fb2}.in{background:#a8c8e8}\
svg.plot{background:#fff;border:1px solid #dde3e9}svg text{font-size:12px;fill:#1d2733}\
.axis{stroke:#66717d}polyline.paid{stroke:#2f6fb2;stroke-width:2}polyline.one-by-one{stroke:#c0582b;stroke-width:2;stroke-dasharray:6 3}\
text.paid{fill:#2f6fb2}text.one-by-one{fill:#c0582b}form.inline{display:inline}\
input[type=password]{width:34em;padding:4px}button{padding:4px 12px}";

/// A table cell holding figure `name`.
fn fig(name: &str, value: u64) -> String {
    format!("<td class=\"n\" data-figure=\"{}\">{}</td>", esc(name), sep(value))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style>",
        esc(title)
    )
}

/// The login form, with `problem` when the last attempt failed.
pub(super) fn login(cookie_path: &str, problem: Option<&str>) -> String {
    let mut out = head("Sendero — log in");
    out.push_str("</head><body><h1>Sendero operator dashboard</h1>");
    if let Some(p) = problem {
        let _ = write!(out, "<p class=\"unavailable\" id=\"problem\">{}</p>", esc(p));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/login\"><p><label for=\"cookie\">admin cookie</label></p>\
         <p><input type=\"password\" id=\"cookie\" name=\"cookie\" autocomplete=\"off\" autofocus> <button type=\"submit\">Log in</button></p>\
         <p class=\"muted\">The cookie is in the data dir: <code>cat {}</code>. Or open a one-time link from \
         <code>sendero-cli dashboard.login_url</code>.</p></form></body></html>",
        esc(cookie_path)
    );
    out
}

/// The page of figures.
pub(super) fn dashboard(f: &Figures) -> String {
    let mut out = head("Sendero — operator dashboard");
    let _ = write!(
        out,
        "<meta http-equiv=\"refresh\" content=\"15\"></head><body><h1>Sendero operator dashboard</h1>\
         <div class=\"muted\">{} · read at {} · refreshes every 15 s · \
         <form class=\"inline\" method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form></div>",
        esc(&f.network),
        esc(&crate::rfc3339(f.now))
    );
    section(&mut out, "Balances per rail", &f.treasury, treasury);
    section(&mut out, "Channels", &f.channels, channels);
    section(&mut out, "Payouts", &f.payouts, payouts);
    section(&mut out, "Fees: paid against one transaction per payout (last 24 h)", &f.fees, fees);
    section(&mut out, "Batch queue", &f.batch, batch);
    section(&mut out, "Webhook backlog", &f.webhooks, |b| webhooks(b, f.now));
    out.push_str("<h2>Rate sources</h2>");
    out.push_str(&rates(&f.rates));
    out.push_str("</body></html>");
    out
}

/// `<h2>title</h2>` and the section, or why it is unavailable.
fn section<T>(out: &mut String, title: &str, figures: &Section<T>, render: impl FnOnce(&T) -> String) {
    let _ = write!(out, "<h2>{}</h2>", esc(title));
    match figures {
        Ok(f) => out.push_str(&render(f)),
        Err(why) => {
            let _ = write!(out, "<p class=\"unavailable\">unavailable: {}</p>", esc(why));
        }
    }
}

fn treasury(rails: &Vec<Value>) -> String {
    let mut out = String::from(
        "<table><tr><th>rail</th><th>held (sat)</th><th>in flight (sat)</th><th>free (sat)</th>\
         <th>reserve (sat)</th><th>takes payouts</th></tr>",
    );
    for r in rails {
        let rail = r["rail"].as_str().unwrap_or_default();
        let _ = write!(out, "<tr><td>{}</td>", esc(rail));
        for key in ["held_sat", "reserved_sat", "free_sat", "reserve_sat"] {
            out.push_str(&fig(&format!("treasury.{rail}.{key}"), num(&r[key])));
        }
        let accepting = if r["accepting"] == true { "yes" } else { "no" };
        let _ = write!(out, "<td>{accepting}</td></tr>");
    }
    out.push_str("</table>");
    out
}

/// A bar split between what the channel can send (dark) and receive (light), in tenths of a
/// percent of their sum.
fn liquidity_bar(outbound_msat: u64, inbound_msat: u64) -> String {
    let total = (outbound_msat as u128 + inbound_msat as u128).max(1);
    let out_permille = (outbound_msat as u128 * 1_000 / total) as u64;
    let in_permille = 1_000 - out_permille.min(1_000);
    format!(
        "<div class=\"bar\" title=\"outbound {}.{}% / inbound {}.{}%\"><div class=\"out\" style=\"width:{}.{}%\"></div><div class=\"in\" style=\"width:{}.{}%\"></div></div>",
        out_permille / 10,
        out_permille % 10,
        in_permille / 10,
        in_permille % 10,
        out_permille / 10,
        out_permille % 10,
        in_permille / 10,
        in_permille % 10
    )
}

fn channels(list: &Vec<Value>) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">no channel</p>".into();
    }
    let mut out = String::from(
        "<table><tr><th>channel</th><th>peer</th><th>capacity (sat)</th><th>outbound (msat)</th>\
         <th>inbound (msat)</th><th>liquidity (outbound | inbound)</th><th>usable</th></tr>",
    );
    for c in list {
        let id = c["channel_id"].as_str().unwrap_or_default();
        let peer = c["counterparty_node_id"].as_str().unwrap_or_default();
        let (outbound, inbound) = (num(&c["outbound_msat"]), num(&c["inbound_msat"]));
        let _ = write!(
            out,
            "<tr><td title=\"{}\">{}…</td><td title=\"{}\">{}…</td>",
            esc(id),
            esc(id.get(..16).unwrap_or(id)),
            esc(peer),
            esc(peer.get(..16).unwrap_or(peer))
        );
        out.push_str(&fig(&format!("channel.{id}.capacity_sat"), num(&c["capacity_sat"])));
        out.push_str(&fig(&format!("channel.{id}.outbound_msat"), outbound));
        out.push_str(&fig(&format!("channel.{id}.inbound_msat"), inbound));
        let usable = if c["usable"] == true { "yes" } else { "no" };
        let _ = write!(out, "<td>{}</td><td>{usable}</td></tr>", liquidity_bar(outbound, inbound));
    }
    out.push_str("</table>");
    out
}

fn payouts(p: &Payouts) -> String {
    let mut rails: Vec<&str> = p.counts.iter().map(|(rail, _, _)| rail.as_str()).collect();
    rails.dedup();
    let mut out = String::from("<table><tr><th>rail</th>");
    for state in STATES {
        let _ = write!(out, "<th>{state}</th>");
    }
    out.push_str("</tr>");
    for rail in rails {
        let _ = write!(out, "<tr><td>{}</td>", esc(rail));
        for state in STATES {
            let n = p.counts.iter().find(|(r, s, _)| r == rail && s == state).map_or(0, |c| c.2);
            out.push_str(&fig(&format!("payouts.{rail}.{state}"), n));
        }
        out.push_str("</tr>");
    }
    out.push_str(
        "</table><p class=\"muted\">The latest payouts:</p><table><tr><th>payout</th><th>rail</th>\
         <th>amount (sat)</th><th>state</th><th>fee (sat)</th><th>submitted (UTC)</th></tr>",
    );
    for pay in &p.recent {
        let fee = pay.fee_paid_msat.map(|f| sep(f.div_ceil(1_000))).unwrap_or_else(|| "—".into());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{fee}</td><td>{}</td></tr>",
            esc(&pay.payment_id),
            esc(pay.rail.as_str()),
            sep(pay.amount_msat.div_ceil(1_000)),
            esc(pay.state.as_str()),
            esc(&crate::rfc3339(pay.created_at))
        );
    }
    out.push_str("</table>");
    out
}

fn fees(f: &Fees) -> String {
    let mut out = String::from(
        "<table><tr><th>rail</th><th>settled</th><th>fees paid (sat)</th><th>one transaction each (sat)</th>\
         <th>saved</th></tr>",
    );
    for r in f.report["rails"].as_array().into_iter().flatten() {
        let rail = r["rail"].as_str().unwrap_or_default();
        let _ = write!(out, "<tr><td>{}</td>", esc(rail));
        out.push_str(&fig(&format!("fees.{rail}.count"), num(&r["count"])));
        out.push_str(&fig(&format!("fees.{rail}.fees_paid_sat"), num(&r["fees_paid_sat"])));
        if r["one_by_one_fee_sat"].is_null() {
            out.push_str("<td class=\"n\">—</td><td>—</td></tr>");
        } else {
            out.push_str(&fig(&format!("fees.{rail}.one_by_one_fee_sat"), num(&r["one_by_one_fee_sat"])));
            let _ = write!(out, "<td class=\"n\">{} %</td></tr>", esc(r["saving_percent"].as_str().unwrap_or("0.00")));
        }
    }
    let (paid, alone) = plot::totals(&f.points);
    let _ = write!(
        out,
        "</table><p class=\"muted\">Cumulative over the {} payouts settled, in order: fees paid \
         <b data-figure=\"fees.plot.paid_sat\">{}</b> sat against <b data-figure=\"fees.plot.one_by_one_sat\">{}</b> sat \
         for one transaction per payout (Lightning payouts count what they paid on both lines).</p>",
        sep(f.points.len() as u64),
        sep(paid),
        sep(alone)
    );
    out.push_str(&plot::svg(&f.points));
    out
}

fn batch(list: &Value) -> String {
    let queued = list["queued"].as_array().map_or(&[][..], Vec::as_slice);
    let queued_sat: u64 = queued.iter().map(|q| num(&q["amount_sat"])).sum();
    let mut out = format!(
        "<table><tr><th>payouts waiting for a batch</th>{}</tr><tr><th>their amount (sat)</th>{}</tr></table>",
        fig("batch.queued", queued.len() as u64),
        fig("batch.queued_sat", queued_sat)
    );
    let batches = list["batches"].as_array().map_or(&[][..], Vec::as_slice);
    out.push_str(
        "<p class=\"muted\">The latest batches:</p><table><tr><th>batch</th><th>state</th><th>payouts</th>\
         <th>fee (sat)</th><th>feerate (sat/vB)</th><th>why it left</th><th>created (UTC)</th></tr>",
    );
    for b in batches.iter().take(10) {
        let text = |k: &str| esc(b[k].as_str().unwrap_or_default());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            text("batch_id"),
            text("state"),
            sep(num(&b["payouts"])),
            sep(num(&b["fee_sat"])),
            sep(num(&b["feerate_sat_vb"])),
            text("reason"),
            esc(&crate::rfc3339(num(&b["created_at"])))
        );
    }
    out.push_str("</table>");
    out
}

fn webhooks(b: &Backlog, now: u64) -> String {
    let age = b.oldest_pending_at.map_or(0, |t| now.saturating_sub(t));
    format!(
        "<table><tr><th>undelivered</th>{}</tr><tr><th>failed for good</th>{}</tr><tr><th>oldest undelivered (s)</th>{}</tr></table>",
        fig("webhooks.pending", b.pending),
        fig("webhooks.failed", b.failed),
        fig("webhooks.oldest_pending_age_secs", age)
    )
}

fn rates(r: &Rates) -> String {
    let mut out =
        String::from("<table><tr><th>pair</th><th>mid</th><th>source</th><th>age (s)</th><th>status</th></tr>");
    for p in &r.pairs {
        let _ = write!(
            out,
            "<tr><td>{pair}</td><td class=\"n\">{mid}</td><td>{source}</td><td class=\"n\">{age}</td>\
             <td class=\"{status}\" data-status=\"fx.{pair}\">{status}</td></tr>",
            pair = esc(&p.pair),
            mid = esc(&p.mid),
            source = esc(&p.source),
            age = sep(p.age_secs),
            status = p.status,
        );
    }
    out.push_str(
        "</table><table><tr><th>source</th><th>status</th><th>last reading (s ago)</th><th>last failure</th></tr>",
    );
    for s in &r.sources {
        let age = s.last_ok_age_secs.map(sep).unwrap_or_else(|| "never".into());
        let _ = write!(
            out,
            "<tr><td>{0}</td><td class=\"{1}\" data-status=\"fx.source.{0}\">{1}</td><td class=\"n\">{2}</td><td>{3}</td></tr>",
            esc(&s.name),
            s.status,
            age,
            esc(s.last_error.as_deref().unwrap_or("—"))
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_marked_and_the_login_escapes_what_it_shows() {
        assert_eq!(
            fig("treasury.onchain.held_sat", 1_234_567),
            "<td class=\"n\" data-figure=\"treasury.onchain.held_sat\">1,234,567</td>"
        );
        let page = login("/d/admin.cookie", Some("<script>"));
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains("cat /d/admin.cookie") && page.contains("name=\"cookie\""));
    }

    #[test]
    fn a_section_that_fails_says_why() {
        let mut out = String::new();
        section(&mut out, "Channels", &Err::<Vec<Value>, _>("ln_not_running: <off>".into()), channels);
        assert_eq!(out, "<h2>Channels</h2><p class=\"unavailable\">unavailable: ln_not_running: &lt;off&gt;</p>");
    }

    #[test]
    fn liquidity_bars_split_by_tenths_of_a_percent() {
        assert!(liquidity_bar(750, 250).contains("width:75.0%\"></div><div class=\"in\" style=\"width:25.0%"));
        assert!(liquidity_bar(0, 0).contains("width:0.0%\"></div><div class=\"in\" style=\"width:100.0%"));
        assert!(liquidity_bar(u64::MAX, 1).contains("width:99.9%"));
    }
}
