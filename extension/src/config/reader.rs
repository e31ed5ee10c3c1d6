//! What every section reads with: the [`Var`] rows that document a variable, and the
//! [`Reader`] that parses values, resolves aliases and collects problems.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use super::{ConfigProblem, Env};

/// One variable: its name, the names read in its place, its default and its meaning.
/// Each section lists its own; the README's configuration table is made from them.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The `HEARTH_*` name.
    pub name: &'static str,
    /// Names read, in this order, when `name` is unset; their values mean the same.
    pub aliases: &'static [&'static str],
    /// A variable of AWS's Parameters and Secrets extension read when neither `name` nor
    /// an alias is set, in AWS's own units, with a note on those units; its section
    /// converts it.
    pub aws: Option<(&'static str, &'static str)>,
    /// The default, as the README shows it.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

impl Var {
    /// A variable without aliases.
    pub const fn new(name: &'static str, default: &'static str, meaning: &'static str) -> Self {
        Var {
            name,
            aliases: &[],
            aws: None,
            default,
            meaning,
        }
    }

    /// With aliases of the same meaning.
    pub const fn alias(self, aliases: &'static [&'static str]) -> Self {
        Var { aliases, ..self }
    }

    /// With a variable of AWS's extension read in AWS's units.
    pub const fn aws(self, name: &'static str, units: &'static str) -> Self {
        Var {
            aws: Some((name, units)),
            ..self
        }
    }
}

/// Reads variables and collects problems.
pub struct Reader<'a> {
    /// The variables.
    pub env: &'a Env,
    /// Every problem found so far.
    pub problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    /// The raw value and the name it came from: the `HEARTH_` name, else the first alias
    /// of the same meaning that is set. Not AWS's own-unit variable: see [`Reader::aws`].
    pub fn raw(&self, name: &'static str) -> Option<(&'static str, &'a str)> {
        if let Some(v) = self.env.get(name) {
            return Some((name, v));
        }
        let var = super::find(name)?;
        var.aliases
            .iter()
            .find_map(|a| self.env.get(a).map(|v| (*a, v)))
    }

    /// AWS's own-unit variable for `name` and its value, when neither `name` nor an alias
    /// is set (those win).
    pub fn aws(&self, name: &'static str) -> Option<(&'static str, &'a str)> {
        if self.raw(name).is_some() {
            return None;
        }
        let (aws, _) = super::find(name)?.aws?;
        self.env.get(aws).map(|v| (aws, v.trim()))
    }

    /// Records a problem with `variable`.
    pub fn problem(&mut self, variable: &str, message: String) {
        self.problems.push(ConfigProblem {
            variable: variable.to_string(),
            message,
        });
    }

    /// Parses `name` (or its alias) with `parse`, or gives `default` when unset; a value
    /// `parse` refuses is a problem naming `accepted`.
    pub fn parse<T>(
        &mut self,
        name: &'static str,
        default: T,
        accepted: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some((var, raw)) => match parse(raw.trim()) {
                Some(v) => v,
                None => {
                    self.problem(var, format!("invalid value {raw:?}; accepted: {accepted}"));
                    default
                }
            },
        }
    }

    /// AWS's own-unit variable for `name`, parsed with `parse`; `None` when it is unset
    /// (or `name` is set), or refused (a problem naming `accepted`).
    pub fn parse_aws<T>(
        &mut self,
        name: &'static str,
        accepted: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let (var, raw) = self.aws(name)?;
        let v = parse(raw);
        if v.is_none() {
            self.problem(var, format!("invalid value {raw:?}; accepted: {accepted}"));
        }
        v
    }

    /// A duration from `min` to `max`.
    pub fn duration(
        &mut self,
        name: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let accepted = format!(
            "a duration such as 250ms, 30s, 5m or 1h (a bare number is seconds), from {} to {}",
            humanize(min),
            humanize(max)
        );
        self.parse(name, default, &accepted, |s| {
            parse_duration(s).filter(|d| *d >= min && *d <= max)
        })
    }

    /// A count from 1 to `max`.
    pub fn size(&mut self, name: &'static str, default: usize, max: usize) -> NonZeroUsize {
        let accepted = format!("an integer from 1 to {max}");
        let v = self.parse(name, default, &accepted, |s| {
            s.parse::<usize>().ok().filter(|n| (1..=max).contains(n))
        });
        NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn flag(&mut self, name: &'static str, default: bool) -> bool {
        self.parse(name, default, "true or false", parse_flag)
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, in any case.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Comma-separated items, trimmed, empty ones dropped.
pub fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn humanize(d: Duration) -> String {
    if d.as_millis() % 1000 != 0 || d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// The known name nearest to `name` by edit distance, if it is close.
pub fn closest<'k>(name: &str, known: &BTreeSet<&'k str>) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
