//! The `pg_catalog` relations: their columns (PostgreSQL 15's, in order, for
//! the catalogs clients read) and the conversion of rows into MemTables.
//!
//! Columns are declared in a compact spec, `name:code`, one code per
//! PostgreSQL type: `o` oid, `x` xid, `i` int4, `h` int2, `l` int8, `f`
//! float4, `b` bool, `n` name, `t` text, `c` "char", `r` regproc, `N`
//! pg_node_tree, `a` text[], `A` aclitem[], `O` oid[], `H` int2[], `v`
//! int2vector, `V` oidvector, `T` timestamptz. Oids are Arrow Int32;
//! arrays, vectors, regprocs and timestamps are text in PostgreSQL's text
//! form (`{a,b}`, `1 2`), so they compare with the literals clients write.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};

/// One cell of a catalog row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    Null,
    I(i64),
    F(f64),
    B(bool),
    T(String),
}

impl From<&str> for V {
    fn from(s: &str) -> V {
        V::T(s.to_string())
    }
}
impl From<String> for V {
    fn from(s: String) -> V {
        V::T(s)
    }
}
impl From<i32> for V {
    fn from(i: i32) -> V {
        V::I(i64::from(i))
    }
}
impl From<i64> for V {
    fn from(i: i64) -> V {
        V::I(i)
    }
}
impl From<bool> for V {
    fn from(b: bool) -> V {
        V::B(b)
    }
}
impl From<char> for V {
    fn from(c: char) -> V {
        V::T(c.to_string())
    }
}
impl<T: Into<V>> From<Option<T>> for V {
    fn from(o: Option<T>) -> V {
        o.map(Into::into).unwrap_or(V::Null)
    }
}

/// A catalog relation: name, whether PostgreSQL has it as a view, columns.
pub(crate) struct Def {
    pub name: &'static str,
    pub view: bool,
    pub spec: &'static str,
}

const fn table(name: &'static str, spec: &'static str) -> Def {
    Def {
        name,
        view: false,
        spec,
    }
}
const fn view(name: &'static str, spec: &'static str) -> Def {
    Def {
        name,
        view: true,
        spec,
    }
}

/// Catalogs that are always registered empty: nothing Helios embeds has
/// policies, inheritance, publications, triggers, rules, defaults or
/// comments. The rewriter relies on this list to drop subqueries over them
/// (DataFusion cannot plan several of the shapes psql uses there).
pub(crate) const ALWAYS_EMPTY: &[&str] = &[
    "pg_attrdef",
    "pg_auth_members",
    "pg_cast",
    "pg_conversion",
    "pg_db_role_setting",
    "pg_default_acl",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_opclass",
    "pg_operator",
    "pg_stat_activity",
    "pg_user_mapping",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_event_trigger",
    "pg_extension",
    "pg_foreign_table",
    "pg_inherits",
    "pg_matviews",
    "pg_partitioned_table",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_rewrite",
    "pg_sequence",
    "pg_sequences",
    "pg_shdescription",
    "pg_statistic_ext",
    "pg_subscription",
    "pg_trigger",
];

/// Array columns that are always NULL here (no options, no ACLs): the
/// rewriter treats `unnest()` of them as empty.
pub(crate) const ALWAYS_NULL_ARRAYS: &[&str] = &[
    "attacl",
    "attfdwoptions",
    "attoptions",
    "datacl",
    "ftoptions",
    "lanacl",
    "nspacl",
    "proacl",
    "proconfig",
    "relacl",
    "reloptions",
    "rolconfig",
    "spcacl",
    "spcoptions",
    "typacl",
    "useconfig",
];

