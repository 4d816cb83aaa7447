//! The PostgreSQL types `pg_type` lists, the Arrow → PostgreSQL mapping of
//! user columns, and `format_type`.

use datafusion::arrow::datatypes::DataType;

/// One row of `pg_type`. Array types are derived from their element type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgType {
    pub oid: i32,
    pub name: &'static str,
    /// `typlen`: bytes, or -1 (varlena) / -2 (cstring).
    pub len: i16,
    pub category: char,
    /// The array type whose elements are this type; 0 for none.
    pub array: i32,
    /// `typinput` (a regproc, kept as text).
    pub input: &'static str,
    /// `typtype`: 'b' base, 'p' pseudo.
    pub kind: char,
    /// `typelem` of the vector types (int2vector, oidvector).
    pub elem: i32,
    /// `typcollation`: 100 (default) for collatable types, 950 (C) for name.
    pub collation: i32,
}

const fn base(
    oid: i32,
    name: &'static str,
    len: i16,
    category: char,
    array: i32,
    input: &'static str,
) -> PgType {
    PgType {
        oid,
        name,
        len,
        category,
        array,
        input,
        kind: 'b',
        elem: 0,
        collation: 0,
    }
}

const fn collatable(t: PgType, collation: i32) -> PgType {
    PgType { collation, ..t }
}

/// The built-in types, by oid.
pub(crate) const BASE_TYPES: &[PgType] = &[
    base(16, "bool", 1, 'B', 1000, "boolin"),
    base(17, "bytea", -1, 'U', 1001, "byteain"),
    base(18, "char", 1, 'Z', 1002, "charin"),
    collatable(base(19, "name", 64, 'S', 1003, "namein"), 950),
    base(20, "int8", 8, 'N', 1016, "int8in"),
    base(21, "int2", 2, 'N', 1005, "int2in"),
    PgType {
        elem: 21,
        ..base(22, "int2vector", -1, 'A', 1006, "int2vectorin")
    },
    base(23, "int4", 4, 'N', 1007, "int4in"),
    base(24, "regproc", 4, 'N', 1008, "regprocin"),
    collatable(base(25, "text", -1, 'S', 1009, "textin"), 100),
    base(26, "oid", 4, 'N', 1028, "oidin"),
    base(27, "tid", 6, 'U', 1010, "tidin"),
    base(28, "xid", 4, 'U', 1011, "xidin"),
    base(29, "cid", 4, 'U', 1012, "cidin"),
    PgType {
        elem: 26,
        ..base(30, "oidvector", -1, 'A', 1013, "oidvectorin")
    },
    base(114, "json", -1, 'U', 199, "json_in"),
    base(142, "xml", -1, 'U', 143, "xml_in"),
    collatable(
        base(194, "pg_node_tree", -1, 'Z', 0, "pg_node_tree_in"),
        100,
    ),
    base(600, "point", 16, 'G', 1017, "point_in"),
    base(700, "float4", 4, 'N', 1021, "float4in"),
    base(701, "float8", 8, 'N', 1022, "float8in"),
    PgType {
        kind: 'p',
        ..base(705, "unknown", -2, 'X', 0, "unknownin")
    },
    base(790, "money", 8, 'N', 791, "cash_in"),
    base(829, "macaddr", 6, 'U', 1040, "macaddr_in"),
    base(869, "inet", -1, 'I', 1041, "inet_in"),
    base(650, "cidr", -1, 'I', 651, "cidr_in"),
    base(1033, "aclitem", 12, 'U', 1034, "aclitemin"),
    collatable(base(1042, "bpchar", -1, 'S', 1014, "bpcharin"), 100),
    collatable(base(1043, "varchar", -1, 'S', 1015, "varcharin"), 100),
    base(1082, "date", 4, 'D', 1182, "date_in"),
    base(1083, "time", 8, 'D', 1183, "time_in"),
    base(1114, "timestamp", 8, 'D', 1115, "timestamp_in"),
    base(1184, "timestamptz", 8, 'D', 1185, "timestamptz_in"),
    base(1186, "interval", 16, 'T', 1187, "interval_in"),
    base(1266, "timetz", 12, 'D', 1270, "timetz_in"),
    base(1560, "bit", -1, 'V', 1561, "bit_in"),
    base(1562, "varbit", -1, 'V', 1563, "varbit_in"),
    base(1700, "numeric", -1, 'N', 1231, "numeric_in"),
    base(2205, "regclass", 4, 'N', 2210, "regclassin"),
    base(2206, "regtype", 4, 'N', 2211, "regtypein"),
    base(2950, "uuid", 16, 'U', 2951, "uuid_in"),
    base(3802, "jsonb", -1, 'U', 3807, "jsonb_in"),
    base(4089, "regnamespace", 4, 'N', 4090, "regnamespacein"),
    base(4096, "regrole", 4, 'N', 4097, "regrolein"),
    PgType {
        kind: 'p',
        ..base(2249, "record", -1, 'P', 2287, "record_in")
    },
    PgType {
        kind: 'p',
        ..base(2275, "cstring", -2, 'P', 1263, "cstring_in")
    },
    PgType {
        kind: 'p',
        ..base(2278, "void", 4, 'P', 0, "void_in")
    },
    PgType {
        kind: 'p',
        ..base(2279, "trigger", 4, 'P', 0, "trigger_in")
    },
];

