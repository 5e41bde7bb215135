//! The console's state and its key handling — pure: no terminal, no network, no clock.
//!
//! The event loop feeds it channel views (built by the poller) and key presses; it answers
//! with [`Action`]s for the loop to carry out. Anything that takes a channel off air goes
//! through a [`Confirm`] first.

use super::model::{Health, StatusSnapshot};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::time::Duration;

/// Bitrate samples kept per channel for the sparkline (one per poll).
pub const HISTORY_LEN: usize = 240;
/// Console-side events kept per channel.
pub const EVENTS_LEN: usize = 50;

/// How well the console currently hears from a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not answered yet.
    Connecting,
    /// The latest snapshot is recent.
    Fresh,
    /// The latest good snapshot is older than the staleness limit (the channel is slow).
    Stale {
        /// Age of the latest good snapshot (console monotonic clock).
        age: Duration,
    },
    /// Several polls in a row failed.
    Unreachable {
        /// The latest failure.
        error: String,
    },
}

/// What the overview shows as a channel's status: its health when the console hears it, or
/// why it cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Health from a fresh snapshot.
    Health(Health),
    /// Health from an old snapshot (dimmed).
    Stale(Health),
    /// No usable answer.
    Unreachable,
    /// No answer yet.
    Connecting,
    /// An N+M box waiting while another box owns the channel (normal, not an alarm).
    Standby,
}

/// Everything the console knows about one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelView {
    /// Control API base URL (`http://127.0.0.1:7070`); identifies the channel in the console.
    pub url: String,
    /// Name from discovery or the latest snapshot; the URL's host when neither is known.
    pub name: String,
    /// How well the console hears from it.
    pub link: Link,
    /// The latest good snapshot, kept while the channel is stale or unreachable.
    pub snapshot: Option<StatusSnapshot>,
    /// Total output bitrate per successful poll in kbit/s, oldest first.
    pub bitrate_history: Vec<u64>,
    /// Console-side events for this channel (link changes, command results), oldest first.
    pub events: Vec<String>,
}

impl ChannelView {
    /// A view with no answer yet.
    pub fn new(url: &str, name: &str) -> ChannelView {
        ChannelView {
            url: url.to_string(),
            name: name.to_string(),
            link: Link::Connecting,
            snapshot: None,
            bitrate_history: Vec::new(),
            events: Vec::new(),
        }
    }

    /// What to show as the channel's status.
    pub fn shown(&self) -> Shown {
        match (&self.link, &self.snapshot) {
            (Link::Unreachable { .. }, _) => Shown::Unreachable,
            (Link::Connecting, _) | (_, None) => Shown::Connecting,
            (Link::Stale { .. }, Some(s)) => Shown::Stale(s.health()),
            (Link::Fresh, Some(s))
                if s.redundancy.is_member() && s.redundancy.role == "standby" =>
            {
                Shown::Standby
            }
            (Link::Fresh, Some(s)) => Shown::Health(s.health()),
        }
    }

    /// True when commands can be sent (the channel answers).
    pub fn reachable(&self) -> bool {
        matches!(self.link, Link::Fresh | Link::Stale { .. })
    }
}

/// Which screen is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// All channels, one line each.
    Overview,
    /// One channel in full.
    Detail,
}

/// A request for the event loop; the loop sends it to the channel without waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST /start`.
    Start {
        /// Control API base URL.
        url: String,
    },
    /// `POST /stop`.
    Stop {
        /// Control API base URL.
        url: String,
    },
    /// `POST /restart`.
    Restart {
        /// Control API base URL.
        url: String,
    },
    /// `POST /destinations/<destination>/enable|disable`.
    SetDestination {
        /// Control API base URL.
        url: String,
        /// Destination name.
        destination: String,
        /// Enable (true) or disable.
        enabled: bool,
    },
    /// `POST /failback`: this (standby) box asks the owner to hand the channel back.
    Failback {
        /// Control API base URL.
        url: String,
    },
    /// Leave the console.
    Quit,
}

impl Action {
    /// A short description for messages (`stop news`).
    pub fn describe(&self, channel: &str) -> String {
        match self {
            Action::Start { .. } => format!("start {channel}"),
            Action::Stop { .. } => format!("stop {channel}"),
            Action::Restart { .. } => format!("restart {channel}"),
            Action::Failback { .. } => format!("fail back {channel}"),
            Action::SetDestination {
                destination,
                enabled,
                ..
            } => format!(
                "{} {channel}/{destination}",
                if *enabled { "enable" } else { "disable" }
            ),
            Action::Quit => "quit".into(),
        }
    }