/// Every `pg_catalog` relation Helios provides.
pub(crate) const DEFS: &[Def] = &[
    table("pg_am", "oid:o amname:n amhandler:r amtype:c"),
    table("pg_attrdef", "oid:o adrelid:o adnum:h adbin:N"),
    table(
        "pg_cast",
        "oid:o castsource:o casttarget:o castfunc:o castcontext:c castmethod:c",
    ),
    table(
        "pg_conversion",
        "oid:o conname:n connamespace:o conowner:o conforencoding:i contoencoding:i \
         conproc:r condefault:b",
    ),
    table("pg_db_role_setting", "setdatabase:o setrole:o setconfig:a"),
    table(
        "pg_default_acl",
        "oid:o defaclrole:o defaclnamespace:o defaclobjtype:c defaclacl:A",
    ),
    table(
        "pg_foreign_data_wrapper",
        "oid:o fdwname:n fdwowner:o fdwhandler:o fdwvalidator:o fdwacl:A fdwoptions:a",
    ),
    table(
        "pg_foreign_server",
        "oid:o srvname:n srvowner:o srvfdw:o srvtype:t srvversion:t srvacl:A srvoptions:a",
    ),
    table(
        "pg_opclass",
        "oid:o opcmethod:o opcname:n opcnamespace:o opcowner:o opcfamily:o opcintype:o \
         opcdefault:b opckeytype:o",
    ),
    table(
        "pg_operator",
        "oid:o oprname:n oprnamespace:o oprowner:o oprkind:c oprcanmerge:b oprcanhash:b \
         oprleft:o oprright:o oprresult:o oprcom:o oprnegate:o oprcode:r oprrest:r oprjoin:r",
    ),
    view(
        "pg_stat_activity",
        "datid:o datname:n pid:i leader_pid:i usesysid:o usename:n application_name:t \
         client_addr:t client_hostname:t client_port:i backend_start:T xact_start:T \
         query_start:T state_change:T wait_event_type:t wait_event:t state:t backend_xid:x \
         backend_xmin:x query_id:l query:t backend_type:t",
    ),
    table("pg_user_mapping", "oid:o umuser:o umserver:o umoptions:a"),
    table(
        "pg_attribute",
        "attrelid:o attname:n atttypid:o attstattarget:i attlen:h attnum:h attndims:i \
         attcacheoff:i atttypmod:i attbyval:b attalign:c attstorage:c attcompression:c \
         attnotnull:b atthasdef:b atthasmissing:b attidentity:c attgenerated:c attisdropped:b \
         attislocal:b attinhcount:i attcollation:o attacl:A attoptions:a attfdwoptions:a \
         attmissingval:t",
    ),
    table(
        "pg_auth_members",
        "oid:o roleid:o member:o grantor:o admin_option:b",
    ),
    table(
        "pg_class",
        "oid:o relname:n relnamespace:o reltype:o reloftype:o relowner:o relam:o \
         relfilenode:o reltablespace:o relpages:i reltuples:f relallvisible:i reltoastrelid:o \
         relhasindex:b relisshared:b relpersistence:c relkind:c relnatts:h relchecks:h \
         relhasrules:b relhastriggers:b relhassubclass:b relrowsecurity:b \
         relforcerowsecurity:b relispopulated:b relreplident:c relispartition:b relrewrite:o \
         relfrozenxid:x relminmxid:x relacl:A reloptions:a relpartbound:N",
    ),
    table(
        "pg_collation",
        "oid:o collname:n collnamespace:o collowner:o collprovider:c collisdeterministic:b \
         collencoding:i collcollate:t collctype:t colliculocale:t collversion:t",
    ),
    table(
        "pg_constraint",
        "oid:o conname:n connamespace:o contype:c condeferrable:b condeferred:b \
         convalidated:b conrelid:o contypid:o conindid:o conparentid:o confrelid:o \
         confupdtype:c confdeltype:c confmatchtype:c conislocal:b coninhcount:i \
         connoinherit:b conkey:H confkey:H conpfeqop:O conppeqop:O conffeqop:O \
         confdelsetcols:H conexclop:O conbin:N",
    ),
    table(
        "pg_database",
        "oid:o datname:n datdba:o encoding:i datlocprovider:c datistemplate:b \
         datallowconn:b datconnlimit:i datfrozenxid:x datminmxid:x dattablespace:o \
         datcollate:t datctype:t daticulocale:t datcollversion:t datacl:A",
    ),
    table(
        "pg_depend",
        "classid:o objid:o objsubid:i refclassid:o refobjid:o refobjsubid:i deptype:c",
    ),
    table(
        "pg_description",
        "objoid:o classoid:o objsubid:i description:t",
    ),
    table("pg_enum", "oid:o enumtypid:o enumsortorder:f enumlabel:n"),
    table(
        "pg_event_trigger",
        "oid:o evtname:n evtevent:n evtowner:o evtfoid:o evtenabled:c evttags:a",
    ),
    table(
        "pg_extension",
        "oid:o extname:n extowner:o extnamespace:o extrelocatable:b extversion:t \
         extconfig:O extcondition:a",
    ),
    table("pg_foreign_table", "ftrelid:o ftserver:o ftoptions:a"),
    table(
        "pg_index",
        "indexrelid:o indrelid:o indnatts:h indnkeyatts:h indisunique:b \
         indnullsnotdistinct:b indisprimary:b indisexclusion:b indimmediate:b \
         indisclustered:b indisvalid:b indcheckxmin:b indisready:b indislive:b \
         indisreplident:b indkey:v indcollation:V indclass:V indoption:v indexprs:N indpred:N",
    ),
    view(
        "pg_indexes",
        "schemaname:n tablename:n indexname:n tablespace:n indexdef:t",
    ),
    table(
        "pg_inherits",
        "inhrelid:o inhparent:o inhseqno:i inhdetachpending:b",
    ),
    table(
        "pg_language",
        "oid:o lanname:n lanowner:o lanispl:b lanpltrusted:b lanplcallfoid:o laninline:o \
         lanvalidator:o lanacl:A",
    ),
    view(
        "pg_matviews",
        "schemaname:n matviewname:n matviewowner:n tablespace:n hasindexes:b \
         ispopulated:b definition:t",
    ),
    table("pg_namespace", "oid:o nspname:n nspowner:o nspacl:A"),
    table(
        "pg_partitioned_table",
        "partrelid:o partstrat:c partnatts:h partdefid:o partattrs:v partclass:V \
         partcollation:V partexprs:N",
    ),
    table(
        "pg_policy",
        "oid:o polname:n polrelid:o polcmd:c polpermissive:b polroles:O polqual:N \
         polwithcheck:N",
    ),
    table(
        "pg_proc",
        "oid:o proname:n pronamespace:o proowner:o prolang:o procost:f prorows:f \
         provariadic:o prosupport:r prokind:c prosecdef:b proleakproof:b proisstrict:b \
         proretset:b provolatile:c proparallel:c pronargs:h pronargdefaults:h prorettype:o \
         proargtypes:V proallargtypes:O proargmodes:a proargnames:a proargdefaults:N \
         protrftypes:O prosrc:t probin:t prosqlbody:N proconfig:a proacl:A",
    ),
    table(
        "pg_publication",
        "oid:o pubname:n pubowner:o puballtables:b pubinsert:b pubupdate:b pubdelete:b \
         pubtruncate:b pubviaroot:b",
    ),
    table("pg_publication_namespace", "oid:o pnpubid:o pnnspid:o"),
    table(
        "pg_publication_rel",
        "oid:o prpubid:o prrelid:o prqual:N prattrs:v",
    ),
    table(
        "pg_rewrite",
        "oid:o rulename:n ev_class:o ev_type:c ev_enabled:c is_instead:b ev_qual:N \
         ev_action:N",
    ),
    view(
        "pg_roles",
        "rolname:n rolsuper:b rolinherit:b rolcreaterole:b rolcreatedb:b rolcanlogin:b \
         rolreplication:b rolconnlimit:i rolpassword:t rolvaliduntil:T rolbypassrls:b \
         rolconfig:a oid:o",
    ),
    table(
        "pg_sequence",
        "seqrelid:o seqtypid:o seqstart:l seqincrement:l seqmax:l seqmin:l seqcache:l \
         seqcycle:b",
    ),
    view(
        "pg_sequences",
        "schemaname:n sequencename:n sequenceowner:n data_type:t start_value:l \
         min_value:l max_value:l increment_by:l cycle:b cache_size:l last_value:l",
    ),
    view(
        "pg_settings",
        "name:t setting:t unit:t category:t short_desc:t extra_desc:t context:t vartype:t \
         source:t min_val:t max_val:t enumvals:a boot_val:t reset_val:t sourcefile:t \
         sourceline:i pending_restart:b",
    ),
    table("pg_shdescription", "objoid:o classoid:o description:t"),
    table(
        "pg_statistic_ext",
        "oid:o stxrelid:o stxname:n stxnamespace:o stxowner:o stxstattarget:i stxkeys:v \
         stxkind:a stxexprs:N",
    ),
    table(
        "pg_subscription",
        "oid:o subdbid:o subskiplsn:t subname:n subowner:o subenabled:b subbinary:b \
         substream:c subtwophasestate:c subdisableonerr:b subconninfo:t subslotname:n \
         subsynccommit:t subpublications:a",
    ),
    view(
        "pg_tables",
        "schemaname:n tablename:n tableowner:n tablespace:n hasindexes:b hasrules:b \
         hastriggers:b rowsecurity:b",
    ),
    table(
        "pg_tablespace",
        "oid:o spcname:n spcowner:o spcacl:A spcoptions:a",
    ),
    table(
        "pg_trigger",
        "oid:o tgrelid:o tgparentid:o tgname:n tgfoid:o tgtype:h tgenabled:c \
         tgisinternal:b tgconstrrelid:o tgconstrindid:o tgconstraint:o tgdeferrable:b \
         tginitdeferred:b tgnargs:h tgattr:v tgargs:t tgqual:N tgoldtable:n tgnewtable:n",
    ),
    table(
        "pg_ts_config",
        "oid:o cfgname:n cfgnamespace:o cfgowner:o cfgparser:o",
    ),
    table(
        "pg_type",
        "oid:o typname:n typnamespace:o typowner:o typlen:h typbyval:b typtype:c \
         typcategory:c typispreferred:b typisdefined:b typdelim:c typrelid:o \
         typsubscript:r typelem:o typarray:o typinput:r typoutput:r typreceive:r typsend:r \
         typmodin:r typmodout:r typanalyze:r typalign:c typstorage:c typnotnull:b \
         typbasetype:o typtypmod:i typndims:i typcollation:o typdefaultbin:N typdefault:t \
         typacl:A",
    ),
    view(
        "pg_user",
        "usename:n usesysid:o usecreatedb:b usesuper:b userepl:b usebypassrls:b passwd:t \
         valuntil:T useconfig:a",
    ),
    view(
        "pg_views",
        "schemaname:n viewname:n viewowner:n definition:t",
    ),
];

