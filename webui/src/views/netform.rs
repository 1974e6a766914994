//! The network file's lists as form rows: interfaces (their addresses and
//! MTU), VIPs and VRRP instances. Each row edits one `[[table]]` entry of the
//! TOML in place (other keys and comments stay); a row whose first field is
//! emptied is removed; the blank last row adds an entry.

use std::collections::HashMap;

/// What one column edits.
#[derive(Clone, Copy)]
pub enum Kind {
    Text,
    /// Words separated by spaces or commas, kept as a TOML array of strings.
    List,
    Number,
}

pub struct Column {
    pub label: &'static str,
    /// The form field is `{set}_{key}_{row}`; the TOML key is `key`.
    pub key: &'static str,
    pub kind: Kind,
}

/// One list of the file as rows of form fields.
pub struct RowSet {
    pub title: &'static str,
    /// The TOML array of tables (`interface`, `vip`, `vrrp`), also the fields' prefix.
    pub set: &'static str,
    pub columns: &'static [Column],
    /// Each row's values, as shown; the last row is blank (to add one).
    pub rows: Vec<Vec<String>>,
}

const fn col(label: &'static str, key: &'static str, kind: Kind) -> Column {
    Column { label, key, kind }
}

pub const SETS: [(&str, &str, &[Column]); 3] = [
    (
        "Interfaces",
        "interface",
        &[
            col("name", "name", Kind::Text),
            col("addresses (CIDR)", "addresses", Kind::List),
            col("MTU", "mtu", Kind::Number),
        ],
    ),
    (
        "VIPs",
        "vip",
        &[
            col("address (CIDR)", "address", Kind::Text),
            col("interface", "interface", Kind::Text),
        ],
    ),
    (
        "VRRP instances",
        "vrrp",
        &[
            col("name", "name", Kind::Text),
            col("interface", "interface", Kind::Text),
            col("router id", "virtual_router_id", Kind::Number),
            col("priority", "priority", Kind::Number),
            col("VIPs", "vips", Kind::List),
        ],
    ),
];

