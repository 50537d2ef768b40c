//! Approval policy: which rule governs a requested change, and what it demands.
//!
//! A [`Policy`] is an ordered list of [`Rule`]s read from the `[[policy.rules]]`
//! tables of the `--config` file; the first rule that matches a change
//! decides it, and without a matching rule the brief's default applies (one
//! approval from anyone other than the requester). The decision is recorded
//! in the case as an [`AppliedRule`] (the rule's name, its requirements and
//! the hash of the whole policy), so a case is always judged by the rule that
//! opened it, even after the configuration changes, and `verify` needs no
//! configuration to re-check it.

use serde::{Deserialize, Serialize};

use crate::id::Sha256Hash;
use crate::model::{parse_duration, Change, ChangeKind, PrincipalKind, SubjectKind};

/// The name recorded for cases no configured rule matched.
pub const DEFAULT_RULE: &str = "default";

/// The policy in force: ordered rules, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The rules, in the order they are tried.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule: what it matches and what it requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A unique name, recorded in every case the rule decides.
    pub name: String,
    /// Subject kinds it applies to (empty: any).
    #[serde(default)]
    pub subject_kinds: Vec<SubjectKind>,
    /// Entitlement patterns (`*` matches any run of characters; empty: any).
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Resource patterns (empty: any, including none).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Change kinds it applies to (empty: any).
    #[serde(default)]
    pub changes: Vec<ChangeKind>,
    /// Distinct approvals required before execution (at least 1).
    #[serde(default = "one")]
    pub approvals: u32,
    /// Approvers must be in one of these groups (empty: any principal).
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Approvers must not belong to the requester's organisation.
    #[serde(default)]
    pub approver_not_in_requester_org: bool,
    /// Executors must be in one of these groups (empty: any principal).
    #[serde(default)]
    pub executor_groups: Vec<String>,
    /// Executors must be of one of these kinds (empty: any kind).
    #[serde(default)]
    pub executor_kinds: Vec<PrincipalKind>,
    /// Longest time-bound grant, such as `8h`; when set, a duration is required.
    #[serde(default)]
    pub max_duration: Option<String>,
    /// Whether break-glass (execution before approval) is allowed (default: yes,
    /// always followed by a mandatory post-hoc review).
    #[serde(default = "yes")]
    pub break_glass: bool,
    /// Deadline of the post-hoc review after break-glass (default `24h`).
    #[serde(default)]
    pub post_hoc_review_deadline: Option<String>,
    /// Deadline of the review after an execution, such as `3d` (default: none,
    /// except `24h` after an execution by an automation principal).
    #[serde(default)]
    pub review_deadline: Option<String>,
    /// Whether an approval attested from chat by someone else counts before
    /// the approver confirms it (default: no).
    #[serde(default)]
    pub allow_attested_approvals: bool,
    /// How long a request may wait for its approvals before the ledger
    /// escalates it (`approval.overdue`), such as `4h` (default: no deadline).
    #[serde(default)]
    pub approval_deadline: Option<String>,
    /// Approval stages, in order (instead of `approvals` and
    /// `approver_groups`): each stage needs its own distinct approvers from
    /// its groups, and an approval counts for the first stage not yet
    /// complete. For example the owner of an API key, then security.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// One approval stage of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage's name, shown in refusals and in `custody show`.
    pub name: String,
    /// Distinct approvals the stage needs (at least 1).
    #[serde(default = "one")]
    pub approvals: u32,
    /// Approvers of this stage must be in one of these groups (empty: anyone).
    #[serde(default)]
    pub approver_groups: Vec<String>,
}

/// The progress of one approval stage of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageProgress {
    /// The stage's name.
    pub name: String,
    /// Distinct approvals it needs.
    pub required: u32,
    /// Groups its approvers must be in (empty: anyone).
    pub approver_groups: Vec<String>,
    /// The approvers counted for it, in the order their approvals count.
    pub approvers: Vec<crate::model::PrincipalId>,
}

impl StageProgress {
    /// Whether the stage has all its approvals.
    pub fn is_complete(&self) -> bool {
        self.approvers.len() >= self.required as usize
    }
}

