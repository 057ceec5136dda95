//! Sign-up, login, token refresh and the current user (the auth context),
//! and the token check every role makes.
//!
//! [`Accounts`] holds the user store and the password hasher: only a
//! process with the auth role builds it. Every other role checks the
//! bearer tokens it signed with [`Authenticator`], which holds the token
//! keys and the clock and nothing else.

use super::tokens::TokenKeys;
use super::tokens::ACCESS_TOKEN_TTL_SECS;
use super::{Error, Result};
use crate::model::User;
use crate::ports::hasher::HasherStats;
use crate::ports::{Clock, PasswordHasher, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::Duration;
use hotdeal_domain::UserId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How long a refresh token may be used.
const REFRESH_TOKEN_TTL_DAYS: i64 = 14;

/// A validated sign-up request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
}

/// Emails are compared without regard to case or surrounding blanks.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn refresh_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The auth context: users, their passwords and sessions.
pub struct Accounts {
    users: Arc<dyn UserStore>,
    /// Argon2 on its own threads, with a bounded queue.
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    /// Signs the access tokens every role checks.
    tokens: TokenKeys,
}

impl Accounts {
    pub fn new(
        users: Arc<dyn UserStore>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        tokens: TokenKeys,
    ) -> Self {
        Self {
            users,
            hasher,
            clock,
            tokens,
        }
    }

    /// The user store, for tools and tests that create users without
    /// hashing a password.
    pub fn store(&self) -> &dyn UserStore {
        &*self.users
    }

    /// The hasher's load, for the metrics.
    pub fn hasher_stats(&self) -> Option<HasherStats> {
        self.hasher.stats()
    }

    /// Whether a user signed up with `email`.
    pub async fn registered(&self, email: &str) -> Result<bool> {
        Ok(self
            .users
            .user_by_email(&normalize_email(email))
            .await?
            .is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn register(&self, r: Registration) -> Result<User> {
        let email = normalize_email(&r.email);
        // Checked before hashing so a duplicate costs no Argon2 time; the
        // unique index still decides races.
        if self.users.user_by_email(&email).await?.is_some() {
            return Err(Error::EmailExists);
        }
        let password_hash = self.hasher.hash(r.password).await?;
        let user = User {
            id: UserId::new(),
            email,
            name: r.name.trim().to_owned(),
            password_hash,
            created_at: self.clock.now(),
        };
        self.users.insert_user(&user).await?;
        Ok(user)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn login(&self, email: &str, password: String) -> Result<TokenPair> {
        let user = self.users.user_by_email(&normalize_email(email)).await?;
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        if !self.hasher.verify(password, phc).await? {
            return Err(Error::InvalidCredentials);
        }
        let user = user.ok_or(Error::InvalidCredentials)?;
        self.issue_tokens(user.id).await
    }

    /// Trades a refresh token for a new pair; each refresh token works once.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let user = self
            .users
            .consume_refresh_token(&refresh_hash(refresh_token), self.clock.now())
            .await?
            .ok_or(Error::InvalidToken)?;
        self.issue_tokens(user).await
    }

    pub async fn issue_tokens(&self, user: UserId) -> Result<TokenPair> {
        let now = self.clock.now();
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let refresh_token = B64.encode(raw);
        self.users
            .insert_refresh_token(
                &refresh_hash(&refresh_token),
                user,
                now + Duration::days(REFRESH_TOKEN_TTL_DAYS),
            )
            .await?;
        Ok(TokenPair {
            access_token: self.tokens.issue(user, now),
            refresh_token,
            expires_in: ACCESS_TOKEN_TTL_SECS,
        })
    }

    /// Ends sessions: the given refresh token of `user`, or without one
    /// every refresh token of theirs, can no longer be used. Access tokens
    /// already handed out stay valid until they expire (at most an hour).
    pub async fn logout(&self, user: UserId, refresh_token: Option<&str>) -> Result<()> {
        let hash = refresh_token.map(refresh_hash);
        self.users
            .revoke_refresh_tokens(user, hash.as_ref(), self.clock.now())
            .await?;
        Ok(())
    }

    pub async fn me(&self, user: UserId) -> Result<User> {
        // A valid token for a user that no longer exists is not valid.
        self.users
            .user_by_id(user)
            .await?
            .ok_or(Error::InvalidToken)
    }
}

/// Checks the access tokens the auth role signed: what every role needs
/// of the auth context.
pub struct Authenticator {
    pub tokens: TokenKeys,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(tokens: TokenKeys, clock: Arc<dyn Clock>) -> Self {
        Self { tokens, clock }
    }

    /// The user a bearer token names.
    pub fn authenticate(&self, bearer: &str) -> Result<UserId> {
        self.tokens
            .verify(bearer, self.clock.now())
            .ok_or(Error::InvalidToken)
    }
}
