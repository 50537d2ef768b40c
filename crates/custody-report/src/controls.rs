//! The controls a finding or a drill scenario evidences, and the mapping
//! table (documented in `docs/report.md`, which a test checks against it).
//!
//! Three frameworks:
//! - NIST CSF 2.0 subcategories. PR.AA-05 is shown with CSF 1.1's PR.AC-4
//!   beside it ([`Control::csf_1_1`]), because security teams still cite it.
//! - The OWASP Non-Human Identities Top 10 (2025).
//! - NIST AI RMF 1.0 subcategories, only where automation (or an AI agent)
//!   requested, approved or executed by construction of the rule: a finding
//!   carries no actor, so a code is tagged only when its rule is about an
//!   automation principal.
//!
//! [`for_code`] matches every [`Code`] without a wildcard, so a new code does
//! not compile until it is mapped (an empty mapping is a decision too, for
//! the codes that are never findings).

use custody_core::Code;
use serde::{Serialize, Serializer};

/// A framework a control belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Framework {
    /// NIST Cybersecurity Framework 2.0.
    NistCsf2,
    /// OWASP Non-Human Identities Top 10, 2025.
    OwaspNhi2025,
    /// NIST AI Risk Management Framework 1.0.
    NistAiRmf1,
}

impl Framework {
    /// The framework's stable name in JSON and SARIF: `nist-csf-2.0`,
    /// `owasp-nhi-2025`, `nist-ai-rmf-1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::NistCsf2 => "nist-csf-2.0",
            Framework::OwaspNhi2025 => "owasp-nhi-2025",
            Framework::NistAiRmf1 => "nist-ai-rmf-1.0",
        }
    }

    /// The framework's name as people read it.
    pub fn title(self) -> &'static str {
        match self {
            Framework::NistCsf2 => "NIST CSF 2.0",
            Framework::OwaspNhi2025 => "OWASP Non-Human Identities Top 10 (2025)",
            Framework::NistAiRmf1 => "NIST AI RMF 1.0",
        }
    }
}

impl Serialize for Framework {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Declares [`Control`] from its table: `Variant = Framework "ID" "title";`.
macro_rules! controls {
    ($($variant:ident = $framework:ident $id:literal $title:literal;)*) => {
        /// A control a finding or scenario evidences. The order of the
        /// variants is the order of the report's per-control summary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Control {
            $(
                #[doc = concat!("`", $id, "`: ", $title)]
                $variant,
            )*
        }

        impl Control {
            /// Every control, in the order of the summary.
            pub const ALL: &'static [Control] = &[$(Control::$variant),*];

            /// The control's ID in its framework (`PR.AA-05`, `NHI5`,
            /// `GOVERN 3.2`); unique across the frameworks.
            pub const fn id(self) -> &'static str {
                match self { $(Control::$variant => $id,)* }
            }

            /// Its framework.
            pub const fn framework(self) -> Framework {
                match self { $(Control::$variant => Framework::$framework,)* }
            }

            /// Its title (the framework's words, shortened where long).
            pub const fn title(self) -> &'static str {
                match self { $(Control::$variant => $title,)* }
            }
        }
    };
}

controls! {
    CsfPrAa01 = NistCsf2 "PR.AA-01" "Identities and credentials for authorized users, services, and hardware are managed by the organization";
    CsfPrAa02 = NistCsf2 "PR.AA-02" "Identities are proofed and bound to credentials based on the context of interactions";
    CsfPrAa03 = NistCsf2 "PR.AA-03" "Users, services, and hardware are authenticated";
    CsfPrAa04 = NistCsf2 "PR.AA-04" "Identity assertions are protected, conveyed, and verified";
    CsfPrAa05 = NistCsf2 "PR.AA-05" "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate the principles of least privilege and separation of duties";
    CsfPrDs01 = NistCsf2 "PR.DS-01" "The confidentiality, integrity, and availability of data-at-rest are protected";
    CsfPrPs04 = NistCsf2 "PR.PS-04" "Log records are generated and made available for continuous monitoring";
    CsfDeCm03 = NistCsf2 "DE.CM-03" "Personnel activity and technology usage are monitored to find potentially adverse events";
    CsfGvSc07 = NistCsf2 "GV.SC-07" "The risks posed by a supplier, their products and services, and other third parties are understood, recorded, prioritized, assessed, responded to, and monitored over the course of the relationship";
    Nhi1 = OwaspNhi2025 "NHI1" "Improper Offboarding";
    Nhi2 = OwaspNhi2025 "NHI2" "Secret Leakage";
    Nhi3 = OwaspNhi2025 "NHI3" "Vulnerable Third-Party NHI";
    Nhi4 = OwaspNhi2025 "NHI4" "Insecure Authentication";
    Nhi5 = OwaspNhi2025 "NHI5" "Overprivileged NHI";
    Nhi6 = OwaspNhi2025 "NHI6" "Insecure Cloud Deployment Configurations";
    Nhi7 = OwaspNhi2025 "NHI7" "Long-Lived Secrets";
    Nhi8 = OwaspNhi2025 "NHI8" "Environment Isolation";
    Nhi9 = OwaspNhi2025 "NHI9" "NHI Reuse";
    Nhi10 = OwaspNhi2025 "NHI10" "Human Use of NHI";
    AiGovern32 = NistAiRmf1 "GOVERN 3.2" "Policies and procedures are in place to define and differentiate roles and responsibilities for human-AI configurations and oversight of AI systems";
    AiMap35 = NistAiRmf1 "MAP 3.5" "Processes for human oversight are defined, assessed, and documented in accordance with organizational policies";
    AiManage41 = NistAiRmf1 "MANAGE 4.1" "Post-deployment monitoring plans are implemented, including appeal and override, decommissioning, incident response, recovery, and change management";
}

