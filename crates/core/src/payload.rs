//! What devices send: ThingsBoard's JSON payloads for telemetry, client attributes,
//! attribute requests and the gateway forms, read the way ThingsBoard's MQTT and HTTP
//! transports read them.
//!
//! The rules follow ThingsBoard's `JsonConverter` (`common/proto/.../common/adaptor/
//! JsonConverter.java`, used by the MQTT, HTTP and CoAP device APIs), its MQTT adaptor
//! (`JsonMqttAdaptor.java`, attribute requests), its gateway session handler
//! (`AbstractGatewaySessionHandler.java`) and its key validation (`dao/.../KvUtils.java`).
//! Where this module is stricter than ThingsBoard, the spot says so in a comment.
//!
//! Everything is refused as a whole: one bad key or value refuses the payload, and the
//! error says what is wrong and where, as a JSON path such as `$[1]["values"]["temp"]`.
//! Within a payload, points and attributes keep the order in which they were written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use thiserror::Error;

/// The longest key ThingsBoard stores, counted as Java counts a `String`'s length (UTF-16
/// code units; the same as characters outside emoji and other astral planes). ThingsBoard's
/// `KvUtils.validate`: "key length must be equal or less than 255".
pub const MAX_KEY_LEN: usize = 255;

/// How deeply arrays and objects may nest, the limit serde_json applies too.
pub const MAX_DEPTH: usize = 128;

/// The longest exact decimal form kept for a number that fits neither a `Long` nor a
/// `Double` (see [`Value::String`]). ThingsBoard has no such limit; without one, a
/// 10-byte literal such as `1e99999999` would become a string of 100 million digits.
pub const MAX_EXACT_NUMBER_LEN: usize = 1024;
const EXACT_TOO_LONG: &str = "its exact decimal form would be longer than 1024 characters";

/// A value as ThingsBoard stores it: its kv types `BOOLEAN`, `LONG`, `DOUBLE`, `STRING` and
/// `JSON`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Long(i64),
    /// Always finite when it comes from this module's parsers.
    Double(f64),
    String(String),
    /// A nested object or array, stored whole. Keys of nested objects come out sorted
    /// (serde_json's map), and numbers are as serde_json reads them.
    Json(serde_json::Value),
}

impl Value {
    /// ThingsBoard's name for the type: `BOOLEAN`, `LONG`, `DOUBLE`, `STRING` or `JSON`.
    pub fn data_type(&self) -> &'static str {
        match self {
            Value::Bool(_) => "BOOLEAN",
            Value::Long(_) => "LONG",
            Value::Double(_) => "DOUBLE",
            Value::String(_) => "STRING",
            Value::Json(_) => "JSON",
        }
    }

    /// The value as typed JSON: a boolean, a number, a string, or the JSON value itself. A
    /// non-finite double, which no parser here produces, becomes `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Long(n) => serde_json::Value::from(*n),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Json(j) => j.clone(),
        }
    }

    /// The value as a string, as ThingsBoard returns it with `useStrictDataTypes=false`
    /// (`KvEntry.getValueAsString()`): Java's `Long.toString`, `Double.toString`
    /// (`42.0`, `1.0E7`, `1.0E-4`), `Boolean.toString`, the string itself, or the JSON
    /// text in compact form.
    pub fn as_string(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Long(n) => n.to_string(),
            Value::Double(d) => java_double_to_string(*d),
            Value::String(s) => s.clone(),
            Value::Json(j) => j.to_string(),
        }
    }
}

/// Attributes, or the values of one telemetry object: keys and values in the order given.
pub type KeyValues = Vec<(String, Value)>;

/// One telemetry value at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Milliseconds since the Unix epoch: the device's `ts`, or the time of receipt.
    pub ts: i64,
    pub key: String,
    pub value: Value,
}

/// The body of `v1/devices/me/attributes/request/$id`, e.g.
/// `{"clientKeys":"a,b","sharedKeys":"c"}`.
///
/// `None` means the field was absent. Names are trimmed, empty names dropped and
/// duplicates removed (first occurrence kept). ThingsBoard answers a request whose two
/// lists are both empty (absent or not) with every client and every shared attribute, and
/// a request with one non-empty list with that scope only (`DeviceActorMessageProcessor.
/// getAttributesKvEntries`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributeRequest {
    pub client_keys: Option<Vec<String>>,
    pub shared_keys: Option<Vec<String>>,
}

/// Why a payload was refused. Each message says what is wrong and where.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the payload is empty: expected {expected}")]
    Empty { expected: &'static str },
    #[error(
        "the payload is not valid UTF-8: invalid byte at offset {offset} (line {line}, column {column})"
    )]
    InvalidUtf8 {
        offset: usize,
        line: usize,
        column: usize,
    },
    #[error("the payload is not valid JSON: {message} at line {line} column {column}")]
    Json {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("at {path}: expected {expected}, found {found}")]
    WrongType {
        path: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "at {path}: expected a whole number of milliseconds since the Unix epoch that fits in 64 bits, found {found}"
    )]
    BadTimestamp { path: String, found: String },
    #[error("at {path}: a key must not be empty or only whitespace")]
    BlankKey { path: String },
    #[error("at {path}: the key is {len} characters long, at most {MAX_KEY_LEN} are allowed")]
    KeyTooLong { path: String, len: usize },
    #[error("at {path}: the string is {len} characters long, at most {max} are allowed")]
    StringTooLong {
        path: String,
        len: usize,
        max: usize,
    },
    #[error("at {path}: the number {number} cannot be stored: {reason}")]
    BadNumber {
        path: String,
        number: String,
        reason: &'static str,
    },
    #[error("at {path}: a device name must not be empty or only whitespace")]
    BlankDeviceName { path: String },
    #[error("the gateway payload names no device: expected {{\"Device name\": ...}}")]
    NoDevices,
}

/// ThingsBoard's two settings for reading device JSON, `transport.json.*` in its
/// `thingsboard.yml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// `transport.json.type_cast_enabled` (default true): a string that looks like a
    /// decimal number (`"42"`, `"-3.5"`, `".5"`; no exponent, no `+`) is stored as a
    /// number, and a number that fits neither a `Long` nor a `Double` exactly is stored as
    /// its decimal string instead of being refused.
    pub type_cast: bool,
    /// `transport.json.max_string_value_length` (default 0, no limit): the longest string
    /// value, counted in UTF-16 code units as Java does.
    pub max_string_value_len: usize,
}

impl ParseOptions {
    /// ThingsBoard's defaults.
    pub const THINGSBOARD: ParseOptions = ParseOptions {
        type_cast: true,
        max_string_value_len: 0,
    };

    /// Telemetry (`v1/devices/me/telemetry`, `POST /api/v1/$TOKEN/telemetry`): an object
    /// `{"k":v,...}` stamped `now_ms`, an object `{"ts":ms,"values":{...}}`, or an array of
    /// such objects in any mix.
    ///
    /// As in ThingsBoard, an object is of the second form only when it has both `ts` and
    /// `values`; its other members are then ignored. An object with only one of the two is
    /// of the first form, so `{"ts":1,"temp":2}` is two points, `ts` and `temp`, at `now_ms`.
    pub fn telemetry(&self, body: &[u8], now_ms: i64) -> Result<Vec<Point>, PayloadError> {
        let root = parse_document(body, "a JSON object or array of telemetry")?;
        let mut points = Vec::new();
        match &root {
            Node::Object(members) => {
                self.telemetry_object(members, &Path::root(), now_ms, &mut points)?
            }
            Node::Array(items) => {
                let root = Path::root();
                for (i, item) in items.iter().enumerate() {
                    let path = root.index(i);
                    let Node::Object(members) = item else {
                        return Err(wrong_type(&path, "a JSON object", item));
                    };
                    self.telemetry_object(members, &path, now_ms, &mut points)?;
                }
            }
            other => {
                return Err(wrong_type(
                    &Path::root(),
                    "a JSON object or array of telemetry",
                    other,
                ));
            }
        }
        Ok(points)
    }

    /// Client attributes (`v1/devices/me/attributes`, `POST /api/v1/$TOKEN/attributes`): an
    /// object `{"k":v,...}`. There is no timestamped form: `ts` is an ordinary key here.
    pub fn attributes(&self, body: &[u8]) -> Result<KeyValues, PayloadError> {
        let root = parse_document(body, "a JSON object of attributes")?;
        match &root {
            Node::Object(members) => self.key_values(members, &Path::root()),
            other => Err(wrong_type(
                &Path::root(),
                "a JSON object of attributes",
                other,
            )),
        }
    }

