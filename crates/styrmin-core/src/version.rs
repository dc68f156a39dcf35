//! Application versions and `supported_versions` specifiers.
//!
//! Drivers write specifiers the way Python packaging does (`>=2.0,<3.0`, `~=1.4`) and
//! sometimes the way Cargo/npm do (`^1.2`); application versions are mostly semver but often
//! carry a `v` prefix or only two parts (`1.6`). Missing parts count as zero.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("`{0}` is not a version (expected numbers separated by dots, such as 2.3.1)")]
    BadVersion(String),
    #[error(
        "`{0}` is not a version comparator (expected one of >=, >, <=, <, ==, !=, ~=, ^ followed by a version)"
    )]
    BadComparator(String),
    #[error("the specifier is empty")]
    Empty,
    #[error("`~={0}` needs at least two version parts, such as ~=2.1")]
    CompatibleNeedsTwoParts(String),
}

/// A parsed application version. `release` holds the numeric parts as written (at least one).
#[derive(Debug, Clone)]
pub struct Version {
    release: Vec<u64>,
    pre: Option<String>,
    text: String,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let bad = || VersionError::BadVersion(text.to_owned());
        let trimmed = text.trim();
        let body = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
        // Build metadata never affects ordering (semver §10).
        let body = body.split_once('+').map_or(body, |(b, _)| b);
        let (numbers, pre) = match body.split_once('-') {
            Some((n, p)) if !p.is_empty() => (n, Some(p.to_owned())),
            Some(_) => return Err(bad()),
            None => split_python_prerelease(body),
        };
        let release = numbers
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    Err(bad())
                } else {
                    part.parse::<u64>().map_err(|_| bad())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version {
            release,
            pre,
            text: trimmed.to_owned(),
        })
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }

    fn part(&self, i: usize) -> u64 {
        self.release.get(i).copied().unwrap_or(0)
    }

    fn same_release(&self, other: &Version) -> bool {
        let n = self.release.len().max(other.release.len());
        (0..n).all(|i| self.part(i) == other.part(i))
    }
}

/// `1.0rc1`, `2.0a3`, `2.0b1`: Python-style pre-releases without a dash.
fn split_python_prerelease(body: &str) -> (&str, Option<String>) {
    match body.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) if i > 0 => (&body[..i], Some(body[i..].to_owned())),
        _ => (body, None),
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.release.len().max(other.release.len());
        for i in 0..n {
            match self.part(i).cmp(&other.part(i)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => compare_prerelease(a, b),
        }
    }
}

/// Semver §11: dot-separated identifiers, numeric ones compared as numbers and lower than
/// alphanumeric ones.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ordering = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
    Compatible,
    Caret,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Version,
    /// `==2.*` / `!=2.1.*`: compare only the written prefix.
    wildcard: bool,
}

impl Comparator {
    fn parse(text: &str) -> Result<Comparator, VersionError> {
        let text = text.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("~=", Op::Compatible),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("^", Op::Caret),
            ("=", Op::Eq),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(sym, op)| text.strip_prefix(sym).map(|rest| (*op, rest.trim())))
            .ok_or_else(|| VersionError::BadComparator(text.to_owned()))?;
        let (rest, wildcard) = match rest.strip_suffix(".*") {
            Some(prefix) if matches!(op, Op::Eq | Op::Ne) => (prefix, true),
            _ => (rest, false),
        };
        let version =
            Version::parse(rest).map_err(|_| VersionError::BadComparator(text.to_owned()))?;
        if op == Op::Compatible && version.release.len() < 2 {
            return Err(VersionError::CompatibleNeedsTwoParts(rest.to_owned()));
        }
        Ok(Comparator {
            op,
            version,
            wildcard,
        })
    }

    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.op {
            Op::Ge => v >= c,
            Op::Gt => v > c,
            Op::Le => v <= c,
            // PEP 440: `<3.0` does not admit 3.0's own pre-releases.
            Op::Lt => v < c && !(v.is_prerelease() && !c.is_prerelease() && v.same_release(c)),
            Op::Eq if self.wildcard => prefix_matches(v, c),
            Op::Ne if self.wildcard => !prefix_matches(v, c),
            Op::Eq => v == c,
            Op::Ne => v != c,
            Op::Compatible => {
                // ~=1.4.5 means >=1.4.5 and ==1.4.*
                let prefix = &c.release[..c.release.len() - 1];
                v >= c && prefix.iter().enumerate().all(|(i, p)| v.part(i) == *p)
            }
            Op::Caret => {
                // ^1.2.3 := >=1.2.3 <2.0.0; ^0.2.3 := <0.3.0; ^0.0.3 := <0.0.4
                let first_nonzero = c.release.iter().position(|p| *p != 0);
                let upto = match first_nonzero {
                    Some(i) => i,
                    None => c.release.len() - 1,
                };
                v >= c && (0..=upto).all(|i| v.part(i) == c.part(i))
            }
        }
    }
}

