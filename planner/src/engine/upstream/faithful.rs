//! What the engine may compute for a statement over upstream tables and
//! still answer exactly what PostgreSQL would.
//!
//! DataFusion and PostgreSQL agree on the relational core (scans, filters,
//! joins, grouping, sorting, the common aggregates) but not everywhere
//! else: `char(n)` comparisons ignore the padding in PostgreSQL, integer
//! multiplication raises an error on overflow there and wraps here, casts
//! to integers round there and truncate here, intervals compare by their
//! length there and field by field here, many functions differ in name or
//! detail (`to_char`, `extract`, `date_trunc`). [`check`] walks the
//! optimized plan and refuses a statement that uses anything outside the
//! subset known to agree; the caller then relays it to PostgreSQL.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator, TryCast,
};

/// Field metadata marking a column read from a `char(n)` (bpchar) column.
pub const BPCHAR_KEY: &str = "helios.bpchar";

/// Scalar functions whose results equal PostgreSQL's.
const SCALAR_OK: &[&str] = &[
    "coalesce",
    "nullif",
    "abs",
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "btrim",
    "ltrim",
    "rtrim",
    "concat",
    "concat_ws",
    "left",
    "right",
    "replace",
    "starts_with",
    "strpos",
    "reverse",
    "repeat",
    "lpad",
    "rpad",
    "split_part",
    "md5",
    "greatest",
    "least",
    "now",
    "current_date",
];

/// Aggregates whose results equal PostgreSQL's (`avg` of integers and
/// numerics is `pg_avg` where it is only shown; where it is sorted on or
/// computed with, DataFusion's, whose value is PostgreSQL's to 4 more
/// digits than the input's scale: documented).
const AGGREGATE_OK: &[&str] = &[
    "count", "sum", "min", "max", "avg", "pg_avg", "bool_and", "bool_or",
];

/// Window functions whose results equal PostgreSQL's.
const WINDOW_OK: &[&str] = &["row_number", "rank", "dense_rank", "lag", "lead"];

/// How the upstream orders text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOrder {
    /// By bytes (`C`, `POSIX`, `C.UTF-8`): as DataFusion does.
    Bytewise,
    /// By a linguistic collation (`en_US.UTF-8`, ICU): only PostgreSQL
    /// knows the order, so DataFusion must not sort or compare text by it.
    Collated,
}

impl TextOrder {
    /// The order of a database whose `LC_COLLATE` is `collate`.
    pub fn of(collate: &str) -> TextOrder {
        match collate.to_ascii_lowercase().as_str() {
            "c" | "posix" | "c.utf-8" | "c.utf8" | "ucs_basic" => TextOrder::Bytewise,
            _ => TextOrder::Collated,
        }
    }
}