    /// Gateway telemetry (`v1/gateway/telemetry`): `{"Device A":[{"ts":ms,"values":{...}},
    /// {"k":v}], ...}`, each device's array read as [`ParseOptions::telemetry`] reads an
    /// array. Each element may carry a `metadata` object (`connector`, `receivedTs`,
    /// `publishedTs`) for the gateway's statistics; it is checked and dropped, never
    /// stored as telemetry.
    pub fn gateway_telemetry(
        &self,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<Point>)>, PayloadError> {
        let root = parse_document(body, "a JSON object of device names and telemetry")?;
        let Node::Object(devices) = &root else {
            return Err(wrong_type(
                &Path::root(),
                "a JSON object of device names and telemetry arrays",
                &root,
            ));
        };
        if devices.is_empty() {
            return Err(PayloadError::NoDevices);
        }
        let mut result = Vec::with_capacity(devices.len());
        for (device, node) in devices {
            let path = Path::root().key(device);
            check_device_name(device, &path)?;
            // ThingsBoard logs and skips a device whose value is not an array; we refuse,
            // so that the gateway learns its data was not stored.
            let Node::Array(items) = node else {
                return Err(wrong_type(&path, "an array of telemetry objects", node));
            };
            let mut points = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = path.index(i);
                let Node::Object(members) = item else {
                    return Err(wrong_type(&path, "a JSON object", item));
                };
                let members = take_gateway_metadata(members, &path)?;
                self.telemetry_object(&members, &path, now_ms, &mut points)?;
            }
            result.push((device.clone(), points));
        }
        Ok(result)
    }

    /// Gateway attributes (`v1/gateway/attributes`): `{"Device A":{"k":v,...}, ...}`.
    pub fn gateway_attributes(
        &self,
        body: &[u8],
    ) -> Result<Vec<(String, KeyValues)>, PayloadError> {
        let root = parse_document(body, "a JSON object of device names and attributes")?;
        let Node::Object(devices) = &root else {
            return Err(wrong_type(
                &Path::root(),
                "a JSON object of device names and attribute objects",
                &root,
            ));
        };
        if devices.is_empty() {
            return Err(PayloadError::NoDevices);
        }
        let mut result = Vec::with_capacity(devices.len());
        for (device, node) in devices {
            let path = Path::root().key(device);
            check_device_name(device, &path)?;
            // As for telemetry, ThingsBoard skips such a device; we refuse.
            let Node::Object(members) = node else {
                return Err(wrong_type(&path, "a JSON object of attributes", node));
            };
            result.push((device.clone(), self.key_values(members, &path)?));
        }
        Ok(result)
    }

    fn telemetry_object(
        &self,
        members: &[(String, Node)],
        path: &Path,
        now_ms: i64,
        out: &mut Vec<Point>,
    ) -> Result<(), PayloadError> {
        let (ts, kvs) = match (member(members, "ts"), member(members, "values")) {
            (Some(ts), Some(values)) => {
                let ts = timestamp(ts, &path.key("ts"))?;
                let values_path = path.key("values");
                let Node::Object(values) = values else {
                    return Err(wrong_type(
                        &values_path,
                        "a JSON object of telemetry keys and values",
                        values,
                    ));
                };
                (ts, self.key_values(values, &values_path)?)
            }
            _ => (now_ms, self.key_values(members, path)?),
        };
        out.extend(kvs.into_iter().map(|(key, value)| Point { ts, key, value }));
        Ok(())
    }

    /// ThingsBoard's `parseProtoValues`, then `KvUtils.validate` on the keys.
    fn key_values(
        &self,
        members: &[(String, Node)],
        path: &Path,
    ) -> Result<KeyValues, PayloadError> {
        let mut result = Vec::with_capacity(members.len());
        for (key, node) in members {
            let value = match node {
                // ThingsBoard ignores a null value silently: `parseProtoValues` skips
                // `JsonNull`, and nothing is stored for that key. We do the same, before
                // the key is checked, as ThingsBoard checks keys only of what it stores.
                Node::Null => continue,
                Node::Bool(b) => Value::Bool(*b),
                Node::Number(raw) => self.number(raw, || path.key(key))?,
                Node::String(s) => self.string(s, || path.key(key))?,
                Node::Array(_) | Node::Object(_) => Value::Json(to_serde(node, &path.key(key))?),
            };
            check_key(key, path)?;
            result.push((key.clone(), value));
        }
        Ok(result)
    }

    /// A JSON number, by ThingsBoard's `buildNumericKeyValueProto`.
    fn number(&self, raw: &str, path: impl Fn() -> Path) -> Result<Value, PayloadError> {
        let bad = |reason| PayloadError::BadNumber {
            path: path().0,
            number: preview(raw),
            reason,
        };
        match classify_number(raw).map_err(bad)? {
            Numeric::Long(n) => Ok(Value::Long(n)),
            Numeric::Double(d) => Ok(Value::Double(d)),
            Numeric::Exact { decimal, reason } => {
                if !self.type_cast {
                    return Err(bad(reason));
                }
                if decimal.plain_len() > MAX_EXACT_NUMBER_LEN {
                    return Err(bad(EXACT_TOO_LONG));
                }
                Ok(Value::String(decimal.plain()))
            }
        }
    }

    /// A JSON string: the length limit, then the type cast of numeric-looking strings.
    fn string(&self, s: &str, path: impl Fn() -> Path) -> Result<Value, PayloadError> {
        if self.max_string_value_len > 0 {
            let len = s.encode_utf16().count();
            if len > self.max_string_value_len {
                return Err(PayloadError::StringTooLong {
                    path: path().0,
                    len,
                    max: self.max_string_value_len,
                });
            }
        }
        if self.type_cast && is_parsable(s) {
            // ThingsBoard keeps the string when the conversion fails.
            if let Ok(value) = self.number(s, &path) {
                return Ok(value);
            }
        }
        Ok(Value::String(s.to_owned()))
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions::THINGSBOARD
    }
}

/// Telemetry with ThingsBoard's default settings; see [`ParseOptions::telemetry`].
pub fn parse_telemetry(body: &[u8], now_ms: i64) -> Result<Vec<Point>, PayloadError> {
    ParseOptions::THINGSBOARD.telemetry(body, now_ms)
}

/// Client attributes with ThingsBoard's default settings; see [`ParseOptions::attributes`].
pub fn parse_attributes(body: &[u8]) -> Result<KeyValues, PayloadError> {
    ParseOptions::THINGSBOARD.attributes(body)
}

/// Gateway telemetry with ThingsBoard's default settings; see
/// [`ParseOptions::gateway_telemetry`].
pub fn parse_gateway_telemetry(
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<(String, Vec<Point>)>, PayloadError> {
    ParseOptions::THINGSBOARD.gateway_telemetry(body, now_ms)
}

/// Gateway attributes with ThingsBoard's default settings; see
/// [`ParseOptions::gateway_attributes`].
pub fn parse_gateway_attributes(body: &[u8]) -> Result<Vec<(String, KeyValues)>, PayloadError> {
    ParseOptions::THINGSBOARD.gateway_attributes(body)
}

/// An attribute request, as ThingsBoard's `JsonMqttAdaptor` reads it: the body must be a
/// JSON object (`{}` asks for everything); `clientKeys` and `sharedKeys`, each optional,
/// hold comma-separated names. Like Gson's `getAsString`, a number, a boolean or a
/// one-element array of those stands for its text.
pub fn parse_attribute_request(body: &[u8]) -> Result<AttributeRequest, PayloadError> {
    const EXPECTED: &str = "a JSON object such as {\"clientKeys\":\"a,b\",\"sharedKeys\":\"c\"}";
    let root = parse_document(body, EXPECTED)?;
    let Node::Object(members) = &root else {
        return Err(wrong_type(&Path::root(), EXPECTED, &root));
    };
    Ok(AttributeRequest {
        client_keys: key_names(members, "clientKeys")?,
        shared_keys: key_names(members, "sharedKeys")?,
    })
}

fn key_names(members: &[(String, Node)], field: &str) -> Result<Option<Vec<String>>, PayloadError> {
    let Some(node) = member(members, field) else {
        return Ok(None);
    };
    let text = match node {
        Node::Array(items) if items.len() == 1 => scalar_text(&items[0]),
        other => scalar_text(other),
    };
    let Some(text) = text else {
        return Err(wrong_type(
            &Path::root().key(field),
            "a string of comma-separated attribute names",
            node,
        ));
    };
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(java_trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(Some(names))
}

fn scalar_text(node: &Node) -> Option<&str> {
    match node {
        Node::String(s) => Some(s),
        Node::Number(raw) => Some(raw),
        Node::Bool(true) => Some("true"),
        Node::Bool(false) => Some("false"),
        _ => None,
    }
}

/// Java's `String.trim()`: strips characters up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn member<'a>(members: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// ThingsBoard's `KvUtils.validate`: not blank (Java's `Character.isWhitespace`), at most
/// [`MAX_KEY_LEN`] UTF-16 code units.
fn check_key(key: &str, parent: &Path) -> Result<(), PayloadError> {
    if key.chars().all(java_is_whitespace) {
        return Err(PayloadError::BlankKey {
            path: parent.key(key).0,
        });
    }
    let len = key.encode_utf16().count();
    if len > MAX_KEY_LEN {
        return Err(PayloadError::KeyTooLong {
            path: parent.key(key).0,
            len,
        });
    }
    Ok(())
}

/// Java's `Character.isWhitespace`: Unicode space separators other than the no-break
/// ones, line and paragraph separators, and the controls U+0009–U+000D, U+001C–U+001F.
fn java_is_whitespace(c: char) -> bool {
    matches!(c, '\u{1C}'..='\u{1F}')
        || (c.is_whitespace() && !matches!(c, '\u{85}' | '\u{A0}' | '\u{2007}' | '\u{202F}'))
}

/// ThingsBoard refuses an empty device name (`AbstractGatewaySessionHandler.
/// checkDeviceName`), and its device validator a blank one (Java's `trim()`).
fn check_device_name(name: &str, path: &Path) -> Result<(), PayloadError> {
    if java_trim(name).is_empty() {
        return Err(PayloadError::BlankDeviceName {
            path: path.0.clone(),
        });
    }
    Ok(())
}

/// ThingsBoard's `convertToGatewayTelemetry` removes `metadata` from each element before
/// reading it, and refuses one that is not an object with `connector`, `receivedTs` and
/// `publishedTs`.
fn take_gateway_metadata<'a>(
    members: &'a [(String, Node)],
    path: &Path,
) -> Result<Cow<'a, [(String, Node)]>, PayloadError> {
    let Some(metadata) = member(members, "metadata") else {
        return Ok(Cow::Borrowed(members));
    };
    let metadata_path = path.key("metadata");
    let Node::Object(fields) = metadata else {
        return Err(wrong_type(
            &metadata_path,
            "a JSON object with connector, receivedTs and publishedTs",
            metadata,
        ));
    };
    let connector = member(fields, "connector");
    if connector.and_then(scalar_text).is_none() {
        return Err(wrong_type(
            &metadata_path.key("connector"),
            "the connector's name",
            connector.unwrap_or(&Node::Null),
        ));
    }
    for field in ["receivedTs", "publishedTs"] {
        timestamp(
            member(fields, field).unwrap_or(&Node::Null),
            &metadata_path.key(field),
        )?;
    }
    Ok(Cow::Owned(
        members
            .iter()
            .filter(|(k, _)| k != "metadata")
            .cloned()
            .collect(),
    ))
}

