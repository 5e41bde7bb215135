//! `smoothcast standby`: a box of the M pool. It watches every channel published in etcd and,
//! when one's owner key disappears, competes for it — but only for a channel it can run: the
//! copied profile must load and its logical inputs must exist in this box's hw map. The
//! winner runs the channel like `smoothcast run --etcd` (control API, fencing, fail-back).

use super::member::{Member, MemberStart};
use super::store::{Lease, Store};
use super::{unix_ms, Coordination, Event, OwnerRecord, ProfileRecord, RedundancyError};
use crate::channel::RunOptions;
use crate::control::{self, notify::Notifier, ControlServer, Supervisor};
use crate::profile::{self, AudioInput, Plan, VideoInput};
use crate::time::SystemClocks;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a standby box runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub coord: Coordination,
    /// This box's hw map (logical input → device).
    pub hw_map: PathBuf,
    /// Control API address of a channel taken over (default: the profile's, else loopback
    /// with any free port).
    pub control: Option<SocketAddr>,
    /// Only these channels (empty: any published channel).
    pub channels: Vec<String>,
    /// Filled with the channel's supervisor once this box takes one (the binary's signal
    /// handler finishes it cleanly on SIGTERM).
    pub taken: Arc<std::sync::Mutex<Option<Arc<Supervisor>>>>,
}

/// What a standby holds once it won a channel.
pub struct Taken {
    pub supervisor: Arc<Supervisor>,
    pub member: Arc<Member>,
    pub server: Option<ControlServer>,
}

/// Builds the plan a taker runs from a published profile, checked against this box's hw map.
pub fn plan_for_box(
    channel: &str,
    rec: &ProfileRecord,
    cfg: &AgentConfig,
) -> Result<Plan, RedundancyError> {
    let mut plan = profile::from_toml(&rec.profile_toml, &rec.origin).map_err(|e| {
        RedundancyError::BadRecord {
            channel: channel.to_string(),
            what: "profile",
            reason: e.to_string(),
        }
    })?;
    if !rec.push_urls.is_empty() {
        plan.destinations = crate::push::destinations_from_urls(&rec.push_urls);
    }
    let uses_devices = matches!(plan.video_input, VideoInput::Device { .. })
        || matches!(plan.audio_input, AudioInput::Device { .. });
    if uses_devices {
        let refuse = |reason: String| RedundancyError::Refused {
            channel: channel.to_string(),
            box_id: cfg.coord.box_id.clone(),
            reason,
        };
        let map = crate::hw::HwMap::load(&cfg.hw_map).map_err(|e| refuse(e.to_string()))?;
        crate::hw::resolve(&plan, &map).map_err(|e| refuse(e.to_string()))?;
    }
    if matches!(plan.timecode, profile::TimecodeSpec::Fixed { .. }) {
        return Err(RedundancyError::Refused {
            channel: channel.to_string(),
            box_id: cfg.coord.box_id.clone(),
            reason: "its timecode is fixed: a takeover would restart the timeline".into(),
        });
    }
    Ok(plan)
}

/// Runs the standby agent until the process ends. Returns only on a setup error.
pub fn run_agent(cfg: AgentConfig) -> Result<(), RedundancyError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RedundancyError::Setup {
            box_id: cfg.coord.box_id.clone(),
            reason: format!("tokio runtime: {e}"),
        })?;
    rt.block_on(async move {
        let store = connect_retrying(&cfg.coord).await;
        let (taken, member_start) = watch_and_win(&store, &cfg).await;
        let _keep = taken.server;
        taken.member.run(store, member_start).await;
        Ok(())
    })
}

