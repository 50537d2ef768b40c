/// Runs the writer until every [`crate::Store`] handle is dropped.
///
/// A connection that breaks (a database restart, a network fault) is replaced
/// before the next batch; the batch that saw it fail was answered with an
/// error, and its writes are retried by their clients with the same keys.
pub(crate) async fn run(
    mut connection: Conn,
    options: <Conn as sqlx::Connection>::Options,
    mut jobs: mpsc::Receiver<Job>,
    stats: Arc<CommitStats>,
    routing: Arc<std::sync::RwLock<Arc<Routing>>>,
    merkle_log: bool,
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
        // Safe to read a poisoned lock: the routing is replaced whole.
        let routing = routing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        commit_batch(&mut connection, batch, &stats, routing, merkle_log).await;
    }
}

async fn commit_batch(
    connection: &mut Conn,
    batch: Vec<Job>,
    stats: &CommitStats,
    routing: Arc<Routing>,
    merkle_log: bool,
) {
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
        Ok(next_log_index) => Pending {
            next_log_index,
            merkle_log,
            routing,
            ..Pending::default()
        },
        Err(error) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await;
            let message = error.to_string();
            reply_all(batch.into_iter().map(|job| job.fail(&message)).collect());
            return;
        }
    };
    let mut done = Vec::with_capacity(batch_size);
    let result: Result<(), sqlx::Error> = async {
        let prefetched = prefetch(connection, &batch).await?;
        for job in batch {
            done.push(match job {
                Job::Case(write, reply) => Done::Case(
                    reply,
                    decide_case(connection, &prefetched, &mut pending, &write).await,
                ),
                Job::AddPrincipal {
                    principal,
                    by,
                    reply,
                } => Done::Principal(
                    reply,
                    add_principal(connection, &mut pending, principal, by).await,
                ),
                Job::CreateToken {
                    principal,
                    ttl_seconds,
                    by,
                    reply,
                } => Done::Token(
                    reply,
                    create_token(connection, &mut pending, principal, ttl_seconds, by).await,
                ),
                Job::SetGroups {
                    principal,
                    groups,
                    by,
                    reply,
                } => Done::Principal(
                    reply,
                    set_groups(connection, &mut pending, &principal, groups, by).await,
                ),
                Job::GrantDelegation { grant, by, reply } => Done::Delegation(
                    reply,
                    grant_delegation(connection, &mut pending, grant, by).await,
                ),
                Job::RevokeDelegation {
                    grant_id,
                    by,
                    reply,
                } => Done::Delegation(
                    reply,
                    revoke_delegation(connection, &mut pending, &grant_id, by).await,
                ),
                Job::RecordLegacyAdmin { reply } => {
                    Done::Legacy(reply, record_legacy_admin(connection, &mut pending).await)
                }
                Job::AdoptPolicy {
                    policy,
                    source,
                    reply,
                } => {
                    // Earlier writes of the batch first, so the record's head
                    // is read from the database.
                    flush(connection, &mut pending).await?;
                    Done::Adopted(
                        reply,
                        adopt_policy(connection, &mut pending, &policy, &source).await,
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
                Job::RetryDelivery { delivery_id, reply } => {
                    // Results of this batch first, so a retry sees them.
                    flush(connection, &mut pending).await?;
                    Done::Retried(reply, retry_delivery(connection, &delivery_id).await)
                }
                Job::ClaimOrigin { origin, reply } => {
                    Done::Origin(reply, claim_origin(connection, &origin).await)
                }
                Job::Durability { reply } => {
                    Done::Durability(reply, durability(connection).await)
                }
                Job::RevokeToken {
                    token_id,
                    by,
                    reply,
                } => Done::Revocation(
                    reply,
                    revoke_token(connection, &mut pending, &token_id, by).await,
                ),
                Job::Checkpoint {
                    origin,
                    signers,
                    known,
                    reply,
                } => {
                    // Events decided earlier in this batch are flushed first,
                    // so the checkpoint covers them.
                    flush(connection, &mut pending).await?;
                    Done::Checkpoint(
                        reply,
                        sign_checkpoint(
                            connection,
                            pending.next_log_index,
                            &origin,
                            &signers,
                            &known,
                        )
                        .await,
                    )
                }
            });
        }
        flush(connection, &mut pending).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
        Ok(())
    }
    .await;
    let appended = pending.total_appended;
    match result {
        Ok(()) => {
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
    Ok(next as u64)
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
    for chunk in writes.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT principal_id, key, fingerprint, response FROM idempotency WHERE (principal_id, key) IN (VALUES ",
        );
        for (position, write) in chunk.iter().enumerate() {
            if position > 0 {
                query.push(", ");
            }
            query.push("(");
            query.push_bind(write.actor.principal.to_string());
            query.push(", ");
            query.push_bind(write.idempotency_key.clone());
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
    for chunk in case_ids.chunks(ROWS_PER_STATEMENT) {
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

/// Decides one case write against the stored state and the batch's pending
/// state. On success the write's event, projection and idempotency record are
/// in `pending`; on refusal nothing is.
async fn decide_case(
    connection: &mut Conn,
    prefetched: &Prefetched,
    pending: &mut Pending,
    write: &CaseWrite,
) -> Result<WriteOutcome, StoreError> {
    let fingerprint = write.command.fingerprint().to_hex();
    let principal = write.actor.principal.as_str();
    let idempotency_key = (principal.to_string(), write.idempotency_key.clone());

    let previous = match pending.idempotency.get(&idempotency_key) {
        Some(record) => Some((record.fingerprint.clone(), record.outcome.clone())),
        None => match prefetched.idempotency.get(&idempotency_key) {
            Some((stored_fingerprint, response)) => {
                let outcome: WriteOutcome = serde_json::from_str(response)
                    .map_err(|error| StoreError::Corrupt(format!("idempotency record: {error}")))?;
                Some((stored_fingerprint.clone(), outcome))
            }
            None => None,
        },
    };
    if let Some((stored_fingerprint, mut outcome)) = previous {
        if stored_fingerprint != fingerprint {
            return Err(StoreError::Refused(Refusal {
                rule: Code::IdempotencyKeyReused,
                message: format!(
                    "idempotency key `{}` was already used by {principal} for a different write",
                    write.idempotency_key
                ),
                hint: Some("use a new idempotency key for a new write".to_string()),
            }));
        }
        outcome.replayed = true;
        return Ok(outcome);
    }

    let recorded_at = Timestamp::now();
    // A vendor acts only under a delegation grant in force now, as recorded:
    // re-decided here, under the write lock, so a revocation decided before
    // (even earlier in this batch) is never missed.
    let vendor_write;
    let write = if write.actor.kind == PrincipalKind::Vendor {
        let change = match &write.command {
            CaseCommand::Client(ClientCommand::Open(
                Opening::Request { change, .. } | Opening::BreakGlass { change, .. },
            )) => Some(change.clone()),
            command => match command.case_ids().first() {
                Some(case_id) => Some(current_view(prefetched, pending, case_id)?.change),
                None => None,
            },
        };
        match change {
            Some(change) => {
                vendor_write = CaseWrite {
                    actor: vendor_actor(connection, &write.actor, &change, recorded_at).await?,
                    ..write.clone()
                };
                &vendor_write
            }
            None => write,
        }
    } else {
        write
    };
    let outcome = match &write.command {
        CaseCommand::Client(ClientCommand::Open(Opening::Request {
            change,
            justification,
            ticket,
            rule,
        })) => {
            if let Some(ticket) = ticket {
                if let Some(existing) = active_case_with_ticket(connection, pending, ticket).await?
                {
                    let outcome = WriteOutcome {
                        case_id: existing.case_id.clone(),
                        state: existing.state,
                        appended: Vec::new(),
                        replayed: false,
                        existing: true,
                    };
                    remember(pending, idempotency_key, fingerprint, &outcome, recorded_at);
                    return Ok(outcome);
                }
            }
            if let Some(duplicate) = active_case_for_change(connection, pending, change).await? {
                return Err(StoreError::Refused(Refusal {
                    rule: Code::CaseDuplicateOpen,
                    message: format!(
                        "case {duplicate} is already open for {change}; a second request would split the trail"
                    ),
                    hint: Some(format!(
                        "follow case {duplicate} (`custody show {duplicate}`), or wait until it is reviewed or denied"
                    )),
                }));
            }
            let draft =
                lifecycle::request(change.clone(), justification.clone(), ticket.clone(), rule)
                    .map_err(StoreError::Refused)?;
            let case_id = CaseId::generate();
            let routing = pending.routing.clone();
            let (event, bytes, hash, outbox) =
                seal(write, &routing, None, &case_id, 1, None, draft, recorded_at);
            // Safe: `seal` made a request event, which always opens a view.
            let view =
                CaseView::open_hashed(&event, hash).expect("a request event always opens a case");
            let state = view.state;
            let mut appended = vec![push_event(pending, event, bytes, outbox)];
            pending.views.insert(case_id.clone(), view);
            if let Some(ticket) = ticket {
                appended.extend(
                    join_held_evidence(connection, pending, write, ticket, &case_id, recorded_at)
                        .await?,
                );
            }
            WriteOutcome {
                case_id,
                state,
                appended,
                replayed: false,
                existing: false,
            }
        }
        CaseCommand::Client(ClientCommand::Open(Opening::BreakGlass {
            change,
            justification,
            ticket,
            rule,
            change_set,
        })) => {
            // An emergency is never refused as a duplicate: an open request
            // for the same change may be exactly what could not wait.
            let [request, invoked, execution] = lifecycle::break_glass(
                change.clone(),
                justification.clone(),
                ticket.clone(),
                rule,
                change_set.clone(),
                recorded_at,
            )
            .map_err(StoreError::Refused)?;
            let case_id = CaseId::generate();
            // The emergency's request asks nobody to approve: the invocation
            // tells security and the reviewers instead.
            let (event, bytes, hash, _) = seal(
                write,
                &Routing::default(),
                None,
                &case_id,
                1,
                None,
                request,
                recorded_at,
            );
            // Safe: `lifecycle::break_glass` starts with a request event.
            let view =
                CaseView::open_hashed(&event, hash).expect("a request event always opens a case");
            let mut appended = vec![push_event(pending, event, bytes, Vec::new())];
            let (second, _) = append_draft(write, pending, view, invoked, recorded_at);
            appended.push(second);
            let view = current_view(prefetched, pending, &case_id)?;
            let (third, state) = append_draft(write, pending, view, execution, recorded_at);
            appended.push(third);
            WriteOutcome {
                case_id,
                state,
                appended,
                replayed: false,
                existing: false,
            }
        }
        CaseCommand::Client(ClientCommand::Merge(merge)) => {
            let duplicate = &merge.duplicate;
            let duplicate_view = current_view(prefetched, pending, duplicate)?;
            let survivor_view = current_view(prefetched, pending, &merge.into)?;
            let (duplicate_draft, survivor_draft) = merge
                .decide(&duplicate_view, &survivor_view, &write.actor)
                .map_err(StoreError::Refused)?;
            // Both halves of the link in one job, so they commit together.
            let first = append_draft(write, pending, duplicate_view, duplicate_draft, recorded_at);
            let second = append_draft(write, pending, survivor_view, survivor_draft, recorded_at);
            WriteOutcome {
                case_id: duplicate.clone(),
                state: first.1,
                appended: vec![first.0, second.0],
                replayed: false,
                existing: false,
            }
        }
        CaseCommand::Client(ClientCommand::Step(
            step @ CaseStep::Review {
                case_id,
                outcome: ReviewOutcome::Revoke,
                revocation_rule: Some(rule),
                ..
            },
        )) => {
            // The review, then the revocation case it opens, linked both ways,
            // all in this one job.
            let view = current_view(prefetched, pending, case_id)?;
            let review = step
                .decide(&view, &write.actor)
                .map_err(StoreError::Refused)?;
            let (reviewed, _) = append_draft(write, pending, view, review, recorded_at);
            let new_case = CaseId::generate();
            let (request, opened_by, opened) = lifecycle::open_revocation(
                &current_view(prefetched, pending, case_id)?,
                rule,
                &new_case,
            )
            .map_err(StoreError::Refused)?;
            let routing = pending.routing.clone();
            let (event, bytes, hash, outbox) =
                seal(write, &routing, None, &new_case, 1, None, request, recorded_at);
            // Safe: `open_revocation` starts the new case with a request.
            let new_view =
                CaseView::open_hashed(&event, hash).expect("a request event always opens a case");
            let opened_request = push_event(pending, event, bytes, outbox);
            let (linked_back, _) = append_draft(write, pending, new_view, opened_by, recorded_at);
            let view = current_view(prefetched, pending, case_id)?;
            let (linked, state) = append_draft(write, pending, view, opened, recorded_at);
            WriteOutcome {
                case_id: case_id.clone(),
                state,
                appended: vec![reviewed, opened_request, linked_back, linked],
                replayed: false,
                existing: false,
            }
        }
        CaseCommand::Client(ClientCommand::Open(Opening::HoldEvidence { ticket, evidence })) => {
            hold_evidence(connection, pending, write, ticket, evidence, recorded_at).await?
        }
        CaseCommand::Client(ClientCommand::Step(step)) => {
            let case_id = step.case_id();
            let view = current_view(prefetched, pending, case_id)?;
            let draft = step
                .decide(&view, &write.actor)
                .map_err(StoreError::Refused)?;
            let (appended, state) = append_draft(write, pending, view, draft, recorded_at);
            WriteOutcome {
                case_id: case_id.clone(),
                state,
                appended: vec![appended],
                replayed: false,
                existing: false,
            }
        }
        CaseCommand::Ledger(command) => {
            let case_id = command.case_id();
            if let LedgerCommand::RecordDelivery {
                attempt,
                next_attempt_at,
                ..
            } = command
            {
                let outbox_state = match attempt.outcome {
                    custody_core::event::DeliveryOutcome::Delivered => "delivered",
                    custody_core::event::DeliveryOutcome::Failed => "pending",
                    custody_core::event::DeliveryOutcome::Dead => "dead",
                };
                pending.outbox_updates.push(OutboxUpdate {
                    delivery_id: attempt.delivery_id.clone(),
                    state: outbox_state,
                    attempts: attempt.attempt,
                    next_attempt_at: next_attempt_at.unwrap_or(recorded_at),
                    last_error: attempt.error.clone(),
                });
            }
            let view = current_view(prefetched, pending, case_id)?;
            let mut state = view.state;
            let drafts = command
                .decide(&view, &write.actor, recorded_at)
                .map_err(StoreError::Refused)?;
            let mut appended = Vec::new();
            for draft in drafts {
                let view = current_view(prefetched, pending, case_id)?;
                let (event, new_state) = append_draft(write, pending, view, draft, recorded_at);
                appended.push(event);
                state = new_state;
            }
            WriteOutcome {
                case_id: case_id.clone(),
                state,
                appended,
                replayed: false,
                existing: false,
            }
        }
    };
    remember(pending, idempotency_key, fingerprint, &outcome, recorded_at);
    Ok(outcome)
}

/// The active case carrying `ticket`, looking at the batch's pending cases
/// before the stored ones (a stored case may have changed state in this batch).
async fn active_case_with_ticket(
    connection: &mut Conn,
    pending: &Pending,
    ticket: &custody_core::model::Ticket,
) -> Result<Option<CaseView>, StoreError> {
    if let Some(view) = pending
        .views
        .values()
        .find(|view| view.state.is_active() && view.ticket.as_ref() == Some(ticket))
    {
        return Ok(Some(view.clone()));
    }
    let stored: Option<Vec<u8>> = sqlx::query_scalar(concat!(
        "SELECT view FROM cases WHERE ticket = $1 AND state IN ",
        crate::writer::active_states_sql!(),
        " ORDER BY opened_at LIMIT 1"
    ))
    .bind(ticket.to_string())
    .fetch_optional(&mut *connection)
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let view: CaseView = serde_json::from_slice(&stored)
        .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))?;
    Ok(match pending.views.get(&view.case_id) {
        Some(newer) if !newer.state.is_active() => None,
        Some(newer) => Some(newer.clone()),
        None => Some(view),
    })
}

/// The active case for the same change, if any (see [`change_key`]).
async fn active_case_for_change(
    connection: &mut Conn,
    pending: &Pending,
    change: &Change,
) -> Result<Option<CaseId>, StoreError> {
    let key = change_key(change);
    if let Some(view) = pending
        .views
        .values()
        .find(|view| view.state.is_active() && change_key(&view.change) == key)
    {
        return Ok(Some(view.case_id.clone()));
    }
    let stored: Option<String> = sqlx::query_scalar(concat!(
        "SELECT case_id FROM cases WHERE change_key = $1 AND state IN ",
        crate::writer::active_states_sql!(),
        " LIMIT 1"
    ))
    .bind(&key)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let case_id: CaseId = parse_stored(&stored)?;
    Ok(match pending.views.get(&case_id) {
        Some(newer) if !newer.state.is_active() => None,
        _ => Some(case_id),
    })
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
    let created_at = Timestamp::now();
    sqlx::query("INSERT INTO checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)")
        .bind(size as i64)
        .bind(root.to_vec())
        .bind(&note)
        .bind(created_at.to_string())
        .execute(&mut *connection)
        .await?;
    Ok(Some(StoredCheckpoint {
        size,
        root,
        note,
        created_at: created_at.to_string(),
    }))
}

/// Writes the batch's events and their Merkle log nodes, projections and
/// idempotency records, and empties the pending state (the batch may flush
/// more than once: before a checkpoint, and at the end).
async fn flush(
    connection: &mut Conn,
    pending: &mut Pending,
) -> Result<(), sqlx::Error> {
    let appended = pending.events.len() as u64;
    pending.total_appended += appended;
    if appended > 0 && pending.merkle_log {
        let size = pending.next_log_index - appended;
        let leaf_hashes: Vec<custody_log::Hash> = pending
            .events
            .iter()
            .map(|pending_event| custody_log::leaf_hash(&pending_event.bytes))
            .collect();
        append_leaves(connection, size, &leaf_hashes).await?;
    }
    for chunk in pending.events.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) ",
        );
        insert.push_values(chunk, |mut row, pending_event| {
            let event = &pending_event.event;
            row.push_bind(pending_event.log_index as i64)
                .push_bind(event.event_id.to_string())
                .push_bind(event.case_id.to_string())
                .push_bind(event.seq as i64)
                .push_bind(event.body.kind_name())
                .push_bind(event.recorded_at.to_string())
                .push_bind(pending_event.bytes.clone());
        });
        insert.build().execute(&mut *connection).await?;
    }

    let views: Vec<&CaseView> = pending.views.values().collect();
    for chunk in views.chunks(ROWS_PER_STATEMENT) {
        let mut upsert: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO cases (case_id, state, change_key, ticket, requester, summary, opened_at, updated_at, head_seq, head_hash, next_deadline, view) ",
        );
        let mut encode_error = None;
        upsert.push_values(chunk, |mut row, view| {
            let encoded = serde_json::to_vec(view).unwrap_or_else(|error| {
                encode_error = Some(error.to_string());
                Vec::new()
            });
            row.push_bind(view.case_id.to_string())
                .push_bind(view.state.as_str())
                .push_bind(change_key(&view.change))
                .push_bind(view.ticket.as_ref().map(ToString::to_string))
                .push_bind(view.requester.principal.to_string())
                .push_bind(view.change.to_string())
                .push_bind(view.opened_at.to_string())
                .push_bind(view.updated_at.to_string())
                .push_bind(view.head_seq as i64)
                .push_bind(view.head_hash.to_hex())
                .push_bind(view.next_deadline().map(|deadline| deadline.to_string()))
                .push_bind(encoded);
        });
        if let Some(error) = encode_error {
            return Err(sqlx::Error::Protocol(format!(
                "cannot encode a case projection: {error}"
            )));
        }
        upsert.push(
            " ON CONFLICT (case_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,
              head_seq = excluded.head_seq, head_hash = excluded.head_hash,
              next_deadline = excluded.next_deadline, view = excluded.view",
        );
        upsert.build().execute(&mut *connection).await?;
    }

    let records: Vec<(&(String, String), &PendingIdempotency)> = pending
        .idempotency
        .iter()
        .filter(|(_, record)| !record.flushed)
        .collect();
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
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
    let rows: Vec<&OutboxRow> = pending
        .events
        .iter()
        .flat_map(|pending_event| pending_event.outbox.iter())
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
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
    let now = Timestamp::now().to_string();
    for update in pending.outbox_updates.drain(..) {
        sqlx::query(
            "UPDATE outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE delivery_id = $6",
        )
        .bind(update.state)
        .bind(i64::from(update.attempts))
        .bind(update.next_attempt_at.to_string())
        .bind(update.last_error)
        .bind(&now)
        .bind(update.delivery_id)
        .execute(&mut *connection)
        .await?;
    }
    for (ticket, record, released_to, new) in pending.record_updates.drain(..) {
        if new {
            sqlx::query(
                "INSERT INTO evidence_records (ticket, case_id, released_to, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(ticket)
            .bind(record.to_string())
            .bind(released_to.map(|case| case.to_string()))
            .bind(Timestamp::now().to_string())
            .execute(&mut *connection)
            .await?;
        } else {
            sqlx::query("UPDATE evidence_records SET released_to = $1 WHERE ticket = $2")
                .bind(released_to.map(|case| case.to_string()))
                .bind(ticket)
                .execute(&mut *connection)
                .await?;
        }
    }
    // Written: a later flush of the same batch must not insert them again.
    // (Projections stay: later writes of the batch chain on them, and
    // upserting them again is harmless.)
    pending.events.clear();
    for record in pending.idempotency.values_mut() {
        record.flushed = true;
    }
    Ok(())
}

/// The head of the administration record, from the batch or the database;
/// `None` while the deployment has none.
async fn admin_head(
    connection: &mut Conn,
    pending: &Pending,
) -> Result<Option<AdminHead>, StoreError> {
    if let Some(head) = &pending.admin_head {
        return Ok(Some(head.clone()));
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
    Ok(Some(AdminHead {
        case_id: parse_stored(&record)?,
        seq: event.seq,
        hash: Sha256Hash::of(&head),
        // The writer lets `system` act only while every event before is its
        // own, so a head by `system` means the record is still opening.
        opening: event.actor.principal.as_str() == custody_core::model::SYSTEM_PRINCIPAL,
    }))
}

/// Whether `actor` is an admin as the administration record stands (its
/// projection, written in the same transactions), and whether the record
/// is still in its opening.
async fn admin_standing(
    connection: &mut Conn,
    pending: &Pending,
    actor: &custody_core::Actor,
) -> Result<(bool, bool), StoreError> {
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
    let opening = admin_head(connection, pending)
        .await?
        .is_none_or(|head| head.opening);
    Ok((is_admin, opening))
}

/// Appends `draft`, acted by `actor`, to the administration record
/// (creating the record on first use).
async fn append_admin(
    connection: &mut Conn,
    pending: &mut Pending,
    actor: &custody_core::Actor,
    draft: lifecycle::Draft,
    recorded_at: Timestamp,
) -> Result<AppendedEvent, StoreError> {
    let (case_id, seq, prev_hash, opening) = match admin_head(connection, pending).await? {
        Some(head) => (head.case_id, head.seq + 1, Some(head.hash), head.opening),
        None => {
            let case_id = CaseId::generate();
            sqlx::query(
                "INSERT INTO deployment (key, value, created_at) VALUES ('admin_record', $1, $2)",
            )
            .bind(case_id.as_str())
            .bind(recorded_at.to_string())
            .execute(&mut *connection)
            .await?;
            (case_id, 1, None, true)
        }
    };
    let event = draft.seal(
        actor.clone(),
        lifecycle::Placement {
            case_id: case_id.clone(),
            seq,
            prev_hash,
            recorded_at,
            occurred_at: None,
            idempotency_key: None,
        },
    );
    let bytes = event.canonical_bytes();
    let hash = Sha256Hash::of(&bytes);
    pending.admin_head = Some(AdminHead {
        case_id,
        seq,
        hash,
        opening: opening && is_system_actor(actor),
    });
    Ok(push_event(pending, event, bytes, Vec::new()))
}

fn is_system_actor(actor: &custody_core::Actor) -> bool {
    actor.principal.as_str() == custody_core::model::SYSTEM_PRINCIPAL
}

async fn add_principal(
    connection: &mut Conn,
    pending: &mut Pending,
    principal: Principal,
    by: Option<custody_core::Actor>,
) -> Result<Principal, StoreError> {
    let actor = by.unwrap_or_else(custody_core::Actor::system);
    let (is_admin, opening) = admin_standing(connection, pending, &actor).await?;
    custody_core::admin::may_administer(&actor, is_admin, opening).map_err(StoreError::Refused)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT principal_id FROM principals WHERE principal_id = $1")
            .bind(principal.id.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    if exists.is_some() {
        return Err(StoreError::PrincipalExists(principal.id.to_string()));
    }
    let groups = serde_json::to_string(&principal.groups)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let recorded_at = Timestamp::now();
    let by_system = is_system_actor(&actor);
    sqlx::query(
        "INSERT INTO principals (principal_id, display_name, kind, groups_json, org, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(principal.id.as_str())
    .bind(&principal.display_name)
    .bind(principal.kind.as_str())
    .bind(groups)
    .bind(&principal.org)
    .bind(recorded_at.to_string())
    .bind((!by_system).then(|| actor.principal.as_str()))
    .execute(&mut *connection)
    .await?;
    append_admin(
        connection,
        pending,
        &actor,
        custody_core::admin::principal_added(&principal, by_system),
        recorded_at,
    )
    .await?;
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
) -> Result<Principal, StoreError> {
    let (is_admin, opening) = admin_standing(connection, pending, &by).await?;
    custody_core::admin::may_administer(&by, is_admin, opening).map_err(StoreError::Refused)?;
    let row = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals WHERE principal_id = $1",
    )
    .bind(principal.as_str())
    .fetch_optional(&mut *connection)
    .await?
    .ok_or_else(|| StoreError::PrincipalNotFound(principal.to_string()))?;
    let mut stored = principal_from_row(&row)?;
    if stored.groups == groups {
        return Ok(stored);
    }
    let previous = std::mem::replace(&mut stored.groups, groups);
    let encoded = serde_json::to_string(&stored.groups)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    sqlx::query("UPDATE principals SET groups_json = $1 WHERE principal_id = $2")
        .bind(encoded)
        .bind(principal.as_str())
        .execute(&mut *connection)
        .await?;
    let by_system = is_system_actor(&by);
    append_admin(
        connection,
        pending,
        &by,
        custody_core::admin::principal_groups_changed(
            principal,
            &previous,
            &stored.groups,
            by_system,
        ),
        Timestamp::now(),
    )
    .await?;
    Ok(stored)
}

async fn create_token(
    connection: &mut Conn,
    pending: &mut Pending,
    principal: PrincipalId,
    ttl_seconds: Option<u64>,
    by: Option<custody_core::Actor>,
) -> Result<IssuedToken, StoreError> {
    let actor = by.unwrap_or_else(custody_core::Actor::system);
    let (is_admin, opening) = admin_standing(connection, pending, &actor).await?;
    custody_core::admin::may_administer(&actor, is_admin, opening).map_err(StoreError::Refused)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT principal_id FROM principals WHERE principal_id = $1")
            .bind(principal.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    if exists.is_none() {
        return Err(StoreError::PrincipalNotFound(principal.to_string()));
    }
    let mut secret = [0u8; 32];
    let mut public = [0u8; 8];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut public))
        .map_err(|error| StoreError::Corrupt(format!("no randomness available: {error}")))?;
    let token = format!("{TOKEN_PREFIX}{}", custody_core::hex::encode(&secret));
    let token_id = format!("tok_{}", custody_core::hex::encode(&public));
    let now = Timestamp::now();
    let expires_at = ttl_seconds.map(|seconds| now.plus_seconds(seconds as i64));
    let digest = Sha256Hash::of(token.as_bytes());
    let by_system = is_system_actor(&actor);
    sqlx::query(
        "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at, expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token_id)
    .bind(principal.as_str())
    .bind(digest.0.to_vec())
    .bind(now.to_string())
    .bind(expires_at.map(|at| at.to_string()))
    .bind((!by_system).then(|| actor.principal.as_str()))
    .execute(&mut *connection)
    .await?;
    append_admin(
        connection,
        pending,
        &actor,
        custody_core::admin::token_issued(
            &token_id,
            &principal,
            &digest.to_hex(),
            expires_at,
            by_system,
        ),
        now,
    )
    .await?;
    Ok(IssuedToken {
        token_id,
        token,
        principal: principal.to_string(),
        expires_at,
    })
}

/// Revokes a token, decided under the write lock: a revoked token is
/// returned unchanged and nothing is appended.
async fn revoke_token(
    connection: &mut Conn,
    pending: &mut Pending,
    token_id: &str,
    by: custody_core::Actor,
) -> Result<TokenInfo, StoreError> {
    let token = stored_token(connection, token_id).await?;
    if token.revoked_at.is_some() {
        return Ok(token);
    }
    let owner: PrincipalId = parse_stored(&token.principal)?;
    let (is_admin, opening) = admin_standing(connection, pending, &by).await?;
    custody_core::admin::may_revoke_token(&by, is_admin, opening, &owner)
        .map_err(StoreError::Refused)?;
    let now = Timestamp::now();
    sqlx::query(
        "UPDATE tokens SET revoked_at = $1, revoked_by = $2 WHERE token_id = $3 AND revoked_at IS NULL",
    )
    .bind(now.to_string())
    .bind(by.principal.as_str())
    .bind(token_id)
    .execute(&mut *connection)
    .await?;
    let by_system = is_system_actor(&by);
    append_admin(
        connection,
        pending,
        &by,
        custody_core::admin::token_revoked(token_id, &owner, by_system),
        now,
    )
    .await?;
    stored_token(connection, token_id).await
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
    mut grant: DelegationGrant,
    by: custody_core::Actor,
) -> Result<DelegationGrant, StoreError> {
    let (is_admin, opening) = admin_standing(connection, pending, &by).await?;
    custody_core::admin::may_administer(&by, is_admin, opening).map_err(StoreError::Refused)?;
    let now = Timestamp::now();
    grant.granted_at = now;
    grant.granted_by = by.principal.clone();
    grant.revoked_at = None;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT grant_id FROM delegations WHERE grant_id = $1")
            .bind(&grant.grant_id)
            .fetch_optional(&mut *connection)
            .await?;
    if exists.is_some() {
        return Err(StoreError::InvalidRequest(format!(
            "delegation grant {} exists already",
            grant.grant_id
        )));
    }
    let json = serde_json::to_string(&grant)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a grant: {error}")))?;
    sqlx::query("INSERT INTO delegations (grant_id, vendor_org, grant_json) VALUES ($1, $2, $3)")
        .bind(&grant.grant_id)
        .bind(&grant.vendor_org)
        .bind(json)
        .execute(&mut *connection)
        .await?;
    let by_system = is_system_actor(&by);
    append_admin(
        connection,
        pending,
        &by,
        custody_core::admin::delegation_granted(&grant, by_system),
        now,
    )
    .await?;
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
    json.map(|json| {
        serde_json::from_str(&json)
            .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))
    })
    .transpose()
}

/// Revokes a delegation grant, decided under the write lock against the
/// grant as recorded: a grant revoked already keeps its first revocation
/// time, is returned as it is, and nothing is appended.
async fn revoke_delegation(
    connection: &mut Conn,
    pending: &mut Pending,
    grant_id: &str,
    by: custody_core::Actor,
) -> Result<DelegationGrant, StoreError> {
    let mut grant = stored_grant(connection, grant_id).await?.ok_or_else(|| {
        StoreError::InvalidRequest(format!("delegation grant {grant_id} does not exist"))
    })?;
    let (is_admin, opening) = admin_standing(connection, pending, &by).await?;
    custody_core::admin::may_administer(&by, is_admin, opening).map_err(StoreError::Refused)?;
    if grant.revoked_at.is_some() {
        return Ok(grant);
    }
    let now = Timestamp::now();
    grant.revoked_at = Some(now);
    let json = serde_json::to_string(&grant)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a grant: {error}")))?;
    sqlx::query("UPDATE delegations SET grant_json = $1 WHERE grant_id = $2")
        .bind(json)
        .bind(grant_id)
        .execute(&mut *connection)
        .await?;
    let by_system = is_system_actor(&by);
    append_admin(
        connection,
        pending,
        &by,
        custody_core::admin::delegation_revoked(grant_id, now, by_system),
        now,
    )
    .await?;
    Ok(grant)
}

/// Records, by `system`, the principals, tokens and delegation grants of a
/// data directory made before administration was on the record: once, when
/// the store has such rows and no administration record.
async fn record_legacy_admin(
    connection: &mut Conn,
    pending: &mut Pending,
) -> Result<u64, StoreError> {
    if admin_head(connection, pending).await?.is_some() {
        return Ok(0);
    }
    let system = custody_core::Actor::system();
    let now = Timestamp::now();
    let mut appended = 0;
    let principals = sqlx::query(
        "SELECT principal_id, display_name, kind, groups_json, org FROM principals ORDER BY created_at, principal_id",
    )
    .fetch_all(&mut *connection)
    .await?;
    for row in &principals {
        let principal = principal_from_row(row)?;
        let draft = custody_core::admin::principal_added(&principal, true);
        append_admin(connection, pending, &system, draft, now).await?;
        appended += 1;
    }
    let tokens = sqlx::query(
        "SELECT token_id, principal_id, secret_sha256, expires_at, revoked_at FROM tokens ORDER BY created_at, token_id",
    )
    .fetch_all(&mut *connection)
    .await?;
    for row in &tokens {
        let token_id: String = row.try_get("token_id")?;
        let principal: PrincipalId = parse_stored(&row.try_get::<String, _>("principal_id")?)?;
        let digest: Vec<u8> = row.try_get("secret_sha256")?;
        let expires_at: Option<String> = row.try_get("expires_at")?;
        let expires_at = expires_at
            .map(|at| Timestamp::parse(&at).map_err(|error| StoreError::Corrupt(error.to_string())))
            .transpose()?;
        let revoked_at: Option<String> = row.try_get("revoked_at")?;
        let draft = custody_core::admin::token_issued(
            &token_id,
            &principal,
            &custody_core::hex::encode(&digest),
            expires_at,
            true,
        );
        append_admin(connection, pending, &system, draft, now).await?;
        appended += 1;
        if revoked_at.is_some() {
            let draft = custody_core::admin::token_revoked(&token_id, &principal, true);
            append_admin(connection, pending, &system, draft, now).await?;
            appended += 1;
        }
    }
    let grants: Vec<String> =
        sqlx::query_scalar("SELECT grant_json FROM delegations ORDER BY grant_id")
            .fetch_all(&mut *connection)
            .await?;
    for json in &grants {
        let grant: DelegationGrant = serde_json::from_str(json)
            .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))?;
        let draft = custody_core::admin::delegation_granted(&grant, true);
        append_admin(connection, pending, &system, draft, now).await?;
        appended += 1;
        if let Some(revoked_at) = grant.revoked_at {
            let draft =
                custody_core::admin::delegation_revoked(&grant.grant_id, revoked_at.min(now), true);
            append_admin(connection, pending, &system, draft, now).await?;
            appended += 1;
        }
    }
    Ok(appended)
}