/// A `ts`. ThingsBoard reads it with Gson's `getAsLong()`, which also takes a string of
/// digits (`"1451649600512"`) and an integral number written with a fraction or an
/// exponent (`1.4516496005E12`); so do we. Gson silently truncates `1.5` and wraps numbers
/// beyond 64 bits; we refuse both, and everything else that is not a whole number.
fn timestamp(node: &Node, path: &Path) -> Result<i64, PayloadError> {
    let ts = match node {
        Node::Number(raw) => Decimal::parse(raw).ok().and_then(|d| d.to_i64()),
        // Java's `Long.parseLong`: an optional sign and ASCII digits, as Rust's parse.
        Node::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    ts.ok_or_else(|| PayloadError::BadTimestamp {
        path: path.0.clone(),
        found: describe(node),
    })
}

fn wrong_type(path: &Path, expected: &'static str, found: &Node) -> PayloadError {
    PayloadError::WrongType {
        path: path.0.clone(),
        expected,
        found: describe(found),
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Null => "null".to_owned(),
        Node::Bool(b) => b.to_string(),
        Node::Number(raw) => format!("the number {}", preview(raw)),
        Node::String(s) => format!("the string {}", quote(s)),
        Node::Array(_) => "an array".to_owned(),
        Node::Object(_) => "an object".to_owned(),
    }
}

const PREVIEW_CHARS: usize = 40;

/// At most [`PREVIEW_CHARS`] characters of `s`, with an ellipsis when cut.
fn preview(s: &str) -> String {
    match s.char_indices().nth(PREVIEW_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// `s`, shortened, in JSON quotes.
fn quote(s: &str) -> String {
    serde_json::Value::String(preview(s)).to_string()
}

/// Where in the payload: a JSON path such as `$["Device A"][0]["values"]["temp"]`.
#[derive(Clone, Debug)]
struct Path(String);

impl Path {
    fn root() -> Path {
        Path("$".to_owned())
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    fn key(&self, key: &str) -> Path {
        Path(format!("{}[{}]", self.0, quote(key)))
    }
}

// ---------------------------------------------------------------------------------------
// Numbers, by ThingsBoard's rules, which are Java's `BigDecimal`'s.

enum Numeric {
    Long(i64),
    Double(f64),
    /// Fits neither exactly: kept as its decimal string when type cast is on.
    Exact {
        decimal: Decimal,
        reason: &'static str,
    },
}

/// ThingsBoard's `buildNumericKeyValueProto`: a number that is integral (after stripping
/// trailing zeros) and not written as a plain decimal fraction (`1.0` is a double, `1e3`
/// and `1.5e3` are longs) becomes a `Long` if it fits; otherwise, a number with at most 16
/// digits after the point (its `BigDecimal` scale) becomes a `Double`. The rest is kept
/// exact: an integer beyond 64 bits, or a fraction with more than 16 decimals.
fn classify_number(raw: &str) -> Result<Numeric, &'static str> {
    let decimal = Decimal::parse(raw)?;
    let simple_double = raw.contains('.') && !raw.contains(['e', 'E']);
    if decimal.stripped_scale() <= 0 && !simple_double {
        return Ok(match decimal.to_i64() {
            Some(n) => Numeric::Long(n),
            None => Numeric::Exact {
                decimal,
                reason: "it is an integer beyond the 64-bit range",
            },
        });
    }
    if decimal.scale <= 16 {
        let d: f64 = raw.parse().map_err(|_| "it is not a number")?;
        if !d.is_finite() {
            return Err("it is too large for a 64-bit floating-point number");
        }
        // BigDecimal has no negative zero.
        return Ok(Numeric::Double(if d == 0.0 { 0.0 } else { d }));
    }
    Ok(Numeric::Exact {
        decimal,
        reason: "it has more than 16 digits after the decimal point",
    })
}

/// Commons Lang's `NumberUtils.isParsable`, which decides ThingsBoard's type cast: an
/// optional `-`, digits with at most one `.`, not ending in `.`. Java's `isDigit` also
/// takes non-ASCII digits; we take ASCII ones only.
fn is_parsable(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    !body.is_empty()
        && !body.ends_with('.')
        && body.bytes().filter(|b| *b == b'.').count() <= 1
        && body.bytes().all(|b| b == b'.' || b.is_ascii_digit())
}

/// A decimal number as `BigDecimal` holds it: `digits × 10^-scale`.
struct Decimal {
    negative: bool,
    /// The unscaled value's digits, without leading zeros; empty for zero.
    digits: String,
    scale: i64,
}

impl Decimal {
    /// JSON's number grammar, and `isParsable`'s (which also allows `.5` and `007`).
    fn parse(raw: &str) -> Result<Decimal, &'static str> {
        const NOT_A_NUMBER: &str = "it is not a number";
        let (negative, rest) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return Err(NOT_A_NUMBER);
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) {
                    return Err(NOT_A_NUMBER);
                }
                // BigDecimal's scale is a 32-bit int.
                e.parse::<i32>()
                    .map_err(|_| "its exponent is out of range")?
                    .into()
            }
        };
        let scale = frac.len() as i64 - exponent;
        if i32::try_from(scale).is_err() {
            return Err("its exponent is out of range");
        }
        let digits = format!("{int}{frac}").trim_start_matches('0').to_owned();
        Ok(Decimal {
            negative,
            digits,
            scale,
        })
    }

    /// The scale after `stripTrailingZeros()`; zero's is 0.
    fn stripped_scale(&self) -> i64 {
        if self.digits.is_empty() {
            return 0;
        }
        let zeros = self.digits.len() - self.digits.trim_end_matches('0').len();
        self.scale - zeros as i64
    }

    /// `longValueExact()`: the value if it is integral and fits 64 bits.
    fn to_i64(&self) -> Option<i64> {
        let stripped = self.stripped_scale();
        if stripped > 0 {
            return None;
        }
        let significant = self.digits.trim_end_matches('0');
        if significant.is_empty() {
            return Some(0);
        }
        let zeros = usize::try_from(-stripped).ok()?;
        if significant.len() + zeros > 19 {
            return None;
        }
        let magnitude = significant.parse::<i128>().ok()? * 10i128.pow(zeros as u32);
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    /// The length of [`Decimal::plain`], computed without building it.
    fn plain_len(&self) -> usize {
        let digits = self.digits.len().max(1);
        let sign = usize::from(self.negative && !self.digits.is_empty());
        let scale = usize::try_from(self.scale.unsigned_abs()).unwrap_or(usize::MAX);
        sign + if self.scale <= 0 {
            digits.saturating_add(scale)
        } else {
            digits.max(scale.saturating_add(1)).saturating_add(1)
        }
    }

    /// `toPlainString()`: the exact value without an exponent.
    fn plain(&self) -> String {
        let digits = if self.digits.is_empty() {
            "0"
        } else {
            &self.digits
        };
        let mut out = String::with_capacity(self.plain_len());
        if self.negative && !self.digits.is_empty() {
            out.push('-');
        }
        if self.scale <= 0 {
            out.push_str(digits);
            if !self.digits.is_empty() {
                out.extend(std::iter::repeat_n('0', self.scale.unsigned_abs() as usize));
            }
        } else {
            let scale = self.scale as usize;
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
        out
    }
}

/// Java's `Double.toString`: plain notation with at least one decimal for magnitudes in
/// [10^-3, 10^7), otherwise `d.dddE±n`; the shortest digits that identify the double.
fn java_double_to_string(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let sign = if d < 0.0 { "-" } else { "" };
    let magnitude = d.abs();
    // Rust's `{:e}` gives the shortest digits that identify the double: "1.2345e3",
    // "1e7", "5e-324". Where one digit is enough, Java picks among one- and two-digit
    // decimals the one closest to the exact value: `4.9E-324` where Rust says `5e-324`.
    let mut scientific = format!("{magnitude:e}");
    if !scientific.contains('.') {
        let two_digits = format!("{magnitude:.1e}");
        if two_digits.parse::<f64>() == Ok(magnitude) {
            scientific = two_digits.replacen(".0e", "e", 1);
        }
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (1e-3..1e7).contains(&magnitude) {
        let (int, frac) = if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() > int_len {
                (digits[..int_len].to_owned(), digits[int_len..].to_owned())
            } else {
                (format!("{digits:0<int_len$}"), "0".to_owned())
            }
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            ("0".to_owned(), format!("{zeros}{digits}"))
        };
        format!("{sign}{int}.{frac}")
    } else {
        let frac = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{frac}E{exponent}", &digits[..1])
    }
}

// ---------------------------------------------------------------------------------------
// Reading JSON. serde_json checks the syntax (its messages and positions are good), then a
// small reader builds a tree that keeps what serde_json's `Value` would lose here: the order
// of keys, and each number's exact text, which ThingsBoard's rules depend on.
//
// ThingsBoard reads payloads with Gson's `JsonParser`, which is lenient: `{temperature:25}`
// (what its own docs' `mosquitto_pub -m "{"temperature":25}"` sends once the shell ate the
// quotes), single quotes, comments and the like are accepted. Strict JSON stays the fast
// path; only a document serde_json refuses is read again by the same reader in Gson's
// lenient mode (`Reader::lenient`). When that fails too, the strict error is reported, as
// it says best what is wrong with what was meant to be JSON.

/// A JSON value with members in document order and numbers as written.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// A repeated key keeps its first position and its last value, as Gson's `JsonObject`.
    Object(Vec<(String, Node)>),
}