    /// The channel URL the action is for.
    pub fn url(&self) -> Option<&str> {
        match self {
            Action::Start { url }
            | Action::Stop { url }
            | Action::Restart { url }
            | Action::Failback { url }
            | Action::SetDestination { url, .. } => Some(url),
            Action::Quit => None,
        }
    }
}

/// A pending question: the action runs only on `y`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// What runs on `y`.
    pub action: Action,
    /// The question, naming the channel and the consequence.
    pub question: String,
}

/// The console's whole state.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    /// Watched channels in display order.
    pub channels: Vec<ChannelView>,
    /// Index into `channels` of the selected channel.
    pub selected: usize,
    /// Index of the selected destination in the detail view.
    pub dest_selected: usize,
    /// The screen.
    pub view: View,
    /// The help overlay is up.
    pub help: bool,
    /// A question waiting for `y`/`n`.
    pub confirm: Option<Confirm>,
    /// The latest message for the status line (command results, refusals).
    pub message: Option<String>,
}

impl Default for App {
    fn default() -> App {
        App::new()
    }
}

impl App {
    /// An empty console on the overview.
    pub fn new() -> App {
        App {
            channels: Vec::new(),
            selected: 0,
            dest_selected: 0,
            view: View::Overview,
            help: false,
            confirm: None,
            message: None,
        }
    }

    /// Replaces the channel views, keeping the selection on the same channel (by URL).
    pub fn set_channels(&mut self, channels: Vec<ChannelView>) {
        let current = self.channels.get(self.selected).map(|c| c.url.clone());
        self.channels = channels;
        self.selected = current
            .and_then(|u| self.channels.iter().position(|c| c.url == u))
            .unwrap_or(self.selected)
            .min(self.channels.len().saturating_sub(1));
        let dests = self.destination_names().len();
        self.dest_selected = self.dest_selected.min(dests.saturating_sub(1));
    }

    /// The selected channel.
    pub fn selected_channel(&self) -> Option<&ChannelView> {
        self.channels.get(self.selected)
    }

