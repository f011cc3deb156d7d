//! The store's SQL connections, on SQLite (the default: one file in the data dir) or on
//! PostgreSQL (`[store] url`), behind one API in rusqlite's shape: `execute`, `query_row`,
//! `prepare_cached`, `query_map`, transactions. Statements are written once, in the SQL both
//! engines share (`?N` parameters, `ON CONFLICT`, `RETURNING`, `IS NOT DISTINCT FROM`); for
//! PostgreSQL [`dialect`] rewrites what differs (parameters, column types) once per statement.
//!
//! SQLite has one writer; on PostgreSQL every transaction of the writer connection first takes
//! one advisory lock (`pg::WRITE_LOCK`), so that the gateway's writers — in one process or in
//! several (`--role api`) — are serialised exactly as SQLite serialises them: what a transaction
//! reads after its `BEGIN` is what the last writer committed.

pub mod dialect;
mod pg;
mod value;

use std::cell::Cell;

pub use value::{FromSql, FromSqlError, ToSql, Value, ValueRef};

/// A SQL failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused, or the connection to it failed.
    #[error("{}", pg::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A query that must return a row returned none.
    #[error("query returned no rows")]
    QueryReturnedNoRows,
    /// No such column.
    #[error("no column {0}")]
    InvalidColumn(String),
    /// A column holds a value the Rust type cannot take.
    #[error("column {index}: cannot read {found} as {wanted}")]
    InvalidColumnType {
        /// Its index.
        index: usize,
        /// What it holds.
        found: &'static str,
        /// The Rust type.
        wanted: &'static str,
    },
    /// A parameter out of the range a column takes.
    #[error("parameter out of range: {0}")]
    ParameterOutOfRange(String),
    /// A statement the engine could not prepare.
    #[error("{0}")]
    Statement(String),
    /// The disk holding the store is full (a copy of the engine's error).
    #[error("{0}")]
    DiskFull(String),
    /// A value neither engine of the store takes (a float).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// A constraint refused the write (unique, foreign key, check, not null).
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Error::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation),
            Error::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }

    /// The disk holding the store is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            Error::Postgres(e) => e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL),
            Error::DiskFull(_) => true,
            _ => false,
        }
    }
}

/// The result of a SQL call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Ok(None)` for a query that returned no row.
pub trait OptionalExtension<T> {
    /// The row, or `None` when there was none.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A statement's parameters: `params![a, b]`, `[a]`, `[]` or `()`.
pub trait Params {
    /// The values to bind, in order.
    fn values(&self) -> Result<Vec<ValueRef<'_>>>;
}

impl Params for () {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        Ok(Vec::new())
    }
}

impl Params for [&(dyn ToSql + Send + Sync); 0] {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        Ok(Vec::new())
    }
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        self.iter().map(|v| v.to_sql()).collect()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Result<Vec<ValueRef<'_>>> {
                self.iter().map(|v| v.to_sql()).collect()
            }
        }
    )*};
}

array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// `params![a, b, …]`: a statement's parameters of mixed types.
#[macro_export]
macro_rules! sql_params {
    () => {
        &[] as &[&dyn $crate::store::sql::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::sql::ToSql),+] as &[&dyn $crate::store::sql::ToSql]
    };
}

pub use crate::sql_params as params;

/// Which column: its index or its name.
pub trait RowIndex {
    /// The column's index in `row`.
    fn index(&self, row: &Row<'_>) -> Result<usize>;
}

impl RowIndex for usize {
    fn index(&self, row: &Row<'_>) -> Result<usize> {
        if *self < row.column_count() {
            Ok(*self)
        } else {
            Err(Error::InvalidColumn(self.to_string()))
        }
    }
}

impl RowIndex for &str {
    fn index(&self, row: &Row<'_>) -> Result<usize> {
        row.column_index(self)
    }
}

/// One row of a result.
pub struct Row<'a> {
    inner: RowInner<'a>,
}

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a pg::DecodedRow),
}

