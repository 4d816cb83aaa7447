//! Dates, times and intervals as PostgreSQL prints them (DateStyle ISO,
//! IntervalStyle postgres), and the session TimeZone timestamptz is shown in.
//!
//! The calendar is the proleptic Gregorian one PostgreSQL uses, with year 0
//! printed as `0001 BC`. No chrono: arrow's re-exported time-zone type
//! ([`Tz`]) supplies offsets for named zones, and the rest is integer math
//! that never allocates (a whole batch is formatted with no allocation).

use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::temporal_conversions::as_datetime_with_timezone;

use super::text::{push_2, push_uint};

pub(crate) const USECS_PER_SEC: i64 = 1_000_000;
pub(crate) const MICROS_PER_DAY: i64 = 86_400 * USECS_PER_SEC;
/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i32 = 10_957;
pub(crate) const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * MICROS_PER_DAY;
/// PostgreSQL's date range in days since 1970: 4714-11-24 BC (Julian day 0)
/// up to, not including, 5874898-01-01.
pub(crate) const DATE_MIN: i64 = -2_440_588;
pub(crate) const DATE_MAX: i64 = 2_147_483_494 - 2_440_588;
/// PostgreSQL's lowest timestamp, 4714-11-24 00:00:00 BC, in µs since 1970.
/// (Its highest, in 294276 AD, is beyond any i64 of µs since 1970.)
pub(crate) const TIMESTAMP_MIN: i64 = DATE_MIN * MICROS_PER_DAY;

