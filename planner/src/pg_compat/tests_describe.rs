//! psql 15's `\d NAME` and `\d+ NAME`: the nine queries it sends, exactly
//! as `psql -E` showed them against PostgreSQL 15 (NAME and OID filled in
//! as psql does).

use datafusion::prelude::SessionContext;

use super::tests::{context, row, run};

/// `\d NAME` step 1: find the relation.
const D_FIND: &str = r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(NAME)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#;

/// `\d` (plain) step 2: the relation's properties.
const D_CLASS: &str = r#"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = 'OID';"#;

/// `\d+` step 2.
const D_PLUS_CLASS: &str = r#"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')
, c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = 'OID';"#;

/// `\d` step 3: columns.
const D_COLUMNS: &str = r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = 'OID' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#;

/// `\d+` step 3.
const D_PLUS_COLUMNS: &str = r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated,
  a.attstorage,
  a.attcompression AS attcompression,
  CASE WHEN a.attstattarget=-1 THEN NULL ELSE a.attstattarget END AS attstattarget,
  pg_catalog.col_description(a.attrelid, a.attnum)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = 'OID' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#;

/// `\d` step 4: indexes.
const D_INDEXES: &str = r#"SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),
  pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace
FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
  LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
WHERE c.oid = 'OID' AND c.oid = i.indrelid AND i.indexrelid = c2.oid
ORDER BY i.indisprimary DESC, c2.relname;"#;

/// `\d` steps 5-9: policies, statistics, publications, inheritance.
const D_REST: &[&str] = &[
    r#"SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = 'OID' ORDER BY 1;"#,
    r#"SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,
  'd' = any(stxkind) AS ndist_enabled,
  'f' = any(stxkind) AS deps_enabled,
  'm' = any(stxkind) AS mcv_enabled,
stxstattarget
FROM pg_catalog.pg_statistic_ext
WHERE stxrelid = 'OID'
ORDER BY nsp, stxname;"#,
    r#"SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
     JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid ='OID' and pg_catalog.pg_relation_is_publishable('OID')
UNION
SELECT pubname
     , pg_get_expr(pr.prqual, c.oid)
     , (CASE WHEN pr.prattrs IS NOT NULL THEN
         (SELECT string_agg(attname, ', ')
           FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                pg_catalog.pg_attribute
          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])
        ELSE NULL END) FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
     JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = 'OID'
UNION
SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable('OID')
ORDER BY 1;"#,
    r#"SELECT c.oid::pg_catalog.regclass
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = 'OID'
  AND c.relkind != 'p' AND c.relkind != 'I'
ORDER BY inhseqno;"#,
    r#"SELECT c.oid::pg_catalog.regclass, c.relkind, inhdetachpending, pg_catalog.pg_get_expr(c.relpartbound, c.oid)
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhrelid AND i.inhparent = 'OID'
ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.oid::pg_catalog.regclass::pg_catalog.text;"#,
];

/// Run psql's `\d NAME` (or `\d+`) sequence; the found oid, the class row,
/// the column rows and the index rows. Every other step must plan and run
/// and return nothing.
async fn describe(
    ctx: &SessionContext,
    name: &str,
    plus: bool,
) -> (String, Vec<String>, Vec<Vec<String>>, Vec<Vec<String>>) {
    let found = run(ctx, &D_FIND.replace("NAME", name)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0][1..], row(&["public", name]));
    let oid = found[0][0].clone();
    let (class, columns) = if plus {
        (D_PLUS_CLASS, D_PLUS_COLUMNS)
    } else {
        (D_CLASS, D_COLUMNS)
    };
    let class = run(ctx, &class.replace("OID", &oid)).await;
    assert_eq!(class.len(), 1);
    let columns = run(ctx, &columns.replace("OID", &oid)).await;
    let indexes = run(ctx, &D_INDEXES.replace("OID", &oid)).await;
    for sql in D_REST {
        let rows = run(ctx, &sql.replace("OID", &oid)).await;
        assert!(rows.is_empty(), "{sql}: {rows:?}");
    }
    (oid, class[0].clone(), columns, indexes)
}

#[tokio::test]
async fn psql_d_customers_describes_columns_and_primary_key() {
    let ctx = context();
    let (oid, class, columns, indexes) = describe(&ctx, "customers", false).await;
    assert_eq!(oid, "16384");
    // relchecks, relkind 'r', relhasindex, ..., reloftype '' , persistence, replident, heap
    assert_eq!(class[1], "r");
    assert_eq!(class[2], "true");
    assert_eq!(class[11], "");
    assert_eq!(class[12], "p");
    assert_eq!(class[14], "heap");
    let cols: Vec<Vec<String>> = columns.iter().map(|c| c[..4].to_vec()).collect();
    assert_eq!(
        cols,
        vec![
            row(&["id", "bigint", "NULL", "true"]),
            row(&["name", "text", "NULL", "false"]),
            row(&["created", "date", "NULL", "false"]),
        ]
    );
    assert_eq!(columns[0][4], "NULL", "no collation shown");
    assert_eq!(indexes.len(), 1);
    assert_eq!(
        indexes[0][..7],
        row(&[
            "customers_pkey",
            "true",
            "true",
            "false",
            "true",
            "CREATE UNIQUE INDEX customers_pkey ON public.customers USING btree (id)",
            "PRIMARY KEY (id)",
        ])
    );
    assert_eq!(indexes[0][7], "p");
}

#[tokio::test]
async fn psql_d_plus_orders_shows_numeric_typmod() {
    let ctx = context();
    let (oid, class, columns, indexes) = describe(&ctx, "orders", true).await;
    assert_eq!(oid, "16385");
    assert!(
        class[9] == "NULL" || class[9].is_empty(),
        "no options: {class:?}"
    );
    let cols: Vec<Vec<String>> = columns.iter().map(|c| c[..4].to_vec()).collect();
    assert_eq!(
        cols,
        vec![
            row(&["id", "bigint", "NULL", "false"]),
            row(&["customer_id", "bigint", "NULL", "false"]),
            row(&["total", "numeric(12,2)", "NULL", "false"]),
        ]
    );
    assert_eq!(columns[2][7], "x", "numeric is stored extended");
    assert!(indexes.is_empty());
}

#[tokio::test]
async fn psql_d_pg_class_describes_a_catalog() {
    let ctx = context();
    let found = run(&ctx, &D_FIND.replace("NAME", "pg_class")).await;
    assert_eq!(found, vec![row(&["1259", "pg_catalog", "pg_class"])]);
    let columns = run(&ctx, &D_COLUMNS.replace("OID", "1259")).await;
    assert_eq!(columns[0][..2], row(&["oid", "oid"]));
    assert_eq!(columns[1][..2], row(&["relname", "name"]));
}
