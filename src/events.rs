//! The event bus: every state change is published here; `/events` clients
//! subscribe. History and per-subscriber queues are bounded, so a client
//! that never reads costs a fixed amount of memory and is then dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::SystemTime;

use crate::reply::ConnId;

/// Events kept for `since` queries (dockerd keeps 256 too).
const HISTORY: usize = 256;
/// Events queued for one subscriber before it is considered stuck.
const QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct Event {
    /// "container", "image", "daemon", "network", "volume", ...
    pub kind: &'static str,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    pub time: SystemTime,
}

impl Event {
    pub fn new(kind: &'static str, action: &str, actor_id: &str) -> Event {
        Event {
            kind,
            action: action.to_string(),
            actor_id: actor_id.to_string(),
            attributes: BTreeMap::new(),
            time: SystemTime::now(),
        }
    }

    pub fn attr(mut self, key: &str, value: &str) -> Event {
        self.attributes.insert(key.to_string(), value.to_string());
        self
    }

    /// The v1.45 `EventMessage` shape, plus the deprecated `status`, `id` and
    /// `from` fields that older clients still read for containers and images.
    pub fn to_json(&self) -> serde_json::Value {
        let nanos = crate::timefmt::unix_nanos(self.time);
        let mut v = crate::json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": { "ID": self.actor_id, "Attributes": self.attributes },
            "scope": "local",
            "time": nanos / 1_000_000_000,
            "timeNano": nanos,
        });
        if matches!(self.kind, "container" | "image") {
            v["status"] = self.action.clone().into();
            v["id"] = self.actor_id.clone().into();
            if let Some(image) = self.attributes.get("image") {
                v["from"] = image.clone().into();
            }
        }
        v
    }
}

/// A parsed `filters` argument for events: OR within a key, AND across keys.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub terms: HashMap<String, Vec<String>>,
}

impl EventFilter {
    pub fn matches(&self, ev: &Event) -> bool {
        self.terms
            .iter()
            .all(|(key, values)| values.is_empty() || values.iter().any(|v| Self::term(key, v, ev)))
    }

    fn term(key: &str, value: &str, ev: &Event) -> bool {
        let attr = |k: &str| ev.attributes.get(k).map(String::as_str).unwrap_or("");
        // dockerd's "fuzzy" match: exact, or the value is a prefix of an ID.
        let fuzzy = |v: &str| {
            ev.actor_id == v || (!v.is_empty() && ev.actor_id.starts_with(v)) || attr("name") == v
        };
        match key {
            "type" => ev.kind == value,
            // "exec_start: sh -c ..." matches the filter "exec_start".
            "event" => ev.action == value || ev.action.split(':').next() == Some(value),
            "container" => ev.kind == "container" && fuzzy(value),
            "image" => {
                let strip = |s: &str| {
                    s.rsplit_once(':')
                        .filter(|(_, t)| !t.contains('/'))
                        .map(|(n, _)| n.to_string())
                        .unwrap_or_else(|| s.to_string())
                };
                let candidates = [ev.actor_id.as_str(), attr("image"), attr("name")];
                match ev.kind {
                    "image" | "container" => candidates
                        .iter()
                        .any(|c| !c.is_empty() && (*c == value || strip(c) == value)),
                    _ => false,
                }
            }
            "label" => crate::label::matches(value, |k| ev.attributes.get(k).map(String::as_str)),
            "daemon" => ev.kind == "daemon" && fuzzy(value),
            "network" | "volume" | "plugin" => ev.kind == key && fuzzy(value),
            "scope" => value == "local",
            // Unknown keys are rejected when the filter is parsed.
            _ => false,
        }
    }

    /// Keys this filter understands (others get a 400 at parse time).
    pub const KEYS: &'static [&'static str] = &[
        "type",
        "event",
        "container",
        "image",
        "label",
        "daemon",
        "network",
        "volume",
        "plugin",
        "scope",
    ];
}

