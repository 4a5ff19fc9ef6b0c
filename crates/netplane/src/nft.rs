//! nftables objects, their rendering, and the diff that updates only what changed.
//!
//! The netplane owns whole tables (`bridge nubo-sg`, `inet nubo-sg`, `inet nubo-ext`, and
//! `inet nubo-router` in each router namespace) and never touches another table. Inside a table
//! every chain, set and map is one *object* rendered from the desired state. An object is
//! rewritten (`flush` + refill, in one atomic `nft -f` transaction per namespace) only when it is
//! not up to date:
//!
//! * the state file records, per object, the hash of what was rendered and a fingerprint of what
//!   the kernel showed right after it was written (`nft -j list table`, handles and counter
//!   values removed);
//! * an object is up to date when it exists, its rendered hash is the recorded one, and its
//!   current fingerprint is the recorded one. A rule deleted or edited by hand changes the
//!   fingerprint, so the next apply rewrites that one object; a lost state file rewrites each
//!   object once.
//!
//! Objects no longer rendered are deleted (maps first, then chains, then sets, so nothing is
//! deleted while something still refers to it); tables no longer wanted are deleted whole.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A base chain's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub kind: &'static str,
    pub hook: &'static str,
    pub priority: &'static str,
    pub policy: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Chain(Option<Hook>),
    /// `type ...; flags ...;` (the declaration's inside).
    Set(String),
    /// `type ... : ...;` or `typeof ... : ...;`.
    Map(String),
}

impl Kind {
    fn word(&self) -> &'static str {
        match self {
            Kind::Chain(_) => "chain",
            Kind::Set(_) => "set",
            Kind::Map(_) => "map",
        }
    }
}

/// One chain (its rules), set or map (its elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    /// Rules of a chain; elements of a set or map.
    pub body: Vec<String>,
}

impl Object {
    pub fn chain(name: impl Into<String>, rules: Vec<String>) -> Object {
        Object {
            kind: Kind::Chain(None),
            name: name.into(),
            body: rules,
        }
    }

    pub fn base(name: impl Into<String>, hook: Hook, rules: Vec<String>) -> Object {
        Object {
            kind: Kind::Chain(Some(hook)),
            name: name.into(),
            body: rules,
        }
    }

    pub fn set(name: impl Into<String>, decl: impl Into<String>, elements: Vec<String>) -> Object {
        Object {
            kind: Kind::Set(decl.into()),
            name: name.into(),
            body: elements,
        }
    }

    pub fn map(name: impl Into<String>, decl: impl Into<String>, elements: Vec<String>) -> Object {
        Object {
            kind: Kind::Map(decl.into()),
            name: name.into(),
            body: elements,
        }
    }

    fn declare(&self, family: &str, table: &str) -> String {
        match &self.kind {
            Kind::Chain(None) => format!("add chain {family} {table} {}\n", self.name),
            Kind::Chain(Some(h)) => format!(
                "add chain {family} {table} {} {{ type {} hook {} priority {}; policy {}; }}\n",
                self.name, h.kind, h.hook, h.priority, h.policy
            ),
            Kind::Set(d) => format!("add set {family} {table} {} {{ {d} }}\n", self.name),
            Kind::Map(d) => format!("add map {family} {table} {} {{ {d} }}\n", self.name),
        }
    }

    fn fill(&self, family: &str, table: &str) -> String {
        let mut s = format!(
            "flush {} {family} {table} {}\n",
            self.kind.word(),
            self.name
        );
        match &self.kind {
            Kind::Chain(_) => {
                for r in &self.body {
                    s.push_str(&format!("add rule {family} {table} {} {r}\n", self.name));
                }
            }
            Kind::Set(_) | Kind::Map(_) => {
                // Elements in chunks: one huge line is slow to parse.
                for chunk in self.body.chunks(256) {
                    s.push_str(&format!(
                        "add element {family} {table} {} {{ {} }}\n",
                        self.name,
                        chunk.join(", ")
                    ));
                }
            }
        }
        s
    }

    /// The hash of what is rendered.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.declare("f", "t"));
        h.update(self.fill("f", "t"));
        hex16(&h.finalize())
    }
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: &'static str,
    pub name: String,
    pub objects: Vec<Object>,
}

impl Table {
    /// The whole table as nft text (for tests and `README` examples).
    pub fn render(&self) -> String {
        let mut s = format!("add table {} {}\n", self.family, self.name);
        for o in &self.objects {
            s.push_str(&o.declare(self.family, &self.name));
        }
        for o in &self.objects {
            s.push_str(&o.fill(self.family, &self.name));
        }
        s
    }
}

/// What the state file keeps per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub rendered: String,
    pub observed: String,
}

/// The kernel's view of some tables: per table, per object key, the fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub tables: BTreeMap<(String, String), BTreeMap<String, String>>,
}

