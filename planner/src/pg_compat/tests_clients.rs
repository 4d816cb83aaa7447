//! pgjdbc's and DBeaver's startup and metadata queries (as those clients
//! send them, with their `?` parameters filled in), through [`rewrite`] and
//! DataFusion.

use super::tests::{context, run, run_named};

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// pgjdbc TypeInfoCache: whether a type is an array, by oid (42.x).
const JDBC_TYPE_BY_OID: &str = "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid   FROM pg_catalog.pg_type   LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE pg_type.oid = OID  ORDER BY sp.r, pg_type.oid DESC";

#[tokio::test]
async fn jdbc_type_info_cache() {
    let ctx = context();
    let (names, rows) = run_named(&ctx, &JDBC_TYPE_BY_OID.replace("OID", "1007")).await;
    assert_eq!(names, vec!["is_array", "typtype", "typname", "oid"]);
    assert_eq!(rows, vec![row(&["true", "b", "_int4", "1007"])]);
    let rows = run(&ctx, &JDBC_TYPE_BY_OID.replace("OID", "20")).await;
    assert_eq!(rows, vec![row(&["false", "b", "int8", "20"])]);

    // By name, older 42.x: the search-path join with typname = ?.
    let by_name = "SELECT pg_type.oid, typname   FROM pg_catalog.pg_type   LEFT   JOIN (select ns.oid as nspoid, ns.nspname, r.r           from pg_namespace as ns           join ( select s.r, (current_schemas(false))[s.r] as nspname                    from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r          using ( nspname )        ) as sp     ON sp.nspoid = typnamespace  WHERE typname = 'numeric'  ORDER BY sp.r, pg_type.oid DESC LIMIT 1";
    assert_eq!(run(&ctx, by_name).await, vec![row(&["1700", "numeric"])]);

    // Newer pgjdbc: row-value comparisons and `= ANY(current_schemas(true))`.
    let newer = "SELECT t.oid, n.nspname = ANY(current_schemas(true)), n.nspname, t.typinput = 'array_in'::regproc, t.typname, t.typelem, t.typtype, t.typdelim, e.typname, e.typtype, e.typdelim, arr.oid, arr.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid LEFT JOIN pg_catalog.pg_type e ON t.typelem = e.oid LEFT JOIN pg_catalog.pg_type arr ON (t.oid, 'array_in'::regproc) = (arr.typelem, arr.typinput) WHERE t.oid = 25";
    assert_eq!(
        run(&ctx, newer).await,
        vec![row(&[
            "25",
            "true",
            "pg_catalog",
            "false",
            "text",
            "0",
            "b",
            ",",
            "NULL",
            "NULL",
            "NULL",
            "1009",
            "_text"
        ])]
    );
    // getArrayDelimiter
    let delim = "SELECT e.typdelim FROM pg_catalog.pg_type t, pg_catalog.pg_type e WHERE t.oid = 1009 and t.typelem = e.oid";
    assert_eq!(run(&ctx, delim).await, vec![row(&[","])]);
}