/// The rule that decided a case, as recorded in its request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppliedRule {
    /// The rule's name (`default` when no configured rule matched).
    pub name: String,
    /// SHA-256 of the canonical encoding of the whole policy in force.
    pub policy_hash: Sha256Hash,
    /// Distinct approvals required.
    pub approvals: u32,
    /// Groups an approver must be in (empty: any).
    pub approver_groups: Vec<String>,
    /// Whether approvers must be outside the requester's organisation.
    pub approver_not_in_requester_org: bool,
    /// Groups an executor must be in (empty: any).
    pub executor_groups: Vec<String>,
    /// Kinds an executor must be (empty: any).
    pub executor_kinds: Vec<PrincipalKind>,
    /// Longest duration allowed, in seconds.
    #[serde(deserialize_with = "Option::deserialize")]
    pub max_duration_seconds: Option<u64>,
    /// Whether break-glass is allowed.
    pub break_glass: bool,
    /// Seconds from a break-glass execution to its post-hoc review deadline.
    pub post_hoc_review_seconds: u64,
    /// Seconds from an execution to its review deadline, when the rule sets one.
    #[serde(deserialize_with = "Option::deserialize")]
    pub review_deadline_seconds: Option<u64>,
    /// Whether attested chat approvals count unconfirmed.
    pub allow_attested_approvals: bool,
    /// Seconds a request may wait for its approvals before it is escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_deadline_seconds: Option<u64>,
    /// Approval stages, in order; empty for a rule of one stage described
    /// by `approvals` and `approver_groups` (see [`AppliedRule::stages`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Two rules share a name.
    #[error("two policy rules are named `{0}`; rule names must be unique")]
    DuplicateName(String),
    /// A rule requires no approval.
    #[error("policy rule `{0}` requires 0 approvals; every change needs at least one")]
    NoApprovals(String),
    /// A rule name is empty or reserved.
    #[error("policy rule name `{0}` is empty or reserved")]
    BadName(String),
    /// A rule's stages are malformed, or mixed with rule-level approvals.
    #[error("policy rule `{rule}`: {message}")]
    Stages {
        /// The rule.
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// A duration does not parse.
    #[error("policy rule `{rule}`: {message}")]
    Duration {
        /// The rule.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// The post-hoc review deadline after break-glass when a rule sets none.
pub const DEFAULT_POST_HOC_REVIEW_SECONDS: u64 = 24 * 3600;

/// The review deadline after an execution by an automation principal when
/// the rule sets none: automation must never change access unreviewed.
pub const DEFAULT_AUTOMATION_REVIEW_SECONDS: u64 = 24 * 3600;

impl Policy {
    /// Checks a policy read from configuration.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut names = std::collections::HashSet::new();
        for rule in &self.rules {
            if rule.name.trim().is_empty() || rule.name == DEFAULT_RULE {
                return Err(PolicyError::BadName(rule.name.clone()));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(PolicyError::DuplicateName(rule.name.clone()));
            }
            if rule.approvals == 0 {
                return Err(PolicyError::NoApprovals(rule.name.clone()));
            }
            rule.validate_stages()?;
            rule.max_duration_seconds()?;
            rule.post_hoc_review_seconds()?;
            rule.review_deadline_seconds()?;
            rule.approval_deadline_seconds()?;
        }
        Ok(())
    }

    /// SHA-256 of the policy's canonical encoding: names this version.
    pub fn hash(&self) -> Sha256Hash {
        Sha256Hash::of(&crate::canonical::to_canonical_bytes(self))
    }

    /// The rule that governs `change`, as it will be recorded in the case.
    pub fn decide(&self, change: &Change) -> AppliedRule {
        let policy_hash = self.hash();
        match self.rules.iter().find(|rule| rule.matches(change)) {
            Some(rule) => AppliedRule {
                name: rule.name.clone(),
                policy_hash,
                approvals: if rule.stages.is_empty() {
                    rule.approvals
                } else {
                    rule.stages.iter().map(|stage| stage.approvals).sum()
                },
                approver_groups: rule.approver_groups.clone(),
                approver_not_in_requester_org: rule.approver_not_in_requester_org,
                executor_groups: rule.executor_groups.clone(),
                executor_kinds: rule.executor_kinds.clone(),
                // Validated when the policy was loaded.
                max_duration_seconds: rule.max_duration_seconds().ok().flatten(),
                break_glass: rule.break_glass,
                post_hoc_review_seconds: rule
                    .post_hoc_review_seconds()
                    .unwrap_or(DEFAULT_POST_HOC_REVIEW_SECONDS),
                review_deadline_seconds: rule.review_deadline_seconds().ok().flatten(),
                allow_attested_approvals: rule.allow_attested_approvals,
                approval_deadline_seconds: rule.approval_deadline_seconds().ok().flatten(),
                stages: rule.stages.clone(),
            },
            None => AppliedRule::default_rule(policy_hash),
        }
    }
}

impl Rule {
    fn matches(&self, change: &Change) -> bool {
        (self.subject_kinds.is_empty() || self.subject_kinds.contains(&change.subject().kind))
            && (self.changes.is_empty() || self.changes.contains(&change.kind()))
            && (self.entitlements.is_empty()
                || self
                    .entitlements
                    .iter()
                    .any(|pattern| glob_matches(pattern, change.entitlement())))
            && (self.resources.is_empty()
                || change.resource().is_some_and(|resource| {
                    self.resources
                        .iter()
                        .any(|pattern| glob_matches(pattern, resource))
                }))
    }

    fn validate_stages(&self) -> Result<(), PolicyError> {
        let error = |message: String| PolicyError::Stages {
            rule: self.name.clone(),
            message,
        };
        if self.stages.is_empty() {
            return Ok(());
        }
        if self.approvals != 1 || !self.approver_groups.is_empty() {
            return Err(error(
                "set either `stages` or `approvals`/`approver_groups`, not both; with stages, each stage says how many approvals it needs and from which groups".to_string(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for stage in &self.stages {
            if stage.name.trim().is_empty() {
                return Err(error("a stage has an empty name".to_string()));
            }
            if !names.insert(stage.name.as_str()) {
                return Err(error(format!("two stages are named `{}`", stage.name)));
            }
            if stage.approvals == 0 {
                return Err(error(format!(
                    "stage `{}` requires 0 approvals; every stage needs at least one",
                    stage.name
                )));
            }
        }
        Ok(())
    }

    fn post_hoc_review_seconds(&self) -> Result<u64, PolicyError> {
        match self.post_hoc_review_deadline.as_deref() {
            None => Ok(DEFAULT_POST_HOC_REVIEW_SECONDS),
            Some(text) => parse_duration(text).map_err(|error| PolicyError::Duration {
                rule: self.name.clone(),
                message: error.to_string(),
            }),
        }
    }

    fn review_deadline_seconds(&self) -> Result<Option<u64>, PolicyError> {
        self.review_deadline
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|error| PolicyError::Duration {
                rule: self.name.clone(),
                message: error.to_string(),
            })
    }

    fn approval_deadline_seconds(&self) -> Result<Option<u64>, PolicyError> {
        self.approval_deadline
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|error| PolicyError::Duration {
                rule: self.name.clone(),
                message: error.to_string(),
            })
    }

    fn max_duration_seconds(&self) -> Result<Option<u64>, PolicyError> {
        self.max_duration
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|error| PolicyError::Duration {
                rule: self.name.clone(),
                message: error.to_string(),
            })
    }
}

impl AppliedRule {
    /// The default rule under an empty policy (no `[[policy.rules]]`).
    pub fn brief_default() -> AppliedRule {
        AppliedRule::default_rule(Policy::default().hash())
    }

    /// The brief's default: one approval from anyone but the requester.
    pub fn default_rule(policy_hash: Sha256Hash) -> AppliedRule {
        AppliedRule {
            name: DEFAULT_RULE.to_string(),
            policy_hash,
            approvals: 1,
            approver_groups: Vec::new(),
            approver_not_in_requester_org: false,
            executor_groups: Vec::new(),
            executor_kinds: Vec::new(),
            max_duration_seconds: None,
            break_glass: true,
            post_hoc_review_seconds: DEFAULT_POST_HOC_REVIEW_SECONDS,
            review_deadline_seconds: None,
            allow_attested_approvals: false,
            approval_deadline_seconds: None,
            stages: Vec::new(),
        }
    }

    /// The rule's approval stages in order: its configured stages, or one
    /// stage named `approval` of `approvals` approvers from `approver_groups`.
    pub fn stages(&self) -> Vec<Stage> {
        if self.stages.is_empty() {
            vec![Stage {
                name: "approval".to_string(),
                approvals: self.approvals,
                approver_groups: self.approver_groups.clone(),
            }]
        } else {
            self.stages.clone()
        }
    }
}

/// `*` matches any run of characters (including none); everything else
/// matches itself. Patterns are case-sensitive.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = parts.split_first().unwrap_or((&"", &[]));
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = rest.split_last().unwrap_or((&"", &[]));
    for part in middle {
        match remaining.find(part) {
            Some(position) => remaining = &remaining[position + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("admin", "admin", true),
            ("admin", "admins", false),
            ("db-*", "db-admin", true),
            ("db-*", "db-", true),
            ("db-*", "xdb-admin", false),
            ("*-admin", "prod-admin", true),
            ("prod-*-admin", "prod-eu-admin", true),
            ("prod-*-admin", "prod-admin", false),
            ("*", "", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
