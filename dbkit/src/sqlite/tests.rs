//! Unit tests of the SQLite plumbing.

use super::*;

const MIGRATIONS: &[Migration] = &[
    (
        1,
        "CREATE TABLE kv (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);",
    ),
    (2, "CREATE INDEX kv_by_v ON kv (v);"),
];

fn open(dir: &tempfile::TempDir) -> SqliteDb {
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    SqliteDb::open(&url, "test-writer", MIGRATIONS).unwrap()
}

fn put(conn: &Connection, k: &str, v: i64) -> Result<(), StoreError> {
    conn.execute("INSERT INTO kv (k, v) VALUES (?1, ?2)", (k, v))?;
    Ok(())
}

fn get(conn: &Connection, k: &str) -> Result<Option<i64>, StoreError> {
    match conn.query_row("SELECT v FROM kv WHERE k = ?1", [k], |r| r.get(0)) {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[test]
fn migrating_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_connection(&dir.path().join("m.db")).unwrap();
    migrate(&mut conn, MIGRATIONS).unwrap();
    migrate(&mut conn, MIGRATIONS).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, MIGRATIONS.len() as i64);
}

#[test]
fn connections_use_the_durability_settings() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("s.db")).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
    assert_eq!(pragma("synchronous"), "Integer(2)", "FULL");
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
    assert_eq!(pragma("busy_timeout"), "Integer(5000)");
}

#[test]
fn other_urls_are_rejected() {
    for url in ["postgres://h/db", "sqlite::memory:", "mysql://h/db"] {
        assert!(
            matches!(
                SqliteDb::open(url, "w", MIGRATIONS),
                Err(StoreError::UnsupportedUrl(_))
            ),
            "{url}"
        );
    }
}

#[tokio::test]
async fn writes_are_visible_to_reads_once_answered() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    db.write(|conn| put(conn, "a", 1)).await.unwrap();
    assert_eq!(db.read(|conn| get(conn, "a")).await.unwrap(), Some(1));
    assert_eq!(db.read(|conn| get(conn, "b")).await.unwrap(), None);
    assert_eq!(db.path(), dir.path().join("t.db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_does_not_affect_its_batch_mates() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |conn| {
                put(conn, &format!("k{i}"), i)?;
                if i % 3 == 0 {
                    // Written, then failed: the savepoint must undo the put.
                    return Err(StoreError::Commit(format!("op {i} refused")));
                }
                Ok(i)
            })
            .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        assert_eq!(result.is_ok(), i % 3 != 0, "op {i}");
    }
    let n: i64 = db
        .read(|conn| {
            Ok::<_, StoreError>(conn.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))?)
        })
        .await
        .unwrap();
    assert_eq!(n, (0..200).filter(|i| i % 3 != 0).count() as i64);
}

#[tokio::test]
async fn a_constraint_violation_is_the_operations_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    db.write(|conn| put(conn, "dup", 1)).await.unwrap();
    let again = db.write(|conn| put(conn, "dup", 2)).await;
    assert!(matches!(again, Err(StoreError::Sqlite(_))), "{again:?}");
    assert_eq!(db.read(|conn| get(conn, "dup")).await.unwrap(), Some(1));
}

/// A store-specific error wrapping [`StoreError`].
#[derive(Debug)]
enum AppError {
    Store(StoreError),
    Refused,
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e)
    }
}

#[tokio::test]
async fn operations_may_use_their_own_error_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let refused: Result<(), AppError> = db
        .write(|conn| {
            put(conn, "x", 1)?;
            Err(AppError::Refused)
        })
        .await;
    assert!(matches!(refused, Err(AppError::Refused)));
    let missing: Result<(), AppError> = db
        .write(|conn| {
            conn.execute("INSERT INTO missing VALUES (1)", [])
                .map_err(StoreError::from)?;
            Ok(())
        })
        .await;
    assert!(
        matches!(missing, Err(AppError::Store(StoreError::Sqlite(_)))),
        "{missing:?}"
    );
    let read: Result<Option<i64>, AppError> = db.read(|conn| Ok(get(conn, "x")?)).await;
    assert_eq!(read.unwrap(), None, "the refused write was rolled back");
}

#[test]
fn many_stores_opening_one_new_file_at_once_all_succeed() {
    // Several order services (or the demo's three) start together on one
    // file: SQLite answers some of those races with SQLITE_BUSY at once.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("race-{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    open_and_migrate(&path, MIGRATIONS, None).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

mod start_checks {
    use super::super::SqliteDb;
    use crate::identity::OpenMode;
    use crate::StoreError;

    const M: &[(i64, &str)] = &[(1, "CREATE TABLE t (x INTEGER)")];

    fn open(path: &std::path::Path, kind: &str, mode: OpenMode) -> Result<SqliteDb, StoreError> {
        SqliteDb::open_store(&format!("sqlite:{}", path.display()), "w", M, kind, mode)
    }

    #[test]
    fn init_creates_an_identity_that_later_starts_find() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let created = open(&path, "k", OpenMode::Init).unwrap();
        let id = created.identity().unwrap().clone();
        drop(created);
        let again = open(&path, "k", OpenMode::Existing).unwrap();
        assert_eq!(again.identity(), Some(&id));
        let init_again = open(&path, "k", OpenMode::Init).unwrap();
        assert_eq!(init_again.identity(), Some(&id), "--init never replaces");
    }

    #[test]
    fn missing_and_empty_files_are_refused_without_init() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let missing = open(&path, "k", OpenMode::Existing).err().unwrap();
        assert!(matches!(missing, StoreError::Missing { .. }), "{missing}");
        assert!(!path.exists(), "not created");
        std::fs::write(&path, b"").unwrap();
        let empty = open(&path, "k", OpenMode::Existing).err().unwrap();
        assert!(matches!(empty, StoreError::Uninitialised { .. }), "{empty}");
        assert!(empty.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn another_kind_a_foreign_database_and_a_newer_schema_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(open(&path, "order-store", OpenMode::Init).unwrap());
        let kind = open(&path, "account-store", OpenMode::Existing)
            .err()
            .unwrap();
        assert!(matches!(kind, StoreError::WrongKind { .. }), "{kind}");

        let foreign = dir.path().join("f.db");
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE other (y)").unwrap();
        drop(conn);
        let err = open(&foreign, "k", OpenMode::Init).err().unwrap();
        assert!(matches!(err, StoreError::Uninitialised { .. }), "{err}");

        let newer = dir.path().join("n.db");
        drop(open(&newer, "k", OpenMode::Init).unwrap());
        let conn = rusqlite::Connection::open(&newer).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (99, 0)", [])
            .unwrap();
        drop(conn);
        let err = open(&newer, "k", OpenMode::Existing).err().unwrap();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_store_migrated_before_identities_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = SqliteDb::open_path(path.clone(), "w", M).unwrap();
        drop(old);
        let adopted = open(&path, "k", OpenMode::Existing).unwrap();
        assert!(adopted.identity().is_some());
    }

    #[tokio::test]
    async fn the_peer_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = open(&path, "k", OpenMode::Init).unwrap();
        db.record_peer("A").await.unwrap();
        db.record_peer("B").await.unwrap();
        drop(db);
        let again = open(&path, "k", OpenMode::Existing).unwrap();
        assert_eq!(again.identity().unwrap().peer_id.as_deref(), Some("A"));
    }
}
