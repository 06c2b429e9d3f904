//! Command-line flags as an ordered list where a later `set` replaces an
//! earlier value (clap refuses a single-value flag given twice), so
//! scenario overrides compose with defaults.

/// Ordered `--flag [value]` pairs.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    items: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(mut self, name: &str, value: &str) -> Flags {
        match self.items.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = Some(value.to_owned()),
            None => self.items.push((name.to_owned(), Some(value.to_owned()))),
        }
        self
    }

    /// Adds `name value` even if `name` is already there (repeatable flags).
    pub fn add(mut self, name: &str, value: &str) -> Flags {
        self.items.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    /// Sets the bare flag `name`.
    pub fn flag(mut self, name: &str) -> Flags {
        if !self.items.iter().any(|(n, _)| n == name) {
            self.items.push((name.to_owned(), None));
        }
        self
    }

    /// `self` with every item of `other` set (bare flags added).
    pub fn merge(mut self, other: &Flags) -> Flags {
        for (name, value) in &other.items {
            self = match value {
                Some(v) => self.set(name, v),
                None => self.flag(name),
            };
        }
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The arguments, in order.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in &self.items {
            out.push(name.clone());
            if let Some(v) = value {
                out.push(v.clone());
            }
        }
        out
    }
}
