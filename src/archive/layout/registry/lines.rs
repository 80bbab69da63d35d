//! The records as lines of the log: each record's JSON line, written and read back. What
//! comes from the file is checked field by field, and a directory name must be one plain
//! path component, so a tampered records file cannot point a write outside the root.

use serde_json::{json, Map, Value};

use super::{AccountRecord, FolderRecord, Registry, Sample};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::Mailbox;

impl Registry {
    /// One line of the log, as read.
    pub(super) fn load(&mut self, line: &Value) -> std::result::Result<(), String> {
        match line.get("kind").and_then(Value::as_str) {
            Some("account") => {
                let servers = line
                    .get("servers")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
                    .unwrap_or_default();
                let evidence = match line.get("evidence") {
                    None => Vec::new(),
                    Some(v) => v
                        .as_array()
                        .ok_or("evidence that is not a list")?
                        .iter()
                        .map(sample)
                        .collect::<std::result::Result<_, _>>()?,
                };
                self.upsert_account(AccountRecord {
                    dir: dir_field(line, "dir")?,
                    user: str_field(line, "user")?,
                    servers,
                    migrated: line.get("migrated").and_then(Value::as_bool).unwrap_or(false),
                    evidence,
                    evidence_day: line.get("evidence_day").and_then(Value::as_i64),
                    namespace: line.get("namespace").and_then(namespace_field),
                })
            }
            Some("folder") => self.upsert_folder(folder_record(line)?),
            Some(other) => Err(format!("a record of kind {other:?} (made by a newer version?)")),
            None => Err("a record without \"kind\"".into()),
        }
    }

    /// One record of the legacy document.
    pub(super) fn load_legacy(&mut self, kind: &str, record: &Value) -> std::result::Result<(), String> {
        match kind {
            "accounts" => self.upsert_account(AccountRecord {
                dir: dir_field(record, "dir")?,
                user: str_field(record, "user")?,
                servers: vec![str_field(record, "server")?.to_ascii_lowercase()],
                migrated: record.get("migrated").and_then(Value::as_bool).unwrap_or(false),
                evidence: Vec::new(),
                evidence_day: None,
                namespace: record.get("namespace").and_then(namespace_field),
            }),
            _ => self.upsert_folder(folder_record(record)?),
        }
    }
}

pub(super) fn account_line(a: &AccountRecord) -> Value {
    let mut line =
        json!({"kind": "account", "dir": a.dir, "user": a.user, "servers": a.servers, "migrated": a.migrated});
    if !a.evidence.is_empty() {
        line["evidence"] = a
            .evidence
            .iter()
            .map(|s| {
                json!({"mailbox": s.mailbox, "uidvalidity": s.uidvalidity, "uid": s.uid, "size": s.size, "header": s.header})
            })
            .collect();
    }
    if let Some(day) = a.evidence_day {
        line["evidence_day"] = day.into();
    }
    if let Some(ns) = &a.namespace {
        line["namespace"] = json!({"prefix": ns.prefix, "separator": ns.separator.map(String::from)});
    }
    line
}

/// A folder's line: fields left out where they say nothing (no UIDVALIDITY yet, not
/// retired, a name that is its wire name), a few dozen bytes each.
pub(super) fn folder_line(f: &FolderRecord) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), "folder".into());
    m.insert("account".into(), f.account.to_string().into());
    m.insert("dir".into(), f.dir.clone().into());
    m.insert("mailbox".into(), f.mailbox.wire.clone().into());
    let name = f.mailbox.name();
    if name != f.mailbox.wire {
        m.insert("name".into(), name.into());
    }
    if let Some(v) = f.uidvalidity {
        m.insert("uidvalidity".into(), v.into());
    }
    if let Some(n) = f.uidnext {
        m.insert("uidnext".into(), n.into());
    }
    if f.retired {
        m.insert("retired".into(), true.into());
    }
    if let Some(sep) = f.separator {
        m.insert("separator".into(), String::from(sep).into());
    }
    Value::Object(m)
}

pub(super) fn folder_record(f: &Value) -> std::result::Result<FolderRecord, String> {
    let uid = |key: &str| -> std::result::Result<Option<u32>, String> {
        match f.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().and_then(|u| u32::try_from(u).ok()).map(Some).ok_or_else(|| format!("bad {key} {v}")),
        }
    };
    Ok(FolderRecord {
        account: dir_field(f, "account")?.into(),
        dir: dir_field(f, "dir")?,
        mailbox: Mailbox::from_wire(&str_field(f, "mailbox")?),
        uidvalidity: uid("uidvalidity")?,
        retired: f.get("retired").and_then(Value::as_bool).unwrap_or(false),
        uidnext: uid("uidnext")?,
        separator: f.get("separator").and_then(separator_field),
    })
}

pub(super) fn sample(v: &Value) -> std::result::Result<Sample, String> {
    let number = |key: &str| {
        v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or(format!("evidence without {key}"))
    };
    Ok(Sample {
        mailbox: str_field(v, "mailbox")?,
        uidvalidity: number("uidvalidity")?,
        uid: number("uid")?,
        size: number("size")?,
        header: str_field(v, "header")?,
    })
}

/// A hierarchy separator from the records: one character (anything else is unknown).
fn separator_field(v: &Value) -> Option<char> {
    let mut chars = v.as_str()?.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// A namespace from the records: `{"prefix": "INBOX.", "separator": "."}`.
fn namespace_field(v: &Value) -> Option<Hierarchy> {
    let prefix = v.get("prefix")?.as_str()?.to_string();
    Some(Hierarchy { prefix, separator: v.get("separator").and_then(separator_field) })
}

fn str_field(v: &Value, key: &str) -> std::result::Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("a record without \"{key}\""))
}

/// A directory name from the records: one plain path component, so a tampered records
/// file cannot point a write outside the root.
fn dir_field(v: &Value, key: &str) -> std::result::Result<String, String> {
    let d = str_field(v, key)?;
    if d.is_empty() || d == "." || d == ".." || d.contains(['/', '\0']) {
        return Err(format!("{key} {d:?} is not a directory name"));
    }
    Ok(d)
}