    /// Destination names of the selected channel, in display order.
    pub fn destination_names(&self) -> Vec<String> {
        self.selected_channel()
            .and_then(|c| c.snapshot.as_ref())
            .map(|s| s.destinations.iter().map(|d| d.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Handles one key press; returns what the event loop must do.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if let Some(confirm) = self.confirm.take() {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.message = None;
                    Some(confirm.action)
                }
                _ => {
                    self.message = Some("cancelled".into());
                    None
                }
            };
        }
        if self.help {
            // Any key closes the help; `q` there closes only the help, not the console.
            self.help = false;
            return None;
        }
        match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => {
                self.help = true;
                None
            }
            KeyCode::Esc | KeyCode::Backspace => {
                self.view = View::Overview;
                None
            }
            KeyCode::Enter => {
                if !self.channels.is_empty() {
                    self.view = View::Detail;
                    self.dest_selected = 0;
                }
                None
            }
            KeyCode::Tab | KeyCode::Right => {
                self.move_channel(1);
                None
            }
            KeyCode::BackTab | KeyCode::Left => {
                self.move_channel(-1);
                None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_cursor(-1);
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_cursor(1);
                None
            }
            KeyCode::Char('g') => self.channel_action(|url| Action::Start { url }),
            KeyCode::Char('s') => self.channel_action(|url| Action::Stop { url }),
            KeyCode::Char('r') => self.channel_action(|url| Action::Restart { url }),
            KeyCode::Char('F') => self.failback_action(),
            KeyCode::Char('e') => self.destination_action(true),
            KeyCode::Char('d') => self.destination_action(false),
            _ => None,
        }
    }

    fn move_channel(&mut self, delta: isize) {
        let n = self.channels.len();
        if n == 0 {
            return;
        }
        self.selected = (self.selected as isize + delta).rem_euclid(n as isize) as usize;
        self.dest_selected = 0;
    }

    fn move_cursor(&mut self, delta: isize) {
        match self.view {
            View::Overview => {
                let n = self.channels.len();
                if n > 0 {
                    self.selected =
                        (self.selected as isize + delta).clamp(0, n as isize - 1) as usize;
                }
            }
            View::Detail => {
                let n = self.destination_names().len();
                if n > 0 {
                    self.dest_selected =
                        (self.dest_selected as isize + delta).clamp(0, n as isize - 1) as usize;
                }
            }
        }
    }

    /// The selected channel if commands can go to it; otherwise sets a message and is `None`.
    fn commandable(&mut self) -> Option<&ChannelView> {
        let Some(ch) = self.channels.get(self.selected) else {
            self.message = Some("no channel".into());
            return None;
        };
        if !ch.reachable() {
            self.message = Some(format!("{} does not answer: no command sent", ch.name));
            return None;
        }
        self.channels.get(self.selected)
    }

    fn channel_action(&mut self, make: impl FnOnce(String) -> Action) -> Option<Action> {
        let ch = self.commandable()?;
        let action = make(ch.url.clone());
        let on_air = ch
            .snapshot
            .as_ref()
            .is_some_and(|s| s.health() != Health::OffAir);
        let name = ch.name.clone();
        match &action {
            Action::Stop { .. } | Action::Restart { .. } if on_air => {
                let verb = if matches!(action, Action::Stop { .. }) {
                    "Stop"
                } else {
                    "Restart"
                };
                self.confirm = Some(Confirm {
                    question: format!("{verb} channel {name}? This takes it OFF AIR."),
                    action,
                });
                None
            }
            _ => {
                self.message = Some(format!("{}…", action.describe(&name)));
                Some(action)
            }
        }
    }

    /// Fail-back always asks first: it moves the channel between boxes.
    fn failback_action(&mut self) -> Option<Action> {
        let ch = self.commandable()?;
        let name = ch.name.clone();
        let url = ch.url.clone();
        let Some(r) = ch
            .snapshot
            .as_ref()
            .map(|s| &s.redundancy)
            .filter(|r| r.is_member())
        else {
            self.message = Some(format!("{name} is not an N+M member: nothing to fail back"));
            return None;
        };
        if r.role == "active" {
            self.message = Some(format!("{name}: box {} already owns it", r.box_id));
            return None;
        }
        let owner = if r.owner.is_empty() { "?" } else { &r.owner };
        self.confirm = Some(Confirm {
            question: format!(
                "Fail back {name} from box {owner} to box {}? Handover at a fragment boundary.",
                r.box_id
            ),
            action: Action::Failback { url },
        });
        None
    }

    fn destination_action(&mut self, enabled: bool) -> Option<Action> {
        if self.view != View::Detail {
            self.message = Some("open a channel (Enter) to choose a destination".into());
            return None;
        }
        let names = self.destination_names();
        let Some(dest) = names.get(self.dest_selected).cloned() else {
            self.message = Some("this channel has no destinations".into());
            return None;
        };
        let ch = self.commandable()?;
        let action = Action::SetDestination {
            url: ch.url.clone(),
            destination: dest.clone(),
            enabled,
        };
        let name = ch.name.clone();
        if !enabled && disabling_takes_off_air(ch.snapshot.as_ref(), &dest) {
            self.confirm = Some(Confirm {
                question: format!(
                    "Disable {dest} on {name}? No other destination is live: this takes the channel OFF AIR."
                ),
                action,
            });
            return None;
        }
        self.message = Some(format!("{}…", action.describe(&name)));
        Some(action)
    }
}

