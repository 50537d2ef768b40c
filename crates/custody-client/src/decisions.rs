//! The steps of a case after its request. Each is a write: it carries an
//! idempotency key and answers with the write's outcome.

use custody_api::{CommentBody, DecisionBody, ExecutionBody, MergeBody, ReviewBody, WriteOutcome};
use serde::Serialize;

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `POST /v1/cases/{case_id}/approvals`.
    pub async fn approve(
        &self,
        case_id: &str,
        body: &DecisionBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(case_id, "approvals", body, idempotency_key)
            .await
    }

    /// `POST /v1/cases/{case_id}/denials`.
    pub async fn deny(
        &self,
        case_id: &str,
        body: &DecisionBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(case_id, "denials", body, idempotency_key)
            .await
    }

    /// `POST /v1/cases/{case_id}/executions`.
    pub async fn execute(
        &self,
        case_id: &str,
        body: &ExecutionBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(case_id, "executions", body, idempotency_key)
            .await
    }

    /// `POST /v1/cases/{case_id}/reviews`.
    pub async fn review(
        &self,
        case_id: &str,
        body: &ReviewBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(case_id, "reviews", body, idempotency_key)
            .await
    }

    /// `POST /v1/cases/{case_id}/comments`.
    pub async fn comment(
        &self,
        case_id: &str,
        body: &CommentBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(case_id, "comments", body, idempotency_key)
            .await
    }

    /// `POST /v1/cases/{duplicate}/merge`: merges the duplicate into
    /// `body.into`.
    pub async fn merge(
        &self,
        duplicate: &str,
        body: &MergeBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.case_write(duplicate, "merge", body, idempotency_key)
            .await
    }

    async fn case_write(
        &self,
        case_id: &str,
        collection: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        let path = format!("/v1/cases/{}/{collection}", path_segment(case_id));
        self.post(&path, body, Some(idempotency_key)).await
    }
}
