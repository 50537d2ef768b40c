// The writer task: reads, writes and the write lock. Every decision is the
// planner's (`crate::plan`); this file holds only SQL and the order of it.

/// Runs the writer until every [`crate::Store`] handle is dropped.
///
/// A connection that breaks (a database restart, a network fault) is replaced
/// before the next batch; the batch that saw it fail was answered with an
/// error, and its writes are retried by their clients with the same keys.
pub(crate) async fn run(
    mut connection: Conn,
    options: <Conn as sqlx::Connection>::Options,
    mut jobs: mpsc::Receiver<Job>,
    context: WriterContext,
) {
    use sqlx::Connection;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if connection.ping().await.is_err() {
            match Conn::connect_with(&options).await {
                Ok(fresh) => {
                    tracing::warn!("the writer's database connection broke; reconnected");
                    connection = fresh;
                }
                Err(error) => {
                    tracing::error!(%error, "the writer cannot reach the database");
                }
            }
        }
        commit_batch(&mut connection, batch, &context).await;
    }
}

async fn commit_batch(connection: &mut Conn, batch: Vec<Job>, context: &WriterContext) {
    let started = Instant::now();
    let batch_size = batch.len();
    if let Err(error) = sqlx::raw_sql(BEGIN_WRITE)
        .execute(&mut *connection)
        .await
    {
        let message = error.to_string();
        reply_all(batch.into_iter().map(|job| job.fail(&message)).collect());
        return;
    }
    let mut pending = match next_log_index(connection).await {
        Ok(next_log_index) => {
            Pending::new(next_log_index, context.merkle_log, context.routing())
        }
        Err(error) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            let message = error.to_string();
            reply_all(batch.into_iter().map(|job| job.fail(&message)).collect());
            return;
        }
    };
    let clock = &context.clock;
    let mut done = Vec::with_capacity(batch_size);
    let result: Result<(), sqlx::Error> = async {
        let prefetched = prefetch(connection, &batch).await?;
        for job in batch {
            done.push(match job {
                Job::Case(write, reply) => Done::Case(
                    reply,
                    decide_case(connection, &prefetched, &mut pending, &write, clock).await,
                ),
                Job::AddPrincipal {
                    principal,
                    by,
                    reply,
                } => Done::Principal(
                    reply,
                    add_principal(connection, &mut pending, principal, by, clock.now()).await,
                ),
                Job::CreateToken {
                    principal,
                    ttl_seconds,
                    by,
                    reply,
                } => Done::Token(
                    reply,
                    create_token(connection, &mut pending, principal, ttl_seconds, by, clock.now())
                        .await,
                ),
                Job::SetGroups {
                    principal,
                    groups,
                    by,
                    reply,
                } => Done::Principal(
                    reply,
                    set_groups(connection, &mut pending, &principal, groups, by, clock.now()).await,
                ),
                Job::OidcSignIn {
                    claimed,
                    actor,
                    reply,
                } => Done::Principal(
                    reply,
                    oidc_sign_in(connection, &mut pending, claimed, actor, clock.now()).await,
                ),
                Job::GrantDelegation { grant, by, reply } => Done::Delegation(
                    reply,
                    grant_delegation(connection, &mut pending, grant, by, clock.now()).await,
                ),
                Job::RevokeDelegation {
                    grant_id,
                    by,
                    reply,
                } => Done::Delegation(
                    reply,
                    revoke_delegation(connection, &mut pending, &grant_id, by, clock.now()).await,
                ),
                Job::MapIdentities {
                    connector,
                    entries,
                    by,
                    reply,
                } => Done::Identities(
                    reply,
                    map_identities(connection, &mut pending, &connector, entries, by, clock.now())
                        .await,
                ),
                Job::UnmapIdentity {
                    connector,
                    external_user,
                    by,
                    reply,
                } => Done::Identity(
                    reply,
                    unmap_identity(
                        connection,
                        &mut pending,
                        &connector,
                        &external_user,
                        by,
                        clock.now(),
                    )
                    .await,
                ),
                Job::RecordLegacyAdmin { reply } => Done::Legacy(
                    reply,
                    record_legacy_admin(connection, &mut pending, clock.now()).await,
                ),
                Job::AdoptPolicy {
                    policy,
                    source,
                    reply,
                } => {
                    // Earlier writes of the batch first, so the record's head
                    // is read from the database.
                    flush(connection, &mut pending, clock.now()).await?;
                    Done::Adopted(
                        reply,
                        adopt_policy(connection, &mut pending, &policy, &source, clock.now())
                            .await,
                    )
                }
                Job::ClaimDeliveries {
                    owner,
                    now,
                    until,
                    limit,
                    reply,
                } => Done::Claimed(
                    reply,
                    claim_deliveries(connection, &owner, now, until, limit).await,
                ),
                Job::ExportCursor {
                    sink,
                    owner,
                    operation,
                    now,
                    until,
                    reply,
                } => Done::Cursor(
                    reply,
                    export_cursor(connection, &sink, &owner, operation, now, until).await,
                ),
                Job::PullCursor {
                    source,
                    owner,
                    operation,
                    now,
                    until,
                    reply,
                } => Done::PullCursor(
                    reply,
                    pull_cursor(connection, &source, &owner, operation, now, until).await,
                ),
                Job::AddCosignature { cosignature, reply } => Done::Cosigned(
                    reply,
                    add_cosignature(connection, &cosignature, clock.now()).await,
                ),
                Job::RetryDelivery { delivery_id, reply } => {
                    // Results of this batch first, so a retry sees them.
                    flush(connection, &mut pending, clock.now()).await?;
                    Done::Retried(
                        reply,
                        retry_delivery(connection, &delivery_id, clock.now()).await,
                    )
                }
                Job::ConsoleSession { operation, reply } => Done::Session(
                    reply,
                    console_session_write(connection, operation).await,
                ),
                Job::ClaimOrigin { origin, reply } => Done::Origin(
                    reply,
                    claim_origin(connection, &origin, clock.now()).await,
                ),
                Job::Durability { reply } => {
                    Done::Durability(reply, durability(connection).await)
                }
                Job::RevokeToken {
                    token_id,
                    by,
                    reply,
                } => Done::Revocation(
                    reply,
                    revoke_token(connection, &mut pending, &token_id, by, clock.now()).await,
                ),
                Job::Checkpoint {
                    origin,
                    signers,
                    known,
                    reply,
                } => {
                    // Events decided earlier in this batch are flushed first,
                    // so the checkpoint covers them.
                    flush(connection, &mut pending, clock.now()).await?;
                    Done::Checkpoint(
                        reply,
                        sign_checkpoint(
                            connection,
                            pending.next_log_index,
                            &origin,
                            &signers,
                            &known,
                            clock.now(),
                        )
                        .await,
                    )
                }
            });
        }
        flush(connection, &mut pending, clock.now()).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
        Ok(())
    }
    .await;
    let appended = pending.total_appended;
    match result {
        Ok(()) => {
            let stats = &context.stats;
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.jobs.fetch_add(batch_size as u64, Ordering::Relaxed);
            stats.events.fetch_add(appended, Ordering::Relaxed);
            metrics::counter!("custody_events_appended_total").increment(appended);
        }
        Err(error) => {
            tracing::error!(%error, "group commit failed; no write of this batch is acknowledged");
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            let message = format!("the transaction failed and was rolled back: {error}");
            done = done
                .into_iter()
                .map(|finished| finished.into_failure(&message))
                .collect();
        }
    }
    metrics::histogram!("custody_group_commit_jobs").record(batch_size as f64);
    metrics::histogram!("custody_group_commit_seconds").record(started.elapsed().as_secs_f64());
    reply_all(done);
}

