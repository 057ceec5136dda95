//! Points: balance, charges and history (the point context). Paying an
//! order with points is the order service's: the store moves the points
//! in the order's own transaction.

use super::idempotency::IdempotencyKey;
use super::Result;
use crate::model::{Page, Paged, PointAccount, PointEntry};
use crate::ports::{Charge, Clock, PointsLedger};
use hotdeal_domain::UserId;
use std::sync::Arc;

/// Renders a charge as the API answers it (for idempotency answers).
pub type RenderCharge = fn(&Charge) -> Vec<u8>;

/// The point context: the points ledger and a clock.
pub struct Points {
    ledger: Arc<dyn PointsLedger>,
    clock: Arc<dyn Clock>,
}

impl Points {
    pub fn new(ledger: Arc<dyn PointsLedger>, clock: Arc<dyn Clock>) -> Self {
        Self { ledger, clock }
    }

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
