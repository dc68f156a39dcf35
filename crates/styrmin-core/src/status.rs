//! The `StyrminDeployment` status as a function of what the operator saw (SPEC §6
//! "Observe"): the deployment's phase, whether its values could be trusted, whether
//! applying worked, the HelmRelease's state and each component's replicas. Pure: the
//! operator gathers the inputs from its watch caches and writes the result; the worker
//! waits for `Ready` (the run succeeds) or `Stalled` (the run fails with `lastError`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

#[cfg(test)]
use crate::crd::values_digest;
use crate::crd::{ComponentStatus, StyrminDeploymentStatus, verify_values_digest};
use crate::planner::Phase;

/// Condition types.
pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";

/// What the HelmRelease says about the spec the operator last gave it, read from the
/// conditions Flux's helm-controller writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Not there, or what was seen of it predates the operator's last apply.
    Unseen,
    /// Its controller has not finished with the current generation (or has not looked yet).
    Progressing,
    /// Installed or upgraded at the current generation.
    Ready,
    /// Install or upgrade of the current generation failed: helm's message.
    Failed(String),
}

impl Release {
    /// Reads a HelmRelease's `metadata.generation` and `status`. Only a verdict on the
    /// current generation counts; a failure is a `Ready=False` whose reason ends in
    /// `Failed` (`InstallFailed`, `UpgradeFailed`, ...).
    pub fn read(generation: Option<i64>, status: &Value) -> Release {
        let current = status["observedGeneration"].as_i64() == generation && generation.is_some();
        let ready = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == READY));
        match ready {
            Some(c) if current && c["status"] == "True" => Release::Ready,
            Some(c)
                if current
                    && c["status"] == "False"
                    && c["reason"].as_str().is_some_and(|r| r.ends_with("Failed")) =>
            {
                Release::Failed(c["message"].as_str().unwrap_or_default().to_owned())
            }
            _ => Release::Progressing,
        }
    }
}

/// Why `spec.values` cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuesProblem {
    /// Written by an agent from before the spec carried the values.
    Missing,
    /// Not a map of Helm values.
    NotAMap,
    /// The values do not hash to the digest the server recorded with them.
    Mismatch { computed: String, recorded: String },
}

impl ValuesProblem {
    pub fn reason(&self) -> &'static str {
        match self {
            ValuesProblem::Missing => "ValuesMissing",
            ValuesProblem::NotAMap => "ValuesInvalid",
            ValuesProblem::Mismatch { .. } => "ValuesDigestMismatch",
        }
    }
}

impl fmt::Display for ValuesProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValuesProblem::Missing => write!(
                f,
                "spec.values is missing (the StyrminDeployment was written by an older agent); \
                 nothing was applied: the next flow run writes the values"
            ),
            ValuesProblem::NotAMap => {
                write!(
                    f,
                    "spec.values is not a map of Helm values; nothing was applied"
                )
            }
            ValuesProblem::Mismatch { computed, recorded } => write!(
                f,
                "spec.values hashes to {computed} but spec.valuesDigest is {recorded}: \
                 these are not the values the server rendered; nothing was applied"
            ),
        }
    }
}

/// The values to apply, if they hash to `recorded_digest` (the server's digest).
pub fn check_values<'a>(
    values: &'a Value,
    recorded_digest: &str,
) -> Result<&'a Map<String, Value>, ValuesProblem> {
    let map = match values {
        Value::Null => return Err(ValuesProblem::Missing),
        Value::Object(map) => map,
        _ => return Err(ValuesProblem::NotAMap),
    };
    verify_values_digest(values, recorded_digest).map_err(|m| ValuesProblem::Mismatch {
        computed: m.computed,
        recorded: m.recorded,
    })?;
    Ok(map)
}

/// What one pass of the operator came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The values could not be trusted: nothing was applied.
    ValuesRejected(ValuesProblem),
    /// Rendering or applying the children failed (the error, as a person reads it).
    ApplyFailed(String),
    /// Everything was applied; this is what the cluster shows.
    Observed {
        release: Release,
        components: BTreeMap<String, ComponentStatus>,
    },
}

