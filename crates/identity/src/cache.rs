//! The two in-memory structures that keep token validation off the database:
//!
//! * [`RevocationIndex`]: every live revocation event, keyed by what it names (audit id, user,
//!   project, user on project, domain, application credential), holding the latest
//!   `issued_before` per key, so checking a token costs a handful of hash lookups however many
//!   events exist. It follows the `revocation_events` table by id, so events written by another
//!   API node arrive within a refresh interval.
//! * [`ScopeCache`]: what a (user, scope) pair resolves to (names, enabled flags, effective
//!   roles). Entries die when this node writes anything to Identity (a generation counter) or
//!   after `cache_ttl` seconds (writes by other nodes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nubo_common::Scope;
use parking_lot::RwLock;

use crate::store::revocations::RevocationRow;

/// The fields of a token that revocation events can name.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub user_id: &'a str,
    pub project_id: Option<&'a str>,
    pub domain_ids: [Option<&'a str>; 2],
    pub audit_id: &'a str,
    pub audit_chain_id: &'a str,
    pub application_credential_id: Option<&'a str>,
    pub issued_at_us: i64,
}

#[derive(Default)]
struct IndexInner {
    last_id: i64,
    by_audit: HashMap<String, i64>,
    by_chain: HashMap<String, i64>,
    by_user: HashMap<String, i64>,
    by_project: HashMap<String, i64>,
    by_user_project: HashMap<String, i64>,
    by_domain: HashMap<String, i64>,
    by_app_cred: HashMap<String, i64>,
    count: usize,
}

fn raise(map: &mut HashMap<String, i64>, key: String, issued_before: i64) {
    let slot = map.entry(key).or_insert(i64::MIN);
    *slot = (*slot).max(issued_before);
}

fn user_project_key(user_id: &str, project_id: &str) -> String {
    let mut key = String::with_capacity(user_id.len() + project_id.len() + 1);
    key.push_str(user_id);
    key.push('\n');
    key.push_str(project_id);
    key
}

impl IndexInner {
    fn add(&mut self, e: &RevocationRow) {
        self.last_id = self.last_id.max(e.id);
        self.count += 1;
        let before = e.issued_before_us;
        match (&e.user_id, &e.project_id) {
            (Some(u), Some(p)) => raise(&mut self.by_user_project, user_project_key(u, p), before),
            (Some(u), None) => raise(&mut self.by_user, u.clone(), before),
            (None, Some(p)) => raise(&mut self.by_project, p.clone(), before),
            (None, None) => {}
        }
        if let Some(d) = &e.domain_id {
            raise(&mut self.by_domain, d.clone(), before);
        }
        if let Some(a) = &e.audit_id {
            raise(&mut self.by_audit, a.clone(), before);
        }
        if let Some(c) = &e.audit_chain_id {
            raise(&mut self.by_chain, c.clone(), before);
        }
        if let Some(a) = &e.application_credential_id {
            raise(&mut self.by_app_cred, a.clone(), before);
        }
    }
}

/// All live revocation events, indexed for constant-time checks.
#[derive(Default)]
pub struct RevocationIndex {
    inner: RwLock<IndexInner>,
}

impl RevocationIndex {
    /// Adds events (new ones from the database, or one just written here).
    pub fn add(&self, events: &[RevocationRow]) {
        let mut inner = self.inner.write();
        for e in events {
            if e.id == 0 || e.id > inner.last_id {
                inner.add(e);
            }
        }
    }

    /// Replaces everything (after pruning).
    pub fn reset(&self, events: &[RevocationRow]) {
        let mut fresh = IndexInner::default();
        for e in events {
            fresh.add(e);
        }
        *self.inner.write() = fresh;
    }

    /// The highest event id seen, to fetch only newer ones.
    pub fn last_id(&self) -> i64 {
        self.inner.read().last_id
    }

