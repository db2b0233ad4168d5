//! The two metadata backends' migrations describe one schema: `migrations/sqlite` (the embedded
//! default) and `migrations/postgres` (scale-out) are applied to fresh databases, both are read
//! back from their catalogs, dialect spelling is normalized away, and every remaining difference
//! fails the test: tables; columns (type class, NOT NULL, default, primary-key membership);
//! primary keys; unique constraints (by columns, as their index names are the dialect's own);
//! other indexes (by name: columns in order, unique, partial predicate); foreign keys (columns,
//! referenced table and columns, ON DELETE and ON UPDATE actions); CHECK constraints; and the
//! triggers each table has (timing and event only: SQLite triggers and plpgsql functions are
//! written differently, so their bodies are not compared).
//!
//! Needs `BERTH_TEST_DB_URI` (`scripts/postgres.sh start` prints one); without it only the
//! SQLite side is read, and the comparison is skipped with a message saying so.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use sqlx::Row;

/// Differences that are intended. Each entry is the key of a difference as the failure lists it
/// (before the colon), with the reason it is allowed. An entry that no longer differs fails
/// the test too, so the list cannot go stale.
const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[];

#[tokio::test]
async fn sqlite_and_postgres_migrations_describe_the_same_schema() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = describe_sqlite(&dir.path().join("schema.db")).await;
    assert!(
        sqlite.tables.contains_key("repositories") && sqlite.tables.contains_key("accounts"),
        "reading the SQLite schema found too little: {:?}",
        sqlite.tables.keys().collect::<Vec<_>>()
    );
    let Some(server) = postgres_under_test() else {
        eprintln!(
            "skipped: {TEST_DB_URI_ENV} is not set, so the SQLite schema ({} tables) has no \
             PostgreSQL schema to be compared with (scripts/postgres.sh starts a server)",
            sqlite.tables.len()
        );
        return;
    };
    let uri = create_test_database(&server).await;
    let _database = DropDatabase {
        server,
        uri: uri.clone(),
    };
    let postgres = describe_postgres(&uri).await;

    let (sqlite_facts, postgres_facts) = (sqlite.facts(), postgres.facts());
    let mut differences = compare(&sqlite_facts, &postgres_facts);
    let mut stale = Vec::new();
    for (key, _why) in ALLOWED_DIFFERENCES {
        let before = differences.len();
        differences.retain(|d| d.key != *key);
        if differences.len() == before {
            stale.push(format!(
                "  {key}: allowed to differ, but does not (or no longer)"
            ));
        }
    }
    let mut report: Vec<String> = differences.iter().map(ToString::to_string).collect();
    report.extend(stale);
    assert!(
        report.is_empty(),
        "migrations/sqlite and migrations/postgres describe different schemas \
         ({} differences):\n{}\n",
        report.len(),
        report.join("\n")
    );
    eprintln!(
        "{} schema facts agree on both backends ({} tables, {} allowed differences)",
        sqlite_facts.len(),
        sqlite.tables.len(),
        ALLOWED_DIFFERENCES.len()
    );
}

/// Drops the PostgreSQL test database when the test ends, however it ends.
struct DropDatabase {
    server: String,
    uri: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        drop_test_database(&self.server, &self.uri);
    }
}

// ---------------------------------------------------------------------------------------------
// The dialect-neutral description.

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
}

#[derive(Debug, Default)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints (not of CREATE UNIQUE INDEX, which are `indexes`).
    unique_constraints: Vec<Vec<String>>,
    /// Indexes made by CREATE INDEX, not those backing a constraint.
    indexes: Vec<Index>,
    foreign_keys: Vec<ForeignKey>,
    /// Normalized CHECK expressions (column and table constraints alike).
    checks: Vec<String>,
    /// "<timing> <event>", one per event a trigger fires on.
    triggers: Vec<String>,
}

#[derive(Debug)]
struct Column {
    name: String,
    /// integer, text, bytes, or the declared type itself if it is none of those.
    class: String,
    not_null: bool,
    /// Normalized default expression.
    default: Option<String>,
    /// Assigned by the database when not given: SQLite's `INTEGER PRIMARY KEY` (the rowid,
    /// with or without AUTOINCREMENT) or a PostgreSQL identity or serial column.
    generated: bool,
}