/// The actor of a vendor's case write, decided under the write lock: the
/// delegation grant in force now (as recorded, so a revocation decided
/// earlier, even in the same batch, is seen) that covers `change`, and the
/// party it acts for; or the refusal.
async fn vendor_actor(
    connection: &mut Conn,
    actor: &custody_core::Actor,
    change: &Change,
    now: Timestamp,
) -> Result<custody_core::Actor, StoreError> {
    let org = actor.org.clone().unwrap_or_default();
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT grant_json FROM delegations WHERE vendor_org = $1 ORDER BY grant_id")
            .bind(&org)
            .fetch_all(&mut *connection)
            .await?;
    let grants = rows
        .iter()
        .map(|json| {
            serde_json::from_str::<DelegationGrant>(json)
                .map_err(|error| StoreError::Corrupt(format!("delegation grant: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let principal = Principal {
        id: actor.principal.clone(),
        display_name: actor.principal.to_string(),
        kind: actor.kind,
        groups: actor.groups.clone(),
        org: actor.org.clone(),
    };
    // The grant the server chose, if it is still in force and covers the
    // change; else whichever grant does.
    let chosen = actor
        .delegation_grant
        .as_ref()
        .and_then(|id| grants.iter().find(|grant| &grant.grant_id == id))
        .filter(|grant| {
            grant.revoked_at.is_none()
                && now < grant.valid_until
                && grant.applies_to(&principal)
                && grant.covers(change)
        });
    let grant = match chosen {
        Some(grant) => grant,
        None => match custody_core::delegation::grant_for(&grants, &principal, change, now)
            .map_err(StoreError::Refused)?
        {
            Some(grant) => grant,
            None => return Ok(actor.clone()),
        },
    };
    let mut actor = actor.clone();
    actor.delegation_grant = Some(grant.grant_id.clone());
    actor.on_behalf_of = Some(grant.on_behalf_of.clone());
    Ok(actor)
}

/// Records `origin` as the log's origin unless one is recorded already, and
/// returns the recorded one.
async fn claim_origin(connection: &mut Conn, origin: &str) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO deployment (key, value, created_at) VALUES ('log_origin', $1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(origin)
    .bind(Timestamp::now().to_string())
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
    let applied = async {
        sqlx::raw_sql(SCHEMA_VERSION_TABLE)
            .execute(&mut *connection)
            .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
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
        Ok::<(), sqlx::Error>(())
    }
    .await;
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

/// Appends a `policy_adopted` event to the deployment's policy record
/// (creating the record on first use) unless `policy` is the one it recorded
/// last.
async fn adopt_policy(
    connection: &mut Conn,
    pending: &mut Pending,
    policy: &custody_core::policy::Policy,
    source: &str,
) -> Result<Option<AppendedEvent>, StoreError> {
    let record: Option<String> =
        sqlx::query_scalar("SELECT value FROM deployment WHERE key = 'policy_record'")
            .fetch_optional(&mut *connection)
            .await?;
    let (case_id, seq, prev_hash, previous_policy) = match record {
        Some(case_id) => {
            let head: Vec<u8> = sqlx::query_scalar(
                "SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&case_id)
            .fetch_optional(&mut *connection)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("the policy record {case_id} has no events"))
            })?;
            let event = Event::decode(&head).map_err(|error| {
                StoreError::Corrupt(format!("the policy record's latest event: {error}"))
            })?;
            let custody_core::event::EventBody::PolicyAdopted(adopted) = &event.body else {
                return Err(StoreError::Corrupt(format!(
                    "the policy record {case_id} ends with a {} event",
                    event.body.kind_name()
                )));
            };
            if adopted.policy_hash == policy.hash() {
                return Ok(None);
            }
            (
                parse_stored::<CaseId>(&case_id)?,
                event.seq + 1,
                Some(Sha256Hash::of(&head)),
                Some(adopted.policy_hash),
            )
        }
        None => {
            let case_id = CaseId::generate();
            sqlx::query(
                "INSERT INTO deployment (key, value, created_at) VALUES ('policy_record', $1, $2)",
            )
            .bind(case_id.as_str())
            .bind(Timestamp::now().to_string())
            .execute(&mut *connection)
            .await?;
            (case_id, 1, None, None)
        }
    };
    let event = lifecycle::adopt_policy(policy, previous_policy, source).seal(
        custody_core::model::Actor::system(),
        lifecycle::Placement {
            case_id,
            seq,
            prev_hash,
            recorded_at: Timestamp::now(),
            occurred_at: None,
            idempotency_key: None,
        },
    );
    let bytes = event.canonical_bytes();
    Ok(Some(push_event(pending, event, bytes, Vec::new())))
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

/// Makes a pending or dead notification due now.
async fn retry_delivery(
    connection: &mut Conn,
    delivery_id: &str,
) -> Result<crate::OutboxEntry, StoreError> {
    let missing = || StoreError::InvalidRequest(format!("notification {delivery_id} does not exist"));
    let entry = outbox_entry(&mut *connection, delivery_id)
        .await?
        .ok_or_else(missing)?;
    if entry.state == "delivered" {
        return Err(StoreError::Refused(Refusal {
            rule: Code::NotifyAlreadyDelivered,
            message: format!(
                "notification {delivery_id} was delivered already; a retry would send it again"
            ),
            hint: Some("`custody notifications CASE` lists its attempts".to_string()),
        }));
    }
    let now = Timestamp::now().to_string();
    sqlx::query(
        "UPDATE outbox SET state = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE delivery_id = $2",
    )
    .bind(&now)
    .bind(delivery_id)
    .execute(&mut *connection)
    .await?;
    outbox_entry(&mut *connection, delivery_id)
        .await?
        .ok_or_else(missing)
}

/// The evidence record of `ticket`, from the batch or the database: its case
/// and the case it was released to.
async fn record_for_ticket(
    connection: &mut Conn,
    pending: &Pending,
    ticket: &str,
) -> Result<Option<(CaseId, Option<CaseId>)>, StoreError> {
    if let Some(found) = pending.records.get(ticket) {
        return Ok(Some(found.clone()));
    }
    let row = sqlx::query("SELECT case_id, released_to FROM evidence_records WHERE ticket = $1")
        .bind(ticket)
        .fetch_optional(&mut *connection)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let record: String = row.try_get("case_id")?;
    let released: Option<String> = row.try_get("released_to")?;
    Ok(Some((
        parse_stored(&record)?,
        released.map(|case| parse_stored(&case)).transpose()?,
    )))
}

/// The events of an evidence record, stored and pending, in order.
async fn record_events(
    connection: &mut Conn,
    pending: &Pending,
    record: &CaseId,
) -> Result<Vec<(Event, Sha256Hash)>, StoreError> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT bytes FROM events WHERE case_id = $1 ORDER BY seq")
            .bind(record.as_str())
            .fetch_all(&mut *connection)
            .await?;
    let mut events = rows
        .iter()
        .map(|bytes| {
            Event::decode(bytes)
                .map(|event| (event, Sha256Hash::of(bytes)))
                .map_err(|error| StoreError::Corrupt(format!("evidence record {record}: {error}")))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    for pending_event in &pending.events {
        if &pending_event.event.case_id == record {
            events.push((
                pending_event.event.clone(),
                Sha256Hash::of(&pending_event.bytes),
            ));
        }
    }
    Ok(events)
}

/// Appends `draft` to an evidence record.
async fn append_to_record(
    connection: &mut Conn,
    pending: &mut Pending,
    write: &CaseWrite,
    record: &CaseId,
    draft: lifecycle::Draft,
    recorded_at: Timestamp,
) -> Result<AppendedEvent, StoreError> {
    let head = match pending.record_heads.get(record) {
        Some(head) => Some(*head),
        None => record_events(connection, pending, record)
            .await?
            .last()
            .map(|(event, hash)| (event.seq, *hash)),
    };
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, Some(hash)),
        None => (1, None),
    };
    let (event, bytes, hash, _) = seal(
        write,
        &Routing::default(),
        None,
        record,
        seq,
        prev_hash,
        draft,
        recorded_at,
    );
    pending.record_heads.insert(record.clone(), (seq, hash));
    Ok(push_event(pending, event, bytes, Vec::new()))
}

/// The latest case that carries `ticket` (any state but merged), from the
/// batch or the database.
async fn case_with_ticket(
    connection: &mut Conn,
    pending: &Pending,
    ticket: &custody_core::model::Ticket,
) -> Result<Option<CaseView>, StoreError> {
    if let Some(view) = pending.views.values().find(|view| {
        view.ticket.as_ref() == Some(ticket) && view.state != custody_core::CaseState::Merged
    }) {
        return Ok(Some(view.clone()));
    }
    let stored: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT view FROM cases WHERE ticket = $1 AND state <> 'merged' ORDER BY opened_at DESC LIMIT 1",
    )
    .bind(ticket.to_string())
    .fetch_optional(&mut *connection)
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let view: CaseView = serde_json::from_slice(&stored)
        .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))?;
    Ok(Some(pending.views.get(&view.case_id).cloned().unwrap_or(view)))
}

