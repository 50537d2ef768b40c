//! The policy in force and the policy record.

use custody_api::PolicyDocument;

use crate::{Answer, Client, ClientError};

impl Client {
    /// `GET /v1/policy`.
    pub async fn policy(&self) -> Result<Answer<PolicyDocument>, ClientError> {
        self.get("/v1/policy").await
    }
}
