//! Values in PostgreSQL's text format, byte for byte what its output
//! functions (`float8out`, `numeric_out`, `array_out`, ...) print.
//!
//! Everything is written straight into the caller's buffer through small
//! stack buffers, so encoding a batch allocates nothing per value; array
//! elements go through one reused scratch buffer because whether an element
//! needs quotes is known only once it is printed.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::datatypes::i256;

use super::datetime::{
    push_date, push_interval, push_time, push_timestamp, push_timestamptz, Zone,
};
use super::types::oid;
use super::values::{array_dims, sub_list, ListSlice, Value, ValueResult, MAX_DIMS};
use super::TextSettings;

/// What text encoding needs besides the value: the session's settings, its
/// time zone resolved, and the scratch buffer for array elements.
pub(crate) struct TextCtx<'s> {
    pub settings: &'s TextSettings,
    pub zone: Zone,
    pub scratch: BytesMut,
}

/// The text of a non-NULL value of PostgreSQL type `oid` (for arrays, the
/// element type's oid).
pub(crate) fn write(
    v: Value<'_>,
    ty: u32,
    ctx: &mut TextCtx<'_>,
    out: &mut BytesMut,
) -> ValueResult<()> {
    match v {
        Value::Bool(b) => out.put_u8(if b { b't' } else { b'f' }),
        Value::Int(i) => push_int(i, out),
        Value::UInt(u) => push_uint(u, out),
        Value::F32(f) => push_float4(f, ctx.settings.extra_float_digits, out),
        Value::F64(f) => push_float8(f, ctx.settings.extra_float_digits, out),
        Value::Decimal(i, scale) => {
            let mut buf = [0u8; 40];
            let digits = u128_digits(i.unsigned_abs(), &mut buf);
            push_numeric(i < 0, digits, scale, out);
        }
        Value::Decimal256(i, scale) => {
            let mut buf = StackBuf::new();
            let (neg, digits) = i256_digits(i, &mut buf)?;
            push_numeric(neg, digits, scale, out);
        }
        Value::Str(s) if ty == oid::UUID => push_uuid(&parse_uuid(s)?, out),
        Value::Str(s) => out.put_slice(s.as_bytes()),
        Value::Bytes(b) if ty == oid::UUID => {
            push_uuid(b.try_into().map_err(|_| "a uuid is 16 bytes")?, out)
        }
        Value::Bytes(b) if ctx.settings.bytea_hex => push_bytea_hex(b, out),
        Value::Bytes(b) => push_bytea_escape(b, out),
        Value::Date(d) => push_date(d, out),
        Value::Time(t) => push_time(t, out),
        Value::Timestamp(t) if ty == oid::TIMESTAMPTZ => push_timestamptz(t, &ctx.zone, out),
        Value::Timestamp(t) => push_timestamp(t, out),
        Value::Interval {
            months,
            days,
            micros,
        } => push_interval(months, days, micros, out),
        Value::List(list) => push_array(&list, ty, ctx, out)?,
    }
    Ok(())
}

/// Two digits, zero-padded.
#[inline]
pub(crate) fn push_2(n: u32, out: &mut BytesMut) {
    out.put_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

#[inline]
pub(crate) fn push_uint(n: u64, out: &mut BytesMut) {
    let mut buf = [0u8; 40];
    out.put_slice(u128_digits(n.into(), &mut buf));
}

#[inline]
pub(crate) fn push_int(n: i64, out: &mut BytesMut) {
    if n < 0 {
        out.put_u8(b'-');
    }
    push_uint(n.unsigned_abs(), out);
}

/// The decimal digits of `n` (`0` for zero), written at the end of `buf`.
#[inline]
pub(crate) fn u128_digits(mut n: u128, buf: &mut [u8; 40]) -> &[u8] {
    let mut i = buf.len();
    // Most values fit a u64, whose division is much cheaper.
    while n > u128::from(u64::MAX) {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let mut m = n as u64;
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The sign and decimal digits of a 256-bit integer, formatted on the stack.
pub(crate) fn i256_digits(i: i256, buf: &mut StackBuf) -> ValueResult<(bool, &[u8])> {
    write!(buf, "{i}").map_err(|_| "numeric too long")?;
    let s = buf.as_bytes();
    Ok(match s.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, s),
    })
}

/// `numeric_out` of `digits` × 10^-`scale`: exactly `scale` fraction digits
/// (PostgreSQL keeps a numeric's display scale), no sign for zero.
pub(crate) fn push_numeric(neg: bool, digits: &[u8], scale: i8, out: &mut BytesMut) {
    let zero = digits.iter().all(|&d| d == b'0');
    if neg && !zero {
        out.put_u8(b'-');
    }
    if scale <= 0 {
        out.put_slice(digits);
        if !zero {
            out.put_bytes(b'0', usize::from(scale.unsigned_abs()));
        }
        return;
    }
    let s = scale as usize;
    if digits.len() <= s {
        out.put_slice(b"0.");
        out.put_bytes(b'0', s - digits.len());
        out.put_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - s);
        out.put_slice(int);
        out.put_u8(b'.');
        out.put_slice(frac);
    }
}

