//! The agent's state store, SQLite in one file: every finding's first seen, last seen and
//! resolved times, so a drift is announced once when it appears and once when it goes,
//! across restarts. The schema is versioned; each migration runs once, in a transaction.

use driftwatch_plugin_sdk::Finding;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// The SQLite error.
    pub source: rusqlite::Error,
}

// Append only: a released migration is never edited, a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: findings and their lifecycle.
    "CREATE TABLE findings (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        resolved_at TEXT,
        status TEXT NOT NULL,
        classified_at TEXT,
        finding TEXT NOT NULL
     );
     CREATE INDEX findings_open ON findings (scope) WHERE resolved_at IS NULL;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What one scan of a scope changed.
#[derive(Debug, Default)]
pub struct Transition {
    /// Findings not open before: announce as detected.
    pub detected: Vec<Finding>,
    /// Findings open before and absent now: announce as resolved.
    pub resolved: Vec<Finding>,
    /// Findings still open.
    pub open: usize,
}

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path).map_err(err)?;
        // WAL: readers (the HTTP endpoints) never block the scan's writes.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(err(rusqlite::Error::InvalidParameterName(format!(
                "schema version {version} is newer than this driftwatch understands ({SCHEMA_VERSION}); upgrade driftwatch"
            ))));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version on disk.
    pub fn version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Records a complete scan of `scope` at `now`: new findings are opened with their
    /// first-seen time, known ones keep it, and open ones the scan no longer reports are
    /// resolved. The findings handed back carry the stored first-seen time.
    pub fn record(
        &mut self,
        scope: &str,
        findings: &mut [Finding],
        now: &str,
        resolve: bool,
    ) -> Result<Transition, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut open: BTreeMap<String, (String, String)> = BTreeMap::new();
        {
            let mut q = tx
                .prepare("SELECT id, first_seen, finding FROM findings WHERE scope = ?1 AND resolved_at IS NULL")
                .map_err(err)?;
            let rows = q
                .query_map(params![scope], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
                .map_err(err)?;
            for row in rows {
                let (id, v): (String, (String, String)) = row.map_err(err)?;
                open.insert(id, v);
            }
        }
        let mut t = Transition::default();
        {
            let mut upsert = tx
                .prepare(
                    "INSERT INTO findings (id, scope, first_seen, last_seen, resolved_at, status, classified_at, finding)
                     VALUES (?1, ?2, ?3, ?4, NULL, ?6, CASE WHEN ?6 = 'review' THEN NULL ELSE ?4 END, ?5)
                     ON CONFLICT (id) DO UPDATE SET scope = ?2, first_seen = ?3, last_seen = ?4,
                         resolved_at = NULL, status = ?6, finding = ?5,
                         classified_at = CASE
                             WHEN resolved_at IS NOT NULL THEN (CASE WHEN ?6 = 'review' THEN NULL ELSE ?4 END)
                             WHEN classified_at IS NULL AND ?6 != 'review' THEN ?4
                             ELSE classified_at END",
                )
                .map_err(err)?;
            for f in findings.iter_mut() {
                match open.remove(&f.id) {
                    Some((first, _)) => f.first_seen = first,
                    None => {
                        f.first_seen = now.to_string();
                        t.detected.push(f.clone());
                    }
                }
                f.last_seen = now.to_string();
                let json = serde_json::to_string(f).unwrap_or_default();
                upsert
                    .execute(params![
                        f.id,
                        scope,
                        f.first_seen,
                        now,
                        json,
                        f.status.as_str()
                    ])
                    .map_err(err)?;
            }
            if resolve {
                let mut close = tx
                    .prepare("UPDATE findings SET resolved_at = ?2 WHERE id = ?1")
                    .map_err(err)?;
                for (id, (_, json)) in open {
                    close.execute(params![id, now]).map_err(err)?;
                    if let Ok(f) = serde_json::from_str::<Finding>(&json) {
                        t.resolved.push(f);
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        t.open = findings.len();
        Ok(t)
    }

    /// Every open finding, oldest first.
    pub fn open_findings(&self) -> Result<Vec<Finding>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT finding FROM findings WHERE resolved_at IS NULL ORDER BY first_seen, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let text = r.map_err(|e| self.err(e))?;
            if let Ok(f) = serde_json::from_str(&text) {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Open findings that left `review` (an exception, a break-glass or a policy decided
    /// them): how long each took from first seen, in seconds.
    pub fn time_to_classify(&self) -> Result<Vec<f64>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT first_seen, classified_at FROM findings WHERE resolved_at IS NULL AND classified_at IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let rfc = &time::format_description::well_known::Rfc3339;
        let mut out = Vec::new();
        for r in rows {
            let (a, b) = r.map_err(|e| self.err(e))?;
            if let (Ok(a), Ok(b)) = (
                time::OffsetDateTime::parse(&a, rfc),
                time::OffsetDateTime::parse(&b, rfc),
            ) {
                out.push((b - a).as_seconds_f64().max(0.0));
            }
        }
        Ok(out)
    }

    /// Resolved findings, for history.
    pub fn resolved_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM findings WHERE resolved_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str) -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "changed",
            "resource": {"provider": "aws", "type": "aws_vpc", "id": format!("vpc-{id}")},
            "changes": [], "status": "review", "policies": [],
            "first_seen": "x", "last_seen": "x",
        }))
        .unwrap()
    }

    #[test]
    fn a_drift_is_detected_once_and_resolved_once_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/agent.db");
        let mut s = Store::open(&db).unwrap();
        assert_eq!(s.version().unwrap(), SCHEMA_VERSION);
        let mut scan = vec![finding("a"), finding("b")];
        let t = s
            .record("p", &mut scan, "2026-01-01T00:00:00Z", true)
            .unwrap();
        assert_eq!(t.detected.len(), 2);
        drop(s);
        let mut s = Store::open(&db).unwrap();
        let mut scan = vec![finding("b"), finding("c")];
        let t = s
            .record("p", &mut scan, "2026-01-01T01:00:00Z", true)
            .unwrap();
        assert_eq!(
            t.detected.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(
            t.resolved.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            scan[0].first_seen, "2026-01-01T00:00:00Z",
            "b keeps its first sighting"
        );
        // Another scope's scan does not resolve this one's findings.
        let t = s
            .record("q", &mut [], "2026-01-01T02:00:00Z", true)
            .unwrap();
        assert!(t.resolved.is_empty());
        // A partial scan resolves nothing.
        let t = s
            .record("p", &mut [], "2026-01-01T03:00:00Z", false)
            .unwrap();
        assert!(t.resolved.is_empty());
        let open: Vec<String> = s
            .open_findings()
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(open, ["b", "c"]);
        assert_eq!(s.resolved_count().unwrap(), 1);
        // A drift that comes back is detected again.
        let mut scan = vec![finding("a"), finding("b"), finding("c")];
        let t = s
            .record("p", &mut scan, "2026-01-01T04:00:00Z", true)
            .unwrap();
        assert_eq!(
            t.detected.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        drop(Store::open(&db).unwrap());
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&db).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
    }
}
