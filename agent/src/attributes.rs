//! Agent attributes (`--attributes rack:a;zone:eu-1;generation:3`): text,
//! scalars, ranges and sets, offered to frameworks with the resources.

use tepui_proto::resources::{self, ResourceError};
use tepui_proto::v1::Attribute;
use tepui_proto::v1::value::{Text, Type};

/// Parses the attribute text; a value that is a number, `[ranges]` or
/// `{set}` is one, anything else is text.
pub fn parse(text: &str) -> Result<Vec<Attribute>, ResourceError> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once(':').ok_or_else(|| ResourceError {
            text: part.to_owned(),
            why: "an attribute is NAME:VALUE".into(),
        })?;
        let value = value.trim();
        let structured =
            value.starts_with('[') || value.starts_with('{') || value.parse::<f64>().is_ok();
        let attribute = if structured {
            let r = resources::parse(part)?.remove(0);
            Attribute {
                name: r.name,
                r#type: r.r#type,
                scalar: r.scalar,
                ranges: r.ranges,
                set: r.set,
                text: None,
            }
        } else {
            Attribute {
                name: name.trim().to_owned(),
                r#type: Type::Text as i32,
                text: Some(Text {
                    value: value.to_owned(),
                }),
                ..Default::default()
            }
        };
        if out.iter().any(|a: &Attribute| a.name == attribute.name) {
            return Err(ResourceError {
                text: part.to_owned(),
                why: format!("attribute {} is given twice", attribute.name),
            });
        }
        out.push(attribute);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_scalars_ranges_and_sets() {
        let a = parse("rack:a-1;generation:3;slots:[1-4];zones:{x,y}").unwrap();
        assert_eq!(a[0].text.as_ref().unwrap().value, "a-1");
        assert_eq!(a[1].scalar.as_ref().unwrap().value, 3.0);
        assert_eq!(a[2].r#type, Type::Ranges as i32);
        assert_eq!(a[3].r#type, Type::Set as i32);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("rack").is_err());
        assert!(parse("rack:a;rack:b").is_err());
    }
}
