//! What makes two requests the same.
//!
//! A [`CacheKey`] is the request (statement text with its literals, or the
//! statement of a Bind with its parameter types, parameter formats and
//! values, and result formats) in a [`Context`]: database, effective role,
//! and a digest of every setting of the session. One role's rows are never
//! served to another, and a session whose TimeZone or search_path differs
//! never shares an entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Who asks, and under which settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    pub database: String,
    /// `current_user`: the role privileges and row-level security apply to.
    pub role: String,
    /// A digest of the session's settings (search_path, TimeZone, DateStyle,
    /// ... — all of them but `application_name`).
    pub settings: String,
}

/// A [`Context`], interned: keys carry this small number instead. Never
/// reused: a number always means the one context it was given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextId(pub u64);

/// Contexts remembered at once. Sessions with a temporary schema, or that
/// set a custom setting per request, each make their own; past this many
/// the table starts over (entries of forgotten contexts are never found
/// again and age out).
const MAX_CONTEXTS: usize = 65_536;

/// The interning table.
#[derive(Debug, Default)]
pub struct Contexts {
    ids: Mutex<(HashMap<Context, ContextId>, u64)>,
}

impl Contexts {
    pub fn intern(&self, c: Context) -> ContextId {
        let mut guard = self.ids.lock().expect("context table");
        let (ids, next) = &mut *guard;
        if let Some(id) = ids.get(&c) {
            return *id;
        }
        if ids.len() >= MAX_CONTEXTS {
            ids.clear();
        }
        let id = ContextId(*next);
        *next += 1;
        ids.insert(c, id);
        id
    }
}

/// The request part of a key.
#[derive(Debug, Clone, Eq)]
pub enum Request {
    /// A simple-protocol Query: its text.
    Simple(Arc<str>),
    /// An Execute of a bound portal.
    Extended {
        /// The statement's text.
        text: Arc<str>,
        /// The parameter types the client declared in Parse.
        param_types: Arc<[u32]>,
        /// The Bind message after the portal and statement names: parameter
        /// formats, values and result formats, byte for byte.
        bind: Bytes,
    },
}

/// Texts are usually one shared allocation (statements are read once, and
/// their text kept with the reading): compared by address first.
impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
            Arc::ptr_eq(a, b) || a == b
        }
        match (self, other) {
            (Request::Simple(a), Request::Simple(b)) => same(a, b),
            (
                Request::Extended {
                    text: t1,
                    param_types: p1,
                    bind: b1,
                },
                Request::Extended {
                    text: t2,
                    param_types: p2,
                    bind: b2,
                },
            ) => b1 == b2 && p1 == p2 && same(t1, t2),
            _ => false,
        }
    }
}

/// Hashes what [`PartialEq`] compares: the contents.
impl std::hash::Hash for Request {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Request::Simple(t) => {
                0u8.hash(state);
                t.hash(state);
            }
            Request::Extended {
                text,
                param_types,
                bind,
            } => {
                1u8.hash(state);
                text.hash(state);
                param_types.hash(state);
                bind.hash(state);
            }
        }
    }
}

/// A cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub context: ContextId,
    pub request: Request,
}

impl CacheKey {
    /// Bytes the key holds on the heap (what the memory bound counts for it).
    pub fn heap_size(&self) -> usize {
        match &self.request {
            Request::Simple(t) => t.len(),
            Request::Extended {
                text,
                param_types,
                bind,
            } => text.len() + param_types.len() * 4 + bind.len(),
        }
    }

    /// The statement text.
    pub fn text(&self) -> &str {
        match &self.request {
            Request::Simple(t) => t,
            Request::Extended { text, .. } => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_intern_by_value() {
        let c = Contexts::default();
        let ctx = |role: &str, settings: &str| Context {
            database: "db".into(),
            role: role.into(),
            settings: settings.into(),
        };
        let a = c.intern(ctx("alice", "s1"));
        assert_eq!(c.intern(ctx("alice", "s1")), a);
        assert_ne!(c.intern(ctx("bob", "s1")), a);
        assert_ne!(c.intern(ctx("alice", "s2")), a);
    }

    #[test]
    fn the_table_is_bounded_and_never_reuses_a_number() {
        let c = Contexts::default();
        let first = c.intern(Context {
            database: "db".into(),
            role: "r".into(),
            settings: "0".into(),
        });
        let mut last = first;
        for i in 1..=MAX_CONTEXTS as u64 + 10 {
            last = c.intern(Context {
                database: "db".into(),
                role: "r".into(),
                settings: i.to_string(),
            });
        }
        assert!(c.ids.lock().unwrap().0.len() <= MAX_CONTEXTS);
        assert_eq!(last.0, MAX_CONTEXTS as u64 + 10);
        // Forgotten, then met again: a new number.
        let again = c.intern(Context {
            database: "db".into(),
            role: "r".into(),
            settings: "0".into(),
        });
        assert_ne!(again, first);
    }
}