/// True when `dest` is the only enabled destination with a live session of a running channel.
fn disabling_takes_off_air(snapshot: Option<&StatusSnapshot>, dest: &str) -> bool {
    let Some(s) = snapshot else { return false };
    if s.health() == Health::OffAir {
        return false;
    }
    !s.destinations
        .iter()
        .any(|d| d.name != dest && d.enabled && d.live() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::model::{DestinationSnapshot, StreamSnapshot};

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn session(dest: &str, state: &str) -> DestinationSnapshot {
        DestinationSnapshot {
            name: dest.into(),
            role: dest.into(),
            streams: vec![StreamSnapshot {
                state: state.into(),
                ..StreamSnapshot::default()
            }],
            ..DestinationSnapshot::default()
        }
    }

    fn channel(name: &str, dests: &[(&str, &str)]) -> ChannelView {
        let mut c = ChannelView::new(&format!("http://{name}:1"), name);
        c.link = Link::Fresh;
        c.snapshot = Some(StatusSnapshot {
            channel: name.into(),
            state: "running".into(),
            destinations: dests.iter().map(|(d, s)| session(d, s)).collect(),
            ..StatusSnapshot::default()
        });
        c
    }

    fn app() -> App {
        let mut a = App::new();
        a.set_channels(vec![
            channel("news", &[("primary", "live"), ("backup", "live")]),
            channel("sports", &[("primary", "live")]),
        ]);
        a
    }

    #[test]
    fn stop_on_air_channel_asks_first_and_y_sends_it() {
        let mut a = app();
        assert_eq!(a.on_key(key('s')), None);
        let q = a
            .confirm
            .as_ref()
            .map(|c| c.question.clone())
            .unwrap_or_default();
        assert!(q.contains("news") && q.contains("OFF AIR"), "{q}");
        assert_eq!(
            a.on_key(key('y')),
            Some(Action::Stop {
                url: "http://news:1".into()
            })
        );
        assert!(a.confirm.is_none());
    }

    #[test]
    fn any_other_key_cancels_the_confirmation() {
        let mut a = app();
        a.on_key(key('r'));
        assert!(a.confirm.is_some());
        assert_eq!(a.on_key(key('q')), None, "q answers the question, not quit");
        assert!(a.confirm.is_none());
        assert_eq!(a.message.as_deref(), Some("cancelled"));
    }

    #[test]
    fn start_and_stop_of_stopped_channel_need_no_confirmation() {
        let mut a = app();
        if let Some(s) = a.channels[0].snapshot.as_mut() {
            s.state = "stopped".into();
        }
        assert_eq!(
            a.on_key(key('g')),
            Some(Action::Start {
                url: "http://news:1".into()
            })
        );
        assert!(matches!(a.on_key(key('s')), Some(Action::Stop { .. })));
    }

    #[test]
    fn unreachable_channel_gets_no_commands() {
        let mut a = app();
        a.channels[0].link = Link::Unreachable {
            error: "connection refused".into(),
        };
        assert_eq!(a.on_key(key('s')), None);
        assert!(a.confirm.is_none());
        assert!(a
            .message
            .as_deref()
            .unwrap_or("")
            .contains("does not answer"));
    }

    #[test]
    fn disabling_the_backup_is_immediate_disabling_the_last_live_one_asks() {
        let mut a = app();
        a.on_key(code(KeyCode::Enter));
        assert_eq!(a.view, View::Detail);
        a.on_key(code(KeyCode::Down));
        assert_eq!(
            a.on_key(key('d')),
            Some(Action::SetDestination {
                url: "http://news:1".into(),
                destination: "backup".into(),
                enabled: false
            })
        );
        // sports has one destination: disabling it takes the channel off air.
        a.on_key(code(KeyCode::Tab));
        assert_eq!(a.selected, 1);
        assert_eq!(a.on_key(key('d')), None);
        assert!(a.confirm.is_some());
        assert!(matches!(
            a.on_key(key('y')),
            Some(Action::SetDestination { enabled: false, .. })
        ));
        assert!(matches!(
            a.on_key(key('e')),
            Some(Action::SetDestination { enabled: true, .. })
        ));
    }

    #[test]
    fn destination_keys_need_the_detail_view() {
        let mut a = app();
        assert_eq!(a.on_key(key('d')), None);
        assert!(a.confirm.is_none());
    }

    #[test]
    fn help_opens_with_question_mark_and_any_key_closes_it() {
        let mut a = app();
        a.on_key(key('?'));
        assert!(a.help);
        assert_eq!(a.on_key(key('q')), None);
        assert!(!a.help);
        assert_eq!(a.on_key(key('q')), Some(Action::Quit));
    }

    #[test]
    fn selection_follows_the_channel_when_the_list_changes() {
        let mut a = app();
        a.on_key(code(KeyCode::Down));
        assert_eq!(a.selected, 1);
        let mut list = vec![channel("arts", &[]), channel("news", &[])];
        list.push(channel("sports", &[]));
        a.set_channels(list);
        assert_eq!(a.selected, 2);
        a.set_channels(vec![channel("arts", &[])]);
        assert_eq!(a.selected, 0);
        a.set_channels(Vec::new());
        assert_eq!(a.selected, 0);
        assert_eq!(a.on_key(code(KeyCode::Down)), None);
        assert_eq!(a.on_key(key('s')), None);
    }

    #[test]
    fn esc_returns_to_overview_and_arrows_clamp() {
        let mut a = app();
        a.on_key(code(KeyCode::Up));
        assert_eq!(a.selected, 0);
        a.on_key(code(KeyCode::Enter));
        a.on_key(code(KeyCode::Down));
        a.on_key(code(KeyCode::Down));
        assert_eq!(a.dest_selected, 1);
        a.on_key(code(KeyCode::Esc));
        assert_eq!(a.view, View::Overview);
    }
}
