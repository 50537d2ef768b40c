/// The newest stored checkpoint.
pub(crate) async fn read_latest_checkpoint(readers: &Pool) -> Result<Option<StoredCheckpoint>, StoreError> {
    let mut connection = readers.acquire().await?;
    latest_checkpoint(&mut connection).await
}

/// [`check_extends`] on a read connection, against the log as it stands.
pub(crate) async fn check_signed_history(
    readers: &Pool,
    known: &[crate::KnownCheckpoint],
) -> Result<(), StoreError> {
    let mut connection = readers.acquire().await?;
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
        .fetch_one(&mut *connection)
        .await?;
    check_extends(&mut connection, from_sql(size), known).await
}

/// Log entries `[start, end)`, at most `limit` of them.
pub(crate) async fn entries(
    readers: &Pool,
    start: u64,
    end: u64,
    limit: u64,
) -> Result<Vec<LogEntry>, StoreError> {
    if start > end {
        return Err(StoreError::InvalidRequest(format!(
            "start {start} is after end {end}"
        )));
    }
    let end = end.min(start.saturating_add(limit));
    let rows = sqlx::query(
        "SELECT log_index, case_id, bytes FROM events WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index",
    )
    .bind(to_sql(start))
    .bind(to_sql(end))
    .fetch_all(readers)
    .await?;
    rows.iter().map(log_entry_from_row).collect()
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub(crate) async fn read_inclusion_proof(
    readers: &Pool,
    index: u64,
    size: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut connection = readers.acquire().await?;
    check_size(&mut connection, size).await?;
    inclusion_proof(&mut connection, index, size).await
}

/// The consistency proof from the tree of `old_size` to that of `new_size` leaves.
pub(crate) async fn read_consistency_proof(
    readers: &Pool,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut connection = readers.acquire().await?;
    check_size(&mut connection, new_size).await?;
    consistency_proof(&mut connection, old_size, new_size).await
}

/// Every event of a case that `checkpoint` covers, with its leaf bytes and
/// inclusion proof against that checkpoint, in sequence order.
pub(crate) async fn case_proofs(
    readers: &Pool,
    case_id: &CaseId,
    checkpoint: &StoredCheckpoint,
) -> Result<Vec<(LogEntry, Vec<[u8; 32]>)>, StoreError> {
    let mut connection = readers.acquire().await?;
    let rows =
        sqlx::query("SELECT log_index, bytes FROM events WHERE case_id = $1 ORDER BY seq")
            .bind(case_id.as_str())
            .fetch_all(&mut *connection)
            .await?;
    if rows.is_empty() {
        return Err(StoreError::CaseNotFound(case_id.to_string()));
    }
    let size = checkpoint.size;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let index: i64 = row.try_get("log_index")?;
        let index = from_sql(index);
        if index < size {
            entries.push(LogEntry {
                index,
                leaf: row.try_get("bytes")?,
                case_id: case_id.to_string(),
            });
        }
    }
    // The nodes of every proof, read together (the proofs of one case's
    // events share most of them), then each proof built from them.
    let mut ids = std::collections::HashSet::new();
    for entry in &entries {
        ids.extend(
            tree::nodes_for_inclusion(entry.index, size)
                .map_err(|error| StoreError::InvalidRequest(error.to_string()))?,
        );
    }
    let ids: Vec<NodeId> = ids.into_iter().collect();
    let nodes = fetch_nodes(&mut connection, &ids).await?;
    let mut proofs = Vec::with_capacity(entries.len());
    for entry in entries {
        let proof = tree::inclusion_proof(&nodes, entry.index, size).map_err(|error| {
            StoreError::Corrupt(format!(
                "inclusion proof of {} in {size}: {error}",
                entry.index
            ))
        })?;
        proofs.push((entry, proof));
    }
    Ok(proofs)
}

async fn check_size(
    connection: &mut Conn,
    size: u64,
) -> Result<(), StoreError> {
    let log_size: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
            .fetch_one(&mut *connection)
            .await?;
    if size > from_sql(log_size) {
        return Err(StoreError::InvalidRequest(format!(
            "the log has {log_size} entries; size {size} does not exist yet"
        )));
    }
    Ok(())
}

/// Every delegation grant, in force or not.
pub(crate) async fn delegations(
    readers: &Pool,
) -> Result<Vec<custody_core::delegation::DelegationGrant>, StoreError> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT grant_json FROM delegations ORDER BY grant_id")
            .fetch_all(readers)
            .await?;
    rows.iter()
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))
        })
        .collect()
}

/// Issued tokens, optionally of one principal, newest first.
pub(crate) async fn tokens(
    readers: &Pool,
    principal: Option<&PrincipalId>,
) -> Result<Vec<TokenInfo>, StoreError> {
    let rows = sqlx::query(concat!(
        crate::token_select!(),
        " WHERE ($1 IS NULL OR principal_id = $1) ORDER BY created_at DESC, token_id"
    ))
    .bind(principal.map(PrincipalId::as_str))
    .fetch_all(readers)
    .await?;
    rows.iter().map(token_from_row).collect()
}

/// One token's record.
pub(crate) async fn token(readers: &Pool, token_id: &str) -> Result<Option<TokenInfo>, StoreError> {
    let row = sqlx::query(concat!(crate::token_select!(), " WHERE token_id = $1"))
        .bind(token_id)
        .fetch_optional(readers)
        .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// The principal a bearer token authenticates, or `None` when the token
/// is unknown, expired (at `now`) or revoked.
pub(crate) async fn authenticate(
    readers: &Pool,
    token: &str,
    now: Timestamp,
) -> Result<Option<TokenOwner>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 256 {
        return Ok(None);
    }
    let digest = Sha256Hash::of(token.as_bytes());
    let row = sqlx::query(
        "SELECT t.token_id, t.expires_at, p.principal_id, p.display_name, p.kind, p.groups_json, p.org
         FROM tokens t JOIN principals p ON p.principal_id = t.principal_id
         WHERE t.secret_sha256 = $1 AND t.revoked_at IS NULL",
    )
    .bind(digest.0.to_vec())
    .fetch_optional(readers)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: Option<String> = row.try_get("expires_at")?;
    if let Some(expires_at) = expires_at {
        let expires_at = Timestamp::parse(&expires_at)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if expires_at <= now {
            return Ok(None);
        }
    }
    Ok(Some(TokenOwner {
        token_id: row.try_get("token_id")?,
        principal: principal_from_row(&row)?,
    }))
}

