//! deb822, the format of apt's `Release`, `Packages` and `Sources` files: paragraphs of
//! `Name: value` fields separated by empty lines, a value continued on lines that start with a
//! space or a tab. One reader and writer for every part of the farm (and its tests).
//!
//! A value is held as the file spells it: the first line without the blanks around it, then
//! each continuation line after a `\n`, without its one leading blank (`Files:\n abc 1 f` holds
//! `"\nabc 1 f"`). Written back, a continuation line starts with one space; field order is
//! kept. `write(parse(text)) == text` for any text in that form (what reprepro, dpkg and apt
//! write).
//!
//! Hostile or broken input is refused, with the line it is on, never guessed at:
//! - a line without a `:` (or with an empty field name, or a name with blanks) outside a
//!   continuation: [`Deb822Error::NoColon`];
//! - a continuation line before any field: [`Deb822Error::Orphan`];
//! - a field twice in one paragraph (names compared ignoring ASCII case, as dpkg does; dpkg
//!   refuses them too): [`Deb822Error::Duplicate`];
//! - a line longer than [`MAX_LINE`] bytes: [`Deb822Error::LineTooLong`].
//!
//! Lines holding only blanks separate paragraphs as empty ones do. Names are looked up ignoring
//! ASCII case. OpenPGP armour (`InRelease`) is not read here: verify and strip it first.

mod checksums;
mod paragraph;

pub use checksums::{ChecksumEntry, ChecksumError};
pub use paragraph::{Field, Paragraph};

/// The longest line read, in bytes (1 MiB): far above any index line apt tools write.
pub const MAX_LINE: usize = 1 << 20;

/// A deb822 text is malformed (line numbers count from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deb822Error {
    #[error("line {line}: no field name and colon")]
    NoColon { line: usize },
    #[error("line {line}: a continuation line before any field")]
    Orphan { line: usize },
    #[error("line {line}: field {field:?} a second time in one paragraph")]
    Duplicate { line: usize, field: String },
    #[error("line {line}: {len} bytes long, more than {MAX_LINE}")]
    LineTooLong { line: usize, len: usize },
    #[error("one paragraph expected, found {found}")]
    NotOneParagraph { found: usize },
}

/// Every paragraph of `text`.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, Deb822Error> {
    let mut out = Vec::new();
    for (first_line, raw) in raw_paragraphs_numbered(text) {
        out.push(Paragraph::parse_at(raw, first_line)?);
    }
    Ok(out)
}

/// The one paragraph of `text` (a `Release` file, say).
pub fn parse_one(text: &str) -> Result<Paragraph, Deb822Error> {
    let mut all = parse(text)?;
    if all.len() != 1 {
        return Err(Deb822Error::NotOneParagraph { found: all.len() });
    }
    Ok(all.remove(0))
}

/// The paragraphs of `text` written back: each followed by an empty line but the last.
pub fn write(paragraphs: &[Paragraph]) -> String {
    let mut out = String::new();
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

/// The text of each paragraph of `text`, unparsed and borrowed (for readers of large indexes
/// that look at a few fields only): the lines between empty (or blank) lines, without the
/// newline that ends the last.
pub fn raw_paragraphs(text: &str) -> impl Iterator<Item = &str> {
    raw_paragraphs_numbered(text).map(|(_, raw)| raw)
}

/// The first line of field `name` in one paragraph's unparsed text (see [`raw_paragraphs`]),
/// trimmed; names compared ignoring ASCII case. For fast lookups of a few fields in large
/// indexes; the text is not checked ([`Paragraph::parse`] does that).
pub fn raw_field<'a>(paragraph: &'a str, name: &str) -> Option<&'a str> {
    paragraph.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        (!line.starts_with([' ', '\t']) && field.eq_ignore_ascii_case(name)).then(|| value.trim())
    })
}

/// [`raw_paragraphs`] with the number of each one's first line.
fn raw_paragraphs_numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    let mut line = 1;
    std::iter::from_fn(move || {
        // Skip separator lines.
        loop {
            if rest.is_empty() {
                return None;
            }
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            if !rest[..end].trim().is_empty() {
                break;
            }
            rest = &rest[end..];
            line += 1;
        }
        let start_line = line;
        let mut len = 0;
        while len < rest.len() {
            let end = rest[len..].find('\n').map_or(rest.len(), |i| len + i + 1);
            if rest[len..end].trim().is_empty() {
                break;
            }
            len = end;
            line += 1;
        }
        let raw = &rest[..len];
        rest = &rest[len..];
        Some((start_line, raw.strip_suffix('\n').unwrap_or(raw)))
    })
}

#[cfg(test)]
mod tests;
