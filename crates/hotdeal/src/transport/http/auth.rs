//! `/auth/*`: sign-up, login, refresh, verify, me.

use super::dto::{
    LoginIn, LogoutIn, RefreshIn, RegisterIn, RegisteredOut, TokensOut, UserOut, VerifyOut,
};
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, JsonBody, OptionalJsonBody};
use super::Ctx;
use crate::services::Accounts;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Sign up.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterIn,
    responses(
        (status = 201, body = RegisteredOut, description = "Registered: the user, plus a token pair (no second password hash to log in)"),
        (status = 400, body = ErrorBody, description = "BAD_REQUEST: not JSON"),
        (status = 409, body = ErrorBody, description = "EMAIL_EXISTS"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR: email not an address, password shorter than 8, name not 2..50 chars"),
        (status = 503, body = ErrorBody, description = "OVERLOADED: password hashing saturated; see Retry-After"),
    ))]
pub async fn register(
    State(app): State<Ctx<Accounts>>,
    JsonBody(body): JsonBody<RegisterIn>,
) -> ApiResult<(StatusCode, Json<RegisteredOut>)> {
    let reg = body.parse().map_err(ApiError::validation)?;
    let user = app.register(reg).await?;
    let tokens = app.issue_tokens(user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredOut {
            user: user.into(),
            tokens: tokens.into(),
        }),
    ))
}

/// Log in.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginIn,
    responses(
        (status = 200, body = TokensOut, description = "Signed in"),
        (status = 401, body = ErrorBody, description = "INVALID_CREDENTIALS: unknown email or wrong password"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
        (status = 503, body = ErrorBody, description = "OVERLOADED"),
    ))]
pub async fn login(
    State(app): State<Ctx<Accounts>>,
    JsonBody(body): JsonBody<LoginIn>,
) -> ApiResult<Json<TokensOut>> {
    Ok(Json(app.login(&body.email, body.password).await?.into()))
}

/// Trade a refresh token (single-use) for a new pair.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses(
        (status = 200, body = TokensOut, description = "A new token pair"),
        (status = 401, body = ErrorBody, description = "INVALID_TOKEN: unknown, used or expired"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
    ))]
pub async fn refresh(
    State(app): State<Ctx<Accounts>>,
    JsonBody(body): JsonBody<RefreshIn>,
) -> ApiResult<Json<TokensOut>> {
    Ok(Json(app.refresh(&body.refresh_token).await?.into()))
}

/// Check an access token.
#[utoipa::path(get, path = "/auth/verify", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = VerifyOut, description = "The token is valid"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
    ))]
pub async fn verify(AuthUser(user): AuthUser) -> Json<VerifyOut> {
    Json(VerifyOut {
        valid: true,
        user_id: user.0,
    })
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/users/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = UserOut, description = "The user"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
    ))]
pub async fn me(State(app): State<Ctx<Accounts>>, AuthUser(user): AuthUser) -> ApiResult<Response> {
    let body = match app.users.get(user) {
        Some(body) => body,
        None => {
            let out = UserOut::from(app.me(user).await?);
            let body = Bytes::from(
                serde_json::to_vec(&out)
                    .map_err(|e| ApiError::from(crate::services::Error::Internal(e.into())))?,
            );
            app.users.put(user, body.clone());
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

use super::error::ErrorBody;

/// Log out: the given refresh token, or without one every refresh token of
/// the caller, can no longer be used.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = Option<LogoutIn>, description = "Optional: the refresh token to revoke"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, body = ErrorBody, description = "BAD_REQUEST: a body that is not JSON"),
        (status = 401, body = ErrorBody, description = "UNAUTHORIZED / INVALID_TOKEN"),
        (status = 422, body = ErrorBody, description = "VALIDATION_ERROR"),
        (status = 503, body = ErrorBody, description = "OVERLOADED: the store cannot record it now; see Retry-After"),
    ))]
pub async fn logout(
    State(app): State<Ctx<Accounts>>,
    AuthUser(user): AuthUser,
    OptionalJsonBody(body): OptionalJsonBody<LogoutIn>,
) -> ApiResult<StatusCode> {
    app.logout(user, body.refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
