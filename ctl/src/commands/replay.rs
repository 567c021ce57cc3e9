//! A followed stream (`events -f`, `logs -f`) that herdctl resumed after a
//! `daemon-reexec` starts over with what the new image remembers; this
//! drops the items already shown, so the user sees each once.
//!
//! Items carry the time herdd stamped on them (RFC 3339, fixed width, so
//! they sort as text). After a resume, an item older than the last one
//! shown, or as old and identical to one shown at that time, is a replay;
//! the first newer item ends the replay.

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Replay {
    /// The time of the last item shown.
    last_time: Option<String>,
    /// The items shown with that time, as JSON text.
    at_last_time: Vec<String>,
    /// Resumed, and no new item seen since.
    replaying: bool,
}

impl Replay {
    /// The stream starts over.
    pub fn resumed(&mut self) {
        self.replaying = true;
    }

    /// Whether `item` is to be shown (it is remembered if so).
    pub fn fresh(&mut self, item: &Value) -> bool {
        let time = item.get("time").and_then(Value::as_str);
        let text = item.to_string();
        if self.replaying {
            match (time, self.last_time.as_deref()) {
                (Some(time), Some(last)) if time < last => return false,
                (Some(time), Some(last)) if time == last && self.at_last_time.contains(&text) => {
                    return false
                }
                _ => self.replaying = false,
            }
        }
        if time != self.last_time.as_deref() {
            self.last_time = time.map(str::to_string);
            self.at_last_time.clear();
        }
        self.at_last_time.push(text);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resumed_stream_shows_each_item_once() {
        let item = |time: &str, n: u32| json!({"time": time, "n": n});
        let mut replay = Replay::default();
        let first = [item("T1", 1), item("T2", 2), item("T2", 3)];
        assert!(first.iter().all(|i| replay.fresh(i)), "all new");
        replay.resumed();
        assert!(!replay.fresh(&item("T1", 1)));
        assert!(!replay.fresh(&item("T2", 2)));
        assert!(!replay.fresh(&item("T2", 3)));
        assert!(replay.fresh(&item("T2", 4)), "same time, not shown yet");
        assert!(replay.fresh(&item("T3", 5)));
        assert!(
            replay.fresh(&item("T3", 5)),
            "a repeat outside a replay is shown"
        );
    }

    #[test]
    fn without_a_resume_everything_is_shown() {
        let mut replay = Replay::default();
        assert!(replay.fresh(&json!({"time": "T2"})));
        assert!(replay.fresh(&json!({"time": "T1"})));
        assert!(replay.fresh(&json!({"time": "T1"})));
    }
}