/// One principal.
pub(crate) async fn principal(readers: &Pool, id: &PrincipalId) -> Result<Option<Principal>, StoreError> {
    let row = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals WHERE principal_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(readers)
    .await?;
    row.map(|row| principal_from_row(&row)).transpose()
}

/// The case that carries `ticket` and was not merged away (the newest, if
/// several were opened for it over time).
pub(crate) async fn case_for_ticket(
    readers: &Pool,
    ticket: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT case_id FROM cases WHERE ticket = $1 AND state <> 'merged' ORDER BY opened_at DESC LIMIT 1",
    )
    .bind(ticket)
    .fetch_optional(readers)
    .await?;
    Ok(row.map(|row| row.get::<String, _>(0)))
}

/// All principals, by name.
pub(crate) async fn principals(readers: &Pool) -> Result<Vec<Principal>, StoreError> {
    let rows = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals ORDER BY principal_id",
    )
    .fetch_all(readers)
    .await?;
    rows.iter().map(principal_from_row).collect()
}

/// A case's events in sequence order, and the view rebuilt from them.
pub(crate) async fn case(readers: &Pool, case_id: &CaseId) -> Result<(CaseView, Vec<Event>), StoreError> {
    let rows = sqlx::query("SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq")
        .bind(case_id.as_str())
        .fetch_all(readers)
        .await?;
    let events = rows
        .iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("bytes")?;
            Event::decode(&bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
        })
        .collect::<Result<Vec<Event>, StoreError>>()?;
    let view = CaseView::replay(&events)
        .ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
    Ok((view, events))
}

/// A case's projection as stored with its latest event, without reading
/// its events: for decisions that need only the requested change, which
/// never changes. [`Store::case`] rebuilds the view from the events.
pub(crate) async fn case_view(readers: &Pool, case_id: &CaseId) -> Result<CaseView, StoreError> {
    let view: Option<Vec<u8>> = sqlx::query_scalar("SELECT view FROM cases WHERE case_id = $1")
        .bind(case_id.as_str())
        .fetch_optional(readers)
        .await?;
    let view = view.ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
    serde_json::from_slice(&view)
        .map_err(|error| StoreError::Corrupt(format!("case {case_id} projection: {error}")))
}

/// A case listing's statement, newest first.
macro_rules! case_listing {
    ($filter:literal) => {
        concat!(
            "SELECT case_id, state, summary, requester, ticket, opened_at, updated_at, drill FROM cases ",
            $filter,
            " ORDER BY opened_at DESC, case_id DESC LIMIT $2"
        )
    };
}

/// The case listings' statements ($1 the state, $2 the limit, $3 whether
/// drill cases are included), by `state given + 2 × unsanctioned`.
pub(crate) const CASE_LISTINGS: [&str; 4] = [
    case_listing!("WHERE ($1 IS NULL) AND ($3 OR NOT drill)"),
    case_listing!("WHERE state = $1 AND ($3 OR NOT drill)"),
    case_listing!("WHERE ($1 IS NULL) AND requester = 'system' AND ($3 OR NOT drill)"),
    case_listing!("WHERE state = $1 AND requester = 'system' AND ($3 OR NOT drill)"),
];

/// Cases, newest first, optionally only those in `state`.
pub(crate) async fn cases(
    readers: &Pool,
    state: Option<CaseState>,
    limit: u32,
    unsanctioned: bool,
    include_drills: bool,
) -> Result<Vec<CaseSummary>, StoreError> {
    // The ledger's own `system` principal requests only the cases an
    // observation opened (no case sanctioned the change it saw). Drill
    // cases are left out unless asked for. Each way of listing has its own
    // statement, so the planner walks its index newest first and stops at
    // the limit (migration 0013/0012: `cases_by_time`, `cases_by_state`,
    // `cases_unsanctioned`, whose condition names `system` literally).
    let statement = CASE_LISTINGS[usize::from(state.is_some()) + 2 * usize::from(unsanctioned)];
    debug_assert_eq!(custody_core::model::SYSTEM_PRINCIPAL, "system");
    let rows = sqlx::query(statement)
        .bind(state.map(CaseState::as_str))
        .bind(i64::from(limit))
        .bind(include_drills)
        .fetch_all(readers)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(CaseSummary {
                case_id: row.try_get("case_id")?,
                state: row.try_get("state")?,
                summary: row.try_get("summary")?,
                requester: row.try_get("requester")?,
                ticket: row.try_get("ticket")?,
                opened_at: row.try_get("opened_at")?,
                updated_at: row.try_get("updated_at")?,
                drill: row.try_get("drill")?,
            })
        })
        .collect()
}

/// Cases with an obligation due by `now` that the ledger has not acted on
/// (see [`custody_core::lifecycle::pending_obligations`]); an index on the
/// earliest deadline keeps the scan to the cases that are due.
pub(crate) async fn cases_due(readers: &Pool, now: Timestamp) -> Result<Vec<CaseView>, StoreError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT view FROM cases WHERE next_deadline IS NOT NULL AND next_deadline <= $1 ORDER BY next_deadline",
    )
    .bind(now.to_string())
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|view| {
            serde_json::from_slice(view)
                .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))
        })
        .collect()
}

/// Number of events in the log.
pub(crate) async fn log_size(readers: &Pool) -> Result<u64, StoreError> {
    let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
        .fetch_one(readers)
        .await?;
    Ok(from_sql(size))
}

/// Log entries from index `since` (inclusive) to `until` (exclusive, or the
/// end), of one case or of all, in log order, at most `limit` of them: one
/// page of an export.
pub(crate) async fn export_page(
    readers: &Pool,
    since: u64,
    until: Option<u64>,
    case_id: Option<&str>,
    limit: u64,
) -> Result<Vec<LogEntry>, StoreError> {
    let until = until.map_or(i64::MAX, to_sql);
    let limit = to_sql(limit.min(1 << 20));
    let rows = match case_id {
        Some(case_id) => {
            sqlx::query(
                "SELECT log_index, case_id, bytes FROM events
                 WHERE case_id = $1 AND log_index >= $2 AND log_index < $3
                 ORDER BY log_index LIMIT $4",
            )
            .bind(case_id)
            .bind(to_sql(since))
            .bind(until)
            .bind(limit)
            .fetch_all(readers)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT log_index, case_id, bytes FROM events
                 WHERE log_index >= $1 AND log_index < $2
                 ORDER BY log_index LIMIT $3",
            )
            .bind(to_sql(since))
            .bind(until)
            .bind(limit)
            .fetch_all(readers)
            .await?
        }
    };
    rows.iter().map(log_entry_from_row).collect()
}

