//! SQLite connections: one writer thread that commits many jobs per transaction, and a
//! small pool of read connections (WAL lets them read while the writer writes).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{Result, StoreError};

/// Jobs waiting for the writer; senders wait (backpressure) when it is full.
const QUEUE_DEPTH: usize = 4096;
/// Most jobs committed by one transaction.
const MAX_BATCH: usize = 1024;
/// Under load, a batch waits for company up to this long or this many jobs: one commit
/// (an fsync and its WAL frames) then serves many messages. Measured: without it, 1,000
/// MQTT devices made ~2,500 commits/s of ~20 jobs each.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_millis(1);
const GROUP_TARGET: usize = 256;
const READERS: usize = 4;

pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // FULL: a commit is on disk when it returns, so an acknowledgement after it is honest.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

/// How a batch's commit went; a failure says whether the disk (or the size limit) was full.
type Commit = std::result::Result<(), BatchFailure>;

#[derive(Clone, Debug)]
struct BatchFailure {
    message: String,
    full: bool,
}

impl From<rusqlite::Error> for BatchFailure {
    fn from(e: rusqlite::Error) -> Self {
        BatchFailure {
            full: e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            message: e.to_string(),
        }
    }
}

trait WriteJob: Send {
    /// Runs inside the batch's transaction; false when the job failed (its changes are
    /// rolled back to its savepoint, the batch goes on).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the job is a single statement: SQLite undoes a failed statement by itself
    /// and the transaction goes on, so it needs no savepoint of its own.
    fn single_statement(&self) -> bool;
    /// Reports the job's result once the batch's commit is known.
    fn finish(self: Box<Self>, commit: Commit);
}

struct TypedJob<T, F> {
    single_statement: bool,
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = self.work.take().expect("a write job runs once");
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn single_statement(&self) -> bool {
        self.single_statement
    }

    fn finish(self: Box<Self>, commit: Commit) {
        let outcome = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) if e.full => Err(StoreError::Full(format!("commit failed: {}", e.message))),
            (_, Err(e)) => Err(StoreError::Backend(format!("commit failed: {}", e.message))),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StoreError::Backend("write job did not run".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn WriteJob>>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Writer {
        // Room for the jobs' statements beside the batch's own five.
        conn.set_prepared_statement_cache_capacity(64);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("thingsafe-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .expect("spawn the SQLite writer thread");
        Writer { queue: tx }
    }

    /// Runs `work` in a write transaction shared with other jobs; resolves after the commit.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(false, work).await
    }

    /// [`Writer::write`] for `work` that runs exactly one statement that changes anything:
    /// if it fails, SQLite has already undone it, so the job goes without a savepoint
    /// (measured: the savepoint and its release were ~3% of the server's CPU per MQTT
    /// telemetry message).
    pub(crate) async fn write_one<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, work).await
    }

    async fn submit<T, F>(&self, single_statement: bool, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            single_statement,
            work: Some(work),
            result: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Box<dyn WriteJob>>) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    // Whether the last batch had company: a sign of load, when lingering pays. An idle
    // writer commits at once, so a lone device sees no added latency.
    let mut busy = false;
    while let Some(first) = rx.blocking_recv() {
        let arrived = std::time::Instant::now();
        batch.push(first);
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if !busy || batch.len() >= GROUP_TARGET || arrived.elapsed() >= GROUP_LINGER {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        busy = batch.len() > 1;
        let commit = run_batch(&conn, &mut batch);
        metrics::histogram!("thingsafe_store_batch_jobs").record(batch.len() as f64);
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
}

/// Runs a statement of the batch's own (transaction and savepoints) from the statement
/// cache: parsed once, not once per job (measured: parsing them was ~1% of the server's
/// CPU on the MQTT ingest path).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Commit {
    control(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        if job.single_statement() {
            // Some failures (I/O, a full disk) may roll the whole transaction back: then
            // nothing of the batch is kept and no job of it may report success.
            if !job.run(conn) && conn.is_autocommit() {
                return Err(BatchFailure {
                    message: "a failed statement rolled the batch's transaction back".into(),
                    full: false,
                });
            }
            continue;
        }
        let step = (|| -> rusqlite::Result<()> {
            control(conn, "SAVEPOINT job")?;
            if job.run(conn) {
                control(conn, "RELEASE job")
            } else {
                control(conn, "ROLLBACK TO job")?;
                control(conn, "RELEASE job")
            }
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    control(conn, "COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.into()
    })
}

#[derive(Clone)]
pub(crate) struct Readers {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    path: Arc<Path>,
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl Readers {
    pub(crate) fn open(path: &Path) -> Result<Readers> {
        let mut conns = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            conns.push(open_reader(path)?);
        }
        Ok(Readers {
            idle: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(READERS)),
            path: Arc::from(path),
        })
    }

    /// Runs `work` on a read connection in the blocking pool.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        // A connection is missing only if a read task panicked with it: open a new one.
        let idle = self.idle.lock().expect("reader pool").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = work(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?;
        self.idle.lock().expect("reader pool").push(conn);
        result
    }
}
