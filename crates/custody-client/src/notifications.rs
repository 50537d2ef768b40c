//! The notifications the workflow owes and their delivery.

use custody_api::{NotificationList, NotificationsQuery, OutboxEntry};

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `GET /v1/notifications`.
    pub async fn notifications(
        &self,
        query: &NotificationsQuery,
    ) -> Result<Answer<NotificationList>, ClientError> {
        let mut path = format!("/v1/notifications?failed={}", query.failed);
        if let Some(limit) = query.limit {
            path.push_str(&format!("&limit={limit}"));
        }
        if let Some(case) = &query.case {
            path.push_str(&format!("&case={}", path_segment(case)));
        }
        self.get(&path).await
    }

    /// `POST /v1/notifications/{delivery_id}/retry` (admins).
    pub async fn retry_notification(
        &self,
        delivery_id: &str,
    ) -> Result<Answer<OutboxEntry>, ClientError> {
        let path = format!("/v1/notifications/{}/retry", path_segment(delivery_id));
        self.post(&path, &serde_json::json!({}), None).await
    }
}