/// `Err(reason)` when the plan uses something whose result may differ from
/// PostgreSQL's. Text is compared and sorted in DataFusion only when the
/// upstream orders it by bytes too (filters PostgreSQL evaluates itself are
/// fine either way).
pub fn check(plan: &LogicalPlan, text: TextOrder) -> Result<(), String> {
    let mut problem = None;
    let _ = plan.apply_with_subqueries(|node| {
        let verdict = check_node(node).and_then(|()| match text {
            TextOrder::Bytewise => Ok(()),
            TextOrder::Collated => check_text_order(node),
        });
        if let Err(p) = verdict {
            problem = Some(p);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

fn check_node(node: &LogicalPlan) -> Result<(), String> {
    if matches!(node, LogicalPlan::TableScan(_)) {
        // Its filters are PostgreSQL's own (see `pushdown`).
        return Ok(());
    }
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    // The node's own schema too: subquery references and outer columns.
    schema.merge(node.schema());
    let mut result = Ok(());
    let _ = node.apply_expressions(|e| {
        result = check_expr(e, &schema, node);
        Ok(if result.is_err() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    result?;
    // Grouping, DISTINCT and sorting by an interval compare it field by field.
    let keyed: Vec<&Expr> = match node {
        LogicalPlan::Aggregate(a) => a.group_expr.iter().collect(),
        LogicalPlan::Sort(s) => s.expr.iter().map(|s| &s.expr).collect(),
        _ => Vec::new(),
    };
    for e in keyed {
        if matches!(e.get_type(&schema), Ok(DataType::Interval(_))) {
            return Err("grouping or sorting by an interval".into());
        }
    }
    if let LogicalPlan::Distinct(_) = node {
        if node
            .schema()
            .fields()
            .iter()
            .any(|f| matches!(f.data_type(), DataType::Interval(_)))
        {
            return Err("DISTINCT over an interval".into());
        }
    }
    if let LogicalPlan::Join(j) = node {
        for (l, r) in &j.on {
            if uses_bpchar(l, &schema) || uses_bpchar(r, &schema) {
                return Err("a join on a char(n) column".into());
            }
        }
    }
    Ok(())
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Under a linguistic collation: no sorting, ordering comparison, min/max
/// or greatest/least of text in DataFusion.
fn check_text_order(node: &LogicalPlan) -> Result<(), String> {
    const WHY: &str = "an order of text (the database's collation is not bytewise)";
    if matches!(node, LogicalPlan::TableScan(_)) {
        return Ok(());
    }
    let mut schema = DFSchema::empty();
    for input in node.inputs() {
        schema.merge(input.schema());
    }
    schema.merge(node.schema());
    let text = |e: &Expr| e.get_type(&schema).map(|t| is_text(&t)).unwrap_or(true);
    if let LogicalPlan::Sort(s) = node {
        if s.expr.iter().any(|k| text(&k.expr)) {
            return Err(WHY.into());
        }
    }
    let mut bad = false;
    let _ = node.apply_expressions(|e| {
        e.apply(|sub| {
            bad |= match sub {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    matches!(
                        op,
                        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                    ) && (text(left) || text(right))
                }
                Expr::Between(b) => text(&b.expr),
                Expr::AggregateFunction(f) => {
                    matches!(f.func.name(), "min" | "max") && f.params.args.iter().any(&text)
                }
                Expr::WindowFunction(w) => w.params.order_by.iter().any(|k| text(&k.expr)),
                Expr::ScalarFunction(f) => {
                    matches!(f.func.name(), "greatest" | "least") && f.args.iter().any(&text)
                }
                _ => false,
            };
            Ok(if bad {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    });
    if bad {
        return Err(WHY.into());
    }
    Ok(())
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn check_expr(e: &Expr, schema: &DFSchema, node: &LogicalPlan) -> Result<(), String> {
    let mut e = e;
    while let Expr::Alias(a) = e {
        e = a.expr.as_ref();
    }
    // A bare column passes through unchanged (padding and all).
    if let Expr::Column(_) = e {
        return Ok(());
    }
    let bpchar_ok = matches!(
        e,
        Expr::AggregateFunction(f) if matches!(f.func.name(), "count" | "min" | "max")
    );
    if !bpchar_ok && uses_bpchar(e, schema) {
        let inside_sort_or_group = matches!(node, LogicalPlan::Sort(_) | LogicalPlan::Aggregate(_))
            && matches!(e, Expr::Column(_));
        if !inside_sort_or_group {
            return Err("an expression over a char(n) column (padding)".into());
        }
    }
    let mut problem: Option<String> = None;
    let _ = e.apply(|sub| {
        let p = match sub {
            Expr::ScalarFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                (!SCALAR_OK.contains(&name.as_str())).then(|| format!("function {name}()"))
            }
            Expr::AggregateFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                if !AGGREGATE_OK.contains(&name.as_str()) {
                    Some(format!("aggregate {name}()"))
                } else if matches!(name.as_str(), "sum" | "avg")
                    && f.params.args.iter().any(|a| {
                        // DataFusion widens a real to float8 first.
                        let inner = match a {
                            Expr::Cast(c) => c.expr.as_ref(),
                            other => other,
                        };
                        matches!(inner.get_type(schema), Ok(DataType::Float32))
                    })
                {
                    Some(format!("{name}() of a real"))
                } else if f.params.args.iter().any(|a| {
                    !matches!(name.as_str(), "count" | "min" | "max") && uses_bpchar(a, schema)
                }) {
                    Some(format!("{name}() of a char(n) column"))
                } else {
                    None
                }
            }
            Expr::WindowFunction(w) => {
                let name = w.fun.to_string().to_ascii_lowercase();
                (!WINDOW_OK.contains(&name.as_str()) && !AGGREGATE_OK.contains(&name.as_str()))
                    .then(|| format!("window function {name}()"))
            }
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                let from = expr.get_type(schema).unwrap_or(DataType::Null);
                lossy_cast(&from, field.data_type())
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let lt = left.get_type(schema).unwrap_or(DataType::Null);
                let rt = right.get_type(schema).unwrap_or(DataType::Null);
                if *op == Operator::Multiply && is_integer(&lt) && is_integer(&rt) {
                    Some("integer multiplication (PostgreSQL raises an error on overflow)".into())
                } else if (matches!(lt, DataType::Interval(_))
                    || matches!(rt, DataType::Interval(_)))
                    && matches!(
                        op,
                        Operator::Eq
                            | Operator::NotEq
                            | Operator::Lt
                            | Operator::LtEq
                            | Operator::Gt
                            | Operator::GtEq
                            | Operator::IsDistinctFrom
                            | Operator::IsNotDistinctFrom
                    )
                {
                    Some("a comparison of intervals".into())
                } else {
                    None
                }
            }
            Expr::SimilarTo(_) => Some("SIMILAR TO".into()),
            _ => None,
        };
        problem = p;
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// A cast whose result differs from PostgreSQL's.
fn lossy_cast(from: &DataType, to: &DataType) -> Option<String> {
    use DataType::*;
    if from == to || matches!(from, Null) {
        return None;
    }
    let bad = match to {
        // PostgreSQL rounds; DataFusion truncates.
        t if is_integer(t) => matches!(
            from,
            Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..)
        ),
        // Text of dates, times, floats, numerics, intervals, bytes is
        // written differently.
        Utf8 | LargeUtf8 | Utf8View => {
            !(is_integer(from) || matches!(from, Boolean | Utf8 | LargeUtf8 | Utf8View))
        }
        _ => false,
    };
    bad.then(|| format!("a cast from {from} to {to}"))
}

fn uses_bpchar(e: &Expr, schema: &DFSchema) -> bool {
    let mut found = false;
    let _ = e.apply(|sub| {
        if let Expr::Column(c) = sub {
            if let Ok(f) = schema.field_from_column(c) {
                if f.metadata().contains_key(BPCHAR_KEY) {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::upstream::types::{oid, UpstreamColumn, UpstreamRelation};
    use crate::engine::upstream::{CopySource, CopyStream, ScanOptions, UpstreamTable};
    use crate::engine::Engine;
    use datafusion::common::{DataFusionError, TableReference};

    #[derive(Debug)]
    struct NoRows;

    #[async_trait::async_trait]
    impl CopySource for NoRows {
        async fn copy_out(&self, _sql: String) -> Result<CopyStream, DataFusionError> {
            Err(DataFusionError::Execution(
                "no upstream in this test".into(),
            ))
        }
    }

    pub(super) fn engine() -> Engine {
        let engine = Engine::new("db");
        let rel = UpstreamRelation {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            kind: 'r',
            pages: 1000,
            estimated_rows: 100_000,
            columns: vec![
                UpstreamColumn::new("bc", oid::BPCHAR, 10),
                UpstreamColumn::new("i4", oid::INT4, -1),
                UpstreamColumn::new("f4", oid::FLOAT4, -1),
                UpstreamColumn::new("f8", oid::FLOAT8, -1),
                UpstreamColumn::new("iv", oid::INTERVAL, -1),
                UpstreamColumn::new("n", oid::NUMERIC, (10 << 16 | 2) + 4),
                UpstreamColumn::new("d", oid::DATE, -1),
                UpstreamColumn::new("s", oid::TEXT, -1),
            ],
        };
        let table = UpstreamTable::new(Arc::new(rel), Arc::new(NoRows), ScanOptions::default());
        engine
            .context()
            .register_table(TableReference::bare("t"), Arc::new(table))
            .unwrap();
        engine
    }

    async fn verdict(sql: &str) -> Result<(), String> {
        let e = engine();
        let p = e.prepare(sql).await.expect(sql);
        check(&e.optimized(&p).unwrap(), TextOrder::Bytewise)
    }

    #[tokio::test]
    async fn a_collated_database_keeps_text_order_in_postgresql() {
        let e = engine();
        for (sql, ok) in [
            ("SELECT s, count(*) FROM t GROUP BY s", true),
            ("SELECT count(*) FROM t WHERE s = 'x'", true),
            ("SELECT count(*) FROM t WHERE s > 'x'", true), // pushed to PostgreSQL
            ("SELECT s FROM t ORDER BY s", false),
            ("SELECT max(s) FROM t", false),
            (
                "SELECT a.i4 FROM t a JOIN t b ON a.i4 = b.i4 WHERE a.s < b.s",
                false,
            ),
            ("SELECT row_number() OVER (ORDER BY s) FROM t", false),
        ] {
            let p = e.prepare(sql).await.expect(sql);
            let verdict = check(&e.optimized(&p).unwrap(), TextOrder::Collated);
            assert_eq!(verdict.is_ok(), ok, "{sql}: {verdict:?}");
        }
        assert_eq!(TextOrder::of("C"), TextOrder::Bytewise);
        assert_eq!(TextOrder::of("en_US.UTF-8"), TextOrder::Collated);
    }

    #[tokio::test]
    async fn the_relational_core_passes() {
        for sql in [
            "SELECT bc, count(*), sum(n), avg(n), min(d), max(s) FROM t WHERE d < '2024-01-01' GROUP BY bc ORDER BY bc",
            "SELECT s, i4 + 1, n * 2 FROM t WHERE bc = 'a' ORDER BY s LIMIT 10",
            "SELECT a.s, b.i4 FROM t a JOIN t b ON a.i4 = b.i4 WHERE a.n > 1.5",
            "SELECT lower(s), coalesce(s, 'x'), row_number() OVER (ORDER BY i4) FROM t",
            "SELECT count(DISTINCT bc), max(bc) FROM t",
        ] {
            assert_eq!(verdict(sql).await, Ok(()), "{sql}");
        }
    }

    #[tokio::test]
    async fn what_differs_is_refused() {
        for sql in [
            "SELECT count(*) FROM t WHERE bc = 'c1' OR i4 + 1 = 0",
            "SELECT length(bc) FROM t",
            "SELECT bc || '|' FROM t",
            "SELECT a.i4 FROM t a JOIN t b ON a.bc = b.bc",
            "SELECT to_char(d, 'YYYY') FROM t",
            "SELECT extract(second FROM d) FROM t",
            "SELECT count(*) FROM t WHERE s SIMILAR TO 'a%'",
            "SELECT sum(i4 * 1000000) FROM t",
            "SELECT f8::int FROM t",
            "SELECT n::int4 FROM t",
            "SELECT d::text FROM t",
            "SELECT count(*) FROM t WHERE iv > interval '40 days'",
            "SELECT iv, count(*) FROM t GROUP BY iv",
            "SELECT sum(f4) FROM t",
            "SELECT stddev(f8) FROM t",
        ] {
            assert!(verdict(sql).await.is_err(), "{sql} should be refused");
        }
    }
}