fn prefix_matches(v: &Version, prefix: &Version) -> bool {
    prefix
        .release
        .iter()
        .enumerate()
        .all(|(i, p)| v.part(i) == *p)
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Compatible => "~=",
            Op::Caret => "^",
        };
        let star = if self.wildcard { ".*" } else { "" };
        write!(f, "{op}{}{star}", self.version)
    }
}

/// `supported_versions`: comparators separated by commas, all of which must match.
#[derive(Debug, Clone)]
pub struct VersionSpec {
    comparators: Vec<Comparator>,
    text: String,
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<VersionSpec, VersionError> {
        if text.trim().is_empty() {
            return Err(VersionError::Empty);
        }
        let comparators = text
            .split(',')
            .map(Comparator::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VersionSpec {
            comparators,
            text: text.trim().to_owned(),
        })
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.comparators.iter().all(|c| c.matches(version))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for VersionSpec {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for VersionSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for VersionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VersionSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_matches(spec: &str, version: &str) -> bool {
        VersionSpec::parse(spec)
            .unwrap()
            .matches(&Version::parse(version).unwrap())
    }

    #[test]
    fn versions_tolerate_v_prefix_and_short_forms() {
        assert_eq!(
            Version::parse("v1.6").unwrap(),
            Version::parse("1.6.0").unwrap()
        );
        assert!(Version::parse("2").unwrap() < Version::parse("2.0.1").unwrap());
        assert!(Version::parse("1.0.0-rc.1").unwrap() < Version::parse("1.0.0").unwrap());
        assert!(Version::parse("1.0.0-alpha").unwrap() < Version::parse("1.0.0-alpha.1").unwrap());
        assert!(
            Version::parse("1.0.0-alpha.2").unwrap() < Version::parse("1.0.0-alpha.10").unwrap()
        );
        assert!(Version::parse("1.0rc1").unwrap() < Version::parse("1.0").unwrap());
        assert_eq!(
            Version::parse("1.2.3+build.5").unwrap(),
            Version::parse("1.2.3").unwrap()
        );
        for bad in ["", "latest", "1..2", "1.x", "-1", "1.2-"] {
            assert!(Version::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn ranges_of_comparators_all_must_match() {
        assert!(spec_matches(">=2.0,<3.0", "2.3.1"));
        assert!(spec_matches(">=2.0, <3.0", "v2.0"));
        assert!(!spec_matches(">=2.0,<3.0", "3.0.0"));
        assert!(!spec_matches(">=2.0,<3.0", "1.9.9"));
        assert!(spec_matches(">0.1,<=1.0", "1.0"));
        assert!(!spec_matches(">0.1", "0.1.0"));
        assert!(spec_matches("==1.6", "1.6.0"));
        assert!(spec_matches("!=1.6.1", "1.6.2"));
    }

    #[test]
    fn less_than_excludes_prereleases_of_the_bound() {
        assert!(!spec_matches(">=2.0,<3.0", "3.0.0-rc1"));
        assert!(spec_matches(">=2.0,<3.0", "2.9.0-rc1"));
    }

    #[test]
    fn compatible_release_follows_pep_440() {
        assert!(spec_matches("~=2.2", "2.9"));
        assert!(!spec_matches("~=2.2", "3.0"));
        assert!(spec_matches("~=1.4.5", "1.4.9"));
        assert!(!spec_matches("~=1.4.5", "1.5.0"));
        assert!(!spec_matches("~=1.4.5", "1.4.4"));
        assert!(matches!(
            VersionSpec::parse("~=1"),
            Err(VersionError::CompatibleNeedsTwoParts(_))
        ));
    }

    #[test]
    fn caret_follows_semver_conventions() {
        assert!(spec_matches("^1.2.3", "1.9.0"));
        assert!(!spec_matches("^1.2.3", "2.0.0"));
        assert!(spec_matches("^0.2.3", "0.2.9"));
        assert!(!spec_matches("^0.2.3", "0.3.0"));
        assert!(spec_matches("^0.0.3", "0.0.3"));
        assert!(!spec_matches("^0.0.3", "0.0.4"));
    }

    #[test]
    fn wildcards_compare_a_prefix() {
        assert!(spec_matches("==2.*", "2.7.1"));
        assert!(!spec_matches("==2.*", "3.0"));
        assert!(spec_matches("!=2.1.*", "2.2.0"));
        assert!(!spec_matches("!=2.1.*", "2.1.7"));
    }

    #[test]
    fn bad_specifiers_say_which_part_is_wrong() {
        assert_eq!(
            VersionSpec::parse(">=2.0,3.0").unwrap_err(),
            VersionError::BadComparator("3.0".into())
        );
        assert_eq!(
            VersionSpec::parse(">=two").unwrap_err(),
            VersionError::BadComparator(">=two".into())
        );
        assert_eq!(VersionSpec::parse(" ").unwrap_err(), VersionError::Empty);
    }
}
