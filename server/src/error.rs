//! The one error type HTTP handlers return: a clear JSON message for the client, full details in
//! the log for internal failures.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hindsight_shared::api::ApiError;

/// An HTTP handler's failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is wrong; the message tells the client how.
    #[error("{0}")]
    BadRequest(String),
    /// The request is understood but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// The request conflicts with the state of things (a board that is full).
    #[error("{0}")]
    Conflict(String),
    /// The client asked too often; the message says how often it may.
    #[error("{0}")]
    TooManyRequests(String),
    /// The request was not answered in time (a client that trickles its body, say).
    #[error("the request took too long")]
    Timeout,
    /// Our fault. Logged with its cause; the client sees a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::BoardFull(_) => Self::Conflict(e.to_string()),
            e => Self::Internal(e.into()),
        }
    }
}

impl From<crate::board::AdmitError> for AppError {
    fn from(error: crate::board::AdmitError) -> Self {
        use crate::board::AdmitError;
        match error {
            AdmitError::NoBoard => Self::NotFound("there is no such board"),
            AdmitError::WrongKey => Self::Forbidden("the facilitator key does not match this board"),
            AdmitError::NotJoined => Self::Forbidden("you have not joined this board"),
            AdmitError::Full(_) => Self::Conflict(error.to_string()),
            AdmitError::BadName(message) => Self::BadRequest(message),
            AdmitError::Failed(cause) => Self::Internal(anyhow::anyhow!("a board failed: {cause}")),
        }
    }
}

impl From<crate::team::TeamError> for AppError {
    fn from(error: crate::team::TeamError) -> Self {
        use crate::team::TeamError;
        match error {
            TeamError::NoTeam => Self::NotFound("there is no such team"),
            TeamError::WrongKey => Self::Forbidden("the team key does not match this team"),
            TeamError::Full(message) => Self::Conflict(message),
            TeamError::Invalid(message) => Self::BadRequest(message),
            TeamError::Failed(cause) => Self::Internal(anyhow::anyhow!("a team failed: {cause}")),
        }
    }
}

impl From<crate::board::AlertError> for AppError {
    fn from(error: crate::board::AlertError) -> Self {
        use crate::board::AlertError;
        match error {
            AlertError::NoBoard => Self::NotFound("there is no such board"),
            AlertError::WrongToken => Self::Forbidden("the alert token does not match this board"),
            AlertError::TooMany(_) => Self::TooManyRequests(error.to_string()),
            AlertError::Failed(cause) => Self::Internal(anyhow::anyhow!("a board failed: {cause}")),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, (*message).to_owned()),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, (*message).to_owned()),
            Self::Conflict(message) => (StatusCode::CONFLICT, message.clone()),
            Self::TooManyRequests(message) => (StatusCode::TOO_MANY_REQUESTS, message.clone()),
            Self::Timeout => (StatusCode::REQUEST_TIMEOUT, self.to_string()),
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error".to_owned())
            }
        };
        (status, Json(ApiError { error: message })).into_response()
    }
}
