// What the web console reads and writes: its sessions (`console_sessions`)
// and its case listings; included once per backend
// module. Writes run on the writer's connection ([`Job::ConsoleSession`]),
// reads on the readers.

/// Applies one change to the console's sessions; answers the number of rows
/// it touched.
pub(crate) async fn console_session_write(
    connection: &mut Conn,
    operation: crate::ConsoleSessionOperation,
) -> Result<u64, StoreError> {
    let result = match operation {
        crate::ConsoleSessionOperation::Create(session) => {
            let auth = serde_json::to_string(&session.auth)
                .map_err(|error| StoreError::Corrupt(format!("session auth context: {error}")))?;
            sqlx::query(
                "INSERT INTO console_sessions (session_sha256, principal_id, auth, csrf_secret, created_at, last_seen_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(session.session_sha256.to_hex())
            .bind(session.principal.as_str())
            .bind(auth)
            .bind(session.csrf_secret)
            .bind(session.created_at.as_micros())
            .bind(session.last_seen_at.as_micros())
            .bind(session.expires_at.as_micros())
            .execute(&mut *connection)
            .await?
        }
        crate::ConsoleSessionOperation::Touch { session_sha256, at } => {
            sqlx::query(
                "UPDATE console_sessions SET last_seen_at = $2 WHERE session_sha256 = $1 AND last_seen_at < $2",
            )
            .bind(session_sha256.to_hex())
            .bind(at.as_micros())
            .execute(&mut *connection)
            .await?
        }
        crate::ConsoleSessionOperation::Delete { session_sha256 } => {
            sqlx::query("DELETE FROM console_sessions WHERE session_sha256 = $1")
                .bind(session_sha256.to_hex())
                .execute(&mut *connection)
                .await?
        }
        crate::ConsoleSessionOperation::Purge { now, idle_before } => {
            sqlx::query("DELETE FROM console_logins WHERE expires_at <= $1")
                .bind(now.as_micros())
                .execute(&mut *connection)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now.as_micros())
                .bind(idle_before.as_micros())
                .execute(&mut *connection)
                .await?
        }
        crate::ConsoleSessionOperation::BeginLogin {
            login_sha256,
            pending,
            expires_at,
            now,
        } => {
            sqlx::query("DELETE FROM console_logins WHERE expires_at <= $1")
                .bind(now.as_micros())
                .execute(&mut *connection)
                .await?;
            // Anyone may begin a sign-in: the table is bounded, so a flood
            // of unfinished ones cannot grow it without end.
            let in_progress: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_logins")
                .fetch_one(&mut *connection)
                .await?;
            if in_progress >= crate::MAX_CONSOLE_LOGINS {
                return Ok(0);
            }
            sqlx::query(
                "INSERT INTO console_logins (login_sha256, pending, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(login_sha256.to_hex())
            .bind(pending)
            .bind(expires_at.as_micros())
            .execute(&mut *connection)
            .await?
        }
        crate::ConsoleSessionOperation::EndLogin { login_sha256 } => {
            sqlx::query("DELETE FROM console_logins WHERE login_sha256 = $1")
                .bind(login_sha256.to_hex())
                .execute(&mut *connection)
                .await?
        }
    };
    Ok(result.rows_affected())
}

/// The session whose ID hashes to `session_sha256`, expired or not (the
/// caller judges expiry, at its clock and with its timeouts).
pub(crate) async fn console_session(
    readers: &Pool,
    session_sha256: &Sha256Hash,
) -> Result<Option<crate::ConsoleSession>, StoreError> {
    let row = sqlx::query(
        "SELECT principal_id, auth, csrf_secret, created_at, last_seen_at, expires_at
         FROM console_sessions WHERE session_sha256 = $1",
    )
    .bind(session_sha256.to_hex())
    .fetch_optional(readers)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str, error: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("console_sessions row, {what}: {error}"))
    };
    let principal: String = row.try_get("principal_id")?;
    let auth: String = row.try_get("auth")?;
    Ok(Some(crate::ConsoleSession {
        session_sha256: *session_sha256,
        principal: PrincipalId::from_str(&principal).map_err(|error| corrupt("principal_id", &error))?,
        auth: serde_json::from_str(&auth).map_err(|error| corrupt("auth", &error))?,
        csrf_secret: row.try_get("csrf_secret")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        last_seen_at: Timestamp::from_micros(row.try_get("last_seen_at")?),
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
    }))
}

