//! A path template with `{placeholder}` elements, compiled to a regular expression.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

/// What is wrong with a template of a mapping rule.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {template:?} has an unclosed `{{`")]
    Unclosed { template: String },
    #[error("template {template:?}: placeholder {{{name}}} must be letters, digits or _")]
    Placeholder { template: String, name: String },
    #[error("template {template:?} uses {{{name}}} twice")]
    Twice { template: String, name: String },
    #[error("template {template:?} has a stray `}}`")]
    Stray { template: String },
    #[error("template {template:?}: {source}")]
    Regex {
        template: String,
        source: Box<regex::Error>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) source: String,
    regex: Regex,
    pub(crate) placeholders: BTreeSet<String>,
}

impl Template {
    pub(crate) fn compile(source: &str) -> Result<Self, TemplateError> {
        let mut pattern = String::from("^");
        let mut placeholders = BTreeSet::new();
        for (i, part) in source.split('/').enumerate() {
            if i > 0 {
                pattern.push('/');
            }
            let mut rest = part;
            while let Some(open) = rest.find('{') {
                pattern.push_str(&regex::escape(&rest[..open]));
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| TemplateError::Unclosed {
                        template: source.to_owned(),
                    })?
                    + open;
                let name = &rest[open + 1..close];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(TemplateError::Placeholder {
                        template: source.to_owned(),
                        name: name.to_owned(),
                    });
                }
                if !placeholders.insert(name.to_owned()) {
                    return Err(TemplateError::Twice {
                        template: source.to_owned(),
                        name: name.to_owned(),
                    });
                }
                pattern.push_str(&format!("(?P<{name}>[^/]+)"));
                rest = &rest[close + 1..];
            }
            if rest.contains('}') {
                return Err(TemplateError::Stray {
                    template: source.to_owned(),
                });
            }
            pattern.push_str(&regex::escape(rest));
        }
        pattern.push('$');
        let regex = Regex::new(&pattern).map_err(|e| TemplateError::Regex {
            template: source.to_owned(),
            source: Box::new(e),
        })?;
        Ok(Self {
            source: source.to_owned(),
            regex,
            placeholders,
        })
    }

    pub(crate) fn captures(&self, text: &str) -> Option<BTreeMap<String, String>> {
        let caps = self.regex.captures(text)?;
        Some(
            self.placeholders
                .iter()
                .map(|name| (name.clone(), caps[name.as_str()].to_owned()))
                .collect(),
        )
    }

    pub(crate) fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = self.source.clone();
        for name in &self.placeholders {
            out = out.replace(&format!("{{{name}}}"), &values[name]);
        }
        out
    }
}
