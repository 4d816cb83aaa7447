//! A shop database behind Helios, with a fake LLM as its provider.

use std::future::Future;
use std::time::Duration;

use crate::common::llm::FakeLlm;
use crate::common::{Helios, PgServer};
use tokio_postgres::error::DbError;
use tokio_postgres::SimpleQueryMessage;

/// The shop schema: customers, orders, products, with comments, keys and
/// analyzed statistics (so common values reach the catalog).
pub const SHOP: &str = "
create table customers (id int primary key, name text not null, city text not null);
comment on table customers is 'people who buy from the shop';
create table products (id int primary key, title text not null, price numeric(10,2) not null);
create table orders (
  id int primary key,
  customer_id int not null references customers(id),
  product_id int not null references products(id),
  quantity int not null,
  ordered_at date not null
);
insert into customers values (1, 'Ada', 'Berlin'), (2, 'Brian', 'Paris'), (3, 'Chen', 'Berlin');
insert into products values (1, 'Lamp', 20.00), (2, 'Desk', 150.00);
insert into orders values (1, 1, 1, 2, '2025-01-05'), (2, 1, 2, 1, '2025-02-10'), (3, 2, 1, 5, '2025-03-01');
analyze;
";

pub struct Shop {
    pub pg: PgServer,
    pub llm: FakeLlm,
    pub helios: Helios,
}

impl Shop {
    /// The shop with one provider (the fake) and `extra` appended under `[nl]`.
    pub fn start(extra: &str) -> Shop {
        let pg = PgServer::start();
        pg.psql(SHOP);
        let llm = FakeLlm::start_blocking();
        let helios = Helios::start(
            &pg,
            &format!(
                "[nl]\n{extra}\n[[nl.providers]]\nkind = \"openai\"\nname = \"fake\"\nbase_url = \"{}\"\nmodel = \"test-model\"\napi_key = \"sk-test\"\ntimeout = \"5s\"\nmax_retries = 0\n",
                llm.base_url()
            ),
        );
        Shop { pg, llm, helios }
    }

    /// Start with exactly this TOML after `[upstream]` (for several providers).
    pub fn start_with(pg_setup: &str, toml: impl FnOnce(&FakeLlm) -> String) -> Shop {
        let pg = PgServer::start();
        pg.psql(pg_setup);
        let llm = FakeLlm::start_blocking();
        let helios = Helios::start(&pg, &toml(&llm));
        Shop { pg, llm, helios }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.helios.connect().await
    }
}

/// Await `f`, failing the test if it takes longer than `secs`.
pub async fn within<F: Future>(secs: u64, what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

/// Rows of a simple query as text.
pub async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = within(30, sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The server error of a simple query that must fail.
pub async fn error(client: &tokio_postgres::Client, sql: &str) -> DbError {
    let e = within(30, sql, client.simple_query(sql))
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql}: expected an error"));
    e.as_db_error()
        .unwrap_or_else(|| panic!("{sql}: expected a server error, got {e:?}"))
        .clone()
}

/// Texts as `Some(String)` rows, for comparisons.
pub fn text_rows(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|v| Some(v.to_string())).collect())
        .collect()
}
