//! References to images: the validated repository name, tag and `<repository>:<tag>` an
//! image is stored under — parsed at the edge, then trusted.

use std::fmt;
use std::str::FromStr;

use crate::model::digest::Digest;

/// A repository in the store: `<application>-<role>`, as OCI distribution names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, as OCI distribution allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// `<repository>:<tag>`, the name people use for an image.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub repository: Repository,
    pub tag: Tag,
}

/// Why a name is not a repository, tag or reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a valid {what}: expected {expected}")]
pub struct NameError {
    text: String,
    what: &'static str,
    expected: &'static str,
}

impl FromStr for Repository {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Repository, NameError> {
        let component_ok = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_'))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        };
        if text.len() <= 255 && text.split('/').all(component_ok) {
            Ok(Repository(text.to_owned()))
        } else {
            Err(NameError {
                text: text.to_owned(),
                what: "repository name",
                expected: "lower-case letters, digits and `-._/` separators",
            })
        }
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Tag, NameError> {
        let bytes = text.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Tag(text.to_owned()))
        } else {
            Err(NameError {
                text: text.to_owned(),
                what: "tag",
                expected: "up to 128 letters, digits, `.`, `_` and `-`, not starting with `.` or `-`",
            })
        }
    }
}

impl FromStr for ImageRef {
    type Err = NameError;

    fn from_str(text: &str) -> Result<ImageRef, NameError> {
        let Some((repository, tag)) = text.rsplit_once(':') else {
            return Err(NameError {
                text: text.to_owned(),
                what: "image reference",
                expected: "`<repository>:<tag>`",
            });
        };
        Ok(ImageRef { repository: repository.parse()?, tag: tag.parse()? })
    }
}

impl Repository {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The OCI referrers tag-schema fallback tag for `digest`: `sha256-<hex>`.
    pub fn referrers_of(digest: &Digest) -> Tag {
        Tag(format!("sha256-{}", digest.hex()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// Serialized as their text, like `Digest`.
macro_rules! serialize_as_text {
    ($($name:ty),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}
serialize_as_text!(ImageRef, Repository, Tag);

/// Read back from their text, checked as `FromStr` checks it.
macro_rules! deserialize_from_text {
    ($($name:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_text!(ImageRef, Repository, Tag);

impl crate::error::Hint for NameError {}
