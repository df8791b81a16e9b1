//! Gathering `verifyImages` evidence, with a short-lived cache in front of the source.
//!
//! Evidence is unverified bytes (the digest a reference resolves to, the signature and
//! attestation layers found for it); it is verified on every request by the policy engine.
//! Reusing it for a few seconds only delays noticing a moved tag or a newly attached
//! signature, never turns a failure into a pass. Concurrent requests for one image share one
//! retrieval (single flight). Retrieval failures are never cached.
//!
//! Refresh-ahead: an entry used again after three quarters of its lifetime is retrieved anew
//! in the background (one refresh at a time per entry) while the request is answered from the
//! stored one, so images admitted over and over never wait on the registry. Entries nobody
//! uses expire as before. A refresh that fails keeps the stored entry until its own expiry;
//! it never extends it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use provenance_policy::core::Reason;
use provenance_policy::kyverno::verify_images::{
    EVIDENCE_UNAVAILABLE, ImageEvidence, ImageRequest,
};
use tokio::sync::OnceCell;

/// What one retrieval is for: the image, its signature repository and what is needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    reference: String,
    repository: Option<String>,
    signatures: bool,
    attestations: bool,
    /// The manifest's layers (model-signing attestations of model artifacts).
    layers: bool,
}

type Cell = Arc<OnceCell<ImageEvidence>>;

/// Where evidence comes from.
pub enum Source {
    /// An OCI image layout folder.
    Layout(Arc<provenance_oci::LayoutSource>),
    /// The images' registries.
    Registry(Arc<provenance_oci::RegistryClient>),
}

/// A bounded, time-limited, single-flight evidence cache over a [`Source`].
pub struct Evidence {
    source: Source,
    entries: Mutex<HashMap<Key, (Instant, Cell)>>,
    capacity: usize,
    ttl: Duration,
    /// Lookups served from a stored retrieval.
    pub hits: AtomicU64,
    /// Lookups that started a retrieval.
    pub misses: AtomicU64,
    /// Retrievals that failed (network, authentication, timeouts, bad content).
    pub errors: AtomicU64,
    /// Background retrievals started ahead of an entry's expiry.
    pub refreshes: AtomicU64,
    /// Entries being refreshed now.
    refreshing: Mutex<HashSet<Key>>,
}

impl Evidence {
    /// A cache of at most `capacity` entries, each reused for `ttl` (zero: no reuse).
    pub fn new(source: Source, capacity: usize, ttl: Duration) -> Self {
        Evidence {
            source,
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            refreshing: Mutex::new(HashSet::new()),
        }
    }

    /// Whether an entry stored `age` ago is due for a refresh ahead of its expiry.
    fn due(&self, age: Duration) -> bool {
        age >= self.ttl.mul_f64(0.75)
    }