/// The durability settings in force on the writer's own connection, each
/// read with [`DURABILITY_SETTINGS`]'s query.
async fn durability(connection: &mut Conn) -> Result<Vec<(String, String)>, StoreError> {
    let mut settings = Vec::with_capacity(DURABILITY_SETTINGS.len());
    for (name, query) in DURABILITY_SETTINGS {
        let value: String = sqlx::query_scalar(*query)
            .fetch_one(&mut *connection)
            .await?;
        settings.push((name.to_string(), value));
    }
    Ok(settings)
}

async fn next_log_index(connection: &mut Conn) -> Result<u64, sqlx::Error> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_index) + 1, 0) FROM events")
        .fetch_one(&mut *connection)
        .await?;
    Ok(from_sql(next))
}

async fn prefetch(
    connection: &mut Conn,
    batch: &[Job],
) -> Result<Prefetched, sqlx::Error> {
    let writes: Vec<&CaseWrite> = batch
        .iter()
        .filter_map(|job| match job {
            Job::Case(write, _) => Some(&**write),
            _ => None,
        })
        .collect();
    let mut prefetched = Prefetched::default();
    for chunk in statement_chunks(&writes, ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT principal_id, key, fingerprint, response FROM idempotency WHERE (principal_id, key) IN (VALUES ",
        );
        for (position, write) in chunk.iter().enumerate() {
            if position > 0 {
                query.push(", ");
            }
            let (principal, key) = write.idempotency_scope();
            query.push("(");
            query.push_bind(principal);
            query.push(", ");
            query.push_bind(key);
            query.push(")");
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *connection).await? {
            prefetched.idempotency.insert(
                (row.try_get("principal_id")?, row.try_get("key")?),
                (row.try_get("fingerprint")?, row.try_get("response")?),
            );
        }
    }
    let mut case_ids: Vec<&str> = writes
        .iter()
        .flat_map(|write| write.command.case_ids())
        .map(CaseId::as_str)
        .collect();
    case_ids.sort_unstable();
    case_ids.dedup();
    for chunk in statement_chunks(&case_ids, ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Db> =
            QueryBuilder::new("SELECT case_id, view FROM cases WHERE case_id IN (");
        let mut separated = query.separated(", ");
        for case_id in chunk {
            separated.push_bind(case_id.to_string());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *connection).await? {
            prefetched
                .views
                .insert(row.try_get("case_id")?, row.try_get("view")?);
        }
    }
    Ok(prefetched)
}

/// One case write: its key checked, what it needs read, then decided by
/// the planner (at the clock's time once the key is known to be new).
async fn decide_case(
    connection: &mut Conn,
    prefetched: &Prefetched,
    pending: &mut Pending,
    write: &CaseWrite,
    clock: &SharedClock,
) -> Result<WriteOutcome, StoreError> {
    match pending.begin_case(prefetched, write)? {
        plan::Begun::Replayed(outcome) => Ok(outcome),
        plan::Begun::Fresh(fresh, needs) => {
            let reads = read_case_needs(connection, &needs).await?;
            pending.decide_case(prefetched, fresh, reads, clock.now())
        }
    }
}

/// Reads what [`plan::CaseNeeds`] names, as the transaction sees it.
async fn read_case_needs(
    connection: &mut Conn,
    needs: &plan::CaseNeeds,
) -> Result<plan::CaseReads, StoreError> {
    let mut reads = plan::CaseReads::default();
    if let Some(ticket) = &needs.active_case_with_ticket {
        let stored: Option<Vec<u8>> = sqlx::query_scalar(concat!(
            "SELECT view FROM cases WHERE ticket = $1 AND state IN ",
            crate::writer::active_states_sql!(),
            " ORDER BY opened_at LIMIT 1"
        ))
        .bind(ticket.to_string())
        .fetch_optional(&mut *connection)
        .await?;
        reads.active_case_with_ticket = stored.as_deref().map(decode_view).transpose()?;
    }
    if let Some(key) = &needs.active_case_for_change {
        let stored: Option<String> = sqlx::query_scalar(concat!(
            "SELECT case_id FROM cases WHERE change_key = $1 AND state IN ",
            crate::writer::active_states_sql!(),
            " LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(&mut *connection)
        .await?;
        reads.active_case_for_change = stored.as_deref().map(parse_stored).transpose()?;
    }
    if let Some(org) = &needs.grants_of {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT grant_json FROM delegations WHERE vendor_org = $1 ORDER BY grant_id",
        )
        .bind(org)
        .fetch_all(&mut *connection)
        .await?;
        reads.grants = rows
            .iter()
            .map(|json| decode_grant(json))
            .collect::<Result<Vec<_>, _>>()?;
    }
    if let Some(ticket) = &needs.case_with_ticket {
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT view FROM cases WHERE ticket = $1 AND state <> 'merged' ORDER BY opened_at DESC LIMIT 1",
        )
        .bind(ticket.to_string())
        .fetch_optional(&mut *connection)
        .await?;
        reads.case_with_ticket = stored.as_deref().map(decode_view).transpose()?;
    }
    if let Some(ticket) = &needs.evidence_record {
        reads.evidence_record = evidence_record_of(connection, &ticket.to_string()).await?;
    }
    if let Some(case_id) = &needs.observed_case {
        let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT view FROM cases WHERE case_id = $1")
            .bind(case_id.as_str())
            .fetch_optional(&mut *connection)
            .await?;
        reads.observed_case = stored.as_deref().map(decode_view).transpose()?;
    }
    for key in &needs.cases_for_change_keys {
        // The newest cases of the change: an observation belongs to one
        // whose window it falls in, and windows are recent.
        let stored: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT view FROM cases WHERE change_key = $1 ORDER BY opened_at DESC LIMIT 16",
        )
        .bind(key)
        .fetch_all(&mut *connection)
        .await?;
        for view in stored {
            reads.cases_for_change_keys.push(decode_view(&view)?);
        }
    }
    Ok(reads)
}

