//! One paragraph: its fields in order.

use std::fmt;

use super::{Deb822Error, MAX_LINE};

/// One field: its name as written and its value (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// One paragraph's fields, in their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<Field>,
}

impl Paragraph {
    /// An empty paragraph.
    pub fn new() -> Self {
        Self::default()
    }

    /// One paragraph's text (no empty lines inside).
    pub fn parse(text: &str) -> Result<Self, Deb822Error> {
        Self::parse_at(text, 1)
    }

    /// [`Paragraph::parse`] for text whose first line is line `first` of its file.
    pub(super) fn parse_at(text: &str, first: usize) -> Result<Self, Deb822Error> {
        let mut p = Self::new();
        let text = text.strip_suffix('\n').unwrap_or(text);
        for (i, line) in text.split('\n').enumerate() {
            let number = first + i;
            if line.len() > MAX_LINE {
                return Err(Deb822Error::LineTooLong {
                    line: number,
                    len: line.len(),
                });
            }
            if line.starts_with([' ', '\t']) {
                let field = p
                    .fields
                    .last_mut()
                    .ok_or(Deb822Error::Orphan { line: number })?;
                field.value.push('\n');
                field.value.push_str(&line[1..]);
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .filter(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace))
                .ok_or(Deb822Error::NoColon { line: number })?;
            if p.get(name).is_some() {
                return Err(Deb822Error::Duplicate {
                    line: number,
                    field: name.to_owned(),
                });
            }
            p.fields.push(Field {
                name: name.to_owned(),
                value: value.trim().to_owned(),
            });
        }
        Ok(p)
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Whether the paragraph has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.fields[i].value.as_str())
    }

    /// Sets field `name` where it is, or adds it at the end.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => self.fields[i].value = value,
            None => self.fields.push(Field {
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Sets field `name` where it is; else adds it before the first of `before` there is,
    /// else at the end.
    pub fn set_before(&mut self, name: &str, value: impl Into<String>, before: &[&str]) {
        if self.position(name).is_some() {
            return self.set(name, value);
        }
        let at = self
            .fields
            .iter()
            .position(|f| before.iter().any(|b| f.name.eq_ignore_ascii_case(b)))
            .unwrap_or(self.fields.len());
        self.fields.insert(
            at,
            Field {
                name: name.to_owned(),
                value: value.into(),
            },
        );
    }

    /// Sets field `name` where it is; else adds it right after field `after` (at the end
    /// without it).
    pub fn set_after(&mut self, name: &str, value: impl Into<String>, after: &str) {
        if self.position(name).is_some() {
            return self.set(name, value);
        }
        let at = self.position(after).map_or(self.fields.len(), |i| i + 1);
        self.fields.insert(
            at,
            Field {
                name: name.to_owned(),
                value: value.into(),
            },
        );
    }

    /// Removes field `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.position(name).map(|i| self.fields.remove(i).value)
    }
}

/// The paragraph's text, each line ended by `\n` (no empty line after it).
impl fmt::Display for Paragraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for field in &self.fields {
            let mut lines = field.value.split('\n');
            let first = lines.next().unwrap_or_default();
            if first.is_empty() {
                writeln!(f, "{}:", field.name)?;
            } else {
                writeln!(f, "{}: {first}", field.name)?;
            }
            for line in lines {
                writeln!(f, " {line}")?;
            }
        }
        Ok(())
    }
}
