//! Vendor delegation grants.

use custody_api::{DelegationBody, DelegationList};
use custody_core::delegation::DelegationGrant;

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `POST /v1/delegations` (admins).
    pub async fn grant_delegation(
        &self,
        body: &DelegationBody,
    ) -> Result<Answer<DelegationGrant>, ClientError> {
        self.post("/v1/delegations", body, None).await
    }

    /// `GET /v1/delegations`.
    pub async fn delegations(&self) -> Result<Answer<DelegationList>, ClientError> {
        self.get("/v1/delegations").await
    }

    /// `DELETE /v1/delegations/{grant_id}` (admins).
    pub async fn revoke_delegation(
        &self,
        grant_id: &str,
    ) -> Result<Answer<DelegationGrant>, ClientError> {
        self.delete(&format!("/v1/delegations/{}", path_segment(grant_id)))
            .await
    }
}