/// The status after a pass: `previous` with the phase, the generation, the conditions and
/// what was observed brought up to date. Condition transition times change only when a
/// condition's status does (`now` is the time to stamp). `lastError` is set by a failure
/// and cleared only once the deployment is Ready again.
pub fn next(
    previous: &StyrminDeploymentStatus,
    generation: Option<i64>,
    phase: Phase,
    outcome: &Outcome,
    now: &str,
) -> StyrminDeploymentStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.phase = Some(phase);
    match outcome {
        Outcome::ValuesRejected(problem) => {
            stalled(&mut status, problem.reason(), &problem.to_string(), now)
        }
        Outcome::ApplyFailed(message) => stalled(&mut status, "RenderOrApplyFailed", message, now),
        Outcome::Observed {
            release,
            components,
        } => {
            status.components = components.clone();
            status.helm_release_ready = Some(*release == Release::Ready);
            match (release, phase) {
                (Release::Failed(message), Phase::Running) => {
                    stalled(&mut status, "HelmReleaseFailed", message, now)
                }
                _ => {
                    let (ready, message) = readiness(phase, release, components);
                    status.set_condition(STALLED, false, "Progressing", "", now);
                    if ready {
                        status.last_error = None;
                    }
                    let reason = if ready { "Ready" } else { "Reconciling" };
                    status.set_condition(READY, ready, reason, message, now);
                }
            }
        }
    }
    status
}

fn stalled(status: &mut StyrminDeploymentStatus, reason: &str, message: &str, now: &str) {
    status.last_error = Some(message.to_owned());
    status.set_condition(STALLED, true, reason, message, now);
    status.set_condition(READY, false, reason, message, now);
}

