//! `avg()` of integers and numerics as PostgreSQL computes and prints it.
//!
//! PostgreSQL divides the exact sum by the count in `numeric`, choosing the
//! result's scale from the operands' magnitudes (`select_div_scale`: at
//! least 16 significant digits, more for small quotients) and rounding the
//! last digit half away from zero; DataFusion's `avg` keeps the input scale
//! plus 4 and truncates. So `avg(numeric(15,2))` over TPC-H's quantities is
//! `25.5074626865671642` upstream and `25.507462` in DataFusion.
//!
//! [`PgAvg`] accumulates the exact sum (i128) and count and produces
//! PostgreSQL's text, as a string column tagged `numeric` (the wire layer
//! sends it as numeric, in text or binary). A string compares as a string,
//! so [`rewrite`] uses it only where the average is only shown: an average
//! that is sorted on, compared, or computed with keeps DataFusion's `avg`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Int16Type, Int32Type, Int64Type, Int8Type,
};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, LogicalPlan, Signature,
    Volatility,
};

/// The field-metadata key the wire layer reads for a column's PostgreSQL
/// type (`helios_wire::arrow::PG_TYPE_KEY`).
const PG_TYPE_KEY: &str = "pg_type";

/// PostgreSQL's `avg` over integers and numerics, as text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAvg {
    signature: Signature,
}