/// Evidence for an external reference: attached to the case that carries
/// it, else held in the reference's evidence record.
async fn hold_evidence(
    connection: &mut Conn,
    pending: &mut Pending,
    write: &CaseWrite,
    ticket: &custody_core::model::Ticket,
    evidence: &custody_core::event::Evidence,
    recorded_at: Timestamp,
) -> Result<WriteOutcome, StoreError> {
    if let Some(view) = case_with_ticket(connection, pending, ticket).await? {
        let case_id = view.case_id.clone();
        let draft = lifecycle::evidence(
            &view,
            &write.actor,
            custody_core::EventBody::EvidenceAttached(evidence.clone()),
        )
        .map_err(StoreError::Refused)?;
        let (appended, state) = append_draft(write, pending, view, draft, recorded_at);
        return Ok(WriteOutcome {
            case_id,
            state,
            appended: vec![appended],
            replayed: false,
            existing: true,
        });
    }
    let key = ticket.to_string();
    let record = match record_for_ticket(connection, pending, &key).await? {
        Some((record, _)) => record,
        None => {
            let record = CaseId::generate();
            pending.records.insert(key.clone(), (record.clone(), None));
            pending
                .record_updates
                .push((key.clone(), record.clone(), None, true));
            record
        }
    };
    let draft = lifecycle::Draft {
        body: custody_core::EventBody::EvidenceHeld(custody_core::event::HeldEvidence {
            ticket: ticket.clone(),
            evidence: evidence.clone(),
        }),
        role: custody_core::Role::Observer,
        causation: None,
    };
    let appended = append_to_record(connection, pending, write, &record, draft, recorded_at).await?;
    Ok(WriteOutcome {
        case_id: record,
        state: custody_core::CaseState::Open,
        appended: vec![appended],
        replayed: false,
        existing: false,
    })
}

