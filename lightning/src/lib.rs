//! Sendero's embedded Lightning node: an `ldk-node` built from the gateway's config and seed, with
//! a narrow, typed surface for the daemon — channels, invoices and offers, payments, splices,
//! liquidity figures, and the event stream. It knows nothing of the daemon or the treasury.

mod error;
pub mod holdings;
mod node;
pub mod route;
mod types;

pub use error::LightningError;
pub use holdings::{Holdings, OnchainTx};
pub use ldk_node;
pub use ldk_node::Event;
pub use node::{is_offer, read_bolt11, read_offer, Bolt11Info, LightningConfig, LightningNode, OfferInfo, Recovery};
pub use route::RouteFee;
pub use types::{Channel, Invoice, LnBalance, NodeInfo, Payment, Peer};
