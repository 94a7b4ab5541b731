//! The event stream session: history since `since`, then live events until
//! `until` or until the client leaves.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use crate::engine::Engine;
use crate::events::{Event, EventFilter};
use crate::reply::{BodySource, ConnId, Pull};

/// `GET /events`: the matching history, then live events until `until`.
pub struct EventStream {
    pub filter: EventFilter,
    pub backlog: VecDeque<Rc<Event>>,
    pub until: Option<SystemTime>,
    pub live: bool,
}

impl EventStream {
    fn write(out: &mut Vec<u8>, ev: &Event) {
        out.extend_from_slice(&crate::json::bytes(&ev.to_json()));
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