#[derive(Debug)]
struct Index {
    name: String,
    unique: bool,
    /// Column names (or normalized expressions), in order, with " desc" when descending.
    columns: Vec<String>,
    predicate: Option<String>,
}

#[derive(Debug)]
struct ForeignKey {
    columns: Vec<String>,
    table: String,
    referenced: Vec<String>,
    on_delete: String,
    on_update: String,
}

impl Schema {
    fn table(&mut self, name: &str) -> &mut Table {
        self.tables.entry(name.to_string()).or_default()
    }

    /// The schema as "key: value" facts, the unit the comparison works in.
    fn facts(&self) -> BTreeMap<String, String> {
        let mut facts = BTreeMap::new();
        let mut add = |key: String, value: String| {
            let mut key_n = key.clone();
            let mut n = 1;
            while facts.contains_key(&key_n) {
                n += 1;
                key_n = format!("{key} [{n}]");
            }
            facts.insert(key_n, value);
        };
        for (name, t) in &self.tables {
            add(format!("table {name}"), "exists".into());
            for c in &t.columns {
                let mut v = c.class.clone();
                if c.not_null {
                    v += " NOT NULL";
                }
                if let Some(d) = &c.default {
                    v += &format!(" DEFAULT {d}");
                }
                if c.generated {
                    v += " GENERATED";
                }
                if t.primary_key.contains(&c.name) {
                    v += " PRIMARY KEY";
                }
                add(format!("column {name}.{}", c.name), v);
            }
            add(
                format!("primary key of {name}"),
                format!("({})", t.primary_key.join(", ")),
            );
            for u in &t.unique_constraints {
                add(
                    format!("unique constraint {name} ({})", u.join(", ")),
                    "exists".into(),
                );
            }
            for i in &t.indexes {
                let mut v = format!(
                    "{}({})",
                    if i.unique { "UNIQUE " } else { "" },
                    i.columns.join(", ")
                );
                if let Some(p) = &i.predicate {
                    v += &format!(" WHERE {p}");
                }
                add(format!("index {name}.{}", i.name), v);
            }
            for f in &t.foreign_keys {
                add(
                    format!("foreign key {name} ({})", f.columns.join(", ")),
                    format!(
                        "REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
                        f.table,
                        f.referenced.join(", "),
                        f.on_delete,
                        f.on_update
                    ),
                );
            }
            for c in &t.checks {
                add(format!("check on {name} ({c})"), "exists".into());
            }
            for tr in &t.triggers {
                add(format!("trigger on {name} {tr}"), "exists".into());
            }
        }
        facts
    }
}

struct Difference {
    key: String,
    sqlite: Option<String>,
    postgres: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.sqlite, &self.postgres) {
            (Some(s), None) => write!(f, "  {}: only in SQLite ({s})", self.key),
            (None, Some(p)) => write!(f, "  {}: only in PostgreSQL ({p})", self.key),
            (Some(s), Some(p)) => write!(
                f,
                "  {}:\n      SQLite:     {s}\n      PostgreSQL: {p}",
                self.key
            ),
            (None, None) => unreachable!(),
        }
    }
}