impl Row<'_> {
    /// The value of a column, as `T`.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let index = idx.index(self)?;
        let value = match &self.inner {
            RowInner::Sqlite(row) => sqlite_value(row.get_ref(index)?)?,
            RowInner::Pg(row) => row.values[index].as_ref(),
        };
        T::from_sql(value).map_err(|e| match e {
            FromSqlError::OutOfRange(v) => Error::ParameterOutOfRange(format!("column {index}: {v}")),
            FromSqlError::InvalidType => {
                Error::InvalidColumnType { index, found: value.kind(), wanted: std::any::type_name::<T>() }
            }
        })
    }

    /// How many columns the row has.
    pub fn column_count(&self) -> usize {
        match &self.inner {
            RowInner::Sqlite(row) => row.as_ref().column_count(),
            RowInner::Pg(row) => row.values.len(),
        }
    }

    fn column_index(&self, name: &str) -> Result<usize> {
        match &self.inner {
            RowInner::Sqlite(row) => Ok(row.as_ref().column_index(name)?),
            RowInner::Pg(row) => row
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
                .ok_or_else(|| Error::InvalidColumn(name.to_owned())),
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Result<ValueRef<'_>> {
    use rusqlite::types::ValueRef as V;
    Ok(match v {
        V::Null => ValueRef::Null,
        V::Integer(i) => ValueRef::Integer(i),
        V::Text(t) => ValueRef::Text(std::str::from_utf8(t).map_err(|e| Error::Unsupported(e.to_string()))?),
        V::Blob(b) => ValueRef::Blob(b),
        V::Real(_) => return Err(Error::Unsupported("a REAL column: the store keeps no floats".into())),
    })
}

/// Binds our values to SQLite.
struct SqliteParam<'a>(ValueRef<'a>);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => V::Null,
            ValueRef::Integer(i) => V::Integer(i),
            ValueRef::Text(s) => V::Text(s.as_bytes()),
            ValueRef::Blob(b) => V::Blob(b),
        }))
    }
}

fn sqlite_params<'a>(values: &'a [ValueRef<'a>]) -> rusqlite::ParamsFromIter<impl Iterator<Item = SqliteParam<'a>>> {
    rusqlite::params_from_iter(values.iter().map(|v| SqliteParam(*v)))
}

/// When a transaction takes SQLite's write lock (PostgreSQL's writer always takes its lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    /// At its first write.
    Deferred,
    /// At `BEGIN`.
    Immediate,
}

/// A connection to the store.
pub struct Connection {
    backend: Backend,
    /// Savepoints open, for their names.
    depth: Cell<u32>,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Pg(pg::Conn),
}

impl Connection {
    /// A connection over an open SQLite connection.
    pub fn sqlite(conn: rusqlite::Connection) -> Connection {
        Connection { backend: Backend::Sqlite(conn), depth: Cell::new(0) }
    }

    /// A connection to PostgreSQL at `url`. The writer's transactions take the store's write
    /// lock; a reader's session is read-only.
    pub fn postgres(url: &str, writer: bool) -> Result<Connection> {
        Ok(Connection { backend: Backend::Pg(pg::Conn::connect(url, writer, true)?), depth: Cell::new(0) })
    }

    /// A PostgreSQL session that is never opened again behind the caller's back: what it holds
    /// (an advisory lock) ends with it, and its next call then fails.
    pub fn postgres_session(url: &str) -> Result<Connection> {
        Ok(Connection { backend: Backend::Pg(pg::Conn::connect(url, true, false)?), depth: Cell::new(0) })
    }

    /// The SQLite connection under this one, if it is SQLite.
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(c) => Some(c),
            Backend::Pg(_) => None,
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Runs one statement; the rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Pg(c) => c.batch(&dialect::postgres(sql)),
        }
    }

    /// The first row of a query, through `f`; [`Error::QueryReturnedNoRows`] when none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// A statement (parsed once per connection, like [`Connection::prepare_cached`]).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    /// A statement, parsed once per connection and kept.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        let inner = match &self.backend {
            Backend::Sqlite(c) => StatementInner::Sqlite(c.prepare_cached(sql)?),
            Backend::Pg(c) => StatementInner::Pg(c, c.prepare(sql)?),
        };
        Ok(Statement { inner })
    }

    /// A transaction that takes the write lock at its first write (SQLite) or at once (the
    /// PostgreSQL writer); rolled back unless committed.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }

    /// A transaction for writes that commute with every other writer's (inserts of rows no
    /// other write reads or changes, such as quotes written behind): on PostgreSQL it takes no
    /// write lock, so processes flushing such rows do not queue for one another or for the
    /// payments; on SQLite, a [`Connection::transaction`].
    pub fn commuting_transaction(&mut self) -> Result<Transaction<'_>> {
        match &self.backend {
            Backend::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Backend::Pg(c) => c.begin(false)?,
        }
        Ok(Transaction { conn: self, done: false })
    }

    /// A transaction, taking SQLite's write lock as `behavior` says.
    pub fn transaction_with_behavior(&mut self, behavior: TransactionBehavior) -> Result<Transaction<'_>> {
        match &self.backend {
            Backend::Sqlite(c) => c.execute_batch(match behavior {
                TransactionBehavior::Deferred => "BEGIN DEFERRED",
                TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
            })?,
            Backend::Pg(c) => c.begin(true)?,
        }
        Ok(Transaction { conn: self, done: false })
    }
}

