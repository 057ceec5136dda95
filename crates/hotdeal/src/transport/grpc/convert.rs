//! Between the tier's port types and their protobuf messages. A message
//! that does not parse (a malformed id, a missing key) is an
//! `InvalidArgument` on the server and a failed call on the client.

use super::proto;
use crate::model::{Deal, Product};
use crate::ports::{Hold, Increase, LimitClaim, Refused, Verdict};
use chrono::{DateTime, TimeZone, Utc};
use hotdeal_domain::{DealId, DealWindow, ProductId, StockKey, UserId};
use uuid::Uuid;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

impl From<Malformed> for tonic::Status {
    fn from(m: Malformed) -> Self {
        tonic::Status::invalid_argument(m.to_string())
    }
}

pub fn uuid(text: &str, what: &'static str) -> Result<Uuid, Malformed> {
    text.parse().map_err(|_| Malformed(what))
}

pub fn key_to(key: StockKey) -> proto::StockKey {
    use proto::stock_key::Key;
    proto::StockKey {
        key: Some(match key {
            StockKey::Product(p) => Key::ProductId(p.0.to_string()),
            StockKey::Deal(d) => Key::DealId(d.0.to_string()),
        }),
    }
}

pub fn key_from(key: Option<&proto::StockKey>) -> Result<StockKey, Malformed> {
    use proto::stock_key::Key;
    match key.and_then(|k| k.key.as_ref()) {
        Some(Key::ProductId(p)) => Ok(StockKey::Product(ProductId(uuid(p, "product id")?))),
        Some(Key::DealId(d)) => Ok(StockKey::Deal(DealId(uuid(d, "deal id")?))),
        None => Err(Malformed("stock key")),
    }
}

pub fn units_to(list: impl IntoIterator<Item = (StockKey, i64)>) -> Vec<proto::Units> {
    list.into_iter()
        .map(|(key, units)| proto::Units {
            key: Some(key_to(key)),
            units,
        })
        .collect()
}

pub fn units_from(list: &[proto::Units]) -> Result<Vec<(StockKey, i64)>, Malformed> {
    list.iter()
        .map(|u| Ok((key_from(u.key.as_ref())?, u.units)))
        .collect()
}

pub fn user_units_to(list: &[(UserId, i64)]) -> Vec<proto::UserUnits> {
    list.iter()
        .map(|(user, units)| proto::UserUnits {
            user_id: user.0.to_string(),
            units: *units,
        })
        .collect()
}

pub fn user_units_from(list: &[proto::UserUnits]) -> Result<Vec<(UserId, i64)>, Malformed> {
    list.iter()
        .map(|u| Ok((UserId(uuid(&u.user_id, "user id")?), u.units)))
        .collect()
}

pub fn limits_to(limits: &[LimitClaim]) -> Vec<proto::LimitClaim> {
    limits
        .iter()
        .map(|l| proto::LimitClaim {
            deal_id: l.deal.0.to_string(),
            units: l.units,
            limit: l.limit,
        })
        .collect()
}

pub fn limits_from(limits: &[proto::LimitClaim]) -> Result<Vec<LimitClaim>, Malformed> {
    limits
        .iter()
        .map(|l| {
            Ok(LimitClaim {
                deal: DealId(uuid(&l.deal_id, "deal id")?),
                units: l.units,
                limit: l.limit,
            })
        })
        .collect()
}

pub fn hold_to(h: &Hold) -> proto::Hold {
    proto::Hold {
        id: h.id.to_string(),
        user_id: h.user.0.to_string(),
        taken: units_to(h.taken.iter().copied()),
        claimed: h
            .claimed
            .iter()
            .map(|(deal, units)| proto::DealUnits {
                deal_id: deal.0.to_string(),
                units: *units,
            })
            .collect(),
    }
}

pub fn hold_from(h: Option<&proto::Hold>) -> Result<Hold, Malformed> {
    let h = h.ok_or(Malformed("hold"))?;
    Ok(Hold {
        id: uuid(&h.id, "reservation id")?,
        user: UserId(uuid(&h.user_id, "user id")?),
        taken: units_from(&h.taken)?,
        claimed: h
            .claimed
            .iter()
            .map(|c| Ok((DealId(uuid(&c.deal_id, "deal id")?), c.units)))
            .collect::<Result<_, Malformed>>()?,
    })
}

