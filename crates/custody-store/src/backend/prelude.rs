// The imports of the backend files; included once per backend module.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use custody_core::audit::{
    Auditor, LogAudit, Report, RetiredRow, Retirement, StoredCaseHead, StoredCaseRow,
    StoredCheckpointRow, StoredDeploymentRow, StoredEvent, StoredEvidenceRecordRow,
};
use custody_core::case::CaseView;
use custody_core::delegation::DelegationGrant;
use custody_core::event::Event;
use custody_core::lifecycle;
use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_core::{CaseId, CaseState, SharedClock, Sha256Hash, Timestamp};
use custody_log::note::SignerKey;
use custody_log::tree::{self, NodeId};
use custody_log::Hash;
use sqlx::{QueryBuilder, Row};
use tokio::sync::mpsc;

use crate::plan::{self, Pending, Prefetched};
use crate::sql_int::{from_sql, to_sql};
use crate::writer::*;
use crate::{
    AppendedEvent, TokenOwner, CaseSummary, CaseWrite, IssuedToken, LogEntry, StoreError,
    StoredCheckpoint, TokenInfo, WriteOutcome, TOKEN_PREFIX,
};
