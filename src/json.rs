//! Typed values to and from `serde_json::Value`, through the one encoder
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
use serde_json::Value;

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
    use serde_json::json;

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
