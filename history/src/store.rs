//! The database behind the history: SQLite or PostgreSQL, one schema, one set of statements.
//!
//! Statements are written once with `?` placeholders and column types both engines read the same
//! way (`TEXT`, `BIGINT`, `DOUBLE PRECISION`); PostgreSQL gets `$1…` placeholders. Every write is
//! one transaction, so a writer killed half-way leaves nothing behind; SQLite runs in WAL mode
//! with a busy timeout and takes its write lock up front (`BEGIN IMMEDIATE`), PostgreSQL
//! serializes migrations with an advisory lock, so that two runs finishing at once both land.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::figures::{Better, Figure};
use crate::labels::Labels;

/// The schema, one migration per version; `schema_version` holds the last one applied. A new
/// version is a new entry at the end: databases already in use are upgraded in place.
const MIGRATIONS: &[&str] = &[
    // 1: runs, their labels, and what each repetition, hypothesis, window and detector measured.
    "CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        campaign TEXT NOT NULL,
        started_at TEXT NOT NULL,
        started_us BIGINT NOT NULL,
        finished_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        passed BIGINT NOT NULL,
        hypotheses BIGINT NOT NULL,
        hypotheses_held BIGINT NOT NULL,
        run_dir TEXT,
        recorded_at TEXT NOT NULL
    );
    CREATE TABLE labels (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    CREATE TABLE repetitions (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        experiment TEXT NOT NULL,
        repetition BIGINT NOT NULL,
        faults TEXT NOT NULL,
        targets TEXT NOT NULL,
        verdict TEXT NOT NULL,
        recovery_s DOUBLE PRECISION,
        PRIMARY KEY (run_id, experiment, repetition)
    );
    CREATE TABLE hypotheses (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        experiment TEXT NOT NULL,
        repetition BIGINT NOT NULL,
        name TEXT NOT NULL,
        metric TEXT NOT NULL,
        window_kind TEXT NOT NULL,
        observed DOUBLE PRECISION,
        verdict TEXT NOT NULL,
        PRIMARY KEY (run_id, experiment, repetition, name)
    );
    CREATE TABLE workload (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        experiment TEXT NOT NULL,
        repetition BIGINT NOT NULL,
        window_kind TEXT NOT NULL,
        command TEXT NOT NULL,
        count BIGINT NOT NULL,
        successes BIGINT NOT NULL,
        success_ratio DOUBLE PRECISION,
        p50_ms DOUBLE PRECISION,
        p95_ms DOUBLE PRECISION,
        p99_ms DOUBLE PRECISION,
        PRIMARY KEY (run_id, experiment, repetition, window_kind, command)
    );
    CREATE TABLE detectors (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        detector TEXT NOT NULL,
        alarms BIGINT NOT NULL,
        true_positives BIGINT NOT NULL,
        false_positives BIGINT NOT NULL,
        precision_score DOUBLE PRECISION,
        recall_score DOUBLE PRECISION,
        f1_score DOUBLE PRECISION,
        mean_time_to_detect_s DOUBLE PRECISION,
        max_time_to_detect_s DOUBLE PRECISION,
        top1 DOUBLE PRECISION,
        top3 DOUBLE PRECISION,
        false_alarms_per_hour DOUBLE PRECISION,
        PRIMARY KEY (run_id, detector)
    );
    CREATE TABLE figures (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        experiment TEXT NOT NULL,
        figure TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        better TEXT NOT NULL,
        PRIMARY KEY (run_id, experiment, figure)
    )",
    // 2: what `history list`, trends and the gate filter and sort by.
    "CREATE INDEX runs_by_campaign ON runs (campaign, started_us);
    CREATE INDEX labels_by_value ON labels (key, value);
    CREATE INDEX figures_by_name ON figures (experiment, figure)",
];

/// The schema version this build migrates databases to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The default history file's name, beside the run directories.
pub const DEFAULT_FILE: &str = "history.sqlite";

/// How long a SQLite writer waits for another to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// PostgreSQL advisory lock key that serializes migrations ("BUTTERFL" in ASCII).
const MIGRATION_LOCK: i64 = 0x4255_5454_4552_464c;

