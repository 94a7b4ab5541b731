//! Response shapes by API version. Handlers build the newest shape (v1.45);
//! each endpoint whose documented shape changed has a table here of "since
//! version X the shape is Y", oldest first, and the request's version picks
//! the newest entry not above it. A shape is a function from the newest JSON
//! to that version's JSON, so no handler branches on versions itself.
//!
//! The tables follow the version docs in `shared/api-spec/` (v1.3, v1.11,
//! v1.24) and the API changelog.

mod containers;
mod images;
mod system;

use serde_json::Value;

use super::router::ApiVersion;

/// One endpoint's shapes over time.
pub type Reshape = fn(Value) -> Value;

pub struct Shapes(&'static [(ApiVersion, Reshape)]);

impl Shapes {
    /// `value` (the newest shape) as the client's `version` documents it.
    pub fn render(&self, version: ApiVersion, value: Value) -> Value {
        match pick(self.0, version) {
            Some(f) => f(value),
            None => value,
        }
    }
}

/// The newest entry of `table` (oldest first) not above `version`.
pub fn pick<T: Copy>(table: &[(ApiVersion, T)], version: ApiVersion) -> Option<T> {
    table
        .iter()
        .rev()
        .find(|(since, _)| *since <= version)
        .map(|(_, t)| *t)
}

/// The newest shape as is.
fn current(v: Value) -> Value {
    v
}

const V1_0: ApiVersion = ApiVersion(1, 0);

/// `GET /containers/json` rows: `Ports` a string until v1.5 (a list of
/// `{PrivatePort, PublicPort, Type}` since); an exited container's `Status`
/// "Exit N" through v1.11.
pub const CONTAINER_LIST: Shapes = Shapes(&[
    (V1_0, containers::list_v1_0),
    (ApiVersion(1, 5), containers::list_v1_5),
    (ApiVersion(1, 12), current),
]);

/// `GET /containers/{id}/json`: before v1.12 the v1.3 keys (`State.Ghost`,
/// `NetworkSettings.IpAddress`, `Volumes`, `SysInitPath`); `Volumes` and
/// `VolumesRW` until v1.20 (`Mounts` since).
pub const CONTAINER_INSPECT: Shapes = Shapes(&[
    (V1_0, containers::inspect_v1_0),
    (ApiVersion(1, 12), containers::inspect_v1_12),
    (ApiVersion(1, 20), current),
]);

/// `GET /containers/{id}/top`: a list of `{PID, Tty, Time, Cmd}` in v1.3,
/// `{Titles, Processes}` since v1.4 (ps args).
pub const CONTAINER_TOP: Shapes =
    Shapes(&[(V1_0, containers::top_v1_0), (ApiVersion(1, 4), current)]);

/// `GET /images/json`: one `{Repository, Tag}` row per tag until v1.7, one
/// row per image with `RepoTags` since; `VirtualSize` until v1.44.
pub const IMAGE_LIST: Shapes = Shapes(&[
    (V1_0, images::list_v1_0),
    (ApiVersion(1, 7), images::list_v1_7),
    (ApiVersion(1, 44), current),
]);

/// `GET /images/{name}/json`: the lowercase keys of the image's own JSON
/// (`id`, `parent`, `container_config`) until v1.12, CamelCase since;
/// `VirtualSize` until v1.44, `Container` and `ContainerConfig` until v1.45.
pub const IMAGE_INSPECT: Shapes = Shapes(&[
    (V1_0, images::inspect_v1_0),
    (ApiVersion(1, 12), images::inspect_v1_12),
    (ApiVersion(1, 44), images::inspect_v1_44),
    (ApiVersion(1, 45), current),
]);

/// `GET /info`: v1.3's `EventsListeners` and `LXCVersion`; `InitPath`
/// and `ExecutionDriver` through v1.24.
pub const INFO: Shapes = Shapes(&[
    (V1_0, system::info_v1_0),
    (ApiVersion(1, 11), system::info_v1_11),
    (ApiVersion(1, 25), current),
]);

/// `GET /images/{name}/history`: v1.3's rows are `{Id, Created, CreatedBy}`
/// (a superset is harmless); unchanged in shape since.
///
/// Attach streams: stdout and stderr merged, unframed, until v1.6; the
/// 8-byte multiplexed framing since (without a TTY).
pub const ATTACH_MULTIPLEXED: Switch = Switch(&[(V1_0, false), (ApiVersion(1, 6), true)]);

/// A yes/no that changed with the version.
pub struct Switch(&'static [(ApiVersion, bool)]);

impl Switch {
    pub fn at(&self, version: ApiVersion) -> bool {
        pick(self.0, version).unwrap_or(false)
    }
}

/// `GET /containers/json?before=&since=` (container IDs or names, stopped
/// ones included): the docs' parameters until v1.25's filters replaced them.
pub const LIST_BEFORE_SINCE_PARAMS: Switch = Switch(&[(V1_0, true), (ApiVersion(1, 25), false)]);

/// `POST /containers/{id}/start` with a HostConfig body: applied until
/// v1.24 (dockerd deprecated it in v1.22 and removed it in v1.24).
pub const START_HOST_CONFIG: Switch = Switch(&[(V1_0, true), (ApiVersion(1, 24), false)]);

/// Websocket attach: the `stdin`/`stdout`/`stderr` parameters are read
/// as the v1.3 and v1.11 docs list them; from v1.12 dockerd attached all
/// three whatever the query said, and reads them again since v1.42.
pub const WS_ATTACH_STREAMS_FROM_QUERY: Switch = Switch(&[
    (V1_0, true),
    (ApiVersion(1, 12), false),
    (ApiVersion(1, 42), true),
]);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_entry_not_above_the_version() {
        let t: &[(ApiVersion, u8)] = &[(V1_0, 1), (ApiVersion(1, 5), 2), (ApiVersion(1, 20), 3)];
        assert_eq!(pick(t, ApiVersion(1, 3)), Some(1));
        assert_eq!(pick(t, ApiVersion(1, 5)), Some(2));
        assert_eq!(pick(t, ApiVersion(1, 19)), Some(2));
        assert_eq!(pick(t, ApiVersion(1, 45)), Some(3));
        assert!(!ATTACH_MULTIPLEXED.at(ApiVersion(1, 5)));
        assert!(ATTACH_MULTIPLEXED.at(ApiVersion(1, 6)));
        assert!(WS_ATTACH_STREAMS_FROM_QUERY.at(ApiVersion(1, 3)));
        assert!(!WS_ATTACH_STREAMS_FROM_QUERY.at(ApiVersion(1, 24)));
        assert!(WS_ATTACH_STREAMS_FROM_QUERY.at(ApiVersion(1, 45)));
    }

    #[test]
    fn container_rows_by_version() {
        let row = json!([{"Id": "abc", "Status": "Exited (3) 2 minutes ago", "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
            {"PrivatePort": 22, "Type": "tcp"}
        ]}]);
        let old = CONTAINER_LIST.render(ApiVersion(1, 3), row.clone());
        assert_eq!(old[0]["Ports"], "5353->53/udp, 8080->80");
        assert_eq!(old[0]["Status"], "Exit 3");
        let mid = CONTAINER_LIST.render(ApiVersion(1, 11), row.clone());
        assert_eq!(mid[0]["Ports"], row[0]["Ports"]);
        assert_eq!(mid[0]["Status"], "Exit 3");
        assert_eq!(CONTAINER_LIST.render(ApiVersion(1, 12), row.clone()), row);
    }

    #[test]
    fn image_rows_by_version() {
        let rows = json!([
            {"Id": "sha256:aa", "RepoTags": ["busybox:latest", "my/bb:1"], "Created": 5, "Size": 7},
            {"Id": "sha256:bb", "RepoTags": [], "Created": 4, "Size": 9}
        ]);
        let old = IMAGE_LIST.render(ApiVersion(1, 3), rows.clone());
        let old = old.as_array().unwrap();
        assert_eq!(old.len(), 3);
        assert_eq!(old[0]["Repository"], "busybox");
        assert_eq!(old[0]["Tag"], "latest");
        assert_eq!(old[1]["Repository"], "my/bb");
        assert_eq!(old[1]["Id"], "aa");
        assert_eq!(old[2]["Repository"], "<none>");
        assert_eq!(old[2]["VirtualSize"], 9);
        let mid = IMAGE_LIST.render(ApiVersion(1, 24), rows.clone());
        assert_eq!(mid[0]["VirtualSize"], 7);
        assert_eq!(IMAGE_LIST.render(ApiVersion(1, 45), rows.clone()), rows);
    }

    #[test]
    fn top_by_version() {
        let t = json!({"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "Processes": [["root", "12", "1", "0", "10:00", "?", "00:00:00", "sleep 5"]]});
        let old = CONTAINER_TOP.render(ApiVersion(1, 3), t.clone());
        assert_eq!(
            old,
            json!([{"PID": "12", "Tty": "?", "Time": "00:00:00", "Cmd": "sleep 5"}])
        );
        assert_eq!(CONTAINER_TOP.render(ApiVersion(1, 4), t.clone()), t);
    }
}
