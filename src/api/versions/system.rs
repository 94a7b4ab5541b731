//! Older shapes of the system endpoints.

use crate::json;
use serde_json::Value;

/// v1.0-v1.10 `info`: v1.3's listener count (a string in its doc) and the
/// LXC version (none: there is no LXC here).
pub fn info_v1_0(v: Value) -> Value {
    let mut v = info_v1_11(v);
    v["EventsListeners"] = json!(v["NEventsListener"].as_u64().unwrap_or(0).to_string());
    v["LXCVersion"] = json!("");
    v
}

/// v1.11-v1.24 `info`: the execution driver and the init path, as dockerd
/// filled them (the daemon is its own init).
pub fn info_v1_11(mut v: Value) -> Value {
    v["ExecutionDriver"] = json!("native-0.2");
    v["InitPath"] = json!("");
    v
}
