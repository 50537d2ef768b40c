/// Nodes per query; two bound parameters each, far below SQLite's limit.
const NODES_PER_QUERY: usize = 256;

/// Reads the stored nodes `ids`; absent nodes are simply not in the map.
pub async fn fetch_nodes(
    connection: &mut Conn,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, Hash>, sqlx::Error> {
    let mut nodes = HashMap::with_capacity(ids.len());
    for chunk in statement_chunks(ids, NODES_PER_QUERY) {
        let mut query: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT level, idx, hash FROM log_nodes WHERE (level, idx) IN (VALUES ",
        );
        for (position, id) in chunk.iter().enumerate() {
            if position > 0 {
                query.push(", ");
            }
            query.push("(");
            query.push_bind(i64::from(id.level));
            query.push(", ");
            query.push_bind(to_sql(id.index));
            query.push(")");
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *connection).await? {
            let level: i64 = row.try_get("level")?;
            let index: i64 = row.try_get("idx")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            let hash: Hash = hash.try_into().map_err(|_| {
                sqlx::Error::Protocol(format!("log node ({level}, {index}) is not 32 bytes"))
            })?;
            // Only the levels asked for (below 64) come back.
            let level = u8::try_from(level).map_err(|_| {
                sqlx::Error::Protocol(format!("log node ({level}, {index}) has no such level"))
            })?;
            nodes.insert(NodeId::new(level, from_sql(index)), hash);
        }
    }
    Ok(nodes)
}

/// Appends leaves to a log of `size` leaves: computes and stores every node
/// they complete. Runs inside the caller's write transaction.
pub async fn append_leaves(
    connection: &mut Conn,
    size: u64,
    leaf_hashes: &[Hash],
) -> Result<(), sqlx::Error> {
    let needed = tree::nodes_for_append(size, leaf_hashes.len() as u64)
        .map_err(|error| sqlx::Error::Protocol(format!("the log cannot grow: {error}")))?;
    let stored = fetch_nodes(connection, &needed).await?;
    let created = tree::append_leaves(&stored, size, leaf_hashes).map_err(|error| {
        sqlx::Error::Protocol(format!(
            "the log's stored nodes are incomplete at size {size}: {error}"
        ))
    })?;
    for chunk in statement_chunks(&created, NODES_PER_QUERY) {
        let mut insert: QueryBuilder<Db> =
            QueryBuilder::new("INSERT INTO log_nodes (level, idx, hash) ");
        insert.push_values(chunk, |mut row, node| {
            row.push_bind(i64::from(node.id.level))
                .push_bind(to_sql(node.id.index))
                .push_bind(node.hash.to_vec());
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// The root of the first `size` leaves.
pub async fn tree_root(connection: &mut Conn, size: u64) -> Result<Hash, StoreError> {
    let nodes = fetch_nodes(connection, &tree::nodes_for_root(size)).await?;
    tree::tree_root(&nodes, size)
        .map_err(|error| StoreError::Corrupt(format!("log root at size {size}: {error}")))
}

/// Checks that the stored log, of `size` leaves, extends the newest stored
/// checkpoint and each of `known`: it is at least as long, and its root at
/// each checkpoint's size is that checkpoint's root. Whoever rewrote events
/// and their Merkle nodes consistently and deleted the checkpoints above
/// them is caught here, before a second history is signed.
pub async fn check_extends(
    connection: &mut Conn,
    size: u64,
    known: &[crate::KnownCheckpoint],
) -> Result<(), StoreError> {
    let mut checkpoints: Vec<crate::KnownCheckpoint> = Vec::with_capacity(known.len() + 1);
    if let Some(latest) = latest_checkpoint(&mut *connection).await? {
        checkpoints.push(crate::KnownCheckpoint {
            size: latest.size,
            root: latest.root,
            held_in: "the database".to_string(),
        });
    }
    checkpoints.extend(known.iter().cloned());
    for checkpoint in checkpoints {
        let stored_root = if checkpoint.size > size {
            None
        } else {
            let root = tree_root(&mut *connection, checkpoint.size).await?;
            if root == checkpoint.root {
                continue;
            }
            Some(root)
        };
        return Err(StoreError::Diverged(Box::new(crate::Divergence {
            held_in: checkpoint.held_in,
            size: checkpoint.size,
            checkpoint_root: checkpoint.root,
            stored_root,
            log_size: size,
        })));
    }
    Ok(())
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub async fn inclusion_proof(
    connection: &mut Conn,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let ids = tree::nodes_for_inclusion(index, size)
        .map_err(|error| StoreError::InvalidRequest(error.to_string()))?;
    let nodes = fetch_nodes(connection, &ids).await?;
    tree::inclusion_proof(&nodes, index, size).map_err(|error| {
        StoreError::Corrupt(format!("inclusion proof of {index} in {size}: {error}"))
    })
}

/// The consistency proof between the trees of `old_size` and `new_size` leaves.
pub async fn consistency_proof(
    connection: &mut Conn,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let ids = tree::nodes_for_consistency(old_size, new_size)
        .map_err(|error| StoreError::InvalidRequest(error.to_string()))?;
    let nodes = fetch_nodes(connection, &ids).await?;
    tree::consistency_proof(&nodes, old_size, new_size).map_err(|error| {
        StoreError::Corrupt(format!(
            "consistency proof {old_size} to {new_size}: {error}"
        ))
    })
}

/// The newest stored checkpoint.
pub async fn latest_checkpoint(
    connection: &mut Conn,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = sqlx::query(
        "SELECT size, root, note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1",
    )
    .fetch_optional(&mut *connection)
    .await?;
    row.map(|row| checkpoint_from_row(&row)).transpose()
}

pub fn checkpoint_from_row(row: &DbRow) -> Result<StoredCheckpoint, StoreError> {
    let size: i64 = row.try_get("size")?;
    let root: Vec<u8> = row.try_get("root")?;
    Ok(StoredCheckpoint {
        size: from_sql(size),
        root: root.try_into().map_err(|_| {
            StoreError::Corrupt(format!("checkpoint at size {size} has a malformed root"))
        })?,
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
    })
}
