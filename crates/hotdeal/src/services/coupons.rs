//! First-come-first-served coupons.
//!
//! An issue is admitted in memory ("has this user one?", "is any left?" in
//! one step), then recorded by the batch writer before the 201. The store
//! enforces both rules again (a unique key per user and coupon, a checked
//! count), so a bug in the tier could fail a request but never over-issue.
//!
//! Two parts: [`CouponBook`] keeps the coupons' definitions (what the
//! order service reads to price a discount), and [`Coupons`] is the coupon
//! context itself — the tier, the issue writer, the book. A process with
//! the order role and not the coupon role builds only the book.

use super::batcher::{Batcher, QueueFull};
use super::tier::{self, Seeding};
use super::{Error, Result, WritePath};
use crate::model::{Coupon, DiscountType, Page, Paged, UserCoupon};
use crate::observability::metrics::{Flow, Metrics, Outcome, Shed};
use crate::ports::{
    Clock, CouponAdmission, CouponLedger, CouponRefused, IssueHold, IssueWrite, Issued,
    ReservationFence, UserStore, Verdict,
};
use chrono::{DateTime, Utc};
use hotdeal_domain::{DealWindow, UserId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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

/// The coupon context: creating coupons and issuing them first come,
/// first served.
pub struct Coupons {
    /// The definitions (shared with the order service).
    book: Arc<CouponBook>,
    pub(super) ledger: Arc<dyn CouponLedger>,
    /// Only to check that a coupon's creator exists (see
    /// [`Coupons::create_coupon`]).
    users: Arc<dyn UserStore>,
    /// Who holds which coupon and how many are left.
    pub admission: Arc<dyn CouponAdmission>,
    /// The shared tier's reservation fence, for the issue reconciler.
    pub(super) fence: Arc<dyn ReservationFence>,
    /// Writes admitted coupon issues in batches.
    issues: Batcher<IssueWrite, Issued, IssueHold>,
    /// Coupons of a shared tier this instance is seeding now.
    pub(super) seeding: Seeding,
    pub(super) clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Coupons {
    /// Opens every coupon in the tier (only what it lacks: a shared tier
    /// keeps what other instances issued) and starts the issue writer.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        book: Arc<CouponBook>,
        ledger: Arc<dyn CouponLedger>,
        users: Arc<dyn UserStore>,
        fence: Arc<dyn ReservationFence>,
        admission: Arc<dyn CouponAdmission>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        path: WritePath,
    ) -> Result<Self> {
        let mut holders: HashMap<Uuid, Vec<_>> = HashMap::new();
        for (coupon, user, _) in ledger.coupon_holders().await? {
            holders.entry(coupon).or_default().push(user);
        }
        for c in book.all() {
            let held = holders.remove(&c.id).unwrap_or_default();
            let _ = admission.open_coupon(c.id, c.total_quantity, &held).await;
        }
        let writer = ledger.clone();
        let issues = Batcher::start(
            Box::new(move |writes: Vec<IssueWrite>| {
                let ledger = writer.clone();
                Box::pin(async move {
                    let outcomes = ledger.issue_coupons(&writes).await;
                    (writes, outcomes)
                })
            }),
            tier::issue_verdict,
            {
                let tier = admission.clone();
                Box::new(move |done| {
                    let tier = tier.clone();
                    Box::pin(async move { tier.settle_issues(done).await })
                })
            },
            path.queue,
            path.max_batch,
        );
        Ok(Self {
            book,
            ledger,
            users,
            admission,
            fence,
            issues,
            seeding: Seeding::default(),
            clock,
            metrics,
        })
    }

    /// The issue writer, for the metrics.
    pub(super) fn writer(&self) -> &Batcher<IssueWrite, Issued, IssueHold> {
        &self.issues
    }

    /// Every coupon's definition in memory (for the ops view).
    pub(super) fn definitions(&self) -> Vec<Arc<Coupon>> {
        self.book.all()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_coupon(&self, creator: UserId, c: NewCoupon) -> Result<Coupon> {
        // Nothing in the coupon's row refers to its creator, so the store
        // would not notice a token of a user it does not have.
        if self.users.user_by_id(creator).await?.is_none() {
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
            .admission
            .open_coupon(coupon.id, coupon.total_quantity, &[])
            .await;
        self.book.put(Arc::new(coupon.clone()));
        Ok(coupon)
    }

    /// A coupon with its live issued count.
    pub async fn coupon(&self, id: Uuid) -> Result<Coupon> {
        let mut coupon = (*self.book.coupon(id).await?).clone();
        if let Some(issued) = self.admission.issued(id) {
            coupon.issued_count = issued;
        }
        Ok(coupon)
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
                self.admission
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
}

/// The coupons' definitions in memory (their counts are in the tier), and
/// the users' copies in the ledger: what a discount is computed from.
pub struct CouponBook {
    ledger: Arc<dyn CouponLedger>,
    /// A std RwLock: written when a coupon is created or reloaded, held
    /// for a lookup or an insert, never across an await.
    coupons: RwLock<HashMap<Uuid, Arc<Coupon>>>,
}

impl CouponBook {
    /// Loads every coupon's definition.
    pub async fn load(ledger: Arc<dyn CouponLedger>) -> Result<Self> {
        let coupons = ledger
            .coupons()
            .await?
            .into_iter()
            .map(|c| (c.id, Arc::new(c)))
            .collect();
        Ok(Self {
            ledger,
            coupons: RwLock::new(coupons),
        })
    }

    fn put(&self, coupon: Arc<Coupon>) {
        self.coupons
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(coupon.id, coupon);
    }

    /// Every coupon held in memory.
    fn all(&self) -> Vec<Arc<Coupon>> {
        self.coupons
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A coupon's definition. A miss reads through: another instance may
    /// have created it, its event still on the way. Only found coupons
    /// are cached.
    pub async fn coupon(&self, id: Uuid) -> Result<Arc<Coupon>> {
        let cached = self
            .coupons
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        match cached {
            Some(c) => Ok(c),
            None => self.reload(id).await?.ok_or(Error::NotFound),
        }
    }

    /// Reads a coupon's definition from the store into memory; `None` if
    /// it does not exist.
    pub async fn reload(&self, id: Uuid) -> Result<Option<Arc<Coupon>>> {
        let Some(coupon) = self.ledger.coupon(id).await? else {
            return Ok(None);
        };
        let coupon = Arc::new(coupon);
        self.put(coupon.clone());
        Ok(Some(coupon))
    }

    /// Which coupon `id` names for `user` (a coupon's id, or the id of the
    /// user's copy of it from `GET /users/me/coupons`) and the discount it
    /// gives on the order's `lines` (seller, subtotal), if they may use it
    /// now. A coupon discounts only its creator's products: the minimum, the
    /// percentage and the cap apply to the subtotal of those lines. The
    /// store re-checks "unused and theirs" when it commits.
    pub async fn discount(
        &self,
        now: DateTime<Utc>,
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