impl Default for PgAvg {
    fn default() -> Self {
        PgAvg {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The input's scale, if `avg` of it is PostgreSQL's numeric division.
fn exact_input(t: &DataType) -> Option<i8> {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some(0),
        DataType::Decimal128(_, s) if *s >= 0 => Some(*s),
        _ => None,
    }
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "pg_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if exact_input(t).is_some() => Ok(vec![t.clone()]),
            _ => Err(DataFusionError::Plan(
                "pg_avg takes one integer or numeric argument".into(),
            )),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(
            Field::new(self.name(), DataType::Utf8, true).with_metadata(HashMap::from([(
                PG_TYPE_KEY.to_string(),
                "numeric".to_string(),
            )])),
        ))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input = args
            .expr_fields
            .first()
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Int64);
        let scale = exact_input(&input)
            .ok_or_else(|| DataFusionError::Internal(format!("pg_avg of {input}")))?;
        Ok(Box::new(PgAvgAccumulator {
            input,
            scale,
            sum: 0,
            count: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let scale = args
            .input_fields
            .first()
            .and_then(|f| exact_input(f.data_type()))
            .unwrap_or(0);
        Ok(vec![
            Arc::new(Field::new("sum", DataType::Decimal128(38, scale), true)),
            Arc::new(Field::new("count", DataType::Int64, true)),
        ])
    }
}

#[derive(Debug)]
struct PgAvgAccumulator {
    input: DataType,
    scale: i8,
    sum: i128,
    count: i64,
}

fn overflow() -> DataFusionError {
    DataFusionError::Execution("numeric field overflow in avg".into())
}

impl PgAvgAccumulator {
    fn add(&mut self, v: i128) -> Result<()> {
        self.sum = self.sum.checked_add(v).ok_or_else(overflow)?;
        self.count += 1;
        Ok(())
    }
}

impl Accumulator for PgAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let a = &values[0];
        macro_rules! ints {
            ($t:ty) => {
                for v in a.as_primitive::<$t>().iter().flatten() {
                    self.add(v as i128)?;
                }
            };
        }
        match &self.input {
            DataType::Int8 => ints!(Int8Type),
            DataType::Int16 => ints!(Int16Type),
            DataType::Int32 => ints!(Int32Type),
            DataType::Int64 => ints!(Int64Type),
            DataType::Decimal128(..) => ints!(Decimal128Type),
            other => return Err(DataFusionError::Internal(format!("pg_avg of {other}"))),
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = states[0].as_primitive::<Decimal128Type>();
        let counts = states[1].as_primitive::<Int64Type>();
        for i in 0..sums.len() {
            if sums.is_valid(i) && counts.is_valid(i) {
                self.sum = self.sum.checked_add(sums.value(i)).ok_or_else(overflow)?;
                self.count += counts.value(i);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, self.scale),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return Ok(ScalarValue::Utf8(None));
        }
        Ok(ScalarValue::Utf8(Some(numeric_div_text(
            self.sum,
            self.scale as u32,
            self.count as i128,
        ))))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// The weight (in base-10000 digits) and first base-10000 digit of
/// `digits` × 10^-`scale` (`digits` ASCII, no sign), as PostgreSQL's
/// `NumericVar` has them; (0, 0) for zero.
fn weight_and_first(digits: &str, scale: u32) -> (i32, u32) {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return (0, 0);
    }
    // Position of the most significant digit relative to the decimal point:
    // its power of ten.
    let power = digits.len() as i32 - 1 - scale as i32;
    let weight = power.div_euclid(4);
    // The first base-10000 group holds powers weight*4 .. weight*4+3.
    let in_group = (power - weight * 4 + 1) as usize; // digits of it present
    let first: u32 = digits[..in_group.min(digits.len())]
        .parse::<u32>()
        .unwrap_or(0)
        * 10u32.pow((in_group.saturating_sub(digits.len())) as u32);
    (weight, first)
}

/// PostgreSQL's `numeric_div(sum, count)` as text: `sum` scaled by
/// `10^scale`, `count` > 0.
pub fn numeric_div_text(sum: i128, scale: u32, count: i128) -> String {
    const MIN_SIG_DIGITS: i32 = 16;
    let (w1, f1) = weight_and_first(&sum.unsigned_abs().to_string(), scale);
    let (w2, f2) = weight_and_first(&count.to_string(), 0);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (MIN_SIG_DIGITS - qweight * 4)
        .max(scale as i32)
        .clamp(0, 1000) as u32;
    // sum / 10^scale / count to rscale digits, rounded half away from zero:
    // long division, one decimal digit at a time (the remainder stays below
    // count, so nothing overflows).
    let negative = sum < 0;
    let n = sum.unsigned_abs();
    let d = count as u128;
    let int_and_scaled = n / d; // × 10^-scale
    let mut rem = n % d;
    let mut digits = int_and_scaled.to_string().into_bytes();
    // Digits after `scale`: as many more as rscale needs, plus one to round.
    let extra = rscale as i64 - scale as i64;
    let mut produced = 0i64;
    while produced < extra + 1 {
        rem *= 10;
        digits.push(b'0' + (rem / d) as u8);
        rem %= d;
        produced += 1;
    }
    // Now `digits` × 10^-(scale + extra + 1). Round away the last digit.
    let last = digits.pop().expect("one extra digit") - b'0';
    if last >= 5 {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let frac = (scale as i64 + extra).max(0) as usize;
    let mut text: String = String::from_utf8(digits).expect("ASCII digits");
    if text.len() <= frac {
        text = format!("{}{text}", "0".repeat(frac + 1 - text.len()));
    }
    let (int, fraction) = text.split_at(text.len() - frac);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && fraction.bytes().all(|b| b == b'0');
    let sign = if negative && !zero { "-" } else { "" };
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{fraction}")
    }
}

/// Replace `avg(x)` over integers and numerics by [`PgAvg`] where its value
/// is only shown: every reference to the average's column above the
/// aggregate is a plain column in a projection.
pub fn rewrite(plan: LogicalPlan) -> Result<LogicalPlan> {
    // Names of columns some node does more with than show.
    let mut busy: HashSet<String> = HashSet::new();
    // `x AS y` in projections: a use of y is a use of x.
    let mut renamed: Vec<(String, String)> = Vec::new();
    plan.apply(|node| {
        if let LogicalPlan::Projection(p) = node {
            for e in &p.expr {
                if let Expr::Alias(a) = e {
                    if let Expr::Column(c) = a.expr.as_ref() {
                        renamed.push((a.name.clone(), c.name.clone()));
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    plan.apply(|node| {
        let shows = matches!(
            node,
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_)
        );
        // An aggregate's own functions are what is looked for, not uses of it.
        let own = |e: &Expr| -> bool {
            let mut e = e;
            while let Expr::Alias(a) = e {
                e = a.expr.as_ref();
            }
            matches!(node, LogicalPlan::Aggregate(_)) && matches!(e, Expr::AggregateFunction(_))
        };
        node.apply_expressions(|e| {
            if own(e) {
                // Its arguments may use other columns, which matter not here.
                return Ok(TreeNodeRecursion::Continue);
            }
            let bare = matches!(e, Expr::Column(_))
                || matches!(e, Expr::Alias(a) if matches!(a.expr.as_ref(), Expr::Column(_)));
            if !(shows && bare) {
                e.apply(|sub| {
                    match sub {
                        Expr::Column(c) => {
                            busy.insert(c.name.clone());
                        }
                        // A sort or filter may name the aggregate itself.
                        Expr::AggregateFunction(_) => {
                            busy.insert(sub.schema_name().to_string());
                        }
                        _ => {}
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    loop {
        let before = busy.len();
        for (alias, column) in &renamed {
            if busy.contains(alias) {
                busy.insert(column.clone());
            }
        }
        if busy.len() == before {
            break;
        }
    }
    let udaf = Arc::new(AggregateUDF::from(PgAvg::default()));
    let rewritten = plan.transform_up(|node| {
        let LogicalPlan::Aggregate(mut agg) = node else {
            return Ok(Transformed::no(node));
        };
        let schema = agg.input.schema().clone();
        let mut changed = false;
        for e in agg.aggr_expr.iter_mut() {
            let Expr::AggregateFunction(f) = &*e else {
                continue;
            };
            let name = e.schema_name().to_string();
            let eligible = f.func.name() == "avg"
                && !f.params.distinct
                && f.params.order_by.is_empty()
                && f.params.args.len() == 1
                && !busy.contains(&name)
                && f.params.args[0]
                    .get_type(schema.as_ref())
                    .ok()
                    .as_ref()
                    .and_then(exact_input)
                    .is_some();
            if !eligible {
                continue;
            }
            let replacement = Expr::AggregateFunction(AggregateFunction::new_udf(
                udaf.clone(),
                f.params.args.clone(),
                false,
                f.params.filter.clone(),
                vec![],
                None,
            ))
            .alias(name);
            *e = replacement;
            changed = true;
        }
        let node = LogicalPlan::Aggregate(agg);
        Ok(if changed {
            Transformed::yes(node.recompute_schema()?)
        } else {
            Transformed::no(node)
        })
    })?;
    // Parents of a changed aggregate see a string column now.
    if !rewritten.transformed {
        return Ok(rewritten.data);
    }
    rewritten
        .data
        .transform_up(|node| Ok(Transformed::yes(node.recompute_schema()?)))
        .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_matches_postgresql() {
        // SELECT avg(x) FROM (VALUES (25.00),(26.00),(25.52)) v(x) -> 25.5066666666666667
        assert_eq!(numeric_div_text(7652, 2, 3), "25.5066666666666667");
        // avg of 1,2 (int) -> 1.5000000000000000
        assert_eq!(numeric_div_text(3, 0, 2), "1.5000000000000000");
        // avg(0.05, 0.04) -> 0.04500000000000000000
        assert_eq!(numeric_div_text(9, 2, 2), "0.04500000000000000000");
        // avg of 100000 and 200000 -> 150000.000000000000
        assert_eq!(numeric_div_text(300000, 0, 2), "150000.000000000000");
        // negative, rounding away from zero: avg(-1, -2, -2) = -1.6666666666666667
        assert_eq!(numeric_div_text(-5, 0, 3), "-1.6666666666666667");
        // zero
        assert_eq!(numeric_div_text(0, 2, 5), "0.00000000000000000000");
        // 2/3 -> 0.66666666666666666667
        assert_eq!(numeric_div_text(2, 0, 3), "0.66666666666666666667");
        // 9999/1 -> 9999.0000000000000000
        assert_eq!(numeric_div_text(9999, 0, 1), "9999.0000000000000000");
        // 10000/1 -> 10000.0000000000000000 (first digits equal: one less weight)
        assert_eq!(numeric_div_text(10000, 0, 1), "10000.0000000000000000");
    }
}

#[cfg(test)]
mod plan_tests {
    use crate::engine::Engine;

    async fn rows(sql: &str) -> Vec<String> {
        let e = Engine::demo("db");
        let p = e.prepare(sql).await.expect(sql);
        let batches = datafusion::physical_plan::common::collect(e.execute(&p, &[]).await.unwrap())
            .await
            .unwrap();
        let mut out = Vec::new();
        for b in batches {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&[b]).unwrap();
            out.push(text.to_string());
        }
        out
    }

    #[tokio::test]
    async fn shown_averages_are_postgresql_text_sorted_ones_stay_decimal() {
        let shown = rows("SELECT avg(price) FROM products").await.join("");
        // 16 significant digits or more, as PostgreSQL prints.
        let value = shown
            .lines()
            .nth(3)
            .unwrap()
            .trim_matches(|c| c == '|' || c == ' ');
        assert!(value.split('.').nth(1).unwrap().len() >= 14, "{shown}");
        let e = Engine::demo("db");
        for sql in [
            "SELECT category, avg(price) FROM products GROUP BY 1 ORDER BY 2",
            "SELECT category, avg(price) AS a FROM products GROUP BY 1 HAVING avg(price) > 10",
            "SELECT round(avg(price), 2) FROM products",
            "select category, avg(price) from products group by category order by 2 desc limit 2",
            "SELECT category, avg(price) AS a FROM products GROUP BY 1 ORDER BY a",
        ] {
            // As sessions send it: with PostgreSQL's column names applied.
            let sql = crate::pg_compat::rewrite(sql);
            let p = e.prepare(&sql).await.unwrap();
            let text = format!("{}", p.plan.display_indent());
            assert!(!text.contains("pg_avg"), "{sql}: {text}");
        }
        let p = e
            .prepare("SELECT category, avg(price) FROM products GROUP BY 1 ORDER BY 1")
            .await
            .unwrap();
        assert!(
            format!("{}", p.plan.display_indent()).contains("pg_avg"),
            "{}",
            p.plan.display_indent()
        );
    }
}
