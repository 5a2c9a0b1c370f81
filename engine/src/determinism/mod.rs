//! Determinism lives here: the one clock (`SOURCE_DATE_EPOCH`), the one canonical JSON
//! serializer, the one YAML writer and the one tar writer every artifact goes through.

pub mod tar;
pub mod yaml;

use std::fmt::Write as _;
use std::io::Write as _;

use flate2::{Compression, GzBuilder};

use serde::Serialize;
use serde_json::Value;

/// The build's one clock: seconds since the epoch of the HEAD commit.
/// Every timestamp in an artifact comes from here, never from the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SourceDateEpoch(pub u64);

impl SourceDateEpoch {
    /// RFC 3339 UTC (`2024-05-01T12:00:00Z`), as OCI `created` fields want it.
    pub fn rfc3339(self) -> String {
        let secs = self.0;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Gzip with a fixed header (no name, mtime 0, OS "unknown") and a fixed level, so the
/// same bytes always compress to the same bytes. Level 1 (the backend's greedy fast path):
/// about five times faster than level 6 on service binaries, for layers about 15% larger.
/// Changing the level changes every layer digest: bump the cache formats in `ci.rs`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(bytes.len() / 2), Compression::new(1));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Decompresses a gzip stream, e.g. a layer: at once into the size its trailer states
/// (zlib-rs), else — several members, or a size past `ONE_SHOT_LIMIT` — streamed (flate2),
/// every member, as Go's readers (and so registries' clients) read a layer.
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    if let Some(out) = gunzip_at_once(bytes) {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(bytes.len() * 2);
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)?;
    Ok(out)
}

/// The largest size `gunzip` allocates up front from a trailer's word.
const ONE_SHOT_LIMIT: usize = 1 << 30;

/// `bytes` inflated in one call into a buffer of the size the gzip trailer states; `None`
/// when that is not the whole stream (the streamed path then decides, with its errors).
fn gunzip_at_once(bytes: &[u8]) -> Option<Vec<u8>> {
    let trailer: [u8; 4] = bytes.get(bytes.len().checked_sub(4)?..)?.try_into().ok()?;
    let size = u32::from_le_bytes(trailer) as usize;
    if size > ONE_SHOT_LIMIT {
        return None;
    }
    let mut out = vec![0u8; size];
    // Window bits 16 + 15: a gzip stream, its header and CRC checked.
    let mut inflate = zlib_rs::Inflate::new(true, 31);
    let ended = inflate.decompress(bytes, &mut out, zlib_rs::InflateFlush::Finish);
    let whole = ended == Ok(zlib_rs::Status::StreamEnd)
        && inflate.total_in() == bytes.len() as u64
        && inflate.total_out() == size as u64;
    whole.then_some(out)
}

/// Serializes `value` as canonical JSON: object keys sorted by their UTF-8 bytes, no
/// insignificant white space. Hash maps inside `value` cannot change the bytes.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value)
        .unwrap_or_else(|e| unreachable!("our documents always serialize to JSON: {e}"));
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out.into_bytes()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    // serde_json writes scalars one way only; `write!` into a String cannot fail.
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn gunzip_inflates_what_gzip_made_at_once() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let gz = gzip(&data);
        assert_eq!(gunzip_at_once(&gz), Some(data.clone()));
        assert_eq!(gunzip(&gz).unwrap(), data);
    }

    #[test]
    fn gunzip_streams_two_members_whole() {
        let mut two = gzip(b"first member, ");
        two.extend(gzip(b"second member"));
        assert_eq!(gunzip_at_once(&two), None, "the trailer states the last member only");
        assert_eq!(gunzip(&two).unwrap(), b"first member, second member");
    }

    #[test]
    fn gunzip_refuses_a_corrupt_or_cut_stream() {
        let mut corrupt = gzip(&[7u8; 10_000]);
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xff;
        assert!(gunzip(&corrupt).is_err());
        let cut = gzip(&[7u8; 10_000]);
        assert!(gunzip(&cut[..cut.len() - 6]).is_err());
        assert!(gunzip(b"").is_err());
    }

    #[test]
    fn rfc3339_of_known_instants() {
        let check = |secs, expected: &str| assert_eq!(SourceDateEpoch(secs).rfc3339(), expected);
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_700_000_000, "2023-11-14T22:13:20Z");
        check(4_102_444_799, "2099-12-31T23:59:59Z");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let mut labels = HashMap::new();
        for key in ["zeta", "alpha", "mid", "Beta", "ä"] {
            labels.insert(key.to_owned(), vec![serde_json::json!({"b": 1, "a": [true, null]})]);
        }
        let bytes = canonical_json(&labels);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"Beta":[{"a":[true,null],"b":1}],"alpha":[{"a":[true,null],"b":1}],"mid":[{"a":[true,null],"b":1}],"zeta":[{"a":[true,null],"b":1}],"ä":[{"a":[true,null],"b":1}]}"#
        );
    }

    #[test]
    fn canonical_json_escapes_strings() {
        let bytes = canonical_json(&serde_json::json!({"k": "a\"b\n\u{1}"}));
        assert_eq!(String::from_utf8(bytes).unwrap(), r#"{"k":"a\"b\n\u0001"}"#);
    }
}