/// Whether the phase has been brought about, and the Ready message.
fn readiness(
    phase: Phase,
    release: &Release,
    components: &BTreeMap<String, ComponentStatus>,
) -> (bool, &'static str) {
    match phase {
        Phase::Running if *release != Release::Ready => (false, "waiting for the HelmRelease"),
        Phase::Running if components.values().all(|c| c.ready == c.desired) => {
            (true, "every component is ready")
        }
        Phase::Running => (false, "waiting for component pods"),
        Phase::Stopped if components.values().all(|c| c.desired == 0 && c.ready == 0) => {
            (true, "stopped")
        }
        Phase::Stopped => (false, "stopping components"),
        Phase::Deleting => (false, "deleting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn components(pairs: &[(&str, i32, i32)]) -> BTreeMap<String, ComponentStatus> {
        pairs
            .iter()
            .map(|(name, ready, desired)| {
                (
                    (*name).to_owned(),
                    ComponentStatus {
                        ready: *ready,
                        desired: *desired,
                    },
                )
            })
            .collect()
    }

    fn observed(release: Release, pairs: &[(&str, i32, i32)]) -> Outcome {
        Outcome::Observed {
            release,
            components: components(pairs),
        }
    }

    /// What a case expects of the status.
    struct Expect {
        ready: bool,
        ready_reason: &'static str,
        /// A part of the Ready message.
        message: &'static str,
        stalled: bool,
        /// `None`: lastError must be unset.
        last_error: Option<&'static str>,
    }

    /// Phase × values check × apply outcome × HelmRelease state × component readiness,
    /// case by case: the conditions, message and lastError the operator writes.
    #[test]
    fn status_cases() {
        let failed = || Release::Failed("Helm upgrade failed: replicas must be >= 0".into());
        let mismatch = ValuesProblem::Mismatch {
            computed: "aaa".into(),
            recorded: "bbb".into(),
        };
        let cases: Vec<(&str, Phase, Outcome, Expect)> = vec![
            (
                "running, release ready, every component ready: Ready",
                Phase::Running,
                observed(Release::Ready, &[("server", 2, 2), ("db", 1, 1)]),
                Expect {
                    ready: true,
                    ready_reason: "Ready",
                    message: "every component is ready",
                    stalled: false,
                    last_error: None,
                },
            ),
            (
                "running, release ready, no component declared: Ready",
                Phase::Running,
                observed(Release::Ready, &[]),
                Expect {
                    ready: true,
                    ready_reason: "Ready",
                    message: "every component is ready",
                    stalled: false,
                    last_error: None,
                },
            ),
            (
                "running, release ready, a component short of replicas: waiting for pods",
                Phase::Running,
                observed(Release::Ready, &[("server", 1, 2), ("db", 1, 1)]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "waiting for component pods",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "running, release progressing, components ready: waiting for the release",
                Phase::Running,
                observed(Release::Progressing, &[("server", 2, 2)]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "waiting for the HelmRelease",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "running, release not seen since the last apply: waiting for the release",
                Phase::Running,
                observed(Release::Unseen, &[]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "waiting for the HelmRelease",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "running, release failed: Stalled with helm's message",
                Phase::Running,
                observed(failed(), &[("server", 2, 2)]),
                Expect {
                    ready: false,
                    ready_reason: "HelmReleaseFailed",
                    message: "Helm upgrade failed",
                    stalled: true,
                    last_error: Some("Helm upgrade failed: replicas must be >= 0"),
                },
            ),
            (
                "stopped, every component at 0: Ready (stopped)",
                Phase::Stopped,
                observed(Release::Progressing, &[("server", 0, 0), ("db", 0, 0)]),
                Expect {
                    ready: true,
                    ready_reason: "Ready",
                    message: "stopped",
                    stalled: false,
                    last_error: None,
                },
            ),
            (
                "stopped, a component still has pods: stopping",
                Phase::Stopped,
                observed(Release::Ready, &[("server", 1, 0), ("db", 0, 0)]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "stopping components",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "stopped, a component not scaled down yet: stopping",
                Phase::Stopped,
                observed(Release::Ready, &[("server", 2, 2)]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "stopping components",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "stopped, the (suspended) release failed earlier: not Stalled, stopped",
                Phase::Stopped,
                observed(failed(), &[("server", 0, 0)]),
                Expect {
                    ready: true,
                    ready_reason: "Ready",
                    message: "stopped",
                    stalled: false,
                    last_error: None,
                },
            ),
            (
                "deleting: never Ready",
                Phase::Deleting,
                observed(Release::Ready, &[("server", 2, 2)]),
                Expect {
                    ready: false,
                    ready_reason: "Reconciling",
                    message: "deleting",
                    stalled: false,
                    last_error: Some("earlier"),
                },
            ),
            (
                "values digest mismatch: Stalled naming both digests",
                Phase::Running,
                Outcome::ValuesRejected(mismatch.clone()),
                Expect {
                    ready: false,
                    ready_reason: "ValuesDigestMismatch",
                    message: "spec.values hashes to aaa but spec.valuesDigest is bbb",
                    stalled: true,
                    last_error: Some("spec.values hashes to aaa but spec.valuesDigest is bbb"),
                },
            ),
            (
                "values digest mismatch while stopped: Stalled too",
                Phase::Stopped,
                Outcome::ValuesRejected(mismatch),
                Expect {
                    ready: false,
                    ready_reason: "ValuesDigestMismatch",
                    message: "nothing was applied",
                    stalled: true,
                    last_error: Some("nothing was applied"),
                },
            ),
            (
                "values missing (older agent): Stalled, says the next run writes them",
                Phase::Running,
                Outcome::ValuesRejected(ValuesProblem::Missing),
                Expect {
                    ready: false,
                    ready_reason: "ValuesMissing",
                    message: "the next flow run writes the values",
                    stalled: true,
                    last_error: Some("spec.values is missing"),
                },
            ),
            (
                "values not a map: Stalled",
                Phase::Running,
                Outcome::ValuesRejected(ValuesProblem::NotAMap),
                Expect {
                    ready: false,
                    ready_reason: "ValuesInvalid",
                    message: "not a map",
                    stalled: true,
                    last_error: Some("not a map"),
                },
            ),
            (
                "apply failed: Stalled with the error",
                Phase::Running,
                Outcome::ApplyFailed("applying HelmRelease shop: forbidden".into()),
                Expect {
                    ready: false,
                    ready_reason: "RenderOrApplyFailed",
                    message: "applying HelmRelease shop: forbidden",
                    stalled: true,
                    last_error: Some("applying HelmRelease shop: forbidden"),
                },
            ),
        ];
        for (name, phase, outcome, expect) in cases {
            let previous = StyrminDeploymentStatus {
                last_error: Some("earlier".into()),
                ..Default::default()
            };
            let status = next(&previous, Some(7), phase, &outcome, "t1");
            let ready = status.condition(READY).expect("a Ready condition");
            let stalled = status.condition(STALLED).expect("a Stalled condition");
            assert_eq!(status.is(READY), expect.ready, "{name}: Ready");
            assert_eq!(ready.reason, expect.ready_reason, "{name}: Ready reason");
            assert!(
                ready.message.contains(expect.message),
                "{name}: Ready message {:?}",
                ready.message
            );
            assert_eq!(status.is(STALLED), expect.stalled, "{name}: Stalled");
            if expect.stalled {
                assert_eq!(
                    stalled.reason, expect.ready_reason,
                    "{name}: Stalled reason"
                );
            }
            match expect.last_error {
                None => assert_eq!(status.last_error, None, "{name}: lastError"),
                Some(part) => assert!(
                    status
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains(part)),
                    "{name}: lastError {:?}",
                    status.last_error
                ),
            }
            assert_eq!(status.phase, Some(phase), "{name}: phase");
            assert_eq!(status.observed_generation, Some(7), "{name}: generation");
        }
    }

    /// An observation records the components and the release's readiness; a rejected or
    /// failed pass keeps what was last observed (nothing new was seen).
    #[test]
    fn observations_are_recorded_and_kept_through_failures() {
        let seen = next(
            &StyrminDeploymentStatus::default(),
            Some(1),
            Phase::Running,
            &observed(Release::Ready, &[("server", 1, 2)]),
            "t1",
        );
        assert_eq!(seen.helm_release_ready, Some(true));
        assert_eq!(seen.components, components(&[("server", 1, 2)]));
        let failed = next(
            &seen,
            Some(2),
            Phase::Running,
            &Outcome::ApplyFailed("boom".into()),
            "t2",
        );
        assert_eq!(failed.helm_release_ready, Some(true));
        assert_eq!(failed.components, seen.components);
        assert_eq!(failed.observed_generation, Some(2));
    }

    /// The same observation twice gives the same status (so the operator writes nothing
    /// the second time), and a condition's transition time moves only when it flips.
    #[test]
    fn the_same_observation_gives_the_same_status() {
        let outcome = observed(Release::Progressing, &[("server", 0, 1)]);
        let first = next(&Default::default(), Some(1), Phase::Running, &outcome, "t1");
        let again = next(&first, Some(1), Phase::Running, &outcome, "t2");
        assert_eq!(first, again);
        let ready = next(
            &again,
            Some(1),
            Phase::Running,
            &observed(Release::Ready, &[("server", 1, 1)]),
            "t3",
        );
        assert_eq!(ready.condition(READY).unwrap().last_transition_time, "t3");
        assert_eq!(ready.condition(STALLED).unwrap().last_transition_time, "t1");
    }

    /// The HelmRelease's conditions as Flux writes them, case by case.
    #[test]
    fn release_cases() {
        let condition = |status: &str, reason: &str| json!({"type": "Ready", "status": status, "reason": reason, "message": format!("{reason}: helm says so")});
        let cases: Vec<(&str, Option<i64>, Value, Release)> = vec![
            ("no status yet", Some(1), json!(null), Release::Progressing),
            (
                "ready at the current generation",
                Some(3),
                json!({"observedGeneration": 3, "conditions": [condition("True", "UpgradeSucceeded")]}),
                Release::Ready,
            ),
            (
                "ready, but for an older generation",
                Some(4),
                json!({"observedGeneration": 3, "conditions": [condition("True", "UpgradeSucceeded")]}),
                Release::Progressing,
            ),
            (
                "install failed at the current generation",
                Some(1),
                json!({"observedGeneration": 1, "conditions": [condition("False", "InstallFailed")]}),
                Release::Failed("InstallFailed: helm says so".into()),
            ),
            (
                "upgrade failed, but for an older generation",
                Some(2),
                json!({"observedGeneration": 1, "conditions": [condition("False", "UpgradeFailed")]}),
                Release::Progressing,
            ),
            (
                "not ready for another reason (progressing)",
                Some(2),
                json!({"observedGeneration": 2, "conditions": [condition("Unknown", "Progressing")]}),
                Release::Progressing,
            ),
            (
                "not ready, reason not a failure",
                Some(2),
                json!({"observedGeneration": 2, "conditions": [condition("False", "DependencyNotReady")]}),
                Release::Progressing,
            ),
            (
                "conditions without Ready",
                Some(2),
                json!({"observedGeneration": 2, "conditions": [{"type": "Released", "status": "True"}]}),
                Release::Progressing,
            ),
            (
                "no generation on the object",
                None,
                json!({"conditions": [condition("True", "InstallSucceeded")]}),
                Release::Progressing,
            ),
        ];
        for (name, generation, status, expected) in cases {
            assert_eq!(Release::read(generation, &status), expected, "{name}");
        }
    }

    /// The values are applied only when they hash to the recorded digest; each refusal
    /// says why.
    #[test]
    fn values_check_cases() {
        let values = json!({"server": {"replicas": 2}});
        let digest = values_digest(&values);
        assert_eq!(
            check_values(&values, &digest).unwrap(),
            values.as_object().unwrap()
        );
        assert_eq!(
            check_values(&values, "0000"),
            Err(ValuesProblem::Mismatch {
                computed: digest.clone(),
                recorded: "0000".into()
            })
        );
        assert_eq!(
            check_values(&Value::Null, &digest),
            Err(ValuesProblem::Missing)
        );
        assert_eq!(
            check_values(&json!([1]), &values_digest(&json!([1]))),
            Err(ValuesProblem::NotAMap)
        );
    }
}
