// `custody import`: a whole log written into an empty store in one
// transaction. Included once per backend (see `mod.rs`).

/// Events are written this many at a time (with the Merkle nodes they
/// complete).
const IMPORT_BATCH: usize = 1024;

/// An import in progress: one connection, inside one write transaction
/// opened by [`import_begin`]. Dropping it without [`Importer::commit`]
/// rolls everything back (the connection closes with its transaction open).
pub(crate) struct Importer {
    connection: Conn,
    state: plan::import::ImportState,
    batch: Vec<(u64, Event, Vec<u8>)>,
    size: u64,
    idempotency: Vec<crate::StoredIdempotency>,
    idempotency_records: u64,
}

/// Opens the write transaction, brings the schema up to date inside it and
/// refuses a store that holds anything.
pub(crate) async fn import_begin(mut connection: Conn) -> Result<Importer, StoreError> {
    sqlx::raw_sql(BEGIN_WRITE).execute(&mut connection).await?;
    migrate_in_transaction(&mut connection).await?;
    for table in [
        "events",
        "checkpoints",
        "principals",
        "tokens",
        "connector_identities",
        "oidc_identities",
        "deployment",
        "cases",
    ] {
        let query = format!("SELECT COUNT(*) FROM {table}");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_one(&mut connection)
            .await?;
        if rows > 0 {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut connection).await;
            return Err(StoreError::InvalidRequest(format!(
                "the target store is not empty: its {table} table holds {rows} rows; an import only fills an empty store, so nothing was changed\nhint: give a new data directory or a fresh database"
            )));
        }
    }
    Ok(Importer {
        connection,
        state: plan::import::ImportState::default(),
        batch: Vec::new(),
        size: 0,
        idempotency: Vec::new(),
        idempotency_records: 0,
    })
}

impl Importer {
    /// Appends the event at `log_index` (the next one) verbatim.
    pub(crate) async fn event(&mut self, log_index: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        if log_index != self.size {
            return Err(StoreError::InvalidRequest(format!(
                "the import expected log index {} next but got {log_index}",
                self.size
            )));
        }
        let event = Event::decode(&bytes).map_err(|error| {
            StoreError::InvalidRequest(format!(
                "the event at log index {log_index} is not a canonical event: {error}"
            ))
        })?;
        let rows = self.state.observe(&event, Sha256Hash::of(&bytes))?;
        for row in rows {
            write_admin_row(&mut self.connection, row).await?;
        }
        self.batch.push((log_index, event, bytes));
        self.size += 1;
        if self.batch.len() >= IMPORT_BATCH {
            self.flush_events().await?;
        }
        Ok(())
    }

