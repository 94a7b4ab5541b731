//! `GET /events`: history since `since`, then live events until `until` or
//! until the client leaves.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::SystemTime;

use super::error::ApiError;
use super::Call;
use crate::engine::Response;
use crate::events::{Event, EventFilter};
use crate::streams::events::EventStream;
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
