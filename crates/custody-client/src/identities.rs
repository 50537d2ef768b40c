//! The mapping of connectors' outside users to principals.

use custody_api::{IdentitiesBody, IdentityBody, IdentityChange, IdentityChanges, IdentityList};

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `GET /v1/connectors/{name}/identities` (admins).
    pub async fn identities(&self, connector: &str) -> Result<Answer<IdentityList>, ClientError> {
        self.get(&format!(
            "/v1/connectors/{}/identities",
            path_segment(connector)
        ))
        .await
    }

    /// `PUT /v1/connectors/{name}/identities/{external_user}` (admins).
    pub async fn map_identity(
        &self,
        connector: &str,
        external_user: &str,
        body: &IdentityBody,
    ) -> Result<Answer<IdentityChange>, ClientError> {
        let path = format!(
            "/v1/connectors/{}/identities/{}",
            path_segment(connector),
            path_segment(external_user)
        );
        self.put(&path, body).await
    }

    /// `POST /v1/connectors/{name}/identities` (admins): all or none.
    pub async fn map_identities(
        &self,
        connector: &str,
        body: &IdentitiesBody,
    ) -> Result<Answer<IdentityChanges>, ClientError> {
        let path = format!("/v1/connectors/{}/identities", path_segment(connector));
        self.post(&path, body, None).await
    }

    /// `DELETE /v1/connectors/{name}/identities/{external_user}` (admins).
    pub async fn unmap_identity(
        &self,
        connector: &str,
        external_user: &str,
    ) -> Result<Answer<IdentityChange>, ClientError> {
        self.delete(&format!(
            "/v1/connectors/{}/identities/{}",
            path_segment(connector),
            path_segment(external_user)
        ))
        .await
    }
}

impl Client {
    /// `POST /v1/ingest/{name}` (admins): a source's batch file, as the
    /// source exports it. The server answers once every record is
    /// recorded, so the read waits as long as that takes (up to an hour).
    /// Not retried: a retry would append nothing new, but the caller
    /// decides (the summary of a failed batch says which records to retry).
    pub async fn ingest(
        &self,
        source: &str,
        file: Vec<u8>,
    ) -> Result<Answer<custody_api::IngestSummary>, ClientError> {
        self.ingest_marked(source, file, false).await
    }

    /// [`Client::ingest`], with `drill` set: the cases the batch's
    /// unsanctioned observations open are drill cases (`?drill=true`).
    pub async fn ingest_marked(
        &self,
        source: &str,
        file: Vec<u8>,
        drill: bool,
    ) -> Result<Answer<custody_api::IngestSummary>, ClientError> {
        let http = self
            .http_builder()
            .read_timeout(std::time::Duration::from_secs(3600))
            .build()
            .map_err(|error| ClientError::Connection(error.to_string()))?;
        let mut request = http
            .post(format!(
                "{}/v1/ingest/{}{}",
                self.base,
                path_segment(source),
                if drill { "?drill=true" } else { "" }
            ))
            .header("custody-via", "cli")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(file);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot send the file to the Custody server at {}: {error}",
                self.base
            ))
        })?;
        crate::answer(response)
            .await
            .map(Answer::new)
            .map_err(ClientError::from)
    }
}
