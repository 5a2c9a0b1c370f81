//! The one way to write a tar layer (sorted entries, fixed times, owners and modes) and a
//! strict reader for the layers we wrote, which refuses to unpack outside its target.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use super::SourceDateEpoch;

const BLOCK: usize = 512;

/// An entry's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One entry of a tar archive, as written or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated, no leading `/` or `./`, no trailing `/`.
    pub path: String,
    pub mode: u32,
    pub content: Content,
}

/// Collects entries, then writes them in one canonical order: sorted by path, every
/// parent directory present, owner 0:0, one modification time for all.
#[derive(Debug)]
pub struct TarBuilder {
    mtime: SourceDateEpoch,
    entries: BTreeMap<String, Entry>,
}

/// Why an archive cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("tar path `{0}` is not a clean relative path")]
    BadPath(String),
    #[error("tar path `{0}` is longer than ustar allows (255 bytes, 100 for the last part)")]
    PathTooLong(String),
    #[error("tar entry `{path}` would land outside the target folder: {why}")]
    Escapes { path: String, why: &'static str },
    #[error("corrupt tar archive at byte {offset}: {why}")]
    Corrupt { offset: usize, why: &'static str },
    #[error("tar entry `{path}` has unsupported type `{kind}`")]
    Unsupported { path: String, kind: char },
    #[error("cannot write `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl TarBuilder {
    pub fn new(mtime: SourceDateEpoch) -> TarBuilder {
        TarBuilder { mtime, entries: BTreeMap::new() }
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), TarError> {
        self.insert(path, mode, Content::Dir)
    }

    /// Adds a regular file (and its parents, mode 0755).
    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) -> Result<(), TarError> {
        self.insert(path, mode, Content::File(bytes))
    }

    fn insert(&mut self, path: &str, mode: u32, content: Content) -> Result<(), TarError> {
        let path = clean_relative(path)?;
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert_with(|| Entry {
                path: parent.clone(),
                mode: 0o755,
                content: Content::Dir,
            });
        }
        self.entries.insert(path.clone(), Entry { path, mode, content });
        Ok(())
    }

    /// Writes the archive: the entries in path order, then two zero blocks.
    pub fn write_to(&self, out: &mut impl Write) -> Result<(), TarError> {
        let io = |source| TarError::Io { path: PathBuf::from("<tar>"), source };
        for entry in self.entries.values() {
            let header = self.header(entry)?;
            out.write_all(&header).map_err(io)?;
            if let Content::File(bytes) = &entry.content {
                out.write_all(bytes).map_err(io)?;
                let pad = (BLOCK - bytes.len() % BLOCK) % BLOCK;
                out.write_all(&[0u8; BLOCK][..pad]).map_err(io)?;
            }
        }
        out.write_all(&[0u8; 2 * BLOCK]).map_err(io)
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TarError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    fn header(&self, entry: &Entry) -> Result<[u8; BLOCK], TarError> {
        let mut h = [0u8; BLOCK];
        let (kind, size, link, name) = match &entry.content {
            Content::Dir => (b'5', 0, "", format!("{}/", entry.path)),
            Content::File(bytes) => (b'0', bytes.len() as u64, "", entry.path.clone()),
            Content::Symlink(target) => (b'2', 0, target.as_str(), entry.path.clone()),
        };
        let (prefix, name) = split_ustar_name(&name)?;
        if link.len() > 100 {
            return Err(TarError::PathTooLong(link.to_owned()));
        }
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(entry.mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], self.mtime.0);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        h[155] = b' ';
        Ok(h)
    }
}

/// Writes `value` as zero-padded octal digits followed by a NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Splits a path into ustar's `prefix` (155 bytes) and `name` (100 bytes) at a `/`.
fn split_ustar_name(path: &str) -> Result<(&str, &str), TarError> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let trimmed = path.trim_end_matches('/');
    for (i, _) in trimmed.match_indices('/') {
        let (prefix, name) = (&path[..i], &path[i + 1..]);
        if prefix.len() <= 155 && name.len() <= 100 {
            return Ok((prefix, name));
        }
    }
    Err(TarError::PathTooLong(path.to_owned()))
}