    /// Retrieves `key` anew in the background and stores it, unless a refresh of it is
    /// already running. Only a usable retrieval replaces the stored entry.
    fn refresh_ahead(self: &Arc<Self>, key: Key, requests: Vec<ImageRequest>) {
        {
            let mut running = locked(&self.refreshing);
            if !running.insert(key.clone()) {
                return;
            }
        }
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // The retrieval is as old as its start: it replaces only an older entry, and
            // expires a TTL after it started (a slow refresh never outlives a newer one).
            let started = Instant::now();
            let ev = this.fetch(requests).await;
            if ev.error.is_some() {
                this.errors.fetch_add(1, Ordering::Relaxed);
            } else if ev.invalid.is_none() {
                let cell: Cell = Arc::new(OnceCell::new_with(Some(ev)));
                let mut map = locked(&this.entries);
                if map.get(&key).is_none_or(|(at, _)| *at < started) {
                    map.insert(key.clone(), (started, cell));
                }
            }
            let mut running = locked(&this.refreshing);
            running.remove(&key);
        });
    }

    async fn fetch(&self, requests: Vec<ImageRequest>) -> ImageEvidence {
        let reference = requests
            .first()
            .map(|r| r.reference.clone())
            .unwrap_or_default();
        let mut map = match &self.source {
            Source::Layout(l) => {
                provenance_policy::admission::gather::gather(l.clone(), &requests, 1).await
            }
            Source::Registry(r) => {
                provenance_policy::admission::gather::gather(r.clone(), &requests, 1).await
            }
        };
        map.remove(&reference).unwrap_or_else(|| {
            ImageEvidence::unavailable(Reason::new(
                EVIDENCE_UNAVAILABLE,
                "evidence gathering returned nothing",
            ))
        })
    }

    /// The entry for `key`: the cell, whether it holds a retrieval (a hit), and whether that
    /// retrieval is due for a refresh ahead of its expiry.
    fn cell(&self, key: &Key) -> (Cell, bool, bool) {
        let mut map = locked(&self.entries);
        if let Some((at, cell)) = map.get(key)
            && at.elapsed() < self.ttl
        {
            // An entry whose retrieval was abandoned (its request hit the deadline) is
            // retried by this caller: a miss.
            let hit = cell.initialized();
            return (cell.clone(), hit, hit && self.due(at.elapsed()));
        }
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        let cell: Cell = Arc::default();
        map.insert(key.clone(), (Instant::now(), cell.clone()));
        (cell, false, false)
    }

    fn forget(&self, key: &Key, cell: &Cell) {
        let mut map = locked(&self.entries);
        if map.get(key).is_some_and(|(_, c)| Arc::ptr_eq(c, cell)) {
            map.remove(key);
        }
    }

    async fn one(self: Arc<Self>, key: Key, requests: Vec<ImageRequest>) -> ImageEvidence {
        if self.ttl.is_zero() {
            self.misses.fetch_add(1, Ordering::Relaxed);
            let ev = self.fetch(requests).await;
            if ev.error.is_some() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            return ev;
        }
        let (cell, hit, due) = self.cell(&key);
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        if due {
            self.refresh_ahead(key.clone(), requests.clone());
        }
        let mut fetched = false;
        let ev = cell
            .get_or_init(|| {
                fetched = true;
                self.fetch(requests)
            })
            .await
            .clone();
        if ev.error.is_some() {
            if fetched {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            self.forget(&key, &cell);
        } else if ev.invalid.is_some() {
            // Unusable content is not remembered: a corrected push is seen on the next request.
            self.forget(&key, &cell);
        }
        ev
    }

    /// Evidence for every image the requests name, retrieved concurrently (or reused).
    pub async fn gather(
        self: &Arc<Self>,
        requests: &[ImageRequest],
    ) -> BTreeMap<String, ImageEvidence> {
        // One retrieval per reference, needing what all its requests need (as
        // `provenance_policy::admission::gather` merges them).
        let mut groups: BTreeMap<String, (Key, Vec<ImageRequest>)> = BTreeMap::new();
        for r in requests {
            let (key, list) = groups.entry(r.reference.clone()).or_insert_with(|| {
                (
                    Key {
                        reference: r.reference.clone(),
                        repository: r.repository.clone(),
                        signatures: false,
                        attestations: false,
                        layers: false,
                    },
                    Vec::new(),
                )
            });
            key.signatures |= r.signatures;
            key.attestations |= !r.attestation_types.is_empty();
            key.layers |= r.needs_layers();
            list.push(r.clone());
        }
        let mut out = BTreeMap::new();
        if groups.len() == 1 {
            for (reference, (key, list)) in groups {
                out.insert(reference, Arc::clone(self).one(key, list).await);
            }
            return out;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (reference, (key, list)) in groups {
            let this = Arc::clone(self);
            tasks.spawn(async move { (reference, this.one(key, list).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Ok((reference, ev)) = joined {
                out.insert(reference, ev);
            }
        }
        for r in requests {
            out.entry(r.reference.clone()).or_insert_with(|| {
                ImageEvidence::unavailable(Reason::new(
                    EVIDENCE_UNAVAILABLE,
                    "evidence gathering was interrupted",
                ))
            });
        }
        out
    }
}

/// The guarded value, also after a panic elsewhere poisoned the lock (the maps stay usable:
/// every update leaves them consistent).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
