//! What the operator last applied of each child, and whether a child must be applied
//! again. A child is applied when its render changed since the last successful apply,
//! when the watch cache shows it gone, replaced or changed by someone else, or when its
//! last apply is older than the resync interval (so drift the cache cannot show, such as
//! a hand-edited Service, is corrected at the latest then). Pure: the caller passes the
//! time and what its cache shows.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A child of one `StyrminDeployment`: its kind and name (in the deployment's namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildKey {
    pub kind: String,
    pub name: String,
}

/// A child as the operator last applied it (from the API server's answer to the apply).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Digest of the rendered object.
    pub hash: String,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub at: Instant,
}

/// What the watch cache shows of a child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cached<'a> {
    pub uid: Option<&'a str>,
    pub generation: Option<i64>,
    pub deleting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply(Why),
    /// Applied with this render, and the cache shows it as applied.
    Skip,
    /// Being deleted (by someone, or by a prune): applied again once it is gone.
    AwaitDeletion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Never applied by this process.
    New,
    /// The render changed.
    Changed,
    /// Not in the cache: deleted, or not seen yet.
    Missing,
    /// Deleted and made again by someone else (another uid).
    Replaced,
    /// Its spec changed since the apply (a newer generation).
    Drifted,
    /// The last apply is older than the resync interval.
    Resync,
}

/// Whether to apply a child whose render hashes to `hash`.
pub fn decide(
    last: Option<&Applied>,
    cached: Option<Cached<'_>>,
    hash: &str,
    now: Instant,
    resync: Duration,
) -> Decision {
    if cached.is_some_and(|c| c.deleting) {
        return Decision::AwaitDeletion;
    }
    let Some(last) = last else {
        return Decision::Apply(Why::New);
    };
    if last.hash != hash {
        return Decision::Apply(Why::Changed);
    }
    let Some(cached) = cached else {
        return Decision::Apply(Why::Missing);
    };
    if cached.uid.is_some() && cached.uid != last.uid.as_deref() {
        return Decision::Apply(Why::Replaced);
    }
    // A cache behind the apply shows an older generation: that is lag, not drift.
    if let (Some(seen), Some(applied)) = (cached.generation, last.generation)
        && seen > applied
    {
        return Decision::Apply(Why::Drifted);
    }
    if now.duration_since(last.at) >= resync {
        return Decision::Apply(Why::Resync);
    }
    Decision::Skip
}

/// Every child applied, per owning `StyrminDeployment` (by uid, so a deployment deleted
/// and made again under the same name starts afresh). In memory: a restarted agent
/// applies every child once, then skips again.
#[derive(Debug, Default)]
pub struct Ledger {
    owners: HashMap<String, BTreeMap<ChildKey, Applied>>,
}

impl Ledger {
    pub fn get(&self, owner: &str, child: &ChildKey) -> Option<&Applied> {
        self.owners.get(owner)?.get(child)
    }

    pub fn record(&mut self, owner: &str, child: ChildKey, applied: Applied) {
        self.owners
            .entry(owner.to_owned())
            .or_default()
            .insert(child, applied);
    }

    /// Forgets one child (pruned).
    pub fn forget_child(&mut self, owner: &str, child: &ChildKey) {
        if let Some(children) = self.owners.get_mut(owner) {
            children.remove(child);
        }
    }