/// The sign-in in progress keyed by `login_sha256`, and its end.
pub(crate) async fn console_login(
    readers: &Pool,
    login_sha256: &Sha256Hash,
) -> Result<Option<(String, Timestamp)>, StoreError> {
    let row = sqlx::query("SELECT pending, expires_at FROM console_logins WHERE login_sha256 = $1")
        .bind(login_sha256.to_hex())
        .fetch_optional(readers)
        .await?;
    row.map(|row| {
        Ok((
            row.try_get("pending")?,
            Timestamp::from_micros(row.try_get("expires_at")?),
        ))
    })
    .transpose()
}

/// The cases `filter` selects, newest first, as `SELECT columns FROM cases
/// WHERE ...`: filtered in SQL by state, ticket and opening time, after the
/// keyset `before` (an `opened_at` and a case ID), drill cases left out.
fn filtered_cases(columns: &str, filter: &crate::CaseViewFilter) -> QueryBuilder<Db> {
    let mut query: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT {columns} FROM cases WHERE NOT drill"));
    if filter.active_only {
        query.push(concat!(" AND state IN ", active_states_sql!()));
    }
    if let Some(state) = filter.state {
        query.push(" AND state = ").push_bind(state.to_string());
    }
    if let Some(ticket) = &filter.ticket {
        query.push(" AND ticket = ").push_bind(ticket.clone());
    }
    if let Some(from) = filter.opened_from {
        query.push(" AND opened_at >= ").push_bind(from.to_string());
    }
    if let Some(to) = filter.opened_to {
        query.push(" AND opened_at < ").push_bind(to.to_string());
    }
    if let Some((opened_at, case_id)) = &filter.before {
        query
            .push(" AND (opened_at < ")
            .push_bind(opened_at.clone())
            .push(" OR (opened_at = ")
            .push_bind(opened_at.clone())
            .push(" AND case_id < ")
            .push_bind(case_id.clone())
            .push("))");
    }
    query.push(" ORDER BY opened_at DESC, case_id DESC");
    if let Some(limit) = filter.limit {
        query.push(" LIMIT ").push_bind(i64::from(limit));
    }
    query
}

fn listed_case(row: &DbRow) -> Result<crate::ListedCase, StoreError> {
    let view: Vec<u8> = row.try_get("view")?;
    Ok(crate::ListedCase {
        opened_at: row.try_get("opened_at")?,
        view: serde_json::from_slice(&view)
            .map_err(|error| StoreError::Corrupt(format!("case projection: {error}")))?,
    })
}

/// One page of case projections, newest first, for the console's inbox and
/// search (see [`filtered_cases`]).
pub(crate) async fn case_views(
    readers: &Pool,
    filter: &crate::CaseViewFilter,
) -> Result<Vec<crate::ListedCase>, StoreError> {
    let rows = filtered_cases("case_id, opened_at, view", filter)
        .build()
        .fetch_all(readers)
        .await?;
    rows.iter().map(listed_case).collect()
}

/// What [`case_views`] would list, without the projections: each case's ID
/// and its head (sequence number and hash of its latest event).
pub(crate) async fn case_heads(
    readers: &Pool,
    filter: &crate::CaseViewFilter,
) -> Result<Vec<crate::CaseHead>, StoreError> {
    let rows = filtered_cases("case_id, head_seq, head_hash", filter)
        .build()
        .fetch_all(readers)
        .await?;
    rows.iter()
        .map(|row| {
            let case_id: String = row.try_get("case_id")?;
            let head_seq: i64 = row.try_get("head_seq")?;
            let head_hash: String = row.try_get("head_hash")?;
            Ok(crate::CaseHead {
                case_id: case_id
                    .parse()
                    .map_err(|error| StoreError::Corrupt(format!("cases row {case_id}: {error}")))?,
                head_seq: from_sql(head_seq),
                head_hash: head_hash
                    .parse()
                    .map_err(|error| StoreError::Corrupt(format!("cases row {case_id}, head_hash: {error}")))?,
            })
        })
        .collect()
}

/// The projections of the cases `case_ids` names (those that exist), in no
/// particular order.
pub(crate) async fn case_views_by_id(
    readers: &Pool,
    case_ids: &[CaseId],
) -> Result<Vec<crate::ListedCase>, StoreError> {
    let mut listed = Vec::with_capacity(case_ids.len());
    for chunk in case_ids.chunks(500) {
        let mut query: QueryBuilder<Db> =
            QueryBuilder::new("SELECT case_id, opened_at, view FROM cases WHERE case_id IN (");
        let mut ids = query.separated(", ");
        for case_id in chunk {
            ids.push_bind(case_id.to_string());
        }
        query.push(")");
        let rows = query.build().fetch_all(readers).await?;
        for row in &rows {
            listed.push(listed_case(row)?);
        }
    }
    Ok(listed)
}
