//! The Lightning node's errors, folded from `ldk-node`'s many into what a caller can act on.
//! Every variant maps to one stable code (see [`LightningError::code`]).

use ldk_node::NodeError;

/// What the Lightning node refused or failed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightningError {
    /// Malformed input: node id, address, channel id, invoice, offer, amount… `code` names which.
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_invoice`.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// The invoice or offer is for another network.
    #[error("{0} is for another network")]
    WrongNetwork(&'static str),
    /// The invoice has expired.
    #[error("invoice expired")]
    InvoiceExpired,
    /// The invoice was already paid (or a payment of it is in flight).
    #[error("this invoice was already paid or is being paid")]
    DuplicatePayment,
    /// Not enough outbound liquidity in usable channels.
    #[error("insufficient outbound liquidity: need {needed_msat} msat, {available_msat} msat available")]
    InsufficientLiquidity {
        /// Asked for.
        needed_msat: u64,
        /// What usable channels can send now.
        available_msat: u64,
    },
    /// The node's on-chain wallet cannot fund this.
    #[error("insufficient on-chain funds in the Lightning wallet")]
    InsufficientFunds,
    /// No channel with that id.
    #[error("no channel {0}")]
    UnknownChannel(String),
    /// The peer could not be reached.
    #[error("could not connect to the peer")]
    ConnectionFailed,
    /// The node is not running (starting, or stopping).
    #[error("the Lightning node is not running")]
    NotRunning,
    /// The node could not send the payment now (no route yet, channels reconnecting): nothing
    /// left the node.
    #[error("the node could not send the payment now: {0}")]
    SendFailed(String),
    /// The node refused the operation (`ldk-node`'s reason in the message).
    #[error("{operation} failed: {reason}")]
    Failed {
        /// What was attempted.
        operation: &'static str,
        /// ldk-node's error.
        reason: String,
    },
    /// The node could not be built or started.
    #[error("lightning node setup: {0}")]
    Setup(String),
}

impl LightningError {
    /// The stable string code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            LightningError::Invalid { code, .. } => code,
            LightningError::WrongNetwork(_) => "wrong_network",
            LightningError::InvoiceExpired => "invoice_expired",
            LightningError::DuplicatePayment => "duplicate_payment",
            LightningError::InsufficientLiquidity { .. } => "insufficient_liquidity",
            LightningError::InsufficientFunds => "insufficient_funds",
            LightningError::UnknownChannel(_) => "unknown_channel",
            LightningError::ConnectionFailed => "connection_failed",
            LightningError::NotRunning => "lightning_failed",
            LightningError::SendFailed(_) => "lightning_failed",
            LightningError::Failed { .. } => "lightning_failed",
            LightningError::Setup(_) => "internal",
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        LightningError::Invalid { code, message: message.into() }
    }

    /// Folds an `ldk-node` error from `operation`.
    pub(crate) fn from_node(operation: &'static str, e: NodeError) -> Self {
        match e {
            NodeError::DuplicatePayment => LightningError::DuplicatePayment,
            NodeError::InsufficientFunds => LightningError::InsufficientFunds,
            NodeError::ConnectionFailed => LightningError::ConnectionFailed,
            NodeError::NotRunning => LightningError::NotRunning,
            NodeError::PaymentSendingFailed => LightningError::SendFailed(format!("{operation}: {e}")),
            NodeError::InvalidInvoice => Self::invalid("invalid_invoice", "the invoice cannot be paid as given"),
            NodeError::InvalidOffer => Self::invalid("invalid_offer", "the offer cannot be paid as given"),
            NodeError::InvalidAmount => Self::invalid("invalid_amount", "the amount does not fit the invoice or offer"),
            NodeError::InvalidAddress => Self::invalid("invalid_address", "not an address of this network"),
            NodeError::InvalidNetwork => LightningError::WrongNetwork("the destination"),
            other => LightningError::Failed { operation, reason: other.to_string() },
        }
    }
}