/// The relation named `name`, if Helios provides it.
pub(crate) fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// The columns of a spec: name, PostgreSQL type oid, Arrow type.
pub(crate) fn columns(spec: &'static str) -> impl Iterator<Item = (&'static str, i32, DataType)> {
    spec.split_whitespace().map(|c| {
        let (name, code) = c.split_once(':').unwrap_or((c, "t"));
        let (oid, arrow) = match code {
            "o" => (26, DataType::Int32),
            "x" => (28, DataType::Int32),
            "i" => (23, DataType::Int32),
            "h" => (21, DataType::Int16),
            "l" => (20, DataType::Int64),
            "f" => (700, DataType::Float32),
            "b" => (16, DataType::Boolean),
            "n" => (19, DataType::Utf8),
            "c" => (18, DataType::Utf8),
            "r" => (24, DataType::Utf8),
            "N" => (194, DataType::Utf8),
            "a" => (1009, DataType::Utf8),
            "A" => (1034, DataType::Utf8),
            "O" => (1028, DataType::Utf8),
            "H" => (1005, DataType::Utf8),
            "v" => (22, DataType::Utf8),
            "V" => (30, DataType::Utf8),
            "T" => (1184, DataType::Utf8),
            _ => (25, DataType::Utf8),
        };
        (name, oid, arrow)
    })
}

