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