pub fn key(family: &str, table: &str, kind: &str, name: &str) -> String {
    format!("{family} {table} {kind} {name}")
}

fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                if k == "handle" || k == "packets" || k == "bytes" {
                    continue;
                }
                out.insert(k.clone(), strip(x));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// Reads `nft -j list ruleset` / `list table` output into fingerprints, keeping only `tables`
/// (family, name).
pub fn observe(json: &Value, tables: &BTreeSet<(String, String)>) -> Observed {
    let mut out = Observed::default();
    let mut rules: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut heads: BTreeMap<String, Value> = BTreeMap::new();
    let items = json
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in &items {
        let Some((kind, body)) = item.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let fam = body
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let tname = if kind == "table" {
            body.get("name")
        } else {
            body.get("table")
        }
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
        let t = (fam.clone(), tname.clone());
        if !tables.contains(&t) {
            continue;
        }
        match kind.as_str() {
            "table" => {
                out.tables.entry(t).or_default();
            }
            "chain" | "set" | "map" => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                heads.insert(key(&fam, &tname, kind, name), strip(body));
                out.tables.entry(t).or_default();
            }
            "rule" => {
                let chain = body
                    .get("chain")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let expr = body.get("expr").cloned().unwrap_or(Value::Null);
                rules
                    .entry(key(&fam, &tname, "chain", chain))
                    .or_default()
                    .push(strip(&expr));
            }
            _ => {}
        }
    }
    for (k, head) in heads {
        let mut h = Sha256::new();
        h.update(head.to_string());
        for r in rules.get(&k).into_iter().flatten() {
            h.update(r.to_string());
        }
        let parts: Vec<&str> = k.splitn(4, ' ').collect();
        let t = (parts[0].to_string(), parts[1].to_string());
        out.tables
            .entry(t)
            .or_default()
            .insert(k, hex16(&h.finalize()));
    }
    out
}

/// A transaction for one namespace.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub script: String,
    /// Human-readable changes.
    pub changes: Vec<String>,
    /// Tables written (to fingerprint afterwards).
    pub touched: BTreeSet<(String, String)>,
    /// Records to drop (deleted objects).
    pub forget: Vec<String>,
}

