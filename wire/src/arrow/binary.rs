//! Values in PostgreSQL's binary format (format code 1): what its `*send`
//! functions produce, so that drivers decoding binary results (JDBC, asyncpg,
//! tokio-postgres) read the same values they would from PostgreSQL.
//!
//! postgres-protocol has the fixed-width encoders; numeric, interval, jsonb
//! and arrays (whose shape comes from nested Arrow lists) are written here.

use bytes::{BufMut, BytesMut};
use postgres_protocol::types as pg;

use super::datetime::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};
use super::text::{i256_digits, parse_uuid, u128_digits, StackBuf};
use super::types::oid;
use super::values::{array_dims, sub_list, ListSlice, Value, ValueResult, MAX_DIMS};
use super::with_length;

/// The binary form of a non-NULL value of PostgreSQL type `ty` (for arrays,
/// the element type's oid).
pub(crate) fn write(v: Value<'_>, ty: u32, out: &mut BytesMut) -> ValueResult<()> {
    match v {
        Value::Bool(b) => pg::bool_to_sql(b, out),
        // Column types are chosen so that every value fits (types.rs).
        Value::Int(i) => match ty {
            oid::INT2 => pg::int2_to_sql(i as i16, out),
            oid::INT4 => pg::int4_to_sql(i as i32, out),
            _ => pg::int8_to_sql(i, out),
        },
        Value::UInt(u) => {
            let mut buf = [0u8; 40];
            push_numeric(false, u128_digits(u.into(), &mut buf), 0, out);
        }
        Value::F32(f) => pg::float4_to_sql(f, out),
        Value::F64(f) => pg::float8_to_sql(f, out),
        Value::Decimal(i, scale) => {
            let mut buf = [0u8; 40];
            push_numeric(i < 0, u128_digits(i.unsigned_abs(), &mut buf), scale, out);
        }
        Value::Decimal256(i, scale) => {
            let mut buf = StackBuf::new();
            let (neg, digits) = i256_digits(i, &mut buf)?;
            push_numeric(neg, digits, scale, out);
        }
        Value::Str(s) => match ty {
            oid::UUID => pg::uuid_to_sql(parse_uuid(s)?, out),
            oid::JSONB => {
                // jsonb_send: a version byte, then the text.
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            oid::NUMERIC => {
                let (neg, digits, scale) = parse_numeric_text(s)?;
                push_numeric(neg, &digits, scale, out);
            }
            _ => pg::text_to_sql(s, out),
        },
        Value::Bytes(b) if ty == oid::UUID => {
            pg::uuid_to_sql(b.try_into().map_err(|_| "a uuid is 16 bytes")?, out)
        }
        Value::Bytes(b) => pg::bytea_to_sql(b, out),
        Value::Date(d) => pg::date_to_sql(d - PG_EPOCH_DAYS, out),
        Value::Time(t) => pg::time_to_sql(t, out),
        Value::Timestamp(t) => pg::timestamp_to_sql(t - PG_EPOCH_MICROS, out),
        Value::Interval {
            months,
            days,
            micros,
        } => {
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        Value::List(list) => push_array(&list, ty, out)?,
    }
    Ok(())
}

/// A numeric's text (`-12.50`) as sign, digits and scale.
fn parse_numeric_text(s: &str) -> ValueResult<(bool, Vec<u8>, i8)> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let valid = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err("not a numeric value");
    }
    let scale = i8::try_from(frac.len()).map_err(|_| "a numeric scale above 127")?;
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    // No leading zeros (push_numeric groups from the decimal point).
    let lead = digits.iter().take_while(|&&b| b == b'0').count();
    digits.drain(..lead.min(digits.len().saturating_sub(1)));
    Ok((neg, digits, scale))
}

/// `numeric_send` of `digits` × 10^-`scale` (`digits` ASCII, no sign):
/// ndigits, weight, sign, dscale, then base-10000 digits with no leading or
/// trailing zero groups.
pub(crate) fn push_numeric(neg: bool, digits: &[u8], scale: i8, out: &mut BytesMut) {
    // Negative scales are trailing zeros of an integer.
    let frac = i32::from(scale.max(0));
    let zeros = i32::from(scale.min(0)).unsigned_abs() as i32;
    let len = digits.len() as i32 + zeros;
    // The decimal digit for 10^p.
    let digit_at = |p: i32| -> i16 {
        let k = len - 1 - (p + frac);
        if k < 0 || k >= len || k >= digits.len() as i32 {
            0
        } else {
            i16::from(digits[k as usize] - b'0')
        }
    };
    let int_len = len - frac;
    let g_max = (int_len + 3).div_euclid(4) - 1;
    let g_min = -((frac + 3) / 4);
    let mut groups = [0i16; 96];
    let mut n = 0;
    let mut weight = g_max;
    for g in (g_min..=g_max).rev() {
        let v = (0..4)
            .rev()
            .fold(0i16, |acc, j| acc * 10 + digit_at(4 * g + j));
        if n == 0 && v == 0 {
            // A leading zero group: the first digit is further right.
            weight -= 1;
            continue;
        }
        groups[n] = v;
        n += 1;
    }
    while n > 0 && groups[n - 1] == 0 {
        n -= 1;
    }
    let (weight, sign) = if n == 0 {
        (0, 0)
    } else {
        (weight, if neg { 0x4000 } else { 0 })
    };
    out.put_i16(n as i16);
    out.put_i16(weight as i16);
    out.put_u16(sign);
    out.put_u16(frac as u16);
    for g in &groups[..n] {
        out.put_i16(*g);
    }
}

/// `array_send`: dimensions, a has-NULLs flag, the element oid, each
/// dimension's length and lower bound (1), then the elements row-major.
fn push_array(list: &ListSlice<'_>, elem: u32, out: &mut BytesMut) -> ValueResult<()> {
    let mut dims = [0; MAX_DIMS];
    let ndim = array_dims(list, &mut dims)?;
    out.put_i32(ndim as i32);
    let flag_at = out.len();
    out.put_i32(0);
    out.put_u32(elem);
    for &d in &dims[..ndim] {
        out.put_i32(i32::try_from(d).map_err(|_| "array too large")?);
        out.put_i32(1);
    }
    if ndim == 0 {
        return Ok(());
    }
    let mut has_null = false;
    push_elements(list, &dims[1..ndim], elem, &mut has_null, out)?;
    if has_null {
        out[flag_at..flag_at + 4].copy_from_slice(&1i32.to_be_bytes());
    }
    Ok(())
}

fn push_elements(
    list: &ListSlice<'_>,
    inner: &[usize],
    elem: u32,
    has_null: &mut bool,
    out: &mut BytesMut,
) -> ValueResult<()> {
    for row in list.start..list.end {
        let v = list.child.get(row)?;
        if let Some((&len, deeper)) = inner.split_first() {
            push_elements(&sub_list(v, len)?, deeper, elem, has_null, out)?;
            continue;
        }
        match v {
            None => {
                *has_null = true;
                out.put_i32(-1);
            }
            Some(v) => with_length(out, |out| write(v, elem, out))?,
        }
    }
    Ok(())
}
