//! The experiment store: SQLite at `.kale/kale.db` beside the notebook.
//!
//! Every state change is its own committed transaction, so killing the tuning process
//! (even `kill -9`) loses at most the trials that were running. The database runs in
//! WAL mode with a busy timeout, so two tunes of the same notebook (or a tune and an
//! `experiments show`) can use it at once.
//!
//! Contract: finished trials are never modified; a trial left `running` by a process
//! that is gone is marked `interrupted` the next time the experiment is opened for
//! writing, and does not count towards the trial budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kale_search::Direction;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("experiment store {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no experiment named `{0}`")]
    NotFound(String),
    #[error("experiment `{name}` is being run by another kale process (pid {pid})")]
    Busy { name: String, pid: i64 },
    #[error("an experiment named `{0}` already exists")]
    Taken(String),
    #[error("experiment store {0} was deleted or replaced while kale was writing to it")]
    Gone(PathBuf),
    #[error(
        "experiment store {path} has schema version {found}; this kale reads versions up to {SCHEMA_VERSION}"
    )]
    TooNew { path: PathBuf, found: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A missing or taken name is the user's to fix; SQLite failing, or another kale
/// process holding the experiment, is not.
impl From<StoreError> for crate::Error {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => crate::Error::bad_input(&e)
                .with_hint("`kale experiments list` shows the experiments"),
            StoreError::Taken(_) => crate::Error::bad_input(&e)
                .with_hint("pick another --name, or continue that one with --resume"),
            StoreError::Busy { .. } => crate::Error::environment(&e)
                .with_hint("wait for it to finish, or stop it (Ctrl-C) and resume with --resume"),
            StoreError::Sql { .. } => crate::Error::environment(&e),
            StoreError::Gone(_) => crate::Error::environment(&e).with_hint(
                "what this tune recorded since is lost with it; leave `.kale/` alone while kale runs",
            ),
            StoreError::TooNew { .. } => crate::Error::environment(&e).with_hint(
                "a newer kale wrote it: upgrade kale (`pip install -U kale`) to read it",
            ),
        }
    }
}

/// Where a trial is in its life. Stored as the snake_case name (`early_stopped`), the
/// strings every kale version has written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    Running,
    Succeeded,
    Failed,
    /// Stopped by the early-stopping rule; its last intermediate value is its value.
    EarlyStopped,
    /// Its session ended (Ctrl-C, a crash) before it finished; it does not count
    /// towards the budget and a resumed experiment runs another in its place.
    Interrupted,
}

/// How an experiment stands; `Running` while a kale process owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

macro_rules! stored_as_text {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(<$ty>::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, so table columns (`{:<11}`) line up.
                f.pad(self.as_str())
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$ty>::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} `{text}`", stringify!($ty)).into(),
                    )
                })
            }
        }
    };
}

stored_as_text!(TrialStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    EarlyStopped => "early_stopped",
    Interrupted => "interrupted",
});

stored_as_text!(ExperimentStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Interrupted => "interrupted",
});

impl TrialStatus {
    /// Finished trials the budget counts: not running, not interrupted.
    pub fn counts_toward_budget(self) -> bool {
        matches!(
            self,
            TrialStatus::Succeeded | TrialStatus::Failed | TrialStatus::EarlyStopped
        )
    }
}

/// One objective of an experiment: a pipeline metric and which way is better.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub name: String,
    pub direction: Direction,
}

/// Which side of its bound a constrained metric must stay on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// `METRIC<=VALUE`
    #[serde(rename = "<=")]
    AtMost,
    /// `METRIC>=VALUE`
    #[serde(rename = ">=")]
    AtLeast,
}

/// `METRIC<=VALUE` or `METRIC>=VALUE`, with Optuna's semantics: the constraint value
/// is `metric - bound` (`<=`) or `bound - metric` (`>=`), satisfied when `<= 0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: String,
    pub bound: Bound,
    pub value: f64,
}