/// A value bound to or read from a statement. Each variant carries its type even when null,
/// because PostgreSQL checks a parameter's type against its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Value {
    pub(crate) fn text(value: impl Into<String>) -> Value {
        Value::Text(Some(value.into()))
    }

    pub(crate) fn int(value: impl TryInto<i64>) -> Value {
        Value::Int(Some(value.try_into().unwrap_or(i64::MAX)))
    }

    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(v) => v.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => *v,
            _ => None,
        }
    }

    pub(crate) fn as_real(&self) -> Option<f64> {
        match self {
            Value::Real(v) => *v,
            _ => None,
        }
    }
}

/// The type of a column read back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Int,
    Real,
    Text,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Value::Int(v) => v.to_sql(),
            Value::Real(v) => v.to_sql(),
            Value::Text(v) => v.to_sql(),
        }
    }
}

fn pg_param(value: &Value) -> &(dyn postgres::types::ToSql + Sync) {
    match value {
        Value::Int(v) => v,
        Value::Real(v) => v,
        Value::Text(v) => v,
    }
}

/// Where the history lives, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// `postgres://…`/`postgresql://…`, `sqlite:PATH`, or a plain path to a SQLite file.
    pub fn parse(text: &str) -> Result<Location, Error> {
        match scenarios::history::parse(text) {
            Some(scenarios::history::HistoryAt::Postgres(url)) => Ok(Location::Postgres(url)),
            Some(scenarios::history::HistoryAt::Sqlite(path)) => {
                Ok(Location::Sqlite(PathBuf::from(path)))
            }
            None => Err(Error::Location(format!(
                "history {} is neither a SQLite file (a path or `sqlite:PATH`) nor a \
                 `postgres://` URL",
                userinput::echo::redact_url(text)
            ))),
        }
    }

    /// The default history of a runs directory: `DIR/history.sqlite`.
    pub fn beside(runs_dir: &Path) -> Location {
        Location::Sqlite(runs_dir.join(DEFAULT_FILE))
    }

    /// How it is shown to people: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => userinput::echo::redact_url(url),
        }
    }
}

enum Connection {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// An open, migrated history.
pub struct Store {
    connection: Connection,
    /// The location shown in errors.
    shown: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("at", &self.shown).finish()
    }
}

/// One transaction; dropping it without [`Tx::commit`] rolls it back.
pub(crate) struct Tx<'a> {
    inner: TxInner<'a>,
    shown: &'a str,
}

enum TxInner<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(postgres::Transaction<'a>),
}

fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

impl Tx<'_> {
    fn sqlite_error(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.shown.to_owned(),
            source,
        }
    }

    fn pg_error(&self, source: postgres::Error) -> Error {
        Error::Postgres {
            url: self.shown.to_owned(),
            source,
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
                .map(|n| n as u64)
                .map_err(|e| Error::Sqlite {
                    path: self.shown.to_owned(),
                    source: e,
                }),
            TxInner::Postgres(tx) => {
                let params: Vec<_> = params.iter().map(pg_param).collect();
                tx.execute(numbered(sql).as_str(), &params)
                    .map_err(|e| Error::Postgres {
                        url: self.shown.to_owned(),
                        source: e,
                    })
            }
        }
    }

    /// Runs several `;`-separated statements without parameters.
    fn batch(&mut self, sql: &str) -> Result<(), Error> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.execute_batch(sql).map_err(|e| Error::Sqlite {
                path: self.shown.to_owned(),
                source: e,
            }),
            TxInner::Postgres(tx) => tx.batch_execute(sql).map_err(|e| Error::Postgres {
                url: self.shown.to_owned(),
                source: e,
            }),
        }
    }

    /// Runs a query and reads each row's columns as `kinds`.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Value>>, Error> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => {
                let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Vec<Value>> {
                    kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| {
                            Ok(match kind {
                                Kind::Int => Value::Int(row.get(i)?),
                                Kind::Real => Value::Real(row.get(i)?),
                                Kind::Text => Value::Text(row.get(i)?),
                            })
                        })
                        .collect()
                };
                let result = tx.prepare_cached(sql).and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(params), read)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                });
                result.map_err(|e| self.sqlite_error(e))
            }
            TxInner::Postgres(tx) => {
                let params: Vec<_> = params.iter().map(pg_param).collect();
                let rows = tx.query(numbered(sql).as_str(), &params);
                let rows = rows.map_err(|e| self.pg_error(e))?;
                rows.iter()
                    .map(|row| {
                        kinds
                            .iter()
                            .enumerate()
                            .map(|(i, kind)| {
                                Ok(match kind {
                                    Kind::Int => Value::Int(row.try_get(i)?),
                                    Kind::Real => Value::Real(row.try_get(i)?),
                                    Kind::Text => Value::Text(row.try_get(i)?),
                                })
                            })
                            .collect::<Result<Vec<_>, postgres::Error>>()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.pg_error(e))
            }
        }
    }

    /// Makes the transaction's writes durable and visible.
    pub(crate) fn commit(self) -> Result<(), Error> {
        let shown = self.shown.to_owned();
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().map_err(|source| Error::Sqlite {
                path: shown,
                source,
            }),
            TxInner::Postgres(tx) => tx
                .commit()
                .map_err(|source| Error::Postgres { url: shown, source }),
        }
    }
}

