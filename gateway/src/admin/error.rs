//! [`AdminError`]: why an admin request failed, and its HTTP response.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::resilience::SetError;

/// An admin request that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No or a wrong bearer token on a state-changing request.
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// State-changing requests are disabled: no admin token is configured.
    #[error("admin changes are disabled: no admin token is configured (--admin-token-file or HTS_ADMIN_TOKEN)")]
    NoTokenConfigured,
    /// The request body or path is not usable.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The backend set refused the change.
    #[error(transparent)]
    Set(#[from] SetError),
    /// The configuration could not be reloaded; the old one stays.
    #[error("reload failed, keeping the old configuration: {0}")]
    Reload(String),
    /// This process has no reload source or no metrics recorder.
    #[error("not available: {0}")]
    Unavailable(&'static str),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized | AdminError::NoTokenConfigured => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) | AdminError::Set(SetError::InvalidUrl(_)) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::Set(SetError::UnknownBackend(_)) => StatusCode::NOT_FOUND,
            AdminError::Set(SetError::Duplicate(_)) => StatusCode::CONFLICT,
            AdminError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Unavailable(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        if status == StatusCode::UNAUTHORIZED {
            return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (status, body).into_response()
    }
}