#[tokio::test]
async fn jdbc_metadata_get_tables_columns_schemas_types() {
    let ctx = context();
    let get_tables = "SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME,  CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema'  WHEN true THEN CASE  WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TABLE'   WHEN 'v' THEN 'SYSTEM VIEW'   WHEN 'i' THEN 'SYSTEM INDEX'   ELSE NULL   END  WHEN n.nspname = 'pg_toast' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TOAST TABLE'   WHEN 'i' THEN 'SYSTEM TOAST INDEX'   ELSE NULL   END  ELSE CASE c.relkind   WHEN 'r' THEN 'TEMPORARY TABLE'   WHEN 'p' THEN 'TEMPORARY TABLE'   WHEN 'i' THEN 'TEMPORARY INDEX'   WHEN 'S' THEN 'TEMPORARY SEQUENCE'   WHEN 'v' THEN 'TEMPORARY VIEW'   ELSE NULL   END  END  WHEN false THEN CASE c.relkind  WHEN 'r' THEN 'TABLE'  WHEN 'p' THEN 'PARTITIONED TABLE'  WHEN 'i' THEN 'INDEX'  WHEN 'P' then 'PARTITIONED INDEX'  WHEN 'S' THEN 'SEQUENCE'  WHEN 'v' THEN 'VIEW'  WHEN 'c' THEN 'TYPE'  WHEN 'f' THEN 'FOREIGN TABLE'  WHEN 'm' THEN 'MATERIALIZED VIEW'  ELSE NULL  END  ELSE NULL  END  AS TABLE_TYPE, d.description AS REMARKS,  '' as TYPE_CAT, '' as TYPE_SCHEM, '' as TYPE_NAME, '' AS SELF_REFERENCING_COL_NAME, '' AS REF_GENERATION  FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c  LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0  and d.classoid = 'pg_class'::regclass)  WHERE c.relnamespace = n.oid  AND c.relname LIKE '%' AND (false  OR ( c.relkind IN ('r','p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' )  OR ( c.relkind = 'v' AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' ) )  ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME ";
    let (names, rows) = run_named(&ctx, get_tables).await;
    assert_eq!(
        names[..4],
        row(&["table_cat", "table_schem", "table_name", "table_type"])
    );
    let tables: Vec<Vec<String>> = rows.iter().map(|r| r[1..4].to_vec()).collect();
    assert_eq!(
        tables,
        vec![
            row(&["public", "customers", "TABLE"]),
            row(&["public", "orders", "TABLE"])
        ]
    );

    let get_columns = "SELECT * FROM (SELECT n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE 'public' AND c.relname LIKE 'orders') c WHERE true  ORDER BY nspname,c.relname,attnum ";
    let rows = run(&ctx, get_columns).await;
    let cols: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                r[5].clone(),
                r[8].clone(),
            ]
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            row(&["id", "20", "false", "-1", "1"]),
            row(&["customer_id", "20", "false", "-1", "2"]),
            row(&["total", "1700", "false", "786438", "3"]),
        ]
    );

    let get_schemas = "SELECT nspname AS TABLE_SCHEM, NULL AS TABLE_CATALOG FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY TABLE_SCHEM";
    let schemas: Vec<String> = run(&ctx, get_schemas)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(schemas, vec!["information_schema", "pg_catalog", "public"]);

    let get_type_info = "SELECT t.typname,t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON (t.typnamespace = n.oid)  WHERE n.nspname  != 'pg_toast' AND  (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))";
    let types = run(&ctx, get_type_info).await;
    assert!(types.contains(&row(&["int8", "20"])), "{types:?}");
    assert!(types.len() > 50);

    // A primary-key lookup in the shape of getPrimaryKeys (which itself uses
    // information_schema._pg_expandarray, not provided).
    let pk = "SELECT a.attname, ci.relname FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) JOIN pg_catalog.pg_index i ON (a.attrelid = i.indrelid) JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE ct.relname = 'customers' AND i.indisprimary AND a.attnum::text = i.indkey";
    let rows = run(&ctx, pk).await;
    assert!(rows.contains(&row(&["id", "customers_pkey"])), "{rows:?}");
}

/// DBeaver's PostgreSQL driver on connect and when opening a schema.
const DBEAVER: &[&str] = &[
    "SELECT current_schema(),session_user",
    "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1034",
    "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='helios'",
    "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'",
    "SELECT string_agg(word, ',' ) from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all}'::text[])",
    "SELECT version()",
    "SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1",
    "SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1",
    "SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')",
    "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass WHERE c.relnamespace=2200 AND c.relkind not in ('i','I','c')",
    "select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_class c WHERE c.relnamespace=2200",
    "SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=16384 ORDER BY a.attnum",
    "SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid WHERE  i.indrelid=16384 ORDER BY tabrelname, c.relname",
    "SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then \"substring\"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass WHERE c.conrelid=16384 ORDER BY c.oid",
];

#[tokio::test]
async fn dbeaver_startup_and_navigation() {
    let ctx = context();
    let mut results = Vec::new();
    for sql in DBEAVER {
        results.push(run(&ctx, sql).await);
    }
    assert_eq!(results[0], vec![row(&["public", "alice"])]);
    let schemas: Vec<&str> = results[1].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(schemas, vec!["information_schema", "pg_catalog", "public"]);
    assert_eq!(results[2], vec![row(&["true", "pg_catalog", "_aclitem"])]);
    assert_eq!(results[3][0][..2], row(&["5", "helios"]));
    assert_eq!(
        results[4][0][..2],
        row(&["standard_conforming_strings", "on"])
    );
    assert!(!results[5][0][0].contains(",all,"), "{:?}", results[5]);
    assert!(results[5][0][0].contains("select"));
    let tables: Vec<&str> = results[10].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(tables, vec!["customers", "orders"]);
    let columns: Vec<&str> = results[12].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(columns, vec!["id", "name", "created"]);
    assert_eq!(results[13].len(), 1, "the primary key index");
    assert_eq!(results[14].len(), 1, "the primary key constraint");
}
