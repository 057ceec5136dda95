//! Order states and the arithmetic of an order's lines.

use crate::ids::{DealId, ProductId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many lines in one order.
pub const MAX_LINES: usize = 10;
/// At most this many units on one line.
pub const MAX_LINE_QUANTITY: i64 = 10;

/// Where a line's units come from: a product's free stock, or the stock a
/// deal set aside. Two lines with the same key compete for the same units,
/// so they are summed before checking (see [`sum_demands`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StockKey {
    Product(ProductId),
    Deal(DealId),
}

impl StockKey {
    /// The id of the product or deal the units belong to.
    pub fn uuid(self) -> uuid::Uuid {
        match self {
            StockKey::Product(p) => p.0,
            StockKey::Deal(d) => d.0,
        }
    }
}

/// One requested line, already parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineDemand {
    pub product_id: ProductId,
    pub deal_id: Option<DealId>,
    pub quantity: i64,
}

impl LineDemand {
    pub fn stock_key(&self) -> StockKey {
        match self.deal_id {
            Some(d) => StockKey::Deal(d),
            None => StockKey::Product(self.product_id),
        }
    }
}

/// Units wanted per stock key, in a stable (sorted) order. The sorted order
/// also gives every transaction the same lock order.
pub fn sum_demands(lines: &[LineDemand]) -> BTreeMap<StockKey, i64> {
    let mut out = BTreeMap::new();
    for l in lines {
        *out.entry(l.stock_key()).or_insert(0) += l.quantity;
    }
    out
}

/// An order's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "shipped" => Self::Shipped,
            "delivered" => Self::Delivered,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Only an order that has not left the warehouse can be cancelled.
    pub fn can_cancel(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

/// Whether an order has been paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Unpaid,
    Paid,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Paid => "paid",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unpaid" => Self::Unpaid,
            "paid" => Self::Paid,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_on_the_same_stock_are_summed() {
        let p = ProductId::new();
        let d = DealId::new();
        let lines = [
            LineDemand {
                product_id: p,
                deal_id: None,
                quantity: 2,
            },
            LineDemand {
                product_id: p,
                deal_id: Some(d),
                quantity: 3,
            },
            LineDemand {
                product_id: p,
                deal_id: None,
                quantity: 4,
            },
        ];
        let sums = sum_demands(&lines);
        assert_eq!(sums.len(), 2);
        assert_eq!(sums[&StockKey::Product(p)], 6);
        assert_eq!(sums[&StockKey::Deal(d)], 3);
    }

    #[test]
    fn status_strings_round_trip() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert!(OrderStatus::Confirmed.can_cancel());
        assert!(!OrderStatus::Shipped.can_cancel());
        assert!(!OrderStatus::Cancelled.can_cancel());
    }

    proptest! {
        #[test]
        fn summing_keeps_the_total(qs in proptest::collection::vec((0usize..3, 1i64..=10), 1..10)) {
            let products = [ProductId::new(), ProductId::new(), ProductId::new()];
            let lines: Vec<_> = qs.iter().map(|&(i, q)| LineDemand {
                product_id: products[i], deal_id: None, quantity: q,
            }).collect();
            let sums = sum_demands(&lines);
            prop_assert_eq!(sums.values().sum::<i64>(), qs.iter().map(|q| q.1).sum::<i64>());
            prop_assert!(sums.len() <= 3);
        }
    }
}
