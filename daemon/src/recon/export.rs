//! The report as a bookkeeper reads it, from its JSON (what `sendero-cli` receives): a CSV with
//! one row per item (RFC 4180: comma-separated, quoted where needed, CRLF line ends, a header),
//! and a text table with the totals per day and rail.

use serde_json::Value;

/// The CSV's columns, in order.
pub const CSV_COLUMNS: [&str; 15] = [
    "date",
    "time",
    "rail",
    "kind",
    "class",
    "reference",
    "payment_hash",
    "payment_ids",
    "invoice_ids",
    "ledger_refs",
    "ledger_sat",
    "rail_sat",
    "fiat_minor",
    "fiat_currency",
    "note",
];

/// One CSV row per item of `report` (`recon.report`'s answer), under a header.
pub fn csv(report: &Value) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for item in items(report) {
        let row: Vec<String> = CSV_COLUMNS.iter().map(|c| quote(&cell(item, c))).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn items(report: &Value) -> &[Value] {
    report["items"].as_array().map_or(&[], Vec::as_slice)
}

/// An item's value for `column`, as text (lists joined with `;`, absent values empty).
fn cell(item: &Value, column: &str) -> String {
    if column == "time" {
        let at = item["at"].as_i64().unwrap_or(0);
        return chrono::DateTime::from_timestamp(at, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default();
    }
    match &item[column] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(list) => {
            list.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(";")
        }
        other => other.to_string(),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The report as a text table: the items, the totals per day and rail, the invoices, the
/// classes, and each rail's balance.
pub fn table(report: &Value) -> String {
    let mut out = format!(
        "{:<10} {:<9} {:<9} {:<20} {:<15} {:<66} {:>14} {:>14} {:>12}\n",
        "date", "time", "rail", "kind", "class", "reference", "ledger_sat", "rail_sat", "fiat"
    );
    for i in items(report) {
        let fiat = match (i["fiat_minor"].as_i64(), i["fiat_currency"].as_str()) {
            (Some(v), Some(c)) => format!("{v} {c}"),
            _ => String::new(),
        };
        let line = format!(
            "{:<10} {:<9} {:<9} {:<20} {:<15} {:<66} {:>14} {:>14} {:>12}\n",
            cell(i, "date"),
            cell(i, "time"),
            cell(i, "rail"),
            cell(i, "kind"),
            cell(i, "class"),
            cell(i, "reference"),
            cell(i, "ledger_sat"),
            cell(i, "rail_sat"),
            fiat
        );
        out.push_str(&line);
    }
    out.push_str(&totals(report));
    out.push_str(&format!(
        "\n{:<40} {:<11} {:<15} {:>16} {:>16}\n",
        "invoice", "status", "class", "received_msat", "ledger_msat"
    ));
    for i in report["invoices"].as_array().map_or(&[][..], Vec::as_slice) {
        out.push_str(&format!(
            "{:<40} {:<11} {:<15} {:>16} {:>16}\n",
            cell(i, "invoice_id"),
            cell(i, "status"),
            cell(i, "class"),
            cell(i, "received_msat"),
            cell(i, "ledger_msat")
        ));
    }
    let summary = &report["summary"];
    out.push_str(&format!(
        "\nmatch {}  timing {}  missing {}  amount_mismatch {}  ok {}\n",
        summary["match"], summary["timing"], summary["missing"], summary["amount_mismatch"], report["ok"]
    ));
    for rail in ["onchain", "lightning"] {
        out.push_str(&format!("balance {rail}: {}\n", report["balances"][rail]));
    }
    out
}

fn totals(report: &Value) -> String {
    let mut out = format!(
        "\n{:<10} {:<9} {:>6} {:>6} {:>6} {:>7} {:>8} {:>14} {:>14}  fiat\n",
        "date", "rail", "items", "match", "timing", "missing", "mismatch", "ledger_sat", "rail_sat"
    );
    for t in report["totals"].as_array().map_or(&[][..], Vec::as_slice) {
        let fiat: Vec<String> = t["fiat_minor"]
            .as_object()
            .map(|m| m.iter().map(|(c, v)| format!("{v} {c}")).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<10} {:<9} {:>6} {:>6} {:>6} {:>7} {:>8} {:>14} {:>14}  {}\n",
            cell(t, "date"),
            cell(t, "rail"),
            cell(t, "items"),
            cell(t, "match"),
            cell(t, "timing"),
            cell(t, "missing"),
            cell(t, "amount_mismatch"),
            cell(t, "ledger_sat"),
            cell(t, "rail_sat"),
            fiat.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_it_and_joins_lists() {
        let report = json!({"items": [{"date": "2026-12-03", "at": 1_796_300_000, "rail": "onchain",
            "kind": "batch", "class": "match", "reference": "ab", "payment_hash": null,
            "payment_ids": ["pay_1", "pay_2"], "invoice_ids": [], "ledger_refs": ["pay:pay_1:debit"],
            "ledger_sat": -12_000, "rail_sat": -12_000, "fiat_minor": -1_500, "fiat_currency": "EUR",
            "note": "a, \"quoted\" note"}]});
        let text = csv(&report);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "2026-12-03,12:13:20,onchain,batch,match,ab,,pay_1;pay_2,,pay:pay_1:debit,-12000,-12000,-1500,EUR,\"a, \"\"quoted\"\" note\""
        );
        assert_eq!(lines[2], "");
        assert!(table(&report).contains("-1500 EUR"));
    }
}
