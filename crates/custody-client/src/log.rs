//! The log: checkpoints and proofs.

use base64::Engine;
use custody_api::{ConsistencyDocument, KeysDocument};
use custody_core::proof::CaseProofBundle;

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `GET /v1/log/checkpoint`: the latest signed checkpoint, exactly the
    /// note text (needs no token).
    pub async fn checkpoint(&self) -> Result<String, ClientError> {
        self.send_text(reqwest::Method::GET, "/v1/log/checkpoint")
            .await
    }

    /// `POST /v1/log/checkpoint` (admins): signs a checkpoint covering every
    /// acknowledged write and answers with its note text.
    pub async fn sign_checkpoint(&self) -> Result<String, ClientError> {
        self.send_text(reqwest::Method::POST, "/v1/log/checkpoint")
            .await
    }

    /// `GET /v1/log/keys`: the log's origin and verifier keys (needs no
    /// token).
    pub async fn log_keys(&self) -> Result<Answer<KeysDocument>, ClientError> {
        self.get("/v1/log/keys").await
    }

    /// `GET /v1/cases/{case_id}/proof`: the case's events with their proofs.
    pub async fn case_proof(&self, case_id: &str) -> Result<Answer<CaseProofBundle>, ClientError> {
        self.get(&format!("/v1/cases/{}/proof", path_segment(case_id)))
            .await
    }

    /// `GET /v1/log/proof/consistency`: the proof that the log at `to`
    /// extends the log at `from`, as hashes (needs no token).
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, ClientError> {
        let path = format!("/v1/log/proof/consistency?from={from}&to={to}");
        let answer: Answer<ConsistencyDocument> = self.get(&path).await?;
        let malformed = || ClientError::Connection("the server sent a malformed proof".to_string());
        let document = answer.document().map_err(|_| malformed())?;
        document
            .proof
            .iter()
            .map(|hash| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(hash)
                    .map_err(|_| malformed())?;
                bytes.try_into().map_err(|_| malformed())
            })
            .collect()
    }
}
