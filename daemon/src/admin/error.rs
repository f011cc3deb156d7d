//! The admin RPC's one error type: a JSON-RPC error whose `data.code` is a stable string a client
//! can branch on, with an exhaustive mapping from the domain's errors.

use serde_json::{json, Map, Value};

use sendero_wallet::WalletError;

/// JSON-RPC 2.0 reserved codes, and the application range Sendero uses.
pub mod rpc_code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC 2.0 request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad or missing parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A bug or a storage failure.
    pub const INTERNAL: i64 = -32603;
    /// The request was understood and refused (funds, network, …).
    pub const REFUSED: i64 = -32000;
    /// A dependency (bitcoind) is unavailable; retrying later may succeed.
    pub const UNAVAILABLE: i64 = -32001;
}

/// An admin error.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminError {
    /// JSON-RPC `error.code`.
    pub rpc_code: i64,
    /// Stable string in `error.data.code`.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Extra fields merged into `error.data`.
    pub details: Map<String, Value>,
}

impl AdminError {
    /// An error with no extra details.
    pub fn new(rpc_code: i64, code: &'static str, message: impl Into<String>) -> Self {
        AdminError { rpc_code, code, message: message.into(), details: Map::new() }
    }

    /// Adds a detail field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// `invalid_params`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(rpc_code::INVALID_PARAMS, "invalid_params", message)
    }

    /// The JSON-RPC `error` object.
    pub fn to_json(&self) -> Value {
        let mut data = self.details.clone();
        data.insert("code".into(), Value::from(self.code));
        json!({ "code": self.rpc_code, "message": self.message, "data": data })
    }
}

/// `code: message`, as logs and the operator's pages show it.
impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<WalletError> for AdminError {
    fn from(e: WalletError) -> Self {
        use rpc_code::*;
        let msg = e.to_string();
        match e {
            WalletError::InvalidAddress(_) => Self::new(INVALID_PARAMS, "invalid_address", msg),
            WalletError::WrongNetwork { expected } => {
                Self::new(INVALID_PARAMS, "wrong_network", msg).with("expected_network", expected.to_string())
            }
            WalletError::InvalidAmount(_) => Self::new(INVALID_PARAMS, "invalid_amount", msg),
            WalletError::InvalidFeerate(_) => Self::new(INVALID_PARAMS, "invalid_feerate", msg),
            WalletError::InsufficientFunds { needed_sat, available_sat } => {
                Self::new(REFUSED, "insufficient_funds", msg)
                    .with("needed_sat", needed_sat)
                    .with("available_sat", available_sat)
            }
            WalletError::Chain(_) => Self::new(UNAVAILABLE, "bitcoind_unavailable", msg),
            WalletError::Broadcast(_) => Self::new(REFUSED, "broadcast_rejected", msg),
            WalletError::Keys(_) | WalletError::Storage(_) | WalletError::Build(_) => {
                Self::new(INTERNAL, "internal", msg)
            }
        }
    }
}

impl From<sendero_lightning::LightningError> for AdminError {
    fn from(e: sendero_lightning::LightningError) -> Self {
        use rpc_code::*;
        use sendero_lightning::LightningError as L;
        let rpc = match &e {
            L::Invalid { .. } | L::WrongNetwork(_) => INVALID_PARAMS,
            L::ConnectionFailed => UNAVAILABLE,
            L::Setup(_) => INTERNAL,
            _ => REFUSED,
        };
        let err = Self::new(rpc, e.code(), e.to_string());
        match e {
            L::InsufficientLiquidity { needed_msat, available_msat } => {
                err.with("needed_msat", needed_msat).with("available_msat", available_msat)
            }
            _ => err,
        }
    }
}

impl From<crate::rails::lightning::LnError> for AdminError {
    fn from(e: crate::rails::lightning::LnError) -> Self {
        use crate::rails::lightning::LnError;
        match e {
            LnError::Disabled | LnError::NotReady => {
                Self::new(rpc_code::UNAVAILABLE, "lightning_unavailable", e.to_string())
            }
            LnError::Node(e) => e.into(),
            LnError::Wallet(e) => e.into(),
            LnError::Store(e) => e.into(),
        }
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure in an admin call");
        Self::new(rpc_code::INTERNAL, "internal", e.to_string())
    }
}

impl From<crate::ledger::LedgerError> for AdminError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        tracing::error!(error = %e, "ledger failure in an admin call");
        Self::new(rpc_code::INTERNAL, "internal", e.to_string())
    }
}

impl AdminError {
    /// A failure on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(rpc_code::INTERNAL, "internal", message)
    }
}

impl From<crate::rails::fees::FeesError> for AdminError {
    fn from(e: crate::rails::fees::FeesError) -> Self {
        use crate::rails::fees::FeesError;
        match e {
            FeesError::Mainnet => Self::new(rpc_code::REFUSED, "fees_override_refused", e.to_string()),
            FeesError::Invalid(_) => Self::new(rpc_code::INVALID_PARAMS, "invalid_feerate", e.to_string()),
            FeesError::Read { .. } | FeesError::Parse { .. } => Self::internal(e.to_string()),
        }
    }
}
