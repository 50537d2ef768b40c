// The imports of the backend files; included once per backend module.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use custody_core::audit::{
    Auditor, LogAudit, Report, StoredCaseHead, StoredCheckpointRow,
    StoredEvent,
};
use custody_core::case::CaseView;
use custody_core::command::{CaseCommand, CaseStep, ClientCommand, LedgerCommand, Opening};
use custody_core::delegation::DelegationGrant;
use custody_core::event::{Event, ReviewOutcome};
use custody_core::lifecycle::{self, Refusal};
use custody_core::model::{Change, Principal, PrincipalId, PrincipalKind};
use custody_core::notice::Routing;
use custody_core::{CaseId, CaseState, Code, Sha256Hash, Timestamp};
use custody_log::note::SignerKey;
use custody_log::tree::{self, NodeId};
use custody_log::Hash;
use sqlx::{QueryBuilder, Row};
use tokio::sync::mpsc;

use crate::writer::*;
use crate::{
    AppendedEvent, Authenticated, CaseSummary, CaseWrite, IssuedToken, LogEntry, StoreError,
    StoredCheckpoint, TokenInfo, WriteOutcome, TOKEN_PREFIX,
};