pub fn refusal_to(r: Refused) -> proto::Refusal {
    use proto::refusal::Reason;
    proto::Refusal {
        reason: Some(match r {
            Refused::Stock {
                key,
                requested,
                available,
            } => Reason::Stock(proto::StockShort {
                key: Some(key_to(key)),
                requested,
                available,
            }),
            Refused::Limit { deal, limit, held } => Reason::Limit(proto::LimitReached {
                deal_id: deal.0.to_string(),
                limit,
                held,
            }),
            Refused::Unavailable => Reason::Unavailable(proto::Unavailable {}),
            Refused::Unseeded(key) => Reason::Unseeded(key_to(key)),
        }),
    }
}

pub fn refusal_from(r: Option<&proto::Refusal>) -> Result<Refused, Malformed> {
    use proto::refusal::Reason;
    Ok(match r.and_then(|r| r.reason.as_ref()) {
        Some(Reason::Stock(s)) => Refused::Stock {
            key: key_from(s.key.as_ref())?,
            requested: s.requested,
            available: s.available,
        },
        Some(Reason::Limit(l)) => Refused::Limit {
            deal: DealId(uuid(&l.deal_id, "deal id")?),
            limit: l.limit,
            held: l.held,
        },
        Some(Reason::Unavailable(_)) => Refused::Unavailable,
        Some(Reason::Unseeded(k)) => Refused::Unseeded(key_from(Some(k))?),
        None => return Err(Malformed("refusal")),
    })
}

/// An optional refusal field: absent means the call went through.
pub fn outcome_from(r: Option<&proto::Refusal>) -> Result<Result<(), Refused>, Malformed> {
    match r {
        None => Ok(Ok(())),
        Some(r) => Ok(Err(refusal_from(Some(r))?)),
    }
}

pub fn settlement_to((hold, verdict): &(Hold, Verdict)) -> proto::Settlement {
    let (verdict, overcounted) = match verdict {
        Verdict::Commit => (proto::Verdict::Commit, None),
        Verdict::Abort => (proto::Verdict::Abort, None),
        Verdict::Overcounted(key) => (proto::Verdict::Overcounted, Some(key_to(*key))),
    };
    proto::Settlement {
        hold: Some(hold_to(hold)),
        verdict: verdict as i32,
        overcounted,
    }
}

pub fn settlement_from(s: &proto::Settlement) -> Result<(Hold, Verdict), Malformed> {
    let hold = hold_from(s.hold.as_ref())?;
    let verdict = match proto::Verdict::try_from(s.verdict) {
        Ok(proto::Verdict::Commit) => Verdict::Commit,
        Ok(proto::Verdict::Abort) => Verdict::Abort,
        Ok(proto::Verdict::Overcounted) => Verdict::Overcounted(key_from(s.overcounted.as_ref())?),
        _ => return Err(Malformed("verdict")),
    };
    Ok((hold, verdict))
}

pub fn increases_to(list: &[Increase]) -> Vec<proto::Increase> {
    list.iter()
        .map(|i| proto::Increase {
            key: Some(key_to(i.key)),
            units: i.units,
            unclaim: i.unclaim.map(|(user, units)| proto::UserUnits {
                user_id: user.0.to_string(),
                units,
            }),
        })
        .collect()
}

pub fn increases_from(list: &[proto::Increase]) -> Result<Vec<Increase>, Malformed> {
    list.iter()
        .map(|i| {
            Ok(Increase {
                key: key_from(i.key.as_ref())?,
                units: i.units,
                unclaim: match &i.unclaim {
                    Some(u) => Some((UserId(uuid(&u.user_id, "user id")?), u.units)),
                    None => None,
                },
            })
        })
        .collect()
}

/// An instant as milliseconds since the Unix epoch (the proto's unit).
pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn instant(ms: i64, what: &'static str) -> Result<DateTime<Utc>, Malformed> {
    Utc.timestamp_millis_opt(ms).single().ok_or(Malformed(what))
}