/// `float8out`: shortest round-trip digits when extra_float_digits > 0 (the
/// default since PostgreSQL 12), else `%.*g` with 15 + extra_float_digits.
pub(crate) fn push_float8(f: f64, extra_float_digits: i32, out: &mut BytesMut) {
    if !special(f, out) {
        let mut buf = StackBuf::new();
        if extra_float_digits > 0 {
            let _ = write!(buf, "{f:e}");
            layout_float(buf.as_bytes(), 15, out);
        } else {
            let ndig = (15 + extra_float_digits).max(1);
            let _ = write!(buf, "{:.*e}", (ndig - 1) as usize, f);
            layout_float(buf.as_bytes(), ndig, out);
        }
    }
}

/// `float4out`: as [`push_float8`] with float4's shortest digits, or `%.*g`
/// with 6 + extra_float_digits of the value widened to double.
pub(crate) fn push_float4(f: f32, extra_float_digits: i32, out: &mut BytesMut) {
    if !special(f.into(), out) {
        let mut buf = StackBuf::new();
        if extra_float_digits > 0 {
            let _ = write!(buf, "{f:e}");
            layout_float(buf.as_bytes(), 6, out);
        } else {
            let ndig = (6 + extra_float_digits).max(1);
            let _ = write!(buf, "{:.*e}", (ndig - 1) as usize, f64::from(f));
            layout_float(buf.as_bytes(), ndig, out);
        }
    }
}

fn special(f: f64, out: &mut BytesMut) -> bool {
    if f.is_nan() {
        out.put_slice(b"NaN");
    } else if f == f64::INFINITY {
        out.put_slice(b"Infinity");
    } else if f == f64::NEG_INFINITY {
        out.put_slice(b"-Infinity");
    } else {
        return false;
    }
    true
}

