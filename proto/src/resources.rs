//! Mesos resources as operators write them (`--resources`): the text form
//! `cpus:4;mem:2048;disk(role):10000;ports:[31000-32000];zones:{a,b}` or
//! a JSON array of `Resource` objects.

use crate::v1::value::{Range, Ranges, Scalar, Set, Type};
use crate::v1::{Resource, resource};

/// A resource string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resources {text:?}: {why}")]
pub struct ResourceError {
    /// The offending part.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

fn fail(text: &str, why: impl Into<String>) -> ResourceError {
    ResourceError {
        text: text.to_owned(),
        why: why.into(),
    }
}

/// Parses the text or JSON form; every name may appear once.
pub fn parse(text: &str) -> Result<Vec<Resource>, ResourceError> {
    let trimmed = text.trim();
    let resources = if trimmed.starts_with('[') {
        parse_json(trimmed)?
    } else {
        trimmed
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?
    };
    for (i, r) in resources.iter().enumerate() {
        if resources[..i]
            .iter()
            .any(|o| o.name == r.name && o.reservations == r.reservations)
        {
            return Err(fail(text, format!("{} is given twice", r.name)));
        }
    }
    Ok(resources)
}

fn parse_json(text: &str) -> Result<Vec<Resource>, ResourceError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| fail(text, format!("bad JSON: {e}")))?;
    let items = json
        .as_array()
        .ok_or_else(|| fail(text, "not a JSON array"))?;
    items
        .iter()
        .map(|item| {
            let resource: Resource = crate::json::from_value(item)
                .map_err(|e| fail(&item.to_string(), e.to_string()))?;
            check(&resource).map_err(|why| fail(&item.to_string(), why))?;
            Ok(resource)
        })
        .collect()
}

/// One `name[(role)]:value`.
fn parse_one(part: &str) -> Result<Resource, ResourceError> {
    let (key, value) = part
        .split_once(':')
        .ok_or_else(|| fail(part, "expected NAME:VALUE"))?;
    let (name, role) = match key.split_once('(') {
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or_else(|| fail(part, "a role is written NAME(ROLE)"))?;
            (name.trim(), Some(role.trim()))
        }
        None => (key.trim(), None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return Err(fail(part, "a resource name is letters, digits and _ . - /"));
    }
    let value = value.trim();
    let mut resource = Resource {
        name: name.to_owned(),
        ..Resource::default()
    };
    if let Some(inner) = value.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| fail(part, "ranges are written [BEGIN-END,...]"))?;
        let mut ranges = Vec::new();
        for range in inner.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (begin, end) = range
                .split_once('-')
                .ok_or_else(|| fail(part, format!("range {range:?} is not BEGIN-END")))?;
            let number = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| fail(part, format!("{s:?} is not a whole number")))
            };
            ranges.push(Range {
                begin: number(begin)?,
                end: number(end)?,
            });
        }
        resource.r#type = Type::Ranges as i32;
        resource.ranges = Some(Ranges { range: ranges });
    } else if let Some(inner) = value.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| fail(part, "sets are written {A,B,...}"))?;
        resource.r#type = Type::Set as i32;
        resource.set = Some(Set {
            item: inner
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect(),
        });
    } else {
        let number: f64 = value.parse().map_err(|_| {
            fail(
                part,
                format!("{value:?} is not a number, [ranges] or {{set}}"),
            )
        })?;
        resource.r#type = Type::Scalar as i32;
        resource.scalar = Some(Scalar { value: number });
    }
    if let Some(role) = role.filter(|r| *r != "*") {
        resource.reservations.push(resource::ReservationInfo {
            r#type: Some(resource::reservation_info::Type::Static as i32),
            role: Some(role.to_owned()),
            ..Default::default()
        });
    }
    check(&resource).map_err(|why| fail(part, why))?;
    Ok(resource)
}

/// The rules every resource obeys, whichever form it came in.
fn check(resource: &Resource) -> Result<(), String> {
    match Type::try_from(resource.r#type) {
        Ok(Type::Scalar) => {
            let value = resource
                .scalar
                .as_ref()
                .map(|s| s.value)
                .ok_or("a scalar without a value")?;
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{value} is not a finite, non-negative amount"));
            }
        }
        Ok(Type::Ranges) => {
            let ranges = resource.ranges.as_ref().ok_or("ranges without ranges")?;
            let mut sorted: Vec<&Range> = ranges.range.iter().collect();
            sorted.sort_by_key(|r| r.begin);
            for (i, r) in sorted.iter().enumerate() {
                if r.begin > r.end {
                    return Err(format!("range {}-{} ends before it begins", r.begin, r.end));
                }
                if i > 0 && sorted[i - 1].end >= r.begin {
                    return Err(format!("range {}-{} overlaps another", r.begin, r.end));
                }
            }
        }
        Ok(Type::Set) => {
            resource.set.as_ref().ok_or("a set without items")?;
        }
        _ => return Err("only scalar, ranges and set resources are supported".into()),
    }
    Ok(())
}

/// The scalar amount of `name` in `resources` (summed over roles).
pub fn scalar(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum()
}

/// A scalar resource of `amount` (unreserved).
pub fn new_scalar(name: &str, amount: f64) -> Resource {
    Resource {
        name: name.to_owned(),
        r#type: Type::Scalar as i32,
        scalar: Some(Scalar { value: amount }),
        ..Resource::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_form() {
        let r =
            parse("cpus:4; mem:2048;disk(ops):10000;ports:[31000-32000, 33000-33001];zones:{a,b}")
                .unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(scalar(&r, "cpus"), 4.0);
        assert_eq!(scalar(&r, "mem"), 2048.0);
        assert_eq!(r[2].reservations[0].role.as_deref(), Some("ops"));
        assert_eq!(r[3].ranges.as_ref().unwrap().range.len(), 2);
        assert_eq!(r[4].set.as_ref().unwrap().item, vec!["a", "b"]);
        assert!(parse("cpus(*):1").unwrap()[0].reservations.is_empty());
    }

    #[test]
    fn parses_the_json_form() {
        let r = parse(r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":2.5}}]"#).unwrap();
        assert_eq!(scalar(&r, "cpus"), 2.5);
    }

    #[test]
    fn bad_resources_say_which_and_why() {
        for (text, why) in [
            ("cpus", "expected NAME:VALUE"),
            ("cpus:lots", "is not a number"),
            ("cpus:-1", "non-negative"),
            ("cpus:1;cpus:2", "given twice"),
            ("ports:[2-1]", "ends before it begins"),
            ("ports:[1-5,5-9]", "overlaps"),
            ("ports:[1-", "ranges are written"),
            ("cpus(ops:1", "NAME(ROLE)"),
            ("bad name:1", "a resource name"),
            ("[{\"name\":\"x\"}]", "x"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