/// Which runs a query is about. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Campaign name.
    pub campaign: Option<String>,
    /// Every one of these labels, with these values.
    pub labels: Labels,
    /// Only the most recent N runs (by start time) among those that match.
    pub last: Option<usize>,
    /// Only runs that started before this instant (microseconds since the epoch).
    pub before_us: Option<i64>,
    /// Leave this run out (the run a gate judges).
    pub except_run: Option<String>,
    /// Only runs that completed (not aborted by a guardrail, not interrupted).
    pub completed_only: bool,
}

/// One run as `history list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run's id from report.json.
    pub run_id: String,
    /// Campaign name.
    pub campaign: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Start time in microseconds since the epoch (the sort key).
    pub started_us: i64,
    /// `completed`, `aborted` or `interrupted`.
    pub outcome: String,
    /// Completed with every hypothesis held.
    pub passed: bool,
    /// Hypotheses judged.
    pub hypotheses: i64,
    /// Hypotheses that held.
    pub hypotheses_held: i64,
    /// Where the run directory was when it was recorded.
    pub run_dir: Option<String>,
    /// Labels.
    pub labels: Labels,
}

impl Store {
    /// Opens (creating if needed) and migrates the history at `location`.
    pub fn open(location: &Location) -> Result<Store, Error> {
        Store::open_at_version(location, SCHEMA_VERSION)
    }

