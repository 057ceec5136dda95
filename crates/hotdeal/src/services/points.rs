//! Points: balance, charges and history.

use super::idempotency::IdempotencyKey;
use super::{Result, Storefront};
use crate::model::{Page, Paged, PointAccount, PointEntry};
use crate::ports::Charge;
use hotdeal_domain::UserId;

/// Renders a charge as the API answers it (for idempotency answers).
pub type RenderCharge = fn(&Charge) -> Vec<u8>;

impl Storefront {
    /// The balance; a user who never charged has 0.
    pub async fn points(&self, user: UserId) -> Result<PointAccount> {
        Ok(self
            .ledger
            .point_account(user)
            .await?
            .unwrap_or(PointAccount {
                user_id: user,
                balance: 0,
                updated_at: self.clock.now(),
            }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn charge_points(
        &self,
        user: UserId,
        amount: i64,
        idempotency: Option<(&IdempotencyKey, RenderCharge)>,
    ) -> Result<Charge> {
        let idem = idempotency
            .as_ref()
            .map(|(key, render)| key.write(user, 201, render));
        Ok(self
            .ledger
            .charge(user, amount, self.clock.now(), idem.as_ref())
            .await?)
    }

    pub async fn point_history(&self, user: UserId, page: Page) -> Result<Paged<PointEntry>> {
        Ok(self.ledger.point_history(user, page).await?)
    }
}
