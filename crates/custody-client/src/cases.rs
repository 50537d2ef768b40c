//! Opening cases, one case's timeline, the case list.

use custody_api::{BreakGlassBody, CaseDocument, CaseList, CasesQuery, RequestBody, WriteOutcome};

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `POST /v1/cases`: requests an access change.
    pub async fn create_case(
        &self,
        body: &RequestBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.post("/v1/cases", body, Some(idempotency_key)).await
    }

    /// `POST /v1/break-glass`: records a change made in an emergency.
    pub async fn break_glass(
        &self,
        body: &BreakGlassBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        self.post("/v1/break-glass", body, Some(idempotency_key))
            .await
    }

    /// `GET /v1/cases/{case_id}`: one case with its whole timeline.
    pub async fn case(&self, case_id: &str) -> Result<Answer<CaseDocument>, ClientError> {
        self.get(&format!("/v1/cases/{}", path_segment(case_id)))
            .await
    }

    /// `GET /v1/cases`: the case list, newest first.
    pub async fn cases(&self, query: &CasesQuery) -> Result<Answer<CaseList>, ClientError> {
        let mut path = "/v1/cases".to_string();
        let mut separator = '?';
        if let Some(limit) = query.limit {
            path.push_str(&format!("{separator}limit={limit}"));
            separator = '&';
        }
        if let Some(state) = &query.state {
            path.push_str(&format!("{separator}state={}", path_segment(state)));
            separator = '&';
        }
        if let Some(unsanctioned) = query.unsanctioned {
            path.push_str(&format!("{separator}unsanctioned={unsanctioned}"));
            separator = '&';
        }
        if let Some(include) = query.include_drills {
            path.push_str(&format!("{separator}include_drills={include}"));
        }
        self.get(&path).await
    }
}
