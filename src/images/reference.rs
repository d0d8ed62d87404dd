//! How units and operators name images: `NAME[:TAG]` (Docker's form,
//! `:latest` when the tag is left out) or `sha256:DIGEST`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reference {
    /// `name:tag`, normalised with its tag.
    Tag(String),
    /// A full `sha256:HEX` digest, or a prefix of one (at least 12 digits).
    Digest(String),
}

const MIN_DIGEST_PREFIX: usize = 12;

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            let valid = (MIN_DIGEST_PREFIX..=64).contains(&hex.len())
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid {
                return Err(format!(
                    "invalid image digest {text:?}: expected sha256: and 12 to 64 lowercase hex digits"
                ));
            }
            return Ok(Reference::Digest(text.to_string()));
        }
        let (name, tag) = split_tag(text);
        let name_ok = !name.is_empty()
            && name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && !name.contains("//");
        if !name_ok {
            return Err(format!(
                "invalid image name {text:?}: expected NAME[:TAG] with a lowercase NAME (letters, digits, . _ - / and a registry's :port)"
            ));
        }
        let tag = tag.unwrap_or("latest");
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(format!(
                "invalid image tag in {text:?}: letters, digits, . _ and -, at most 128"
            ));
        }
        Ok(Reference::Tag(format!("{name}:{tag}")))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(s) | Reference::Digest(s) => s,
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tag is what follows the last `:` unless a `/` comes after it (then
/// that `:` is a registry's port: `registry:5000/app`).
fn split_tag(text: &str) -> (&str, Option<&str>) {
    match text.rfind(':') {
        Some(at) if !text[at..].contains('/') => (&text[..at], Some(&text[at + 1..])),
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_tag() {
        let tag = |t: &str| Reference::parse(t).map(|r| r.to_string());
        assert_eq!(tag("app").unwrap(), "app:latest");
        assert_eq!(tag("app:1.4").unwrap(), "app:1.4");
        assert_eq!(
            tag("registry.example:5000/team/app").unwrap(),
            "registry.example:5000/team/app:latest"
        );
        assert_eq!(
            tag("registry.example:5000/app:v2").unwrap(),
            "registry.example:5000/app:v2"
        );
        assert!(tag("App").is_err());
        assert!(tag("app:").is_err());
        assert!(tag("app:-x").is_err());
        assert!(tag("").is_err());
        assert!(tag("../x").is_err());
    }

    #[test]
    fn digests_need_twelve_hex_digits() {
        assert!(matches!(
            Reference::parse("sha256:0123456789ab"),
            Ok(Reference::Digest(_))
        ));
        assert!(Reference::parse("sha256:0123").is_err());
        assert!(Reference::parse("sha256:0123456789AB").is_err());
    }
}