struct Subscriber {
    queue: VecDeque<Rc<Event>>,
    overflowed: bool,
}

#[derive(Default)]
pub struct EventBus {
    history: VecDeque<Rc<Event>>,
    subscribers: HashMap<ConnId, Subscriber>,
}

impl EventBus {
    /// Record `ev` and queue it for every subscriber; returns the
    /// subscribers to wake.
    pub fn publish(&mut self, ev: Event) -> Vec<ConnId> {
        log::debug!("event {} {} {}", ev.kind, ev.action, ev.actor_id);
        let ev = Rc::new(ev);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let mut woken = Vec::with_capacity(self.subscribers.len());
        for (conn, sub) in self.subscribers.iter_mut() {
            if sub.queue.len() >= QUEUE {
                sub.overflowed = true;
            } else {
                sub.queue.push_back(ev.clone());
            }
            woken.push(*conn);
        }
        woken
    }

    /// Past events at or after `since`.
    pub fn history_since(&self, since: SystemTime) -> Vec<Rc<Event>> {
        self.history
            .iter()
            .filter(|e| e.time >= since)
            .cloned()
            .collect()
    }

    pub fn subscribe(&mut self, conn: ConnId) {
        self.subscribers.insert(
            conn,
            Subscriber {
                queue: VecDeque::new(),
                overflowed: false,
            },
        );
    }

    pub fn unsubscribe(&mut self, conn: ConnId) {
        self.subscribers.remove(&conn);
    }

    /// Drain `conn`'s queue. `None` means it fell too far behind (or is not
    /// subscribed) and its stream must end.
    pub fn take(&mut self, conn: ConnId) -> Option<Vec<Rc<Event>>> {
        let sub = self.subscribers.get_mut(&conn)?;
        if sub.overflowed {
            self.subscribers.remove(&conn);
            return None;
        }
        Some(sub.queue.drain(..).collect())
    }

    pub fn listener_count(&self) -> usize {
        self.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> EventFilter {
        let mut f = EventFilter::default();
        for (k, v) in pairs {
            f.terms
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        f
    }

    #[test]
    fn filters_match_like_dockerd() {
        let ev = Event::new("container", "exec_start: sh -c true", "abcdef0123")
            .attr("name", "web")
            .attr("image", "busybox:latest")
            .attr("tier", "front");
        assert!(filter(&[("type", "container"), ("type", "image")]).matches(&ev));
        assert!(!filter(&[("type", "image")]).matches(&ev));
        assert!(filter(&[("event", "exec_start")]).matches(&ev));
        assert!(filter(&[("container", "abc")]).matches(&ev));
        assert!(filter(&[("container", "web")]).matches(&ev));
        assert!(!filter(&[("container", "we")]).matches(&ev));
        assert!(filter(&[("image", "busybox")]).matches(&ev));
        assert!(filter(&[("label", "tier=front")]).matches(&ev));
        assert!(filter(&[("label", "tier")]).matches(&ev));
        assert!(!filter(&[("label", "tier=back")]).matches(&ev));
        assert!(!filter(&[("type", "container"), ("event", "die")]).matches(&ev));
    }

    #[test]
    fn bounded_history_and_queues() {
        let mut bus = EventBus::default();
        bus.subscribe(7);
        for i in 0..(QUEUE + 10) {
            let woken = bus.publish(Event::new("daemon", "reload", &i.to_string()));
            assert_eq!(woken, vec![7]);
        }
        assert_eq!(bus.history.len(), HISTORY);
        assert!(bus.take(7).is_none(), "an overflowed subscriber is dropped");
        assert_eq!(bus.listener_count(), 0);
        let json = Event::new("container", "start", "x")
            .attr("image", "img")
            .to_json();
        assert_eq!(json["status"], "start");
        assert_eq!(json["from"], "img");
        assert_eq!(json["Actor"]["Attributes"]["image"], "img");
    }
}
