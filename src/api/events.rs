//! `GET /events`: history since `since`, then live events until `until` or
//! until the client leaves.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::error::ApiError;
use super::Call;
use crate::engine::Engine;
use crate::engine::Response;
use crate::events::{Event, EventFilter};
use crate::reply::{BodySource, ConnId, Pull};
use crate::timefmt::parse_timestamp;

pub fn stream(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let time = |key: &str| -> Result<Option<SystemTime>, ApiError> {
        match q.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_timestamp(v).map(Some).ok_or_else(|| {
                ApiError::InvalidParameter(format!("invalid value for {key}: {v:?}"))
            }),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let filter = EventFilter {
        terms: super::filters::parse(q.get("filters"), EventFilter::KEYS)?,
    };
    let in_window = |e: &Event| until.is_none_or(|u| e.time <= u);
    let backlog: VecDeque<Rc<Event>> = if since.is_some() || until.is_some() {
        call.engine
            .events
            .history_since(since.unwrap_or(SystemTime::UNIX_EPOCH))
            .into_iter()
            .filter(|e| in_window(e) && filter.matches(e))
            .collect()
    } else {
        VecDeque::new()
    };
    let live = until.is_none_or(|u| u > SystemTime::now());
    if live {
        call.engine.events.subscribe(call.conn);
    }
    let source = EventStream {
        filter,
        backlog,
        until,
        live,
    };
    Ok(Response::stream(200, "application/json", Box::new(source)))
}

struct EventStream {
    filter: EventFilter,
    backlog: VecDeque<Rc<Event>>,
    until: Option<SystemTime>,
    live: bool,
}

impl EventStream {
    fn write(out: &mut Vec<u8>, ev: &Event) {
        out.extend_from_slice(ev.to_json().to_string().as_bytes());
        out.push(b'\n');
    }

    fn stop(&mut self, engine: &mut Engine, me: ConnId) -> Pull {
        if self.live {
            engine.events.unsubscribe(me);
            self.live = false;
        }
        Pull::End
    }
}

impl BodySource<Engine> for EventStream {
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        if !self.backlog.is_empty() {
            for ev in self.backlog.drain(..) {
                Self::write(out, &ev);
            }
            return Pull::Data;
        }
        if !self.live {
            return Pull::End;
        }
        let now = SystemTime::now();
        let Some(events) = engine.events.take(me) else {
            log::warn!("events client on connection {me} fell behind; closing its stream");
            return self.stop(engine, me);
        };
        for ev in events.iter().filter(|e| self.filter.matches(e)) {
            if self.until.is_some_and(|u| ev.time > u) {
                break;
            }
            Self::write(out, ev);
        }
        if !out.is_empty() {
            return Pull::Data;
        }
        match self.until {
            Some(u) if u <= now => self.stop(engine, me),
            Some(u) => {
                // `until` may be far beyond what an Instant can hold.
                let left = u.duration_since(now).unwrap_or_default();
                Pull::Wait(Instant::now().checked_add(left))
            }
            None => Pull::Wait(None),
        }
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        self.stop(engine, me);
    }
}