fn parse_document(body: &[u8], expected: &'static str) -> Result<Node, PayloadError> {
    // ThingsBoard decodes invalid UTF-8 with replacement characters; we refuse it.
    let text = std::str::from_utf8(body).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = line_column(&body[..offset]);
        PayloadError::InvalidUtf8 {
            offset,
            line,
            column,
        }
    })?;
    if text.trim_matches(is_json_whitespace).is_empty() {
        return Err(PayloadError::Empty { expected });
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => Reader::strict(text).document(),
        Err(strict) => Reader::lenient(text)
            .document()
            .map_err(|lenient| further(&strict, lenient)),
    }
}

/// Of the strict and the lenient reading's errors, the one that got further into the
/// document: `{temperature:}` is wrong at its `}`, not at its unquoted name. A document
/// cut short is that for both readings: serde_json's message says so best.
fn further(strict: &serde_json::Error, lenient: PayloadError) -> PayloadError {
    let lenient_at = match &lenient {
        PayloadError::Json { line, column, .. } => (*line, *column),
        _ => (0, 0),
    };
    if !strict.is_eof() && lenient_at > (strict.line(), strict.column()) {
        lenient
    } else {
        json_error(strict)
    }
}

fn json_error(e: &serde_json::Error) -> PayloadError {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    PayloadError::Json {
        message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
        line: e.line(),
        column: e.column(),
    }
}

/// Any JSON document (RPC calls and answers, claiming requests), read as ThingsBoard's Gson
/// reads it: strict JSON, else its lenient forms (see the section's comment).
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, PayloadError> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(strict) => {
            let Ok(text) = std::str::from_utf8(body) else {
                return Err(json_error(&strict));
            };
            match Reader::lenient(text).document() {
                Ok(node) => to_serde(&node, &Path::root()),
                Err(lenient) => Err(further(&strict, lenient)),
            }
        }
    }
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// 1-based line and column (in bytes) of the end of `before`.
fn line_column(before: &[u8]) -> (usize, usize) {
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (line, before.len() - line_start + 1)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// Gson's lenient mode (`JsonReader.setStrictness(LENIENT)`, which `JsonParser` sets):
    /// unquoted and single-quoted names and strings, `=` or `=>` for `:`, `;` for `,`,
    /// `//`, `#` and `/* */` comments, nulls for missing array elements (`[1,,2]`),
    /// keywords in any case, control characters inside strings, and the `)]}'` prefix.
    lenient: bool,
}

impl<'a> Reader<'a> {
    fn strict(text: &'a str) -> Self {
        Reader {
            text,
            pos: 0,
            lenient: false,
        }
    }

    fn lenient(text: &'a str) -> Self {
        Reader {
            text,
            pos: 0,
            lenient: true,
        }
    }

    fn document(mut self) -> Result<Node, PayloadError> {
        if self.lenient && self.text.starts_with(")]}'\n") {
            // Gson's `consumeNonExecutePrefix`.
            self.pos = 5;
        }
        self.skip_whitespace();
        let node = self.value(0)?;
        self.skip_whitespace();
        if self.pos != self.text.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(node)
    }

    fn error(&self, message: &str) -> PayloadError {
        // At the end, the last character is where it went wrong (as serde_json says).
        let at = match self.peek() {
            None => self.pos.saturating_sub(1),
            Some(_) => self.pos,
        };
        let (line, column) = line_column(&self.text.as_bytes()[..at]);
        PayloadError::Json {
            message: message.to_owned(),
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
            if !self.lenient || !self.skip_comment() {
                return;
            }
        }
    }

    /// Skips one comment at the reading position, if there is one (lenient only). An
    /// unterminated `/*` is not a comment: Gson refuses it, and so does what follows.
    fn skip_comment(&mut self) -> bool {
        let rest = &self.text[self.pos..];
        let line_comment = rest.starts_with("//") || rest.starts_with('#');
        if line_comment {
            self.pos += rest.find('\n').map_or(rest.len(), |i| i + 1);
            return true;
        }
        if let Some(body) = rest.strip_prefix("/*")
            && let Some(end) = body.find("*/")
        {
            self.pos += 2 + end + 2;
            return true;
        }
        false
    }

