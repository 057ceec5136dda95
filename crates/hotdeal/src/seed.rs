//! `hotdeal seed demo`: a realistic demo catalogue, written through the same
//! services the API uses (so it obeys every rule the API does).
//!
//! A seller with ~50 products in five categories and 20 deals: 16 running
//! now, 3 scheduled for later, 1 sold out (its only unit bought by the demo
//! buyer). Both demo accounts use the password `hotdeal-demo`.

use crate::model::Page;
use crate::services::{
    Accounts, Catalogue, Error, NewDeal, NewProduct, Ordering, PlaceOrder, Registration, Storefront,
};
use anyhow::Context;
use chrono::Duration;
use hotdeal_domain::{DealWindow, LineDemand, UserId};

pub const SELLER_EMAIL: &str = "seller@hotdeal.dev";
pub const BUYER_EMAIL: &str = "buyer@hotdeal.dev";
pub const DEMO_PASSWORD: &str = "hotdeal-demo";

const CATALOGUE: &[(&str, &[(&str, i64)])] = &[
    (
        "electronics",
        &[
            ("Wireless earbuds", 129_000),
            ("Noise-cancelling headphones", 349_000),
            ("27-inch 4K monitor", 459_000),
            ("Mechanical keyboard", 139_000),
            ("Portable SSD 1TB", 149_000),
            ("Smartwatch", 289_000),
            ("Bluetooth speaker", 89_000),
            ("USB-C hub", 49_000),
            ("Webcam 1080p", 69_000),
            ("Tablet 11-inch", 699_000),
        ],
    ),
    (
        "fashion",
        &[
            ("Down jacket", 259_000),
            ("Running shoes", 139_000),
            ("Wool coat", 329_000),
            ("Leather belt", 59_000),
            ("Cashmere scarf", 99_000),
            ("Denim jeans", 79_000),
            ("Backpack", 89_000),
            ("Sneakers", 119_000),
            ("Knit sweater", 69_000),
            ("Sunglasses", 149_000),
        ],
    ),
    (
        "food",
        &[
            ("Jeju tangerines 5kg", 29_000),
            ("Hanwoo beef set", 189_000),
            ("Coffee beans 1kg", 35_000),
            ("Kimchi 3kg", 32_000),
            ("Rice 10kg", 39_000),
            ("Green tea set", 45_000),
            ("Red ginseng extract", 129_000),
            ("Mixed nuts 1kg", 27_000),
            ("Olive oil 1L", 25_000),
            ("Honey 2kg", 49_000),
        ],
    ),
    (
        "home",
        &[
            ("Robot vacuum", 599_000),
            ("Air purifier", 299_000),
            ("Memory foam pillow", 59_000),
            ("Cotton duvet", 129_000),
            ("Cast iron pan", 69_000),
            ("Electric kettle", 39_000),
            ("Desk lamp", 45_000),
            ("Storage boxes set", 35_000),
            ("Humidifier", 79_000),
            ("Rice cooker", 189_000),
        ],
    ),
    (
        "beauty",
        &[
            ("Sunscreen SPF50", 22_000),
            ("Vitamin C serum", 39_000),
            ("Sheet mask pack", 19_000),
            ("Hair dryer", 129_000),
            ("Perfume 50ml", 119_000),
            ("Moisturiser", 32_000),
            ("Cleansing oil", 25_000),
            ("Lip tint set", 28_000),
            ("Electric toothbrush", 89_000),
            ("Shampoo set", 35_000),
        ],
    ),
];

/// Loads the demo data unless the demo seller already exists. It is
/// written through the auth, product and order services, so the process
/// must run those roles.
pub async fn demo(app: &Storefront) -> anyhow::Result<bool> {
    let (Some(accounts), Some(catalogue), Some(ordering)) =
        (&app.accounts, &app.catalogue, &app.ordering)
    else {
        anyhow::bail!("the demo data needs the auth, product and order roles");
    };
    load(accounts, catalogue, ordering).await
}

async fn load(
    accounts: &Accounts,
    catalogue: &Catalogue,
    ordering: &Ordering,
) -> anyhow::Result<bool> {
    if accounts
        .registered(SELLER_EMAIL)
        .await
        .map_err(service_err)?
    {
        return Ok(false);
    }
    let seller = accounts
        .register(Registration {
            email: SELLER_EMAIL.into(),
            password: DEMO_PASSWORD.into(),
            name: "Demo Seller".into(),
        })
        .await
        .map_err(service_err)?;
    let buyer = accounts
        .register(Registration {
            email: BUYER_EMAIL.into(),
            password: DEMO_PASSWORD.into(),
            name: "Demo Buyer".into(),
        })
        .await
        .map_err(service_err)?;

    let mut products = Vec::new();
    for (category, items) in CATALOGUE {
        for (i, (name, price)) in items.iter().enumerate() {
            let p = catalogue
                .create_product(
                    seller.id,
                    NewProduct {
                        name: (*name).into(),
                        description: Some(format!("{name} — demo catalogue item.")),
                        price: *price,
                        stock: 200 + 50 * i as i64,
                        category: Some((*category).into()),
                        image_url: Some(format!("https://img.hotdeal.example/{category}/{i}.jpg")),
                    },
                )
                .await
                .map_err(service_err)?;
            products.push(p);
        }
    }

    let now = catalogue.now();
    // Every other product gets a deal: 16 running, 3 scheduled, 1 sold out.
    for (n, p) in products.iter().step_by(2).take(20).enumerate() {
        let (starts_at, ends_at, stock) = match n {
            16..=18 => (
                now + Duration::hours(n as i64 - 14),
                now + Duration::hours(n as i64 - 12),
                50,
            ),
            19 => (now - Duration::minutes(10), now + Duration::hours(2), 1),
            _ => (
                now - Duration::minutes(5 * n as i64 + 1),
                now + Duration::hours(2 + n as i64 % 6),
                20 + 10 * (n as i64 % 5),
            ),
        };
        let discount = 10 + (n as i64 * 7) % 50;
        let deal = catalogue
            .create_deal(
                seller.id,
                NewDeal {
                    product_id: p.id,
                    deal_price: p.price * (100 - discount) / 100 / 100 * 100,
                    deal_stock: stock,
                    per_user_limit: (n % 3 == 0).then_some(2),
                    window: DealWindow::new(starts_at, ends_at).context("demo deal window")?,
                    waiting_room: false,
                    queue_admit_per_sec: None,
                },
            )
            .await
            .map_err(service_err)?;
        if n == 19 {
            sell_out(ordering, buyer.id, &deal.deal).await?;
        }
    }
    // Sanity: the catalogue is there.
    let listed = catalogue.running_deals(Page { page: 1, size: 1 });
    tracing::info!(
        products = products.len(),
        running_deals = listed.total,
        "demo data loaded"
    );
    Ok(true)
}

async fn sell_out(
    ordering: &Ordering,
    buyer: UserId,
    deal: &crate::model::Deal,
) -> anyhow::Result<()> {
    ordering
        .place_order(
            buyer,
            PlaceOrder {
                lines: vec![LineDemand {
                    product_id: deal.product_id,
                    deal_id: Some(deal.id),
                    quantity: deal.deal_stock,
                }],
                shipping_address: None,
                coupon_id: None,
                pay_with_points: false,
            },
            None,
        )
        .await
        .map_err(service_err)?;
    Ok(())
}

fn service_err(e: Error) -> anyhow::Error {
    anyhow::anyhow!("seeding demo data: {e}")
}