/// A prepared statement.
pub struct Statement<'c> {
    inner: StatementInner<'c>,
}

enum StatementInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Pg(&'c pg::Conn, tokio_postgres::Statement),
}

impl Statement<'_> {
    /// Runs it; the rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        let values = params.values()?;
        match &mut self.inner {
            StatementInner::Sqlite(s) => Ok(s.execute(sqlite_params(&values))?),
            StatementInner::Pg(c, s) => c.execute(s, &values),
        }
    }

    /// Every row, each through `f`.
    pub fn query_map<T, P, F>(&mut self, params: P, mut f: F) -> Result<std::vec::IntoIter<Result<T>>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let values = params.values()?;
        let mut out = Vec::new();
        match &mut self.inner {
            StatementInner::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(&values))?;
                while let Some(row) = rows.next()? {
                    out.push(f(&Row { inner: RowInner::Sqlite(row) }));
                }
            }
            StatementInner::Pg(c, s) => {
                for row in c.query(s, &values)? {
                    out.push(f(&Row { inner: RowInner::Pg(&row) }));
                }
            }
        }
        Ok(out.into_iter())
    }

    /// The first row, through `f`; [`Error::QueryReturnedNoRows`] when none.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let values = params.values()?;
        match &mut self.inner {
            StatementInner::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(&values))?;
                match rows.next()? {
                    Some(row) => f(&Row { inner: RowInner::Sqlite(row) }),
                    None => Err(Error::QueryReturnedNoRows),
                }
            }
            StatementInner::Pg(c, s) => match c.query(s, &values)?.first() {
                Some(row) => f(&Row { inner: RowInner::Pg(row) }),
                None => Err(Error::QueryReturnedNoRows),
            },
        }
    }

    /// Whether the query returns a row.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        match self.query_row(params, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(Error::QueryReturnedNoRows) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A transaction: rolled back when dropped uncommitted. Reads and writes go through it as
/// through its connection.
pub struct Transaction<'c> {
    conn: &'c Connection,
    done: bool,
}

impl Transaction<'_> {
    /// Commits it.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.end("COMMIT")
    }

    /// Rolls it back.
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.conn.end("ROLLBACK")
    }

    /// A savepoint inside it: rolled back to when dropped unreleased.
    pub fn savepoint(&mut self) -> Result<Savepoint<'_>> {
        let depth = self.conn.depth.get() + 1;
        self.conn.depth.set(depth);
        self.conn.execute_batch(&format!("SAVEPOINT sendero_{depth}"))?;
        Ok(Savepoint { conn: self.conn, depth, done: false })
    }
}

impl Connection {
    fn end(&self, sql: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Pg(c) => c.end(sql),
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.conn.end("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a store transaction");
            }
        }
    }
}

/// A savepoint (see [`Transaction::savepoint`]).
pub struct Savepoint<'c> {
    conn: &'c Connection,
    depth: u32,
    done: bool,
}

impl Savepoint<'_> {
    /// Keeps what it wrote (in the transaction).
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.depth.set(self.depth - 1);
        self.conn.execute_batch(&format!("RELEASE sendero_{}", self.depth))
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.depth.set(self.depth - 1);
            let undo = format!("ROLLBACK TO sendero_{0}; RELEASE sendero_{0}", self.depth);
            if let Err(e) = self.conn.execute_batch(&undo) {
                tracing::warn!(error = %e, "rolling back a store savepoint");
            }
        }
    }
}
