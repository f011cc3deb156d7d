//! Sendero's embedded Lightning node: an `ldk-node` built from the gateway's config and seed, with
//! a narrow, typed surface for the daemon — channels, invoices and offers, payments, splices,
//! liquidity figures, pricing a payment before it is made, keysends paid at most once, and the
//! event stream. It knows nothing of the daemon or the treasury.

mod channels;
mod destination;
mod error;
pub mod holdings;
mod keysend;
mod node;
mod offer;
mod payments;
mod pricing;
mod recovery;
pub mod route;
mod types;

pub use destination::{read_bolt11, Bolt11Info};
pub use error::LightningError;
pub use holdings::{Holdings, OnchainTx};
pub use keysend::{is_keysend, keysend_destination, read_keysend, KEYSEND_PREFIX};
pub use ldk_node;
pub use ldk_node::Event;
pub use node::{LightningConfig, LightningNode};
pub use offer::{is_offer, read_offer, Intro, OfferInfo, OfferPath};
pub use pricing::Target;
pub use recovery::Recovery;
pub use route::RouteFee;
pub use types::{Channel, CreatedOffer, Invoice, LnBalance, NodeInfo, Payment, Peer};