/// Connects to etcd, retrying every second until it answers.
pub async fn connect_retrying(c: &Coordination) -> Store {
    let timeout = c.lease_ttl.max(Duration::from_secs(1));
    loop {
        match Store::connect(c, timeout).await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!(box_id = %c.box_id, error = %e, "etcd not reachable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn watch_and_win(store: &Store, cfg: &AgentConfig) -> (Taken, MemberStart) {
    let poll = Duration::from_millis(100);
    let mut lease: Option<Lease> = None;
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut free_since: BTreeMap<String, u64> = BTreeMap::new();
    let mut refused: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut announced: Option<i64> = None;
    tracing::info!(box_id = %cfg.coord.box_id, hw = %cfg.hw_map.display(), "standby: watching etcd for channels to take");
    loop {
        let next = Instant::now() + poll;
        // Keep one lease to compete with (a renewal that fails is replaced by a new grant).
        let (ttl, limit) = (cfg.coord.lease_ttl, cfg.coord.renew_every());
        let kept = match store.renew_or_grant(lease, ttl, limit).await {
            Err(_) if lease.is_some() => store.renew_or_grant(None, ttl, limit).await,
            kept => kept,
        };
        let held = match kept {
            Ok(l) => {
                lease = Some(l);
                l
            }
            Err(e) => {
                lease = None;
                tracing::debug!(error = %e, "standby: no lease");
                tokio::time::sleep_until(next.into()).await;
                continue;
            }
        };
        let id = held.id;
        if announced != Some(id) {
            let me = crate::control::api::PoolBox {
                box_id: cfg.coord.box_id.clone(),
                role: "standby".into(),
                channel: None,
            };
            if store.put_box(&me, id).await.is_ok() {
                announced = Some(id);
            }
        }
        let channels = match store.channels().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "standby: cannot list channels");
                tokio::time::sleep_until(next.into()).await;
                continue;
            }
        };
        for (ch, owner) in channels {
            if !cfg.channels.is_empty() && !cfg.channels.contains(&ch) {
                continue;
            }
            if let Some(o) = owner {
                owners.insert(ch.clone(), o);
                free_since.remove(&ch);
                continue;
            }
            let free_ms = *free_since.entry(ch.clone()).or_insert_with(unix_ms);
            let rec = match store.profile(&ch).await {
                Ok(Some(r)) => r,
                _ => continue,
            };
            let plan = match plan_for_box(&ch, &rec, cfg) {
                Ok(p) => p,
                Err(e) => {
                    if refused.insert((ch.clone(), rec.published_unix_ms)) {
                        tracing::warn!(channel = %ch, error = %e, "standby: not competing for this channel");
                        let ev = Event {
                            unix_ms: unix_ms(),
                            box_id: cfg.coord.box_id.clone(),
                            kind: "refused".into(),
                            detail: e.to_string(),
                        };
                        let _ = store.event(&ch, &ev).await;
                    }
                    continue;
                }
            };
            let me = OwnerRecord {
                box_id: cfg.coord.box_id.clone(),
                since_unix_ms: unix_ms(),
                from_fragment: None,
            };
            match store.try_acquire(&ch, id, &me).await {
                Ok(true) => {
                    let from = owners.remove(&ch).map(|b| (b, free_ms));
                    match take(cfg, plan, rec).await {
                        Ok(taken) => return (taken, MemberStart::Won { lease: held, from }),
                        Err(e) => {
                            tracing::error!(channel = %ch, error = %e, "standby: won the channel but cannot run it; releasing it");
                            let _ = store.revoke(id).await;
                            lease = None;
                            break;
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(channel = %ch, error = %e, "standby: acquire failed"),
            }
        }
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Sets up the channel this box just won: supervisor, control API, membership.
async fn take(cfg: &AgentConfig, plan: Plan, rec: ProfileRecord) -> Result<Taken, RedundancyError> {
    let setup = |reason: String| RedundancyError::Setup {
        box_id: cfg.coord.box_id.clone(),
        reason,
    };
    let mut plan = plan;
    plan.push.box_id = Some(cfg.coord.box_id.clone());
    let mut opts = RunOptions::new(SystemClocks::new());
    opts.inputs.hw_map = Some(cfg.hw_map.clone());
    let mut control_plan = plan.control.clone().unwrap_or_default();
    if let Some(a) = cfg.control {
        control_plan.listen = a;
    }
    let sup = Supervisor::new(plan, opts, None, Notifier::from_env())
        .map_err(|e| setup(e.to_string()))?;
    sup.hold_idle();
    let server = control::serve(sup.clone(), &control_plan).map_err(|e| setup(e.to_string()))?;
    let member = Member::new(cfg.coord.clone(), sup.clone(), Some(rec));
    sup.set_redundancy(member.clone());
    if let Ok(mut slot) = cfg.taken.lock() {
        *slot = Some(sup.clone());
    }
    Ok(Taken {
        supervisor: sup,
        member,
        server: Some(server),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hw: &str) -> AgentConfig {
        AgentConfig {
            coord: Coordination {
                endpoints: vec!["http://127.0.0.1:1".into()],
                box_id: "sb-1".into(),
                lease_ttl: Duration::from_secs(3),
                prefix: super::super::DEFAULT_PREFIX.into(),
            },
            hw_map: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(hw),
            control: None,
            channels: Vec::new(),
            taken: Arc::default(),
        }
    }

    fn record(path: &str) -> ProfileRecord {
        let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
        ProfileRecord {
            profile_toml: std::fs::read_to_string(&full).unwrap(),
            origin: path.into(),
            push_urls: vec!["http://127.0.0.1:9/live/x.isml".into()],
            published_by: "act-a".into(),
            published_unix_ms: 1,
        }
    }

    #[test]
    fn standby_without_the_profiles_sdi_input_refuses_clearly() {
        let err = plan_for_box(
            "studio",
            &record("profiles/studio-1080p.toml"),
            &cfg("hw/webcam-box.toml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RedundancyError::Refused { .. }), "{text}");
        assert!(text.contains("box sb-1 cannot take it"), "{text}");
        assert!(text.contains("sdi1"), "names the missing input: {text}");
    }

    #[test]
    fn standby_with_the_input_resolves_it_and_keeps_the_push_urls() {
        let plan = plan_for_box(
            "studio",
            &record("profiles/studio-1080p.toml"),
            &cfg("hw/sdi4-box.toml"),
        )
        .unwrap();
        assert_eq!(plan.destinations.len(), 1);
        assert_eq!(plan.destinations[0].url, "http://127.0.0.1:9/live/x.isml");
    }

    #[test]
    fn fixed_timecode_profile_is_refused_for_takeover() {
        let mut rec = record("profiles/demo.toml");
        rec.profile_toml = rec.profile_toml.replace(
            "source = \"clock\"",
            "source = \"fixed\"\ndate = \"2026-11-21\"\nstart = \"10:00:00:00\"",
        );
        let err = plan_for_box("demo", &rec, &cfg("hw/webcam-box.toml")).unwrap_err();
        assert!(err.to_string().contains("fixed"), "{err}");
    }
}
