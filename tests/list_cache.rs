//! Whole `GET /containers/json` bodies served from the cache kept per query
//! (engine/views.rs `list_body`): every change shows in the very next list,
//! each query (filters, limit, all, API version) gets its own body, a body
//! never outlives the second its `Status` texts were counted in, and a cached
//! body equals a freshly built one byte for byte.

mod common;

use std::time::Duration;

use common::cli::*;
use common::{url_encode, Daemon};
use serde_json::{json, Value};

/// A list body as served (raw bytes, as text).
fn list(d: &Daemon, query: &str) -> String {
    let r = d.request("GET", &format!("/containers/json{query}"), None);
    assert_eq!(r.status, 200, "list {query}: {r:?}");
    r.body
}

/// The same query twice (the second answer comes from the cache when the
/// first was built in the same second), both answers returned.
fn list_twice(d: &Daemon, query: &str) -> (String, String) {
    (list(d, query), list(d, query))
}

fn rows(body: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(a)) => a,
        other => panic!("not a JSON array: {other:?} in {body}"),
    }
}

fn row_of(body: &str, id: &str) -> Option<Value> {
    rows(body).into_iter().find(|r| r["Id"] == id)
}

fn ids(body: &str) -> Vec<String> {
    rows(body)
        .iter()
        .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn filters(v: Value) -> String {
    format!("?all=1&filters={}", url_encode(&v.to_string()))
}

fn create(d: &Daemon, name: &str, extra: Value) -> String {
    let mut body = json!({"Image": "busybox", "Cmd": ["sleep", "600"],
        "HostConfig": {"NetworkMode": "none"}});
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            b.insert(k.clone(), v.clone());
        }
    }
    common::raw_api::create(d, name, &body)
}

fn post(d: &Daemon, path: &str, want: u16) {
    let r = d.request("POST", path, None);
    assert_eq!(r.status, want, "POST {path}: {r:?}");
}

/// Warm every query `check` reads, make a change, then the next answer to
/// each must show it.
fn after_change(d: &Daemon, queries: &[&str], change: impl FnOnce()) -> Vec<String> {
    for q in queries {
        list_twice(d, q);
    }
    change();
    queries.iter().map(|q| list(d, q)).collect()
}

/// One daemon for both checks (they run one after the other).
#[test]
fn list_bodies_are_cached_per_query_and_never_stale() {
    let d = Daemon::with_busybox();
    every_change_shows_in_the_next_list(&d);
    cached_body_equals_a_fresh_one(&d);
}

fn every_change_shows_in_the_next_list(d: &Daemon) {
    let (all, running) = ("?all=1", "");

    // create: in `all`, not in the running list.
    let mut id = String::new();
    let got = after_change(d, &[all, running], || {
        id = create(d, "lc-one", json!({"Labels": {"lc": "a"}}))
    });
    assert_eq!(
        row_of(&got[0], &id).expect("created: listed")["State"],
        "created"
    );
    assert!(row_of(&got[1], &id).is_none(), "{}", got[1]);

    // rename (CLI).
    let got = after_change(d, &[all], || {
        ok(d, &["rename", "lc-one", "lc-two"]);
    });
    assert_eq!(row_of(&got[0], &id).unwrap()["Names"][0], "/lc-two");

    // start (raw HTTP): running in both lists.
    let got = after_change(d, &[all, running], || {
        post(d, &format!("/containers/{id}/start"), 204)
    });
    for body in &got {
        let r = row_of(body, &id).expect("started: listed");
        assert_eq!(r["State"], "running", "{r}");
        assert!(r["Status"].as_str().unwrap().starts_with("Up "), "{r}");
    }

    // The `Status` text counts seconds: a body is never served past the
    // second it was built in, even with nothing else changing.
    let first = row_of(&list(d, running), &id).unwrap()["Status"].clone();
    std::thread::sleep(Duration::from_millis(2100));
    let (a, b) = list_twice(d, running);
    let later = row_of(&b, &id).unwrap()["Status"].clone();
    assert_ne!(first, later, "Status still {first} two seconds later");
    assert!(
        later.as_str().unwrap().ends_with("seconds"),
        "{later} (then {first})"
    );
    assert!(row_of(&a, &id).is_some());

    // A label filter's body: a second container with the label appears in
    // it at once, one without it does not; a filter on another value has
    // its own body.
    let lab_a = filters(json!({"label": ["lc=a"]}));
    let lab_b = filters(json!({"label": ["lc=b"]}));
    let mut id2 = String::new();
    let mut id3 = String::new();
    let got = after_change(d, &[&lab_a, &lab_b], || {
        id2 = create(d, "lc-three", json!({"Labels": {"lc": "b"}}));
        id3 = create(d, "lc-four", json!({}));
    });
    assert_eq!(ids(&got[0]), vec![id.clone()], "{}", got[0]);
    assert_eq!(ids(&got[1]), vec![id2.clone()], "{}", got[1]);
    let (_, cached_a) = list_twice(d, &lab_a);
    let (_, cached_b) = list_twice(d, &lab_b);
    assert_eq!(ids(&cached_a), vec![id.clone()]);
    assert_eq!(ids(&cached_b), vec![id2.clone()]);

    // limit and before/since each key their own body.
    let newest_first = ids(&list(d, all));
    assert_eq!(newest_first, vec![id3.clone(), id2.clone(), id.clone()]);
    for _ in 0..2 {
        assert_eq!(ids(&list(d, "?limit=1")), vec![id3.clone()]);
        assert_eq!(ids(&list(d, "?limit=2")), vec![id3.clone(), id2.clone()]);
        let before = filters(json!({"before": [id2.clone()]}));
        let since = filters(json!({"since": [id2.clone()]}));
        assert_eq!(ids(&list(d, &before)), vec![id.clone()]);
        assert_eq!(ids(&list(d, &since)), vec![id3.clone()]);
        assert_eq!(ids(&list(d, "?limit=1")), vec![id3.clone()]);
    }

    // A bad query is never answered from another query's body.
    let r = d.request(
        "GET",
        &format!(
            "/containers/json?filters={}",
            url_encode(r#"{"status":["bogus"]}"#)
        ),
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");

    // health: the probe's verdict reaches the next list.
    let hid = create(
        d,
        "lc-health",
        json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 300_000_000u64}}),
    );
    post(d, &format!("/containers/{hid}/start"), 204);
    list_twice(d, running);
    wait_for("lc-health healthy in inspect", 30, || {
        state(d, &hid)["Health"]["Status"] == "healthy"
    });
    let r = row_of(&list(d, running), &hid).expect("listed");
    assert!(r["Status"].as_str().unwrap().ends_with("(healthy)"), "{r}");
    let healthy = filters(json!({"health": ["healthy"]}));
    assert_eq!(ids(&list(d, &healthy)), vec![hid.clone()]);

    // stop (raw HTTP): out of the running list, exited in `all`.
    let got = after_change(d, &[all, running], || {
        post(d, &format!("/containers/{id}/stop?t=0"), 204)
    });
    let r = row_of(&got[0], &id).expect("stopped: listed in all");
    assert_eq!(r["State"], "exited", "{r}");
    assert!(
        r["Status"].as_str().unwrap().starts_with("Exited (137)"),
        "{r}"
    );
    assert!(row_of(&got[1], &id).is_none(), "{}", got[1]);

    // remove (CLI, and raw HTTP): gone at once, from `docker ps -a` too.
    let got = after_change(d, &[all, &lab_a], || {
        ok(d, &["rm", "lc-two"]);
    });
    assert!(row_of(&got[0], &id).is_none(), "{}", got[0]);
    assert_eq!(got[1].trim(), "[]");
    let got = after_change(d, &[all, running], || {
        let r = d.request("DELETE", &format!("/containers/{hid}?force=1"), None);
        assert_eq!(r.status, 204, "{r:?}");
    });
    assert!(row_of(&got[0], &hid).is_none() && row_of(&got[1], &hid).is_none());
    let ps = ok(d, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        ps.split_whitespace().collect::<Vec<_>>(),
        ["lc-four", "lc-three"],
        "{ps}"
    );
    let got = after_change(d, &[all], || {
        ok(d, &["rm", "lc-four", "lc-three"]);
    });
    assert_eq!(got[0].trim(), "[]");
}

