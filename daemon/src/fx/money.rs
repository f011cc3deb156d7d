//! FX money math: currencies and their minor-unit exponents, markup, and conversions that always
//! round in the gateway's favour by less than one minor unit. Decimals with explicit scale; no
//! floats anywhere.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// The client's side of the BASE currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client buys BASE (and pays QUOTE).
    Buy,
    /// The client sells BASE (and receives QUOTE).
    Sell,
}

impl Side {
    /// `buy` / `sell`.
    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }

    /// `buy` / `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// Minor-unit exponent of a currency Sendero prices in (BTC's minor unit is the sat).
pub fn exponent(code: &str) -> Option<u32> {
    match code {
        "BTC" => Some(8),
        "EUR" | "USD" | "GBP" | "CHF" | "CAD" | "AUD" | "BRL" | "MXN" | "ARS" => Some(2),
        "JPY" => Some(0),
        _ => None,
    }
}

fn pow10(exp: u32) -> Decimal {
    Decimal::from(10u64.pow(exp))
}

/// `mid` moved against the client by `bps`: a client buying BASE pays more QUOTE per BASE, a
/// client selling BASE receives less.
pub fn marked_up(mid: Decimal, bps: u32, side: Side) -> Option<Decimal> {
    let factor = Decimal::from(bps).checked_div(Decimal::from(10_000))?;
    match side {
        Side::Buy => mid.checked_mul(Decimal::ONE + factor),
        Side::Sell => mid.checked_mul(Decimal::ONE - factor),
    }
}

/// `amount_minor` of BASE at `rate` (QUOTE per BASE), in QUOTE minor units: rounded up when the
/// client pays QUOTE (buys BASE), down when the client receives it (sells BASE).
pub fn convert(amount_minor: u64, base_exp: u32, quote_exp: u32, rate: Decimal, side: Side) -> Option<u64> {
    let base = Decimal::from(amount_minor).checked_div(pow10(base_exp))?;
    let quote_minor = base.checked_mul(rate)?.checked_mul(pow10(quote_exp))?;
    let strategy = match side {
        Side::Buy => RoundingStrategy::AwayFromZero,
        Side::Sell => RoundingStrategy::ToZero,
    };
    quote_minor.round_dp_with_strategy(0, strategy).to_u64()
}

/// A rate for display: 12 decimal places, rounded in the gateway's favour, trailing zeros dropped.
pub fn display_rate(rate: Decimal, side: Side) -> Decimal {
    let strategy = match side {
        Side::Buy => RoundingStrategy::AwayFromZero,
        Side::Sell => RoundingStrategy::ToZero,
    };
    rate.round_dp_with_strategy(12, strategy).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn euros_to_sats_round_in_the_gateways_favour() {
        let eur_per_btc = Decimal::from(85_000);
        let btc_per_eur = Decimal::ONE / eur_per_btc;
        // 1,000.00 EUR at 1/85,000 BTC per EUR = 1,176,470.588… sat.
        assert_eq!(convert(100_000, 2, 8, btc_per_eur, Side::Buy), Some(1_176_471));
        assert_eq!(convert(100_000, 2, 8, btc_per_eur, Side::Sell), Some(1_176_470));
        // 0.01234567 BTC at 85,000 EUR per BTC = 1,049.38195 EUR.
        assert_eq!(convert(1_234_567, 8, 2, eur_per_btc, Side::Buy), Some(104_939));
        assert_eq!(convert(1_234_567, 8, 2, eur_per_btc, Side::Sell), Some(104_938));
        assert_eq!(convert(500, 0, 8, Decimal::from_str("0.0000001").unwrap(), Side::Buy), Some(5_000));
    }

    #[test]
    fn markup_moves_the_rate_against_the_client() {
        let mid = Decimal::from(85_000);
        assert_eq!(marked_up(mid, 50, Side::Buy), Some(Decimal::from(85_425)));
        assert_eq!(marked_up(mid, 50, Side::Sell), Some(Decimal::from(84_575)));
        assert_eq!(marked_up(mid, 0, Side::Buy), Some(mid));
        assert_eq!(display_rate(Decimal::ONE / Decimal::from(85_000), Side::Buy).to_string(), "0.000011764706");
        assert_eq!(display_rate(Decimal::ONE / Decimal::from(85_000), Side::Sell).to_string(), "0.000011764705");
    }

    #[test]
    fn currencies_know_their_exponent() {
        assert_eq!(
            (exponent("BTC"), exponent("EUR"), exponent("JPY"), exponent("XYZ")),
            (Some(8), Some(2), Some(0), None)
        );
    }

    proptest! {
        /// For any amount and rate, the converted amount is within one minor unit of the exact
        /// value, on the gateway's side of it.
        #[test]
        fn conversion_is_exact_to_within_one_minor_unit_in_the_gateways_favour(
            amount in 1u64..10_000_000_000_000,
            rate_units in 1u64..1_000_000_000,
            rate_scale in 0u32..12,
            base_exp in 0u32..=8,
            quote_exp in 0u32..=8,
        ) {
            let rate = Decimal::new(rate_units as i64, rate_scale);
            // The exact value as a fraction of integers: amount * rate_units * 10^quote_exp / (10^base_exp * 10^rate_scale).
            let num = u128::from(amount) * u128::from(rate_units) * 10u128.pow(quote_exp);
            let den = 10u128.pow(base_exp) * 10u128.pow(rate_scale);
            let (floor, exact) = (num / den, num % den == 0);
            let up = convert(amount, base_exp, quote_exp, rate, Side::Buy).map(u128::from);
            let down = convert(amount, base_exp, quote_exp, rate, Side::Sell).map(u128::from);
            // Results beyond u64 are refused rather than wrapped.
            let fits = |v: u128| u64::try_from(v).ok().map(u128::from);
            prop_assert_eq!(down, fits(floor));
            prop_assert_eq!(up, fits(if exact { floor } else { floor + 1 }));
        }

        /// Markup never favours the client.
        #[test]
        fn markup_is_never_in_the_clients_favour(mid_units in 1u64..10_000_000_000, bps in 0u32..2_000) {
            let mid = Decimal::new(mid_units as i64, 4);
            prop_assert!(marked_up(mid, bps, Side::Buy).unwrap() >= mid);
            prop_assert!(marked_up(mid, bps, Side::Sell).unwrap() <= mid);
        }
    }
}