/// The evidence record of `ticket` and its stored events, if it has one.
async fn evidence_record_of(
    connection: &mut Conn,
    ticket: &str,
) -> Result<Option<plan::StoredRecord>, StoreError> {
    let row = sqlx::query("SELECT case_id, released_to FROM evidence_records WHERE ticket = $1")
        .bind(ticket)
        .fetch_optional(&mut *connection)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let record: CaseId = parse_stored(&row.try_get::<String, _>("case_id")?)?;
    let released: Option<String> = row.try_get("released_to")?;
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq")
            .bind(record.as_str())
            .fetch_all(&mut *connection)
            .await?;
    let events = rows
        .iter()
        .map(|bytes| {
            Event::decode(bytes)
                .map(|event| (event, Sha256Hash::of(bytes)))
                .map_err(|error| StoreError::Corrupt(format!("evidence record {record}: {error}")))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(plan::StoredRecord {
        record,
        released_to: released.as_deref().map(parse_stored).transpose()?,
        events,
    }))
}

fn decode_view(stored: &[u8]) -> Result<CaseView, StoreError> {
    serde_json::from_slice(stored)
        .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))
}

fn decode_grant(json: &str) -> Result<DelegationGrant, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))
}

/// Signs a checkpoint of the log at `size` unless the latest one already has
/// that size. `None` for an empty log, which has nothing to sign. Refuses
/// when the log does not extend the newest stored checkpoint or one of
/// `known` ([`check_extends`]).
async fn sign_checkpoint(
    connection: &mut Conn,
    size: u64,
    origin: &str,
    signers: &[SignerKey],
    known: &[crate::KnownCheckpoint],
    now: Timestamp,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    check_extends(&mut *connection, size, known).await?;
    if size == 0 {
        return Ok(None);
    }
    if let Some(latest) = latest_checkpoint(&mut *connection).await? {
        if latest.size == size {
            return Ok(Some(latest));
        }
    }
    let root = tree_root(&mut *connection, size).await?;
    let checkpoint = custody_log::Checkpoint::new(origin, size, root)
        .map_err(|error| StoreError::Corrupt(format!("cannot build a checkpoint: {error}")))?;
    let signer_refs: Vec<&SignerKey> = signers.iter().collect();
    let note = checkpoint
        .sign(&signer_refs)
        .map_err(|error| StoreError::Corrupt(format!("cannot sign the checkpoint: {error}")))?;
    sqlx::query("INSERT INTO checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)")
        .bind(to_sql(size))
        .bind(root.to_vec())
        .bind(&note)
        .bind(now.to_string())
        .execute(&mut *connection)
        .await?;
    Ok(Some(StoredCheckpoint {
        size,
        root,
        note,
        created_at: now.to_string(),
    }))
}