impl Control {
    /// The CSF 1.1 subcategory shown beside it: PR.AC-4 beside PR.AA-05.
    pub fn csf_1_1(self) -> Option<&'static str> {
        (self == Control::CsfPrAa05).then_some("PR.AC-4")
    }

    /// The ID with the CSF 1.1 one beside it: `PR.AA-05 (CSF 1.1 PR.AC-4)`.
    pub fn label(self) -> String {
        match self.csf_1_1() {
            Some(old) => format!("{} (CSF 1.1 {old})", self.id()),
            None => self.id().to_string(),
        }
    }

    /// The tags SARIF and the JSON carry: `nist-csf-2.0/PR.AA-05`, and
    /// `nist-csf-1.1/PR.AC-4` beside it.
    pub fn tags(self) -> Vec<String> {
        let mut tags = vec![format!("{}/{}", self.framework().as_str(), self.id())];
        if let Some(old) = self.csf_1_1() {
            tags.push(format!("nist-csf-1.1/{old}"));
        }
        tags
    }

    /// The control with this ID, if there is one.
    pub fn parse(id: &str) -> Option<Control> {
        Control::ALL
            .iter()
            .copied()
            .find(|control| control.id() == id)
    }
}

impl Serialize for Control {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

use Control::*;

/// The trail's own integrity: the stored records are data at rest (PR.DS-01)
/// and the log the controls are evidenced by (PR.PS-04).
const TRAIL: &[Control] = &[CsfPrDs01, CsfPrPs04];
/// Integrity only.
const INTEGRITY: &[Control] = &[CsfPrDs01];
/// Authorizations defined, enforced and reviewed, with separation of duties.
const AUTHORIZATION: &[Control] = &[CsfPrAa05];
/// A policy record that cannot be trusted: the policy (PR.AA-05) and its
/// record at rest (PR.DS-01).
const POLICY_RECORD: &[Control] = &[CsfPrAa05, CsfPrDs01];
/// A vendor acting outside what its delegation grant covers.
const VENDOR: &[Control] = &[CsfPrAa05, CsfGvSc07, Nhi3];
/// A vendor acting on a grant that ended: third party and offboarding.
const VENDOR_ENDED: &[Control] = &[CsfPrAa05, CsfGvSc07, Nhi3, Nhi1];
/// An access change seen by a connector that no approval covers: drift.
const DRIFT: &[Control] = &[CsfPrAa05, CsfDeCm03, Nhi5];

/// The controls a finding under `code` evidences (empty for a code that is
/// never a finding). See `docs/report.md` for why each is there.
pub fn for_code(code: Code) -> &'static [Control] {
    match code {
        // Integrity of the stored trail.
        Code::LogIndexGap
        | Code::LogIndexDuplicate
        | Code::EventMalformed
        | Code::EventNotCanonical
        | Code::EventIndexMismatch
        | Code::ChainMissingStart
        | Code::ChainSeqGap
        | Code::ChainOutOfOrder
        | Code::ChainPrevHashMismatch
        | Code::ChainHeadMismatch
        | Code::CaseEventsMissing
        | Code::CaseMissingHead
        | Code::CaseNoRequest => TRAIL,
        Code::EventExternalIdRepeated | Code::CaseProjectionMismatch | Code::DeploymentMismatch => {
            INTEGRITY
        }
        Code::CaseSecondRequest => &[CsfPrAa05, CsfPrDs01],
        // The Merkle log and its checkpoints.
        Code::LogLeafMismatch
        | Code::LogLeafMissing
        | Code::LogLeafWithoutEvent
        | Code::LogNodeMismatch
        | Code::CheckpointBadSignature
        | Code::CheckpointRowMismatch
        | Code::CheckpointRootMismatch
        | Code::CheckpointBeyondLog
        | Code::SinceBadSignature
        | Code::SinceNotExtended
        | Code::SinceBeyondLog
        | Code::CheckpointMissingFromDatabase
        | Code::CheckpointOutsideMalformed
        | Code::CheckpointNoneOutside
        | Code::LogNoCheckpoint
        | Code::LogUncoveredTail => TRAIL,
        // Witnesses: the checkpoints someone outside the operator saw.
        Code::WitnessNoQuorum | Code::WitnessUncoveredTail | Code::WitnessBadCosignature => TRAIL,
        Code::CheckpointOutsideTorn => &[CsfPrPs04],
        // Lifecycle and separation of duties.
        Code::SodRequesterCannotApprove
        | Code::SodRequesterCannotDeny
        | Code::SodExecutorSoleApprover
        | Code::SodReviewerIsRequester
        | Code::SodReviewerIsExecutor
        | Code::SodApproverSameOrg
        | Code::LifecycleExecutionWithoutApproval
        | Code::LifecycleApprovedAfterExecution
        | Code::LifecycleApprovalNotRecorded
        | Code::ApprovalChangeMismatch
        | Code::LifecycleNotApproved
        | Code::LifecycleNotExecuted
        | Code::LifecycleCaseDenied
        | Code::LifecycleAlreadyExecuted
        | Code::LifecycleAlreadyReviewed
        | Code::ApprovalAlreadyApproved
        | Code::PolicyApproverNotInGroup
        | Code::PolicyApproverNotInStage
        | Code::PolicyExecutorNotAllowed
        | Code::PolicyBreakGlassNotAllowed
        | Code::ReviewOverdue
        | Code::LifecycleNotTimeBound
        | Code::LifecycleAlreadyRevoked
        | Code::LifecycleCaseMerged
        | Code::MergeSameCase
        | Code::MergeDuplicateExecuted
        | Code::MergeNotAllowed
        | Code::TicketAlreadyLinked
        | Code::AdminNotAdmin
        | Code::NotifyUndelivered => AUTHORIZATION,
        Code::SodRequesterCannotAttest => &[CsfPrAa05, CsfPrAa04],
        Code::ApprovalUnconfirmedAttestation => &[CsfPrAa04, CsfPrAa05],
        Code::ApprovalNothingToConfirm => &[CsfPrAa04],
        Code::PolicyUnrecorded
        | Code::PolicyRecordForged
        | Code::PolicyRecordMismatch
        | Code::PolicyRecordBroken
        | Code::PolicyRecordMisplaced => POLICY_RECORD,
        Code::PolicyDurationRequired | Code::PolicyDurationTooLong => &[CsfPrAa05, Nhi7],
        Code::LifecycleBreakGlassMisplaced => &[CsfPrAa05, CsfPrDs01],
        Code::LifecycleSystemEventForged => &[CsfPrAa04, CsfPrDs01],
        Code::BreakGlassReviewOverdue => &[CsfPrAa05, CsfDeCm03],
        // Evidence.
        Code::EvidenceBlobMissing
        | Code::EvidenceBlobAltered
        | Code::EvidenceBlobUnreferenced
        | Code::EvidenceUnmatchedLink
        | Code::EvidenceRecordMisplaced
        | Code::EvidenceRecordMismatch => INTEGRITY,
        Code::EvidenceLinkUnverified | Code::EvidenceLinkDrifted => TRAIL,
        Code::EvidenceUnattached => &[CsfPrPs04],
        // Notifications: automation that executes before a reviewer is told.
        Code::NotifyReviewerNotNotified => &[CsfPrAa05, AiGovern32, AiMap35],
        // What connectors observed.
        Code::ConnectorTicketDrift | Code::DriftBeforeApproval => &[CsfPrAa05, CsfDeCm03],
        Code::ChangeUnsanctioned | Code::DriftWiderThanApproved | Code::ReviewChangeMismatch => {
            DRIFT
        }
        Code::ChangeUnsanctionedMisplaced => INTEGRITY,
        Code::DriftAccessAfterRevocation => &[CsfPrAa05, CsfDeCm03, Nhi1],
        Code::DriftActorMismatch => &[CsfPrAa02, CsfPrAa05, CsfDeCm03],
        Code::DriftNhiCredentialUnsanctioned => &[CsfPrAa01, CsfDeCm03, Nhi5, Nhi7],
        // Vendors under delegation grants.
        Code::DelegationMissing
        | Code::DelegationGrantMismatch
        | Code::DelegationGrantUnrecorded => VENDOR,
        Code::DelegationGrantOutOfScope => &[CsfPrAa05, CsfGvSc07, Nhi3, Nhi5],
        Code::DelegationGrantRevoked | Code::DelegationGrantExpired => VENDOR_ENDED,
        // Links between cases, time-bound access.
        Code::RevocationUnmatchedLink | Code::MergeUnmatchedLink => INTEGRITY,
        Code::ExpiryRevocationOverdue => &[CsfPrAa05, Nhi1, Nhi7],
        // Administration.
        Code::AdminRecordInvalid => &[CsfPrAa01, CsfPrDs01],
        Code::AdminRecordMisplaced => INTEGRITY,
        Code::AdminPrincipalUnrecorded | Code::AdminPrincipalMismatch => {
            &[CsfPrAa01, CsfPrAa05, CsfPrDs01]
        }
        Code::AdminTokenUnrecorded => &[CsfPrAa01, CsfPrAa03, CsfPrDs01],
        Code::AdminTokenMismatch => &[CsfPrAa01, CsfPrAa03, CsfPrDs01, Nhi1],
        Code::AdminGrantUnrecorded | Code::AdminGrantMismatch => {
            &[CsfPrAa05, CsfGvSc07, Nhi3, CsfPrDs01]
        }
        Code::AdminIdentityUnrecorded | Code::AdminIdentityMismatch => {
            &[CsfPrAa02, CsfPrAa03, CsfPrDs01]
        }
        Code::AdminUnrecordedLegacy => &[CsfPrAa01],
        // The auditor bundle.
        Code::BundleMalformed
        | Code::BundleDigestMismatch
        | Code::BundleTruncated
        | Code::BundleInclusionInvalid
        | Code::BundleConsistencyInvalid
        | Code::BundleOutOfOrder
        | Code::BundleOutsideScope
        | Code::BundleEvidenceUnlisted
        | Code::BundleIdempotencyUnrecorded
        | Code::BundleKeysUntrusted => INTEGRITY,
        Code::BundleTokenUnrecorded | Code::BundleTokenMismatch => &[CsfPrAa01, CsfPrDs01],
        Code::BundlePartial => &[CsfPrPs04],
        // Refusals, escalation reasons and obligations: never findings.
        Code::LifecycleNotOpen
        | Code::EvidenceTooLarge
        | Code::EvidenceAddressRefused
        | Code::EvidenceInvalidUrl
        | Code::EvidenceHashMismatch
        | Code::NotifyAlreadyDelivered
        | Code::NotifyDeadLetter
        | Code::DelegationNone
        | Code::DelegationOutOfScope
        | Code::DelegationExpired
        | Code::ApprovalOverdue
        | Code::ExpiryNotice
        | Code::ExpiryRevocationDue
        | Code::IdempotencyKeyReused
        | Code::TicketConnectorOwned
        | Code::CaseDuplicateOpen
        | Code::DrillNotAllowed
        | Code::OidcIdentityMismatch
        | Code::PrincipalExists
        | Code::AdminLastAdmin => &[],
    }
}

