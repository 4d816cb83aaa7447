//! The shortest path a user takes: connect through Helios and run a query.

mod common;

use common::{Helios, PgServer};

#[tokio::test]
async fn a_query_through_helios_returns_the_upstreams_rows() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let client = helios.connect().await;
    let rows = client
        .query("select x, x * 2 as y from generate_series(1, 3) x", &[])
        .await
        .unwrap();
    let got: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, 2), (2, 4), (3, 6)]);
}