/// Every `pg_type` row: the base types, then one array type per base type
/// that has one (`_name`, category 'A', `typelem` the element). Built once.
pub(crate) fn all_types() -> &'static [PgType] {
    static ALL: std::sync::OnceLock<Vec<PgType>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = BASE_TYPES.to_vec();
        for t in BASE_TYPES.iter().filter(|t| t.array != 0) {
            // Built once per process: a fixed, small set of names.
            let name: &'static str = Box::leak(format!("_{}", t.name).into_boxed_str());
            out.push(PgType {
                oid: t.array,
                name,
                len: -1,
                category: 'A',
                array: 0,
                input: "array_in",
                kind: 'b',
                elem: t.oid,
                collation: t.collation,
            });
        }
        out
    })
}

/// The type with this oid (base or array).
pub(crate) fn type_by_oid(oid: i32) -> Option<PgType> {
    all_types().iter().find(|t| t.oid == oid).copied()
}

/// The oid of a type named as `regtype` input accepts it: `int4`,
/// `integer`, `pg_catalog.text`, `character varying`, `text[]`, `_text`.
pub(crate) fn type_oid_by_name(name: &str) -> Option<i32> {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if let Some(elem) = name.strip_suffix("[]") {
        let elem = type_oid_by_name(elem)?;
        return type_by_oid(elem).map(|t| t.array).filter(|a| *a != 0);
    }
    let canonical = match name {
        "boolean" => "bool",
        "smallint" => "int2",
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "\"char\"" => "char",
        other => other,
    };
    all_types()
        .iter()
        .find(|t| t.name == canonical)
        .map(|t| t.oid)
}

/// A user column's PostgreSQL type: its oid and `atttypmod`.
pub(crate) fn pg_type_of(data_type: &DataType) -> (i32, i32) {
    match data_type {
        DataType::Boolean => (16, -1),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => (21, -1),
        DataType::Int32 | DataType::UInt16 => (23, -1),
        DataType::Int64 | DataType::UInt32 => (20, -1),
        DataType::UInt64 => (1700, -1),
        DataType::Float16 | DataType::Float32 => (700, -1),
        DataType::Float64 => (701, -1),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            let (p, s) = (i32::from(*p), i32::from(*s));
            if s < 0 {
                (1700, -1)
            } else {
                (1700, ((p << 16) | s) + 4)
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (25, -1),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => (17, -1),
        DataType::Date32 | DataType::Date64 => (1082, -1),
        DataType::Time32(_) | DataType::Time64(_) => (1083, -1),
        DataType::Timestamp(_, None) => (1114, -1),
        DataType::Timestamp(_, Some(_)) => (1184, -1),
        DataType::Interval(_) | DataType::Duration(_) => (1186, -1),
        DataType::Dictionary(_, value) => pg_type_of(value),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => {
            let (elem, _) = pg_type_of(f.data_type());
            let array = type_by_oid(elem).map(|t| t.array).unwrap_or(0);
            (if array == 0 { 1009 } else { array }, -1)
        }
        _ => (25, -1),
    }
}

/// `format_type(oid, typmod)` as PostgreSQL prints it: SQL-standard names
/// (`bigint`, `character varying(20)`, `numeric(12,2)`, `integer[]`).
/// `typmod` None is the SQL NULL (the bare type name, as `regtype` prints).
pub(crate) fn format_type(oid: i32, typmod: Option<i32>) -> Option<String> {
    let t = type_by_oid(oid)?;
    if t.category == 'A' && t.elem != 0 && t.name.starts_with('_') {
        return format_type(t.elem, typmod).map(|e| format!("{e}[]"));
    }
    let m = typmod.filter(|m| *m >= 0);
    let named = |sql: &str, with: Option<String>| match with {
        Some(w) => format!("{sql}({w})"),
        None => sql.to_string(),
    };
    let chars = m.map(|m| (m - 4).to_string());
    let precision = m.map(|m| m.to_string());
    Some(match t.name {
        "bool" => "boolean".into(),
        "int2" => "smallint".into(),
        "int4" => "integer".into(),
        "int8" => "bigint".into(),
        "float4" => "real".into(),
        "float8" => "double precision".into(),
        "char" => "\"char\"".into(),
        "bpchar" if typmod.is_none() => "bpchar".into(),
        "bpchar" => named("character", chars),
        "varchar" => named("character varying", chars),
        "bit" => named("bit", precision),
        "varbit" => named("bit varying", precision),
        "numeric" => match m {
            Some(m) => format!("numeric({},{})", ((m - 4) >> 16) & 0xffff, (m - 4) & 0xffff),
            None => "numeric".into(),
        },
        "time" => format!("time{} without time zone", paren(precision)),
        "timetz" => format!("time{} with time zone", paren(precision)),
        "timestamp" => format!("timestamp{} without time zone", paren(precision)),
        "timestamptz" => format!("timestamp{} with time zone", paren(precision)),
        other => other.to_string(),
    })
}

fn paren(p: Option<String>) -> String {
    p.map(|p| format!("({p})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_names_like_postgres() {
        assert_eq!(format_type(20, Some(-1)).unwrap(), "bigint");
        assert_eq!(
            format_type(1700, Some(((12 << 16) | 2) + 4)).unwrap(),
            "numeric(12,2)"
        );
        assert_eq!(
            format_type(1043, Some(24)).unwrap(),
            "character varying(20)"
        );
        assert_eq!(format_type(1007, None).unwrap(), "integer[]");
        assert_eq!(
            format_type(1114, Some(-1)).unwrap(),
            "timestamp without time zone"
        );
        assert_eq!(format_type(1, None), None);
        assert_eq!(type_oid_by_name("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid_by_name("character varying"), Some(1043));
        assert_eq!(type_oid_by_name("text[]"), Some(1009));
        assert_eq!(type_oid_by_name("_int4"), Some(1007));
    }
}