pub fn product_to(p: Product) -> proto::Product {
    proto::Product {
        id: p.id.0.to_string(),
        seller_id: p.seller_id.0.to_string(),
        name: p.name,
        description: p.description,
        price: p.price,
        stock: p.stock,
        category: p.category,
        image_url: p.image_url,
        created_at_ms: millis(p.created_at),
        updated_at_ms: millis(p.updated_at),
    }
}

pub fn product_from(p: proto::Product) -> Result<Product, Malformed> {
    Ok(Product {
        id: ProductId(uuid(&p.id, "product id")?),
        seller_id: UserId(uuid(&p.seller_id, "seller id")?),
        name: p.name,
        description: p.description,
        price: p.price,
        stock: p.stock,
        category: p.category,
        image_url: p.image_url,
        created_at: instant(p.created_at_ms, "product creation time")?,
        updated_at: instant(p.updated_at_ms, "product update time")?,
    })
}

/// A deal as the product service answers it, `status` named as the public
/// API names it.
pub fn deal_to(d: Deal, status: String) -> proto::Deal {
    proto::Deal {
        id: d.id.0.to_string(),
        product_id: d.product_id.0.to_string(),
        deal_price: d.deal_price,
        deal_stock: d.deal_stock,
        remaining_stock: d.remaining_stock,
        per_user_limit: d.per_user_limit,
        starts_at_ms: millis(d.window.starts_at),
        ends_at_ms: millis(d.window.ends_at),
        status,
        waiting_room: d.waiting_room,
        created_at_ms: millis(d.created_at),
        settled_at_ms: d.settled_at.map(millis),
        queue_admit_per_sec: d.queue_admit_per_sec,
    }
}

pub fn deal_from(d: proto::Deal) -> Result<Deal, Malformed> {
    let window = DealWindow::new(
        instant(d.starts_at_ms, "deal start")?,
        instant(d.ends_at_ms, "deal end")?,
    )
    .ok_or(Malformed("deal window"))?;
    Ok(Deal {
        id: DealId(uuid(&d.id, "deal id")?),
        product_id: ProductId(uuid(&d.product_id, "product id")?),
        deal_price: d.deal_price,
        deal_stock: d.deal_stock,
        remaining_stock: d.remaining_stock,
        per_user_limit: d.per_user_limit,
        window,
        settled_at: d
            .settled_at_ms
            .map(|ms| instant(ms, "deal settlement time"))
            .transpose()?,
        created_at: instant(d.created_at_ms, "deal creation time")?,
        waiting_room: d.waiting_room,
        queue_admit_per_sec: d.queue_admit_per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_refusals_and_verdicts_survive_the_wire() {
        let deal = DealId(Uuid::new_v4());
        let hold = Hold {
            id: Uuid::new_v4(),
            user: UserId(Uuid::new_v4()),
            taken: vec![
                (StockKey::Deal(deal), 2),
                (StockKey::Product(ProductId(Uuid::new_v4())), 1),
            ],
            claimed: vec![(deal, 2)],
        };
        assert_eq!(hold_from(Some(&hold_to(&hold))).expect("hold"), hold);
        for r in [
            Refused::Stock {
                key: StockKey::Deal(deal),
                requested: 3,
                available: 1,
            },
            Refused::Limit {
                deal,
                limit: 2,
                held: 2,
            },
            Refused::Unavailable,
            Refused::Unseeded(StockKey::Deal(deal)),
        ] {
            assert_eq!(refusal_from(Some(&refusal_to(r))).expect("refusal"), r);
        }
        for v in [
            Verdict::Commit,
            Verdict::Abort,
            Verdict::Overcounted(StockKey::Deal(deal)),
        ] {
            let pair = (hold.clone(), v);
            assert_eq!(
                settlement_from(&settlement_to(&pair)).expect("settlement"),
                pair
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused_not_guessed() {
        let bad = proto::StockKey {
            key: Some(proto::stock_key::Key::DealId("not-a-uuid".into())),
        };
        assert!(key_from(Some(&bad)).is_err());
        assert!(key_from(Some(&proto::StockKey { key: None })).is_err());
        assert!(hold_from(None).is_err());
        let unset = proto::Settlement {
            hold: Some(proto::Hold::default()),
            verdict: 0,
            overcounted: None,
        };
        assert!(settlement_from(&unset).is_err());
    }
}
