//! A play's `serial:` (Ansible's rolling batches): how many of the hosts a play selects run the whole
//! play at once, so a restart on a running cluster never takes every node down together. Parsed here,
//! where the playbook is read; a templated value is parsed once it is rendered (in `plan::prepare`),
//! still before any host is touched.

use serde_json::Value as J;
use thiserror::Error;

/// A batch size, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    /// `0` or no `serial:`: every host at once.
    All,
    /// At most this many hosts per batch (above 0).
    Hosts(usize),
    /// This percentage (1 to 100) of the hosts per batch, rounded down, at least one host.
    Percent(u8),
}

/// `serial:` as written: a value known when loading, or a template rendered against the vars that are
/// not host-specific (a batch is a property of the play, not of one host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialSpec {
    /// A number or a percentage.
    Fixed(Serial),
    /// A string with `{{ … }}`, e.g. `"{{ wso2_rolling_batch }}"`.
    Template(String),
}

/// Why a `serial:` value is no batch size. Typed so tests and callers can tell the cases apart.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SerialError {
    /// Below zero.
    #[error("must not be negative (0 means all hosts at once)")]
    Negative,
    /// A fraction, a word, a list…
    #[error("must be a whole number of hosts or a percentage such as \"50%\"")]
    NotANumber,
    /// `0%`, `150%`: a percentage must name part of the hosts.
    #[error("a percentage must be between 1% and 100% (use 0 for all hosts at once)")]
    Percent,
    /// The template could not be rendered.
    #[error("{0}")]
    Template(String),
}

impl SerialSpec {
    /// Reads the YAML value of `serial:`.
    pub fn parse(v: &serde_yaml::Value) -> Result<Self, SerialError> {
        match v {
            serde_yaml::Value::String(s) if super::template::is_templated(s) => {
                Ok(SerialSpec::Template(s.clone()))
            }
            other => {
                let json = serde_json::to_value(other).map_err(|_| SerialError::NotANumber)?;
                Serial::from_json(&json).map(SerialSpec::Fixed)
            }
        }
    }
}

impl Serial {
    /// A batch size from a number or a string (a rendered template gives either).
    pub fn from_json(v: &J) -> Result<Self, SerialError> {
        match v {
            J::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(n), _) => Ok(Self::of_count(n)),
                (None, Some(_)) => Err(SerialError::Negative),
                _ if n.as_f64().is_some_and(|f| f < 0.0) => Err(SerialError::Negative),
                _ => Err(SerialError::NotANumber),
            },
            J::String(s) => Self::from_text(s),
            _ => Err(SerialError::NotANumber),
        }
    }

    fn from_text(s: &str) -> Result<Self, SerialError> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p = p.trim();
            if p.starts_with('-') {
                return Err(SerialError::Negative);
            }
            return match p.parse::<u64>() {
                Ok(p @ 1..=100) => Ok(Serial::Percent(p as u8)),
                Ok(_) => Err(SerialError::Percent),
                Err(_) => Err(SerialError::NotANumber),
            };
        }
        match s.parse::<i64>() {
            Ok(n) if n < 0 => Err(SerialError::Negative),
            Ok(n) => Ok(Self::of_count(n as u64)),
            Err(_) => Err(SerialError::NotANumber),
        }
    }

    fn of_count(n: u64) -> Self {
        match n {
            0 => Serial::All,
            n => Serial::Hosts(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// Hosts per batch for a play that selects `hosts` hosts (Ansible's rounding: a percentage rounds
    /// down, but a batch has at least one host).
    pub fn batch_size(self, hosts: usize) -> usize {
        match self {
            Serial::All => hosts,
            Serial::Hosts(n) => n.min(hosts),
            Serial::Percent(p) => (hosts * usize::from(p) / 100).max(1),
        }
        .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Result<SerialSpec, SerialError> {
        SerialSpec::parse(&serde_yaml::from_str(s).unwrap())
    }

    #[test]
    fn numbers_percentages_and_templates_parse() {
        assert_eq!(yaml("0"), Ok(SerialSpec::Fixed(Serial::All)));
        assert_eq!(yaml("1"), Ok(SerialSpec::Fixed(Serial::Hosts(1))));
        assert_eq!(yaml("\"3\""), Ok(SerialSpec::Fixed(Serial::Hosts(3))));
        assert_eq!(yaml("\"50%\""), Ok(SerialSpec::Fixed(Serial::Percent(50))));
        assert_eq!(yaml("100%"), Ok(SerialSpec::Fixed(Serial::Percent(100))));
        assert_eq!(
            yaml("\"{{ batch }}\""),
            Ok(SerialSpec::Template("{{ batch }}".into()))
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_reason() {
        assert_eq!(yaml("-1"), Err(SerialError::Negative));
        assert_eq!(yaml("\"-2\""), Err(SerialError::Negative));
        assert_eq!(yaml("\"-5%\""), Err(SerialError::Negative));
        assert_eq!(yaml("abc"), Err(SerialError::NotANumber));
        assert_eq!(yaml("1.5"), Err(SerialError::NotANumber));
        assert_eq!(yaml("-1.5"), Err(SerialError::Negative));
        assert_eq!(yaml("[1, 2]"), Err(SerialError::NotANumber));
        assert_eq!(yaml("true"), Err(SerialError::NotANumber));
        assert_eq!(yaml("\"150%\""), Err(SerialError::Percent));
        assert_eq!(yaml("\"0%\""), Err(SerialError::Percent));
        assert_eq!(yaml("\"x%\""), Err(SerialError::NotANumber));
    }

    #[test]
    fn batch_sizes_follow_ansible_rounding() {
        assert_eq!(Serial::All.batch_size(4), 4);
        assert_eq!(Serial::Hosts(1).batch_size(3), 1);
        assert_eq!(Serial::Hosts(10).batch_size(3), 3);
        assert_eq!(Serial::Percent(50).batch_size(4), 2);
        assert_eq!(Serial::Percent(50).batch_size(3), 1);
        assert_eq!(Serial::Percent(10).batch_size(3), 1);
        assert_eq!(Serial::Percent(100).batch_size(3), 3);
        assert_eq!(Serial::All.batch_size(0), 1);
    }

    #[test]
    fn a_rendered_template_parses_like_a_literal() {
        assert_eq!(Serial::from_json(&J::from(2)), Ok(Serial::Hosts(2)));
        assert_eq!(Serial::from_json(&J::from("25%")), Ok(Serial::Percent(25)));
        assert_eq!(Serial::from_json(&J::from(-3)), Err(SerialError::Negative));
        assert_eq!(Serial::from_json(&J::Null), Err(SerialError::NotANumber));
    }
}
