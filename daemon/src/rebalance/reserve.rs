//! Reserves per rail: whether a rail takes new payouts, what it holds, its forecast need and its
//! runway, and when it crosses its reserve either way (`treasury.low` / `treasury.recovered`).

use super::forecast::{runway_hours, Forecast};
use super::TreasuryPolicy;

/// The code a route lists a rail under `unavailable` with when it is below its reserve.
pub const TREASURY_RESERVE: &str = "treasury_reserve";

/// The rails a reserve is kept for (`onchain` also stands for `onchain_batch`: one treasury).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rail {
    /// The on-chain treasury.
    Onchain,
    /// The outbound of the Lightning channels.
    Lightning,
}

impl Rail {
    /// `onchain` or `lightning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rail::Onchain => "onchain",
            Rail::Lightning => "lightning",
        }
    }

    /// Its reserve under `p`, msat.
    pub fn reserve_msat(self, p: &TreasuryPolicy) -> u64 {
        let sat = match self {
            Rail::Onchain => p.onchain_reserve_sat,
            Rail::Lightning => p.lightning_reserve_sat,
        };
        sat.saturating_mul(1_000)
    }
}

/// What a rail holds, msat (on chain: sats × 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RailFunds {
    /// On chain the treasury's balance (confirmed and our own unconfirmed change); on Lightning
    /// the channels' outbound.
    pub held_msat: u64,
    /// What payouts in flight on the rail have taken from it but not yet settled.
    pub reserved_msat: u64,
}

impl RailFunds {
    /// What is free for new payouts: held minus reserved.
    pub fn free_msat(&self) -> u64 {
        self.held_msat.saturating_sub(self.reserved_msat)
    }
}

/// Why a rail takes no new payouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// `treasury_reserve`.
    pub code: &'static str,
    /// What it holds against what it must keep, for a person.
    pub message: String,
}

/// A rail's treasury figures (`treasury.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailStatus {
    /// Which.
    pub rail: Rail,
    /// What it holds, msat.
    pub held_msat: u64,
    /// Reserved by payouts in flight, msat.
    pub reserved_msat: u64,
    /// The reserve it keeps, msat.
    pub reserve_msat: u64,
    /// The forecast's payouts over its horizon, msat.
    pub forecast_need_msat: u64,
    /// Hours until what is free falls to the reserve at the recent payout rate (0: already
    /// there; `None`: nothing paid out recently).
    pub runway_hours: Option<u64>,
    /// `None` when it takes new payouts.
    pub unavailable: Option<Unavailable>,
}

impl RailStatus {
    /// Whether it takes new payouts.
    pub fn accepting(&self) -> bool {
        self.unavailable.is_none()
    }
}

/// A rail's status: below its reserve (what is free, held minus reserved, under the reserve) it
/// takes no new payouts.
pub fn rail_status(rail: Rail, funds: RailFunds, forecast: &Forecast, p: &TreasuryPolicy) -> RailStatus {
    let reserve_msat = rail.reserve_msat(p);
    let free = funds.free_msat();
    let unavailable = (free < reserve_msat).then(|| Unavailable {
        code: TREASURY_RESERVE,
        message: format!(
            "the {} treasury holds {} sat ({} sat reserved by payouts in flight, {} sat free), below its \
             reserve of {} sat: no new payouts on this rail until it is refilled",
            rail.as_str(),
            funds.held_msat / 1_000,
            funds.reserved_msat.div_ceil(1_000),
            free / 1_000,
            reserve_msat / 1_000
        ),
    });
    RailStatus {
        rail,
        held_msat: funds.held_msat,
        reserved_msat: funds.reserved_msat,
        reserve_msat,
        forecast_need_msat: forecast.need_msat,
        runway_hours: runway_hours(free, reserve_msat, forecast.rate_msat_per_hour),
        unavailable,
    }
}

/// A rail crossing its reserve between two looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// It fell below (`treasury.low`).
    Low,
    /// It is back at or above (`treasury.recovered`).
    Recovered,
}

impl Crossing {
    /// The event's name.
    pub fn event(self) -> &'static str {
        match self {
            Crossing::Low => "treasury.low",
            Crossing::Recovered => "treasury.recovered",
        }
    }
}

/// The crossing between whether the rail accepted before and whether it does now, if any.
pub fn crossing(accepted_before: bool, accepting_now: bool) -> Option<Crossing> {
    match (accepted_before, accepting_now) {
        (true, false) => Some(Crossing::Low),
        (false, true) => Some(Crossing::Recovered),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TreasuryPolicy {
        TreasuryPolicy { onchain_reserve_sat: 1_000_000, lightning_reserve_sat: 500_000, ..Default::default() }
    }

    #[test]
    fn a_rail_below_its_reserve_takes_no_new_payouts_and_says_what_it_holds() {
        let f = Forecast { horizon_secs: 86_400, need_msat: 2_000_000_000, rate_msat_per_hour: 100_000_000 };
        // 1.2 M sat held, 300 k reserved by payouts in flight: 900 k free < 1 M.
        let funds = RailFunds { held_msat: 1_200_000_000, reserved_msat: 300_000_000 };
        let s = rail_status(Rail::Onchain, funds, &f, &policy());
        let u = s.unavailable.clone().expect("below the reserve");
        assert_eq!(u.code, "treasury_reserve");
        assert!(u.message.contains("holds 1200000 sat (300000 sat reserved"), "{}", u.message);
        assert!(u.message.contains("reserve of 1000000 sat"), "{}", u.message);
        assert_eq!((s.accepting(), s.runway_hours, s.forecast_need_msat), (false, Some(0), 2_000_000_000));
        // Without the payouts in flight it would be above: the reservation is what matters.
        let s = rail_status(Rail::Onchain, RailFunds { reserved_msat: 0, ..funds }, &f, &policy());
        assert!(s.accepting());
        assert_eq!(s.runway_hours, Some(2), "200 k sat above the reserve at 100 k sat an hour");
    }

    #[test]
    fn each_rail_has_its_own_reserve() {
        let f = Forecast::default();
        let funds = RailFunds { held_msat: 700_000_000, reserved_msat: 0 };
        assert!(!rail_status(Rail::Onchain, funds, &f, &policy()).accepting());
        let ln = rail_status(Rail::Lightning, funds, &f, &policy());
        assert!(ln.accepting());
        assert_eq!((ln.reserve_msat, ln.runway_hours), (500_000_000, None));
    }

    #[test]
    fn crossings_either_way_name_their_event() {
        assert_eq!(crossing(true, false).map(Crossing::event), Some("treasury.low"));
        assert_eq!(crossing(false, true).map(Crossing::event), Some("treasury.recovered"));
        assert_eq!((crossing(true, true), crossing(false, false)), (None, None));
    }
}
