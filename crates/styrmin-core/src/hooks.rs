//! Which driver actions a flow run executes, and in what order (SPEC §5), as a pure
//! function of the driver and the flow's kind: `create` runs hook `setup`, `upgrade` runs
//! hook `upgrade`, every other kind runs its core alone.

use crate::driver::{Action, DriverSpec, Hook, Mode};
use crate::planner::FlowKind;

/// The stages of one flow run: every `pre` action (in parallel), then the core, then every
/// `post` action (in parallel). Ordering between stages is strict.
#[derive(Debug, Clone, PartialEq)]
pub struct HookPlan<'a> {
    pub hook: Option<Hook>,
    pub pre: Vec<&'a Action>,
    /// The driver's own core action; `None` runs the default core (apply and wait).
    pub core: Option<&'a Action>,
    pub post: Vec<&'a Action>,
}

impl HookPlan<'_> {
    /// The stages in the order they run, with their mode.
    pub fn stages(&self) -> [(Mode, Vec<&Action>); 3] {
        [
            (Mode::Pre, self.pre.clone()),
            (Mode::Core, self.core.into_iter().collect()),
            (Mode::Post, self.post.clone()),
        ]
    }
}

pub fn hook_of(kind: FlowKind) -> Option<Hook> {
    match kind {
        FlowKind::Create => Some(Hook::Setup),
        FlowKind::Upgrade => Some(Hook::Upgrade),
        _ => None,
    }
}

pub fn plan(spec: &DriverSpec, kind: FlowKind) -> HookPlan<'_> {
    let Some(hook) = hook_of(kind) else {
        return HookPlan {
            hook: None,
            pre: vec![],
            core: None,
            post: vec![],
        };
    };
    HookPlan {
        hook: Some(hook),
        pre: spec.actions_for(hook, Mode::Pre).collect(),
        // Validation allows at most one core action per hook.
        core: spec.actions_for(hook, Mode::Core).next(),
        post: spec.actions_for(hook, Mode::Post).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DriverSpec {
        let yaml = r#"
version: "1"
supported_versions: ">=1"
helm: {main: {location: "https://charts.example.com/app", version: "1.0.0"}}
components: {server: {identifier: {label: {app: x}}}}
actions:
  - {name: check, hook: setup, mode: pre, steps: [{wait_ready: [server]}]}
  - {name: seed, hook: setup, mode: post, steps: [{wait_ready: [server]}]}
  - {name: smoke, hook: setup, mode: post, steps: [{wait_ready: [server]}]}
  - {name: drain, hook: upgrade, mode: pre, steps: [{stop: [server]}]}
  - {name: migrate, hook: upgrade, mode: core, location: "actions.py::upgrade"}
"#;
        // Through JSON: YAML's own enum encoding would want tags for the steps.
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        serde_json::from_value(value).unwrap()
    }

    fn names(actions: &[&Action]) -> Vec<String> {
        actions.iter().map(|a| a.name.clone()).collect()
    }

    #[test]
    fn create_runs_setup_with_the_default_core() {
        let spec = spec();
        let plan = plan(&spec, FlowKind::Create);
        assert_eq!(plan.hook, Some(Hook::Setup));
        assert_eq!(names(&plan.pre), ["check"]);
        assert!(
            plan.core.is_none(),
            "no setup core action: the default core"
        );
        assert_eq!(names(&plan.post), ["seed", "smoke"]);
    }

    #[test]
    fn upgrade_runs_the_driver_s_core_action_instead_of_the_default() {
        let spec = spec();
        let plan = plan(&spec, FlowKind::Upgrade);
        assert_eq!(names(&plan.pre), ["drain"]);
        assert_eq!(plan.core.map(|a| a.name.as_str()), Some("migrate"));
        assert!(plan.post.is_empty());
    }

    #[test]
    fn update_stop_start_and_delete_run_no_hook() {
        let spec = spec();
        for kind in [
            FlowKind::Update,
            FlowKind::Stop,
            FlowKind::Start,
            FlowKind::Delete,
        ] {
            let plan = plan(&spec, kind);
            assert_eq!(plan.hook, None, "{kind}");
            assert!(plan.pre.is_empty() && plan.core.is_none() && plan.post.is_empty());
        }
    }
}