    /// `:` between a name and its value; Gson's lenient mode also takes `=` and `=>`.
    fn name_separator(&mut self) -> Result<(), PayloadError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => self.pos += 1,
            Some(b'=') if self.lenient => {
                self.pos += 1;
                if self.peek() == Some(b'>') {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("expected `:`")),
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Node, PayloadError> {
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(self.error(&format!(
                "arrays and objects nest more than {MAX_DEPTH} levels deep"
            ))),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Node::String),
            Some(b'\'') if self.lenient => self.string().map(Node::String),
            _ if self.lenient => self.unquoted_value(),
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected value")),
        }
    }

    /// Gson's literal characters: everything but structure, separators and whitespace.
    fn is_literal(b: u8) -> bool {
        !matches!(
            b,
            b'/' | b'\\'
                | b';'
                | b'#'
                | b'='
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b':'
                | b','
                | b' '
                | b'\t'
                | b'\x0c'
                | b'\r'
                | b'\n'
        )
    }

    /// A run of literal characters (lenient only), empty when there is none.
    fn unquoted(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if Self::is_literal(b)) {
            self.pos += 1;
        }
        // Stops only at ASCII bytes, so both ends are character boundaries.
        &self.text[start..self.pos]
    }

    /// An unquoted value, as Gson's `doPeek` reads it: a keyword in any case, a JSON
    /// number, or else a string (`on`, `NaN`, `007`, `25C`).
    fn unquoted_value(&mut self) -> Result<Node, PayloadError> {
        let word = self.unquoted();
        if word.is_empty() {
            return Err(self.error(match self.peek() {
                None => "EOF while parsing a value",
                Some(_) => "expected value",
            }));
        }
        let keyword = |k: &str| word.eq_ignore_ascii_case(k);
        Ok(if keyword("true") {
            Node::Bool(true)
        } else if keyword("false") {
            Node::Bool(false)
        } else if keyword("null") {
            Node::Null
        } else if is_json_number(word) {
            Node::Number(word.to_owned())
        } else {
            Node::String(word.to_owned())
        })
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Node, PayloadError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.error("expected value"));
        }
        self.pos += word.len();
        Ok(node)
    }

    fn object(&mut self, depth: usize) -> Result<Node, PayloadError> {
        self.pos += 1;
        let mut members: Vec<(String, Node)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node::Object(members));
        }
        loop {
            self.skip_whitespace();
            let key = match self.peek() {
                Some(b'"') => self.string()?,
                Some(b'\'') if self.lenient => self.string()?,
                _ if self.lenient => match self.unquoted() {
                    "" => return Err(self.error("key must be a string")),
                    name => name.to_owned(),
                },
                _ => return Err(self.error("key must be a string")),
            };
            self.name_separator()?;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            match index.entry(key) {
                Entry::Occupied(at) => members[*at.get()].1 = value,
                Entry::Vacant(slot) => {
                    members.push((slot.key().clone(), value));
                    slot.insert(members.len() - 1);
                }
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b';') if self.lenient => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Object(members));
                }
                None => return Err(self.error("EOF while parsing an object")),
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, PayloadError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node::Array(items));
        }
        loop {
            self.skip_whitespace();
            // Gson, lenient: a missing element is null (`[1,,2]`, `[1,]`, `[,]`).
            let missing = matches!(self.peek(), Some(b',' | b';'))
                || (!items.is_empty() && self.peek() == Some(b']'));
            items.push(if self.lenient && missing {
                Node::Null
            } else {
                self.value(depth + 1)?
            });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b';') if self.lenient => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Array(items));
                }
                None => return Err(self.error("EOF while parsing a list")),
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// A string in the quotes at the reading position (`'` only when lenient).
    fn string(&mut self) -> Result<String, PayloadError> {
        let quote = self.text.as_bytes()[self.pos];
        self.pos += 1;
        let mut out = String::new();
        // Gson takes control characters inside strings as they are.
        let lowest = if self.lenient { 0 } else { 0x20 };
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != quote && b != b'\\' && b >= lowest) {
                self.pos += 1;
            }
            // Stops only at ASCII bytes, so both ends are character boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b) if b == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.error("control character found while parsing a string")),
                None => return Err(self.error("EOF while parsing a string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, PayloadError> {
        let Some(b) = self.peek() else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\'' if self.lenient => '\'',
            b'\n' if self.lenient => '\n',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !self.text[self.pos..].starts_with("\\u") {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("lone trailing surrogate in hex escape"));
                    }
                    other => u32::from(other),
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?
            }
            _ => return Err(self.error("invalid escape")),
        })
    }

    fn hex4(&mut self) -> Result<u16, PayloadError> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid escape"))?;
        let unit = u16::from_str_radix(hex, 16).map_err(|_| self.error("invalid escape"))?;
        self.pos += 4;
        Ok(unit)
    }

    fn number(&mut self) -> Result<Node, PayloadError> {
        let start = self.pos;
        let digits = |r: &mut Self| {
            let from = r.pos;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.pos += 1;
            }
            r.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err(self.error("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        Ok(Node::Number(self.text[start..self.pos].to_owned()))
    }
}

/// Whether `s` is a number in JSON's grammar (which Gson's `peekNumber` follows).
fn is_json_number(s: &str) -> bool {
    let mut r = Reader::strict(s);
    matches!(s.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
        && r.number().is_ok()
        && r.pos == s.len()
}

/// A nested object or array as serde_json's `Value`, for [`Value::Json`].
fn to_serde(node: &Node, path: &Path) -> Result<serde_json::Value, PayloadError> {
    Ok(match node {
        Node::Null => serde_json::Value::Null,
        Node::Bool(b) => serde_json::Value::Bool(*b),
        Node::String(s) => serde_json::Value::String(s.clone()),
        Node::Number(raw) => {
            let number = if raw.contains(['.', 'e', 'E']) {
                None
            } else if let Ok(n) = raw.parse::<i64>() {
                Some(serde_json::Number::from(n))
            } else if let Ok(n) = raw.parse::<u64>() {
                Some(serde_json::Number::from(n))
            } else {
                None
            };
            let number = match number {
                Some(n) => n,
                None => raw
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .ok_or_else(|| PayloadError::BadNumber {
                        path: path.0.clone(),
                        number: preview(raw),
                        reason: "it is too large for a 64-bit floating-point number",
                    })?,
            };
            serde_json::Value::Number(number)
        }
        Node::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_serde(item, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_serde(v, &path.key(k))?)))
                .collect::<Result<_, PayloadError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn telemetry(body: &str) -> Vec<Point> {
        parse_telemetry(body.as_bytes(), NOW).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn telemetry_err(body: &str) -> String {
        match parse_telemetry(body.as_bytes(), NOW) {
            Ok(points) => panic!("{body} was accepted: {points:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn point(ts: i64, key: &str, value: Value) -> Point {
        Point {
            ts,
            key: key.to_owned(),
            value,
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    /// The single value of `{"k": <json>}`.
    fn value_of(json: &str) -> Value {
        value_with(ParseOptions::THINGSBOARD, json).unwrap()
    }

    fn value_with(options: ParseOptions, json: &str) -> Result<Value, PayloadError> {
        let body = format!(r#"{{"k":{json}}}"#);
        let mut points = options.telemetry(body.as_bytes(), NOW)?;
        assert_eq!(points.len(), 1, "{json}");
        Ok(points.remove(0).value)
    }

    const NO_CAST: ParseOptions = ParseOptions {
        type_cast: false,
        max_string_value_len: 0,
    };

    // --- Accepted telemetry forms ------------------------------------------------------

    #[test]
    fn flat_object_is_stamped_now_in_the_given_order() {
        assert_eq!(
            telemetry(r#"{"temperature":25,"humidity":60.5,"door":"open"}"#),
            vec![
                point(NOW, "temperature", Value::Long(25)),
                point(NOW, "humidity", Value::Double(60.5)),
                point(NOW, "door", s("open")),
            ]
        );
        // Not sorted: the order given.
        let keys: Vec<_> = telemetry(r#"{"b":1,"a":2,"c":3}"#)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn array_of_objects() {
        assert_eq!(
            telemetry(r#"[{"key1":"value1"}, {"key2":true}]"#),
            vec![
                point(NOW, "key1", s("value1")),
                point(NOW, "key2", Value::Bool(true)),
            ]
        );
    }

    #[test]
    fn object_with_ts_and_values() {
        assert_eq!(
            telemetry(r#"{"ts":1451649600512, "values":{"key1":"value1", "key2":2}}"#),
            vec![
                point(1451649600512, "key1", s("value1")),
                point(1451649600512, "key2", Value::Long(2)),
            ]
        );
    }

    #[test]
    fn array_mixing_both_forms_keeps_order() {
        let body = r#"[
            {"ts":1000,"values":{"a":1,"b":2}},
            {"c":3},
            {"ts":999,"values":{"a":0}}
        ]"#;
        assert_eq!(
            telemetry(body),
            vec![
                point(1000, "a", Value::Long(1)),
                point(1000, "b", Value::Long(2)),
                point(NOW, "c", Value::Long(3)),
                point(999, "a", Value::Long(0)),
            ]
        );
    }

    #[test]
    fn the_documented_example_payload() {
        let body = r#"{
          "ts": 1451649600512,
          "values": {
            "stringKey": "value1",
            "booleanKey": true,
            "doubleKey": 42.0,
            "longKey": 73,
            "jsonKey": {
              "someNumber": 42,
              "someArray": [1, 2, 3],
              "someNestedObject": {"key": "value"}
            }
          }
        }"#;
        let ts = 1451649600512;
        assert_eq!(
            telemetry(body),
            vec![
                point(ts, "stringKey", s("value1")),
                point(ts, "booleanKey", Value::Bool(true)),
                point(ts, "doubleKey", Value::Double(42.0)),
                point(ts, "longKey", Value::Long(73)),
                point(
                    ts,
                    "jsonKey",
                    Value::Json(json!({
                        "someNumber": 42,
                        "someArray": [1, 2, 3],
                        "someNestedObject": {"key": "value"}
                    }))
                ),
            ]
        );
    }

    #[test]
    fn empty_object_and_array_carry_no_points() {
        assert!(telemetry("{}").is_empty());
        assert!(telemetry("[]").is_empty());
        assert!(telemetry(r#"{"ts":5,"values":{}}"#).is_empty());
    }

    #[test]
    fn ts_without_values_is_an_ordinary_key_as_in_thingsboard() {
        assert_eq!(
            telemetry(r#"{"ts":1451649600512,"temp":2}"#),
            vec![
                point(NOW, "ts", Value::Long(1451649600512)),
                point(NOW, "temp", Value::Long(2)),
            ]
        );
        assert_eq!(
            telemetry(r#"{"values":{"a":1}}"#),
            vec![point(NOW, "values", Value::Json(json!({"a":1})))]
        );
        // Any value is fine for an ordinary "ts" key.
        assert_eq!(
            telemetry(r#"{"ts":"soon"}"#),
            vec![point(NOW, "ts", s("soon"))]
        );
    }

    #[test]
    fn members_beside_ts_and_values_are_ignored_as_in_thingsboard() {
        assert_eq!(
            telemetry(r#"{"ts":7,"values":{"a":1},"extra":2}"#),
            vec![point(7, "a", Value::Long(1))]
        );
    }

    #[test]
    fn ts_forms_gson_reads_as_a_long() {
        assert_eq!(
            telemetry(r#"{"ts":"1451649600512","values":{"a":1}}"#)[0].ts,
            1451649600512
        );
        assert_eq!(
            telemetry(r#"{"ts":1.451649600512E12,"values":{"a":1}}"#)[0].ts,
            1451649600512
        );
        assert_eq!(telemetry(r#"{"ts":1000.0,"values":{"a":1}}"#)[0].ts, 1000);
        assert_eq!(telemetry(r#"{"ts":-5,"values":{"a":1}}"#)[0].ts, -5);
        assert_eq!(
            telemetry(r#"{"ts":-9223372036854775808,"values":{"a":1}}"#)[0].ts,
            i64::MIN
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first_place_and_the_last_value() {
        assert_eq!(
            telemetry(r#"{"a":1,"b":2,"a":3}"#),
            vec![
                point(NOW, "a", Value::Long(3)),
                point(NOW, "b", Value::Long(2)),
            ]
        );
    }

    #[test]
    fn null_values_are_skipped_as_in_thingsboard() {
        assert_eq!(
            telemetry(r#"{"a":null,"b":1}"#),
            vec![point(NOW, "b", Value::Long(1))]
        );
        // Even under a key that would be refused, since nothing is stored for it.
        assert!(telemetry(r#"{"":null}"#).is_empty());
        assert_eq!(parse_attributes(br#"{"a":null}"#).unwrap(), vec![]);
        // Inside a JSON value, null stays.
        assert_eq!(value_of(r#"{"x":null}"#), Value::Json(json!({"x": null})));
    }

    // --- Value types ---------------------------------------------------------------------

    #[test]
    fn scalars() {
        assert_eq!(value_of("true"), Value::Bool(true));
        assert_eq!(value_of("false"), Value::Bool(false));
        assert_eq!(value_of(r#""hello""#), s("hello"));
        assert_eq!(value_of(r#""""#), s(""));
        assert_eq!(value_of(r#""a\"b\\c\u00e9\ud83d\ude00""#), s("a\"b\\cé😀"));
        assert_eq!(value_of("0"), Value::Long(0));
        assert_eq!(value_of("-0"), Value::Long(0));
        assert_eq!(value_of("73"), Value::Long(73));
        assert_eq!(value_of("-73"), Value::Long(-73));
        assert_eq!(value_of("9223372036854775807"), Value::Long(i64::MAX));
        assert_eq!(value_of("-9223372036854775808"), Value::Long(i64::MIN));
        assert_eq!(value_of("42.0"), Value::Double(42.0));
        assert_eq!(value_of("-0.5"), Value::Double(-0.5));
        assert_eq!(value_of("1e-3"), Value::Double(0.001));
        assert_eq!(value_of("2.5E-1"), Value::Double(0.25));
    }

    #[test]
    fn negative_zero_double_is_zero_as_bigdecimal_has_no_sign_for_zero() {
        let Value::Double(d) = value_of("-0.0") else {
            panic!("not a double")
        };
        assert!(d == 0.0 && d.is_sign_positive());
    }

    #[test]
    fn integral_numbers_with_an_exponent_are_longs_as_in_thingsboard() {
        assert_eq!(value_of("1e3"), Value::Long(1000));
        assert_eq!(value_of("1E+3"), Value::Long(1000));
        assert_eq!(value_of("1.5e3"), Value::Long(1500));
        assert_eq!(value_of("10e-1"), Value::Long(1));
        assert_eq!(value_of("0e5"), Value::Long(0));
        // A plain fraction stays a double even when integral.
        assert_eq!(value_of("100.0"), Value::Double(100.0));
    }

    #[test]
    fn numbers_beyond_long_and_double_become_exact_strings() {
        assert_eq!(value_of("9223372036854775808"), s("9223372036854775808"));
        assert_eq!(
            value_of("-123456789012345678901234567890"),
            s("-123456789012345678901234567890")
        );
        assert_eq!(value_of("1.5e20"), s("150000000000000000000"));
        // More than 16 decimals (BigDecimal scale > 16).
        assert_eq!(value_of("0.12345678901234567"), s("0.12345678901234567"));
        assert_eq!(value_of("1.5e-20"), s("0.000000000000000000015"));
        // 16 decimals is still a double.
        assert_eq!(
            value_of("0.1234567890123456"),
            Value::Double(0.1234567890123456)
        );
    }

    #[test]
    fn without_type_cast_such_numbers_are_refused() {
        let e = value_with(NO_CAST, "9223372036854775808").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"at $["k"]: the number 9223372036854775808 cannot be stored: it is an integer beyond the 64-bit range"#
        );
        let e = value_with(NO_CAST, "0.12345678901234567").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"at $["k"]: the number 0.12345678901234567 cannot be stored: it has more than 16 digits after the decimal point"#
        );
        assert_eq!(value_with(NO_CAST, "12").unwrap(), Value::Long(12));
    }

    #[test]
    fn absurd_numbers_are_refused() {
        assert!(EXACT_TOO_LONG.contains(&format!(" {MAX_EXACT_NUMBER_LEN} ")));
        let e = telemetry_err(r#"{"k":1e99999999}"#);
        assert_eq!(
            e,
            r#"at $["k"]: the number 1e99999999 cannot be stored: its exact decimal form would be longer than 1024 characters"#
        );
        let e = telemetry_err(r#"{"k":1e9999999999}"#);
        assert!(e.ends_with("its exponent is out of range"), "{e}");
        let huge = format!("{}.5", "9".repeat(400));
        let e = telemetry_err(&format!(r#"{{"k":{huge}}}"#));
        assert!(
            e.ends_with("it is too large for a 64-bit floating-point number"),
            "{e}"
        );
        assert!(
            e.contains("the number 9999999999999999999999999999999999999999…"),
            "{e}"
        );
    }

    #[test]
    fn numeric_strings_are_cast_as_in_thingsboard() {
        assert_eq!(value_of(r#""42""#), Value::Long(42));
        assert_eq!(value_of(r#""-42""#), Value::Long(-42));
        assert_eq!(value_of(r#""007""#), Value::Long(7));
        assert_eq!(value_of(r#""2.75""#), Value::Double(2.75));
        assert_eq!(value_of(r#"".5""#), Value::Double(0.5));
        assert_eq!(value_of(r#""-.5""#), Value::Double(-0.5));
        assert_eq!(
            value_of(r#""12345678901234567890""#),
            s("12345678901234567890")
        );
        // What NumberUtils.isParsable refuses stays a string.
        for kept in [
            "5.", "+5", "1e3", "1.2.3", "-", ".", "", " 5", "5 ", "0x1F", "NaN", "١",
        ] {
            let json = serde_json::Value::String(kept.to_owned()).to_string();
            assert_eq!(value_of(&json), s(kept), "{kept:?}");
        }
        assert_eq!(value_with(NO_CAST, r#""42""#).unwrap(), s("42"));
    }

    #[test]
    fn objects_and_arrays_are_json_values() {
        assert_eq!(value_of("[1,2,3]"), Value::Json(json!([1, 2, 3])));
        assert_eq!(value_of("[]"), Value::Json(json!([])));
        assert_eq!(value_of("{}"), Value::Json(json!({})));
        assert_eq!(
            value_of(r#"{"a":{"b":[true,"x",1.5,-2,18446744073709551615]}}"#),
            Value::Json(json!({"a":{"b":[true,"x",1.5,-2,18446744073709551615u64]}}))
        );
        let e = telemetry_err(r#"{"k":{"big":[1e400]}}"#);
        assert_eq!(
            e,
            r#"at $["k"]["big"][0]: the number 1e400 cannot be stored: it is too large for a 64-bit floating-point number"#
        );
    }

    #[test]
    fn string_length_limit_when_configured() {
        let options = ParseOptions {
            type_cast: true,
            max_string_value_len: 3,
        };
        assert_eq!(value_with(options, r#""abc""#).unwrap(), s("abc"));
        let e = value_with(options, r#""abcd""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"at $["k"]: the string is 4 characters long, at most 3 are allowed"#
        );
        // Counted in UTF-16 code units, as Java does: one emoji is two.
        assert!(value_with(options, r#""a😀""#).is_ok());
        assert!(value_with(options, r#""ab😀""#).is_err());
    }

    // --- Keys ------------------------------------------------------------------------------

    #[test]
    fn empty_and_blank_keys_are_refused() {
        assert_eq!(
            telemetry_err(r#"{"":1}"#),
            r#"at $[""]: a key must not be empty or only whitespace"#
        );
        assert_eq!(
            telemetry_err(r#"[{"a":1},{"ts":1,"values":{" \t":1}}]"#),
            r#"at $[1]["values"][" \t"]: a key must not be empty or only whitespace"#
        );
        // A no-break space is not whitespace to Java.
        assert_eq!(telemetry("{\"\u{a0}\":1}")[0].key, "\u{a0}");
    }

    #[test]
    fn keys_longer_than_255_are_refused() {
        let ok = "k".repeat(MAX_KEY_LEN);
        assert_eq!(telemetry(&format!(r#"{{"{ok}":1}}"#))[0].key, ok);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            telemetry_err(&format!(r#"{{"{long}":1}}"#)),
            format!(
                r#"at $["{}…"]: the key is 256 characters long, at most 255 are allowed"#,
                "k".repeat(40)
            )
        );
        // Java counts UTF-16 code units: 128 emoji are 256.
        let emoji = "😀".repeat(128);
        let e = parse_attributes(format!(r#"{{"{emoji}":1}}"#).as_bytes()).unwrap_err();
        assert!(
            matches!(e, PayloadError::KeyTooLong { len: 256, .. }),
            "{e}"
        );
    }

    // --- Malformed telemetry ---------------------------------------------------------------

    #[test]
    fn top_level_must_be_an_object_or_array() {
        for (body, found) in [
            ("42", "the number 42"),
            (r#""temp""#, r#"the string "temp""#),
            ("true", "true"),
            ("null", "null"),
        ] {
            assert_eq!(
                telemetry_err(body),
                format!("at $: expected a JSON object or array of telemetry, found {found}")
            );
        }
    }

    #[test]
    fn array_elements_must_be_objects() {
        assert_eq!(
            telemetry_err(r#"[{"a":1}, 5]"#),
            "at $[1]: expected a JSON object, found the number 5"
        );
        assert_eq!(
            telemetry_err(r#"[[{"a":1}]]"#),
            "at $[0]: expected a JSON object, found an array"
        );
    }

    #[test]
    fn values_must_be_an_object() {
        assert_eq!(
            telemetry_err(r#"{"ts":1,"values":[1,2]}"#),
            r#"at $["values"]: expected a JSON object of telemetry keys and values, found an array"#
        );
        assert_eq!(
            telemetry_err(r#"[{"a":1},{"ts":1,"values":"x"}]"#),
            r#"at $[1]["values"]: expected a JSON object of telemetry keys and values, found the string "x""#
        );
    }

    #[test]
    fn ts_must_be_a_whole_number() {
        let cases = [
            ("1.5", "the number 1.5"),
            (r#""soon""#, r#"the string "soon""#),
            (r#""1.5""#, r#"the string "1.5""#),
            ("true", "true"),
            ("null", "null"),
            ("[1]", "an array"),
            ("9223372036854775808", "the number 9223372036854775808"),
            ("1e30", "the number 1e30"),
        ];
        for (ts, found) in cases {
            assert_eq!(
                telemetry_err(&format!(r#"[{{"ts":{ts},"values":{{"a":1}}}}]"#)),
                format!(
                    r#"at $[0]["ts"]: expected a whole number of milliseconds since the Unix epoch that fits in 64 bits, found {found}"#
                )
            );
        }
    }

    #[test]
    fn invalid_json_reports_serde_json_position() {
        assert_eq!(
            telemetry_err(r#"{"a":}"#),
            "the payload is not valid JSON: expected value at line 1 column 6"
        );
        assert_eq!(
            telemetry_err("{\n  \"a\": 1,\n  \"b\" 2\n}"),
            "the payload is not valid JSON: expected `:` at line 3 column 7"
        );
        assert_eq!(
            telemetry_err(r#"{"a":1} x"#),
            "the payload is not valid JSON: trailing characters at line 1 column 9"
        );
        // What Gson's lenient mode refuses too gets serde_json's message.
        assert_eq!(
            telemetry_err("{temperature:25"),
            "the payload is not valid JSON: EOF while parsing an object at line 1 column 15"
        );
        assert!(matches!(
            parse_telemetry(br#"{"a":1"#, NOW),
            Err(PayloadError::Json { line: 1, .. })
        ));
    }

    #[test]
    fn gson_lenient_forms_are_read_as_thingsboard_reads_them() {
        // ThingsBoard's docs: `mosquitto_pub ... -m "{"temperature":25}"`, after the shell.
        assert_eq!(
            telemetry("{temperature:25}"),
            [point(NOW, "temperature", Value::Long(25))]
        );
        assert_eq!(
            telemetry("{ts:1000, values:{'temp':21.5, state:on, ok:TRUE, n:null}}"),
            [
                point(1000, "temp", Value::Double(21.5)),
                point(1000, "state", s("on")),
                point(1000, "ok", Value::Bool(true)),
            ]
        );
        // Unquoted words that are no JSON number are strings; type cast still applies.
        assert_eq!(
            telemetry("{a:25C, b:NaN, c:007, d:-0.5, e:.5, f:1e3, g:'x\\'y', h:\"q\"}"),
            [
                point(NOW, "a", s("25C")),
                point(NOW, "b", s("NaN")),
                point(NOW, "c", Value::Long(7)),
                point(NOW, "d", Value::Double(-0.5)),
                point(NOW, "e", Value::Double(0.5)),
                point(NOW, "f", Value::Long(1000)),
                point(NOW, "g", s("x'y")),
                point(NOW, "h", s("q")),
            ]
        );
        // `=`, `=>` and `;` as separators; comments; missing array elements are null.
        assert_eq!(
            parse_attributes(b"{a=1; b=>[1,,2,]; /* c */ c:'x' # d\n // e\n}").unwrap(),
            [
                ("a".to_owned(), Value::Long(1)),
                ("b".to_owned(), Value::Json(json!([1, null, 2, null]))),
                ("c".to_owned(), s("x")),
            ]
        );
        assert_eq!(
            parse_attribute_request(b"{clientKeys:'a,b', sharedKeys:c}").unwrap(),
            AttributeRequest {
                client_keys: Some(vec!["a".into(), "b".into()]),
                shared_keys: Some(vec!["c".into()]),
            }
        );
        assert_eq!(
            parse_gateway_telemetry(b"{'Device A':[{temp:1}]}", NOW).unwrap(),
            [(
                "Device A".to_owned(),
                vec![point(NOW, "temp", Value::Long(1))]
            )]
        );
        // Control characters inside strings, and the non-execute prefix.
        assert_eq!(telemetry("{a:'x\ny'}"), [point(NOW, "a", s("x\ny"))]);
        assert_eq!(telemetry(")]}'\n{a:1}"), [point(NOW, "a", Value::Long(1))]);
        // Any JSON document, for RPC payloads.
        assert_eq!(
            parse_json(b"{method:getCurrentTime, params:{}}").unwrap(),
            json!({"method": "getCurrentTime", "params": {}})
        );
        assert_eq!(parse_json(br#"{"a":[1]}"#).unwrap(), json!({"a": [1]}));
    }

    #[test]
    fn what_gson_refuses_even_leniently_is_refused_with_a_clear_error() {
        // The message of the reading that got further.
        for (body, message) in [
            ("{temperature:}", "expected value at line 1 column 14"),
            ("{temperature 25}", "expected `:` at line 1 column 14"),
            ("{a:1,}", "key must be a string at line 1 column 6"),
            ("{a:1} x", "trailing characters at line 1 column 7"),
            ("{:1}", "key must be a string at line 1 column 2"),
            ("{a:1 /* x}", "expected `,` or `}` at line 1 column 6"),
            ("{a:[1}", "expected `,` or `]` at line 1 column 6"),
            ("{a:1 b:2}", "expected `,` or `}` at line 1 column 6"),
            ("{a:'\\q'}", "invalid escape at line 1 column 7"),
            ("{'a':1", "EOF while parsing an object at line 1 column 6"),
            ("{a:'x}", "EOF while parsing a string at line 1 column 6"),
            (
                "{\n  \"a\": 1,\n  \"b\" 2\n}",
                "expected `:` at line 3 column 7",
            ),
            (
                r#"{"a":"\ud800"}"#,
                "lone leading surrogate in hex escape at line 1 column 13",
            ),
        ] {
            assert_eq!(
                telemetry_err(body),
                format!("the payload is not valid JSON: {message}"),
                "{body}"
            );
        }
        // A top-level word is a string to Gson: the wrong type, said so.
        assert_eq!(
            telemetry_err("hello"),
            "at $: expected a JSON object or array of telemetry, found the string \"hello\""
        );
        assert_eq!(
            parse_json(b"{method:").unwrap_err().to_string(),
            "the payload is not valid JSON: EOF while parsing a value at line 1 column 8"
        );
        let deep = format!("{{a:{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            parse_telemetry(deep.as_bytes(), NOW),
            Err(PayloadError::Json { .. })
        ));
    }

    #[test]
    fn lone_surrogates_are_refused() {
        let e = telemetry_err(r#"{"a":"\ud800"}"#);
        assert!(
            e.starts_with("the payload is not valid JSON: lone leading surrogate"),
            "{e}"
        );
        let e = telemetry_err(r#"{"a":"\udc00"}"#);
        assert!(
            e.starts_with("the payload is not valid JSON: lone trailing surrogate"),
            "{e}"
        );
    }

    #[test]
    fn nesting_is_limited() {
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let e = parse_telemetry(deep.as_bytes(), NOW).unwrap_err();
        assert!(matches!(e, PayloadError::Json { .. }), "{e}");
        let ok = format!(r#"{{"a":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(parse_telemetry(ok.as_bytes(), NOW).is_ok());
    }

    #[test]
    fn invalid_utf8_and_empty_bodies() {
        assert_eq!(
            parse_telemetry(b"{\"a\":\n\"\xff\"}", NOW)
                .unwrap_err()
                .to_string(),
            "the payload is not valid UTF-8: invalid byte at offset 7 (line 2, column 2)"
        );
        assert_eq!(
            telemetry_err(""),
            "the payload is empty: expected a JSON object or array of telemetry"
        );
        assert_eq!(
            telemetry_err(" \r\n"),
            "the payload is empty: expected a JSON object or array of telemetry"
        );
    }

    // --- Attributes --------------------------------------------------------------------------

    #[test]
    fn attributes_of_every_type_in_order() {
        let body = br#"{"attribute1":"value1","attribute2":true,"attribute3":42.0,
            "attribute4":73,"attribute5":{"someArray":[1,2,3]},"ts":5}"#;
        assert_eq!(
            parse_attributes(body).unwrap(),
            vec![
                ("attribute1".to_owned(), s("value1")),
                ("attribute2".to_owned(), Value::Bool(true)),
                ("attribute3".to_owned(), Value::Double(42.0)),
                ("attribute4".to_owned(), Value::Long(73)),
                (
                    "attribute5".to_owned(),
                    Value::Json(json!({"someArray":[1,2,3]}))
                ),
                ("ts".to_owned(), Value::Long(5)),
            ]
        );
    }

    #[test]
    fn attributes_must_be_an_object() {
        assert_eq!(
            parse_attributes(br#"[{"a":1}]"#).unwrap_err().to_string(),
            "at $: expected a JSON object of attributes, found an array"
        );
        assert_eq!(
            parse_attributes(b"7").unwrap_err().to_string(),
            "at $: expected a JSON object of attributes, found the number 7"
        );
        assert_eq!(
            parse_attributes(br#"{"a":1,"":2}"#)
                .unwrap_err()
                .to_string(),
            r#"at $[""]: a key must not be empty or only whitespace"#
        );
        assert_eq!(
            parse_attributes(b"").unwrap_err().to_string(),
            "the payload is empty: expected a JSON object of attributes"
        );
    }

    // --- Attribute requests ------------------------------------------------------------------

    #[test]
    fn attribute_requests() {
        let keys = |v: &[&str]| Some(v.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        assert_eq!(
            parse_attribute_request(
                br#"{"clientKeys":"attribute1,attribute2", "sharedKeys":"shared1,shared2"}"#
            )
            .unwrap(),
            AttributeRequest {
                client_keys: keys(&["attribute1", "attribute2"]),
                shared_keys: keys(&["shared1", "shared2"]),
            }
        );
        assert_eq!(
            parse_attribute_request(br#"{"sharedKeys":" b , a,,b ,"}"#).unwrap(),
            AttributeRequest {
                client_keys: None,
                shared_keys: keys(&["b", "a"]),
            }
        );
        assert_eq!(
            parse_attribute_request(b"{}").unwrap(),
            AttributeRequest::default()
        );
        assert_eq!(
            parse_attribute_request(br#"{"clientKeys":""}"#).unwrap(),
            AttributeRequest {
                client_keys: keys(&[]),
                shared_keys: None,
            }
        );
        // Gson's getAsString: numbers, booleans and one-element arrays stand for their text.
        assert_eq!(
            parse_attribute_request(br#"{"clientKeys":5,"sharedKeys":["x,y"]}"#).unwrap(),
            AttributeRequest {
                client_keys: keys(&["5"]),
                shared_keys: keys(&["x", "y"]),
            }
        );
    }

    #[test]
    fn malformed_attribute_requests() {
        let err = |body: &str| {
            parse_attribute_request(body.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"clientKeys":null}"#),
            r#"at $["clientKeys"]: expected a string of comma-separated attribute names, found null"#
        );
        assert_eq!(
            err(r#"{"sharedKeys":["a","b"]}"#),
            r#"at $["sharedKeys"]: expected a string of comma-separated attribute names, found an array"#
        );
        assert_eq!(
            err(r#""a,b""#),
            r#"at $: expected a JSON object such as {"clientKeys":"a,b","sharedKeys":"c"}, found the string "a,b""#
        );
        assert_eq!(
            err(""),
            r#"the payload is empty: expected a JSON object such as {"clientKeys":"a,b","sharedKeys":"c"}"#
        );
        assert!(err("{").starts_with("the payload is not valid JSON: EOF while parsing an object"));
    }

    // --- Gateway -----------------------------------------------------------------------------

    #[test]
    fn gateway_telemetry_per_device_in_order() {
        let body = br#"{
            "Device A": [{"ts":1483228800000,"values":{"temperature":42,"humidity":80}},
                         {"ts":1483228801000,"values":{"temperature":43,"humidity":82}}],
            "Device B": [{"temperature":1}, {"ts":5,"values":{"x":"y"},"metadata":{"connector":"MQTT","receivedTs":1,"publishedTs":2}}],
            "Device C": [{"a":1,"metadata":{"connector":"OPC-UA","receivedTs":"1","publishedTs":2}}],
            "Device D": []
        }"#;
        assert_eq!(
            parse_gateway_telemetry(body, NOW).unwrap(),
            vec![
                (
                    "Device A".to_owned(),
                    vec![
                        point(1483228800000, "temperature", Value::Long(42)),
                        point(1483228800000, "humidity", Value::Long(80)),
                        point(1483228801000, "temperature", Value::Long(43)),
                        point(1483228801000, "humidity", Value::Long(82)),
                    ]
                ),
                (
                    "Device B".to_owned(),
                    vec![
                        point(NOW, "temperature", Value::Long(1)),
                        point(5, "x", s("y")),
                    ]
                ),
                ("Device C".to_owned(), vec![point(NOW, "a", Value::Long(1))]),
                ("Device D".to_owned(), vec![]),
            ]
        );
    }

    #[test]
    fn malformed_gateway_telemetry() {
        let err = |body: &str| {
            parse_gateway_telemetry(body.as_bytes(), NOW)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"[{"a":1}]"#),
            "at $: expected a JSON object of device names and telemetry arrays, found an array"
        );
        assert_eq!(
            err("{}"),
            r#"the gateway payload names no device: expected {"Device name": ...}"#
        );
        assert_eq!(
            err(r#"{"A":[{"a":1}],"B":{"a":1}}"#),
            r#"at $["B"]: expected an array of telemetry objects, found an object"#
        );
        assert_eq!(
            err(r#"{"A":[{"a":1},3]}"#),
            r#"at $["A"][1]: expected a JSON object, found the number 3"#
        );
        assert_eq!(
            err(r#"{"A":[{"ts":"x","values":{}}]}"#),
            r#"at $["A"][0]["ts"]: expected a whole number of milliseconds since the Unix epoch that fits in 64 bits, found the string "x""#
        );
        assert_eq!(
            err(r#"{" ":[{"a":1}]}"#),
            r#"at $[" "]: a device name must not be empty or only whitespace"#
        );
        assert_eq!(
            err(r#"{"A":[{"a":1,"metadata":"m"}]}"#),
            r#"at $["A"][0]["metadata"]: expected a JSON object with connector, receivedTs and publishedTs, found the string "m""#
        );
        assert_eq!(
            err(r#"{"A":[{"a":1,"metadata":{"connector":"c","receivedTs":1}}]}"#),
            r#"at $["A"][0]["metadata"]["publishedTs"]: expected a whole number of milliseconds since the Unix epoch that fits in 64 bits, found null"#
        );
        assert_eq!(
            err(r#"{"A":[{"a":1,"metadata":{"receivedTs":1,"publishedTs":1}}]}"#),
            r#"at $["A"][0]["metadata"]["connector"]: expected the connector's name, found null"#
        );
    }

    #[test]
    fn gateway_attributes() {
        assert_eq!(
            parse_gateway_attributes(
                br#"{"Device A":{"attribute1":"value1","attribute2":42},"Device B":{}}"#
            )
            .unwrap(),
            vec![
                (
                    "Device A".to_owned(),
                    vec![
                        ("attribute1".to_owned(), s("value1")),
                        ("attribute2".to_owned(), Value::Long(42)),
                    ]
                ),
                ("Device B".to_owned(), vec![]),
            ]
        );
        let err = |body: &str| {
            parse_gateway_attributes(body.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"Device A":[{"a":1}]}"#),
            r#"at $["Device A"]: expected a JSON object of attributes, found an array"#
        );
        assert_eq!(
            err(r#"{"Device A":{"":1}}"#),
            r#"at $["Device A"][""]: a key must not be empty or only whitespace"#
        );
        assert_eq!(
            err("{}"),
            r#"the gateway payload names no device: expected {"Device name": ...}"#
        );
        assert_eq!(
            err(r#"{"":{"a":1}}"#),
            r#"at $[""]: a device name must not be empty or only whitespace"#
        );
    }

    // --- Value's forms -----------------------------------------------------------------------

    #[test]
    fn as_string_matches_java() {
        assert_eq!(Value::Long(-42).as_string(), "-42");
        assert_eq!(Value::Bool(true).as_string(), "true");
        assert_eq!(s("x y").as_string(), "x y");
        assert_eq!(
            Value::Json(json!({"b":[1,2],"a":"x"})).as_string(),
            r#"{"a":"x","b":[1,2]}"#
        );
        for (d, java) in [
            (42.0, "42.0"),
            (-0.5, "-0.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1234567.5, "1234567.5"),
            (9999999.0, "9999999.0"),
            (1e7, "1.0E7"),
            (1.5e7, "1.5E7"),
            (123456789.123, "1.23456789123E8"),
            (-1.25e-10, "-1.25E-10"),
            (1e21, "1.0E21"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (5e-324, "4.9E-324"),
            (1e-323, "9.9E-324"),
            (2e-323, "2.0E-323"),
            (3e23, "3.0E23"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(Value::Double(d).as_string(), java, "{d:e}");
        }
    }

    #[test]
    fn to_json_is_typed() {
        assert_eq!(Value::Bool(false).to_json(), json!(false));
        assert_eq!(Value::Long(7).to_json(), json!(7));
        assert_eq!(Value::Double(7.5).to_json(), json!(7.5));
        assert_eq!(Value::Double(f64::NAN).to_json(), json!(null));
        assert_eq!(s("7").to_json(), json!("7"));
        assert_eq!(Value::Json(json!([1])).to_json(), json!([1]));
        assert_eq!(Value::Json(json!([1])).data_type(), "JSON");
        assert_eq!(Value::Double(1.0).data_type(), "DOUBLE");
    }

    // --- Properties --------------------------------------------------------------------------

    #[derive(Clone, Debug)]
    enum Scalar {
        Bool(bool),
        Long(i64),
        Text(String),
    }

    fn scalar() -> impl Strategy<Value = Scalar> {
        prop_oneof![
            any::<bool>().prop_map(Scalar::Bool),
            any::<i64>().prop_map(Scalar::Long),
            // Never numeric-looking, so never cast.
            "[a-zA-Z _é😀\"\\\\/\n]{0,12}".prop_map(|t| Scalar::Text(format!("s{t}"))),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_ .é😀\"\\\\-]{0,20}[a-zA-Z0-9😀]"
    }

    fn object_text(members: &[(String, Scalar)]) -> String {
        let members: Vec<String> = members
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::Bool(b) => json!(b),
                    Scalar::Long(n) => json!(n),
                    Scalar::Text(t) => json!(t),
                };
                format!("{}:{v}", json!(k))
            })
            .collect();
        format!("{{{}}}", members.join(","))
    }

    fn expected(v: &Scalar) -> Value {
        match v {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Long(n) => Value::Long(*n),
            Scalar::Text(t) => Value::String(t.clone()),
        }
    }

    fn unique(members: Vec<(String, Scalar)>) -> Vec<(String, Scalar)> {
        let mut seen = std::collections::HashSet::new();
        members
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect()
    }

    /// Any JSON text, of any shape.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::String),
            "(ts|values|metadata|clientKeys|-?[0-9]{1,25}(\\.[0-9]{1,20})?)"
                .prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(
                    ("(ts|values|metadata|clientKeys|sharedKeys|connector|receivedTs|publishedTs|.{0,6})", inner),
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn run_all(body: &[u8]) {
        let _ = parse_telemetry(body, NOW);
        let _ = parse_attributes(body);
        let _ = parse_attribute_request(body);
        let _ = parse_gateway_telemetry(body, NOW);
        let _ = parse_gateway_attributes(body);
        let _ = NO_CAST.telemetry(body, NOW);
    }

    proptest! {
        #[test]
        fn any_flat_object_becomes_points_with_its_keys_in_order(
            members in prop::collection::vec((key(), scalar()), 0..12).prop_map(unique)
        ) {
            let body = object_text(&members);
            let points = parse_telemetry(body.as_bytes(), NOW).unwrap();
            prop_assert_eq!(points.len(), members.len());
            for (p, (k, v)) in points.iter().zip(&members) {
                prop_assert_eq!(p.ts, NOW);
                prop_assert_eq!(&p.key, k);
                prop_assert_eq!(&p.value, &expected(v));
            }
            let attributes = parse_attributes(body.as_bytes()).unwrap();
            let expected_attributes: Vec<(String, Value)> =
                members.iter().map(|(k, v)| (k.clone(), expected(v))).collect();
            prop_assert_eq!(attributes, expected_attributes);
        }

        #[test]
        fn timestamped_arrays_keep_every_point_in_order(
            batches in prop::collection::vec(
                (any::<i64>(), prop::collection::vec((key(), scalar()), 0..5).prop_map(unique)),
                0..6,
            )
        ) {
            let body = format!("[{}]", batches
                .iter()
                .map(|(ts, m)| format!(r#"{{"ts":{ts},"values":{}}}"#, object_text(m)))
                .collect::<Vec<_>>()
                .join(","));
            let points = parse_telemetry(body.as_bytes(), NOW).unwrap();
            let want: Vec<Point> = batches
                .iter()
                .flat_map(|(ts, m)| m.iter().map(|(k, v)| point(*ts, k, expected(v))))
                .collect();
            prop_assert_eq!(points, want);
        }

        #[test]
        fn plain_decimals_with_at_most_16_places_are_doubles(
            int in -1_000_000_000i64..1_000_000_000, frac in "[0-9]{1,16}"
        ) {
            let text = format!("{int}.{frac}");
            let want: f64 = text.parse().unwrap();
            prop_assert_eq!(value_of(&text), Value::Double(if want == 0.0 { 0.0 } else { want }));
            // And the same digits in a string are cast alike.
            prop_assert_eq!(value_of(&format!("\"{text}\"")), Value::Double(if want == 0.0 { 0.0 } else { want }));
        }

        #[test]
        fn longs_round_trip_through_text_and_strings(n in any::<i64>()) {
            prop_assert_eq!(value_of(&n.to_string()), Value::Long(n));
            prop_assert_eq!(value_of(&format!("\"{n}\"")), Value::Long(n));
            prop_assert_eq!(Value::Long(n).as_string(), n.to_string());
        }

        #[test]
        fn java_double_strings_parse_back_to_the_same_double(
            d in any::<f64>().prop_filter("finite", |d| d.is_finite())
        ) {
            let text = Value::Double(d).as_string();
            prop_assert_eq!(text.parse::<f64>().unwrap(), d);
            prop_assert!(text.contains('.'));
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            run_all(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in any_json()) {
            run_all(value.to_string().as_bytes());
        }

        #[test]
        fn json_with_bytes_flipped_never_panics(
            value in any_json(), at in any::<prop::sample::Index>(), byte in any::<u8>()
        ) {
            let mut body = value.to_string().into_bytes();
            let i = at.index(body.len());
            body[i] = byte;
            run_all(&body);
        }
    }
}
