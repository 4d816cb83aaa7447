//! Generation counters: how a write makes cached results stale without
//! finding them.
//!
//! Every table name has a counter per database, and every database an epoch.
//! A fill takes a [`Snapshot`] of the counters of the tables its statement
//! depends on *before* the statement is sent upstream; the entry keeps it.
//! A write bumps its tables' counters when it commits (DDL bumps the epoch),
//! before the client hears that it committed. So an entry is served only
//! while every counter still has the value it had when the statement started:
//! a fill that raced with a write is either refused when stored or never
//! served afterwards.
//!
//! Tables are named by relation name without schema: a write to `a.t` also
//! retires results that read `b.t`. That costs a few needless misses, never a
//! wrong answer, and lets a write be attributed without a catalog lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One table's counter (shared by every entry that depends on it).
pub type TableGen = Arc<AtomicU64>;

/// The counters of one database.
#[derive(Debug, Default)]
pub struct DbGenerations {
    epoch: AtomicU64,
    tables: Mutex<HashMap<String, TableGen>>,
}

impl DbGenerations {
    /// The counter of table `name`, created on first use.
    pub fn table(&self, name: &str) -> TableGen {
        let mut tables = self.tables.lock().expect("generation map");
        if let Some(g) = tables.get(name) {
            return g.clone();
        }
        let g = TableGen::default();
        tables.insert(name.to_string(), g.clone());
        g
    }

    /// A write to these tables committed.
    pub fn bump_tables<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.table(name).fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Everything cached for this database is stale (DDL, lost notifications).
    pub fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

/// All databases' counters.
#[derive(Debug, Default)]
pub struct Generations {
    dbs: Mutex<HashMap<String, Arc<DbGenerations>>>,
}

impl Generations {
    pub fn database(&self, db: &str) -> Arc<DbGenerations> {
        let mut dbs = self.dbs.lock().expect("generation map");
        if let Some(d) = dbs.get(db) {
            return d.clone();
        }
        let d = Arc::new(DbGenerations::default());
        dbs.insert(db.to_string(), d.clone());
        d
    }

    /// Bump table `name` in every database (`HELIOS CACHE CLEAR t`).
    pub fn bump_table_everywhere(&self, name: &str) {
        let dbs: Vec<_> = self
            .dbs
            .lock()
            .expect("generation map")
            .values()
            .cloned()
            .collect();
        for d in dbs {
            d.bump_tables([name]);
        }
    }

    /// Take the counters a statement reading `tables` in `db` starts under.
    pub fn snapshot<'a>(&self, db: &str, tables: impl IntoIterator<Item = &'a str>) -> Snapshot {
        // The epoch first: a DDL racing with the table reads below makes the
        // snapshot stale rather than half-new.
        let epoch = self.database(db).epoch();
        self.snapshot_at(db, epoch, tables)
    }

    /// Like [`Generations::snapshot`], under an epoch read earlier: when the
    /// list of tables itself came from the catalog at that epoch, a DDL
    /// since makes the snapshot stale at once.
    pub fn snapshot_at<'a>(
        &self,
        db: &str,
        epoch: u64,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Snapshot {
        let db = self.database(db);
        let tables = tables
            .into_iter()
            .map(|t| {
                let g = db.table(t);
                let v = g.load(Ordering::Acquire);
                (g, v)
            })
            .collect();
        Snapshot { db, epoch, tables }
    }
}

/// The counters a fill started under.
#[derive(Debug, Clone)]
pub struct Snapshot {
    db: Arc<DbGenerations>,
    epoch: u64,
    tables: Vec<(TableGen, u64)>,
}

impl Snapshot {
    /// Whether no write or DDL has happened since the snapshot was taken.
    #[inline]
    pub fn is_current(&self) -> bool {
        self.db.epoch() == self.epoch
            && self
                .tables
                .iter()
                .all(|(g, v)| g.load(Ordering::Acquire) == *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_a_table_makes_snapshots_of_it_stale() {
        let g = Generations::default();
        let s = g.snapshot("db", ["orders", "customers"]);
        let other = g.snapshot("db", ["products"]);
        let elsewhere = g.snapshot("db2", ["orders"]);
        assert!(s.is_current());
        g.database("db").bump_tables(["orders"]);
        assert!(!s.is_current());
        assert!(other.is_current());
        assert!(elsewhere.is_current(), "databases are separate");
        // A snapshot after the write is current again.
        assert!(g.snapshot("db", ["orders"]).is_current());
    }

    #[test]
    fn the_epoch_retires_everything_in_its_database() {
        let g = Generations::default();
        let s = g.snapshot("db", ["t"]);
        let none = g.snapshot("db", []);
        let elsewhere = g.snapshot("db2", ["t"]);
        g.database("db").bump_epoch();
        assert!(!s.is_current());
        assert!(!none.is_current());
        assert!(elsewhere.is_current());
        g.bump_table_everywhere("t");
        assert!(!elsewhere.is_current());
    }
}