/// The Arrow schema of a relation (every column nullable).
pub(crate) fn schema(def: &Def) -> SchemaRef {
    Arc::new(Schema::new(
        columns(def.spec)
            .map(|(name, _, ty)| Field::new(name, ty, true))
            .collect::<Vec<_>>(),
    ))
}

/// A MemTable of `rows` (each as long as the relation's column list).
pub(crate) fn mem_table(def: &Def, rows: &[Vec<V>]) -> Result<MemTable> {
    let schema = schema(def);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(i).unwrap_or(&V::Null));
        let bad = |v: &V| {
            DataFusionError::Internal(format!(
                "pg_catalog.{}.{}: unexpected value {v:?}",
                def.name,
                field.name()
            ))
        };
        let array: ArrayRef = match field.data_type() {
            DataType::Int16 => {
                let mut b = Int16Builder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::I(i) => b.append_value(i16::try_from(*i).map_err(|_| bad(v))?),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Int32 => {
                let mut b = Int32Builder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::I(i) => b.append_value(i32::try_from(*i).map_err(|_| bad(v))?),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::I(i) => b.append_value(*i),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Float32 => {
                let mut b = Float32Builder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::F(f) => b.append_value(*f as f32),
                        V::I(i) => b.append_value(*i as f32),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::B(x) => b.append_value(*x),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::new();
                for v in cells {
                    match v {
                        V::Null => b.append_null(),
                        V::T(s) => b.append_value(s),
                        V::I(i) => b.append_value(i.to_string()),
                        _ => return Err(bad(v)),
                    }
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    MemTable::try_new(schema, vec![vec![batch]])
}
