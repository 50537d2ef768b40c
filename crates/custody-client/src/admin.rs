//! The administration record.

use custody_api::{AdminRecordDocument, ComponentsDocument};

use crate::{Answer, Client, ClientError};

impl Client {
    /// `GET /v1/admin/record`.
    pub async fn admin_record(&self) -> Result<Answer<AdminRecordDocument>, ClientError> {
        self.get("/v1/admin/record").await
    }

    /// `GET /v1/admin/components` (admins): the deployment's channels,
    /// sinks (with their cursors), connectors and evidence store.
    pub async fn components(&self) -> Result<Answer<ComponentsDocument>, ClientError> {
        self.get("/v1/admin/components").await
    }

    /// `POST /v1/connectors/{name}/{endpoint}`: a request as an outside
    /// system sends it (signed by the caller, in `headers`), answered in
    /// that system's shape: the status and the body's text. Sent without
    /// a bearer token, once.
    pub async fn connector_post(
        &self,
        connector: &str,
        endpoint: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(u16, String), ClientError> {
        let mut request = self.http.post(format!(
            "{}/v1/connectors/{}/{}",
            self.base,
            crate::path_segment(connector),
            crate::path_segment(endpoint)
        ));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.body(body).send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot reach the Custody server at {}: {error}",
                self.base
            ))
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|error| ClientError::Connection(error.to_string()))?;
        Ok((status, text))
    }
}
