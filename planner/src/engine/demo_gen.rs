//! Generating the demo rows: fixed word lists and a seeded splitmix64, so
//! the data is identical on every run and platform (integer arithmetic
//! only). Each table draws from its own seed, so a change to one table's
//! generator leaves the others as they were.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;

use super::demo::{demo_tables, DemoData, ORDER_STATUSES};
use super::demo_words::{
    ADJECTIVES, CATEGORIES, CITIES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, REGIONS,
};

pub const CUSTOMERS: usize = 10_000;
pub const PRODUCTS: usize = 1_000;
pub const ORDERS: usize = 100_000;
/// Exactly what the generator makes (1 to 5 items per order); pinned by a test.
pub const ORDER_ITEMS: usize = 300_276;

/// 2022-01-01 as days since 1970-01-01.
pub const FIRST_DAY: i32 = 18_993;
/// 2025-12-31 as days since 1970-01-01.
pub const LAST_DAY: i32 = FIRST_DAY + 1460;

/// splitmix64: tiny, fast, and good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is negligible here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Skewed toward 0 in `0..n`: the smaller of two uniform draws.
    fn skewed(&mut self, n: u64) -> u64 {
        self.below(n).min(self.below(n))
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Generate every demo table (in [`demo_tables`] order).
pub fn generate() -> DemoData {
    let customers = customers();
    let products = products();
    let orders = orders(&customers);
    let items = order_items(&orders, &products);

    let regions_batch = batch(
        "regions",
        vec![
            Arc::new(Int32Array::from_iter_values(1..=REGIONS.len() as i32)),
            strings(REGIONS.iter().copied()),
        ],
    );
    let customers_batch = batch(
        "customers",
        vec![
            ids(CUSTOMERS),
            strings(customers.iter().map(|c| c.name.as_str())),
            strings(customers.iter().map(|c| c.email.as_str())),
            strings(customers.iter().map(|c| CITIES[c.city].0)),
            strings(customers.iter().map(|c| CITIES[c.city].1)),
            Arc::new(Int32Array::from_iter_values(
                customers.iter().map(|c| CITIES[c.city].2),
            )),
            Arc::new(Date32Array::from_iter_values(
                customers.iter().map(|c| c.created),
            )),
        ],
    );
    let products_batch = batch(
        "products",
        vec![
            ids(PRODUCTS),
            strings(products.iter().map(|p| p.name.as_str())),
            strings(products.iter().map(|p| CATEGORIES[p.category].0)),
            decimals(products.iter().map(|p| p.price), 10),
        ],
    );
    let mut totals = vec![0i64; orders.len()];
    for item in &items {
        totals[item.order] += i64::from(item.quantity) * item.unit_price;
    }
    let orders_batch = batch(
        "orders",
        vec![
            ids(ORDERS),
            Arc::new(Int32Array::from_iter_values(
                orders.iter().map(|o| o.customer as i32 + 1),
            )),
            strings(orders.iter().map(|o| ORDER_STATUSES[o.status])),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                orders.iter().map(|o| o.at_micros),
            )),
            decimals(totals.into_iter(), 12),
        ],
    );
    let items_batch = batch(
        "order_items",
        vec![
            Arc::new(Int32Array::from_iter_values(
                items.iter().map(|i| i.order as i32 + 1),
            )),
            Arc::new(Int32Array::from_iter_values(
                items.iter().map(|i| i.product as i32 + 1),
            )),
            Arc::new(Int32Array::from_iter_values(
                items.iter().map(|i| i.quantity),
            )),
            decimals(items.iter().map(|i| i.unit_price), 10),
        ],
    );
    DemoData {
        tables: vec![
            ("regions", regions_batch),
            ("customers", customers_batch),
            ("products", products_batch),
            ("orders", orders_batch),
            ("order_items", items_batch),
        ],
    }
}

fn batch(table: &str, columns: Vec<ArrayRef>) -> RecordBatch {
    let schema = demo_tables()
        .into_iter()
        .find(|t| t.name == table)
        .map(|t| t.arrow_schema())
        .expect("every generated table is described");
    RecordBatch::try_new(schema, columns).expect("generated columns match the described schema")
}

fn ids(n: usize) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(1..=n as i32))
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut builder = StringBuilder::new();
    for v in values {
        builder.append_value(v);
    }
    Arc::new(builder.finish())
}

/// Cents as `numeric(precision,2)`.
fn decimals(cents: impl Iterator<Item = i64>, precision: u8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter_values(cents.map(i128::from))
            .with_precision_and_scale(precision, 2)
            .expect("a valid decimal type"),
    )
}

struct Customer {
    name: String,
    email: String,
    /// Index into [`CITIES`].
    city: usize,
    /// Sign-up day, days since the epoch.
    created: i32,
}