fn compare(
    sqlite: &BTreeMap<String, String>,
    postgres: &BTreeMap<String, String>,
) -> Vec<Difference> {
    let mut keys: Vec<&String> = sqlite.keys().chain(postgres.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| sqlite.get(*k) != postgres.get(*k))
        .map(|k| Difference {
            key: k.clone(),
            sqlite: sqlite.get(k).cloned(),
            postgres: postgres.get(k).cloned(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SQLite.

async fn describe_sqlite(path: &Path) -> Schema {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open SQLite database");
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .expect("SQLite migrations");

    let mut schema = Schema::default();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (name, create) in tables {
        let create = sql::tokenize(&create);
        let t = schema.table(&name);

        let columns: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.4 > 0)
            .map(|c| (c.4, c.0.clone()))
            .collect();
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        let without_rowid = create.ends_with(&[sql::word("without"), sql::word("rowid")]);
        for (col, ty, not_null, default, pk) in columns {
            // A lone `INTEGER PRIMARY KEY` is the rowid: never NULL, assigned when not given.
            let rowid = ty.eq_ignore_ascii_case("INTEGER")
                && pk == 1
                && t.primary_key.len() == 1
                && !without_rowid;
            t.columns.push(Column {
                name: col,
                class: sqlite_type_class(&ty),
                not_null: not_null != 0 || rowid,
                default: default.as_deref().map(sql::normalize),
                generated: rowid,
            });
        }

        let indexes: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        for (index, unique, origin, partial) in indexes {
            let keys: Vec<(i64, Option<String>, i64)> = sqlx::query_as(
                "SELECT cid, name, \"desc\" FROM pragma_index_xinfo(?1) WHERE key = 1 \
                 ORDER BY seqno",
            )
            .bind(&index)
            .fetch_all(&pool)
            .await
            .unwrap();
            let columns: Vec<String> = keys
                .into_iter()
                .map(|(cid, col, desc)| {
                    let col = col.unwrap_or_else(|| format!("<expression {cid}>"));
                    if desc != 0 {
                        format!("{col} desc")
                    } else {
                        col
                    }
                })
                .collect();
            match origin.as_str() {
                "pk" => {} // The primary key, described above.
                "u" => t.unique_constraints.push(columns),
                _ => {
                    let predicate = if partial != 0 {
                        let (create_index,): (String,) = sqlx::query_as(
                            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                        )
                        .bind(&index)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                        let tokens = sql::tokenize(&create_index);
                        let at = sql::find_top_level(&tokens, &sql::word("where"))
                            .unwrap_or_else(|| panic!("no WHERE in partial index {index}"));
                        Some(sql::render(&sql::normalize_tokens(
                            tokens[at + 1..].to_vec(),
                        )))
                    } else {
                        None
                    };
                    t.indexes.push(Index {
                        name: index,
                        unique: unique != 0,
                        columns,
                        predicate,
                    });
                }
            }
        }

        let fks: Vec<(i64, String, String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
             FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for (id, table, from, to, on_update, on_delete) in fks {
            let fk = by_id.entry(id).or_insert_with(|| ForeignKey {
                columns: vec![],
                table,
                referenced: vec![],
                on_delete: on_delete.to_uppercase(),
                on_update: on_update.to_uppercase(),
            });
            fk.columns.push(from);
            // NULL: the parent's primary key, filled in below.
            fk.referenced.extend(to);
        }
        t.foreign_keys = by_id.into_values().collect();

        // CHECK constraints exist only in the CREATE TABLE text: every `CHECK (...)` in it.
        for (i, tok) in create.iter().enumerate() {
            if *tok == sql::word("check") && create.get(i + 1) == Some(&sql::punct("(")) {
                let close = sql::matching(&create, i + 1);
                t.checks.push(sql::render(&sql::normalize_tokens(
                    create[i + 2..close].to_vec(),
                )));
            }
        }
    }

    // Foreign keys that name no parent columns reference the parent's primary key.
    let primary_keys: BTreeMap<String, Vec<String>> = schema
        .tables
        .iter()
        .map(|(n, t)| (n.clone(), t.primary_key.clone()))
        .collect();
    for t in schema.tables.values_mut() {
        for fk in &mut t.foreign_keys {
            if fk.referenced.is_empty() {
                fk.referenced = primary_keys.get(&fk.table).cloned().unwrap_or_default();
            }
        }
    }

    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (table, create) in triggers {
        let event = sqlite_trigger_event(&sql::tokenize(&create));
        schema.table(&table).triggers.push(event);
    }
    pool.close().await;
    schema
}

/// SQLite's declared types as berth spells them; anything else is kept as declared.
fn sqlite_type_class(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" | "INT8" | "INT" => "integer".into(),
        "TEXT" => "text".into(),
        "BLOB" => "bytes".into(),
        "" => "(no type)".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// "<timing> <event>" of `CREATE [TEMP] TRIGGER [IF NOT EXISTS] name [timing] event ON ...`.
fn sqlite_trigger_event(t: &[sql::Tok]) -> String {
    let mut i = t
        .iter()
        .position(|x| *x == sql::word("trigger"))
        .expect("CREATE TRIGGER")
        + 1;
    if t[i] == sql::word("if") {
        i += 3;
    }
    i += 1; // the name
    if t.get(i) == Some(&sql::punct(".")) {
        i += 2; // schema.name
    }
    let timing = if t[i] == sql::word("before") || t[i] == sql::word("after") {
        i += 1;
        sql::render(&t[i - 1..i])
    } else if t[i] == sql::word("instead") {
        i += 2;
        "instead of".into()
    } else {
        "before".into() // SQLite's default
    };
    let event = sql::render(&t[i..i + 1]);
    if event == "update" && t.get(i + 1) == Some(&sql::word("of")) {
        let columns: Vec<String> = t[i + 2..]
            .iter()
            .take_while(|x| **x != sql::word("on"))
            .filter(|x| **x != sql::punct(","))
            .map(|x| sql::render(std::slice::from_ref(x)))
            .collect();
        return format!("{timing} update of ({})", columns.join(", "));
    }
    format!("{timing} {event}")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

async fn describe_postgres(uri: &str) -> Schema {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let options: PgConnectOptions = uri.parse().expect("PostgreSQL URI");
    let options = options.options([("client_min_messages", "warning")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect to the test database");
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .expect("PostgreSQL migrations");

    // Every query below is limited to the tables of the schema the migrations created.
    const OURS: &str =
        "t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
                        AND t.relkind IN ('r', 'p') AND t.relname <> '_sqlx_migrations'";
    let q = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    let mut schema = Schema::default();

    let columns = q(format!(
        "SELECT t.relname::text AS table_name, a.attname::text AS name, \
                format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, \
                pg_get_expr(d.adbin, d.adrelid) AS default_value, \
                a.attidentity::text AS identity \
         FROM pg_class t \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE {OURS} ORDER BY t.relname, a.attnum"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in columns {
        let default: Option<String> = row.get("default_value");
        let identity: String = row.get("identity");
        let serial = default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        let ty: String = row.get("type");
        schema
            .table(row.get::<&str, _>("table_name"))
            .columns
            .push(Column {
                name: row.get("name"),
                class: postgres_type_class(&ty),
                not_null: row.get("not_null"),
                default: default.filter(|_| !serial).as_deref().map(sql::normalize),
                generated: !identity.is_empty() || serial,
            });
    }

    let indexes = q(format!(
        "SELECT t.relname::text AS table_name, ic.relname::text AS name, \
                i.indisunique AS is_unique, i.indisprimary AS is_primary, \
                COALESCE(con.contype::text, '') AS constraint_type, \
                pg_get_expr(i.indpred, i.indrelid) AS predicate, \
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) \
                      FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k) AS columns, \
                ARRAY(SELECT (i.indoption[k - 1] & 1) = 1 \
                      FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k) AS descending \
         FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid \
              AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') \
         WHERE {OURS} ORDER BY t.relname, ic.relname"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in indexes {
        let t = schema.table(row.get::<&str, _>("table_name"));
        let names: Vec<String> = row.get("columns");
        let descending: Vec<bool> = row.get("descending");
        let columns: Vec<String> = names
            .iter()
            .zip(descending)
            .map(|(c, desc)| {
                let c = sql::normalize(c);
                if desc {
                    format!("{c} desc")
                } else {
                    c
                }
            })
            .collect();
        let constraint: String = row.get("constraint_type");
        if row.get::<bool, _>("is_primary") {
            t.primary_key = columns;
        } else if constraint == "u" {
            t.unique_constraints.push(columns);
        } else {
            t.indexes.push(Index {
                name: row.get("name"),
                unique: row.get("is_unique"),
                columns,
                predicate: row
                    .get::<Option<String>, _>("predicate")
                    .as_deref()
                    .map(sql::normalize),
            });
        }
    }

    let attnames = |key: &str, rel: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest(con.{key}) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = con.{rel} AND a.attnum = k.attnum ORDER BY k.n)"
        )
    };
    let foreign_keys = q(format!(
        "SELECT t.relname::text AS table_name, r.relname::text AS referenced_table, \
                {} AS columns, {} AS referenced, \
                con.confdeltype::text AS on_delete, con.confupdtype::text AS on_update \
         FROM pg_constraint con \
         JOIN pg_class t ON t.oid = con.conrelid \
         JOIN pg_class r ON r.oid = con.confrelid \
         WHERE con.contype = 'f' AND {OURS} ORDER BY t.relname, con.conname",
        attnames("conkey", "conrelid"),
        attnames("confkey", "confrelid"),
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in foreign_keys {
        let action = |code: String| match code.as_str() {
            "a" => "NO ACTION".to_string(),
            "r" => "RESTRICT".to_string(),
            "c" => "CASCADE".to_string(),
            "n" => "SET NULL".to_string(),
            "d" => "SET DEFAULT".to_string(),
            other => format!("<{other}>"),
        };
        schema
            .table(row.get::<&str, _>("table_name"))
            .foreign_keys
            .push(ForeignKey {
                columns: row.get("columns"),
                table: row.get("referenced_table"),
                referenced: row.get("referenced"),
                on_delete: action(row.get("on_delete")),
                on_update: action(row.get("on_update")),
            });
    }

    let checks = q(format!(
        "SELECT t.relname::text AS table_name, pg_get_expr(con.conbin, con.conrelid) AS expr \
         FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid \
         WHERE con.contype = 'c' AND {OURS}"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in checks {
        let expr: String = row.get("expr");
        schema
            .table(row.get::<&str, _>("table_name"))
            .checks
            .push(sql::normalize(&expr));
    }

    let triggers = q(format!(
        "SELECT t.relname::text AS table_name, tg.tgtype::int4 AS kind, \
                ARRAY(SELECT a.attname::text \
                      FROM unnest(tg.tgattr::int2[]) WITH ORDINALITY AS k(attnum, n) \
                      JOIN pg_attribute a ON a.attrelid = tg.tgrelid AND a.attnum = k.attnum \
                      ORDER BY k.n) AS columns \
         FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid \
         WHERE NOT tg.tgisinternal AND {OURS}"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in triggers {
        // pg_trigger.tgtype bits (catalog/pg_trigger.h).
        let kind: i32 = row.get("kind");
        let columns: Vec<String> = row.get("columns");
        let timing = match (kind & 2 != 0, kind & 64 != 0) {
            (true, _) => "before",
            (_, true) => "instead of",
            _ => "after",
        };
        let level = if kind & 1 != 0 {
            ""
        } else {
            " for each statement"
        };
        let t = schema.table(row.get::<&str, _>("table_name"));
        for (bit, event) in [
            (4, "insert"),
            (8, "delete"),
            (16, "update"),
            (32, "truncate"),
        ] {
            if kind & bit == 0 {
                continue;
            }
            if event == "update" && !columns.is_empty() {
                t.triggers.push(format!(
                    "{timing} update of ({}){level}",
                    columns.join(", ")
                ));
            } else {
                t.triggers.push(format!("{timing} {event}{level}"));
            }
        }
    }
    pool.close().await;
    schema
}

/// PostgreSQL's types as berth spells them; anything else (a 32-bit `integer`, say, where SQLite
/// stores 64 bits) is kept as named, so it shows up as a difference.
fn postgres_type_class(formatted: &str) -> String {
    match formatted {
        "bigint" => "integer".into(),
        "text" => "text".into(),
        "bytea" => "bytes".into(),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------

/// A small normalizer for the SQL expressions the catalogs hand back (CHECK constraints,
/// partial-index predicates, defaults), so that what SQLite stores as written and what
/// PostgreSQL deparses compare equal when they say the same thing:
///
/// - tokens, not text: whitespace and comments go; keywords and identifiers are lowercased and
///   unquoted ("x" and x are the same column); string literals keep their case;
/// - `!=` is `<>` and `==` is `=`;
/// - casts go: `'blob'::text` is `'blob'` (and `'-1'::integer` is `-1`);
/// - `x = ANY (ARRAY[a, b])` is `x IN (a, b)` (and `<> ALL` is `NOT IN`), as PostgreSQL
///   rewrites IN lists;
/// - parentheses go where precedence makes them redundant: around the whole expression,
///   around an operand whose operators bind tighter than the ones next to it, and around a
///   chain of the same AND/OR. PostgreSQL parenthesizes every operator it deparses.
///
/// Not handled (would show as a difference, to be allow-listed or taught here): PostgreSQL
/// rewriting BETWEEN into `>= AND <=`, LIKE into `~~`, and SQLite's `[bracketed]` identifiers.
mod sql {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Tok {
        /// A keyword or identifier, lowercased and unquoted; also the merged operators
        /// "is not", "not in", "not like" ...
        Word(String),
        /// A string literal's value.
        Str(String),
        Num(String),
        Punct(String),
    }

    pub fn word(w: &str) -> Tok {
        Tok::Word(w.into())
    }

    pub fn punct(p: &str) -> Tok {
        Tok::Punct(p.into())
    }

    pub fn normalize(expr: &str) -> String {
        render(&normalize_tokens(tokenize(expr)))
    }

    pub fn tokenize(sql: &str) -> Vec<Tok> {
        let c: Vec<char> = sql.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < c.len() {
            let ch = c[i];
            let next = c.get(i + 1).copied();
            if ch.is_whitespace() {
                i += 1;
            } else if ch == '-' && next == Some('-') {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            } else if ch == '/' && next == Some('*') {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            } else if ch == '\'' || ch == '"' || ch == '`' {
                // A quote doubled inside is one of it.
                let mut s = String::new();
                i += 1;
                while i < c.len() {
                    if c[i] == ch {
                        if c.get(i + 1) == Some(&ch) {
                            s.push(ch);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    s.push(c[i]);
                    i += 1;
                }
                out.push(if ch == '\'' {
                    Tok::Str(s)
                } else {
                    Tok::Word(s.to_lowercase())
                });
            } else if ch.is_ascii_digit() {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(c[start..i].iter().collect()));
            } else if ch.is_alphabetic() || ch == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                    i += 1;
                }
                out.push(Tok::Word(
                    c[start..i].iter().collect::<String>().to_lowercase(),
                ));
            } else {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                let op = match two.as_str() {
                    "<>" | "!=" => Some("<>"),
                    "==" => Some("="),
                    "<=" | ">=" | "||" | "::" => Some(two.as_str()),
                    _ => None,
                };
                if let Some(op) = op {
                    out.push(punct(op));
                    i += 2;
                } else {
                    out.push(Tok::Punct(ch.to_string()));
                    i += 1;
                }
            }
        }
        out
    }

    pub fn normalize_tokens(mut t: Vec<Tok>) -> Vec<Tok> {
        while t.last() == Some(&punct(";")) {
            t.pop();
        }
        t = drop_casts(t);
        t = merge_operators(t);
        loop {
            let before = t.clone();
            t = drop_redundant_parens(any_array_to_in(t));
            if t == before {
                return t;
            }
        }
    }

    pub fn render(t: &[Tok]) -> String {
        let mut s = String::new();
        for (i, tok) in t.iter().enumerate() {
            let glued = i == 0
                || matches!(tok, Tok::Punct(p) if p == ")" || p == "]" || p == ",")
                || matches!(&t[i - 1], Tok::Punct(p) if p == "(" || p == "[");
            if !glued {
                s.push(' ');
            }
            match tok {
                Tok::Word(w) => s += w,
                Tok::Str(v) => s += &format!("'{}'", v.replace('\'', "''")),
                Tok::Num(n) | Tok::Punct(n) => s += n,
            }
        }
        s
    }

    /// The index of the parenthesis or bracket closing the one at `open`.
    pub fn matching(t: &[Tok], open: usize) -> usize {
        let (o, c) = if t[open] == punct("[") {
            (punct("["), punct("]"))
        } else {
            (punct("("), punct(")"))
        };
        let mut depth = 0;
        for (i, tok) in t.iter().enumerate().skip(open) {
            if *tok == o {
                depth += 1;
            } else if *tok == c {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
        }
        panic!("unbalanced {o:?} in {}", render(t));
    }

    /// The first `tok` outside any parentheses.
    pub fn find_top_level(t: &[Tok], tok: &Tok) -> Option<usize> {
        let mut depth = 0i32;
        for (i, x) in t.iter().enumerate() {
            match x {
                Tok::Punct(p) if p == "(" => depth += 1,
                Tok::Punct(p) if p == ")" => depth -= 1,
                _ if depth == 0 && x == tok => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// Words that continue a type name after `::` (`character varying`, `double precision`).
    const TYPE_CONTINUATION: &[&str] = &["varying", "precision", "with", "without", "time", "zone"];
    const NUMBER_TYPES: &[&str] = &["integer", "bigint", "smallint", "numeric", "int", "int8"];

    fn drop_casts(t: Vec<Tok>) -> Vec<Tok> {
        let mut out: Vec<Tok> = Vec::new();
        let mut i = 0;
        while i < t.len() {
            if t[i] != punct("::") {
                out.push(t[i].clone());
                i += 1;
                continue;
            }
            i += 1;
            let mut ty = String::new();
            while let Some(Tok::Word(w)) = t.get(i) {
                if !ty.is_empty() && !TYPE_CONTINUATION.contains(&w.as_str()) {
                    break;
                }
                ty += w;
                i += 1;
            }
            if t.get(i) == Some(&punct("(")) && matches!(t.get(i + 1), Some(Tok::Num(_))) {
                i = matching(&t, i) + 1;
            }
            while t.get(i) == Some(&punct("[")) && t.get(i + 1) == Some(&punct("]")) {
                i += 2;
            }
            if let Some(Tok::Str(s)) = out.last() {
                if NUMBER_TYPES.contains(&ty.as_str()) && s.parse::<f64>().is_ok() {
                    let n = s.clone();
                    out.pop();
                    if let Some(neg) = n.strip_prefix('-') {
                        out.push(punct("-"));
                        out.push(Tok::Num(neg.into()));
                    } else {
                        out.push(Tok::Num(n));
                    }
                }
            }
        }
        out
    }

    const NEGATABLE: &[&str] = &["in", "like", "glob", "between", "regexp", "match", "ilike"];

    fn merge_operators(t: Vec<Tok>) -> Vec<Tok> {
        let mut out: Vec<Tok> = Vec::new();
        for tok in t {
            if let (Some(Tok::Word(prev)), Tok::Word(w)) = (out.last(), &tok) {
                let merged = match (prev.as_str(), w.as_str()) {
                    ("is", "not") => Some("is not".to_string()),
                    ("not", w) if NEGATABLE.contains(&w) => Some(format!("not {w}")),
                    _ => None,
                };
                if let Some(m) = merged {
                    *out.last_mut().unwrap() = Tok::Word(m);
                    continue;
                }
            }
            out.push(tok);
        }
        out
    }

    /// `= ANY (ARRAY[...])` -> `IN (...)`, `<> ALL (ARRAY[...])` -> `NOT IN (...)`.
    fn any_array_to_in(t: Vec<Tok>) -> Vec<Tok> {
        for i in 0..t.len() {
            let op = match (&t[i], t.get(i + 1)) {
                (Tok::Punct(p), Some(Tok::Word(w))) if p == "=" && w == "any" => "in",
                (Tok::Punct(p), Some(Tok::Word(w))) if p == "<>" && w == "all" => "not in",
                _ => continue,
            };
            if t.get(i + 2) != Some(&punct("("))
                || t.get(i + 3) != Some(&word("array"))
                || t.get(i + 4) != Some(&punct("["))
            {
                continue;
            }
            let close_bracket = matching(&t, i + 4);
            if t.get(close_bracket + 1) != Some(&punct(")")) {
                continue;
            }
            let mut out = t[..i].to_vec();
            out.push(word(op));
            out.push(punct("("));
            out.extend_from_slice(&t[i + 5..close_bracket]);
            out.extend_from_slice(&t[close_bracket + 1..]);
            return out;
        }
        t
    }

    const OR: u8 = 1;
    const AND: u8 = 2;
    const NOT: u8 = 3;
    const COMPARISON: u8 = 4;
    const OTHER: u8 = 5;
    const ADDITIVE: u8 = 6;
    const MULTIPLICATIVE: u8 = 7;
    const UNARY: u8 = 9;
    const ATOM: u8 = 100;

    /// Binding strength of `t[i]` as an operator, or None if it is not one.
    fn precedence(t: &[Tok], i: usize) -> Option<u8> {
        let after_operand = i > 0
            && match &t[i - 1] {
                Tok::Punct(p) => p == ")" || p == "]",
                Tok::Word(w) => precedence_of_word(w).is_none() && !is_clause_keyword(w),
                _ => true,
            };
        match &t[i] {
            Tok::Word(w) => precedence_of_word(w),
            Tok::Punct(p) => match p.as_str() {
                "-" | "+" if !after_operand => Some(UNARY),
                "-" | "+" => Some(ADDITIVE),
                "*" | "/" | "%" => Some(MULTIPLICATIVE),
                "=" | "<>" | "<" | ">" | "<=" | ">=" => Some(COMPARISON),
                "(" | ")" | "," | "[" | "]" | "." | ";" => None,
                _ => Some(OTHER),
            },
            _ => None,
        }
    }

    fn precedence_of_word(w: &str) -> Option<u8> {
        match w {
            "or" => Some(OR),
            "and" => Some(AND),
            "not" => Some(NOT),
            "is" | "is not" | "in" | "not in" | "like" | "not like" | "glob" | "not glob"
            | "between" | "not between" | "regexp" | "not regexp" | "match" | "not match"
            | "ilike" | "not ilike" => Some(COMPARISON),
            _ => None,
        }
    }

    /// Keywords after which a parenthesis starts an expression rather than a call's arguments.
    fn is_clause_keyword(w: &str) -> bool {
        matches!(
            w,
            "where" | "check" | "when" | "then" | "else" | "case" | "select"
        )
    }

    fn drop_redundant_parens(mut t: Vec<Tok>) -> Vec<Tok> {
        'again: loop {
            for open in 0..t.len() {
                if t[open] != punct("(") {
                    continue;
                }
                // A call's arguments or an IN list are not a grouping.
                let grouping = open == 0
                    || match &t[open - 1] {
                        Tok::Punct(p) => p != ")" && p != "]",
                        Tok::Word(w) => {
                            (precedence_of_word(w).is_some() && !w.ends_with("in"))
                                || is_clause_keyword(w)
                        }
                        _ => false,
                    };
                if !grouping {
                    continue;
                }
                let close = matching(&t, open);
                let inner = &t[open + 1..close];
                let mut content = ATOM;
                let mut depth = 0;
                for j in 0..inner.len() {
                    match &inner[j] {
                        Tok::Punct(p) if p == "(" || p == "[" => depth += 1,
                        Tok::Punct(p) if p == ")" || p == "]" => depth -= 1,
                        Tok::Punct(p) if p == "," && depth == 0 => content = 0, // a row
                        _ if depth == 0 => {
                            if let Some(p) = precedence(inner, j) {
                                content = content.min(p);
                            }
                        }
                        _ => {}
                    }
                }
                let left = if open == 0 {
                    0
                } else {
                    precedence(&t, open - 1).unwrap_or(0)
                };
                let right = if close + 1 < t.len() {
                    precedence(&t, close + 1).unwrap_or(0)
                } else {
                    0
                };
                let context = left.max(right);
                // The same AND (or OR) on both sides: a chain, however grouped.
                let chained = content == context && (content == AND || content == OR);
                if content != 0 && (content > context || chained) {
                    t.remove(close);
                    t.remove(open);
                    continue 'again;
                }
            }
            return t;
        }
    }
}

#[test]
fn the_normalizer_equates_dialect_spellings_only() {
    use sql::normalize as n;
    // How PostgreSQL deparses what SQLite keeps as written.
    assert_eq!(
        n("(child_kind = ANY (ARRAY['blob'::text, 'manifest'::text]))"),
        n("child_kind IN ('blob', 'manifest')")
    );
    assert_eq!(
        n("((account_id IS NULL) <> (team_id IS NULL))"),
        n("(account_id IS NULL) != (\"team_id\" is null)")
    );
    assert_eq!(
        n("(subject_digest IS NOT NULL)"),
        n("subject_digest IS NOT NULL")
    );
    assert_eq!(n("''::text"), n("''"));
    assert_eq!(n("'-1'::integer"), n("-1"));
    assert_eq!(
        n("((a = 1) AND (b = 2) AND (c = 3))"),
        n("a = 1 and (b = 2 AND c = 3) -- comment")
    );
    assert_eq!(n("((a + b) * c) > 0"), n("(a + b) * c > 0"));
    assert_eq!(n("(x <> ALL (ARRAY['a'::text]))"), n("x NOT IN ('a')"));
    // ... and nothing more: meaning survives.
    assert_ne!(n("(a OR b) AND c"), n("a OR (b AND c)"));
    assert_ne!(n("(a + b) * c"), n("a + b * c"));
    assert_ne!(n("NOT (a AND b)"), n("NOT a AND b"));
    assert_ne!(n("x IN ('a', 'b')"), n("x IN ('a', 'B')"));
    assert_ne!(n("a IS NULL"), n("a IS NOT NULL"));
    assert_ne!(n("coalesce(a, b)"), n("coalesce(b, a)"));
}