/// Diffs desired tables against observed ones. `managed` lists every table name this namespace
/// may hold that is ours: those not in `desired` are deleted. `prefix` scopes record keys (the
/// namespace).
pub fn plan(
    desired: &[Table],
    managed: &[(&'static str, &'static str)],
    observed: &Observed,
    records: &BTreeMap<String, Record>,
    prefix: &str,
) -> Plan {
    let mut p = Plan::default();
    let (mut creates, mut decls, mut fills, mut dels) =
        (String::new(), Vec::<String>::new(), Vec::new(), Vec::new());
    for t in desired {
        let tk = (t.family.to_string(), t.name.clone());
        let seen = observed.tables.get(&tk);
        if seen.is_none() {
            creates.push_str(&format!("add table {} {}\n", t.family, t.name));
            p.changes
                .push(format!("create nft table {} {}", t.family, t.name));
        }
        let empty = BTreeMap::new();
        let seen = seen.unwrap_or(&empty);
        let mut wanted = BTreeSet::new();
        for o in &t.objects {
            let k = key(t.family, &t.name, o.kind.word(), &o.name);
            wanted.insert(k.clone());
            let rendered = o.hash();
            let up_to_date = match (seen.get(&k), records.get(&format!("{prefix}{k}"))) {
                (Some(fp), Some(r)) => r.rendered == rendered && &r.observed == fp,
                _ => false,
            };
            if up_to_date {
                continue;
            }
            if !seen.contains_key(&k) {
                decls.push(o.declare(t.family, &t.name));
            }
            let order = match o.kind {
                Kind::Set(_) => 0,
                Kind::Chain(_) => 1,
                Kind::Map(_) => 2,
            };
            fills.push((order, o.fill(t.family, &t.name)));
            p.changes.push(format!(
                "{} nft {} {} {} {}",
                if seen.contains_key(&k) {
                    "update"
                } else {
                    "create"
                },
                o.kind.word(),
                t.family,
                t.name,
                o.name
            ));
            p.touched.insert(tk.clone());
        }
        for k in seen.keys() {
            if wanted.contains(k) {
                continue;
            }
            let parts: Vec<&str> = k.splitn(4, ' ').collect();
            let order = match parts[2] {
                "map" => 0,
                "chain" => 1,
                _ => 2,
            };
            dels.push((
                order,
                format!(
                    "delete {} {} {} {}\n",
                    parts[2], parts[0], parts[1], parts[3]
                ),
            ));
            p.changes.push(format!(
                "delete nft {} {} {} {}",
                parts[2], parts[0], parts[1], parts[3]
            ));
            p.forget.push(format!("{prefix}{k}"));
            p.touched.insert(tk.clone());
        }
    }
    let mut drop_tables = String::new();
    for (fam, name) in managed {
        let tk = (fam.to_string(), name.to_string());
        if observed.tables.contains_key(&tk)
            && !desired.iter().any(|t| t.family == *fam && t.name == *name)
        {
            drop_tables.push_str(&format!("delete table {fam} {name}\n"));
            p.changes.push(format!("delete nft table {fam} {name}"));
            for k in observed.tables[&tk].keys() {
                p.forget.push(format!("{prefix}{k}"));
            }
        }
    }
    fills.sort_by_key(|(o, _)| *o);
    dels.sort_by_key(|(o, _)| *o);
    p.script.push_str(&creates);
    p.script.push_str(&decls.concat());
    for (_, f) in fills {
        p.script.push_str(&f);
    }
    for (_, d) in dels {
        p.script.push_str(&d);
    }
    p.script.push_str(&drop_tables);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            family: "inet",
            name: "t".into(),
            objects: vec![
                Object::base(
                    "fwd",
                    Hook {
                        kind: "filter",
                        hook: "forward",
                        priority: "0",
                        policy: "accept",
                    },
                    vec!["meta mark vmap @m".into()],
                ),
                Object::map("m", "type mark : verdict;", vec!["0x1 : jump c".into()]),
                Object::chain("c", vec!["tcp dport 22 accept".into(), "drop".into()]),
            ],
        }
    }

    #[test]
    fn first_plan_creates_everything_in_order() {
        let p = plan(
            &[table()],
            &[("inet", "t")],
            &Observed::default(),
            &BTreeMap::new(),
            "",
        );
        assert_eq!(
            p.script,
            "add table inet t\n\
             add chain inet t fwd { type filter hook forward priority 0; policy accept; }\n\
             add map inet t m { type mark : verdict; }\n\
             add chain inet t c\n\
             flush chain inet t fwd\n\
             add rule inet t fwd meta mark vmap @m\n\
             flush chain inet t c\n\
             add rule inet t c tcp dport 22 accept\n\
             add rule inet t c drop\n\
             flush map inet t m\n\
             add element inet t m { 0x1 : jump c }\n"
        );
        assert_eq!(p.changes.len(), 4);
    }

    #[test]
    fn up_to_date_objects_are_left_alone_and_stale_ones_go() {
        let t = table();
        let mut seen = BTreeMap::new();
        let mut records = BTreeMap::new();
        for o in &t.objects {
            let k = key("inet", "t", o.kind.word(), &o.name);
            seen.insert(k.clone(), "fp".to_string());
            records.insert(
                k,
                Record {
                    rendered: o.hash(),
                    observed: "fp".into(),
                },
            );
        }
        seen.insert(key("inet", "t", "chain", "old"), "x".into());
        let mut observed = Observed::default();
        observed
            .tables
            .insert(("inet".into(), "t".into()), seen.clone());
        let p = plan(
            std::slice::from_ref(&t),
            &[("inet", "t")],
            &observed,
            &records,
            "",
        );
        assert_eq!(p.script, "delete chain inet t old\n");

        // Someone edited chain c by hand: its fingerprint changed, only c is rewritten.
        seen.remove(&key("inet", "t", "chain", "old"));
        seen.insert(key("inet", "t", "chain", "c"), "edited".into());
        observed.tables.insert(("inet".into(), "t".into()), seen);
        let p = plan(&[t], &[("inet", "t")], &observed, &records, "");
        assert_eq!(
            p.script,
            "flush chain inet t c\nadd rule inet t c tcp dport 22 accept\nadd rule inet t c drop\n"
        );

        // No longer desired: the table goes.
        let p = plan(&[], &[("inet", "t")], &observed, &records, "");
        assert_eq!(p.script, "delete table inet t\n");
    }

    #[test]
    fn fingerprints_ignore_handles_and_counters() {
        let a: Value = serde_json::json!({"nftables": [
            {"table": {"family": "inet", "name": "t", "handle": 1}},
            {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 2}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3,
                      "expr": [{"counter": {"packets": 5, "bytes": 100}}]}}]});
        let b: Value = serde_json::json!({"nftables": [
            {"table": {"family": "inet", "name": "t", "handle": 7}},
            {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 8}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 9,
                      "expr": [{"counter": {"packets": 0, "bytes": 0}}]}}]});
        let want: BTreeSet<(String, String)> = [("inet".to_string(), "t".to_string())].into();
        assert_eq!(observe(&a, &want).tables, observe(&b, &want).tables);
        let other: BTreeSet<(String, String)> = [("inet".to_string(), "x".to_string())].into();
        assert!(observe(&a, &other).tables.is_empty());
    }
}
