//! Unit and instance names.
//!
//! A unit is named in the config (`[service.web]` → `web`). A service with
//! `instances = N` is a worker pool whose instances are `web@0` … `web@N-1`; a
//! single service or task has one instance that carries the unit's own name.

/// Separator between a unit name and an instance index (`web@2`).
pub const INSTANCE_SEPARATOR: char = '@';

/// The display name of instance `index` of `unit`.
pub fn instance_name(unit: &str, index: u32, is_pool: bool) -> String {
    if is_pool {
        format!("{unit}{INSTANCE_SEPARATOR}{index}")
    } else {
        unit.to_string()
    }
}

/// Whether `name` is acceptable as a unit name: ASCII letters, digits, `-`, `_`
/// and `.`, not empty, not starting with `-` or `.` (so it can never be mistaken
/// for a flag, a path or a glob).
pub fn is_valid_unit_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What a name given on the command line refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A whole unit (`web`).
    Unit(String),
    /// One instance of a pool (`web@2`).
    Instance { unit: String, index: u32 },
    /// A glob over unit names (`web*`), or over instance names when it contains `@`.
    Glob(String),
}

impl Selector {
    /// Parses a command-line name. Never fails: anything that is not a plain
    /// unit or `unit@N` is treated as a glob, and a glob that matches nothing
    /// is reported by the daemon as "no such unit".
    pub fn parse(text: &str) -> Selector {
        if text.contains(['*', '?', '[']) {
            return Selector::Glob(text.to_string());
        }
        if let Some((unit, index)) = text.split_once(INSTANCE_SEPARATOR) {
            if let Ok(index) = index.parse::<u32>() {
                return Selector::Instance {
                    unit: unit.to_string(),
                    index,
                };
            }
        }
        Selector::Unit(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        assert_eq!(instance_name("web", 2, true), "web@2");
        assert_eq!(instance_name("db", 0, false), "db");
    }

    #[test]
    fn selectors() {
        assert_eq!(Selector::parse("web"), Selector::Unit("web".into()));
        assert_eq!(
            Selector::parse("web@12"),
            Selector::Instance {
                unit: "web".into(),
                index: 12
            }
        );
        assert_eq!(Selector::parse("web*"), Selector::Glob("web*".into()));
        assert_eq!(Selector::parse("web@x"), Selector::Unit("web@x".into()));
    }

    #[test]
    fn unit_name_rules() {
        assert!(is_valid_unit_name("web-1.api_v2"));
        assert!(!is_valid_unit_name(""));
        assert!(!is_valid_unit_name("-web"));
        assert!(!is_valid_unit_name("web@2"));
        assert!(!is_valid_unit_name("a b"));
    }
}