/// One scenario of `custody drill`, as the report knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Its stable ID (`docs/drill.md`).
    pub id: &'static str,
    /// Whether the verdict needs it to pass: a required scenario that is
    /// not covered makes the deployment not ready. The optional ones need a
    /// component a deployment may do without (a chat connector, an export
    /// sink, a connector that observes changes).
    pub required: bool,
    /// The controls it evidences.
    pub controls: &'static [Control],
}

/// Every drill scenario, in the drill's order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "lifecycle",
        required: true,
        controls: &[CsfPrAa05, CsfPrAa03, CsfPrPs04],
    },
    Scenario {
        id: "duplicates",
        required: true,
        controls: &[CsfPrAa05, CsfPrDs01, CsfPrPs04],
    },
    Scenario {
        id: "notification-failure",
        required: true,
        controls: &[CsfPrAa05, CsfPrPs04],
    },
    Scenario {
        id: "disconnected-attachment",
        required: true,
        controls: TRAIL,
    },
    Scenario {
        id: "break-glass",
        required: true,
        controls: &[CsfPrAa05, CsfDeCm03],
    },
    Scenario {
        id: "chat-approval",
        required: false,
        controls: &[CsfPrAa04, CsfPrAa05],
    },
    Scenario {
        id: "automation-first",
        required: true,
        controls: &[CsfPrAa05, AiGovern32, AiMap35, AiManage41],
    },
    Scenario {
        id: "vendor-delegation",
        required: true,
        controls: VENDOR,
    },
    Scenario {
        id: "late-records",
        required: true,
        controls: TRAIL,
    },
    Scenario {
        id: "export",
        required: false,
        controls: &[CsfPrPs04],
    },
    Scenario {
        id: "unsanctioned-change",
        required: false,
        controls: DRIFT,
    },
];

/// The scenario with this ID, if the report knows it.
pub fn scenario(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|scenario| scenario.id == id)
}

/// The controls a scenario evidences (none for a scenario the report does
/// not know: a newer drill's).
pub fn for_scenario(id: &str) -> &'static [Control] {
    scenario(id).map_or(&[], |scenario| scenario.controls)
}
