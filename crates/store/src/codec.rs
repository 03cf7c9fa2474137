//! The byte form of telemetry points and attribute entries inside sealed blobs. Shared by
//! every backend; sealed bytes are backend-independent.
//!
//! A point list: `count (u32)`, then per point `ts (i64) ‖ key ‖ value`; a key is
//! `len (u16) ‖ UTF-8`; a value is a tag byte then `bool (u8)`, `long (i64)`,
//! `double (f64 bits)`, or `len (u32) ‖ UTF-8` for strings and JSON text. Little-endian.

use thingsafe_core::payload::{Point, Value};

use crate::StoreError;

const BOOL: u8 = 1;
const LONG: u8 = 2;
const DOUBLE: u8 = 3;
const STRING: u8 = 4;
const JSON: u8 = 5;

pub fn encode_points(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + points.len() * 24);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    for p in points {
        out.extend_from_slice(&p.ts.to_le_bytes());
        put_entry(&mut out, &p.key, &p.value);
    }
    out
}

pub fn decode_points(bytes: &[u8]) -> Result<Vec<Point>, StoreError> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    let mut points = Vec::with_capacity(n.min(bytes.len() / 12));
    for _ in 0..n {
        let ts = r.i64()?;
        let (key, value) = r.entry()?;
        points.push(Point { ts, key, value });
    }
    r.finish()?;
    Ok(points)
}

/// One key and its value (latest values, attributes).
pub fn encode_entry(key: &str, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len());
    put_entry(&mut out, key, value);
    out
}

pub fn decode_entry(bytes: &[u8]) -> Result<(String, Value), StoreError> {
    let mut r = Reader { bytes, at: 0 };
    let entry = r.entry()?;
    r.finish()?;
    Ok(entry)
}

fn put_entry(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    match value {
        Value::Bool(b) => {
            out.push(BOOL);
            out.push(*b as u8);
        }
        Value::Long(n) => {
            out.push(LONG);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::String(s) => put_text(out, STRING, s),
        Value::Json(j) => put_text(out, JSON, &j.to_string()),
    }
}

fn put_text(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag);
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored telemetry is corrupt: {what}"))
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt("truncated"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn text(&mut self, len: usize) -> Result<String, StoreError> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| corrupt("text is not UTF-8"))
    }

    fn entry(&mut self) -> Result<(String, Value), StoreError> {
        let key_len = self.u16()? as usize;
        let key = self.text(key_len)?;
        let value = match self.u8()? {
            BOOL => Value::Bool(self.u8()? != 0),
            LONG => Value::Long(self.i64()?),
            DOUBLE => Value::Double(f64::from_bits(self.i64()? as u64)),
            STRING => {
                let len = self.u32()? as usize;
                Value::String(self.text(len)?)
            }
            JSON => {
                let len = self.u32()? as usize;
                let text = self.text(len)?;
                Value::Json(serde_json::from_str(&text).map_err(|_| corrupt("JSON value"))?)
            }
            _ => return Err(corrupt("unknown value tag")),
        };
        Ok((key, value))
    }

    fn finish(&self) -> Result<(), StoreError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Point> {
        vec![
            Point {
                ts: 1,
                key: "on".into(),
                value: Value::Bool(true),
            },
            Point {
                ts: -5,
                key: "count".into(),
                value: Value::Long(i64::MIN),
            },
            Point {
                ts: 1_700_000_000_000,
                key: "temp".into(),
                value: Value::Double(21.5),
            },
            Point {
                ts: 2,
                key: "ünïcode".into(),
                value: Value::String("héllo".into()),
            },
            Point {
                ts: 3,
                key: "obj".into(),
                value: Value::Json(serde_json::json!({"a": [1, 2.5, null]})),
            },
        ]
    }

    #[test]
    fn points_round_trip() {
        let bytes = encode_points(&sample());
        assert_eq!(decode_points(&bytes).unwrap(), sample());
        assert_eq!(decode_points(&encode_points(&[])).unwrap(), vec![]);
    }

    #[test]
    fn entries_round_trip() {
        for p in sample() {
            let bytes = encode_entry(&p.key, &p.value);
            assert_eq!(decode_entry(&bytes).unwrap(), (p.key, p.value));
        }
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let bytes = encode_points(&sample());
        for cut in 0..bytes.len() {
            assert!(decode_points(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_points(&extra).is_err());
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_points(&huge).is_err());
    }
}
