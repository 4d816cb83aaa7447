//! The body of a Bind message after its portal and statement names:
//! parameter formats, parameter values, result formats. Read without
//! copying, for the handlers that answer a Bind themselves.

use bytes::Buf;

/// A Bind body past the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTail<'a> {
    /// The parameter format codes as sent (none, one for all, or one each).
    pub param_formats: Vec<i16>,
    /// Each parameter's bytes; `None` is NULL.
    pub params: Vec<Option<&'a [u8]>>,
    /// The result format codes as sent.
    pub result_formats: Vec<i16>,
}

impl BindTail<'_> {
    /// The format of parameter `i` (0 text, 1 binary), as PostgreSQL reads
    /// the codes.
    pub fn param_format(&self, i: usize) -> i16 {
        match self.param_formats.len() {
            0 => 0,
            1 => self.param_formats[0],
            _ => self.param_formats.get(i).copied().unwrap_or(0),
        }
    }
}

/// Read `b`; `None` when it is cut short.
pub fn read_bind_tail(mut b: &[u8]) -> Option<BindTail<'_>> {
    fn i16s(b: &mut &[u8]) -> Option<Vec<i16>> {
        if b.len() < 2 {
            return None;
        }
        let n = b.get_i16().max(0) as usize;
        if b.len() < 2 * n {
            return None;
        }
        Some((0..n).map(|_| b.get_i16()).collect())
    }
    let param_formats = i16s(&mut b)?;
    if b.len() < 2 {
        return None;
    }
    let n = b.get_i16().max(0) as usize;
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        if b.len() < 4 {
            return None;
        }
        let len = b.get_i32();
        if len < 0 {
            params.push(None);
            continue;
        }
        let len = len as usize;
        if b.len() < len {
            return None;
        }
        let (value, rest) = b.split_at(len);
        params.push(Some(value));
        b = rest;
    }
    let result_formats = i16s(&mut b)?;
    // As PostgreSQL: format codes are none, one for all, or one per
    // parameter, and nothing may follow the result formats.
    let formats_fit = param_formats.len() <= 1 || param_formats.len() == params.len();
    if !formats_fit || !b.is_empty() {
        return None;
    }
    Some(BindTail {
        param_formats,
        params,
        result_formats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_formats_and_values() {
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes()); // one param format
        body.extend_from_slice(&1i16.to_be_bytes()); // binary
        body.extend_from_slice(&2i16.to_be_bytes()); // two params
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes()); // one result format
        body.extend_from_slice(&0i16.to_be_bytes());
        let t = read_bind_tail(&body).unwrap();
        assert_eq!(t.params, vec![Some(&b"ab"[..]), None]);
        assert_eq!((t.param_format(1), t.result_formats), (1, vec![0]));
        assert_eq!(read_bind_tail(&body[..body.len() - 1]), None);
        assert_eq!(read_bind_tail(&body[..7]), None);
    }
}
