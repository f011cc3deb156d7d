//! Idempotency keys: a request's claim while it runs (in memory), its answer once done (written
//! in the transaction of its effects), replayed byte for byte to a retry with the same body.

use std::sync::PoisonError;

use super::sql::{params, Connection, OptionalExtension};

use super::{Store, StoreError};

impl Store {
    /// Claims `(api_key_id, idem_key)` for a request with `fingerprint`, or reports what holds it.
    /// A claim lives in memory only — a request in flight dies with its process, so nothing needs
    /// to survive it — and a finished request's answer is written with its effects, in their
    /// transaction: one durable commit per request.
    pub fn idempotency_begin(
        &self,
        api_key_id: &str,
        idem_key: &str,
        fingerprint: &str,
        now: u64,
    ) -> Result<IdemBegin, StoreError> {
        let id = (api_key_id.to_owned(), idem_key.to_owned());
        {
            let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((held, _)) = claims.get(&id) {
                return Ok(if held == fingerprint { IdemBegin::InFlight } else { IdemBegin::Mismatch });
            }
            claims.insert(id.clone(), (fingerprint.to_owned(), now));
        }
        let done: Option<(String, Option<i64>, Option<Vec<u8>>)> = self
            .read()
            .prepare_cached(
                "SELECT fingerprint, status, body FROM idempotency_keys
                 WHERE api_key_id = ?1 AND idem_key = ?2 AND state = 'done'",
            )?
            .query_row(params![api_key_id, idem_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((stored_fp, status, body)) = done else { return Ok(IdemBegin::Fresh) };
        self.idempotency_release(api_key_id, idem_key);
        Ok(if stored_fp != fingerprint {
            IdemBegin::Mismatch
        } else {
            IdemBegin::Replay { status: status.unwrap_or(200) as u16, body: body.unwrap_or_default() }
        })
    }

    /// The answer another process wrote for `(api_key_id, idem_key)` while this one held its
    /// claim (two front ends of one PostgreSQL store, each with its own claims): a replay for
    /// the same request, a mismatch for another; `None` when there is none.
    pub(crate) fn idempotency_answered(
        &self,
        tx: &Connection,
        api_key_id: &str,
        idem_key: &str,
    ) -> Result<Option<IdemBegin>, StoreError> {
        let done: Option<(String, Option<i64>, Option<Vec<u8>>)> = tx
            .prepare_cached(
                "SELECT fingerprint, status, body FROM idempotency_keys
                 WHERE api_key_id = ?1 AND idem_key = ?2 AND state = 'done'",
            )?
            .query_row(params![api_key_id, idem_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((stored_fp, status, body)) = done else { return Ok(None) };
        let claimed = self
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(api_key_id.to_owned(), idem_key.to_owned()))
            .map(|(fp, _)| fp.clone());
        Ok(Some(match claimed {
            Some(fp) if fp == stored_fp => {
                IdemBegin::Replay { status: status.unwrap_or(200) as u16, body: body.unwrap_or_default() }
            }
            _ => IdemBegin::Mismatch,
        }))
    }

    /// Writes a claimed request's answer inside `tx`, with the request's effects; after the
    /// commit the caller releases the claim ([`Store::idempotency_release`]).
    pub(crate) fn idempotency_answer(
        &self,
        tx: &Connection,
        (api_key_id, idem_key): (&str, &str),
        status: u16,
        body: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let fingerprint = self
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(api_key_id.to_owned(), idem_key.to_owned()))
            .map(|(fp, _)| fp.clone())
            .unwrap_or_default();
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, state, status, body, created_at)
             VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6)
             ON CONFLICT (api_key_id, idem_key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, state = 'done', status = excluded.status, body = excluded.body",
        )?
        .execute(params![api_key_id, idem_key, fingerprint, status as i64, body, now as i64])?;
        Ok(())
    }

    /// Stores the response of a finished request (it is replayed for the same key and body).
    pub fn idempotency_finish(
        &self,
        api_key_id: &str,
        idem_key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let written = (|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            self.idempotency_answer(&tx, (api_key_id, idem_key), status, body, crate::unix_now())?;
            tx.commit()?;
            Ok(())
        })();
        self.idempotency_release(api_key_id, idem_key);
        written
    }

    /// Releases a key's claim: its request finished (answer written) or failed on the server's
    /// side, so that a retry can run.
    pub fn idempotency_abandon(&self, api_key_id: &str, idem_key: &str) -> Result<(), StoreError> {
        self.idempotency_release(api_key_id, idem_key);
        Ok(())
    }

    /// Drops a claim.
    pub(crate) fn idempotency_release(&self, api_key_id: &str, idem_key: &str) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(api_key_id.to_owned(), idem_key.to_owned()));
    }

    /// Drops finished idempotency records older than `before`, and in-flight ones left by a
    /// request that died before committing anything (`stale_before`). Returns how many.
    pub fn idempotency_prune(&self, before: u64, stale_before: u64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM idempotency_keys WHERE (state = 'done' AND created_at < ?1) OR (state = 'in_flight' AND created_at < ?2)",
            params![before as i64, stale_before as i64],
        )?)
    }
}

/// Where an idempotent request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemBegin {
    /// First time: go ahead.
    Fresh,
    /// Done before with the same body: send this again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Exact response bytes.
        body: Vec<u8>,
    },
    /// Same key, different body.
    Mismatch,
    /// Same key and body, still being processed.
    InFlight,
}