/// A cached body is byte for byte the body built afresh: against one built
/// through another query (the same rows: `limit` past the end), and each row
/// against `size=1`'s (built anew in a worker, sizes dropped).
fn cached_body_equals_a_fresh_one(d: &Daemon) {
    let mut made = Vec::new();
    for i in 0..6 {
        let id = create(
            d,
            &format!("lc-eq{i}"),
            json!({"Labels": {"n": i.to_string(), "q": "a \"quoted\" <label>"},
                   "Cmd": ["sh", "-c", "echo 'a b' && sleep 600"]}),
        );
        if i % 2 == 0 {
            post(d, &format!("/containers/{id}/start"), 204);
        }
        made.push(id);
    }
    post(d, &format!("/containers/{}/stop?t=0", made[2]), 204);
    // v1.11 shapes an exited row's `Status` otherwise ("Exit 137"): its
    // body and v1.45's never stand in for each other.
    for _ in 0..2 {
        for (path, want) in [
            ("/v1.11/containers/json?all=1", "Exit 137"),
            ("/v1.45/containers/json?all=1", "Exited (137)"),
            ("/containers/json?all=1", "Exited (137)"),
        ] {
            let r = d.request("GET", path, None);
            assert_eq!(r.status, 200, "{r:?}");
            let row = row_of(&r.body, &made[2]).expect("listed");
            assert!(
                row["Status"].as_str().unwrap().starts_with(want),
                "{path}: {row}"
            );
        }
    }
    // Same second for both answers: retry while a second boundary falls
    // between them (the `Status` texts would differ).
    let mut same = false;
    for _ in 0..10 {
        let (_, cached) = list_twice(d, "?all=1");
        let other = list(d, "?all=1&limit=1000");
        let again = list(d, "?all=1");
        if cached == again && cached == other {
            assert_eq!(ids(&cached).len(), 6, "{cached}");
            same = true;
            break;
        }
    }
    assert!(same, "cached and freshly built bodies never matched");

    let strip = |mut v: Value| {
        if let Some(m) = v.as_object_mut() {
            m.remove("SizeRw");
            m.remove("SizeRootFs");
            m.remove("Status");
        }
        v
    };
    let cached: Vec<Value> = rows(&list(d, "?all=1")).into_iter().map(strip).collect();
    let r = d.request("GET", "/containers/json?all=1&size=1", None);
    assert_eq!(r.status, 200, "{r:?}");
    let fresh: Vec<Value> = rows(&r.body).into_iter().map(strip).collect();
    assert_eq!(cached, fresh);
}
