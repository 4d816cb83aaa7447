//! The environment's two ways into the configuration.
//!
//! - `${VAR}` (or `${VAR:-default}`) inside any string value is replaced by
//!   the variable, so secrets need not sit in the file. `$${` writes a literal `${`.
//! - `HELIOS_<SECTION>__<KEY>=value` sets `<section>.<key>`, overriding the
//!   file (double underscore between levels, since keys contain `_`).
//!   `HELIOS_UPSTREAM__URL=postgres://...`, `HELIOS_POOL__MAX_SIZE=10`.

use toml::Value;

use super::ConfigError;

const PREFIX: &str = "HELIOS_";

fn lookup<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Replace `${VAR}` in every string of `value`. `path` names the key for errors.
pub fn interpolate(
    value: &mut Value,
    vars: &[(String, String)],
    path: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s, vars).map_err(|m| ConfigError::invalid(&path.join("."), m))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let last = path.pop();
                path.push(format!("{}[{i}]", last.clone().unwrap_or_default()));
                interpolate(item, vars, path)?;
                path.pop();
                path.extend(last);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(k.clone());
                interpolate(v, vars, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, vars: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                // The value is not quoted: it may be a secret.
                .ok_or_else(|| {
                    "unterminated \"${\" (write $${ for a literal \"${\")".to_string()
                })?;
            let spec = &tail[..end];
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            match (lookup(vars, name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                    ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Apply `HELIOS_SECTION__KEY=value` overrides.
pub fn apply_overrides(root: &mut Value, vars: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // HELIOS_CONFIG and the like are not config keys.
        if !path.contains("__") {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        let dotted = keys.join(".");
        if keys.iter().any(|k| k.is_empty()) {
            return Err(ConfigError::invalid(
                &dotted,
                format!("malformed override variable {name}"),
            ));
        }
        let mut node = &mut *root;
        for key in &keys[..keys.len() - 1] {
            let table = node.as_table_mut().ok_or_else(|| {
                ConfigError::invalid(&dotted, format!("{name} does not name a key"))
            })?;
            node = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Default::default()));
        }
        let table = node
            .as_table_mut()
            .ok_or_else(|| ConfigError::invalid(&dotted, format!("{name} does not name a key")))?;
        table.insert(keys[keys.len() - 1].clone(), parse_scalar(raw));
    }
    Ok(())
}

/// An override's value: a TOML integer, float or boolean when it reads as
/// one, else the string as written.
fn parse_scalar(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        return Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return Value::Boolean(b);
    }
    if raw.contains('.') && !raw.contains(':') {
        if let Ok(f) = raw.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        let v = vars(&[("PW", "s3cret")]);
        assert_eq!(expand("a${PW}b", &v).unwrap(), "as3cretb");
        assert_eq!(expand("${NOPE:-x}", &v).unwrap(), "x");
        assert_eq!(expand("$${PW} $5", &v).unwrap(), "${PW} $5");
        let err = expand("${NOPE}", &v).unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
    }
}