/// Writes the batch's events and their Merkle log nodes, projections,
/// idempotency records and outbox and evidence-record rows, and marks them
/// written (the batch may flush more than once: before a checkpoint, and
/// at the end).
async fn flush(
    connection: &mut Conn,
    pending: &mut Pending,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let appended = pending.events.len() as u64;
    if appended > 0 && pending.merkle_log {
        let size = pending.next_log_index - appended;
        let leaf_hashes: Vec<custody_log::Hash> = pending
            .events
            .iter()
            .map(|pending_event| custody_log::leaf_hash(&pending_event.bytes))
            .collect();
        append_leaves(connection, size, &leaf_hashes).await?;
    }
    for chunk in statement_chunks(&pending.events, ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) ",
        );
        insert.push_values(chunk, |mut row, pending_event| {
            let event = &pending_event.event;
            row.push_bind(to_sql(pending_event.log_index))
                .push_bind(event.event_id.to_string())
                .push_bind(event.case_id.to_string())
                .push_bind(to_sql(event.seq))
                .push_bind(event.body.kind_name())
                .push_bind(event.recorded_at.to_string())
                .push_bind(pending_event.bytes.clone());
        });
        insert.build().execute(&mut *connection).await?;
    }

    let views: Vec<&CaseView> = pending.views.values().collect();
    for chunk in statement_chunks(&views, ROWS_PER_STATEMENT) {
        let mut upsert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO cases (case_id, state, change_key, ticket, requester, summary, opened_at, updated_at, head_seq, head_hash, next_deadline, view, drill) ",
        );
        let mut encode_error = None;
        upsert.push_values(chunk, |mut row, view| {
            bind_case_row(&mut row, view, &mut encode_error);
        });
        if let Some(error) = encode_error {
            return Err(sqlx::Error::Protocol(format!(
                "cannot encode a case projection: {error}"
            )));
        }
        upsert.push(
            " ON CONFLICT (case_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
              head_seq = excluded.head_seq, head_hash = excluded.head_hash,
              next_deadline = excluded.next_deadline, ticket = excluded.ticket, view = excluded.view",
        );
        upsert.build().execute(&mut *connection).await?;
    }

    let records: Vec<(&(String, String), &plan::PendingIdempotency)> = pending
        .idempotency
        .iter()
        .filter(|(_, record)| !record.flushed)
        .collect();
    for chunk in statement_chunks(&records, ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO idempotency (principal_id, key, fingerprint, response, created_at) ",
        );
        let mut encode_error = None;
        insert.push_values(chunk, |mut row, ((principal, key), record)| {
            let response = serde_json::to_string(&record.outcome).unwrap_or_else(|error| {
                encode_error = Some(error.to_string());
                String::new()
            });
            row.push_bind(principal.clone())
                .push_bind(key.clone())
                .push_bind(record.fingerprint.clone())
                .push_bind(response)
                .push_bind(record.recorded_at.to_string());
        });
        if let Some(error) = encode_error {
            return Err(sqlx::Error::Protocol(format!(
                "cannot encode a write result: {error}"
            )));
        }
        insert.build().execute(&mut *connection).await?;
    }
    let rows: Vec<&plan::OutboxRow> = pending
        .events
        .iter()
        .flat_map(|pending_event| pending_event.outbox.iter())
        .collect();
    for chunk in statement_chunks(&rows, ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO outbox (delivery_id, case_id, event_id, kind, audience, channel, recipient, state, attempts, next_attempt_at, created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, outbox| {
            row.push_bind(outbox.delivery_id.clone())
                .push_bind(outbox.case_id.clone())
                .push_bind(outbox.event_id.clone())
                .push_bind(outbox.kind.clone())
                .push_bind(outbox.audience.clone())
                .push_bind(outbox.channel.clone())
                .push_bind(outbox.recipient.clone())
                .push_bind("pending")
                .push_bind(0_i64)
                .push_bind(outbox.created_at.to_string())
                .push_bind(outbox.created_at.to_string())
                .push_bind(outbox.created_at.to_string());
        });
        insert.build().execute(&mut *connection).await?;
    }
    let now = now.to_string();
    for update in &pending.outbox_updates {
        sqlx::query(
            "UPDATE outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE delivery_id = $6",
        )
        .bind(update.state)
        .bind(i64::from(update.attempts))
        .bind(update.next_attempt_at.to_string())
        .bind(&update.last_error)
        .bind(&now)
        .bind(&update.delivery_id)
        .execute(&mut *connection)
        .await?;
    }
    for row in &pending.record_updates {
        let released_to = row.released_to.as_ref().map(ToString::to_string);
        if row.new {
            sqlx::query(
                "INSERT INTO evidence_records (ticket, case_id, released_to, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&row.ticket)
            .bind(row.record.as_str())
            .bind(released_to)
            .bind(row.created_at.to_string())
            .execute(&mut *connection)
            .await?;
        } else {
            sqlx::query("UPDATE evidence_records SET released_to = $1 WHERE ticket = $2")
                .bind(released_to)
                .bind(&row.ticket)
                .execute(&mut *connection)
                .await?;
        }
    }
    pending.flushed();
    Ok(())
}

/// The administration record's head as stored, when the batch has not
/// appended to it yet (else the planner knows it).
async fn stored_admin_head(
    connection: &mut Conn,
    pending: &Pending,
) -> Result<Option<plan::AdminHead>, StoreError> {
    if !pending.needs_admin_head() {
        return Ok(None);
    }
    let record: Option<String> =
        sqlx::query_scalar("SELECT value FROM deployment WHERE key = 'admin_record'")
            .fetch_optional(&mut *connection)
            .await?;
    let Some(record) = record else {
        return Ok(None);
    };
    let head: Vec<u8> =
        sqlx::query_scalar("SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(&record)
            .fetch_optional(&mut *connection)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("the administration record {record} has no events"))
            })?;
    let event = Event::decode(&head).map_err(|error| {
        StoreError::Corrupt(format!("the administration record's latest event: {error}"))
    })?;
    Ok(Some(plan::AdminHead {
        case_id: parse_stored(&record)?,
        seq: event.seq,
        hash: Sha256Hash::of(&head),
        // The writer lets `system` act only while every event before is its
        // own, so a head by `system` means the record is still opening.
        opening: event.actor.principal.as_str() == custody_core::model::SYSTEM_PRINCIPAL,
    }))
}

