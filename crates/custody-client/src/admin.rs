//! The administration record.

use custody_api::AdminRecordDocument;

use crate::{Answer, Client, ClientError};

impl Client {
    /// `GET /v1/admin/record`.
    pub async fn admin_record(&self) -> Result<Answer<AdminRecordDocument>, ClientError> {
        self.get("/v1/admin/record").await
    }
}
