//! Entry points for the fuzz targets (`fuzz/`): each runs one of the API's request parsers on
//! anyone's bytes, exactly as its handler does, and answers the refusal's stable code. Not an API.

use super::{fx_execute, fx_quote, invoices_create, invoices_refund, page, payments_route, payments_submit};
use super::{webhooks_create, ApiError};
use crate::fx::money::Side;
use crate::payment::State as SagaState;

/// What a parser made of a body: accepted, or refused with this stable code.
pub type Outcome = Result<(), &'static str>;

/// A refusal must be the client's fault (4xx) with a code: never a server error.
fn outcome<T>(parsed: Result<T, ApiError>) -> Outcome {
    match parsed {
        Ok(_) => Ok(()),
        Err(e) => {
            assert!(e.status.is_client_error(), "a request body was answered {} ({})", e.status, e.code);
            assert!(!e.code.is_empty(), "an error without a code");
            Err(e.code)
        }
    }
}

/// `POST /v1/fx/execute`.
pub fn fx_execute(body: &[u8]) -> Outcome {
    outcome(fx_execute::parse(body))
}

/// `GET /v1/fx/quote?…` (the query string and its `side`).
pub fn fx_quote(query: &str) -> Outcome {
    let _ = fx_quote::Params::parse(query);
    for (_, value) in form_urlencoded::parse(query.as_bytes()) {
        let _ = Side::parse(&value);
    }
    Ok(())
}

/// `POST /v1/invoices`.
pub fn invoices_create(body: &[u8]) -> Outcome {
    outcome(invoices_create::parse(body))
}

/// `POST /v1/invoices/{id}/refund`.
pub fn invoices_refund(body: &[u8]) -> Outcome {
    outcome(invoices_refund::parse("inv_fuzz".to_owned(), body))
}

/// `POST /v1/payments/route`.
pub fn payments_route(body: &[u8]) -> Outcome {
    outcome(payments_route::parse(body))
}

/// `POST /v1/payments`.
pub fn payments_submit(body: &[u8]) -> Outcome {
    outcome(payments_submit::parse(body))
}

/// `POST /v1/webhooks`.
pub fn webhooks_create(body: &[u8]) -> Outcome {
    outcome(webhooks_create::parse(body))
}

/// `GET /v1/invoices?…` and `GET /v1/payments?…` (the paging query).
pub fn list_query(query: &str) -> Outcome {
    let invoices = page::parse(query, |v| {
        let wanted = v.to_ascii_lowercase();
        super::invoices_list::STATUSES.into_iter().find(|s| *s == wanted).map(Some).ok_or_else(|| v.to_owned())
    });
    let payments = page::parse(query, |v| SagaState::for_status(v).ok_or_else(|| v.to_owned()));
    outcome(invoices).and(outcome(payments))
}
