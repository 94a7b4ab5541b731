//! JSON values, small: our `json!` macro, and typed values to and from `Value` and text.
//!
//! `json!` is serde_json's macro of the same name and grammar, built smaller.
//!
//! serde_json's `json!({...})` expands, at every call site and for every key, to
//! a `String` allocation of the key, a map insert, a drop of the insert's result
//! and an `unwrap` (with its own panic location) of the value's conversion; our
//! responses hold hundreds of keys, so that inline code was tens of KiB of the
//! binary. Here a call site only lays out `(key, value)` pairs in an array and
//! makes one call to [`object`], which does the rest once for all of them. The
//! resulting `Value` is the same (the map sorts its keys either way).
//!
//! Grammar, as serde_json's: `null`, `true`, `false`, `[elements]`,
//! `{key: value, ...}` (a key is one token: a string literal, a `&str` constant,
//! or a parenthesised expression giving `&str`, `String` or `&String`), or any
//! expression whose type is `Serialize`. A trailing comma is fine.
//!
//! [`to_value`], [`from_value`], [`text`] and [`bytes`]: typed values to and from
//! `serde_json::Value`, and a `Value` as text, through the one encoder
//! (`to_vec`) and the one decoder (`from_slice`) each type already has.
//!
//! `serde_json::to_value` / `from_value` are a second serializer and a
//! second deserializer: every type passed to them instantiates its whole
//! derived tree again (HostConfig alone is several KiB of the binary). Going
//! through bytes reuses the instantiations the type's record or wire form
//! already needs, plus `Value`'s own, which exist anyway. The values are
//! equal: integers, strings and maps round-trip exactly, and `Value`'s maps
//! are ordered by key either way. The cost is a small copy, on records that
//! are small; not for hot paths.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// The object of `pairs` (later keys win, as with serde_json's inserts). The
/// values are taken out of the slice, leaving `Null`: `json!` hands the pairs
/// in a `ManuallyDrop` array, so a call site carries no drop of its array
/// (nothing is left in it to free).
pub fn object(pairs: &mut [(&str, Value)]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert((*key).to_owned(), std::mem::take(value));
    }
    Value::Object(map)
}

/// Any `Serialize` value as JSON. serde_json's conversion fails only for a map
/// whose keys are not strings, which no response holds; that gives `null`
/// instead of a panic.
pub fn value<T: Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A JSON value from JSON-like syntax; see the module comment.
#[macro_export]
macro_rules! json {
    (null) => { ::serde_json::Value::Null };
    (true) => { ::serde_json::Value::Bool(true) };
    (false) => { ::serde_json::Value::Bool(false) };
    ([]) => { ::serde_json::Value::Array(::std::vec::Vec::new()) };
    ([ $($items:tt)+ ]) => { ::serde_json::Value::Array($crate::json_items!([] $($items)+)) };
    ({}) => { ::serde_json::Value::Object(::serde_json::Map::new()) };
    ({ $($pairs:tt)+ }) => {
        $crate::json::object(&mut *::core::mem::ManuallyDrop::new($crate::json_pairs!([] $($pairs)+)))
    };
    ($other:expr) => { $crate::json::value(&$other) };
}

/// `json!`'s object body: `key: value` pairs into an array of `(&str, Value)`.
#[doc(hidden)]
#[macro_export]
macro_rules! json_pairs {
    ([$($done:tt)*]) => { [$($done)*] };
    ([$($done:tt)*] $key:tt : null $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), ::serde_json::Value::Null),] $($($rest)*)?)
    };
    ([$($done:tt)*] $key:tt : true $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), ::serde_json::Value::Bool(true)),] $($($rest)*)?)
    };
    ([$($done:tt)*] $key:tt : false $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), ::serde_json::Value::Bool(false)),] $($($rest)*)?)
    };
    ([$($done:tt)*] $key:tt : [$($v:tt)*] $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), $crate::json!([$($v)*])),] $($($rest)*)?)
    };
    ([$($done:tt)*] $key:tt : {$($v:tt)*} $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), $crate::json!({$($v)*})),] $($($rest)*)?)
    };
    ([$($done:tt)*] $key:tt : $v:expr $(, $($rest:tt)*)?) => {
        $crate::json_pairs!([$($done)* (::core::convert::AsRef::<str>::as_ref(&$key), $crate::json::value(&$v)),] $($($rest)*)?)
    };
}

