//! The one YAML writer: any serde value as block-style YAML, mapping keys sorted (as
//! canonical JSON sorts them; `apiVersion`, `kind`, `metadata`, `spec` happen to come in
//! that order), every string double-quoted as JSON quotes it (a YAML double-quoted scalar),
//! so the same value always gives the same bytes and no string is ever read back as a
//! number, a boolean or null.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// `value` as a YAML document (ending in a newline); `None` when it is not serializable,
/// which the typed documents we render never are.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value)
        .unwrap_or_else(|e| unreachable!("rendered documents serialize: {e}"));
    let mut out = String::new();
    write_block(&mut out, &value, 0);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Several documents in one file, separated by `---`.
pub fn documents<T: Serialize>(values: &[T]) -> String {
    values.iter().map(|v| format!("---\n{}", to_string(v))).collect()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(a) if a.is_empty() => "[]".to_owned(),
        Value::Object(o) if o.is_empty() => "{}".to_owned(),
        _ => unreachable!("only scalars and empty collections are written inline"),
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|e| unreachable!("a string serializes: {e}"))
}

/// A mapping key: plain when it cannot be misread, quoted otherwise.
fn key(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&text.to_ascii_lowercase().as_str());
    if plain { text.to_owned() } else { quoted(text) }
}

fn is_inline(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                if is_inline(v) {
                    let _ = writeln!(out, "{pad}{}: {}", key(k), scalar(v));
                } else {
                    let _ = writeln!(out, "{pad}{}:", key(k));
                    let child = if v.is_array() { indent } else { indent + 2 };
                    write_block(out, v, child);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_inline(item) {
                    let _ = writeln!(out, "{pad}- {}", scalar(item));
                } else {
                    // The item's first line follows the dash; the rest align under it.
                    let mut inner = String::new();
                    write_block(&mut inner, item, indent + 2);
                    let trimmed = inner.get(indent + 2..).unwrap_or_default();
                    let _ = write!(out, "{pad}- {trimmed}");
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_yaml_with_every_string_quoted() {
        let value = json!({
            "apiVersion": "v1",
            "metadata": {"name": "prod-shop-orders", "labels": {"app.kubernetes.io/name": "orders"}},
            "spec": {
                "replicas": 2,
                "ports": [{"port": 80, "name": "http"}, {"port": 9090}],
                "args": ["--flag", "yes"],
                "empty": {},
                "none": [],
                "nested": [[1, 2], {"a": {"b": true}}],
            },
            "true": "on",
        });
        let text = to_string(&value);
        assert_eq!(
            text,
            r#"apiVersion: "v1"
metadata:
  labels:
    app.kubernetes.io/name: "orders"
  name: "prod-shop-orders"
spec:
  args:
  - "--flag"
  - "yes"
  empty: {}
  nested:
  - - 1
    - 2
  - a:
      b: true
  none: []
  ports:
  - name: "http"
    port: 80
  - port: 9090
  replicas: 2
"true": "on"
"#
        );
    }
}
