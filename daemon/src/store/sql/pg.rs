//! The PostgreSQL side of [`super::Connection`]. Each connection is a `tokio-postgres` client
//! whose socket is driven on a small runtime of its own; a call waits for its answer where it
//! is made (as a SQLite call does), so the store is used the same way from threads and tasks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::BytesMut;
use postgres_types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::{dialect, Error, Result, Value, ValueRef};

/// The advisory lock every transaction of the writer takes: one writer at a time across every
/// process of the gateway, as SQLite's write lock ("sendero" in ASCII).
pub(super) const WRITE_LOCK: i64 = 0x73_65_6e_64_65_72_6f;

/// A row, decoded.
pub(super) struct DecodedRow {
    pub(super) names: Vec<String>,
    pub(super) values: Vec<Value>,
}

/// The runtime that drives every connection's socket.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("postgres")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Unsupported(format!("starting the PostgreSQL runtime: {e}")))
}

/// Waits for `f` here, whatever runtime (if any) runs this thread.
fn wait<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// One connection.
pub(super) struct Conn {
    url: String,
    writer: bool,
    client: RefCell<Client>,
    /// Statements prepared on this connection, by their SQL as written.
    statements: RefCell<HashMap<String, Statement>>,
    in_transaction: std::cell::Cell<bool>,
    /// Whether a closed connection is opened again (not for a session that holds a lock: a
    /// new session would not hold it).
    reconnect: bool,
}

impl Conn {
    pub(super) fn connect(url: &str, writer: bool, reconnect: bool) -> Result<Conn> {
        let client = open(url, writer)?;
        Ok(Conn {
            url: url.to_owned(),
            writer,
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_transaction: std::cell::Cell::new(false),
            reconnect,
        })
    }

    /// The client, connected again first if the server closed the last connection (a restart)
    /// and no transaction was open on it.
    fn client(&self) -> Result<std::cell::Ref<'_, Client>> {
        if self.reconnect && self.client.borrow().is_closed() && !self.in_transaction.get() {
            let fresh = open(&self.url, self.writer)?;
            *self.client.borrow_mut() = fresh;
            self.statements.borrow_mut().clear();
            tracing::info!("reconnected to PostgreSQL");
        }
        Ok(self.client.borrow())
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<Statement> {
        let client = self.client()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let statement = wait(client.prepare(&dialect::postgres(sql))).map_err(|e| prepare_failed(e, sql))?;
        self.statements.borrow_mut().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(&self, statement: &Statement, values: &[ValueRef<'_>]) -> Result<usize> {
        let params: Vec<Param<'_>> = values.iter().map(|v| Param(*v)).collect();
        let client = self.client()?;
        let n = wait(client.execute(statement, &refs(&params)))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) fn query(&self, statement: &Statement, values: &[ValueRef<'_>]) -> Result<Vec<DecodedRow>> {
        let params: Vec<Param<'_>> = values.iter().map(|v| Param(*v)).collect();
        let client = self.client()?;
        let rows = wait(client.query(statement, &refs(&params)))?;
        rows.iter()
            .map(|row| {
                let names = row.columns().iter().map(|c| c.name().to_owned()).collect();
                let values =
                    (0..row.len()).map(|i| row.try_get::<_, Decoded>(i).map(|d| d.0)).collect::<Result<_, _>>()?;
                Ok(DecodedRow { names, values })
            })
            .collect()
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        let client = self.client()?;
        Ok(wait(client.batch_execute(sql))?)
    }

    /// `BEGIN`, and on the writer the store's write lock unless `write_lock` is false (see
    /// `Connection::commuting_transaction`).
    pub(super) fn begin(&self, write_lock: bool) -> Result<()> {
        let sql = match self.writer && write_lock {
            true => format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"),
            false => "BEGIN".into(),
        };
        self.batch(&sql)?;
        self.in_transaction.set(true);
        Ok(())
    }

    /// `COMMIT` or `ROLLBACK`.
    pub(super) fn end(&self, sql: &str) -> Result<()> {
        self.in_transaction.set(false);
        self.batch(sql)
    }
}

fn open(url: &str, writer: bool) -> Result<Client> {
    let url = url.to_owned();
    let connected = runtime()?.spawn(async move {
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the connection to PostgreSQL ended");
            }
        });
        Ok::<_, tokio_postgres::Error>(client)
    });
    let client = wait(connected).map_err(|e| Error::Unsupported(format!("connecting to PostgreSQL: {e}")))??;
    if !writer {
        wait(client.batch_execute("SET default_transaction_read_only = on"))?;
    }
    Ok(client)
}