    pub fn len(&self) -> usize {
        self.inner.read().count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_revoked(&self, t: &TokenFacts<'_>) -> bool {
        let inner = self.inner.read();
        if inner.count == 0 {
            return false;
        }
        let hit = |map: &HashMap<String, i64>, key: &str| {
            map.get(key).is_some_and(|before| t.issued_at_us <= *before)
        };
        if hit(&inner.by_audit, t.audit_id)
            || hit(&inner.by_chain, t.audit_chain_id)
            || hit(&inner.by_user, t.user_id)
        {
            return true;
        }
        if let Some(p) = t.project_id {
            if hit(&inner.by_project, p)
                || (!inner.by_user_project.is_empty()
                    && hit(&inner.by_user_project, &user_project_key(t.user_id, p)))
            {
                return true;
            }
        }
        if t.domain_ids
            .iter()
            .flatten()
            .any(|d| hit(&inner.by_domain, d))
        {
            return true;
        }
        t.application_credential_id
            .is_some_and(|a| hit(&inner.by_app_cred, a))
    }
}

/// A role as a token shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

/// What a (user, scope) resolves to: everything a token body and a `Caller` need.
#[derive(Debug, Clone)]
pub struct ScopeContext {
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    pub password_expires_at: Option<String>,
    pub scope: Scope,
    pub roles: Vec<RoleRef>,
    /// The application credential's name and whether it is restricted, for app-cred tokens.
    pub application_credential: Option<(String, String, bool)>,
}

struct Entry {
    context: Arc<ScopeContext>,
    generation: u64,
    made: Instant,
}

/// Resolved scopes, invalidated by local writes and by age.
pub struct ScopeCache {
    entries: RwLock<HashMap<String, Entry>>,
    generation: AtomicU64,
    ttl: Duration,
}

/// The cache key of a (user, scope, application credential).
pub fn scope_key(
    user_id: &str,
    scope: &crate::token::TokenScope,
    app_cred: Option<&str>,
) -> String {
    use crate::token::TokenScope;
    let scope = match scope {
        TokenScope::Unscoped => "u".to_string(),
        TokenScope::Project(id) => format!("p:{id}"),
        TokenScope::Domain(id) => format!("d:{id}"),
        TokenScope::System => "s".to_string(),
    };
    format!("{user_id}|{scope}|{}", app_cred.unwrap_or(""))
}

impl ScopeCache {
    pub fn new(ttl: Duration) -> ScopeCache {
        ScopeCache {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(1),
            ttl,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<ScopeContext>> {
        let entries = self.entries.read();
        let entry = entries.get(key)?;
        let fresh = entry.generation == self.generation.load(Ordering::Acquire)
            && entry.made.elapsed() < self.ttl;
        fresh.then(|| entry.context.clone())
    }

    /// The generation to stamp an entry with; read it *before* resolving, so that a write
    /// racing with the resolution makes the entry stale rather than wrong.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn put(&self, key: String, context: Arc<ScopeContext>, generation: u64) {
        let mut entries = self.entries.write();
        if entries.len() > 100_000 {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                context,
                generation,
                made: Instant::now(),
            },
        );
    }

    /// Something in Identity changed on this node: every cached resolution is stale.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(issued_at_us: i64) -> TokenFacts<'static> {
        TokenFacts {
            user_id: "u1",
            project_id: Some("p1"),
            domain_ids: [Some("default"), None],
            audit_id: "a1",
            audit_chain_id: "a0",
            application_credential_id: None,
            issued_at_us,
        }
    }

    fn event(id: i64, issued_before_us: i64) -> RevocationRow {
        RevocationRow {
            id,
            issued_before_us,
            revoked_at_us: issued_before_us,
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_of_event_revokes_older_tokens_only() {
        let cases = [
            RevocationRow {
                audit_id: Some("a1".into()),
                ..event(1, 100)
            },
            RevocationRow {
                audit_chain_id: Some("a0".into()),
                ..event(1, 100)
            },
            RevocationRow {
                user_id: Some("u1".into()),
                ..event(1, 100)
            },
            RevocationRow {
                project_id: Some("p1".into()),
                ..event(1, 100)
            },
            RevocationRow {
                user_id: Some("u1".into()),
                project_id: Some("p1".into()),
                ..event(1, 100)
            },
            RevocationRow {
                domain_id: Some("default".into()),
                ..event(1, 100)
            },
        ];
        for case in cases {
            let index = RevocationIndex::default();
            index.add(std::slice::from_ref(&case));
            assert!(
                index.is_revoked(&facts(100)),
                "{case:?} revokes a token issued at 100"
            );
            assert!(
                !index.is_revoked(&facts(101)),
                "{case:?} spares a token issued later"
            );
        }
    }

    #[test]
    fn unrelated_events_do_not_revoke() {
        let index = RevocationIndex::default();
        index.add(&[
            RevocationRow {
                user_id: Some("u2".into()),
                ..event(1, 100)
            },
            RevocationRow {
                user_id: Some("u1".into()),
                project_id: Some("p2".into()),
                ..event(2, 100)
            },
            RevocationRow {
                audit_id: Some("zz".into()),
                ..event(3, 100)
            },
        ]);
        assert!(!index.is_revoked(&facts(50)));
        assert_eq!(index.last_id(), 3);
    }

    #[test]
    fn cache_entries_die_on_invalidate() {
        let cache = ScopeCache::new(Duration::from_secs(60));
        let context = Arc::new(ScopeContext {
            user_id: "u".into(),
            user_name: "n".into(),
            user_domain_id: "d".into(),
            user_domain_name: "D".into(),
            password_expires_at: None,
            scope: Scope::System,
            roles: vec![],
            application_credential: None,
        });
        let generation = cache.generation();
        cache.put("k".into(), context, generation);
        assert!(cache.get("k").is_some());
        cache.invalidate();
        assert!(cache.get("k").is_none());
    }
}