    /// Opens the history migrating it only up to `version` (tests make older databases so).
    #[doc(hidden)]
    pub fn open_at_version(location: &Location, version: i64) -> Result<Store, Error> {
        let shown = location.display();
        let connection = match location {
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Location(format!(
                            "cannot create the directory of the history {shown}: {e}"
                        ))
                    })?;
                }
                let sqlite_error = |source| Error::Sqlite {
                    path: shown.clone(),
                    source,
                };
                let connection = rusqlite::Connection::open(path).map_err(sqlite_error)?;
                connection
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(sqlite_error)?;
                // WAL: readers do not block the writer, and a killed writer's partial
                // transaction is never part of the database. Switching a new database to WAL
                // needs an exclusive lock and SQLite answers "database is locked" at once,
                // without its busy handler, while another process does the same: retry.
                let since = std::time::Instant::now();
                loop {
                    match connection.pragma_update(None, "journal_mode", "WAL") {
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::DatabaseBusy
                                && since.elapsed() < BUSY_TIMEOUT =>
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        result => break result.map_err(sqlite_error)?,
                    }
                }
                connection
                    .pragma_update(None, "foreign_keys", "ON")
                    .map_err(sqlite_error)?;
                Connection::Sqlite(connection)
            }
            Location::Postgres(url) => {
                let client = postgres::Client::connect(url, postgres::NoTls).map_err(|source| {
                    Error::Postgres {
                        url: shown.clone(),
                        source,
                    }
                })?;
                Connection::Postgres(Box::new(client))
            }
        };
        let mut store = Store { connection, shown };
        store.migrate_to(version)?;
        Ok(store)
    }

    /// Where the store is, as shown to people.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Starts a write transaction (SQLite: taking the write lock now, so that two writers queue
    /// instead of one failing at its first write).
    pub(crate) fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        self.begin(rusqlite::TransactionBehavior::Immediate)
    }

    /// Starts a read transaction: one consistent view, without blocking writers.
    pub(crate) fn read(&mut self) -> Result<Tx<'_>, Error> {
        self.begin(rusqlite::TransactionBehavior::Deferred)
    }

    fn begin(&mut self, behavior: rusqlite::TransactionBehavior) -> Result<Tx<'_>, Error> {
        let shown = self.shown.as_str();
        let inner = match &mut self.connection {
            Connection::Sqlite(connection) => {
                TxInner::Sqlite(connection.transaction_with_behavior(behavior).map_err(
                    |source| Error::Sqlite {
                        path: shown.to_owned(),
                        source,
                    },
                )?)
            }
            Connection::Postgres(client) => {
                TxInner::Postgres(client.transaction().map_err(|source| Error::Postgres {
                    url: shown.to_owned(),
                    source,
                })?)
            }
        };
        Ok(Tx { inner, shown })
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, Error> {
        let mut tx = self.read()?;
        let rows = tx.query("SELECT version FROM schema_version", &[], &[Kind::Int])?;
        Ok(rows.first().and_then(|r| r[0].as_int()).unwrap_or(0))
    }

    /// Applies the migrations up to `target` in one transaction.
    fn migrate_to(&mut self, target: i64) -> Result<(), Error> {
        let postgres = matches!(self.connection, Connection::Postgres(_));
        let mut tx = self.transaction()?;
        if postgres {
            tx.execute(
                "SELECT pg_advisory_xact_lock(?)::text",
                &[Value::Int(Some(MIGRATION_LOCK))],
            )?;
        }
        tx.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let rows = tx.query("SELECT version FROM schema_version", &[], &[Kind::Int])?;
        let current = match rows.first() {
            Some(row) => row[0].as_int().unwrap_or(0),
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
                0
            }
        };
        if current > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        for migration in MIGRATIONS
            .iter()
            .take(target as usize)
            .skip(current as usize)
        {
            tx.batch(migration)?;
        }
        if target > current {
            tx.execute(
                "UPDATE schema_version SET version = ?",
                &[Value::Int(Some(target))],
            )?;
        }
        tx.commit()
    }

    /// Runs matching `filter`, oldest first.
    pub fn runs(&mut self, filter: &Filter) -> Result<Vec<RunSummary>, Error> {
        let mut sql = "SELECT run_id, campaign, started_at, started_us, outcome, passed, \
                       hypotheses, hypotheses_held, run_dir FROM runs WHERE 1 = 1"
            .to_owned();
        let mut params = Vec::new();
        if let Some(campaign) = &filter.campaign {
            sql.push_str(" AND campaign = ?");
            params.push(Value::text(campaign));
        }
        for (key, value) in &filter.labels {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM labels l WHERE l.run_id = runs.run_id \
                 AND l.key = ? AND l.value = ?)",
            );
            params.push(Value::text(key));
            params.push(Value::text(value));
        }
        if let Some(before) = filter.before_us {
            sql.push_str(" AND started_us < ?");
            params.push(Value::Int(Some(before)));
        }
        if let Some(run) = &filter.except_run {
            sql.push_str(" AND run_id <> ?");
            params.push(Value::text(run));
        }
        if filter.completed_only {
            sql.push_str(" AND outcome = 'completed'");
        }
        sql.push_str(" ORDER BY started_us DESC, run_id DESC");
        if let Some(last) = filter.last {
            sql.push_str(" LIMIT ?");
            params.push(Value::int(last));
        }
        let mut tx = self.read()?;
        let rows = tx.query(
            &sql,
            &params,
            &[
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Int,
                Kind::Int,
                Kind::Int,
                Kind::Text,
            ],
        )?;
        let mut labels = all_labels(&mut tx)?;
        let mut runs: Vec<RunSummary> = rows
            .into_iter()
            .map(|r| {
                let run_id = r[0].as_text().unwrap_or_default().to_owned();
                RunSummary {
                    labels: labels.remove(&run_id).unwrap_or_default(),
                    run_id,
                    campaign: r[1].as_text().unwrap_or_default().to_owned(),
                    started_at: r[2].as_text().unwrap_or_default().to_owned(),
                    started_us: r[3].as_int().unwrap_or_default(),
                    outcome: r[4].as_text().unwrap_or_default().to_owned(),
                    passed: r[5].as_int() == Some(1),
                    hypotheses: r[6].as_int().unwrap_or_default(),
                    hypotheses_held: r[7].as_int().unwrap_or_default(),
                    run_dir: r[8].as_text().map(str::to_owned),
                }
            })
            .collect();
        runs.reverse();
        Ok(runs)
    }

    /// The figures of the given runs, by run id.
    pub fn figures(&mut self, run_ids: &[String]) -> Result<BTreeMap<String, Vec<Figure>>, Error> {
        let mut out: BTreeMap<String, Vec<Figure>> = BTreeMap::new();
        let mut tx = self.read()?;
        for run in run_ids {
            let rows = tx.query(
                "SELECT experiment, figure, value, better FROM figures WHERE run_id = ? \
                 ORDER BY experiment, figure",
                &[Value::text(run)],
                &[Kind::Text, Kind::Text, Kind::Real, Kind::Text],
            )?;
            let figures = out.entry(run.clone()).or_default();
            for r in rows {
                figures.push(Figure {
                    experiment: r[0].as_text().unwrap_or_default().to_owned(),
                    name: r[1].as_text().unwrap_or_default().to_owned(),
                    value: r[2].as_real().unwrap_or(f64::NAN),
                    better: Better::parse(r[3].as_text().unwrap_or_default())
                        .unwrap_or(Better::Lower),
                });
            }
        }
        Ok(out)
    }

    /// Everything recorded about one run.
    pub fn show(&mut self, run_id: &str) -> Result<RunDetail, Error> {
        let summary = self
            .runs(&Filter::default())?
            .into_iter()
            .find(|r| r.run_id == run_id)
            .ok_or_else(|| Error::NoSuchRun(run_id.to_owned()))?;
        let mut tx = self.read()?;
        let id = [Value::text(run_id)];
        let repetitions = tx
            .query(
                "SELECT experiment, repetition, faults, targets, verdict, recovery_s \
                 FROM repetitions WHERE run_id = ? ORDER BY experiment, repetition",
                &id,
                &[
                    Kind::Text,
                    Kind::Int,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Real,
                ],
            )?
            .into_iter()
            .map(|r| RepetitionRow {
                experiment: r[0].as_text().unwrap_or_default().to_owned(),
                repetition: r[1].as_int().unwrap_or_default(),
                faults: r[2].as_text().unwrap_or_default().to_owned(),
                targets: r[3].as_text().unwrap_or_default().to_owned(),
                verdict: r[4].as_text().unwrap_or_default().to_owned(),
                recovery_s: r[5].as_real(),
            })
            .collect();
        drop(tx);
        let figures = self
            .figures(&[run_id.to_owned()])?
            .remove(run_id)
            .unwrap_or_default();
        Ok(RunDetail {
            summary,
            repetitions,
            figures,
        })
    }
}

