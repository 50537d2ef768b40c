//! Evidence: uploads (streamed), link captures, rechecks, the evidence of a
//! case, evidence records and downloads (streamed).

use custody_api::{
    EvidenceList, EvidenceRecordView, LinkBody, RecheckBody, RecheckReport, ReferenceUploadOutcome,
    WriteOutcome,
};
use serde::de::DeserializeOwned;

use crate::{answer, path_segment, problem_text, Answer, Client, ClientError};

/// A file to upload as evidence.
pub struct Upload {
    /// The open file, streamed as the body.
    pub file: tokio::fs::File,
    /// Its length in bytes (the `Content-Length`).
    pub length: u64,
    /// The name to record.
    pub name: Option<String>,
    /// The declared media type (the `Content-Type`).
    pub media_type: Option<String>,
}

/// A blob being downloaded.
pub struct Download(reqwest::Response);

impl Download {
    /// The next part of the blob, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, ClientError> {
        self.0
            .chunk()
            .await
            .map_err(|error| ClientError::Connection(format!("the download broke off: {error}")))
    }
}

impl Client {
    /// `POST /v1/cases/{case_id}/evidence`: uploads a file as evidence of a
    /// case.
    pub async fn upload(
        &self,
        case_id: &str,
        upload: Upload,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        let path = format!("/v1/cases/{}/evidence?", path_segment(case_id));
        self.upload_to(path, upload, idempotency_key).await
    }

    /// `POST /v1/evidence?ticket=SYSTEM:KEY`: uploads a file as evidence of
    /// an external reference; it joins the case that carries the reference,
    /// or is held until one does.
    pub async fn upload_for_reference(
        &self,
        ticket: &str,
        upload: Upload,
        idempotency_key: &str,
    ) -> Result<Answer<ReferenceUploadOutcome>, ClientError> {
        let path = format!("/v1/evidence?ticket={}", path_segment(ticket));
        self.upload_to(path, upload, idempotency_key).await
    }

    /// Streams the upload as the body of `POST path`; no overall timeout,
    /// since evidence can be large.
    async fn upload_to<T: DeserializeOwned>(
        &self,
        mut path: String,
        upload: Upload,
        idempotency_key: &str,
    ) -> Result<Answer<T>, ClientError> {
        if let Some(name) = &upload.name {
            path.push_str(&format!("&name={}", path_segment(name)));
        }
        let http = self.streaming_client()?;
        let mut request = http
            .post(format!("{}{path}", self.base))
            .header("custody-via", "cli")
            .header("idempotency-key", idempotency_key)
            .header(reqwest::header::CONTENT_LENGTH, upload.length)
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(upload.file),
            ));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(media_type) = &upload.media_type {
            request = request.header(reqwest::header::CONTENT_TYPE, media_type);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot upload to the Custody server at {}: {error}\nhint: the server closes the connection when an upload is larger than its [evidence] max_upload_bytes",
                self.base
            ))
        })?;
        answer(response)
            .await
            .map(Answer::new)
            .map_err(ClientError::from)
    }

    /// `POST /v1/cases/{case_id}/evidence/links`: the server captures the
    /// link.
    pub async fn capture_link(
        &self,
        case_id: &str,
        body: &LinkBody,
        idempotency_key: &str,
    ) -> Result<Answer<WriteOutcome>, ClientError> {
        let path = format!("/v1/cases/{}/evidence/links", path_segment(case_id));
        self.post(&path, body, Some(idempotency_key)).await
    }

    /// `GET /v1/cases/{case_id}/evidence`.
    pub async fn evidence(&self, case_id: &str) -> Result<Answer<EvidenceList>, ClientError> {
        self.get(&format!("/v1/cases/{}/evidence", path_segment(case_id)))
            .await
    }

    /// `GET /v1/evidence/records/{record_id}`.
    pub async fn evidence_record(
        &self,
        record_id: &str,
    ) -> Result<Answer<EvidenceRecordView>, ClientError> {
        self.get(&format!("/v1/evidence/records/{}", path_segment(record_id)))
            .await
    }

    /// `POST /v1/evidence/recheck` (admins).
    pub async fn recheck(&self, body: &RecheckBody) -> Result<Answer<RecheckReport>, ClientError> {
        self.post("/v1/evidence/recheck", body, None).await
    }

    /// `GET /v1/cases/{case_id}/evidence/{sha256}`, streamed. The bytes are
    /// the server's word: the caller re-hashes them.
    pub async fn download_evidence(
        &self,
        case_id: &str,
        sha256: &str,
    ) -> Result<Download, ClientError> {
        let http = self.streaming_client()?;
        let path = format!("/v1/cases/{}/evidence/{sha256}", path_segment(case_id));
        let mut request = http
            .get(format!("{}{path}", self.base))
            .header("custody-via", "cli");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Connection(format!(
                "cannot reach the Custody server at {}: {error}",
                self.base
            ))
        })?;
        if response.status().is_success() {
            return Ok(Download(response));
        }
        Err(match answer(response).await {
            Ok(value) => ClientError::Connection(problem_text(&value)),
            Err(failure) => failure.into(),
        })
    }
}