fn customers() -> Vec<Customer> {
    let mut rng = Rng(0x0C05_7043_5EED_0001);
    let span = (LAST_DAY - FIRST_DAY + 1) as u64;
    // Ids follow sign-up order.
    let mut days: Vec<i32> = (0..CUSTOMERS)
        .map(|_| FIRST_DAY + rng.below(span) as i32)
        .collect();
    days.sort_unstable();
    days.into_iter()
        .enumerate()
        .map(|(i, created)| {
            let first = *rng.pick(FIRST_NAMES);
            let last = *rng.pick(LAST_NAMES);
            let domain = *rng.pick(EMAIL_DOMAINS);
            let local: String = format!("{first}.{last}")
                .chars()
                .filter_map(|c| match c {
                    'ü' => Some('u'),
                    c if c.is_ascii_alphanumeric() || c == '.' => Some(c.to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            Customer {
                name: format!("{first} {last}"),
                email: format!("{local}{}@{domain}", i + 1),
                city: rng.below(CITIES.len() as u64) as usize,
                created,
            }
        })
        .collect()
}

struct Product {
    name: String,
    /// Index into [`CATEGORIES`].
    category: usize,
    /// List price in cents.
    price: i64,
}

fn products() -> Vec<Product> {
    let mut rng = Rng(0x9C0D_0C75_5EED_0002);
    let combos = (CATEGORIES.len() * 10 * ADJECTIVES.len()) as u64;
    (0..PRODUCTS as u64)
        .map(|i| {
            // 7919 is coprime with the number of combinations, so every
            // product gets a different (category, noun, adjective).
            let combo = (i * 7919 + 13) % combos;
            let category = (combo % CATEGORIES.len() as u64) as usize;
            let rest = combo / CATEGORIES.len() as u64;
            let (_, nouns, low, high) = CATEGORIES[category];
            let noun = nouns[(rest % 10) as usize];
            let adjective = ADJECTIVES[(rest / 10) as usize];
            let units = low + rng.skewed((high - low + 1) as u64) as i64;
            let cents = [99, 95, 49, 0][rng.below(4) as usize];
            Product {
                name: format!("{adjective} {noun}"),
                category,
                price: units * 100 + cents,
            }
        })
        .collect()
}

struct Order {
    /// 0-based customer index.
    customer: usize,
    /// Index into [`ORDER_STATUSES`].
    status: usize,
    at_micros: i64,
}

fn orders(customers: &[Customer]) -> Vec<Order> {
    let mut rng = Rng(0x0DE7_5000_5EED_0003);
    let mut orders: Vec<Order> = (0..ORDERS)
        .map(|_| {
            // Early customers have had longer to order, and order more.
            let customer = rng.skewed(customers.len() as u64) as usize;
            let since = customers[customer].created;
            let day = since + rng.below((LAST_DAY - since + 1) as u64) as i32;
            // Mostly between 07:00 and 23:00.
            let second = 7 * 3600 + rng.below(16 * 3600) as i64;
            let age = LAST_DAY - day;
            let status = if rng.chance(6) {
                3 // cancelled
            } else if age <= 2 || (age <= 9 && rng.chance(20)) {
                0 // pending
            } else if age <= 9 {
                1 // shipped
            } else {
                2 // delivered
            };
            Order {
                customer,
                status,
                at_micros: (i64::from(day) * 86_400 + second) * 1_000_000,
            }
        })
        .collect();
    // Ids follow time order; the sort is stable, so ties keep draw order.
    orders.sort_by_key(|o| o.at_micros);
    orders
}

struct Item {
    /// 0-based order index.
    order: usize,
    /// 0-based product index.
    product: usize,
    quantity: i32,
    /// Cents.
    unit_price: i64,
}

fn order_items(orders: &[Order], products: &[Product]) -> Vec<Item> {
    let mut rng = Rng(0x17E3_5000_5EED_0004);
    let mut items = Vec::with_capacity(ORDER_ITEMS);
    for order in 0..orders.len() {
        let lines = 1 + rng.below(5) as usize;
        let first = items.len();
        while items.len() - first < lines {
            // Half the picks favour the lower ids: some products sell more.
            let product = if rng.chance(50) {
                rng.skewed(products.len() as u64)
            } else {
                rng.below(products.len() as u64)
            } as usize;
            if items[first..].iter().any(|i: &Item| i.product == product) {
                continue;
            }
            let quantity = match rng.below(20) {
                0..=11 => 1,
                12..=16 => 2,
                17..=18 => 3,
                _ => 4 + rng.below(2) as i32,
            };
            let list = products[product].price;
            let unit_price = if rng.chance(10) { list * 9 / 10 } else { list };
            items.push(Item {
                order,
                product,
                quantity,
                unit_price,
            });
        }
    }
    items
}
