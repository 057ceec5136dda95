//! First-come-first-served coupons.
//!
//! An issue is admitted in memory ("has this user one?", "is any left?" in
//! one step), then recorded by the batch writer before the 201. The store
//! enforces both rules again (a unique key per user and coupon, a checked
//! count), so a bug in the tier could fail a request but never over-issue.

use super::batcher::QueueFull;
use super::{Error, Result, Storefront};
use crate::model::{Coupon, DiscountType, Page, Paged, UserCoupon};
use crate::observability::metrics::{Flow, Outcome, Shed};
use crate::ports::{CouponRefused, IssueWrite, Issued, Verdict};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealWindow, UserId};
use std::sync::Arc;
use uuid::Uuid;

/// A validated new coupon.
#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub name: String,
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub max_discount: Option<i64>,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub window: DealWindow,
}

impl Storefront {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_coupon(&self, creator: UserId, c: NewCoupon) -> Result<Coupon> {
        // Nothing in the coupon's row refers to its creator, so the store
        // would not notice a token of a user it does not have.
        if self.store.user_by_id(creator).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        let coupon = Coupon {
            id: Uuid::now_v7(),
            name: c.name,
            discount_type: c.discount_type,
            discount_value: c.discount_value,
            max_discount: c.max_discount,
            min_order_amount: c.min_order_amount,
            total_quantity: c.total_quantity,
            issued_count: 0,
            window: c.window,
            created_by: creator,
            created_at: self.clock.now(),
        };
        self.ledger.insert_coupon(&coupon).await?;
        // A tier that cannot take it now is seeded on the first issue.
        let _ = self
            .coupon_admission
            .open_coupon(coupon.id, coupon.total_quantity, &[])
            .await;
        self.coupons
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(coupon.id, Arc::new(coupon.clone()));
        Ok(coupon)
    }

    /// A coupon with its live issued count.
    pub async fn coupon(&self, id: Uuid) -> Result<Coupon> {
        let cached = self
            .coupons
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        // A miss reads through: another instance may have created it, its
        // event still on the way. Only found coupons are cached.
        let cached = match cached {
            Some(c) => c,
            None => self.reload_coupon(id).await?.ok_or(Error::NotFound)?,
        };
        let mut coupon = (*cached).clone();
        if let Some(issued) = self.coupon_admission.issued(id) {
            coupon.issued_count = issued;
        }
        Ok(coupon)
    }

    /// Reads a coupon's definition from the store into memory; `None` if
    /// it does not exist.
    pub async fn reload_coupon(&self, id: Uuid) -> Result<Option<Arc<Coupon>>> {
        let Some(coupon) = self.ledger.coupon(id).await? else {
            return Ok(None);
        };
        let coupon = Arc::new(coupon);
        self.coupons
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, coupon.clone());
        Ok(Some(coupon))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn issue_coupon(&self, user: UserId, id: Uuid) -> Result<UserCoupon> {
        let coupon = self.coupon(id).await?;
        let now = self.clock.now();
        if !coupon.window.is_running(now) {
            return Err(Error::CouponNotActive);
        }
        // The user-coupon's id names the reservation and the fence, so it
        // exists before anything is taken.
        let user_coupon = UserCoupon {
            id: Uuid::now_v7(),
            coupon_id: id,
            user_id: user,
            used: false,
            issued_at: now,
            used_at: None,
            order_id: None,
        };
        let hold = self
            .hold_issue(user_coupon.id, id, user)
            .await
            .map_err(|r| match r {
                CouponRefused::AlreadyIssued => {
                    self.metrics.admission(Flow::Coupon, Outcome::AlreadyIssued);
                    Error::CouponAlreadyIssued
                }
                CouponRefused::SoldOut => {
                    self.metrics.admission(Flow::Coupon, Outcome::SoldOut);
                    Error::CouponSoldOut
                }
                CouponRefused::Unavailable | CouponRefused::Unseeded => {
                    self.metrics.admission(Flow::Coupon, Outcome::Shed);
                    Error::Overloaded
                }
            })?;
        let committed = match self.issues.submit(IssueWrite { user_coupon }, hold) {
            Ok(committed) => committed,
            Err(QueueFull(hold)) => {
                self.coupon_admission
                    .settle_issues(vec![(hold, Verdict::Abort)])
                    .await;
                self.metrics.admission(Flow::Coupon, Outcome::Shed);
                self.metrics.shed(Shed::IssueQueue);
                return Err(Error::Overloaded);
            }
        };
        self.metrics.admission(Flow::Coupon, Outcome::Admitted);
        let (issued, write) = committed
            .await
            .map_err(|_| Error::Internal("the coupon writer stopped".into()))?;
        match issued? {
            Issued::Issued => {
                self.metrics
                    .coupons_issued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(write.user_coupon)
            }
            Issued::AlreadyIssued => Err(Error::CouponAlreadyIssued),
            Issued::SoldOut => Err(Error::CouponSoldOut),
            // Its reservation outlived the deadline before the write landed.
            Issued::Aborted => Err(Error::Overloaded),
        }
    }

    pub async fn coupons_of(&self, user: UserId, page: Page) -> Result<Paged<UserCoupon>> {
        Ok(self.ledger.user_coupons(user, page).await?)
    }

    /// Which coupon `id` names for `user` (a coupon's id, or the id of the
    /// user's copy of it from `GET /users/me/coupons`) and the discount it
    /// gives on the order's `lines` (seller, subtotal), if they may use it
    /// now. A coupon discounts only its creator's products: the minimum, the
    /// percentage and the cap apply to the subtotal of those lines. The
    /// store re-checks "unused and theirs" when it commits.
    pub(super) async fn coupon_discount(
        &self,
        user: UserId,
        id: Uuid,
        lines: &[(UserId, i64)],
    ) -> Result<(Uuid, i64)> {
        let not_usable = |why: &str| Error::CouponNotUsable(why.to_owned());
        let coupon = match self.coupon(id).await {
            Ok(coupon) => coupon,
            Err(_) => match self.ledger.user_coupon_by_id(id).await? {
                Some(uc) if uc.user_id == user => self
                    .coupon(uc.coupon_id)
                    .await
                    .map_err(|_| not_usable("no such coupon"))?,
                _ => return Err(not_usable("no such coupon")),
            },
        };
        let now: DateTime<Utc> = self.clock.now();
        if now >= coupon.window.ends_at {
            return Err(not_usable("the coupon has expired"));
        }
        match self.ledger.user_coupon(coupon.id, user).await? {
            Some(uc) if !uc.used => {}
            Some(_) => return Err(not_usable("the coupon was already used")),
            None => return Err(not_usable("the coupon was not issued to this user")),
        }
        let (mut eligible, mut any) = (0i64, false);
        for &(seller, subtotal) in lines {
            if seller == coupon.created_by {
                eligible = eligible.saturating_add(subtotal);
                any = true;
            }
        }
        if !any {
            return Err(not_usable(
                "the coupon applies only to products of the seller who created it",
            ));
        }
        let discount = coupon.discount_on(eligible).ok_or_else(|| {
            not_usable(&format!(
                "the seller's products in the order are below the minimum of {} won",
                coupon.min_order_amount
            ))
        })?;
        Ok((coupon.id, discount))
    }
}
