//! The vSphere data-type table (`typetable.txt`, written by
//! `scripts/gen-typetable.py` from the published vSphere type information):
//! for every data type its base and the type of each field, so that a field
//! that is an array comes out as a JSON array even with one element, and leaf
//! text becomes the right JSON scalar.

use once_cell::sync::Lazy;
use std::collections::HashMap;

static TABLE_TEXT: &str = include_str!("typetable.txt");

/// What a field or value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, including enums and property paths.
    String,
    /// xsd:int, long, short, byte.
    Integer,
    /// xsd:float, double.
    Float,
    /// xsd:boolean.
    Boolean,
    /// xsd:dateTime, kept as the server's ISO 8601 text.
    DateTime,
    /// xsd:base64Binary, kept as the server's base64 text.
    Binary,
    /// xsd:anyType: the element says what it is with `xsi:type`.
    Any,
    /// A managed object reference.
    Reference,
    /// A data object of the named type.
    Data(&'static str),
}

/// A field's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldType {
    pub kind: Kind,
    pub array: bool,
}

struct DataType {
    base: Option<&'static str>,
    fields: Vec<(&'static str, FieldType)>,
}

static TYPES: Lazy<HashMap<&'static str, DataType>> = Lazy::new(|| {
    let mut types = HashMap::with_capacity(3100);
    for line in TABLE_TEXT.lines().filter(|line| !line.starts_with('#')) {
        let mut parts = line.split(' ');
        let (Some(name), Some(base)) = (parts.next(), parts.next()) else {
            continue;
        };
        let fields = parts
            .filter_map(|field| {
                let (field_name, type_name) = field.split_once(':')?;
                let (type_name, array) = match type_name.strip_suffix("[]") {
                    Some(element) => (element, true),
                    None => (type_name, false),
                };
                Some((
                    field_name,
                    FieldType {
                        kind: kind_of_table_name(type_name),
                        array,
                    },
                ))
            })
            .collect();
        let base = (base != "-").then_some(base);
        types.insert(name, DataType { base, fields });
    }
    types
});

fn kind_of_table_name(name: &'static str) -> Kind {
    match name {
        "string" => Kind::String,
        "int" | "long" | "short" | "byte" => Kind::Integer,
        "float" | "double" => Kind::Float,
        "boolean" => Kind::Boolean,
        "dateTime" => Kind::DateTime,
        "binary" => Kind::Binary,
        "any" => Kind::Any,
        "mor" => Kind::Reference,
        data => Kind::Data(data),
    }
}

/// The kind of an XML Schema type by its local name (`string`, `int`, ...).
pub(crate) fn schema_kind(local: &str) -> Kind {
    match local {
        "int" | "long" | "short" | "byte" | "integer" | "unsignedInt" | "unsignedLong"
        | "unsignedShort" | "unsignedByte" => Kind::Integer,
        "float" | "double" | "decimal" => Kind::Float,
        "boolean" => Kind::Boolean,
        "dateTime" => Kind::DateTime,
        "base64Binary" => Kind::Binary,
        "anyType" => Kind::Any,
        _ => Kind::String,
    }
}

/// The element kind of a vSphere `ArrayOfX` type name, by X.
pub(crate) fn array_element_kind(element: &str) -> Kind {
    match element {
        "String" | "AnyURI" => Kind::String,
        "Int" | "Long" | "Short" | "Byte" => Kind::Integer,
        "Float" | "Double" => Kind::Float,
        "Boolean" => Kind::Boolean,
        "DateTime" => Kind::DateTime,
        "Base64Binary" => Kind::Binary,
        "AnyType" => Kind::Any,
        "ManagedObjectReference" => Kind::Reference,
        other => data_kind(other),
    }
}

/// `Kind::Data` for a known data type, `Kind::String` otherwise (enums and
/// types newer than the table are text on the wire unless they have children).
pub(crate) fn data_kind(name: &str) -> Kind {
    match TYPES.get_key_value(name) {
        Some((static_name, _)) => Kind::Data(static_name),
        None => Kind::String,
    }
}

/// Whether `name` is a data type the table knows.
pub(crate) fn is_data_type(name: &str) -> bool {
    TYPES.contains_key(name)
}

/// The declared type of `field` in data type `type_name` or one of its bases.
pub(crate) fn field_type(type_name: &str, field: &str) -> Option<FieldType> {
    let mut current = TYPES.get(type_name);
    // The deepest hierarchy is about ten levels; the bound guards a bad table.
    for _ in 0..64 {
        let data_type = current?;
        if let Some((_, found)) = data_type.fields.iter().find(|(name, _)| *name == field) {
            return Some(*found);
        }
        current = TYPES.get(data_type.base?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_the_type_and_its_bases() {
        let quick_stats = field_type("VirtualMachineSummary", "quickStats").unwrap();
        assert_eq!(quick_stats.kind, Kind::Data("VirtualMachineQuickStats"));
        assert!(!quick_stats.array);
        // VirtualDisk inherits `key` from VirtualDevice.
        let key = field_type("VirtualDisk", "key").unwrap();
        assert_eq!((key.kind, key.array), (Kind::Integer, false));
        let iofilter = field_type("VirtualDisk", "iofilter").unwrap();
        assert_eq!((iofilter.kind, iofilter.array), (Kind::String, true));
        let entity = field_type("AlarmState", "entity").unwrap();
        assert_eq!(entity.kind, Kind::Reference);
        assert!(field_type("VirtualDisk", "noSuchField").is_none());
        assert!(field_type("NoSuchType", "key").is_none());
    }

    #[test]
    fn the_table_is_complete() {
        assert!(TYPES.len() > 3000, "{} types", TYPES.len());
        assert!(is_data_type("ObjectContent") && is_data_type("LocalizedMethodFault"));
    }
}
