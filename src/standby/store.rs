//! The etcd side of N+M: every read, write and transaction the members and standbys use,
//! each bounded by a timeout (an unreachable etcd must never stall a renewal past the fence).

use super::{Coordination, Event, HandoverRecord, OwnerRecord, ProfileRecord, RedundancyError};
use crate::control::api::PoolBox;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp,
};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::{Duration, Instant};

/// Events kept per channel when listing (the newest).
pub const EVENTS_SHOWN: i64 = 12;

/// A lease a box holds, and until when it is surely valid on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// etcd lease id.
    pub id: i64,
    /// TTL etcd granted.
    pub ttl: Duration,
    /// Send time of the last successful grant/renewal + TTL: the server cannot expire the
    /// lease before this instant.
    pub valid_until: Instant,
}

/// A connection to etcd with the pool's key layout.
#[derive(Clone)]
pub struct Store {
    client: Client,
    endpoints: String,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (bounded by `timeout`).
    pub async fn connect(c: &Coordination, timeout: Duration) -> Result<Store, RedundancyError> {
        let endpoints = c.endpoints.join(",");
        let opts = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(1), timeout)
            .with_keep_alive_while_idle(true);
        let client =
            match tokio::time::timeout(timeout, Client::connect(c.endpoints.clone(), Some(opts)))
                .await
            {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    return Err(RedundancyError::Etcd {
                        endpoints,
                        reason: e.to_string(),
                    })
                }
                Err(_) => {
                    return Err(RedundancyError::Timeout {
                        endpoints,
                        ms: timeout.as_millis() as u64,
                        what: "connect",
                    })
                }
            };
        Ok(Store {
            client,
            endpoints,
            prefix: c.prefix.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    fn owner_key(&self, ch: &str) -> String {
        format!("{}/channels/{ch}/owner", self.prefix)
    }
    fn profile_key(&self, ch: &str) -> String {
        format!("{}/channels/{ch}/profile", self.prefix)
    }
    fn handover_key(&self, ch: &str) -> String {
        format!("{}/channels/{ch}/handover", self.prefix)
    }
    fn boxes_prefix(&self) -> String {
        format!("{}/boxes/", self.prefix)
    }
    fn events_prefix(&self, ch: &str) -> String {
        format!("{}/events/{ch}/", self.prefix)
    }

    async fn bounded<T, F>(&self, what: &'static str, f: F) -> Result<T, RedundancyError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.bounded_by(self.timeout, what, f).await
    }

    async fn bounded_by<T, F>(
        &self,
        limit: Duration,
        what: &'static str,
        f: F,
    ) -> Result<T, RedundancyError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(limit, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedundancyError::Etcd {
                endpoints: self.endpoints.clone(),
                reason: format!("{what}: {e}"),
            }),
            Err(_) => Err(RedundancyError::Timeout {
                endpoints: self.endpoints.clone(),
                ms: limit.as_millis() as u64,
                what,
            }),
        }
    }

    /// Grants a lease of `ttl`; returns its id and the TTL etcd granted.
    pub async fn grant(&self, ttl: Duration) -> Result<(i64, Duration), RedundancyError> {
        let mut c = self.client.clone();
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let r = self
            .bounded("lease grant", c.lease_grant(secs, None))
            .await?;
        Ok((r.id(), Duration::from_secs(r.ttl().max(0) as u64)))
    }

    /// Renews `lease` once, answering within `limit`. `Ok(None)`: the lease no longer exists
    /// (expired or revoked); `Ok(Some(ttl))`: renewed for `ttl` from when etcd got the request.
    pub async fn renew(
        &self,
        lease: i64,
        limit: Duration,
    ) -> Result<Option<Duration>, RedundancyError> {
        let mut c = self.client.clone();
        let once = async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match self.bounded_by(limit, "lease renewal", once).await? {
            Some(r) if r.ttl() > 0 => Ok(Some(Duration::from_secs(r.ttl() as u64))),
            _ => Ok(None),
        }
    }

    /// Keeps one lease: renews `current` (answering within `limit`), or grants a new one of
    /// `ttl` when there is none or it no longer exists. An error leaves the caller's lease as
    /// it was (etcd may be briefly unreachable; the lease may still be alive).
    pub async fn renew_or_grant(
        &self,
        current: Option<Lease>,
        ttl: Duration,
        limit: Duration,
    ) -> Result<Lease, RedundancyError> {
        let sent = Instant::now();
        if let Some(l) = current {
            if let Some(granted) = self.renew(l.id, limit).await? {
                return Ok(Lease {
                    id: l.id,
                    ttl: granted,
                    valid_until: sent + granted,
                });
            }
        }
        let (id, granted) = self.grant(ttl).await?;
        Ok(Lease {
            id,
            ttl: granted,
            valid_until: sent + granted,
        })
    }

    /// Revokes `lease` (its keys vanish at once).
    pub async fn revoke(&self, lease: i64) -> Result<(), RedundancyError> {
        let mut c = self.client.clone();
        self.bounded("lease revoke", c.lease_revoke(lease)).await?;
        Ok(())
    }

    /// Wins `ch` if nobody owns it: one transaction, so exactly one contender wins.
    pub async fn try_acquire(
        &self,
        ch: &str,
        lease: i64,
        rec: &OwnerRecord,
    ) -> Result<bool, RedundancyError> {
        let key = self.owner_key(ch);
        let value = to_json(rec);
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut c = self.client.clone();
        Ok(self.bounded("acquire", c.txn(txn)).await?.succeeded())
    }

    /// The owner of `ch` and the lease it holds the key under.
    pub async fn owner(&self, ch: &str) -> Result<Option<(OwnerRecord, i64)>, RedundancyError> {
        let mut c = self.client.clone();
        let r = self
            .bounded("read owner", c.get(self.owner_key(ch), None))
            .await?;
        match r.kvs().first() {
            Some(kv) => Ok(Some((parse(ch, "owner record", kv.value())?, kv.lease()))),
            None => Ok(None),
        }
    }

    /// Publishes the profile a taker copies.
    pub async fn put_profile(&self, ch: &str, rec: &ProfileRecord) -> Result<(), RedundancyError> {
        let mut c = self.client.clone();
        self.bounded(
            "publish profile",
            c.put(self.profile_key(ch), to_json(rec), None),
        )
        .await?;
        Ok(())
    }

    /// The published profile of `ch`.
    pub async fn profile(&self, ch: &str) -> Result<Option<ProfileRecord>, RedundancyError> {
        let mut c = self.client.clone();
        let r = self
            .bounded("read profile", c.get(self.profile_key(ch), None))
            .await?;
        r.kvs()
            .first()
            .map(|kv| parse(ch, "profile record", kv.value()))
            .transpose()
    }

    /// Every channel with a published profile, with its owner's box id (`None`: free).
    pub async fn channels(&self) -> Result<Vec<(String, Option<String>)>, RedundancyError> {
        let mut c = self.client.clone();
        let prefix = format!("{}/channels/", self.prefix);
        let r = self
            .bounded(
                "list channels",
                c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let mut profiles = std::collections::BTreeSet::new();
        let mut owners = std::collections::BTreeMap::new();
        for kv in r.kvs() {
            let Some(rest) = kv
                .key_str()
                .ok()
                .and_then(|k| k.strip_prefix(prefix.as_str()))
            else {
                continue;
            };
            let Some((ch, what)) = rest.split_once('/') else {
                continue;
            };
            match what {
                "profile" => {
                    profiles.insert(ch.to_string());
                }
                "owner" => {
                    let owner: Option<OwnerRecord> = serde_json::from_slice(kv.value()).ok();
                    owners.insert(
                        ch.to_string(),
                        owner.map_or_else(|| "?".to_string(), |o| o.box_id),
                    );
                }
                _ => {}
            }
        }
        Ok(profiles
            .into_iter()
            .map(|ch| {
                let owner = owners.remove(&ch);
                (ch, owner)
            })
            .collect())
    }

    /// Asks the owner of `ch` to hand it over (the key lives as long as `lease`).
    pub async fn request_handover(
        &self,
        ch: &str,
        rec: &HandoverRecord,
    ) -> Result<(), RedundancyError> {
        let mut c = self.client.clone();
        self.bounded(
            "request handover",
            c.put(
                self.handover_key(ch),
                to_json(rec),
                Some(PutOptions::new().with_lease(rec.lease)),
            ),
        )
        .await?;
        Ok(())
    }

    /// The pending fail-back request of `ch`, if any.
    pub async fn handover(&self, ch: &str) -> Result<Option<HandoverRecord>, RedundancyError> {
        let mut c = self.client.clone();
        let r = self
            .bounded("read handover", c.get(self.handover_key(ch), None))
            .await?;
        r.kvs()
            .first()
            .map(|kv| parse(ch, "handover record", kv.value()))
            .transpose()
    }

    /// The owner (holding the key under `my_lease`) moves ownership to the requester of `h`
    /// and removes the request, in one transaction. False: this box no longer owned `ch`.
    pub async fn transfer(
        &self,
        ch: &str,
        my_lease: i64,
        h: &HandoverRecord,
    ) -> Result<bool, RedundancyError> {
        let key = self.owner_key(ch);
        let rec = OwnerRecord {
            box_id: h.to.clone(),
            since_unix_ms: super::unix_ms(),
            from_fragment: Some(h.at_fragment),
        };
        let txn = Txn::new()
            .when(vec![Compare::lease(
                key.clone(),
                CompareOp::Equal,
                my_lease,
            )])
            .and_then(vec![
                TxnOp::put(
                    key,
                    to_json(&rec),
                    Some(PutOptions::new().with_lease(h.lease)),
                ),
                TxnOp::delete(self.handover_key(ch), None),
            ]);
        let mut c = self.client.clone();
        Ok(self.bounded("hand over", c.txn(txn)).await?.succeeded())
    }

    /// Announces this box in the pool (the key lives as long as `lease`).
    pub async fn put_box(&self, b: &PoolBox, lease: i64) -> Result<(), RedundancyError> {
        let mut c = self.client.clone();
        let key = format!("{}{}", self.boxes_prefix(), b.box_id);
        self.bounded(
            "announce box",
            c.put(key, to_json(b), Some(PutOptions::new().with_lease(lease))),
        )
        .await?;
        Ok(())
    }

    /// Every box of the pool whose lease is alive, sorted by id.
    pub async fn pool(&self) -> Result<Vec<PoolBox>, RedundancyError> {
        let mut c = self.client.clone();
        let r = self
            .bounded(
                "list boxes",
                c.get(self.boxes_prefix(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        Ok(r.kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }

    /// Records an ownership event of `ch`.
    pub async fn event(&self, ch: &str, e: &Event) -> Result<(), RedundancyError> {
        let key = format!("{}{:020}-{}", self.events_prefix(ch), e.unix_ms, e.box_id);
        let mut c = self.client.clone();
        self.bounded("record event", c.put(key, to_json(e), None))
            .await?;
        Ok(())
    }

    /// The newest ownership events of `ch`, oldest first.
    pub async fn events(&self, ch: &str) -> Result<Vec<Event>, RedundancyError> {
        let mut c = self.client.clone();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(EVENTS_SHOWN);
        let r = self
            .bounded("read events", c.get(self.events_prefix(ch), Some(opts)))
            .await?;
        let mut v: Vec<Event> = r
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect();
        v.reverse();
        Ok(v)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain records of strings and integers cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: DeserializeOwned>(
    ch: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, RedundancyError> {
    serde_json::from_slice(bytes).map_err(|e| RedundancyError::BadRecord {
        channel: ch.to_string(),
        what,
        reason: e.to_string(),
    })
}
