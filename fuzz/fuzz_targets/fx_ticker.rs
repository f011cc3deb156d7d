//! The FX sources' ticker JSON (Kraken, Bitstamp, Coinbase shapes) on anyone's bytes: no panic;
//! an accepted mid-price is positive; readings combine without overflow, inside their range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use sendero::fx::sources::{combine, mid_price, Exchange};

fuzz_target!(|data: &[u8]| {
    let mut readings = Vec::new();
    for exchange in [Exchange::Kraken, Exchange::Bitstamp, Exchange::Coinbase] {
        if let Ok(mid) = mid_price(exchange, data) {
            assert!(mid > Decimal::ZERO, "{} mid {mid}", exchange.name());
            readings.push(mid);
        }
    }
    // A JSON array of prices stands for several sources' readings (static rates included).
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(data) {
        readings.extend(items.iter().filter_map(|v| v.as_str()?.parse::<Decimal>().ok()).filter(|d| *d > Decimal::ZERO));
    }
    let (low, high) = (readings.iter().min().copied(), readings.iter().max().copied());
    for bps in [0, 100, 10_000, u32::MAX] {
        if let (Some(mid), Some(low), Some(high)) = (combine(readings.clone(), bps), low, high) {
            assert!(mid >= low && mid <= high, "combined {mid} outside [{low}, {high}]");
        }
    }
});