impl Constraint {
    /// The constraint value for a reported metric; NaN (violated) when the run did
    /// not report it as a finite number.
    pub fn evaluate(&self, metric: Option<f64>) -> f64 {
        match metric.filter(|m| m.is_finite()) {
            Some(m) => match self.bound {
                Bound::AtMost => m - self.value,
                Bound::AtLeast => self.value - m,
            },
            None => f64::NAN,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        write!(f, "{}{op}{}", self.metric, crate::format::num(self.value))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Experiment {
    pub id: i64,
    /// What the experiment was created with.
    #[serde(flatten)]
    pub spec: NewExperiment,
    pub status: ExperimentStatus,
    pub reason: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    /// Seconds spent running, summed over sessions (a resumed experiment adds up).
    pub wall_seconds: f64,
    pub owner_pid: Option<i64>,
    /// When the session now running it started (set by create and claim); `None` in
    /// rows an older kale wrote.
    pub session_started_at: Option<f64>,
}

impl Experiment {
    /// Seconds spent running, the current session included while it runs.
    pub fn wall_seconds_now(&self) -> f64 {
        if self.status != ExperimentStatus::Running {
            return self.wall_seconds;
        }
        let since = self.session_started_at.unwrap_or(self.created_at);
        self.wall_seconds + (now() - since).max(0.0)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TrialRow {
    pub experiment_id: i64,
    pub number: i64,
    pub params: Value,
    pub status: TrialStatus,
    /// The first objective's value.
    pub value: Option<f64>,
    /// Every objective's value, in the experiment's order (empty unless succeeded
    /// or stopped early); a trial of a version-1 store has its `value` here.
    pub values: Vec<f64>,
    /// Constraint values in the experiment's order; NaN for a metric the run did
    /// not report. Empty when the experiment has no constraints.
    pub constraints: Vec<f64>,
    pub metrics: Value,
    pub intermediate: Vec<f64>,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub seconds: Option<f64>,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub error: Option<String>,
    pub run_dir: Option<String>,
}

impl TrialRow {
    /// Total constraint violation, as the samplers count it
    /// ([`kale_search::trial::violation`]).
    pub fn violation(&self) -> f64 {
        kale_search::trial::violation(&self.constraints)
    }

    /// Whether every constraint holds (a trial of an unconstrained experiment is).
    pub fn is_feasible(&self) -> bool {
        self.violation() == 0.0
    }
}

/// What a finished trial left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialResult {
    pub status: TrialStatus,
    /// The objective (a `succeeded` trial's metric, an early-stopped one's last report).
    pub value: Option<f64>,
    /// Every objective's value when the trial succeeded (`value` is the first).
    pub values: Vec<f64>,
    /// The constraints' values (NaN: the metric was not reported).
    pub constraints: Vec<f64>,
    pub metrics: BTreeMap<String, Value>,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub error: Option<String>,
}

/// Settings of a new experiment.
#[derive(Clone, Debug, Serialize)]
pub struct NewExperiment {
    pub name: String,
    pub notebook: String,
    pub notebook_hash: String,
    /// The first objective's metric and direction (all of them are in `objectives`).
    pub objective: String,
    pub direction: Direction,
    /// Every objective, the first being `objective`; one for a version-1 experiment.
    pub objectives: Vec<Objective>,
    pub constraints: Vec<Constraint>,
    pub goal: Option<f64>,
    pub algorithm: String,
    pub settings: Value,
    pub space: Value,
    pub max_trials: i64,
    pub parallel: i64,
    pub max_failed: i64,
    pub early_stopping: Option<Value>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The file opened (device, inode): a store deleted or replaced under a running
    /// tune is noticed instead of written to in vain.
    file: Option<(u64, u64)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    notebook TEXT NOT NULL,
    notebook_hash TEXT NOT NULL,
    objective TEXT NOT NULL,
    direction TEXT NOT NULL,
    goal REAL,
    algorithm TEXT NOT NULL,
    settings TEXT NOT NULL,
    space TEXT NOT NULL,
    max_trials INTEGER NOT NULL,
    parallel INTEGER NOT NULL,
    max_failed INTEGER NOT NULL,
    early_stopping TEXT,
    objectives TEXT,
    constraints TEXT,
    session_started_at REAL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    wall_seconds REAL NOT NULL DEFAULT 0,
    owner_pid INTEGER
);
CREATE TABLE IF NOT EXISTS trials (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    value REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    intermediate TEXT NOT NULL DEFAULT '[]',
    started_at REAL NOT NULL,
    finished_at REAL,
    seconds REAL,
    cache_hits INTEGER NOT NULL DEFAULT 0,
    cache_misses INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    run_dir TEXT,
    objective_values TEXT,
    constraint_values TEXT,
    PRIMARY KEY (experiment_id, number)
);
CREATE TABLE IF NOT EXISTS notes (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    trial_number INTEGER NOT NULL,
    text TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (experiment_id, trial_number)
);
";

/// `trial_number` of an experiment's own note in the `notes` table.
const EXPERIMENT_NOTE: i64 = -1;

/// The schema this kale writes, in SQLite's `user_version`. A database written by a
/// newer kale is refused rather than misread; an older one is migrated in place.
/// Version 2 added several objectives and constraints (JSON columns, NULL in rows
/// a version-1 kale wrote, which read as one objective and no constraints).
/// Version 3 added notes on experiments and trials (their own table) and when the
/// running session of an experiment started (so a live view can tell its wall time).
pub const SCHEMA_VERSION: i64 = 3;

/// Columns added since version 1, as (table, column, type).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("experiments", "objectives", "TEXT"),
    ("experiments", "constraints", "TEXT"),
    ("trials", "objective_values", "TEXT"),
    ("trials", "constraint_values", "TEXT"),
    ("experiments", "session_started_at", "REAL"),
];

/// Brings a version-1 or version-2 database to the current schema (tables it lacks,
/// such as `notes`, come from [`SCHEMA`]'s `CREATE TABLE IF NOT EXISTS`). Run inside one immediate
/// transaction so that two kale processes opening an old store at once do not both
/// add a column; a column already there is left alone.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        for (table, column, ty) in ADDED_COLUMNS {
            let present: bool = tx.query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                [column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !present {
                tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()
}

fn now() -> f64 {
    crate::exec::manifest::now()
}

/// Runs `f` again while SQLite says the database is busy or locked, for up to 10 s.
fn retry_while_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Store {
    /// `.kale/kale.db` beside the notebook.
    pub fn default_path(notebook: &Path) -> PathBuf {
        crate::layout::Layout::for_notebook(notebook).database()
    }

    /// The store of a notebook (its path) or of a notebook directory.
    pub fn path_for(notebook_or_dir: &Path) -> PathBuf {
        crate::layout::Layout::for_dir_or_notebook(notebook_or_dir).database()
    }

    pub fn open(path: &Path) -> Result<Store> {
        let sql = |source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        // Two tunes opening a new store at once: switching it to WAL and creating the
        // schema can fail with "database is locked" without consulting the busy
        // handler (SQLite returns at once where waiting could deadlock), so retry.
        retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(sql)?;
        // WAL + NORMAL is durable across process crashes (what kill -9 is); only an OS
        // crash could lose the last transactions.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        check_schema_version(&conn, path)?;
        retry_while_busy(|| conn.execute_batch(SCHEMA)).map_err(sql)?;
        retry_while_busy(|| migrate(&conn)).map_err(sql)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            file: file_identity(path),
        })
    }

    /// Opens an existing store for reading only (the dashboard): no schema change,
    /// no journal-mode switch, so a reader can never disturb a running tune.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let sql = |source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        check_schema_version(&conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            file: file_identity(path),
        })
    }

    /// Changes whenever another connection commits to the database (SQLite's
    /// `data_version`); cheap enough to poll for live views.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    pub fn create_experiment(&self, e: &NewExperiment) -> Result<Experiment> {
        let t = now();
        self.conn
            .execute(
                "INSERT INTO experiments (name, notebook, notebook_hash, objective, direction, goal, algorithm, settings, space,
                 max_trials, parallel, max_failed, early_stopping, status, created_at, updated_at, owner_pid,
                 objectives, constraints, session_started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'running', ?14, ?14, ?15, ?16, ?17, ?14)",
                params![
                    e.name,
                    e.notebook,
                    e.notebook_hash,
                    e.objective,
                    e.direction.as_str(),
                    e.goal,
                    e.algorithm,
                    e.settings.to_string(),
                    e.space.to_string(),
                    e.max_trials,
                    e.parallel,
                    e.max_failed,
                    e.early_stopping.as_ref().map(|v| v.to_string()),
                    t,
                    i64::from(std::process::id()),
                    serde_json::to_string(&e.objectives).unwrap(),
                    serde_json::to_string(&e.constraints).unwrap(),
                ],
            )
            .map_err(|err| match err {
                // Another process created it between our look and this insert.
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Taken(e.name.clone())
                }
                err => self.sql(err),
            })?;
        self.experiment(&e.name)
    }

    pub fn experiment(&self, name: &str) -> Result<Experiment> {
        self.conn
            .query_row(
                "SELECT * FROM experiments WHERE name = ?1",
                [name],
                row_to_experiment,
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    pub fn experiment_exists(&self, name: &str) -> Result<bool> {
        match self.experiment(name) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn experiments(&self) -> Result<Vec<Experiment>> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM experiments ORDER BY created_at")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], row_to_experiment)
            .map_err(|e| self.sql(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Takes ownership of an experiment for this process, after checking no other live
    /// process owns it; trials a dead owner left running become `interrupted`.
    pub fn claim(&self, experiment: &Experiment) -> Result<()> {
        let me = i64::from(std::process::id());
        if let Some(pid) = experiment.owner_pid
            && pid != me
            && experiment.status == ExperimentStatus::Running
            && process_alive(pid)
        {
            return Err(StoreError::Busy {
                name: experiment.spec.name.clone(),
                pid,
            });
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        tx.execute(
            "UPDATE trials SET status = 'interrupted', finished_at = ?2,
             error = COALESCE(error, 'the tuning process stopped while the trial ran')
             WHERE experiment_id = ?1 AND status = 'running'",
            params![experiment.id, now()],
        )
        .map_err(|e| self.sql(e))?;
        tx.execute(
            "UPDATE experiments SET owner_pid = ?2, status = 'running', reason = NULL, updated_at = ?3,
             session_started_at = ?3 WHERE id = ?1",
            params![experiment.id, me, now()],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    pub fn finish_experiment(
        &self,
        id: i64,
        status: ExperimentStatus,
        reason: &str,
        wall_seconds: f64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE experiments SET status = ?2, reason = ?3, updated_at = ?4,
                 wall_seconds = wall_seconds + ?5, owner_pid = NULL WHERE id = ?1",
                params![id, status, reason, now(), wall_seconds],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn next_trial_number(&self, experiment_id: i64) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE experiment_id = ?1",
                [experiment_id],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    pub fn start_trial(&self, experiment_id: i64, number: i64, params_json: &Value) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO trials (experiment_id, number, params, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![experiment_id, number, params_json.to_string(), now()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn set_run_dir(&self, experiment_id: i64, number: i64, run_dir: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE trials SET run_dir = ?3 WHERE experiment_id = ?1 AND number = ?2",
                params![experiment_id, number, run_dir],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn record_intermediate(
        &self,
        experiment_id: i64,
        number: i64,
        values: &[f64],
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE trials SET intermediate = ?3 WHERE experiment_id = ?1 AND number = ?2 AND status = 'running'",
                params![experiment_id, number, serde_json::to_string(values).unwrap()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn finish_trial(
        &self,
        experiment_id: i64,
        number: i64,
        result: &TrialResult,
        seconds: f64,
    ) -> Result<()> {
        // `status = 'running'` keeps finished trials immutable.
        self.conn
            .execute(
                "UPDATE trials SET status = ?3, value = ?4, metrics = ?5, finished_at = ?6, seconds = ?7,
                 cache_hits = ?8, cache_misses = ?9, error = ?10, objective_values = ?11,
                 constraint_values = ?12
                 WHERE experiment_id = ?1 AND number = ?2 AND status = 'running'",
                params![
                    experiment_id,
                    number,
                    result.status,
                    result.value,
                    serde_json::to_string(&result.metrics).unwrap(),
                    now(),
                    seconds,
                    result.cache_hits,
                    result.cache_misses,
                    result.error,
                    numbers_json(&result.values),
                    numbers_json(&result.constraints),
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// One trial; the tune loop reads back each trial it changes, and re-reading the
    /// whole experiment each time would make a long tune quadratic.
    pub fn trial(&self, experiment_id: i64, number: i64) -> Result<TrialRow> {
        self.conn
            .query_row(
                "SELECT * FROM trials WHERE experiment_id = ?1 AND number = ?2",
                params![experiment_id, number],
                row_to_trial,
            )
            .map_err(|e| self.sql(e))
    }

    pub fn trials(&self, experiment_id: i64) -> Result<Vec<TrialRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM trials WHERE experiment_id = ?1 ORDER BY number")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([experiment_id], row_to_trial)
            .map_err(|e| self.sql(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Removes an experiment and its trials. Refused while a live process runs it.
    pub fn delete_experiment(&self, name: &str) -> Result<Experiment> {
        let e = self.experiment(name)?;
        self.check_not_running(&e)?;
        self.conn
            .execute("DELETE FROM experiments WHERE id = ?1", [e.id])
            .map_err(|err| self.sql(err))?;
        Ok(e)
    }

    /// Gives an experiment a new name. Refused while a live process runs it, and
    /// when the new name is taken.
    pub fn rename_experiment(&self, from: &str, to: &str) -> Result<()> {
        let e = self.experiment(from)?;
        self.check_not_running(&e)?;
        if self.experiment_exists(to)? {
            return Err(StoreError::Taken(to.to_string()));
        }
        self.conn
            .execute(
                "UPDATE experiments SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![e.id, to, now()],
            )
            .map_err(|err| self.sql(err))?;
        Ok(())
    }

    /// Sets (or, with empty text, removes) the note on an experiment (`trial: None`)
    /// or on one of its trials. Notes are the one thing the dashboard writes.
    pub fn set_note(&self, experiment_id: i64, trial: Option<i64>, text: &str) -> Result<()> {
        let key = trial.unwrap_or(EXPERIMENT_NOTE);
        let changed = if text.trim().is_empty() {
            self.conn.execute(
                "DELETE FROM notes WHERE experiment_id = ?1 AND trial_number = ?2",
                params![experiment_id, key],
            )
        } else {
            self.conn.execute(
                "INSERT INTO notes (experiment_id, trial_number, text, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (experiment_id, trial_number) DO UPDATE SET text = ?3, updated_at = ?4",
                params![experiment_id, key, text, now()],
            )
        };
        changed.map(|_| ()).map_err(|e| self.sql(e))
    }

    /// An experiment's notes: its own under `None`, each trial's under its number. A
    /// store older than version 3 (read-only, not migrated) has none.
    pub fn notes(&self, experiment_id: i64) -> Result<BTreeMap<Option<i64>, String>> {
        let mut stmt = match self
            .conn
            .prepare("SELECT trial_number, text FROM notes WHERE experiment_id = ?1")
        {
            Ok(s) => s,
            Err(e) if e.to_string().contains("no such table") => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.sql(e)),
        };
        let rows = stmt
            .query_map([experiment_id], |r| {
                let n: i64 = r.get(0)?;
                Ok(((n != EXPERIMENT_NOTE).then_some(n), r.get::<_, String>(1)?))
            })
            .map_err(|e| self.sql(e))?
            .collect::<std::result::Result<BTreeMap<_, _>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    fn check_not_running(&self, e: &Experiment) -> Result<()> {
        if let Some(pid) = e.owner_pid
            && e.status == ExperimentStatus::Running
            && pid != i64::from(std::process::id())
            && process_alive(pid)
        {
            return Err(StoreError::Busy {
                name: e.spec.name.clone(),
                pid,
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails when the store's file is no longer the one this connection writes to
    /// (deleted, or replaced by another): SQLite would go on writing to the unlinked
    /// file, and everything recorded would be lost when the process ends.
    pub fn check_still_there(&self) -> Result<()> {
        match (self.file, file_identity(&self.path)) {
            (Some(opened), Some(now)) if opened == now => Ok(()),
            (None, _) => Ok(()),
            _ => Err(StoreError::Gone(self.path.clone())),
        }
    }
}

fn check_schema_version(conn: &Connection, path: &Path) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(())
}

fn parse_direction(text: &str) -> rusqlite::Result<Direction> {
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown direction `{text}`").into(),
        )
    })
}

/// Numbers as a JSON list, NaN (a constraint metric never reported) as `null`.
fn numbers_json(values: &[f64]) -> String {
    let list: Vec<Option<f64>> = values.iter().map(|v| v.is_finite().then_some(*v)).collect();
    serde_json::to_string(&list).unwrap()
}

/// A column added in version 2: absent from a version-1 store opened read-only, NULL
/// in rows a version-1 kale wrote.
fn added_text(r: &rusqlite::Row, column: &str) -> Option<String> {
    r.get::<_, Option<String>>(column).ok().flatten()
}

fn numbers_from(text: Option<String>) -> Vec<f64> {
    text.and_then(|t| serde_json::from_str::<Vec<Option<f64>>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

fn row_to_experiment(r: &rusqlite::Row) -> rusqlite::Result<Experiment> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
    let objective: String = r.get("objective")?;
    let direction = parse_direction(&r.get::<_, String>("direction")?)?;
    let objectives = added_text(r, "objectives")
        .and_then(|t| serde_json::from_str::<Vec<Objective>>(&t).ok())
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| {
            vec![Objective {
                name: objective.clone(),
                direction,
            }]
        });
    let constraints = added_text(r, "constraints")
        .and_then(|t| serde_json::from_str::<Vec<Constraint>>(&t).ok())
        .unwrap_or_default();
    let name: String = r.get("name")?;
    let notebook: String = r.get("notebook")?;
    let mut status: ExperimentStatus = r.get("status")?;
    let mut reason: Option<String> = r.get("reason")?;
    let owner_pid: Option<i64> = r.get("owner_pid")?;
    // A process that ended without finishing its experiment (kill -9, a crash, a
    // machine that went down) left it `running`: it is interrupted, and says how to
    // go on. (Nothing is written here: the next `--resume` claims it.)
    if status == ExperimentStatus::Running
        && let Some(pid) = owner_pid
        && !process_alive(pid)
    {
        status = ExperimentStatus::Interrupted;
        reason = Some(format!(
            "its kale process (pid {pid}) is gone; resume with `kale tune {notebook} --name {name} --resume`"
        ));
    }
    Ok(Experiment {
        id: r.get("id")?,
        spec: NewExperiment {
            name,
            notebook,
            notebook_hash: r.get("notebook_hash")?,
            objective,
            direction,
            objectives,
            constraints,
            goal: r.get("goal")?,
            algorithm: r.get("algorithm")?,
            settings: json(r.get("settings")?),
            space: json(r.get("space")?),
            max_trials: r.get("max_trials")?,
            parallel: r.get("parallel")?,
            max_failed: r.get("max_failed")?,
            early_stopping: r.get::<_, Option<String>>("early_stopping")?.map(json),
        },
        status,
        reason,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        wall_seconds: r.get("wall_seconds")?,
        owner_pid,
        session_started_at: r.get::<_, Option<f64>>("session_started_at").ok().flatten(),
    })
}

fn row_to_trial(r: &rusqlite::Row) -> rusqlite::Result<TrialRow> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
    let value: Option<f64> = r.get("value")?;
    let values = match added_text(r, "objective_values") {
        Some(t) => numbers_from(Some(t)),
        None => value.into_iter().collect(),
    };
    Ok(TrialRow {
        experiment_id: r.get("experiment_id")?,
        number: r.get("number")?,
        params: json(r.get("params")?),
        status: r.get("status")?,
        value,
        values,
        constraints: numbers_from(added_text(r, "constraint_values")),
        metrics: json(r.get("metrics")?),
        intermediate: serde_json::from_str(&r.get::<_, String>("intermediate")?)
            .unwrap_or_default(),
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        seconds: r.get("seconds")?,
        cache_hits: r.get("cache_hits")?,
        cache_misses: r.get("cache_misses")?,
        error: r.get("error")?,
        run_dir: r.get("run_dir")?,
    })
}

/// Whether a process with this pid exists (signal 0 probes without sending).
pub fn process_alive(pid: i64) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {

    #[test]
    fn many_processes_opening_a_new_store_at_once_all_get_it() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kale.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Store::open(&path).map(|_| ()).map_err(|e| e.to_string())
                    })
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
        }
    }

    use super::*;
    use serde_json::json;

    fn new(name: &str) -> NewExperiment {
        NewExperiment {
            name: name.into(),
            notebook: "nb.ipynb".into(),
            notebook_hash: "h".into(),
            objective: "acc".into(),
            direction: Direction::Maximize,
            objectives: vec![Objective {
                name: "acc".into(),
                direction: Direction::Maximize,
            }],
            constraints: Vec::new(),
            goal: None,
            algorithm: "random".into(),
            settings: json!([]),
            space: json!([]),
            max_trials: 5,
            parallel: 2,
            max_failed: 1,
            early_stopping: None,
        }
    }

    #[test]
    fn trials_persist_and_finished_ones_are_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kale.db");
        let store = Store::open(&path).unwrap();
        let e = store.create_experiment(&new("e1")).unwrap();
        store.start_trial(e.id, 0, &json!({"x": 1})).unwrap();
        let result = |status, value| TrialResult {
            status,
            value,
            values: value.into_iter().collect(),
            constraints: Vec::new(),
            metrics: BTreeMap::new(),
            cache_hits: 1,
            cache_misses: 2,
            error: None,
        };
        store
            .finish_trial(e.id, 0, &result(TrialStatus::Succeeded, Some(0.5)), 1.0)
            .unwrap();
        // A second finish is ignored.
        store
            .finish_trial(e.id, 0, &result(TrialStatus::Failed, None), 1.0)
            .unwrap();
        store.start_trial(e.id, 1, &json!({"x": 2})).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let trials = store.trials(e.id).unwrap();
        assert_eq!(trials[0].status, TrialStatus::Succeeded);
        assert_eq!(trials[0].value, Some(0.5));
        assert_eq!(trials[1].status, TrialStatus::Running);
        // Claiming (as a resumed run does) marks the orphaned running trial.
        let e = store.experiment("e1").unwrap();
        store.claim(&e).unwrap();
        assert_eq!(
            store.trials(e.id).unwrap()[1].status,
            TrialStatus::Interrupted
        );
        assert_eq!(store.next_trial_number(e.id).unwrap(), 2);
    }

    #[test]
    fn states_are_stored_as_the_strings_older_kale_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kale.db");
        let store = Store::open(&path).unwrap();
        let e = store.create_experiment(&new("e1")).unwrap();
        store.start_trial(e.id, 0, &json!({})).unwrap();
        let raw = |sql: &str| -> String { store.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(raw("SELECT status FROM trials"), "running");
        assert_eq!(raw("SELECT direction FROM experiments"), "maximize");
        store
            .finish_experiment(e.id, ExperimentStatus::Interrupted, "interrupted", 1.0)
            .unwrap();
        assert_eq!(raw("SELECT status FROM experiments"), "interrupted");
        // Every state's text reads back as the same state.
        for &s in TrialStatus::ALL {
            assert_eq!(TrialStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        // A state no kale wrote is an error naming it, not a silent default.
        store
            .conn
            .execute("UPDATE trials SET status = 'paused'", [])
            .unwrap();
        let err = store.trials(e.id).unwrap_err().to_string();
        assert!(err.contains("unknown TrialStatus `paused`"), "{err}");
    }

    #[test]
    fn a_store_from_a_newer_kale_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kale.db");
        Store::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        for opened in [Store::open(&path), Store::open_read_only(&path)] {
            let err = opened.err().expect("refused");
            assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
            let rendered = crate::Error::from(err).render().unwrap();
            assert!(rendered.contains("upgrade kale"), "{rendered}");
        }
    }

    #[test]
    fn a_version_1_store_gains_the_new_columns_once_and_reads_as_one_objective() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kale.db");
        {
            // The version-1 tables: today's without the added columns.
            let mut v1 = SCHEMA.to_string();
            for (_, column, ty) in ADDED_COLUMNS {
                v1 = v1.replace(&format!("    {column} {ty},\n"), "");
            }
            assert!(!v1.contains("objective_values"), "{v1}");
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&v1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO experiments (name, notebook, notebook_hash, objective, direction, algorithm, settings, space,
                 max_trials, parallel, max_failed, status, created_at, updated_at)
                 VALUES ('old', 'nb', 'h', 'acc', 'minimize', 'random', '[]', '[]', 3, 1, 1, 'succeeded', 1, 1)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO trials (experiment_id, number, params, status, value, started_at)
                 VALUES (1, 0, '{}', 'succeeded', 0.25, 1)",
                [],
            )
            .unwrap();
        }
        // Read-only before any migration: the old columns are enough.
        let ro = Store::open_read_only(&path).unwrap();
        assert_eq!(ro.experiment("old").unwrap().spec.objectives.len(), 1);
        drop(ro);
        // Opened twice: the second open finds the columns there.
        Store::open(&path).unwrap();
        let store = Store::open(&path).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let e = store.experiment("old").unwrap();
        assert_eq!(
            e.spec.objectives,
            [Objective {
                name: "acc".into(),
                direction: Direction::Minimize
            }]
        );
        assert!(e.spec.constraints.is_empty());
        let t = &store.trials(e.id).unwrap()[0];
        assert_eq!((t.values.as_slice(), t.is_feasible()), (&[0.25][..], true));
    }

    #[test]
    fn objective_values_and_constraints_round_trip_with_unreported_metrics_as_nan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kale.db")).unwrap();
        let mut spec = new("mo");
        spec.objectives.push(Objective {
            name: "ms".into(),
            direction: Direction::Minimize,
        });
        spec.constraints = vec![Constraint {
            metric: "kb".into(),
            bound: Bound::AtMost,
            value: 50.0,
        }];
        let e = store.create_experiment(&spec).unwrap();
        assert_eq!(e.spec.objectives, spec.objectives);
        assert_eq!(e.spec.constraints, spec.constraints);
        store.start_trial(e.id, 0, &json!({})).unwrap();
        let result = TrialResult {
            status: TrialStatus::Succeeded,
            value: Some(0.9),
            values: vec![0.9, 3.0],
            constraints: vec![f64::NAN],
            metrics: BTreeMap::new(),
            cache_hits: 0,
            cache_misses: 0,
            error: None,
        };
        store.finish_trial(e.id, 0, &result, 1.0).unwrap();
        let t = store.trial(e.id, 0).unwrap();
        assert_eq!(t.values, [0.9, 3.0]);
        assert!(t.constraints[0].is_nan());
        assert!(!t.is_feasible());
    }

    #[test]
    fn notes_on_experiments_and_trials_are_kept_replaced_and_removed_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kale.db")).unwrap();
        let e = store.create_experiment(&new("e1")).unwrap();
        store.set_note(e.id, None, "baseline").unwrap();
        store.set_note(e.id, Some(3), "odd spike").unwrap();
        store
            .set_note(e.id, Some(3), "odd spike: data bug")
            .unwrap();
        let notes = store.notes(e.id).unwrap();
        assert_eq!(notes[&None], "baseline");
        assert_eq!(notes[&Some(3)], "odd spike: data bug");
        store.set_note(e.id, None, "  ").unwrap();
        assert!(!store.notes(e.id).unwrap().contains_key(&None));
        store.delete_experiment("e1").unwrap();
        assert!(store.notes(e.id).unwrap().is_empty());
    }

    #[test]
    fn a_version_2_store_gains_notes_in_place_and_reads_without_them_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kale.db");
        {
            let v2 = SCHEMA[..SCHEMA.find("CREATE TABLE IF NOT EXISTS notes").unwrap()]
                .replace("    session_started_at REAL,\n", "");
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&v2).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO experiments (name, notebook, notebook_hash, objective, direction, algorithm, settings, space,
                 max_trials, parallel, max_failed, status, created_at, updated_at, wall_seconds)
                 VALUES ('old', 'nb', 'h', 'acc', 'minimize', 'random', '[]', '[]', 3, 1, 1, 'succeeded', 1, 1, 7.5)",
                [],
            )
            .unwrap();
        }
        let ro = Store::open_read_only(&path).unwrap();
        let e = ro.experiment("old").unwrap();
        assert!(ro.notes(e.id).unwrap().is_empty());
        assert_eq!((e.session_started_at, e.wall_seconds_now()), (None, 7.5));
        drop(ro);
        let store = Store::open(&path).unwrap();
        store.set_note(e.id, None, "kept").unwrap();
        assert_eq!(store.notes(e.id).unwrap()[&None], "kept");
        // Claimed again, it runs: its wall time counts the session that runs now.
        store.claim(&store.experiment("old").unwrap()).unwrap();
        let e = store.experiment("old").unwrap();
        assert!(e.session_started_at.is_some() && e.wall_seconds_now() >= 7.5);
    }

    #[test]
    fn duplicate_names_are_rejected_and_missing_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kale.db")).unwrap();
        store.create_experiment(&new("e1")).unwrap();
        assert!(store.create_experiment(&new("e1")).is_err());
        assert!(matches!(
            store.experiment("nope"),
            Err(StoreError::NotFound(_))
        ));
    }
}
