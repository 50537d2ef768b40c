//! Principals and who the caller is.

use custody_api::{GroupsBody, PrincipalBody, PrincipalList, WhoAmI};
use custody_core::model::Principal;

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `POST /v1/principals` (admins).
    pub async fn add_principal(
        &self,
        body: &PrincipalBody,
    ) -> Result<Answer<Principal>, ClientError> {
        self.post("/v1/principals", body, None).await
    }

    /// `GET /v1/principals`.
    pub async fn principals(&self) -> Result<Answer<PrincipalList>, ClientError> {
        self.get("/v1/principals").await
    }

    /// `PUT /v1/principals/{name}/groups` (admins).
    pub async fn set_groups(
        &self,
        name: &str,
        body: &GroupsBody,
    ) -> Result<Answer<Principal>, ClientError> {
        self.put(
            &format!("/v1/principals/{}/groups", path_segment(name)),
            body,
        )
        .await
    }

    /// `GET /v1/whoami`.
    pub async fn whoami(&self) -> Result<Answer<WhoAmI>, ClientError> {
        self.get("/v1/whoami").await
    }
}