/// A new case carrying `ticket` takes the evidence held for it: an
/// `evidence_joined` event in the case and `evidence_released` in the record.
async fn join_held_evidence(
    connection: &mut Conn,
    pending: &mut Pending,
    write: &CaseWrite,
    ticket: &custody_core::model::Ticket,
    case_id: &CaseId,
    recorded_at: Timestamp,
) -> Result<Vec<AppendedEvent>, StoreError> {
    let key = ticket.to_string();
    let Some((record, None)) = record_for_ticket(connection, pending, &key).await? else {
        return Ok(Vec::new());
    };
    let held: Vec<custody_core::event::Evidence> = record_events(connection, pending, &record)
        .await?
        .into_iter()
        .filter_map(|(event, _)| match event.body {
            custody_core::EventBody::EvidenceHeld(held) => Some(held.evidence),
            _ => None,
        })
        .collect();
    let view = pending
        .views
        .get(case_id)
        .cloned()
        .ok_or_else(|| StoreError::CaseNotFound(case_id.to_string()))?;
    let joined = lifecycle::Draft {
        body: custody_core::EventBody::EvidenceJoined(custody_core::event::EvidenceJoin {
            record: record.clone(),
            evidence: held,
        }),
        role: custody_core::Role::System,
        causation: None,
    };
    let (first, _) = append_draft(write, pending, view, joined, recorded_at);
    let released = lifecycle::Draft {
        body: custody_core::EventBody::EvidenceReleased(custody_core::event::CaseLink {
            other_case: case_id.clone(),
        }),
        role: custody_core::Role::System,
        causation: None,
    };
    let second = append_to_record(connection, pending, write, &record, released, recorded_at).await?;
    pending
        .records
        .insert(key.clone(), (record.clone(), Some(case_id.clone())));
    pending
        .record_updates
        .push((key, record, Some(case_id.clone()), false));
    Ok(vec![first, second])
}
