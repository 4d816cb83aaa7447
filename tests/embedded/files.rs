//! Local CSV and JSON files as tables of the embedded database.

use crate::common::Helios;
use crate::{rows, value};

#[tokio::test(flavor = "multi_thread")]
async fn configured_files_are_tables_next_to_the_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("targets.csv");
    std::fs::write(&csv, "region_id,target\n1,100.5\n2,200\n3,300.25\n").unwrap();
    let json = dir.path().join("events.json");
    std::fs::write(
        &json,
        "{\"kind\": \"signup\", \"n\": 3}\n{\"kind\": \"order\", \"n\": 5}\n",
    )
    .unwrap();
    let h = Helios::start_config(&format!(
        "[[engine.tables]]\nname = \"targets\"\npath = \"{}\"\n\n\
         [[engine.tables]]\nname = \"events\"\npath = \"{}\"\n",
        csv.display(),
        json.display()
    ));
    let c = h.connect().await;
    assert_eq!(value(&c, "SELECT count(*) FROM targets").await, "3");
    assert_eq!(value(&c, "SELECT sum(n) FROM events").await, "8");
    // Joined with the demo tables.
    let got = rows(
        &c,
        "SELECT r.name IS NOT NULL, t.target FROM targets t JOIN regions r ON r.id = t.region_id \
         ORDER BY t.region_id",
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0][1].as_deref(), Some("100.5"));
    // psql and drivers see them in the catalog.
    let listed = rows(
        &c,
        "SELECT relname FROM pg_catalog.pg_class WHERE relname IN ('targets', 'events') ORDER BY relname",
    )
    .await;
    assert_eq!(
        listed,
        vec![
            vec![Some("events".to_string())],
            vec![Some("targets".to_string())]
        ]
    );
}