/// Where `actor` stands: an admin as the principals projection (written in
/// the same transactions as the record) has it, and whether the record is
/// still in its opening.
async fn admin_standing(
    connection: &mut Conn,
    pending: &Pending,
    actor: &custody_core::Actor,
) -> Result<plan::Standing, StoreError> {
    let groups: Option<String> =
        sqlx::query_scalar("SELECT groups_json FROM principals WHERE principal_id = $1")
            .bind(actor.principal.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    let is_admin = match groups {
        Some(groups) => serde_json::from_str::<Vec<String>>(&groups)
            .map_err(|error| StoreError::Corrupt(format!("principal groups: {error}")))?
            .iter()
            .any(|group| group == custody_core::admin::ADMINS_GROUP),
        None => false,
    };
    let stored_head = stored_admin_head(connection, pending).await?;
    Ok(pending.standing(is_admin, stored_head))
}

/// Appends `draft`, acted by `actor`, to the administration record, and
/// records the record's ID when this event opens it.
async fn append_admin(
    connection: &mut Conn,
    pending: &mut Pending,
    actor: &custody_core::Actor,
    draft: lifecycle::Draft,
    now: Timestamp,
) -> Result<AppendedEvent, StoreError> {
    let stored_head = stored_admin_head(connection, pending).await?;
    let (appended, opened) = pending.append_admin(stored_head, actor, draft, now);
    if let Some(record) = opened {
        sqlx::query("INSERT INTO deployment (key, value, created_at) VALUES ('admin_record', $1, $2)")
            .bind(record.as_str())
            .bind(now.to_string())
            .execute(&mut *connection)
            .await?;
    }
    Ok(appended)
}

/// Writes an administrative act the planner decided: its projection row,
/// then its event in the administration record.
async fn administer(
    connection: &mut Conn,
    pending: &mut Pending,
    actor: &custody_core::Actor,
    change: plan::AdminChange,
    now: Timestamp,
) -> Result<AppendedEvent, StoreError> {
    write_admin_row(connection, change.row).await?;
    append_admin(connection, pending, actor, change.draft, now).await
}

async fn write_admin_row(connection: &mut Conn, row: plan::AdminRow) -> Result<(), StoreError> {
    use plan::AdminRow;
    let query = match row {
        AdminRow::InsertOidcPrincipal {
            principal,
            groups_json,
            created_at,
            issuer,
            subject,
        } => {
            sqlx::query(
                "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(principal.id.to_string())
            .bind(principal.display_name)
            .bind(principal.kind.as_str())
            .bind(groups_json)
            .bind(principal.org)
            .bind(created_at.to_string())
            .bind(principal.id.to_string())
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "INSERT INTO oidc_identities (issuer, subject, principal_id, bound_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(issuer)
            .bind(subject)
            .bind(principal.id.to_string())
            .bind(created_at.to_string())
        }
        AdminRow::InsertPrincipal {
            principal,
            groups_json,
            created_at,
            created_by,
        } => sqlx::query(
            "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(principal.id.to_string())
        .bind(principal.display_name)
        .bind(principal.kind.as_str())
        .bind(groups_json)
        .bind(principal.org)
        .bind(created_at.to_string())
        .bind(created_by),
        AdminRow::UpdateGroups {
            principal,
            groups_json,
        } => sqlx::query("UPDATE principals SET groups_json = $1 WHERE principal_id = $2")
            .bind(groups_json)
            .bind(principal.to_string()),
        AdminRow::InsertToken {
            token_id,
            principal,
            secret_sha256,
            created_at,
            expires_at,
            created_by,
        } => sqlx::query(
            "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at, expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_id)
        .bind(principal.to_string())
        .bind(secret_sha256.0.to_vec())
        .bind(created_at.to_string())
        .bind(expires_at.map(|at| at.to_string()))
        .bind(created_by),
        AdminRow::RevokeToken {
            token_id,
            revoked_at,
            revoked_by,
        } => sqlx::query(
            "UPDATE tokens SET revoked_at = $1, revoked_by = $2 WHERE token_id = $3 AND revoked_at IS NULL",
        )
        .bind(revoked_at.to_string())
        .bind(revoked_by)
        .bind(token_id),
        AdminRow::InsertGrant {
            grant_id,
            vendor_org,
            grant_json,
        } => sqlx::query(
            "INSERT INTO delegations (grant_id, vendor_org, grant_json) VALUES ($1, $2, $3)",
        )
        .bind(grant_id)
        .bind(vendor_org)
        .bind(grant_json),
        AdminRow::UpdateGrant {
            grant_id,
            grant_json,
        } => sqlx::query("UPDATE delegations SET grant_json = $1 WHERE grant_id = $2")
            .bind(grant_json)
            .bind(grant_id),
        AdminRow::MapIdentity {
            connector,
            external_user,
            principal,
            mapped_at,
            mapped_by,
        } => sqlx::query(
            "INSERT INTO connector_identities (connector, external_user, principal_id, mapped_at, mapped_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (connector, external_user) DO UPDATE SET principal_id = excluded.principal_id, mapped_at = excluded.mapped_at, mapped_by = excluded.mapped_by",
        )
        .bind(connector.to_string())
        .bind(external_user.to_string())
        .bind(principal.to_string())
        .bind(mapped_at.to_string())
        .bind(mapped_by),
        AdminRow::UnmapIdentity {
            connector,
            external_user,
        } => sqlx::query(
            "DELETE FROM connector_identities WHERE connector = $1 AND external_user = $2",
        )
        .bind(connector.to_string())
        .bind(external_user.to_string()),
    };
    query.execute(&mut *connection).await?;
    Ok(())
}

async fn principal_exists(connection: &mut Conn, id: &str) -> Result<bool, StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT principal_id FROM principals WHERE principal_id = $1")
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    Ok(exists.is_some())
}

async fn add_principal(
    connection: &mut Conn,
    pending: &mut Pending,
    principal: Principal,
    by: Option<custody_core::Actor>,
    now: Timestamp,
) -> Result<Principal, StoreError> {
    let actor = by.unwrap_or_else(custody_core::Actor::system);
    let standing = admin_standing(connection, pending, &actor).await?;
    let exists = principal_exists(connection, principal.id.as_str()).await?;
    let change = plan::records::add_principal(standing, exists, &principal, &actor, now)?;
    administer(connection, pending, &actor, change, now).await?;
    Ok(principal)
}

/// Signs in an OpenID Connect identity as `claimed`, decided under the
/// write lock (two first sign-ins at once add one principal; the second
/// finds it bound): see `plan::records::oidc_sign_in`.
async fn oidc_sign_in(
    connection: &mut Conn,
    pending: &mut Pending,
    claimed: Principal,
    actor: custody_core::Actor,
    now: Timestamp,
) -> Result<Principal, StoreError> {
    let custody_core::model::AuthContext::Oidc { issuer, subject } = &actor.auth else {
        return Err(StoreError::InvalidRequest(
            "an OIDC sign-in needs an OIDC actor".to_string(),
        ));
    };
    let bound: Option<String> = sqlx::query_scalar(
        "SELECT principal_id FROM oidc_identities WHERE issuer = $1 AND subject = $2",
    )
    .bind(issuer.as_str())
    .bind(subject.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let bound = bound
        .map(|id| {
            id.parse::<PrincipalId>().map_err(|error| {
                StoreError::Corrupt(format!("an OIDC identity's principal: {error}"))
            })
        })
        .transpose()?;
    let row = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals WHERE principal_id = $1",
    )
    .bind(claimed.id.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let stored = row.as_ref().map(principal_from_row).transpose()?;
    let (principal, change) = plan::records::oidc_sign_in(bound, stored, &claimed, &actor, now)?;
    if let Some(change) = change {
        administer(connection, pending, &actor, change, now).await?;
    }
    Ok(principal)
}

/// Sets a principal's groups, recording the change; setting the groups it
/// has already records nothing.
async fn set_groups(
    connection: &mut Conn,
    pending: &mut Pending,
    principal: &PrincipalId,
    groups: Vec<String>,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<Principal, StoreError> {
    let standing = admin_standing(connection, pending, &by).await?;
    let row = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals WHERE principal_id = $1",
    )
    .bind(principal.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let stored = row.as_ref().map(principal_from_row).transpose()?;
    let another_admin = another_admin(connection, principal).await?;
    let (principal, change) =
        plan::records::set_groups(standing, stored, principal, groups, another_admin, &by)?;
    if let Some(change) = change {
        administer(connection, pending, &by, change, now).await?;
    }
    Ok(principal)
}

/// Whether a principal other than `principal` is in `admins`, as the
/// principals table (written in this transaction) stands.
async fn another_admin(connection: &mut Conn, principal: &PrincipalId) -> Result<bool, StoreError> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT groups_json FROM principals WHERE principal_id <> $1")
            .bind(principal.as_str())
            .fetch_all(&mut *connection)
            .await?;
    for groups in rows {
        let groups: Vec<String> = serde_json::from_str(&groups)
            .map_err(|error| StoreError::Corrupt(format!("principal groups: {error}")))?;
        if groups
            .iter()
            .any(|group| group == custody_core::admin::ADMINS_GROUP)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn create_token(
    connection: &mut Conn,
    pending: &mut Pending,
    principal: PrincipalId,
    ttl_seconds: Option<u64>,
    by: Option<custody_core::Actor>,
    now: Timestamp,
) -> Result<IssuedToken, StoreError> {
    let actor = by.unwrap_or_else(custody_core::Actor::system);
    let standing = admin_standing(connection, pending, &actor).await?;
    let exists = principal_exists(connection, principal.as_str()).await?;
    let (issued, change) = plan::records::create_token(
        standing,
        exists,
        &principal,
        crate::writer::new_token()?,
        ttl_seconds,
        &actor,
        now,
    )?;
    administer(connection, pending, &actor, change, now).await?;
    Ok(issued)
}

/// Revokes a token, decided under the write lock: a revoked token is
/// returned unchanged and nothing is appended.
async fn revoke_token(
    connection: &mut Conn,
    pending: &mut Pending,
    token_id: &str,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<TokenInfo, StoreError> {
    let token = stored_token(connection, token_id).await?;
    let standing = admin_standing(connection, pending, &by).await?;
    match plan::records::revoke_token(&token, standing, &by, now)? {
        Some(change) => {
            administer(connection, pending, &by, change, now).await?;
            stored_token(connection, token_id).await
        }
        None => Ok(token),
    }
}

/// The stored token `token_id`, as the writer's transaction sees it.
async fn stored_token(connection: &mut Conn, token_id: &str) -> Result<TokenInfo, StoreError> {
    let row = sqlx::query(concat!(crate::token_select!(), " WHERE token_id = $1"))
        .bind(token_id)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| StoreError::TokenNotFound(token_id.to_string()))?;
    token_from_row(&row)
}

/// Stores and records a new delegation grant, granted now by `by`.
async fn grant_delegation(
    connection: &mut Conn,
    pending: &mut Pending,
    grant: DelegationGrant,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<DelegationGrant, StoreError> {
    let standing = admin_standing(connection, pending, &by).await?;
    let exists = stored_grant(connection, &grant.grant_id).await?.is_some();
    let (grant, change) = plan::records::grant_delegation(standing, exists, grant, &by, now)?;
    administer(connection, pending, &by, change, now).await?;
    Ok(grant)
}

/// The stored delegation grant `grant_id`, as the writer's transaction sees it.
async fn stored_grant(
    connection: &mut Conn,
    grant_id: &str,
) -> Result<Option<DelegationGrant>, StoreError> {
    let json: Option<String> =
        sqlx::query_scalar("SELECT grant_json FROM delegations WHERE grant_id = $1")
            .bind(grant_id)
            .fetch_optional(&mut *connection)
            .await?;
    json.as_deref().map(decode_grant).transpose()
}

/// Revokes a delegation grant, decided under the write lock against the
/// grant as recorded: a grant revoked already keeps its first revocation
/// time, is returned as it is, and nothing is appended.
async fn revoke_delegation(
    connection: &mut Conn,
    pending: &mut Pending,
    grant_id: &str,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<DelegationGrant, StoreError> {
    let stored = stored_grant(connection, grant_id).await?;
    let standing = admin_standing(connection, pending, &by).await?;
    let (grant, change) = plan::records::revoke_delegation(stored, grant_id, standing, &by, now)?;
    if let Some(change) = change {
        administer(connection, pending, &by, change, now).await?;
    }
    Ok(grant)
}

/// The mapping in force of `external_user` of `connector`, as the writer's
/// transaction sees it.
async fn stored_identity(
    connection: &mut Conn,
    connector: &custody_core::model::ConnectorName,
    external_user: &custody_core::model::ExternalUser,
) -> Result<Option<crate::IdentityMapping>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        crate::identity_columns!(),
        " FROM connector_identities WHERE connector = $1 AND external_user = $2"
    ))
    .bind(connector.as_str())
    .bind(external_user.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    row.as_ref().map(identity_from_row).transpose()
}

/// Maps outside users to principals, decided under the write lock against
/// the mappings and principals as recorded: all of them, or none when one
/// is refused (every one is decided before anything is written).
async fn map_identities(
    connection: &mut Conn,
    pending: &mut Pending,
    connector: &custody_core::model::ConnectorName,
    entries: Vec<(custody_core::model::ExternalUser, PrincipalId)>,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<Vec<crate::IdentityChange>, StoreError> {
    let standing = admin_standing(connection, pending, &by).await?;
    let mut stored = std::collections::BTreeMap::new();
    let mut known = std::collections::BTreeSet::new();
    for (external_user, principal) in &entries {
        if !stored.contains_key(external_user) {
            if let Some(mapping) = stored_identity(connection, connector, external_user).await? {
                stored.insert(external_user.clone(), mapping);
            }
        }
        if !known.contains(principal) && principal_exists(connection, principal.as_str()).await? {
            known.insert(principal.clone());
        }
    }
    let decided =
        plan::records::map_identities(standing, connector, entries, &stored, &known, &by, now)?;
    let mut changes = Vec::with_capacity(decided.len());
    for (change, admin_change) in decided {
        if let Some(admin_change) = admin_change {
            administer(connection, pending, &by, admin_change, now).await?;
        }
        changes.push(change);
    }
    Ok(changes)
}

/// Removes an outside user's mapping, decided under the write lock.
async fn unmap_identity(
    connection: &mut Conn,
    pending: &mut Pending,
    connector: &custody_core::model::ConnectorName,
    external_user: &custody_core::model::ExternalUser,
    by: custody_core::Actor,
    now: Timestamp,
) -> Result<crate::IdentityChange, StoreError> {
    let standing = admin_standing(connection, pending, &by).await?;
    let stored = stored_identity(connection, connector, external_user).await?;
    let (change, admin_change) =
        plan::records::unmap_identity(standing, connector, external_user, stored, &by)?;
    administer(connection, pending, &by, admin_change, now).await?;
    Ok(change)
}

/// Records, by `system`, the principals, tokens and delegation grants of a
/// data directory made before administration was on the record: once, when
/// the store has such rows and no administration record.
async fn record_legacy_admin(
    connection: &mut Conn,
    pending: &mut Pending,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let stored_head = stored_admin_head(connection, pending).await?;
    if !pending.records_legacy_admin(stored_head) {
        return Ok(0);
    }
    let principals = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals ORDER BY created_at, principal_id",
    )
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(principal_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let mut tokens = Vec::new();
    for row in sqlx::query(
        "SELECT token_id, principal_id, secret_sha256, expires_at, revoked_at FROM tokens ORDER BY created_at, token_id",
    )
    .fetch_all(&mut *connection)
    .await?
    {
        let expires_at: Option<String> = row.try_get("expires_at")?;
        let revoked_at: Option<String> = row.try_get("revoked_at")?;
        tokens.push(plan::LegacyToken {
            token_id: row.try_get("token_id")?,
            principal: parse_stored(&row.try_get::<String, _>("principal_id")?)?,
            secret_sha256: row.try_get("secret_sha256")?,
            expires_at: expires_at
                .map(|at| Timestamp::parse(&at).map_err(|error| StoreError::Corrupt(error.to_string())))
                .transpose()?,
            revoked: revoked_at.is_some(),
        });
    }
    let grants = sqlx::query_scalar::<_, String>("SELECT grant_json FROM delegations ORDER BY grant_id")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|json| decode_grant(json))
        .collect::<Result<Vec<_>, _>>()?;
    let system = custody_core::Actor::system();
    let mut appended = 0;
    for draft in plan::records::legacy_admin(&principals, &tokens, &grants, now) {
        append_admin(connection, pending, &system, draft, now).await?;
        appended += 1;
    }
    Ok(appended)
}

/// Records `origin` as the log's origin unless one is recorded already, and
/// returns the recorded one.
async fn claim_origin(
    connection: &mut Conn,
    origin: &str,
    now: Timestamp,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO deployment (key, value, created_at) VALUES ('log_origin', $1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(origin)
    .bind(now.to_string())
    .execute(&mut *connection)
    .await?;
    Ok(sqlx::query_scalar("SELECT value FROM deployment WHERE key = 'log_origin'")
        .fetch_one(&mut *connection)
        .await?)
}

/// Brings the schema up to date, in one transaction that holds the write
/// lock, so nodes starting together never migrate twice.
pub(crate) async fn migrate(connection: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(BEGIN_WRITE).execute(&mut *connection).await?;
    let applied = migrate_in_transaction(connection).await;
    match applied {
        Ok(()) => {
            sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
            Ok(())
        }
        Err(error) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            Err(error)
        }
    }
}

/// Applies the migrations not applied yet, inside the caller's write
/// transaction (DDL is transactional on both backends).
pub(crate) async fn migrate_in_transaction(connection: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(SCHEMA_VERSION_TABLE)
        .execute(&mut *connection)
        .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        .fetch_one(&mut *connection)
        .await?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *connection).await?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Appends a `policy_adopted` event to the deployment's policy record
/// (creating the record on first use) unless `policy` is the one it recorded
/// last.
async fn adopt_policy(
    connection: &mut Conn,
    pending: &mut Pending,
    policy: &custody_core::policy::Policy,
    source: &str,
    now: Timestamp,
) -> Result<Option<AppendedEvent>, StoreError> {
    let record: Option<String> =
        sqlx::query_scalar("SELECT value FROM deployment WHERE key = 'policy_record'")
            .fetch_optional(&mut *connection)
            .await?;
    let stored = match record {
        Some(record) => {
            let head: Vec<u8> = sqlx::query_scalar(
                "SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&record)
            .fetch_optional(&mut *connection)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("the policy record {record} has no events"))
            })?;
            let latest = Event::decode(&head).map_err(|error| {
                StoreError::Corrupt(format!("the policy record's latest event: {error}"))
            })?;
            Some(plan::PolicyHead {
                record: parse_stored(&record)?,
                latest,
                hash: Sha256Hash::of(&head),
            })
        }
        None => None,
    };
    let Some((appended, opened)) = pending.adopt_policy(stored, policy, source, now)? else {
        return Ok(None);
    };
    if let Some(record) = opened {
        sqlx::query(
            "INSERT INTO deployment (key, value, created_at) VALUES ('policy_record', $1, $2)",
        )
        .bind(record.as_str())
        .bind(now.to_string())
        .execute(&mut *connection)
        .await?;
    }
    Ok(Some(appended))
}

/// Leases the due outbox rows to `owner` (see `CLAIM_DELIVERIES`).
async fn claim_deliveries(
    connection: &mut Conn,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
    limit: u32,
) -> Result<Vec<crate::ClaimedDelivery>, StoreError> {
    let rows = sqlx::query(CLAIM_DELIVERIES)
        .bind(owner)
        .bind(until.to_string())
        .bind(now.to_string())
        .bind(i64::from(limit))
        .fetch_all(&mut *connection)
        .await?;
    rows.iter()
        .map(|row| {
            let attempts: i64 = row.try_get("attempts")?;
            Ok(crate::ClaimedDelivery {
                delivery_id: row.try_get("delivery_id")?,
                case_id: row.try_get("case_id")?,
                event_id: row.try_get("event_id")?,
                kind: row.try_get("kind")?,
                channel: row.try_get("channel")?,
                recipient: row.try_get("recipient")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Stores a witness's cosignature unless that witness's one at that size
/// is stored; see [`crate::Store::add_cosignature`].
async fn add_cosignature(
    connection: &mut Conn,
    cosignature: &crate::StoredCosignature,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO cosignatures (witness, size, root, note, line, cosigned_at, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (witness, size) DO NOTHING",
    )
    .bind(&cosignature.witness)
    .bind(to_sql(cosignature.size))
    .bind(cosignature.root.to_vec())
    .bind(&cosignature.note)
    .bind(&cosignature.line)
    .bind(to_sql(cosignature.cosigned_at))
    .bind(now.to_string())
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes, renews or gives up a polled source's lease, or advances its
/// cursor; see [`crate::Store::pull_cursor`].
async fn pull_cursor(
    connection: &mut Conn,
    source: &str,
    owner: &str,
    operation: crate::PullCursorOperation,
    now: Timestamp,
    until: Timestamp,
) -> Result<crate::PullLease, StoreError> {
    let row = match operation {
        crate::PullCursorOperation::Lease => {
            sqlx::query(
                "INSERT INTO pull_cursors (source, cursor, lease_owner, lease_until, updated_at)
                 VALUES ($1, NULL, NULL, NULL, $2) ON CONFLICT (source) DO NOTHING",
            )
            .bind(source)
            .bind(now.to_string())
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE pull_cursors SET lease_owner = $1, lease_until = $2, updated_at = $3
                 WHERE source = $4 AND (lease_owner = $1 OR lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $3)
                 RETURNING cursor",
            )
            .bind(owner)
            .bind(until.to_string())
            .bind(now.to_string())
            .bind(source)
            .fetch_optional(&mut *connection)
            .await?
        }
        crate::PullCursorOperation::Advance { to } => {
            sqlx::query(
                "UPDATE pull_cursors SET cursor = $1, lease_until = $2, updated_at = $3
                 WHERE source = $4 AND lease_owner = $5
                 RETURNING cursor",
            )
            .bind(to)
            .bind(until.to_string())
            .bind(now.to_string())
            .bind(source)
            .bind(owner)
            .fetch_optional(&mut *connection)
            .await?
        }
        crate::PullCursorOperation::Release => {
            sqlx::query(
                "UPDATE pull_cursors SET lease_owner = NULL, lease_until = NULL, updated_at = $1
                 WHERE source = $2 AND lease_owner = $3",
            )
            .bind(now.to_string())
            .bind(source)
            .bind(owner)
            .execute(&mut *connection)
            .await?;
            None
        }
    };
    match row {
        Some(row) => Ok(crate::PullLease::Held(row.try_get("cursor")?)),
        None => Ok(crate::PullLease::NotHeld),
    }
}

/// Takes, renews or gives up a push sink's lease, or advances its cursor;
/// see [`crate::Store::export_cursor`]. A sink seen for the first time gets
/// a cursor at the start of the log.
async fn export_cursor(
    connection: &mut Conn,
    sink: &str,
    owner: &str,
    operation: crate::ExportCursorOperation,
    now: Timestamp,
    until: Timestamp,
) -> Result<Option<u64>, StoreError> {
    let row = match operation {
        crate::ExportCursorOperation::Lease => {
            sqlx::query(
                "INSERT INTO export_cursors (sink, next_index, lease_owner, lease_until, updated_at)
                 VALUES ($1, 0, NULL, NULL, $2) ON CONFLICT (sink) DO NOTHING",
            )
            .bind(sink)
            .bind(now.to_string())
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE export_cursors SET lease_owner = $1, lease_until = $2, updated_at = $3
                 WHERE sink = $4 AND (lease_owner = $1 OR lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $3)
                 RETURNING next_index",
            )
            .bind(owner)
            .bind(until.to_string())
            .bind(now.to_string())
            .bind(sink)
            .fetch_optional(&mut *connection)
            .await?
        }
        crate::ExportCursorOperation::Advance { from, to } => {
            if to < from {
                return Err(StoreError::InvalidRequest(format!(
                    "export sink `{sink}`: a cursor never moves back (from {from} to {to})"
                )));
            }
            sqlx::query(
                "UPDATE export_cursors SET next_index = $1, lease_until = $2, updated_at = $3
                 WHERE sink = $4 AND lease_owner = $5 AND next_index = $6
                 RETURNING next_index",
            )
            .bind(to_sql(to))
            .bind(until.to_string())
            .bind(now.to_string())
            .bind(sink)
            .bind(owner)
            .bind(to_sql(from))
            .fetch_optional(&mut *connection)
            .await?
        }
        crate::ExportCursorOperation::Release => {
            sqlx::query(
                "UPDATE export_cursors SET lease_owner = NULL, lease_until = NULL, updated_at = $1
                 WHERE sink = $2 AND lease_owner = $3",
            )
            .bind(now.to_string())
            .bind(sink)
            .bind(owner)
            .execute(&mut *connection)
            .await?;
            None
        }
    };
    row.map(|row| {
        let next: i64 = row.try_get("next_index")?;
        Ok(from_sql(next))
    })
    .transpose()
}

/// Makes a pending or dead notification due now.
async fn retry_delivery(
    connection: &mut Conn,
    delivery_id: &str,
    now: Timestamp,
) -> Result<crate::OutboxEntry, StoreError> {
    let missing = || StoreError::InvalidRequest(format!("notification {delivery_id} does not exist"));
    let entry = outbox_entry(&mut *connection, delivery_id)
        .await?
        .ok_or_else(missing)?;
    plan::may_retry(&entry)?;
    sqlx::query(
        "UPDATE outbox SET state = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE delivery_id = $2",
    )
    .bind(now.to_string())
    .bind(delivery_id)
    .execute(&mut *connection)
    .await?;
    outbox_entry(&mut *connection, delivery_id)
        .await?
        .ok_or_else(missing)
}

/// Binds a `cases` row for `view`, in the column order of the writer's
/// upsert and the import's insert: the same columns `verify` recomputes
/// from the events (`CaseRow::of`) and the view's JSON. A view that does
/// not encode leaves its error in `encode_error` (the caller refuses the
/// statement).
fn bind_case_row(
    row: &mut sqlx::query_builder::Separated<'_, Db, &'static str>,
    view: &CaseView,
    encode_error: &mut Option<String>,
) {
    let encoded = serde_json::to_vec(view).unwrap_or_else(|error| {
        *encode_error = Some(error.to_string());
        Vec::new()
    });
    let columns = custody_core::case::CaseRow::of(view);
    row.push_bind(view.case_id.to_string())
        .push_bind(columns.state)
        .push_bind(columns.change_key)
        .push_bind(columns.ticket)
        .push_bind(columns.requester)
        .push_bind(columns.summary)
        .push_bind(columns.opened_at)
        .push_bind(columns.updated_at)
        .push_bind(to_sql(columns.head_seq))
        .push_bind(columns.head_hash)
        .push_bind(columns.next_deadline)
        .push_bind(encoded)
        .push_bind(columns.drill);
}