    /// Forgets a deployment (its children are gone).
    pub fn forget(&mut self, owner: &str) {
        self.owners.remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(600);

    /// Every case that decides whether a child is applied, by name.
    #[test]
    fn apply_decision_cases() {
        let t0 = Instant::now();
        let applied = Applied {
            hash: "h1".into(),
            uid: Some("u1".into()),
            generation: Some(3),
            at: t0,
        };
        let cached = |uid: &'static str, generation: i64, deleting: bool| Cached {
            uid: Some(uid),
            generation: Some(generation),
            deleting,
        };
        let without_generation = Applied {
            generation: None,
            ..applied.clone()
        };
        let soon = t0 + Duration::from_secs(5);
        /// Name, last apply, cache, render hash, now, decision.
        type Case<'a> = (
            &'a str,
            Option<&'a Applied>,
            Option<Cached<'a>>,
            &'a str,
            Instant,
            Decision,
        );
        let cases: Vec<Case> = vec![
            (
                "never applied, not in the cache",
                None,
                None,
                "h1",
                soon,
                Decision::Apply(Why::New),
            ),
            (
                "never applied by this process, already in the cache (agent restart)",
                None,
                Some(cached("u1", 3, false)),
                "h1",
                soon,
                Decision::Apply(Why::New),
            ),
            (
                "applied, same render, cache shows it: skipped",
                Some(&applied),
                Some(cached("u1", 3, false)),
                "h1",
                soon,
                Decision::Skip,
            ),
            (
                "applied, same render, cache behind the apply (older generation): skipped",
                Some(&applied),
                Some(cached("u1", 2, false)),
                "h1",
                soon,
                Decision::Skip,
            ),
            (
                "render changed",
                Some(&applied),
                Some(cached("u1", 3, false)),
                "h2",
                soon,
                Decision::Apply(Why::Changed),
            ),
            (
                "same render, gone from the cache (deleted by someone)",
                Some(&applied),
                None,
                "h1",
                soon,
                Decision::Apply(Why::Missing),
            ),
            (
                "same render, made again by someone else",
                Some(&applied),
                Some(cached("u2", 1, false)),
                "h1",
                soon,
                Decision::Apply(Why::Replaced),
            ),
            (
                "same render, spec changed by someone else",
                Some(&applied),
                Some(cached("u1", 4, false)),
                "h1",
                soon,
                Decision::Apply(Why::Drifted),
            ),
            (
                "same render, last applied longer ago than the resync interval",
                Some(&applied),
                Some(cached("u1", 3, false)),
                "h1",
                t0 + RESYNC,
                Decision::Apply(Why::Resync),
            ),
            (
                "being deleted: wait until it is gone",
                Some(&applied),
                Some(cached("u1", 3, true)),
                "h2",
                soon,
                Decision::AwaitDeletion,
            ),
            (
                "being deleted, never applied: wait until it is gone",
                None,
                Some(cached("u1", 3, true)),
                "h1",
                soon,
                Decision::AwaitDeletion,
            ),
            (
                "a kind without generations (Service), same render: skipped",
                Some(&without_generation),
                Some(Cached {
                    uid: Some("u1"),
                    generation: None,
                    deleting: false,
                }),
                "h1",
                soon,
                Decision::Skip,
            ),
        ];
        for (name, last, cached, hash, now, expected) in cases {
            assert_eq!(decide(last, cached, hash, now, RESYNC), expected, "{name}");
        }
    }

    /// The ledger keeps children per owner uid; forgetting a child or an owner removes
    /// only that.
    #[test]
    fn the_ledger_keeps_children_per_owner() {
        let key = |kind: &str, name: &str| ChildKey {
            kind: kind.into(),
            name: name.into(),
        };
        let applied = Applied {
            hash: "h".into(),
            uid: None,
            generation: None,
            at: Instant::now(),
        };
        let mut ledger = Ledger::default();
        ledger.record("sd-1", key("Service", "web"), applied.clone());
        ledger.record("sd-1", key("HelmRelease", "shop"), applied.clone());
        ledger.record("sd-2", key("Service", "web"), applied.clone());
        ledger.forget_child("sd-1", &key("Service", "web"));
        assert!(ledger.get("sd-1", &key("Service", "web")).is_none());
        assert!(ledger.get("sd-1", &key("HelmRelease", "shop")).is_some());
        assert!(ledger.get("sd-2", &key("Service", "web")).is_some());
        ledger.forget("sd-1");
        assert!(ledger.get("sd-1", &key("HelmRelease", "shop")).is_none());
        assert!(ledger.get("sd-2", &key("Service", "web")).is_some());
    }
}
