//! The agent's state store, SQLite in one file: every finding's first seen, last seen and
//! resolved times, so a drift is announced once when it appears and once when it goes,
//! across restarts. The schema is versioned; each migration runs once, in a transaction.
//!
//! A transition counts as announced only once its event is in every sink's spool
//! ([`Store::mark_announced`]): until then each scan hands it back again, so an event
//! lost before it was spooled is announced at the next scan instead of never.

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
    // 2: whether the detection, and the resolution, of each finding reached the spools.
    // Rows written before were announced as they were recorded.
    "ALTER TABLE findings ADD COLUMN detect_announced INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE findings ADD COLUMN resolve_announced INTEGER NOT NULL DEFAULT 1;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What one scan of a scope changed, and what earlier scans changed that was never
/// announced.
#[derive(Debug, Default)]
pub struct Transition {
    /// Findings not open before, or open but never announced: announce as detected.
    pub detected: Vec<Finding>,
    /// Findings open before and absent now, or resolved earlier but never announced:
    /// announce as resolved. Their `last_seen` is the time they were resolved.
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

    /// Records a scan of `scope` at `now`: new findings are opened with their first-seen
    /// time, known ones keep it, and, when `resolve` (a complete scan), open ones the scan
    /// no longer reports are resolved. The findings handed back carry the stored first-seen
    /// time. Nothing is marked announced here: see [`Store::mark_announced`].
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
        // id -> (first seen, finding, detection announced)
        let mut open: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
        // Resolved, but the resolution never reached the spools: id -> (first seen,
        // finding, resolved at, detection announced).
        let mut unsaid: BTreeMap<String, (String, String, String, bool)> = BTreeMap::new();
        {
            let mut q = tx
                .prepare(
                    "SELECT id, first_seen, finding, detect_announced, resolved_at FROM findings
                     WHERE scope = ?1 AND (resolved_at IS NULL OR resolve_announced = 0)",
                )
                .map_err(err)?;
            let rows = q
                .query_map(params![scope], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (id, first, json, said, resolved_at) = row.map_err(err)?;
                match resolved_at {
                    None => {
                        open.insert(id, (first, json, said));
                    }
                    Some(at) => {
                        unsaid.insert(id, (first, json, at, said));
                    }
                }
            }
        }
        let mut t = Transition::default();
        {
            let mut upsert = tx
                .prepare(
                    "INSERT INTO findings (id, scope, first_seen, last_seen, resolved_at, status, classified_at, finding, detect_announced, resolve_announced)
                     VALUES (?1, ?2, ?3, ?4, NULL, ?6, CASE WHEN ?6 = 'review' THEN NULL ELSE ?4 END, ?5, ?7, 1)
                     ON CONFLICT (id) DO UPDATE SET scope = ?2, first_seen = ?3, last_seen = ?4,
                         resolved_at = NULL, status = ?6, finding = ?5,
                         detect_announced = ?7, resolve_announced = 1,
                         classified_at = CASE
                             WHEN resolved_at IS NOT NULL THEN (CASE WHEN ?6 = 'review' THEN NULL ELSE ?4 END)
                             WHEN classified_at IS NULL AND ?6 != 'review' THEN ?4
                             ELSE classified_at END",
                )
                .map_err(err)?;
            for f in findings.iter_mut() {
                // A finding whose resolution was never announced is, for the receivers,
                // still the episode they know: it keeps its first sighting.
                let known = open.remove(&f.id).or_else(|| {
                    unsaid
                        .remove(&f.id)
                        .map(|(first, j, _, said)| (first, j, said))
                });
                let said = match known {
                    Some((first, _, said)) => {
                        f.first_seen = first;
                        said
                    }
                    None => {
                        f.first_seen = now.to_string();
                        false
                    }
                };
                f.last_seen = now.to_string();
                if !said {
                    t.detected.push(f.clone());
                }
                let json = serde_json::to_string(f).unwrap_or_default();
                upsert
                    .execute(params![
                        f.id,
                        scope,
                        f.first_seen,
                        now,
                        json,
                        f.status.as_str(),
                        said
                    ])
                    .map_err(err)?;
            }
            if resolve {
                // A detection never announced needs no resolution either.
                let mut close = tx
                    .prepare(
                        "UPDATE findings SET resolved_at = ?2, resolve_announced = ?3 WHERE id = ?1",
                    )
                    .map_err(err)?;
                for (id, (_, json, said)) in open {
                    close.execute(params![id, now, !said]).map_err(err)?;
                    if said {
                        if let Ok(mut f) = serde_json::from_str::<Finding>(&json) {
                            f.last_seen = now.to_string();
                            t.resolved.push(f);
                        }
                    }
                }
            }
            for (_, (_, json, at, said)) in unsaid {
                if !said {
                    continue;
                }
                if let Ok(mut f) = serde_json::from_str::<Finding>(&json) {
                    f.last_seen = at;
                    t.resolved.push(f);
                }
            }
        }
        tx.commit().map_err(err)?;
        t.open = findings.len();
        Ok(t)
    }

    /// Records that a transition's events are in every sink's spool: its detections and
    /// resolutions are not handed back again. Call it only once `publish` succeeded.
    pub fn mark_announced(&mut self, t: &Transition) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut detected = tx
                .prepare("UPDATE findings SET detect_announced = 1 WHERE id = ?1 AND resolved_at IS NULL")
                .map_err(err)?;
            for f in &t.detected {
                detected.execute(params![f.id]).map_err(err)?;
            }
            let mut resolved = tx
                .prepare("UPDATE findings SET resolve_announced = 1 WHERE id = ?1 AND resolved_at IS NOT NULL")
                .map_err(err)?;
            for f in &t.resolved {
                resolved.execute(params![f.id]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
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
        s.mark_announced(&t).unwrap();
        drop(s);
        let mut s = Store::open(&db).unwrap();
        let mut scan = vec![finding("b"), finding("c")];
        let t = s
            .record("p", &mut scan, "2026-01-01T01:00:00Z", true)
            .unwrap();
        s.mark_announced(&t).unwrap();
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
        s.mark_announced(&t).unwrap();
        assert_eq!(
            t.detected.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    fn ids(list: &[Finding]) -> Vec<&str> {
        list.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn a_transition_not_marked_announced_is_handed_back_until_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("agent.db")).unwrap();
        let t = s
            .record(
                "p",
                &mut [finding("a"), finding("b")],
                "2026-01-01T00:00:00Z",
                true,
            )
            .unwrap();
        assert_eq!(ids(&t.detected), ["a", "b"]);
        // The events never reached the spools (a kill, a full disk): announced again,
        // with the first sighting kept.
        let mut scan = vec![finding("a"), finding("b")];
        let t = s
            .record("p", &mut scan, "2026-01-01T01:00:00Z", true)
            .unwrap();
        assert_eq!(ids(&t.detected), ["a", "b"]);
        assert_eq!(scan[0].first_seen, "2026-01-01T00:00:00Z");
        s.mark_announced(&t).unwrap();
        let t = s
            .record(
                "p",
                &mut [finding("a"), finding("b")],
                "2026-01-01T02:00:00Z",
                true,
            )
            .unwrap();
        assert!(t.detected.is_empty());

        // b goes; its resolution is lost before it is spooled, so it is handed back, even
        // from a partial scan, with the time it was resolved.
        let t = s
            .record("p", &mut [finding("a")], "2026-01-01T03:00:00Z", true)
            .unwrap();
        assert_eq!(ids(&t.resolved), ["b"]);
        let t = s
            .record("p", &mut [finding("a")], "2026-01-01T04:00:00Z", false)
            .unwrap();
        assert_eq!(ids(&t.resolved), ["b"]);
        assert_eq!(t.resolved[0].last_seen, "2026-01-01T03:00:00Z");
        s.mark_announced(&t).unwrap();
        let t = s
            .record("p", &mut [finding("a")], "2026-01-01T05:00:00Z", true)
            .unwrap();
        assert!(t.resolved.is_empty() && t.detected.is_empty());

        // a goes and comes back before its resolution was announced: for the receivers it
        // never went, so nothing is announced.
        let t = s
            .record("p", &mut [], "2026-01-01T06:00:00Z", true)
            .unwrap();
        assert_eq!(ids(&t.resolved), ["a"]);
        let mut scan = vec![finding("a")];
        let t = s
            .record("p", &mut scan, "2026-01-01T07:00:00Z", true)
            .unwrap();
        assert!(t.resolved.is_empty() && t.detected.is_empty(), "{t:?}");
        assert_eq!(scan[0].first_seen, "2026-01-01T00:00:00Z");
        // A detection never announced needs no resolution.
        let t = s
            .record(
                "p",
                &mut [finding("a"), finding("c")],
                "2026-01-01T08:00:00Z",
                true,
            )
            .unwrap();
        assert_eq!(ids(&t.detected), ["c"]);
        let t = s
            .record("p", &mut [finding("a")], "2026-01-01T09:00:00Z", true)
            .unwrap();
        assert!(t.resolved.is_empty(), "{t:?}");
    }

    #[test]
    fn a_version_1_store_keeps_what_it_announced() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        let f = serde_json::to_string(&finding("a")).unwrap();
        c.execute(
            "INSERT INTO findings (id, scope, first_seen, last_seen, status, finding) VALUES ('a', 'p', 'x', 'x', 'review', ?1)",
            params![f],
        )
        .unwrap();
        drop(c);
        let mut s = Store::open(&db).unwrap();
        assert_eq!(s.version().unwrap(), SCHEMA_VERSION);
        let t = s
            .record("p", &mut [finding("a")], "2026-01-01T00:00:00Z", true)
            .unwrap();
        assert!(t.detected.is_empty());
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
