//! Reading export files and picking values out of loosely typed JSON.
//!
//! Every format accepts a single JSON document or JSON lines, so the document shape is
//! decided once here; records are handed over while the file is parsed, so memory stays
//! proportional to one record, not to the export. The helpers below keep the per-format
//! mappers short.

use driftwatch_plugin_sdk::{ProviderError, Resource, ResourceKey};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Builds the error for a file that cannot be understood. Messages quote the export
/// (types, ids, parser excerpts): control characters are escaped and the length bounded,
/// so no value can forge terminal output or log lines, or fill stderr.
pub(crate) fn input_err(source: &str, message: impl Into<String>) -> ProviderError {
    let message = message.into();
    ProviderError::Input {
        source_name: source.to_string(),
        message: driftwatch_plugin_sdk::input::clean_text(&message, 1000).into_owned(),
    }
}

/// Where an item sits in its file, for error messages; formatted only when needed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// Element `i` of the array under `field` (`$` for a top-level array).
    Index(&'a str, usize),
    /// A JSON-lines record starting on this line.
    Line(usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Index(field, i) => write!(f, "{field}[{i}]"),
            Loc::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// Receives each record of a file with its location.
pub(crate) type OnRecord<'a> = dyn FnMut(Loc<'_>, Value) -> Result<(), ProviderError> + 'a;

/// The shape of a file, once its records were handed over.
#[derive(Debug)]
pub(crate) enum Top {
    /// Nothing but whitespace.
    Empty,
    /// A top-level array: every element was handed over.
    Array,
    /// A top-level object whose list field was handed over.
    Listed {
        /// Every other key of the object (page tokens, counts).
        rest: Map<String, Value>,
    },
    /// One top-level object without a list field, not handed over: the caller decides
    /// whether it is a record.
    Object {
        /// Line the object starts on.
        line: usize,
        /// The whole object, except a list field that was not an array.
        rest: Map<String, Value>,
        /// A list field that was present but not an array, with what it was instead.
        bad: Option<(&'static str, &'static str)>,
    },
    /// A lone string, number, boolean or null: its kind.
    Scalar(&'static str),
    /// JSON lines: every record was handed over.
    Lines,
}

/// Streams the records of a file to `on` while parsing, so a large export never exists
/// as one `Value` tree: the elements of a top-level array, of the first `list_fields`
/// array of a top-level object, or each value of a JSON-lines file.
pub(crate) fn stream_records(
    source: &str,
    bytes: &[u8],
    list_fields: &'static [&'static str],
    on: &mut OnRecord<'_>,
) -> Result<Top, ProviderError> {
    let text = decode(source, bytes)?;
    let bytes: &[u8] = &text;
    let start = skip_ws(bytes, 0);
    if start == bytes.len() {
        return Ok(Top::Empty);
    }
    let first_line = 1 + count_newlines(&bytes[..start]);
    let mut sink = Sink { on, failure: None };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = TopSeed {
        list_fields,
        sink: &mut sink,
        line: first_line,
    };
    let top = match seed.deserialize(&mut de) {
        Ok(top) => top,
        Err(e) => {
            return Err(sink
                .failure
                .take()
                .unwrap_or_else(|| input_err(source, format!("invalid JSON: {e}"))))
        }
    };
    let mut stream = de.into_iter::<Value>();
    let mut pos = start;
    let mut line = first_line;
    let mut top = Some(top);
    loop {
        let next_start = skip_ws(bytes, stream.byte_offset());
        if next_start == bytes.len() {
            break;
        }
        line += count_newlines(&bytes[pos..next_start]);
        pos = next_start;
        // A second value: the file is JSON lines, and the first value was a record too.
        match top.take() {
            None => {}
            Some(Top::Object {
                line: l,
                rest,
                bad: None,
            }) => (sink.on)(Loc::Line(l), Value::Object(rest))?,
            Some(_) => {
                return Err(input_err(
                    source,
                    format!(
                        "line {line}: unexpected JSON after the first document (JSON lines \
                         must hold one object per line)"
                    ),
                ))
            }
        }
        match stream.next() {
            Some(Ok(v)) => (sink.on)(Loc::Line(line), v)?,
            // Name the record that broke: serde's position may be past it.
            Some(Err(e)) => {
                return Err(input_err(
                    source,
                    format!("line {line}: invalid JSON record: {e}"),
                ))
            }
            None => break,
        }
    }
    Ok(top.unwrap_or(Top::Lines))
}

/// Passes records on, keeping the first failure so the parse can stop at once.
struct Sink<'a, 'b> {
    on: &'a mut OnRecord<'b>,
    failure: Option<ProviderError>,
}

impl Sink<'_, '_> {
    fn pass<E: de::Error>(&mut self, loc: Loc<'_>, v: Value) -> Result<(), E> {
        (self.on)(loc, v).map_err(|e| {
            self.failure = Some(e);
            E::custom("stopped by an invalid record")
        })
    }
}

struct TopSeed<'s, 'a, 'b> {
    list_fields: &'static [&'static str],
    sink: &'s mut Sink<'a, 'b>,
    line: usize,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_, '_> {
    type Value = Top;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_, '_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut i = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            self.sink.pass(Loc::Index("$", i), v)?;
            i += 1;
        }
        Ok(Top::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut rest = Map::new();
        let mut listed = None;
        let mut bad = None;
        while let Some(key) = map.next_key::<String>()? {
            let field = self.list_fields.iter().find(|f| **f == key);
            match field {
                Some(field) if listed.is_none() => {
                    let seed = ListSeed {
                        field,
                        sink: &mut *self.sink,
                    };
                    match map.next_value_seed(seed)? {
                        // A null list is an empty export.
                        Listed::Streamed | Listed::Null => listed = Some(*field),
                        Listed::Other(kind) => bad = Some((*field, kind)),
                    }
                }
                _ => {
                    rest.insert(key, map.next_value::<Value>()?);
                }
            }
        }
        Ok(match listed {
            Some(_) => Top::Listed { rest },
            None => Top::Object {
                line: self.line,
                rest,
                bad,
            },
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Scalar("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Scalar("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Scalar("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Scalar("null"))
    }
}

/// What a list field turned out to be.
enum Listed {
    Streamed,
    Null,
    Other(&'static str),
}

struct ListSeed<'s, 'a, 'b> {
    field: &'static str,
    sink: &'s mut Sink<'a, 'b>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_, '_, '_> {
    type Value = Listed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Listed, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_, '_, '_> {
    type Value = Listed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listed, A::Error> {
        let mut i = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            self.sink.pass(Loc::Index(self.field, i), v)?;
            i += 1;
        }
        Ok(Listed::Streamed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listed, A::Error> {
        // Resource Graph's table format puts `columns` and `rows` here.
        let mut table = false;
        while let Some(key) = map.next_key::<String>()? {
            table |= key == "rows";
            map.next_value::<IgnoredAny>()?;
        }
        Ok(Listed::Other(if table { "a table" } else { "an object" }))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Listed, E> {
        Ok(Listed::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Listed, E> {
        Ok(Listed::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Listed, E> {
        Ok(Listed::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Listed, E> {
        Ok(Listed::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Listed, E> {
        Ok(Listed::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Listed, E> {
        Ok(Listed::Null)
    }
}

/// Strips a UTF-8 byte-order mark and converts UTF-16, which PowerShell redirection writes.
fn decode<'a>(source: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, ProviderError> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Ok(Cow::Borrowed(rest));
    }
    let utf16 = |rest: &[u8], le: bool| -> Result<Cow<'a, [u8]>, ProviderError> {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map(|s| Cow::Owned(s.into_bytes()))
            .map_err(|_| input_err(source, "invalid UTF-16 text"))
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    Ok(Cow::Borrowed(bytes))
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// A short name of a JSON value's kind, for "expected X, found Y" messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field, if present and a string.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The first of several spellings of a string field (snake_case, camelCase, ...), non-empty.
pub(crate) fn first_str<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| str_at(v, k))
        .filter(|s| !s.is_empty())
}

/// Like [`first_str`], on an object's map.
pub(crate) fn map_str<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The first present, non-null field among several spellings.
pub(crate) fn first_of<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(k).filter(|x| !x.is_null()))
}

/// The last `/`-separated segment of a URL or path (`.../machineTypes/e2-medium` → `e2-medium`).
pub(crate) fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The segment following `marker` in a `/`-separated path, compared case-insensitively.
pub(crate) fn segment_after<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case(marker) {
            return parts.next().filter(|s| !s.is_empty());
        }
    }
    None
}

/// A JSON boolean, also accepting `"true"`/`"false"` and EC2's `{"value": bool}` wrapper.
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Object(m) => m.get("value").and_then(as_bool),
        _ => None,
    }
}

/// An integer, also accepting the decimal strings that int64 fields become in Google APIs.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A scalar as text (tags sometimes carry numbers or booleans).
pub(crate) fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The strings of a JSON array; anything else (absent, null) is the empty list.
pub(crate) fn strings(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| Value::String(s.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Tags given as a JSON object (`{"env": "prod"}`).
pub(crate) fn tags_from_object(v: Option<&Value>, into: &mut BTreeMap<String, String>) {
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            into.insert(k.clone(), scalar_string(v));
        }
    }
}

/// Tags given as a list of `{key, value}` (EC2/IAM style, either capitalisation).
pub(crate) fn tags_from_list(v: Option<&Value>, into: &mut BTreeMap<String, String>) {
    if let Some(Value::Array(items)) = v {
        for t in items {
            if let Some(k) = first_str(t, &["key", "Key"]) {
                let val = first_of(t, &["value", "Value"])
                    .map(scalar_string)
                    .unwrap_or_default();
                into.insert(k.to_string(), val);
            }
        }
    }
}

/// Tags as the JSON object Terraform stores in `tags`/`labels`.
pub(crate) fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Copies a field into the attributes when it was observed (present and not null).
pub(crate) fn put(attrs: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        attrs.insert(key.to_string(), v.clone());
    }
}

/// Copies a boolean field when observed.
pub(crate) fn put_bool(attrs: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    if let Some(b) = v.and_then(as_bool) {
        attrs.insert(key.to_string(), Value::Bool(b));
    }
}

/// Copies an integer field when observed.
pub(crate) fn put_int(attrs: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    if let Some(n) = v.and_then(as_int) {
        attrs.insert(key.to_string(), Value::from(n));
    }
}

/// Copies a string field when observed.
pub(crate) fn put_str(attrs: &mut Map<String, Value>, key: &str, v: Option<&str>) {
    if let Some(s) = v {
        attrs.insert(key.to_string(), Value::String(s.to_string()));
    }
}

/// A resource with its key set.
pub(crate) fn new_resource(provider: &str, ty: &str, id: impl Into<String>) -> Resource {
    Resource::new(ResourceKey::new(provider, ty, id))
}

/// Turns per-reason skip counts into warnings (`skipped 3 item(s) of unsupported type X`).
pub(crate) fn skip_warnings(counts: BTreeMap<String, usize>) -> Vec<String> {
    counts
        .into_iter()
        .map(|(what, n)| format!("skipped {n} {what}"))
        .collect()
}

/// A capture or update time in milliseconds since the epoch, for keeping the latest record.
///
/// Accepts RFC 3339 strings and the epoch seconds older AWS CLI versions print.
pub(crate) fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(epoch_to_ms),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .map(epoch_to_ms)
            .or_else(|| parse_rfc3339(s.trim())),
        _ => None,
    }
}

fn epoch_to_ms(f: f64) -> i64 {
    // Above 1e11 the number is already in milliseconds (1e11 seconds is the year 5138).
    if f.abs() >= 1e11 {
        f as i64
    } else {
        (f * 1000.0) as i64
    }
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    // AWS CLI output sometimes separates date and time with a space instead of `T`.
    let owned;
    let s = if s.as_bytes().get(10) == Some(&b' ') {
        owned = format!("{}T{}", &s[..10], &s[11..]);
        owned.as_str()
    } else {
        s
    };
    let t = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Parses a port or port range (`22`, `8000-9000`) into an SDK range.
pub(crate) fn port_range(s: &str) -> Option<driftwatch_plugin_sdk::PortRange> {
    let s = s.trim();
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s, s),
    };
    Some(driftwatch_plugin_sdk::PortRange {
        from: a.parse().ok()?,
        to: b.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_compare_across_formats() {
        let a = parse_time(&json!("2024-05-01T12:00:00Z")).unwrap();
        let b = parse_time(&json!("2024-05-01T12:00:00.000Z")).unwrap();
        let c = parse_time(&json!("2024-05-01T14:00:00+02:00")).unwrap();
        let d = parse_time(&json!(1714564800.0)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a, 1_714_564_800_000);
        assert!(parse_time(&json!("2024-05-01T12:00:00.5Z")).unwrap() > a);
        assert_eq!(parse_time(&json!("yesterday")), None);
        assert_eq!(parse_time(&json!("2024-05-01T12:00:00+2")), None);
    }

    /// Streams `text` and returns the shape plus every record handed over.
    fn records(text: &[u8], fields: &'static [&'static str]) -> (Top, Vec<(String, Value)>) {
        let mut got = Vec::new();
        let top = stream_records("f", text, fields, &mut |loc, v| {
            got.push((loc.to_string(), v));
            Ok(())
        })
        .unwrap();
        (top, got)
    }

    #[test]
    fn shapes_and_locations() {
        assert!(matches!(records(b"  \n", &[]).0, Top::Empty));
        let (top, got) = records(b"\n\n{\"a\": [1,\n2]}\n", &[]);
        match top {
            Top::Object {
                line: 3,
                rest,
                bad: None,
            } => assert_eq!(rest["a"], json!([1, 2])),
            other => panic!("expected one object, got {other:?}"),
        }
        assert!(got.is_empty());

        let (top, got) = records(
            b"{\"n\": 1, \"items\": [{\"a\":1}, 2], \"t\": \"x\"}",
            &["items"],
        );
        match top {
            Top::Listed { rest } => assert_eq!(Value::Object(rest), json!({"n": 1, "t": "x"})),
            other => panic!("expected a list, got {other:?}"),
        }
        assert_eq!(
            got,
            [
                ("items[0]".to_string(), json!({"a": 1})),
                ("items[1]".to_string(), json!(2))
            ]
        );

        let (top, got) = records(b"[3, 4]", &["items"]);
        assert!(matches!(top, Top::Array));
        assert_eq!(got[1], ("$[1]".to_string(), json!(4)));

        let (top, _) = records(b"{\"items\": {\"columns\": [], \"rows\": []}}", &["items"]);
        assert!(matches!(
            top,
            Top::Object {
                bad: Some(("items", "a table")),
                ..
            }
        ));
        assert!(matches!(records(b"\"s\"", &[]).0, Top::Scalar("a string")));

        let (top, got) = records(b"{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}", &["items"]);
        assert!(matches!(top, Top::Lines));
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, ["line 1", "line 3", "line 4"]);
    }

    #[test]
    fn errors() {
        let run = |text: &[u8]| {
            stream_records("f", text, &["items"], &mut |_, v| {
                if v == json!("stop") {
                    Err(input_err("f", "stopped"))
                } else {
                    Ok(())
                }
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            run(b"{\"a\":1}\n{\"a\":\n"),
            "f: line 2: invalid JSON record: EOF while parsing a value at line 3 column 0"
        );
        assert_eq!(
            run(b"{\n\"a\": }"),
            "f: invalid JSON: expected value at line 2 column 6"
        );
        assert_eq!(run(b"{\"items\": [1, \"stop\", 3]}"), "f: stopped");
        assert_eq!(run(b"1\n\"stop\""), "f: line 2: unexpected JSON after the first document (JSON lines must hold one object per line)");
        assert_eq!(run(b"{\"a\":1}\n\"stop\""), "f: stopped");
    }

    #[test]
    fn bom_and_utf16() {
        let (_, got) = records(b"\xEF\xBB\xBF[1]", &[]);
        assert_eq!(got, [("$[0]".to_string(), json!(1))]);
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "[true]".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let (_, got) = records(&utf16, &[]);
        assert_eq!(got, [("$[0]".to_string(), json!(true))]);
    }

    #[test]
    fn ports() {
        assert_eq!(port_range("22").map(|p| (p.from, p.to)), Some((22, 22)));
        assert_eq!(
            port_range("8000-9000").map(|p| (p.from, p.to)),
            Some((8000, 9000))
        );
        assert_eq!(port_range("*"), None);
        assert_eq!(port_range("70000"), None);
    }
}