fn shown(item: Option<&toml_edit::Item>) -> String {
    match item {
        Some(toml_edit::Item::Value(toml_edit::Value::String(s))) => s.value().clone(),
        Some(toml_edit::Item::Value(toml_edit::Value::Integer(i))) => i.value().to_string(),
        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => {
            a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// The rows of each list of `text` (an unreadable file gives blank rows).
pub fn rows(text: &str) -> Vec<RowSet> {
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_default();
    SETS.iter()
        .map(|(title, set, columns)| {
            let mut rows: Vec<Vec<String>> = doc
                .get(set)
                .and_then(|i| i.as_array_of_tables())
                .map(|a| a.iter().map(|t| columns.iter().map(|c| shown(t.get(c.key))).collect()).collect())
                .unwrap_or_default();
            rows.push(vec![String::new(); columns.len()]);
            RowSet { title, set, columns, rows }
        })
        .collect()
}

fn value(kind: Kind, raw: &str) -> Result<toml_edit::Item, String> {
    let raw = raw.trim();
    Ok(match kind {
        Kind::Text => toml_edit::value(raw),
        Kind::Number => toml_edit::value(raw.parse::<i64>().map_err(|_| format!("{raw:?} is not a number"))?),
        Kind::List => {
            let mut a = toml_edit::Array::new();
            for w in raw.split([' ', ',']).filter(|w| !w.is_empty()) {
                a.push(w);
            }
            toml_edit::value(a)
        }
    })
}

/// Writes the form's rows into `doc`. Lists whose fields the form did not
/// send are left alone.
pub fn apply(doc: &mut toml_edit::DocumentMut, fields: &HashMap<String, String>) -> Result<(), String> {
    for (_, set, columns) in SETS {
        let field = |key: &str, row: usize| fields.get(&format!("{set}_{key}_{row}"));
        if field(columns[0].key, 0).is_none() {
            continue;
        }
        let existing = doc.get(set).and_then(|i| i.as_array_of_tables()).map_or(0, |a| a.len());
        let mut keep = Vec::new();
        let mut added = Vec::new();
        for row in 0..=existing {
            let first = field(columns[0].key, row).map(|v| v.trim().to_owned()).unwrap_or_default();
            if first.is_empty() {
                continue;
            }
            if row < existing {
                keep.push(row);
            }
            let mut entry = if row < existing {
                doc[set].as_array_of_tables().and_then(|a| a.get(row)).cloned().unwrap_or_default()
            } else {
                toml_edit::Table::new()
            };
            for c in columns {
                match field(c.key, row).map(|v| v.trim()) {
                    Some(v) if !v.is_empty() => {
                        entry[c.key] = value(c.kind, v).map_err(|e| format!("{set} row {}: {} {e}", row + 1, c.label))?;
                    }
                    Some(_) => {
                        entry.remove(c.key);
                    }
                    None => {}
                }
            }
            if row < existing {
                if let Some(t) = doc[set].as_array_of_tables_mut().and_then(|a| a.get_mut(row)) {
                    *t = entry;
                }
            } else {
                added.push(entry);
            }
        }
        let mut out = toml_edit::ArrayOfTables::new();
        if let Some(a) = doc.get(set).and_then(|i| i.as_array_of_tables()) {
            for (i, t) in a.iter().enumerate() {
                if keep.contains(&i) {
                    out.push(t.clone());
                }
            }
        }
        for t in added {
            out.push(t);
        }
        if out.is_empty() {
            doc.remove(set);
        } else {
            doc[set] = toml_edit::Item::ArrayOfTables(out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_edit_add_and_remove_entries_and_keep_the_rest() {
        let text = "hostname = \"lb1\"\n\n[[interface]]\nname = \"eth0\"\nmanaged = true # keep\naddresses = [\"10.0.0.2/24\"]\n\n\
                    [[vip]]\naddress = \"10.0.0.17/24\"\ninterface = \"eth0\"\n";
        let sets = rows(text);
        assert_eq!(
            sets[0].rows,
            vec![vec!["eth0".to_owned(), "10.0.0.2/24".into(), String::new()], vec![String::new(); 3]]
        );
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        let f: HashMap<String, String> = [
            ("interface_name_0", "eth0"),
            ("interface_addresses_0", "10.0.0.2/24 10.0.0.3/24"),
            ("interface_mtu_0", "1400"),
            ("interface_name_1", ""),
            ("vip_address_0", ""),
            ("vip_address_1", "10.0.0.18/24"),
            ("vip_interface_1", "eth0"),
            ("vrrp_name_0", "VI_1"),
            ("vrrp_interface_0", "eth0"),
            ("vrrp_virtual_router_id_0", "51"),
            ("vrrp_priority_0", "150"),
            ("vrrp_vips_0", "10.0.0.18/24"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        apply(&mut doc, &f).unwrap();
        let t = doc.to_string();
        assert!(t.contains("managed = true # keep"), "other keys and comments stay: {t}");
        assert!(
            t.contains("addresses = [\"10.0.0.2/24\", \"10.0.0.3/24\"]") && t.contains("mtu = 1400"),
            "{t}"
        );
        assert!(!t.contains("10.0.0.17"), "the emptied VIP is gone: {t}");
        assert!(t.contains("address = \"10.0.0.18/24\""), "{t}");
        assert!(
            t.contains("[[vrrp]]") && t.contains("virtual_router_id = 51") && t.contains("vips = [\"10.0.0.18/24\"]"),
            "{t}"
        );
        let bad: HashMap<String, String> = [("vrrp_name_0", "VI_1"), ("vrrp_priority_0", "high")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(apply(&mut doc, &bad).unwrap_err().contains("not a number"));
    }
}