/// `json!`'s array body: the elements into a `Vec<Value>`.
#[doc(hidden)]
#[macro_export]
macro_rules! json_items {
    ([$($done:tt)*]) => { ::std::vec![$($done)*] };
    ([$($done:tt)*] null $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* ::serde_json::Value::Null,] $($($rest)*)?)
    };
    ([$($done:tt)*] true $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* ::serde_json::Value::Bool(true),] $($($rest)*)?)
    };
    ([$($done:tt)*] false $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* ::serde_json::Value::Bool(false),] $($($rest)*)?)
    };
    ([$($done:tt)*] [$($v:tt)*] $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* $crate::json!([$($v)*]),] $($($rest)*)?)
    };
    ([$($done:tt)*] {$($v:tt)*} $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* $crate::json!({$($v)*}),] $($($rest)*)?)
    };
    ([$($done:tt)*] $v:expr $(, $($rest:tt)*)?) => {
        $crate::json_items!([$($done)* $crate::json::value(&$v),] $($($rest)*)?)
    };
}

/// `serde_json::to_value`, through the byte encoder.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Value> {
    serde_json::from_slice(&serde_json::to_vec(v)?)
}

/// `serde_json::from_value`, through the byte decoder. A decoding error's
/// text ends with its position (`at line 1 column N`), unlike
/// `from_value`'s: keep `serde_json::from_value` where that text reaches a
/// client.
pub fn from_value<T: DeserializeOwned>(v: &Value) -> serde_json::Result<T> {
    serde_json::from_slice(&serde_json::to_vec(v)?)
}

/// A value's compact JSON text, byte for byte what its `Display` writes.
/// `Display` is a third and a fourth encoder of `Value` (compact and `{:#}`,
/// over a `fmt::Formatter`): write `json::text(&v)` where `v.to_string()`
/// or `{v}` would go.
pub fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// [`text`] as bytes.
pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json as serde_json_json;

    #[test]
    fn same_values_as_serde_json() {
        let name = String::from("web");
        let names = vec!["a".to_string(), "b".to_string()];
        let key = String::from("dyn");
        const CONST_KEY: &str = "Const";
        let none: Option<u32> = None;
        let ours = crate::json!({
            "Name": name,
            "Names": names,
            "Null": null,
            "T": true,
            "F": false,
            "Empty": {},
            "EmptyList": [],
            "Nested": {"A": 1, "B": [1, null, {"C": "x"}, [true, false]], "D": none},
            CONST_KEY: 3 + 4,
            (key): -1i64,
            "Name": "last wins",
            "Expr": if name.is_empty() { "e" } else { "n" },
        });
        let theirs = serde_json_json!({
            "Name": name,
            "Names": names,
            "Null": null,
            "T": true,
            "F": false,
            "Empty": {},
            "EmptyList": [],
            "Nested": {"A": 1, "B": [1, null, {"C": "x"}, [true, false]], "D": none},
            CONST_KEY: 3 + 4,
            (key): -1i64,
            "Name": "last wins",
            "Expr": if name.is_empty() { "e" } else { "n" },
        });
        assert_eq!(ours, theirs);
        assert_eq!(ours.to_string(), theirs.to_string());
        assert_eq!(
            crate::json!([1, "a", null]),
            serde_json_json!([1, "a", null])
        );
        assert_eq!(crate::json!(name), serde_json_json!(name));
        assert_eq!(crate::json!(null), Value::Null);
    }

    use serde_json::Value;
}

#[cfg(test)]
mod value_tests {
    #[test]
    fn round_trips_as_serde_json_does() {
        let v = json!({"b": [1, -2, 3.5, "x\u{0}\"", null, true], "a": {"z": {}, "y": []}});
        assert_eq!(super::to_value(&v).unwrap(), v);
        let h: crate::container::config::HostConfig =
            serde_json::from_value(json!({"Memory": 5, "Binds": null, "Weird": {"x": 1}})).unwrap();
        assert_eq!(
            super::to_value(&h).unwrap(),
            serde_json::to_value(&h).unwrap()
        );
        let back: crate::container::config::HostConfig =
            super::from_value(&super::to_value(&h).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_vec(&back).unwrap(),
            serde_json::to_vec(&h).unwrap()
        );
        assert!(super::from_value::<Vec<String>>(&json!([1])).is_err());
        assert_eq!(super::text(&v), v.to_string());
        assert_eq!(super::bytes(&v), v.to_string().into_bytes());
        assert_eq!(
            super::text(&json!("\u{7f}<>&\u{2028}")),
            json!("\u{7f}<>&\u{2028}").to_string()
        );
    }
}
