//! Label matchers in Alertmanager's syntax: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
//!
//! Owns: parsing one matcher string and matching it against a label set.
//! Regexes are fully anchored, as in Alertmanager. A missing label matches as "".

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// A matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One parsed matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Matchers as their policy-file text, for `#[serde(with = "...")]`.
pub mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Matcher;

    pub fn serialize<S: Serializer>(ms: &[Matcher], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ms.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Matcher>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        raw.iter()
            .map(|m| Matcher::parse(m).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The policy-file spelling, which `parse` reads back to an equal matcher:
/// the value quoted, with only `"`, `\` and newlines escaped (`unquote`'s inverse).
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl Matcher {
    /// Parse `name<op>value`; the value may be double-quoted (with `\"`, `\\`, `\n` escapes).
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let name_len = s
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit()))
            })
            .map_or(s.len(), |(i, _)| i);
        let name = &s[..name_len];
        if name.is_empty() {
            return Err(format!(
                "`{s}`: a matcher starts with a label name, e.g. alertname=\"X\""
            ));
        }
        let rest = s[name_len..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(format!(
                "`{s}`: expected one of =, !=, =~, !~ after `{name}`"
            ));
        };
        let value = unquote(rest.trim()).map_err(|e| format!("`{s}`: {e}"))?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("`{s}`: invalid regular expression: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// Whether the label set satisfies this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            // parse() always compiles a regex for the regex operators
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.contains('"') {
            return Err("unbalanced quote in value".into());
        }
        return Ok(v.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    loop {
        match chars.next() {
            None => return Err("value has no closing quote".into()),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some(c) => {
                    // keep regex escapes such as \d intact
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("value ends inside an escape".into()),
            },
            Some(c) => out.push(c),
        }
    }
    if !chars.as_str().trim().is_empty() {
        return Err("unexpected text after the closing quote".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_displayed_matcher_parses_back_to_an_equal_one() {
        for value in [
            "plain",
            "tab\there",
            "q\"uote",
            "back\\slash",
            r"\d+-[a-z]",
            "line\nbreak",
            "ünï",
        ] {
            for op in ["=", "!=", "=~", "!~"] {
                let m = Matcher::parse(&format!("l{op}\"x\"")).unwrap();
                let m = Matcher {
                    value: value.to_string(),
                    ..m
                };
                let back = Matcher::parse(&m.to_string()).unwrap_or_else(|e| panic!("{m}: {e}"));
                assert_eq!(back, m, "{m}");
            }
        }
    }

    #[test]
    fn equality_and_inequality() {
        let l = labels(&[("alertname", "KubePodCrashLooping"), ("namespace", "shop")]);
        assert!(
            Matcher::parse(r#"alertname="KubePodCrashLooping""#)
                .unwrap()
                .matches(&l)
        );
        assert!(
            Matcher::parse("alertname=KubePodCrashLooping")
                .unwrap()
                .matches(&l)
        );
        assert!(!Matcher::parse(r#"namespace!="shop""#).unwrap().matches(&l));
        assert!(
            Matcher::parse(r#"namespace != "kube-system""#)
                .unwrap()
                .matches(&l)
        );
    }

    #[test]
    fn regexes_are_anchored_like_alertmanager() {
        let l = labels(&[("alertname", "KubePodCrashLooping")]);
        assert!(
            Matcher::parse(r#"alertname=~"KubePod.*""#)
                .unwrap()
                .matches(&l)
        );
        assert!(!Matcher::parse(r#"alertname=~"Pod""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"alertname!~"Pod""#).unwrap().matches(&l));
        assert!(
            !Matcher::parse(r#"alertname!~"Kube.*""#)
                .unwrap()
                .matches(&l)
        );
    }

    #[test]
    fn missing_label_matches_as_empty() {
        let l = labels(&[]);
        assert!(Matcher::parse(r#"team="""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"team!="a""#).unwrap().matches(&l));
        assert!(!Matcher::parse(r#"team=~".+""#).unwrap().matches(&l));
    }

    #[test]
    fn escapes_in_quoted_values() {
        let m = Matcher::parse(r#"summary="say \"hi\"""#).unwrap();
        assert_eq!(m.value, r#"say "hi""#);
        let m = Matcher::parse(r#"pod=~"api-\d+""#).unwrap();
        assert!(m.matches(&labels(&[("pod", "api-12")])));
    }

    #[test]
    fn bad_matchers_explain_themselves() {
        for s in [
            "=x",
            "alertname",
            "alertname~x",
            r#"a="x"#,
            r#"a=~"(""#,
            r#"a="x" y"#,
        ] {
            let e = Matcher::parse(s).unwrap_err();
            assert!(e.contains(s.trim()), "{s}: {e}");
        }
    }
}