    async fn flush_events(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let first = batch[0].0;
        let leaf_hashes: Vec<Hash> = batch
            .iter()
            .map(|(_, _, bytes)| custody_log::leaf_hash(bytes))
            .collect();
        append_leaves(&mut self.connection, first, &leaf_hashes).await?;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Db> = QueryBuilder::new(
                "INSERT INTO events (log_index, event_id, case_id, seq, kind, recorded_at, bytes) ",
            );
            insert.push_values(chunk, |mut row, (log_index, event, bytes)| {
                row.push_bind(to_sql(*log_index))
                    .push_bind(event.event_id.to_string())
                    .push_bind(event.case_id.to_string())
                    .push_bind(to_sql(event.seq))
                    .push_bind(event.body.kind_name())
                    .push_bind(event.recorded_at.to_string())
                    .push_bind(bytes.clone());
            });
            insert.build().execute(&mut self.connection).await?;
        }
        Ok(())
    }

    /// Gives an imported token its secret's full SHA-256 (see
    /// [`plan::import::ImportState::restore_token`]); the row is written at
    /// the commit.
    pub(crate) fn token(
        &mut self,
        token_id: &str,
        principal: &str,
        secret_sha256: Sha256Hash,
    ) -> Result<(), StoreError> {
        self.state.restore_token(token_id, principal, secret_sha256)
    }

    /// Stores a write's idempotency record as it is (in batches).
    pub(crate) async fn idempotency(
        &mut self,
        record: crate::StoredIdempotency,
    ) -> Result<(), StoreError> {
        self.idempotency.push(record);
        self.idempotency_records += 1;
        if self.idempotency.len() >= IMPORT_BATCH {
            self.flush_idempotency().await?;
        }
        Ok(())
    }

    async fn flush_idempotency(&mut self) -> Result<(), StoreError> {
        let records = std::mem::take(&mut self.idempotency);
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Db> = QueryBuilder::new(
                "INSERT INTO idempotency (principal_id, key, fingerprint, response, created_at) ",
            );
            insert.push_values(chunk, |mut row, record| {
                row.push_bind(record.principal.clone())
                    .push_bind(record.key.clone())
                    .push_bind(record.fingerprint.clone())
                    .push_bind(record.response.clone())
                    .push_bind(record.created_at.clone());
            });
            insert.build().execute(&mut self.connection).await?;
        }
        Ok(())
    }

    /// Stores a signed checkpoint as it is. Its size must not exceed the
    /// events imported, and its root must be the imported tree's at its size.
    pub(crate) async fn checkpoint(
        &mut self,
        size: u64,
        root: [u8; 32],
        note: &str,
        created_at: &str,
    ) -> Result<(), StoreError> {
        self.flush_events().await?;
        if size > self.size || size == 0 {
            return Err(StoreError::InvalidRequest(format!(
                "the checkpoint at size {size} does not fit the {} imported events",
                self.size
            )));
        }
        let stored_root = tree_root(&mut self.connection, size).await?;
        if stored_root != root {
            return Err(StoreError::InvalidRequest(format!(
                "the checkpoint at size {size} has root {}, but the imported events hash to {}",
                custody_core::hex::encode(&root),
                custody_core::hex::encode(&stored_root)
            )));
        }
        sqlx::query("INSERT INTO checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)")
            .bind(to_sql(size))
            .bind(root.to_vec())
            .bind(note)
            .bind(created_at)
            .execute(&mut self.connection)
            .await?;
        Ok(())
    }

    /// Writes the rebuilt projections and the deployment's facts, and
    /// commits. Returns how many events were imported.
    pub(crate) async fn commit(mut self, origin: &str, now: Timestamp) -> Result<crate::ImportSummary, StoreError> {
        self.flush_events().await?;
        self.flush_idempotency().await?;
        let size = self.size;
        let state = std::mem::take(&mut self.state);
        let rows = state.finish();
        let connection = &mut self.connection;
        sqlx::query("INSERT INTO deployment (key, value, created_at) VALUES ('log_origin', $1, $2)")
            .bind(origin)
            .bind(now.to_string())
            .execute(&mut *connection)
            .await?;
        for fact in &rows.facts {
            sqlx::query("INSERT INTO deployment (key, value, created_at) VALUES ($1, $2, $3)")
                .bind(fact.key)
                .bind(&fact.value)
                .bind(fact.created_at.to_string())
                .execute(&mut *connection)
                .await?;
        }
        for chunk in rows.views.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Db> = QueryBuilder::new(
                "INSERT INTO cases (case_id, state, change_key, ticket, requester, summary, opened_at, updated_at, head_seq, head_hash, next_deadline, view, drill) ",
            );
            let mut encode_error = None;
            insert.push_values(chunk, |mut row, view| {
                bind_case_row(&mut row, view, &mut encode_error);
            });
            if let Some(error) = encode_error {
                return Err(StoreError::Corrupt(format!(
                    "cannot encode a case projection: {error}"
                )));
            }
            insert.build().execute(&mut *connection).await?;
        }
        for chunk in rows.deliveries.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Db> = QueryBuilder::new(
                "INSERT INTO outbox (delivery_id, case_id, event_id, kind, audience, channel, recipient, state, attempts, next_attempt_at, last_error, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, delivery| {
                row.push_bind(delivery.delivery_id.clone())
                    .push_bind(delivery.case_id.clone())
                    .push_bind(delivery.event_id.clone())
                    .push_bind(delivery.kind.clone())
                    .push_bind(delivery.audience.clone())
                    .push_bind(delivery.channel.clone())
                    .push_bind(delivery.recipient.clone())
                    .push_bind(delivery.state)
                    .push_bind(i64::from(delivery.attempts))
                    // What is still pending is due as soon as a node serves
                    // the imported store.
                    .push_bind(delivery.updated_at.to_string())
                    .push_bind(delivery.last_error.clone())
                    .push_bind(delivery.created_at.to_string())
                    .push_bind(delivery.updated_at.to_string());
            });
            insert.build().execute(&mut *connection).await?;
        }
        for token in &rows.tokens {
            sqlx::query(
                "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at, expires_at, created_by, revoked_at, revoked_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&token.token_id)
            .bind(token.principal.to_string())
            .bind(token.secret_sha256()?.0.to_vec())
            .bind(token.created_at.to_string())
            .bind(token.expires_at.map(|at| at.to_string()))
            .bind(&token.created_by)
            .bind(token.revoked.as_ref().map(|(at, _)| at.to_string()))
            .bind(token.revoked.as_ref().map(|(_, by)| by.clone()))
            .execute(&mut *connection)
            .await?;
        }
        for record in &rows.records {
            sqlx::query(
                "INSERT INTO evidence_records (ticket, case_id, released_to, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&record.ticket)
            .bind(&record.record)
            .bind(&record.released_to)
            .bind(record.created_at.to_string())
            .execute(&mut *connection)
            .await?;
        }
        sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
        Ok(crate::ImportSummary {
            events: size,
            cases: rows.views.len() as u64,
            notifications: rows.deliveries.len() as u64,
            tokens: rows.tokens.len() as u64,
            tokens_restored: rows.tokens.iter().filter(|token| token.restored()).count() as u64,
            idempotency_records: self.idempotency_records,
        })
    }
}