/// Nanoseconds to microseconds, rounding half to even: PostgreSQL keeps
/// microseconds, and rounds (not truncates) finer input the same way.
#[inline]
pub(crate) fn nanos_to_micros(ns: i64) -> i64 {
    let q = ns.div_euclid(1000);
    let r = ns.rem_euclid(1000);
    if r > 500 || (r == 500 && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// (year, month, day) of a day count since 1970-01-01; year 0 is 1 BC.
/// Howard Hinnant's `civil_from_days`.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD`, the year at least four digits; returns whether the date is
/// BC (the caller appends ` BC` where PostgreSQL puts it).
fn push_ymd(days: i64, out: &mut BytesMut) -> bool {
    let (y, m, d) = civil(days);
    let bc = y <= 0;
    let year = if bc { 1 - y } else { y } as u64;
    if year < 1000 {
        out.put_u8(b'0');
        if year < 100 {
            out.put_u8(b'0');
        }
        if year < 10 {
            out.put_u8(b'0');
        }
    }
    push_uint(year, out);
    out.put_u8(b'-');
    push_2(m, out);
    out.put_u8(b'-');
    push_2(d, out);
    bc
}

/// A date: `2024-03-05`, `0044-03-15 BC`.
pub(crate) fn push_date(days: i32, out: &mut BytesMut) {
    if push_ymd(days.into(), out) {
        out.put_slice(b" BC");
    }
}

/// `HH:MM:SS` and the fraction without trailing zeros; `hours` may pass 24
/// (intervals, `24:00:00`).
fn push_hms(hours: u64, micros_in_hour: u64, out: &mut BytesMut) {
    if hours < 10 {
        out.put_u8(b'0');
    }
    push_uint(hours, out);
    out.put_u8(b':');
    push_2((micros_in_hour / 60_000_000) as u32, out);
    out.put_u8(b':');
    push_2((micros_in_hour / 1_000_000 % 60) as u32, out);
    push_fraction((micros_in_hour % 1_000_000) as u32, out);
}

/// `.ffffff` with trailing zeros dropped, nothing for zero (AppendSeconds).
fn push_fraction(mut micros: u32, out: &mut BytesMut) {
    if micros == 0 {
        return;
    }
    let mut digits = 6;
    while micros % 10 == 0 {
        micros /= 10;
        digits -= 1;
    }
    let mut buf = [b'0'; 7];
    buf[0] = b'.';
    for i in (1..=digits).rev() {
        buf[i] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.put_slice(&buf[..=digits]);
}

/// A time of day, `13:04:05.5`.
pub(crate) fn push_time(micros: i64, out: &mut BytesMut) {
    let m = micros as u64;
    push_hms(m / 3_600_000_000, m % 3_600_000_000, out);
}

/// A timestamp without time zone: `2024-03-05 13:04:05.25`, ` BC` last.
pub(crate) fn push_timestamp(micros: i64, out: &mut BytesMut) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let bc = push_ymd(days, out);
    out.put_u8(b' ');
    push_time(micros.rem_euclid(MICROS_PER_DAY), out);
    if bc {
        out.put_slice(b" BC");
    }
}

/// A timestamptz in `zone`: local time, then the offset as PostgreSQL's
/// EncodeTimezone writes it (`+00`, `+05:30`, `+00:53:28`), then ` BC`.
pub(crate) fn push_timestamptz(micros: i64, zone: &Zone, out: &mut BytesMut) {
    let offset = zone.offset_at(micros);
    let local = micros + i64::from(offset) * USECS_PER_SEC;
    let days = local.div_euclid(MICROS_PER_DAY);
    let bc = push_ymd(days, out);
    out.put_u8(b' ');
    push_time(local.rem_euclid(MICROS_PER_DAY), out);
    out.put_u8(if offset >= 0 { b'+' } else { b'-' });
    let abs = offset.unsigned_abs();
    push_2(abs / 3600, out);
    let (min, sec) = (abs / 60 % 60, abs % 60);
    if min != 0 || sec != 0 {
        out.put_u8(b':');
        push_2(min, out);
    }
    if sec != 0 {
        out.put_u8(b':');
        push_2(sec, out);
    }
    if bc {
        out.put_slice(b" BC");
    }
}

/// An interval in IntervalStyle postgres (EncodeInterval): `1 year 2 mons
/// 3 days 04:05:06.5`, `-1 days +02:00:00`, `00:00:00`.
pub(crate) fn push_interval(months: i32, days: i32, micros: i64, out: &mut BytesMut) {
    let mut state = Parts {
        is_zero: true,
        is_before: false,
    };
    state.part(i64::from(months / 12), "year", out);
    state.part(i64::from(months % 12), "mon", out);
    state.part(i64::from(days), "day", out);
    if state.is_zero || micros != 0 {
        if !state.is_zero {
            out.put_u8(b' ');
        }
        if micros < 0 {
            out.put_u8(b'-');
        } else if state.is_before {
            out.put_u8(b'+');
        }
        let m = micros.unsigned_abs();
        push_hms(m / 3_600_000_000, m % 3_600_000_000, out);
    }
}

/// AddPostgresIntPart's state: whether anything was written, and whether the
/// last part was negative (then a positive next part gets an explicit `+`).
struct Parts {
    is_zero: bool,
    is_before: bool,
}

impl Parts {
    fn part(&mut self, value: i64, unit: &str, out: &mut BytesMut) {
        if value == 0 {
            return;
        }
        if !self.is_zero {
            out.put_u8(b' ');
        }
        if self.is_before && value > 0 {
            out.put_u8(b'+');
        }
        if value < 0 {
            out.put_u8(b'-');
        }
        push_uint(value.unsigned_abs(), out);
        out.put_u8(b' ');
        out.put_slice(unit.as_bytes());
        if value != 1 {
            out.put_u8(b's');
        }
        self.is_before = value < 0;
        self.is_zero = false;
    }
}

/// The session's TimeZone, resolved once per batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Zone {
    /// Seconds east of UTC.
    Fixed(i32),
    Named(Tz),
}

impl Zone {
    /// A TimeZone setting as PostgreSQL reads it (check_timezone):
    ///
    /// * a bare number is hours *east* of UTC (`SET TIME ZONE 2` → `<+02>-02`);
    /// * a POSIX zone without daylight rules, `[name]±hh[:mm[:ss]]`, counts
    ///   hours *west* (`+05:30` shows times as `-05:30`, `UTC+3` as `-03`;
    ///   `<+05:30>-05:30`, what `SET TIME ZONE INTERVAL '+05:30'` stores, as
    ///   `+05:30`);
    /// * anything else is an IANA name (`Europe/Berlin`, `UTC`, `Etc/GMT-3`),
    ///   looked up in chrono-tz's copy of the tz database: exact first, then
    ///   with each word capitalised, since PostgreSQL ignores case.
    pub(crate) fn parse(setting: &str) -> Option<Zone> {
        let s = setting.trim();
        if s.eq_ignore_ascii_case("UTC") || s.eq_ignore_ascii_case("GMT") {
            return Some(Zone::Fixed(0));
        }
        if let Ok(hours) = s.parse::<f64>() {
            let secs = (hours * 3600.0).round();
            return (secs.abs() < 168.0 * 3600.0).then_some(Zone::Fixed(secs as i32));
        }
        if let Some(west) = posix_offset(s) {
            // A seconds offset is refused by PostgreSQL ("appears to use leap
            // seconds"), so no session can have one.
            return (west % 60 == 0).then_some(Zone::Fixed(-west));
        }
        if let Ok(tz) = Tz::from_str(s) {
            return Some(Zone::Named(tz));
        }
        Tz::from_str(&capitalised(s)).ok().map(Zone::Named)
    }

    /// Seconds east of UTC at the instant `micros` (µs since 1970, UTC).
    #[inline]
    pub(crate) fn offset_at(&self, micros: i64) -> i32 {
        match self {
            Zone::Fixed(east) => *east,
            Zone::Named(tz) => {
                let at = if micros >= TZ_TABLE_END {
                    same_calendar_before_2100(micros)
                } else {
                    micros
                };
                as_datetime_with_timezone::<TimestampMicrosecondType>(at, *tz).map_or(0, |t| {
                    (t.naive_local().and_utc().timestamp() - t.timestamp()) as i32
                })
            }
        }
    }
}

/// chrono-tz's transition tables end in 2099 (later instants get the last
/// offset, standard time), while PostgreSQL applies a zone's current rules
/// forever: 2100-01-01 00:00 UTC in µs.
const TZ_TABLE_END: i64 = 4_102_444_800 * USECS_PER_SEC;

/// The same UTC wall-clock moment in the latest year before 2100 whose
/// calendar is the same (leap or not, same weekday on January 1st): daylight
/// rules are in months, weekdays and days of month, so the offset is the
/// same there. 2072..=2099 is a whole 28-year cycle with no century in it.
fn same_calendar_before_2100(micros: i64) -> i64 {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (year, _, _) = civil(days);
    let jan1 = days_from_civil(year);
    for other in (2072..=2099).rev() {
        let other_jan1 = days_from_civil(other);
        if is_leap(other) == is_leap(year) && (other_jan1 - jan1).rem_euclid(7) == 0 {
            return micros - (jan1 - other_jan1) * MICROS_PER_DAY;
        }
    }
    micros
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 of January 1st of `y` (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64) -> i64 {
    // January is month 11 of the March-based year y - 1.
    let y = y - 1;
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * 10 + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The offset, in seconds west, of a POSIX zone spec with no DST part:
/// an optional name (`UTC`, `<+05:30>`), then `[+-]hh[:mm[:ss]]`.
fn posix_offset(s: &str) -> Option<i32> {
    let rest = if let Some(r) = s.strip_prefix('<') {
        &r[r.find('>')? + 1..]
    } else {
        let name = s.bytes().take_while(u8::is_ascii_alphabetic).count();
        if name != 0 && name < 3 {
            return None;
        }
        &s[name..]
    };
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => (1, rest),
    };
    let mut parts = digits.split(':');
    let mut secs = 0;
    for (i, scale) in [3600, 60, 1].into_iter().enumerate() {
        let Some(p) = parts.next() else {
            break;
        };
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i32 = p.parse().ok()?;
        if (i == 0 && n > 167) || (i > 0 && n > 59) {
            return None;
        }
        secs += n * scale;
    }
    parts.next().is_none().then_some(sign * secs)
}

/// `america/new_york` → `America/New_York`.
fn capitalised(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        out.push(if start {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        start = matches!(c, '/' | '_' | '-');
    }
    out
}