/// A statement PostgreSQL refused to prepare: its error, and the statement (a defect of ours,
/// named so that it can be found).
fn prepare_failed(e: tokio_postgres::Error, sql: &str) -> Error {
    let head: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
    Error::Statement(format!("{} in: {head}", describe(&e)))
}

/// What an error says, with PostgreSQL's own message and code when it gave one.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {e}"),
    }
}

/// The parameters as the client takes them.
fn refs<'a>(params: &'a [Param<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// A parameter, converted to the type PostgreSQL inferred for it.
#[derive(Debug)]
struct Param<'a>(ValueRef<'a>);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)
                    .map_err(|_| format!("{v} does not fit the int4 PostgreSQL inferred: cast the parameter"))?
                    .to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::OID => u32::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    v.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                _ => Err(format!("an integer parameter where PostgreSQL wants {ty}").into()),
            },
            ValueRef::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                    s.to_sql(&Type::TEXT, out)
                }
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                _ => Err(format!("a text parameter where PostgreSQL wants {ty}").into()),
            },
            ValueRef::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => Err(format!("a bytes parameter where PostgreSQL wants {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

/// A column, read as one of the store's kinds of value.
struct Decoded(Value);

impl<'a> FromSql<'a> for Decoded {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(Decoded(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::NUMERIC => Value::Integer(numeric(raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())?),
            _ => Value::Text(String::from_utf8(raw.to_vec()).map_err(|_| format!("unsupported column type {ty}"))?),
        }))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Decoded(Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        !matches!(*ty, Type::FLOAT4 | Type::FLOAT8)
    }
}

/// A NUMERIC (what `SUM` of integers and division by a count give) as an integer, its
/// fraction cut toward zero as SQLite's integer arithmetic does.
fn numeric(raw: &[u8]) -> std::result::Result<i64, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("a short NUMERIC")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let (digits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    if sign == 0xC000 {
        return Err("NUMERIC NaN".into());
    }
    let (digits, weight) = (i64::from(digits.max(0)), i64::from(weight));
    let mut v: i64 = 0;
    for i in 0..digits.min(weight + 1) {
        let group = i64::from(word(4 + i as usize)?);
        v = v.checked_mul(10_000).and_then(|v| v.checked_add(group)).ok_or("NUMERIC out of range")?;
    }
    // Zero groups at the end of the integer part are not sent.
    for _ in digits..=weight {
        v = v.checked_mul(10_000).ok_or("NUMERIC out of range")?;
    }
    Ok(if sign == 0x4000 { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> Vec<u8> {
        // Through PostgreSQL's own text → binary rules, done by hand for the test: base-10000
        // groups of the integer part.
        let negative = s.starts_with('-');
        let digits = s.trim_start_matches('-');
        let mut groups = Vec::new();
        let mut end = digits.len();
        while end > 0 {
            let start = end.saturating_sub(4);
            groups.insert(0, digits[start..end].parse::<i16>().unwrap());
            end = start;
        }
        let weight = groups.len() as i16 - 1;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let mut out = Vec::new();
        for w in [groups.len() as i16, weight, if negative { 0x4000 } else { 0 }, 0] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_read_as_integers() {
        for v in ["0", "7", "10000", "123456789", "-5000000000", "9223372036854775807", "100000000"] {
            assert_eq!(numeric(&encode(v)).unwrap(), v.parse::<i64>().unwrap(), "{v}");
        }
        assert!(numeric(&encode("99999999999999999999")).is_err());
    }
}