/// Normalizes a relative path and refuses anything that is not plainly inside the root.
fn clean_relative(path: &str) -> Result<String, TarError> {
    let trimmed = path.trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        return Err(TarError::BadPath(path.to_owned()));
    }
    if trimmed.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(TarError::BadPath(path.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// Reads every entry of a ustar archive. Paths are cleaned; an entry whose path is
/// absolute or climbs with `..` is refused.
pub fn read_entries(archive: &[u8]) -> Result<Vec<Entry>, TarError> {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset + BLOCK <= archive.len() {
        let h = &archive[offset..offset + BLOCK];
        if h.iter().all(|&b| b == 0) {
            return Ok(entries);
        }
        let corrupt = |why| TarError::Corrupt { offset, why };
        let stored_sum = parse_octal(&h[148..156]).ok_or_else(|| corrupt("bad checksum field"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        if sum != stored_sum {
            return Err(corrupt("header checksum mismatch"));
        }
        let name = field_str(&h[..100]);
        let prefix = field_str(&h[345..500]);
        let raw_path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let mode = parse_octal(&h[100..108]).ok_or_else(|| corrupt("bad mode field"))? as u32;
        let size = parse_octal(&h[124..136]).ok_or_else(|| corrupt("bad size field"))? as usize;
        let data_start = offset + BLOCK;
        let data_end = data_start.checked_add(size).filter(|&end| end <= archive.len());
        let data_end = data_end.ok_or_else(|| corrupt("entry runs past the end"))?;
        let path = clean_relative(&raw_path).map_err(|_| TarError::Escapes {
            path: raw_path.clone(),
            why: "absolute path or `..`",
        })?;
        let content = match h[156] {
            b'0' | 0 => Content::File(archive[data_start..data_end].to_vec()),
            b'5' => Content::Dir,
            b'2' => Content::Symlink(field_str(&h[157..257])),
            other => {
                return Err(TarError::Unsupported { path: raw_path, kind: char::from(other) });
            }
        };
        entries.push(Entry { path, mode, content });
        offset = data_start + size.div_ceil(BLOCK) * BLOCK;
    }
    Err(TarError::Corrupt { offset, why: "archive ends without its two zero blocks" })
}

/// Unpacks an archive under `target`, refusing absolute paths, `..`, and symbolic links
/// whose target would resolve outside `target`.
pub fn unpack(archive: &[u8], target: &Path) -> Result<Vec<Entry>, TarError> {
    let entries = read_entries(archive)?;
    for entry in &entries {
        if let Content::Symlink(link) = &entry.content
            && !link_stays_inside(&entry.path, link)
        {
            return Err(TarError::Escapes {
                path: entry.path.clone(),
                why: "symbolic link points outside",
            });
        }
    }
    for entry in &entries {
        let dest = target.join(&entry.path);
        let io = |source| TarError::Io { path: dest.clone(), source };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        match &entry.content {
            Content::Dir => fs::create_dir_all(&dest).map_err(io)?,
            Content::File(bytes) => {
                fs::write(&dest, bytes).map_err(io)?;
                set_mode(&dest, entry.mode).map_err(io)?;
            }
            Content::Symlink(link) => std::os::unix::fs::symlink(link, &dest).map_err(io)?,
        }
    }
    Ok(entries)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o755))
}

/// Whether the link at `path` pointing to `link` stays inside the archive's root. A link
/// may only point down (no `/`, no `..`): checking the text alone cannot see through links
/// the archive created earlier (`d -> .`, then `e -> d/..`), so climbing is refused outright.
fn link_stays_inside(_path: &str, link: &str) -> bool {
    !link.is_empty()
        && Path::new(link)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn field_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = field_str(field);
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mtime: u64, order: &[&str]) -> Vec<u8> {
        let mut tar = TarBuilder::new(SourceDateEpoch(mtime));
        for path in order {
            tar.file(path, 0o644, path.as_bytes().to_vec()).unwrap();
        }
        tar.to_bytes().unwrap()
    }

    #[test]
    fn same_entries_in_any_order_give_the_same_bytes() {
        let a = sample(1_700_000_000, &["usr/bin/app", "etc/passwd", "etc/group"]);
        let b = sample(1_700_000_000, &["etc/group", "usr/bin/app", "etc/passwd"]);
        assert_eq!(a, b);
        assert_ne!(a, sample(1_700_000_001, &["etc/group"]));
    }

    #[test]
    fn entries_are_sorted_with_parents_and_round_trip() {
        let bytes = sample(0, &["usr/bin/app", "etc/passwd"]);
        let paths: Vec<_> = read_entries(&bytes).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["etc", "etc/passwd", "usr", "usr/bin", "usr/bin/app"]);
        let app = read_entries(&bytes).unwrap().pop().unwrap();
        assert_eq!(app.content, Content::File(b"usr/bin/app".to_vec()));
        assert_eq!(app.mode, 0o644);
    }

    #[test]
    fn long_paths_use_the_ustar_prefix() {
        let long = format!("{}/{}/{}", "d".repeat(60), "e".repeat(60), "f".repeat(90));
        let bytes = sample(0, &[long.as_str()]);
        let last = read_entries(&bytes).unwrap().pop().unwrap();
        assert_eq!(last.path, long);
        let mut tar = TarBuilder::new(SourceDateEpoch(0));
        assert!(tar.file(&"x".repeat(300), 0o644, vec![]).is_ok());
        assert!(matches!(tar.to_bytes(), Err(TarError::PathTooLong(_))));
    }

    #[test]
    fn builder_refuses_unclean_paths() {
        let mut tar = TarBuilder::new(SourceDateEpoch(0));
        for bad in ["/etc/passwd", "../x", "a/../../x", "a//b", ""] {
            assert!(matches!(tar.file(bad, 0o644, vec![]), Err(TarError::BadPath(_))), "{bad}");
        }
    }

    /// Writes a raw header by hand, so the reader can be fed what our writer never makes.
    fn raw_entry(name: &str, kind: u8, link: &str) -> Vec<u8> {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[124..136], 0);
        octal(&mut h[136..148], 0);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        let mut out = h.to_vec();
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn unpack_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, kind: u8, link: &str| {
            let err = unpack(&raw_entry(name, kind, link), dir.path()).unwrap_err();
            assert!(matches!(err, TarError::Escapes { .. }), "{name} -> {link}: {err}");
        };
        check("/etc/passwd", b'0', "");
        check("../outside", b'0', "");
        check("a/../../outside", b'0', "");
        check("link", b'2', "/etc/passwd");
        check("link", b'2', "../outside");
        check("a/b/link", b'2', "../../../outside");
        check("e", b'2', "d/..");
        check("a/b/link", b'2', "../c");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written");
        unpack(&raw_entry("a/b/link", b'2', "c/d"), dir.path()).unwrap();
    }

    #[test]
    fn reader_detects_corruption() {
        let mut bytes = sample(0, &["etc/passwd"]);
        bytes[10] ^= 1;
        assert!(matches!(read_entries(&bytes), Err(TarError::Corrupt { .. })));
        let truncated = &sample(0, &["etc/passwd"])[..BLOCK * 3];
        assert!(read_entries(truncated).is_err());
    }
}