/// Lays out Rust's `{:e}` text (`-1.2345e-7`) the way printf's `%g` does,
/// which is also what PostgreSQL's shortest-decimal output imitates: plain
/// notation for exponents in -4 ..< `threshold`, else `d.ddde±XX`; no
/// trailing zeros in the fraction.
fn layout_float(e_text: &[u8], threshold: i32, out: &mut BytesMut) {
    let (neg, rest) = match e_text.split_first() {
        Some((b'-', r)) => (true, r),
        _ => (false, e_text),
    };
    let e = rest.iter().position(|&b| b == b'e').unwrap_or(rest.len());
    let exp: i32 = std::str::from_utf8(&rest[e + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 40];
    let mut n = 0;
    for &b in &rest[..e] {
        if b != b'.' && n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n];
    if neg {
        out.put_u8(b'-');
    }
    if exp < -4 || exp >= threshold {
        out.put_u8(digits[0]);
        if n > 1 {
            out.put_u8(b'.');
            out.put_slice(&digits[1..]);
        }
        out.put_u8(b'e');
        out.put_u8(if exp < 0 { b'-' } else { b'+' });
        let x = exp.unsigned_abs();
        if x < 10 {
            out.put_u8(b'0');
        }
        push_uint(x.into(), out);
    } else if exp >= 0 {
        let int = exp as usize + 1;
        if n <= int {
            out.put_slice(digits);
            out.put_bytes(b'0', int - n);
        } else {
            out.put_slice(&digits[..int]);
            out.put_u8(b'.');
            out.put_slice(&digits[int..]);
        }
    } else {
        out.put_slice(b"0.");
        out.put_bytes(b'0', (-exp - 1) as usize);
        out.put_slice(digits);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// bytea_output = hex: `\x0102ff`.
fn push_bytea_hex(b: &[u8], out: &mut BytesMut) {
    out.reserve(2 + 2 * b.len());
    out.put_slice(b"\\x");
    for &byte in b {
        out.put_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
    }
}

/// bytea_output = escape: printable ASCII as is, `\\` for a backslash, `\ooo`
/// octal for the rest.
fn push_bytea_escape(b: &[u8], out: &mut BytesMut) {
    for &byte in b {
        match byte {
            b'\\' => out.put_slice(b"\\\\"),
            0x20..=0x7e => out.put_u8(byte),
            _ => out.put_slice(&[
                b'\\',
                b'0' + (byte >> 6),
                b'0' + ((byte >> 3) & 7),
                b'0' + (byte & 7),
            ]),
        }
    }
}

/// `uuid_in`'s spellings: 32 hex digits, a `-` allowed after any group of
/// four, the whole optionally in braces.
pub(crate) fn parse_uuid(s: &str) -> ValueResult<[u8; 16]> {
    const BAD: &str = "invalid input syntax for type uuid";
    let mut src = s.as_bytes();
    let braces = src.first() == Some(&b'{');
    if braces {
        src = &src[1..];
    }
    let mut uuid = [0u8; 16];
    for (i, byte) in uuid.iter_mut().enumerate() {
        let (hi, lo) = match src {
            [a, b, ..] => (hex_value(*a).ok_or(BAD)?, hex_value(*b).ok_or(BAD)?),
            _ => return Err(BAD),
        };
        *byte = hi << 4 | lo;
        src = &src[2..];
        if src.first() == Some(&b'-') && i % 2 == 1 && i < 15 {
            src = &src[1..];
        }
    }
    if braces {
        src = src.strip_prefix(b"}").ok_or(BAD)?;
    }
    if src.is_empty() {
        Ok(uuid)
    } else {
        Err(BAD)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `uuid_out`: lowercase, hyphenated 8-4-4-4-12.
fn push_uuid(u: &[u8; 16], out: &mut BytesMut) {
    for (i, &byte) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.put_u8(b'-');
        }
        out.put_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
    }
}

/// `array_out`: `{1,2,NULL}`, `{{1,2},{3,4}}`, elements quoted when needed.
fn push_array(
    list: &ListSlice<'_>,
    elem: u32,
    ctx: &mut TextCtx<'_>,
    out: &mut BytesMut,
) -> ValueResult<()> {
    let mut dims = [0; MAX_DIMS];
    let ndim = array_dims(list, &mut dims)?;
    if ndim == 0 {
        out.put_slice(b"{}");
        return Ok(());
    }
    let mut scratch = std::mem::take(&mut ctx.scratch);
    let r = push_level(list, &dims[1..ndim], elem, ctx, &mut scratch, out);
    ctx.scratch = scratch;
    r
}

fn push_level(
    list: &ListSlice<'_>,
    inner: &[usize],
    elem: u32,
    ctx: &mut TextCtx<'_>,
    scratch: &mut BytesMut,
    out: &mut BytesMut,
) -> ValueResult<()> {
    out.put_u8(b'{');
    for row in list.start..list.end {
        if row > list.start {
            out.put_u8(b',');
        }
        let v = list.child.get(row)?;
        if let Some((&len, deeper)) = inner.split_first() {
            push_level(&sub_list(v, len)?, deeper, elem, ctx, scratch, out)?;
            continue;
        }
        match v {
            None => out.put_slice(b"NULL"),
            Some(v) => {
                scratch.clear();
                write(v, elem, ctx, scratch)?;
                push_element(scratch, out);
            }
        }
    }
    out.put_u8(b'}');
    Ok(())
}

/// An element as `array_out` writes it: in double quotes, with `"` and `\`
/// backslash-escaped, if it is empty, is `NULL` in any case, or contains a
/// delimiter, brace, quote, backslash or white space.
fn push_element(e: &[u8], out: &mut BytesMut) {
    let quote = e.is_empty()
        || e.eq_ignore_ascii_case(b"NULL")
        || e.iter().any(|&b| {
            matches!(
                b,
                b'"' | b'\\' | b'{' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            )
        });
    if !quote {
        out.put_slice(e);
        return;
    }
    out.put_u8(b'"');
    for &b in e {
        if b == b'"' || b == b'\\' {
            out.put_u8(b'\\');
        }
        out.put_u8(b);
    }
    out.put_u8(b'"');
}

/// A fixed-size `fmt::Write` target, so that `{:e}` formatting needs no heap.
pub(crate) struct StackBuf {
    buf: [u8; 96],
    len: usize,
}

impl StackBuf {
    pub(crate) fn new() -> Self {
        StackBuf {
            buf: [0; 96],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