fn all_labels(tx: &mut Tx<'_>) -> Result<BTreeMap<String, Labels>, Error> {
    let mut out: BTreeMap<String, Labels> = BTreeMap::new();
    for r in tx.query(
        "SELECT run_id, key, value FROM labels",
        &[],
        &[Kind::Text, Kind::Text, Kind::Text],
    )? {
        out.entry(r[0].as_text().unwrap_or_default().to_owned())
            .or_default()
            .insert(
                r[1].as_text().unwrap_or_default().to_owned(),
                r[2].as_text().unwrap_or_default().to_owned(),
            );
    }
    Ok(out)
}

/// One repetition as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RepetitionRow {
    /// Experiment name.
    pub experiment: String,
    /// Zero-based repetition index.
    pub repetition: i64,
    /// Fault kinds, comma-separated, in injection order.
    pub faults: String,
    /// Fault targets (`service@host`), comma-separated.
    pub targets: String,
    /// `pass` when every hypothesis held, else `fail`.
    pub verdict: String,
    /// Seconds to recover, when it did.
    pub recovery_s: Option<f64>,
}

/// What `history show` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    /// The run.
    pub summary: RunSummary,
    /// Its repetitions.
    pub repetitions: Vec<RepetitionRow>,
    /// Its figures.
    pub figures: Vec<Figure>,
}
