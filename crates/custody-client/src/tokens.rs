//! Bearer tokens.

use custody_api::{IssuedToken, TokenBody, TokenInfo, TokenList, TokensQuery};

use crate::{path_segment, Answer, Client, ClientError};

impl Client {
    /// `POST /v1/principals/{name}/tokens` (admins): the only answer that
    /// holds the token's secret.
    pub async fn create_token(
        &self,
        name: &str,
        body: &TokenBody,
    ) -> Result<Answer<IssuedToken>, ClientError> {
        let path = format!("/v1/principals/{}/tokens", path_segment(name));
        self.post(&path, body, None).await
    }

    /// `GET /v1/tokens`.
    pub async fn tokens(&self, query: &TokensQuery) -> Result<Answer<TokenList>, ClientError> {
        let mut path = "/v1/tokens".to_string();
        if let Some(principal) = &query.principal {
            path.push_str(&format!("?principal={}", path_segment(principal)));
        }
        self.get(&path).await
    }

    /// `DELETE /v1/tokens/{token_id}`.
    pub async fn revoke_token(&self, token_id: &str) -> Result<Answer<TokenInfo>, ClientError> {
        self.delete(&format!("/v1/tokens/{}", path_segment(token_id)))
            .await
    }
}
