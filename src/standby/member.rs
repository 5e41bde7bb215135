//! One box's membership of one channel: win it, keep the lease, fence, hand over, fail back.
//!
//! A member is either **active** (owns the channel: renews its lease every TTL/4, publishes the
//! profile, runs the channel) or **standby** (the channel is owned elsewhere: it watches, and
//! wins the channel when the owner key is free). See the module doc of [`super`] for fencing.

use super::store::{Lease, Store};
use super::{unix_ms, Coordination, Event, HandoverRecord, OwnerRecord, ProfileRecord};
use crate::control::api::{ChannelState, PoolBox, Redundancy};
use crate::control::{ControlError, RedundancyControl, Supervisor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the member begins.
#[derive(Clone, Debug)]
pub enum MemberStart {
    /// `run --etcd`: take the channel if it is free, else wait as its standby.
    Acquire,
    /// A standby agent already won the channel under `lease`.
    Won {
        lease: Lease,
        /// The box that owned it before (a takeover), if known.
        from: Option<(String, u64)>,
    },
}

#[derive(Debug, Default)]
struct View {
    role: &'static str,
    owner: Option<String>,
    etcd_ok: bool,
    last_renewal: Option<Instant>,
    lease_ttl: Duration,
    events: Vec<Event>,
    pool: Vec<PoolBox>,
    /// (lease, role) last announced in the pool.
    announced: Option<(i64, &'static str)>,
    /// Do not compete for the channel before this instant (after it failed on this box).
    hold_off: Option<Instant>,
}

/// One channel's N+M membership (installed into its [`Supervisor`]).
pub struct Member {
    coord: Coordination,
    channel: String,
    sup: Arc<Supervisor>,
    profile: Option<ProfileRecord>,
    view: Mutex<View>,
    failback: AtomicBool,
    /// A start of the channel is in progress (its outcome is not known yet).
    starting: Arc<AtomicBool>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("channel", &self.channel)
            .field("box_id", &self.coord.box_id)
            .finish_non_exhaustive()
    }
}

/// Stop pushing this long before the lease can expire: covers the time from deciding to
/// fence to the last byte leaving (dropping connections is immediate).
fn fence_margin(ttl: Duration) -> Duration {
    (ttl / 8).clamp(Duration::from_millis(100), Duration::from_millis(500))
}

/// When an owner holding `l` must have stopped pushing.
fn fence_at(l: &Lease) -> Instant {
    l.valid_until
        .checked_sub(fence_margin(l.ttl))
        .unwrap_or(l.valid_until)
}

impl Member {
    /// A member for `sup`'s channel; `profile` is what it publishes while active (`None`: it
    /// republishes nothing).
    pub fn new(
        coord: Coordination,
        sup: Arc<Supervisor>,
        profile: Option<ProfileRecord>,
    ) -> Arc<Member> {
        let channel = sup.plan().channel.clone();
        Arc::new(Member {
            view: Mutex::new(View {
                role: "standby",
                lease_ttl: coord.lease_ttl,
                ..View::default()
            }),
            coord,
            channel,
            sup,
            profile,
            failback: AtomicBool::new(false),
            starting: Arc::new(AtomicBool::new(false)),
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        match self.view.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }

    fn set_role(&self, role: &'static str, owner: Option<String>) {
        let mut v = self.view();
        v.role = role;
        v.owner = owner;
    }

    async fn record(&self, store: &Store, kind: &str, detail: String) {
        let e = Event {
            unix_ms: unix_ms(),
            box_id: self.coord.box_id.clone(),
            kind: kind.into(),
            detail,
        };
        tracing::info!(channel = %self.channel, box_id = %e.box_id, event = %e.kind, detail = %e.detail, "N+M event");
        if let Err(err) = store.event(&self.channel, &e).await {
            tracing::warn!(channel = %self.channel, error = %err, "cannot record the event in etcd");
        }
        self.view().events.push(e);
    }

    /// Runs the membership for ever (until the process ends).
    pub async fn run(self: Arc<Self>, store: Store, start: MemberStart) {
        let mut lease = None;
        let mut active = false;
        if let MemberStart::Won { lease: won, from } = start {
            lease = Some(won);
            active = true;
            let detail = match from {
                Some((b, free_ms)) => format!(
                    "took over from {b}: lease gone, seen free at {free_ms}, won {} ms later",
                    unix_ms().saturating_sub(free_ms)
                ),
                None => "took the free channel".into(),
            };
            self.become_active(&store, None, "takeover", detail).await;
        }
        let mut last_owner: Option<String> = None;
        loop {
            if active {
                match self.active_round(&store, &mut lease).await {
                    Some(next_owner) => {
                        active = false;
                        last_owner = next_owner;
                    }
                    None => continue,
                }
            } else if let Some(won) = self
                .standby_round(&store, &mut lease, &mut last_owner)
                .await
            {
                active = true;
                self.become_active(&store, won.0, won.1, won.2).await;
            }
        }
    }

    /// Publishes the profile, records the event and starts the channel (on a blocking thread:
    /// the start waits for the first fragment boundary while renewals go on).
    async fn become_active(
        &self,
        store: &Store,
        from_fragment: Option<u64>,
        kind: &str,
        detail: String,
    ) {
        self.set_role("active", Some(self.coord.box_id.clone()));
        if let Some(p) = &self.profile {
            let rec = ProfileRecord {
                published_by: self.coord.box_id.clone(),
                published_unix_ms: unix_ms(),
                ..p.clone()
            };
            if let Err(e) = store.put_profile(&self.channel, &rec).await {
                tracing::warn!(channel = %self.channel, error = %e, "cannot publish the profile");
            }
        }
        self.record(store, kind, detail).await;
        let sup = self.sup.clone();
        let channel = self.channel.clone();
        let starting = self.starting.clone();
        starting.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let r = match from_fragment {
                Some(k) => sup.start_at_fragment(k),
                None => sup.start(),
            };
            if let Err(e) = r {
                tracing::error!(channel = %channel, error = %e, "channel did not start after winning it");
            }
            starting.store(false, Ordering::SeqCst);
        });
    }

    /// One renewal period as the owner. Returns `Some(new owner)` when this box stops owning
    /// the channel (fenced: `None` inside; handed over: the requester).
    async fn active_round(
        &self,
        store: &Store,
        lease: &mut Option<Lease>,
    ) -> Option<Option<String>> {
        let Some(l) = *lease else {
            // Cannot happen (active implies a lease); behave as fenced.
            self.fence(store, "no lease").await;
            return Some(None);
        };
        // A run that failed or stalled here (input gone, encoder error, a stuck stage) must
        // not keep the channel dark: stop pushing, give it up so that a standby takes it, and
        // stay out of the race for two TTLs.
        let state = self.sup.state();
        let why = give_up_reason(
            state,
            self.starting.load(Ordering::SeqCst),
            state == ChannelState::Running && self.sup.is_stalled(),
        );
        if let Some(why) = why {
            // Silent before the lease goes, so no two boxes ever push at once.
            self.sup.fence(why);
            let _ = store.revoke(l.id).await;
            *lease = None;
            self.set_role("standby", None);
            self.view().hold_off = Some(Instant::now() + l.ttl * 2);
            self.record(
                store,
                "released",
                format!("{why} on this box: ownership given up for a standby"),
            )
            .await;
            return Some(None);
        }
        let renew = self.coord.renew_every();
        let deadline = fence_at(&l);
        let sent = Instant::now();
        let round_end = sent + renew;
        let renewed = tokio::select! {
            r = store.renew(l.id, renew) => Some(r),
            _ = tokio::time::sleep_until(deadline.into()) => None,
        };
        match renewed {
            Some(Ok(Some(ttl))) => {
                *lease = Some(Lease {
                    id: l.id,
                    ttl,
                    valid_until: sent + ttl,
                });
                let mut v = self.view();
                v.etcd_ok = true;
                v.last_renewal = Some(sent);
                v.lease_ttl = ttl;
            }
            Some(Ok(None)) => {
                *lease = None;
                self.fence(store, "the lease is gone (expired or revoked)")
                    .await;
                return Some(None);
            }
            Some(Err(e)) => {
                self.view().etcd_ok = false;
                tracing::warn!(channel = %self.channel, error = %e, "lease renewal failed");
            }
            None => {}
        }
        let deadline = lease.as_ref().map_or(sent, fence_at);
        if Instant::now() >= deadline {
            *lease = None;
            let ttl = l.ttl.as_millis();
            self.fence(
                store,
                &format!("no lease renewal for {ttl} ms minus the margin: another box may win the channel"),
            )
            .await;
            return Some(None);
        }
        // A fail-back request addressed to another box: hand over at its fragment.
        if self.view().etcd_ok {
            if let Ok(Some(h)) = store.handover(&self.channel).await {
                if h.to != self.coord.box_id {
                    if let Some(to) = self.hand_over(store, l.id, &h).await {
                        return Some(Some(to));
                    }
                }
            }
            if let Some(l) = *lease {
                self.refresh_events(store, l.id).await;
            }
        }
        let wake = round_end.min(deadline);
        tokio::time::sleep_until(wake.into()).await;
        None
    }

    async fn hand_over(&self, store: &Store, lease: i64, h: &HandoverRecord) -> Option<String> {
        let now_k = self.sup.current_fragment();
        if now_k.is_some_and(|k| h.at_fragment <= k) {
            tracing::warn!(channel = %self.channel, to = %h.to, at = h.at_fragment, "fail-back request for a fragment already started: ignored");
            return None;
        }
        match store.transfer(&self.channel, lease, h).await {
            Ok(true) => {
                self.sup.stop_before_fragment(h.at_fragment);
                self.set_role("standby", Some(h.to.clone()));
                self.record(
                    store,
                    "handover",
                    format!(
                        "handed over to {} at fragment {}: this box pushes up to fragment {}",
                        h.to,
                        h.at_fragment,
                        h.at_fragment.saturating_sub(1)
                    ),
                )
                .await;
                Some(h.to.clone())
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(channel = %self.channel, error = %e, "handover transaction failed");
                None
            }
        }
    }

    async fn fence(&self, store: &Store, reason: &str) {
        let was_running = self.sup.fence(reason);
        self.set_role("fenced", None);
        self.view().etcd_ok = false;
        if was_running {
            // Best effort: etcd is probably unreachable; bounded by the store's timeout.
            self.record(store, "fenced", format!("stopped pushing: {reason}"))
                .await;
        }
    }

    /// Reads the channel's events and the pool, and announces this box's role (once per
    /// lease and role).
    async fn refresh_events(&self, store: &Store, lease: i64) {
        let role = self.view().role;
        if self.view().announced != Some((lease, role)) {
            let me = PoolBox {
                box_id: self.coord.box_id.clone(),
                role: role.into(),
                channel: Some(self.channel.clone()),
            };
            if store.put_box(&me, lease).await.is_ok() {
                self.view().announced = Some((lease, role));
            }
        }
        if let Ok(events) = store.events(&self.channel).await {
            self.view().events = events;
        }
        if let Ok(pool) = store.pool().await {
            self.view().pool = pool;
        }
    }

    /// One poll as a standby. Returns `(from_fragment, event kind, detail)` when this box won.
    async fn standby_round(
        &self,
        store: &Store,
        lease: &mut Option<Lease>,
        last_owner: &mut Option<String>,
    ) -> Option<(Option<u64>, &'static str, String)> {
        let poll = self.coord.renew_every().min(Duration::from_millis(200));
        let next = Instant::now() + poll;
        let r = self.standby_check(store, lease, last_owner).await;
        if r.is_none() {
            tokio::time::sleep_until(next.into()).await;
        }
        r
    }

    async fn standby_check(
        &self,
        store: &Store,
        lease: &mut Option<Lease>,
        last_owner: &mut Option<String>,
    ) -> Option<(Option<u64>, &'static str, String)> {
        // Keep a lease: needed to win and to ask for a fail-back.
        let kept = store
            .renew_or_grant(*lease, self.coord.lease_ttl, self.coord.renew_every())
            .await;
        match kept {
            Ok(l) => *lease = Some(l),
            Err(e) => {
                self.view().etcd_ok = false;
                tracing::debug!(channel = %self.channel, error = %e, "standby: no lease");
                return None;
            }
        }
        let l = (*lease)?;
        let owner = match store.owner(&self.channel).await {
            Ok(o) => o,
            Err(e) => {
                self.view().etcd_ok = false;
                tracing::debug!(channel = %self.channel, error = %e, "standby: cannot read the owner");
                return None;
            }
        };
        self.view().etcd_ok = true;
        match owner {
            None => {
                // Our last run (fenced) must be over before we push again.
                let held_off = self.view().hold_off.is_some_and(|t| Instant::now() < t);
                if self.sup.state() == ChannelState::Stopping || held_off {
                    return None;
                }
                let free_ms = unix_ms();
                let rec = OwnerRecord {
                    box_id: self.coord.box_id.clone(),
                    since_unix_ms: free_ms,
                    from_fragment: None,
                };
                match store.try_acquire(&self.channel, l.id, &rec).await {
                    Ok(true) => Some(match last_owner.take() {
                        Some(prev) if prev != self.coord.box_id => (
                            None,
                            "takeover",
                            format!("took over from {prev}: its lease is gone"),
                        ),
                        _ => (None, "acquired", "took the free channel".into()),
                    }),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::warn!(channel = %self.channel, error = %e, "acquire failed");
                        None
                    }
                }
            }
            Some((o, held_by)) if o.box_id == self.coord.box_id && held_by == l.id => {
                // Handed over to us.
                let k = o.from_fragment;
                let from = last_owner.take().unwrap_or_else(|| "?".into());
                Some((
                    k,
                    "failback",
                    format!(
                        "{from} handed the channel over; this box pushes from fragment {}",
                        k.map_or_else(|| "now".into(), |k| k.to_string())
                    ),
                ))
            }
            Some((o, _)) => {
                self.set_role("standby", Some(o.box_id.clone()));
                *last_owner = Some(o.box_id.clone());
                if self.failback.swap(false, Ordering::SeqCst) {
                    self.request_failback(store, l.id).await;
                }
                self.refresh_events(store, l.id).await;
                None
            }
        }
    }

    async fn request_failback(&self, store: &Store, lease: i64) {
        let plan = self.sup.plan();
        let now = crate::channel::frame_now(plan, crate::time::SystemClocks::new().as_ref());
        // Two boundaries ahead: the owner sees the request within a renewal period and this
        // box has a whole fragment to open its encoders and wait for the boundary.
        let k = plan.fragments.fragment_of(now) + 2;
        let h = HandoverRecord {
            to: self.coord.box_id.clone(),
            lease,
            at_fragment: k,
        };
        match store.request_handover(&self.channel, &h).await {
            Ok(()) => {
                self.record(
                    store,
                    "failback-requested",
                    format!("operator asked for the channel back at fragment {k}"),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(channel = %self.channel, error = %e, "fail-back request failed")
            }
        }
    }
}

impl RedundancyControl for Member {
    fn status(&self) -> Redundancy {
        let v = self.view();
        Redundancy {
            box_id: self.coord.box_id.clone(),
            role: v.role.to_string(),
            owner: v.owner.clone(),
            lease_ttl_secs: v.lease_ttl.as_secs_f64(),
            etcd_ok: v.etcd_ok,
            last_renewal_secs: v.last_renewal.map(|t| t.elapsed().as_secs_f64()),
            events: v.events.clone(),
            pool: v.pool.clone(),
        }
    }

    fn failback(&self) -> Result<String, ControlError> {
        let v = self.view();
        match (v.role, &v.owner) {
            ("active", _) => Err(ControlError::Conflict(
                "this box already owns the channel".into(),
            )),
            (_, None) => Err(ControlError::Conflict(
                "nobody owns the channel now: this box takes it by itself when etcd allows".into(),
            )),
            (_, Some(owner)) => {
                self.failback.store(true, Ordering::SeqCst);
                Ok(format!(
                    "fail-back requested: {owner} hands the channel over at a fragment boundary"
                ))
            }
        }
    }
}

/// Why an owner must give its channel up, if it must: its run failed (and is not being
/// restarted), or it is running but produced no fragment for longer than the stall limit
/// (two fragment durations + 3 s: the audience already sees a frozen picture).
fn give_up_reason(state: ChannelState, starting: bool, stalled: bool) -> Option<&'static str> {
    match state {
        ChannelState::Failed if !starting => Some("the channel failed"),
        ChannelState::Running if stalled => Some("the channel stalled (no fragments)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_gives_up_a_failed_or_stalled_run_but_not_a_healthy_or_starting_one() {
        use ChannelState::*;
        assert_eq!(
            give_up_reason(Failed, false, false),
            Some("the channel failed")
        );
        assert_eq!(
            give_up_reason(Failed, true, false),
            None,
            "a start is under way"
        );
        assert_eq!(
            give_up_reason(Running, false, true),
            Some("the channel stalled (no fragments)")
        );
        assert_eq!(give_up_reason(Running, false, false), None);
        for st in [Starting, Stopping, Stopped] {
            assert_eq!(give_up_reason(st, false, true), None, "{st:?}");
        }
    }
}