/// Every token row with its secret's SHA-256, by token ID.
pub(crate) async fn token_rows(readers: &Pool) -> Result<Vec<crate::StoredToken>, StoreError> {
    let rows = sqlx::query(
        "SELECT token_id, principal_id, secret_sha256, created_at, expires_at, revoked_at FROM tokens ORDER BY token_id",
    )
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|row| {
            let token_id: String = row.try_get("token_id")?;
            let digest: Vec<u8> = row.try_get("secret_sha256")?;
            let digest = <[u8; 32]>::try_from(digest.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!(
                    "token {token_id} stores a {}-byte secret hash, not a SHA-256",
                    digest.len()
                ))
            })?;
            Ok(crate::StoredToken {
                token_id,
                principal: row.try_get("principal_id")?,
                secret_sha256: Sha256Hash(digest),
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// The idempotency records after `after` (a principal and key), ordered by
/// principal and key, at most `limit`.
pub(crate) async fn idempotency_page(
    readers: &Pool,
    after: Option<(&str, &str)>,
    limit: u64,
) -> Result<Vec<crate::StoredIdempotency>, StoreError> {
    let limit = to_sql(limit.min(1 << 16));
    let rows = match after {
        Some((principal, key)) => {
            sqlx::query(
                "SELECT principal_id, key, fingerprint, response, created_at FROM idempotency
                 WHERE (principal_id, key) > ($1, $2) ORDER BY principal_id, key LIMIT $3",
            )
            .bind(principal)
            .bind(key)
            .bind(limit)
            .fetch_all(readers)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT principal_id, key, fingerprint, response, created_at FROM idempotency
                 ORDER BY principal_id, key LIMIT $1",
            )
            .bind(limit)
            .fetch_all(readers)
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            Ok(crate::StoredIdempotency {
                principal: row.try_get("principal_id")?,
                key: row.try_get("key")?,
                fingerprint: row.try_get("fingerprint")?,
                response: row.try_get("response")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Rows are read in pages inside one read transaction, so the audit sees one
/// consistent snapshot even while the server appends. Deadlines are judged
/// as of `now`.
pub(crate) async fn audit_pool(
    pool: &Pool,
    options: crate::AuditOptions,
    now: Timestamp,
) -> Result<Report, StoreError> {
    // Two pages are in memory at once (one read while the other is
    // decoded), each with its decoded events: 4,096 rows keep that near
    // 10 MB whatever the log's size.
    const PAGE: i64 = 4096;
    let mut connection = pool.acquire().await?;
    sqlx::raw_sql(BEGIN_SNAPSHOT).execute(&mut *connection).await?;
    let checkpoints = read_checkpoint_rows(&mut connection).await?;
    let stored_leaves: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_nodes WHERE level = 0")
        .fetch_one(&mut *connection)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
        .fetch_one(&mut *connection)
        .await?;
    let total = from_sql(total);
    let origin = signed_origin(&checkpoints, &options.trusted_keys);
    let progress = options.progress;
    let settle_after = match options.settle_after_entries {
        0 => SETTLED_AFTER,
        entries => entries,
    };
    let retire_every = (settle_after / 4).max(1);
    let mut audited = 0;
    let mut auditor = Auditor::with_log(LogAudit {
        trusted_keys: options.trusted_keys,
        checkpoints,
        since: options.since,
        outside: options.outside,
        checkpoint_interval_seconds: options.checkpoint_interval_seconds,
        stored_leaves: from_sql(stored_leaves),
        now: Some(now),
        witnessed: options.witnessed,
    });
    // Fetching the next page overlaps with decoding the current one: the
    // database work runs on sqlx's worker thread, the decoding on the others.
    let mut column_findings = Vec::new();
    let mut page = fetch_audit_page_with_columns(&mut connection, -1, PAGE).await?;
    loop {
        let full = i64::try_from(page.len()) == Ok(PAGE);
        let last = page.last().map(|(row, _)| to_sql(row.log_index)).unwrap_or(-1);
        let decoding = tokio::task::spawn_blocking(move || {
            let (rows, columns): (Vec<StoredEvent>, Vec<EventColumns>) = page.into_iter().unzip();
            let decoded = crate::decode_in_parallel(&rows);
            (rows, columns, decoded)
        });
        let next = if full {
            Some(fetch_audit_page_with_columns(&mut connection, last, PAGE).await?)
        } else {
            None
        };
        let (decoded_page, columns, decoded) = decoding
            .await
            .map_err(|error| StoreError::Corrupt(format!("decoding failed: {error}")))?;
        for ((row, columns), decoded) in decoded_page.iter().zip(&columns).zip(decoded) {
            // A case let go of that this row writes to (or merges into):
            // its rows before it, read back from the same snapshot.
            for case_id in auditor.cases_to_restore(std::iter::once((row, decoded.event()))) {
                let rows = fetch_case_rows(&mut connection, &case_id, row.log_index).await?;
                // Rows that do not rebuild the case let go of (another ID
                // with the same 64-bit key) leave the row to be read as
                // any other: the checks name what is wrong with it.
                let _ = auditor.restore_case(&case_id, &rows);
            }
            if let Some(event) = decoded.event() {
                column_findings.extend(check_event_columns(row, columns, event));
            }
            auditor.observe_decoded(row, decoded);
            // Cases no row touched for a while are let go of: what the
            // audit holds follows the cases in play, not the log's length.
            if row.log_index % retire_every == 0 {
                auditor.retire(row.log_index.saturating_sub(settle_after), Retirement::Settled);
            }
        }
        audited += u64::try_from(decoded_page.len()).unwrap_or(u64::MAX);
        if let Some(progress) = &progress {
            (progress.0)(audited, total);
        }
        match next {
            Some(next) => page = next,
            None => break,
        }
    }
    let heads = check_projection_rows(&mut connection, &mut auditor, origin.as_deref(), total).await?;
    let checkpoint_times = sqlx::query("SELECT size, created_at FROM checkpoints ORDER BY size")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            let size: i64 = row.try_get("size")?;
            Ok((from_sql(size), row.try_get("created_at")?))
        })
        .collect::<Result<Vec<(u64, String)>, sqlx::Error>>()?;
    auditor.check_checkpoint_times(&checkpoint_times);
    let rows = admin_rows(&mut connection).await?;
    auditor.check_admin_rows(&rows);
    let mut report = auditor.finish(heads);
    // Leaves already named wrong or missing make their parents
    // uncheckable, not wrong.
    let bad_leaves: std::collections::BTreeSet<u64> = report
        .findings
        .iter()
        .filter(|finding| {
            matches!(
                finding.code,
                custody_core::Code::LogLeafMismatch | custody_core::Code::LogLeafMissing
            )
        })
        .filter_map(|finding| finding.log_index)
        .collect();
    let node_findings = audit_interior_nodes(&mut connection, total, bad_leaves).await?;
    sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
    report.add_findings(node_findings);
    report.add_findings(column_findings);
    Ok(report)
}

/// The origin the stored checkpoints are signed for: the newest one that
/// verifies against `trusted_keys` (`None` when none does, which the log's
/// checks report).
fn signed_origin(
    checkpoints: &[StoredCheckpointRow],
    trusted_keys: &[custody_log::VerifierKey],
) -> Option<String> {
    checkpoints.iter().rev().find_map(|row| {
        custody_log::verify_checkpoint(row.note.as_bytes(), trusted_keys)
            .ok()
            .map(|verified| verified.origin().to_string())
    })
}

/// Compares the rows the server reads instead of the log with what the
/// log says (`custody_core::audit::projections`): the `deployment` facts,
/// the `evidence_records` rows, and every `cases` row's listing columns and
/// stored view, read in pages by case ID so that memory stays bounded.
/// Log entries after which `verify` lets go of a case no row touched
/// ([`Retirement::Settled`]).
const SETTLED_AFTER: u64 = 32_768;

/// Compares the projection rows with the log: the deployment facts, the
/// evidence records, and every case row, a page at a time, with its held
/// trail or, for a case let go of, with the digest kept of it (a row that
/// differs has its case rebuilt from the snapshot and compared in full).
/// Returns the heads the end of the audit compares: those of held cases and
/// of rows of no case seen.
async fn check_projection_rows(
    connection: &mut Conn,
    auditor: &mut Auditor,
    origin: Option<&str>,
    log_size: u64,
) -> Result<Vec<StoredCaseHead>, StoreError> {
    const PAGE: i64 = 4096;
    let deployment = sqlx::query("SELECT key, value, created_at FROM deployment ORDER BY key")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredDeploymentRow {
                key: row.try_get("key")?,
                value: row.try_get("value")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    auditor.check_deployment_rows(&deployment, origin);
    let records = sqlx::query(
        "SELECT ticket, case_id, released_to, created_at FROM evidence_records ORDER BY ticket",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok(StoredEvidenceRecordRow {
            ticket: row.try_get("ticket")?,
            case_id: row.try_get("case_id")?,
            released_to: row.try_get("released_to")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    auditor.check_evidence_record_rows(&records);
    let mut heads = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            None => sqlx::query(
                "SELECT case_id, head_seq, head_hash, change_key, ticket, requester, summary, opened_at, updated_at, next_deadline, view, state, drill
                 FROM cases ORDER BY case_id LIMIT $1",
            ),
            Some(after) => sqlx::query(
                "SELECT case_id, head_seq, head_hash, change_key, ticket, requester, summary, opened_at, updated_at, next_deadline, view, state, drill
                 FROM cases WHERE case_id > $1 ORDER BY case_id LIMIT $2",
            )
            .bind(after.clone()),
        };
        let page = query
        .bind(PAGE)
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            let state: String = row.try_get("state")?;
            let drill: bool = row.try_get("drill")?;
            Ok((StoredCaseRow {
                case_id: row.try_get("case_id")?,
                head_seq: row.try_get("head_seq")?,
                head_hash: row.try_get("head_hash")?,
                change_key: row.try_get("change_key")?,
                ticket: row.try_get("ticket")?,
                requester: row.try_get("requester")?,
                summary: row.try_get("summary")?,
                opened_at: row.try_get("opened_at")?,
                updated_at: row.try_get("updated_at")?,
                next_deadline: row.try_get("next_deadline")?,
                view: row.try_get("view")?,
            }, state, drill))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let full = i64::try_from(page.len()) == Ok(PAGE);
        after = page.last().map(|(row, _, _)| row.case_id.clone());
        let mut compared = Vec::new();
        for (row, state, drill) in page {
            match auditor.check_retired_row(&row, &state, drill) {
                RetiredRow::Matched => continue,
                RetiredRow::Differs => {
                    // Rebuilt from the snapshot, and compared in full; a
                    // row whose ID only shares a retired case's key is
                    // compared as a row of no case seen.
                    let rows = fetch_case_rows(connection, &row.case_id, log_size).await?;
                    let _ = auditor.restore_case(&row.case_id, &rows);
                }
                RetiredRow::Held | RetiredRow::Unknown => {}
            }
            heads.push(StoredCaseHead {
                case_id: row.case_id.clone(),
                head_seq: row.head_seq,
                head_hash: row.head_hash.clone(),
                state,
                drill,
            });
            compared.push(row);
        }
        auditor.check_case_rows(&compared);
        if !full {
            break;
        }
    }
    // Cases let go of whose rows are gone: rebuilt, so the end of the audit
    // names them (`case.missing-head`).
    if auditor.retired_rows_missing() > 0 {
        let orphans: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT e.case_id FROM events e WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id)",
        )
        .fetch_all(&mut *connection)
        .await?;
        for case_id in orphans {
            if auditor.holds_case(&case_id) {
                continue;
            }
            let rows = fetch_case_rows(connection, &case_id, log_size).await?;
            // A case that was never let go of (a record) is left alone.
            let _ = auditor.restore_case(&case_id, &rows);
        }
    }
    Ok(heads)
}

/// Checks every stored Merkle node above the leaves against its children
/// (`custody_core::audit::nodes`), a level at a time, in pages of parent
/// indexes, so memory stays bounded however long the log is.
async fn audit_interior_nodes(
    connection: &mut Conn,
    size: u64,
    bad_leaves: std::collections::BTreeSet<u64>,
) -> Result<Vec<custody_core::audit::Finding>, StoreError> {
    const PARENTS: u64 = 8192;
    // Beyond any index a log can reach (and within SQL's signed integers).
    const BEYOND: u64 = 1 << 61;
    let top: Option<i64> = sqlx::query_scalar("SELECT MAX(level) FROM log_nodes")
        .fetch_one(&mut *connection)
        .await?;
    let mut findings = Vec::new();
    let read = |level: u32, first: u64, end: u64| {
        sqlx::query(
            "SELECT idx, hash FROM log_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
        .bind(i64::from(level))
        .bind(to_sql(first))
        .bind(to_sql(end))
    };
    let nodes = |rows: Vec<DbRow>| -> Result<Vec<custody_core::audit::nodes::StoredNode>, sqlx::Error> {
        rows.iter()
            .map(|row| {
                let index: i64 = row.try_get("idx")?;
                Ok((from_sql(index), row.try_get("hash")?))
            })
            .collect()
    };
    // Every level a complete subtree of the log reaches, and any above it
    // that holds a row: a top node removed must still be looked for.
    let stored_top = u32::try_from(top.unwrap_or(0)).unwrap_or(0);
    // floor(log2(size)): the level of the largest complete subtree.
    let complete_top = (u64::BITS - size.leading_zeros()).saturating_sub(1);
    let highest = stored_top.max(complete_top);
    let mut bad_children = bad_leaves;
    for level in 1..=highest {
        let mut bad = std::collections::BTreeSet::new();
        let complete = if level >= 63 { 0 } else { size >> level };
        let mut first = 0;
        loop {
            // The last page also takes every row beyond the complete
            // subtrees, which must not be there.
            let end = if first + PARENTS >= complete { BEYOND } else { first + PARENTS };
            let parents = nodes(read(level, first, end).fetch_all(&mut *connection).await?)?;
            let children = nodes(
                read(level - 1, first * 2, end * 2)
                    .fetch_all(&mut *connection)
                    .await?,
            )?;
            findings.extend(custody_core::audit::nodes::check_node_range(
                size,
                level,
                (first, end),
                &parents,
                &children,
                &bad_children,
                &mut bad,
            ));
            if end >= complete {
                break;
            }
            first = end;
        }
        bad_children = bad;
    }
    Ok(findings)
}

/// One scan of the continuous monitor: the stored checkpoints and every row
/// fed to `watch` (read a second time when it must start over), the case
/// heads and the administration rows, in one consistent snapshot; the
/// report is judged as of `now`.
pub(crate) async fn watch_pool(
    pool: &Pool,
    watch: &mut custody_core::audit::Watch,
    now: Timestamp,
) -> Result<Report, StoreError> {
    const PAGE: i64 = 4096;
    let mut connection = pool.acquire().await?;
    sqlx::raw_sql(BEGIN_SNAPSHOT).execute(&mut *connection).await?;
    let checkpoints = read_checkpoint_rows(&mut connection).await?;
    let stored_leaves: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_nodes WHERE level = 0")
        .fetch_one(&mut *connection)
        .await?;
    let stored_leaves = from_sql(stored_leaves);
    watch.begin_scan(&checkpoints, stored_leaves);
    for _pass in 0..2 {
        let mut last = -1;
        'pages: loop {
            let page = fetch_audit_page(&mut connection, last, PAGE).await?;
            // The cases the watch let go of that this page writes to: their
            // verified rows, read back in the same snapshot.
            for case_id in watch.cases_to_restore(&page) {
                let rows = fetch_case_rows(&mut connection, &case_id, watch.restore_before()).await?;
                watch.restore(&case_id, &rows);
            }
            for row in &page {
                if !watch.observe(row) {
                    break 'pages;
                }
            }
            match page.last() {
                Some(row) if i64::try_from(page.len()) == Ok(PAGE) => last = to_sql(row.log_index),
                _ => break,
            }
        }
        if watch.finish_pass() {
            watch.restart(&checkpoints, stored_leaves);
            continue;
        }
        // The case rows, a page at a time: the watch keeps those of the
        // cases it holds and checks the others against their digests.
        let mut after: Option<String> = None;
        loop {
            let heads = read_case_heads(&mut connection, after.as_deref(), PAGE).await?;
            let full = i64::try_from(heads.len()) == Ok(PAGE);
            if let Some(head) = heads.last() {
                after = Some(head.case_id.clone());
            }
            for head in heads {
                watch.observe_head(head);
            }
            if !full {
                break;
            }
        }
        if !watch.heads_changed() {
            break;
        }
        watch.restart(&checkpoints, stored_leaves);
    }
    let rows = admin_rows(&mut connection).await?;
    sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
    Ok(watch.report(Vec::new(), Some(&rows), now))
}

/// The stored rows of case `case_id` before log index `before`, in log
/// order, as the audit reads rows.
async fn fetch_case_rows(
    connection: &mut Conn,
    case_id: &str,
    before: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.log_index, e.case_id, e.seq, e.bytes, n.hash AS leaf FROM events e
         LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = e.log_index
         WHERE e.case_id = $1 AND e.log_index < $2 ORDER BY e.log_index",
    )
    .bind(case_id)
    .bind(to_sql(before))
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            let log_index: i64 = row.try_get("log_index")?;
            Ok(StoredEvent {
                log_index: from_sql(log_index),
                case_id: row.try_get("case_id")?,
                seq: row.try_get("seq")?,
                bytes: row.try_get("bytes")?,
                stored_leaf: row.try_get("leaf")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

async fn read_checkpoint_rows(connection: &mut Conn) -> Result<Vec<StoredCheckpointRow>, StoreError> {
    Ok(sqlx::query("SELECT size, root, note FROM checkpoints ORDER BY size")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            let size: i64 = row.try_get("size")?;
            Ok(StoredCheckpointRow {
                size: from_sql(size),
                root: row.try_get("root")?,
                note: row.try_get("note")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?)
}

/// A page of stored case rows, by case ID after `after` (from the first
/// without it; an empty ID is a row too).
async fn read_case_heads(
    connection: &mut Conn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredCaseHead>, StoreError> {
    let query = match after {
        None => sqlx::query(
            "SELECT case_id, head_seq, head_hash, state, drill FROM cases ORDER BY case_id LIMIT $1",
        ),
        Some(after) => sqlx::query(
            "SELECT case_id, head_seq, head_hash, state, drill FROM cases WHERE case_id > $1 ORDER BY case_id LIMIT $2",
        )
        .bind(after),
    };
    Ok(query
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredCaseHead {
                case_id: row.try_get("case_id")?,
                head_seq: row.try_get("head_seq")?,
                head_hash: row.try_get("head_hash")?,
                state: row.try_get("state")?,
                drill: row.try_get("drill")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?)
}

async fn fetch_audit_page(
    connection: &mut Conn,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(fetch_audit_page_with_columns(connection, after, limit)
        .await?
        .into_iter()
        .map(|(row, _)| row)
        .collect())
}

/// The columns the store keeps beside an event's bytes besides `case_id`
/// and `seq`: `event_id`, `kind` and `recorded_at`.
struct EventColumns {
    event_id: String,
    kind: String,
    recorded_at: String,
}

/// [`fetch_audit_page`] with each row's [`EventColumns`].
async fn fetch_audit_page_with_columns(
    connection: &mut Conn,
    after: i64,
    limit: i64,
) -> Result<Vec<(StoredEvent, EventColumns)>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.log_index, e.case_id, e.seq, e.event_id, e.kind, e.recorded_at, e.bytes, n.hash AS leaf FROM events e
         LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = e.log_index
         WHERE e.log_index > $1 ORDER BY e.log_index LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            let log_index: i64 = row.try_get("log_index")?;
            Ok((
                StoredEvent {
                    log_index: from_sql(log_index),
                    case_id: row.try_get("case_id")?,
                    seq: row.try_get("seq")?,
                    bytes: row.try_get("bytes")?,
                    stored_leaf: row.try_get("leaf")?,
                },
                EventColumns {
                    event_id: row.try_get("event_id")?,
                    kind: row.try_get("kind")?,
                    recorded_at: row.try_get("recorded_at")?,
                },
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// The row's `event_id`, `kind` and `recorded_at` columns must say what the
/// event inside says: the store looks events up by ID and lists them by
/// kind and time from these columns.
fn check_event_columns(
    row: &StoredEvent,
    columns: &EventColumns,
    event: &Event,
) -> Option<custody_core::audit::Finding> {
    let kind = event.body.kind_name();
    let recorded_at = event.recorded_at.to_string();
    let event_id = event.event_id.to_string();
    if columns.event_id == event_id && columns.kind == kind && columns.recorded_at == recorded_at {
        return None;
    }
    Some(
        custody_core::audit::Finding::new(
            custody_core::Code::EventIndexMismatch,
            format!(
                "the row at log index {} claims event {} of kind {} recorded at {}, but the event inside is {event_id} of kind {kind} recorded at {recorded_at}",
                row.log_index,
                custody_core::text::escape(&columns.event_id),
                custody_core::text::escape(&columns.kind),
                custody_core::text::escape(&columns.recorded_at),
            ),
        )
        .at_event(event, row.log_index),
    )
}

/// A log entry from a row of `log_index`, `case_id` and `bytes`.
fn log_entry_from_row(row: &DbRow) -> Result<LogEntry, StoreError> {
    let index: i64 = row.try_get("log_index")?;
    Ok(LogEntry {
        index: from_sql(index),
        leaf: row.try_get("bytes")?,
        case_id: row.try_get("case_id")?,
    })
}

pub(crate) fn token_from_row(row: &DbRow) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        token_id: row.try_get("token_id")?,
        principal: row.try_get("principal_id")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

fn principal_from_row(row: &DbRow) -> Result<Principal, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what);
    let id: String = row.try_get("principal_id")?;
    let kind: String = row.try_get("kind")?;
    let groups: String = row.try_get("groups_json")?;
    Ok(Principal {
        id: PrincipalId::from_str(&id).map_err(|error| corrupt(error.to_string()))?,
        display_name: row.try_get("display_name")?,
        kind: PrincipalKind::from_str(&kind).map_err(|error| corrupt(error.to_string()))?,
        groups: serde_json::from_str(&groups).map_err(|error| corrupt(error.to_string()))?,
        org: row.try_get("org")?,
    })
}

/// The origin recorded for the log, if any.
pub(crate) async fn log_origin(readers: &Pool) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM deployment WHERE key = 'log_origin'")
            .fetch_optional(readers)
            .await?,
    )
}

/// The events of the policy record, oldest first.
pub(crate) async fn policy_history(readers: &Pool) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT e.bytes FROM events e JOIN deployment d ON d.key = 'policy_record' AND e.case_id = d.value ORDER BY e.seq",
    )
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|bytes| Event::decode(bytes).map_err(|error| StoreError::Corrupt(error.to_string())))
        .collect()
}

/// An evidence record (evidence held for a ticket no case carried yet): its
/// ticket, the case it was released to, and its events in order.
pub(crate) async fn evidence_record(
    readers: &Pool,
    record: &CaseId,
) -> Result<Option<crate::EvidenceRecord>, StoreError> {
    let row = sqlx::query("SELECT ticket, released_to FROM evidence_records WHERE case_id = $1")
        .bind(record.as_str())
        .fetch_optional(readers)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let ticket: String = row.try_get("ticket")?;
    let released_to: Option<String> = row.try_get("released_to")?;
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq")
            .bind(record.as_str())
            .fetch_all(readers)
            .await?;
    let events = rows
        .iter()
        .map(|bytes| Event::decode(bytes).map_err(|error| StoreError::Corrupt(error.to_string())))
        .collect::<Result<Vec<Event>, StoreError>>()?;
    Ok(Some(crate::EvidenceRecord {
        record_id: record.to_string(),
        ticket,
        released_to,
        events,
    }))
}

/// The events of the administration record, oldest first.
pub(crate) async fn admin_record(readers: &Pool) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT e.bytes FROM events e JOIN deployment d ON d.key = 'admin_record' AND e.case_id = d.value ORDER BY e.seq",
    )
    .fetch_all(readers)
    .await?;
    rows.iter()
        .map(|bytes| Event::decode(bytes).map_err(|error| StoreError::Corrupt(error.to_string())))
        .collect()
}

pub(crate) fn identity_from_row(row: &DbRow) -> Result<crate::IdentityMapping, StoreError> {
    Ok(crate::IdentityMapping {
        connector: row.try_get("connector")?,
        external_user: row.try_get("external_user")?,
        principal: row.try_get("principal_id")?,
        mapped_at: row.try_get("mapped_at")?,
        mapped_by: row.try_get("mapped_by")?,
    })
}

/// The principal, as it is now, that an outside user of a connector is
/// mapped to.
pub(crate) async fn connector_identity(
    readers: &Pool,
    connector: &custody_core::model::ConnectorName,
    external_user: &custody_core::model::ExternalUser,
) -> Result<Option<Principal>, StoreError> {
    let row = sqlx::query(
        "SELECT p.principal_id, p.display_name, p.kind, p.groups_json, p.org
         FROM connector_identities c JOIN principals p ON p.principal_id = c.principal_id
         WHERE c.connector = $1 AND c.external_user = $2",
    )
    .bind(connector.as_str())
    .bind(external_user.as_str())
    .fetch_optional(readers)
    .await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// The principal, as it is now, that an OpenID Connect identity is bound to.
pub(crate) async fn oidc_identity(
    readers: &Pool,
    issuer: &str,
    subject: &str,
) -> Result<Option<Principal>, StoreError> {
    let row = sqlx::query(
        "SELECT p.principal_id, p.display_name, p.kind, p.groups_json, p.org
         FROM oidc_identities o JOIN principals p ON p.principal_id = o.principal_id
         WHERE o.issuer = $1 AND o.subject = $2",
    )
    .bind(issuer)
    .bind(subject)
    .fetch_optional(readers)
    .await?;
    row.as_ref().map(principal_from_row).transpose()
}

/// The mapped outside users of a connector, by ID.
pub(crate) async fn connector_identities(
    readers: &Pool,
    connector: &custody_core::model::ConnectorName,
) -> Result<Vec<crate::IdentityMapping>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        crate::identity_columns!(),
        " FROM connector_identities WHERE connector = $1 ORDER BY external_user"
    ))
    .bind(connector.as_str())
    .fetch_all(readers)
    .await?
    .iter()
    .map(identity_from_row)
    .collect()
}

/// The stored projections of the administration record, for the audit.
async fn admin_rows(connection: &mut Conn) -> Result<custody_core::admin::AdminRows, StoreError> {
    // A row that does not parse (a kind or groups edited into nonsense) is
    // left out rather than failing the whole check: the comparison with the
    // administration record then names it as a principal or grant the
    // record has and the store lacks, since the store cannot use it either.
    let principals = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals ORDER BY principal_id",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(principal_from_row)
    .filter(|row| !matches!(row, Err(StoreError::Corrupt(_))))
    .collect::<Result<Vec<_>, _>>()?;
    let tokens = sqlx::query(
        "SELECT token_id, principal_id, secret_sha256, expires_at, revoked_at FROM tokens ORDER BY token_id",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        let digest: Vec<u8> = row.try_get("secret_sha256")?;
        let revoked_at: Option<String> = row.try_get("revoked_at")?;
        Ok(custody_core::admin::TokenRow {
            token_id: row.try_get("token_id")?,
            principal: row.try_get("principal_id")?,
            secret_sha256_hex: custody_core::hex::encode(&digest),
            expires_at: row.try_get("expires_at")?,
            revoked: revoked_at.is_some(),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // The grant as the store serves it: the server finds a grant by its
    // `grant_id` column and a vendor's grants by `vendor_org`, so those
    // columns override the JSON's fields, and a column edited behind the
    // store's back shows as a grant that differs from the record.
    let grants = sqlx::query("SELECT grant_id, vendor_org, grant_json FROM delegations ORDER BY grant_id")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            let json: String = row.try_get("grant_json")?;
            let stored: custody_core::delegation::DelegationGrant = serde_json::from_str(&json)
                .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))?;
            let mut grant = stored.clone();
            grant.grant_id = row.try_get("grant_id")?;
            grant.vendor_org = row.try_get("vendor_org")?;
            // The writer decides with the JSON's grant (its ID is what an
            // action under it records): when the JSON names another grant
            // or vendor than the columns, both are compared.
            Ok(if stored == grant { vec![grant] } else { vec![grant, stored] })
        })
        .filter(|row| !matches!(row, Err(StoreError::Corrupt(_))))
        .collect::<Result<Vec<Vec<_>>, StoreError>>()?
        .into_iter()
        .flatten()
        .collect();
    let identities = sqlx::query(
        "SELECT connector, external_user, principal_id FROM connector_identities ORDER BY connector, external_user",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok(custody_core::admin::IdentityRow {
            connector: row.try_get("connector")?,
            external_user: row.try_get("external_user")?,
            principal: row.try_get("principal_id")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let made = rows_made(&mut *connection).await?;
    let oidc = sqlx::query(
        "SELECT issuer, subject, principal_id FROM oidc_identities ORDER BY issuer, subject",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok(custody_core::admin::OidcIdentityRow {
            issuer: row.try_get("issuer")?,
            subject: row.try_get("subject")?,
            principal: row.try_get("principal_id")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(custody_core::admin::AdminRows {
        principals,
        tokens,
        grants,
        identities,
        oidc,
        made,
    })
}

/// When and by whom each administration row says it was made
/// ([`custody_core::admin::RowMade`]).
async fn rows_made(connection: &mut Conn) -> Result<Vec<custody_core::admin::RowMade>, StoreError> {
    use custody_core::admin::{MadeKey, RowMade};
    let mut made = Vec::new();
    for row in sqlx::query("SELECT principal_id, created_at, created_by FROM principals ORDER BY principal_id")
        .fetch_all(&mut *connection)
        .await?
    {
        made.push(RowMade {
            key: MadeKey::Principal(row.try_get("principal_id")?),
            at: row.try_get("created_at")?,
            by: row.try_get("created_by")?,
            revoked: (None, None),
        });
    }
    for row in sqlx::query(
        "SELECT token_id, created_at, created_by, revoked_at, revoked_by FROM tokens ORDER BY token_id",
    )
    .fetch_all(&mut *connection)
    .await?
    {
        let revoked_at: Option<String> = row.try_get("revoked_at")?;
        let revoked_by: Option<String> = row.try_get("revoked_by")?;
        made.push(RowMade {
            key: MadeKey::Token(row.try_get("token_id")?),
            at: row.try_get("created_at")?,
            by: row.try_get("created_by")?,
            revoked: (revoked_at, revoked_by),
        });
    }
    for row in sqlx::query(
        "SELECT connector, external_user, mapped_at, mapped_by FROM connector_identities ORDER BY connector, external_user",
    )
    .fetch_all(&mut *connection)
    .await?
    {
        made.push(RowMade {
            key: MadeKey::Identity(row.try_get("connector")?, row.try_get("external_user")?),
            at: row.try_get("mapped_at")?,
            by: row.try_get("mapped_by")?,
            revoked: (None, None),
        });
    }
    for row in sqlx::query("SELECT issuer, subject, bound_at FROM oidc_identities ORDER BY issuer, subject")
        .fetch_all(&mut *connection)
        .await?
    {
        made.push(RowMade {
            key: MadeKey::Oidc(row.try_get("issuer")?, row.try_get("subject")?),
            at: row.try_get("bound_at")?,
            by: None,
            revoked: (None, None),
        });
    }
    Ok(made)
}

/// The columns [`outbox_from_row`] reads. A macro so that queries stay `&'static str`.
macro_rules! outbox_columns {
    () => {
        "delivery_id, case_id, event_id, kind, audience, channel, recipient, state, attempts, next_attempt_at, last_error, created_at, updated_at"
    };
}

fn outbox_from_row(row: &DbRow) -> Result<crate::OutboxEntry, StoreError> {
    let attempts: i64 = row.try_get("attempts")?;
    Ok(crate::OutboxEntry {
        delivery_id: row.try_get("delivery_id")?,
        case_id: row.try_get("case_id")?,
        event_id: row.try_get("event_id")?,
        kind: row.try_get("kind")?,
        audience: row.try_get("audience")?,
        channel: row.try_get("channel")?,
        recipient: row.try_get("recipient")?,
        state: row.try_get("state")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One outbox row.
pub(crate) async fn outbox_entry(
    connection: &mut Conn,
    delivery_id: &str,
) -> Result<Option<crate::OutboxEntry>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        outbox_columns!(),
        " FROM outbox WHERE delivery_id = $1"
    ))
    .bind(delivery_id)
    .fetch_optional(&mut *connection)
    .await?;
    row.as_ref().map(outbox_from_row).transpose()
}

/// Outbox rows, newest first: of one case, or all; only those not delivered
/// when `undelivered_only`.
pub(crate) async fn notifications(
    readers: &Pool,
    case_id: Option<&str>,
    undelivered_only: bool,
    limit: u32,
) -> Result<Vec<crate::OutboxEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        outbox_columns!(),
        " FROM outbox WHERE ($1 IS NULL OR case_id = $1) AND ($2 = 0 OR state <> 'delivered')
         ORDER BY created_at DESC, delivery_id LIMIT $3"
    ))
    .bind(case_id)
    .bind(i64::from(undelivered_only))
    .bind(i64::from(limit))
    .fetch_all(readers)
    .await?;
    rows.iter().map(outbox_from_row).collect()
}

/// How many notifications wait for delivery, and since when the oldest.
/// The pending notifications and the oldest one's `created_at`.
pub(crate) const OUTBOX_BACKLOG: &str = "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') AS waiting,
        (SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY created_at LIMIT 1) AS oldest";

pub(crate) async fn outbox_backlog(readers: &Pool) -> Result<(u64, Option<String>), StoreError> {
    // Both read the `outbox_by_age` index (state, created_at): the count
    // walks its pending entries, the oldest is their first (a MIN over the
    // table visited every pending row).
    let row = sqlx::query(OUTBOX_BACKLOG)
    .fetch_one(readers)
    .await?;
    let waiting: i64 = row.try_get("waiting")?;
    Ok((from_sql(waiting), row.try_get("oldest")?))
}

/// The smallest stored checkpoint of at least `size` entries.
pub(crate) async fn checkpoint_at_least(
    readers: &Pool,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = sqlx::query(
        "SELECT size, root, note, created_at FROM checkpoints WHERE size >= $1 ORDER BY size LIMIT 1",
    )
    .bind(to_sql(size))
    .fetch_optional(readers)
    .await?;
    row.map(|row| checkpoint_from_row(&row)).transpose()
}

/// The log entries of the deployment record named by `key` in the
/// `deployment` table (`policy_record`, `admin_record`) below log index
/// `until`, in log order.
pub(crate) async fn record_entries(
    readers: &Pool,
    key: &str,
    until: u64,
) -> Result<Vec<LogEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.log_index, e.case_id, e.bytes FROM events e JOIN deployment d ON d.key = $1 AND e.case_id = d.value
         WHERE e.log_index < $2 ORDER BY e.log_index",
    )
    .bind(key)
    .bind(to_sql(until))
    .fetch_all(readers)
    .await?;
    rows.iter().map(log_entry_from_row).collect()
}

/// Every stored checkpoint smaller than `size`, smallest first.
pub(crate) async fn checkpoints_below(
    readers: &Pool,
    size: u64,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    sqlx::query("SELECT size, root, note, created_at FROM checkpoints WHERE size < $1 ORDER BY size")
        .bind(to_sql(size))
        .fetch_all(readers)
        .await?
        .iter()
        .map(checkpoint_from_row)
        .collect()
}

/// The stored witness cosignatures, of checkpoints of size `size` or of
/// every size, by size then witness.
pub(crate) async fn cosignatures(
    readers: &Pool,
    size: Option<u64>,
) -> Result<Vec<crate::StoredCosignature>, StoreError> {
    let rows = match size {
        Some(size) => {
            sqlx::query(
                "SELECT witness, size, root, note, line, cosigned_at, recorded_at FROM cosignatures
                 WHERE size = $1 ORDER BY witness",
            )
            .bind(to_sql(size))
            .fetch_all(readers)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT witness, size, root, note, line, cosigned_at, recorded_at FROM cosignatures
                 ORDER BY size, witness",
            )
            .fetch_all(readers)
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            let size: i64 = row.try_get("size")?;
            let root: Vec<u8> = row.try_get("root")?;
            let cosigned_at: i64 = row.try_get("cosigned_at")?;
            Ok(crate::StoredCosignature {
                witness: row.try_get("witness")?,
                size: from_sql(size),
                root: root.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("a cosignature at size {size} has a malformed root"))
                })?,
                note: row.try_get("note")?,
                line: row.try_get("line")?,
                cosigned_at: from_sql(cosigned_at),
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect()
}

/// Where push sink `sink`'s cursor stands, if it has one.
pub(crate) async fn export_position(readers: &Pool, sink: &str) -> Result<Option<u64>, StoreError> {
    let next: Option<i64> =
        sqlx::query_scalar("SELECT next_index FROM export_cursors WHERE sink = $1")
            .bind(sink)
            .fetch_optional(readers)
            .await?;
    Ok(next.map(from_sql))
}
