//! A bounded verification-result cache with single flight.
//!
//! Keys hold where the evidence came from (registry and repository of the image, and the
//! repository signatures were read from), the image digest, a hash of the rule / attestor that
//! was checked and the trust root's fingerprint ([`CacheKey`]), so a result can never be served
//! for another repository holding the same digest, nor after the policy or the trust root
//! changed: the new key simply misses. Concurrent requests for one key share one
//! computation (the first caller computes, the others wait for its result). Only `Ok` values
//! are stored: an `Err` (for example a network failure) is handed to the callers that waited
//! for that computation and then forgotten, so infrastructure trouble is never cached. Put
//! deterministic verdicts (a signature that does not verify, no signature found) in the `Ok`
//! value if they should be cached; they expire after the TTL like every entry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use provenance_core::{Digest, ImageReference, TrustRoot};
use tokio::sync::watch;

/// What a cached verification result is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Registry and repository of the image (`registry.example.com/team/app`, no tag or
    /// digest): one digest in two repositories may carry different signatures.
    pub repository: String,
    /// The repository signatures and attestations were read from, when not the image's own
    /// (cosign's `COSIGN_REPOSITORY`, Kyverno's `repository`).
    pub evidence_repository: Option<String>,
    /// The image (or artifact) digest that was verified.
    pub digest: Digest,
    /// SHA-256 of the rule / attestor definition that was applied (canonical bytes chosen by
    /// the caller, e.g. the rule's JSON).
    pub rule: Digest,
    /// The trust root's fingerprint ([`TrustRoot::fingerprint`]).
    pub trust_root: Digest,
}

impl CacheKey {
    /// A key for `digest` of `image`'s repository (registry and repository; its tag or
    /// digest is not part of the key, `digest` is) verified under the rule whose canonical
    /// bytes are `rule` against `root`.
    pub fn new(image: &ImageReference, digest: &Digest, rule: &[u8], root: &TrustRoot) -> Self {
        CacheKey {
            repository: image.name(),
            evidence_repository: None,
            digest: digest.clone(),
            rule: Digest::sha256_of(rule),
            trust_root: root.fingerprint(),
        }
    }

    /// The same key for evidence read from `repository` instead of the image's own.
    pub fn with_evidence_repository(mut self, repository: Option<&ImageReference>) -> Self {
        self.evidence_repository = repository.map(ImageReference::name);
        self
    }
}

/// Cache sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries kept; the least recently used is evicted beyond it (default 10 000).
    pub capacity: usize,
    /// How long an entry is served (default 5 minutes).
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 10_000,
            ttl: Duration::from_secs(300),
        }
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Served from a stored entry.
    pub hits: u64,
    /// Waited for another caller's computation.
    pub joined: u64,
    /// Computations started.
    pub computations: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
}

type Shared<V, E> = Option<Result<V, E>>;

enum Slot<V, E> {
    Ready {
        value: V,
        expires: Instant,
        used: u64,
    },
    Inflight(watch::Receiver<Shared<V, E>>),
}

struct State<V, E> {
    map: HashMap<CacheKey, Slot<V, E>>,
    clock: u64,
}

/// A verification-result cache. `V` is the result type, `E` the error type of a computation.
pub struct VerificationCache<V, E> {
    state: Mutex<State<V, E>>,
    config: CacheConfig,
    hits: AtomicU64,
    joined: AtomicU64,
    computations: AtomicU64,
    evictions: AtomicU64,
}

impl<V, E> std::fmt::Debug for VerificationCache<V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Removes an in-flight marker if its computation is dropped before finishing, so waiters
/// take over instead of waiting forever.
struct InflightGuard<'a, V, E> {
    cache: &'a VerificationCache<V, E>,
    key: Option<CacheKey>,
}

impl<V, E> Drop for InflightGuard<'_, V, E> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            let mut st = self.cache.lock();
            if matches!(st.map.get(&k), Some(Slot::Inflight(_))) {
                st.map.remove(&k);
            }
        }
    }
}

impl<V, E> VerificationCache<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<V, E>> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            computations: self.computations.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

enum Step<V, E> {
    Done(V),
    Wait(watch::Receiver<Shared<V, E>>),
    Lead(watch::Sender<Shared<V, E>>),
}

impl<V: Clone, E: Clone> VerificationCache<V, E> {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        VerificationCache {
            state: Mutex::new(State {
                map: HashMap::new(),
                clock: 0,
            }),
            config,
            hits: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            computations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Number of stored (completed) entries.
    pub fn len(&self) -> usize {
        self.lock()
            .map
            .values()
            .filter(|s| matches!(s, Slot::Ready { .. }))
            .count()
    }

    /// True when no completed entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every stored entry (in-flight computations finish and are stored).
    pub fn clear(&self) {
        self.lock()
            .map
            .retain(|_, s| matches!(s, Slot::Inflight(_)));
    }

    /// The stored value for `key`, if fresh.
    pub fn get(&self, key: &CacheKey) -> Option<V> {
        let mut st = self.lock();
        st.clock += 1;
        let now_tick = st.clock;
        match st.map.get_mut(key) {
            Some(Slot::Ready {
                value,
                expires,
                used,
            }) if *expires > Instant::now() => {
                *used = now_tick;
                Some(value.clone())
            }
            _ => None,
        }
    }

    fn step(&self, key: &CacheKey) -> Step<V, E> {
        let mut st = self.lock();
        st.clock += 1;
        let tick = st.clock;
        match st.map.get_mut(key) {
            Some(Slot::Ready {
                value,
                expires,
                used,
            }) if *expires > Instant::now() => {
                *used = tick;
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Step::Done(value.clone());
            }
            Some(Slot::Inflight(rx)) => {
                self.joined.fetch_add(1, Ordering::Relaxed);
                return Step::Wait(rx.clone());
            }
            _ => {}
        }
        let (tx, rx) = watch::channel(None);
        st.map.insert(key.clone(), Slot::Inflight(rx));
        self.computations.fetch_add(1, Ordering::Relaxed);
        Step::Lead(tx)
    }

    fn store(&self, key: CacheKey, result: &Result<V, E>) {
        let mut st = self.lock();
        match result {
            Ok(v) => {
                st.clock += 1;
                let used = st.clock;
                st.map.insert(
                    key,
                    Slot::Ready {
                        value: v.clone(),
                        expires: Instant::now() + self.config.ttl,
                        used,
                    },
                );
                self.evict(&mut st);
            }
            Err(_) => {
                st.map.remove(&key);
            }
        }
    }

    fn evict(&self, st: &mut State<V, E>) {
        let now = Instant::now();
        let ready = st
            .map
            .values()
            .filter(|s| matches!(s, Slot::Ready { .. }))
            .count();
        if ready <= self.config.capacity {
            return;
        }
        // Expired entries first, then the least recently used.
        st.map
            .retain(|_, s| !matches!(s, Slot::Ready { expires, .. } if *expires <= now));
        loop {
            let ready: Vec<(&CacheKey, u64)> = st
                .map
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready { used, .. } => Some((k, *used)),
                    Slot::Inflight(_) => None,
                })
                .collect();
            if ready.len() <= self.config.capacity {
                break;
            }
            let Some(oldest) = ready
                .iter()
                .min_by_key(|(_, u)| *u)
                .map(|(k, _)| (*k).clone())
            else {
                break;
            };
            st.map.remove(&oldest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The value for `key`: stored if fresh, else computed by `compute`, once for all
    /// concurrent callers of the same key. `Err` results reach the callers that shared the
    /// computation and are not stored.
    pub async fn get_or_compute<F, Fut>(&self, key: CacheKey, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut compute = Some(compute);
        loop {
            match self.step(&key) {
                Step::Done(v) => return Ok(v),
                Step::Wait(mut rx) => {
                    loop {
                        if let Some(r) = rx.borrow_and_update().clone() {
                            return r;
                        }
                        if rx.changed().await.is_err() {
                            // The leader was dropped before finishing: try again (possibly
                            // leading this time).
                            break;
                        }
                    }
                    // Give the dropped leader's guard a chance to clear its marker.
                    tokio::task::yield_now().await;
                }
                Step::Lead(tx) => {
                    let mut guard = InflightGuard {
                        cache: self,
                        key: Some(key.clone()),
                    };
                    let Some(f) = compute.take() else {
                        // Unreachable in practice: a caller leads at most once per call
                        // because leading always returns below.
                        drop(guard);
                        continue;
                    };
                    let result = f().await;
                    guard.key = None;
                    self.store(key, &result);
                    let _ = tx.send(Some(result.clone()));
                    return result;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::Arc;

    fn key(i: u8) -> CacheKey {
        CacheKey {
            repository: "registry.example/team/app".into(),
            evidence_repository: None,
            digest: Digest::sha256_of(&[i]),
            rule: Digest::sha256_of(b"rule"),
            trust_root: Digest::sha256_of(b"root"),
        }
    }

    #[tokio::test]
    async fn a_pass_in_one_repository_is_not_served_for_another() {
        // The same digest and rule in two registries, or read from another signature
        // repository: three keys, three computations.
        let cache = VerificationCache::<u32, String>::new(CacheConfig::default());
        let d = Digest::sha256_of(b"image");
        let root =
            TrustRoot::from_trusted_root_json(provenance_core::verify::PUBLIC_GOOD_TRUSTED_ROOT)
                .unwrap();
        let a = ImageReference::parse("registry-a.example/team/app:1.0").unwrap();
        let b = ImageReference::parse("registry-b.example/team/app:1.0").unwrap();
        let sigs = ImageReference::parse("registry-a.example/team/sigs").unwrap();
        let keys = [
            CacheKey::new(&a, &d, b"rule", &root),
            CacheKey::new(&b, &d, b"rule", &root),
            CacheKey::new(&a, &d, b"rule", &root).with_evidence_repository(Some(&sigs)),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        // Tag and digest of the reference are not part of the key; the digest argument is.
        let a_digest = ImageReference::parse(&format!("registry-a.example/team/app@{d}")).unwrap();
        assert_eq!(keys[0], CacheKey::new(&a_digest, &d, b"rule", &root));
        for k in keys {
            cache.get_or_compute(k, || async { Ok(1) }).await.unwrap();
        }
        assert_eq!(cache.stats().computations, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousand_requests_ten_keys_ten_computations() {
        let cache = Arc::new(VerificationCache::<u32, String>::new(CacheConfig::default()));
        let runs = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..1000u32 {
            let cache = cache.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                let k = (i % 10) as u8;
                cache
                    .get_or_compute(key(k), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(u32::from(k) * 7)
                    })
                    .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), (i as u32 % 10) * 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 10);
        let s = cache.stats();
        assert_eq!(s.computations, 10);
        assert_eq!(s.hits + s.joined, 990);
    }

    #[tokio::test]
    async fn errors_are_shared_but_not_stored() {
        let cache = VerificationCache::<u32, String>::new(CacheConfig::default());
        let e = cache
            .get_or_compute(key(1), || async { Err("network".to_owned()) })
            .await;
        assert_eq!(e, Err("network".to_owned()));
        assert!(cache.is_empty());
        let v = cache.get_or_compute(key(1), || async { Ok(5) }).await;
        assert_eq!(v, Ok(5));
        assert_eq!(cache.get(&key(1)), Some(5));
    }

    #[tokio::test]
    async fn key_parts_all_matter() {
        let cache = VerificationCache::<u32, String>::new(CacheConfig::default());
        cache
            .get_or_compute(key(1), || async { Ok(1) })
            .await
            .unwrap();
        let mut other_rule = key(1);
        other_rule.rule = Digest::sha256_of(b"rule v2");
        let mut other_root = key(1);
        other_root.trust_root = Digest::sha256_of(b"rotated root");
        assert_eq!(cache.get(&other_rule), None);
        assert_eq!(cache.get(&other_root), None);
        assert_eq!(cache.get(&key(1)), Some(1));
    }

    #[tokio::test]
    async fn ttl_and_capacity() {
        let cache = VerificationCache::<u32, String>::new(CacheConfig {
            capacity: 3,
            ttl: Duration::from_secs(2),
        });
        for i in 0..3 {
            cache
                .get_or_compute(key(i), || async move { Ok(u32::from(i)) })
                .await
                .unwrap();
        }
        // Touch 0 so 1 is the least recently used.
        assert_eq!(cache.get(&key(0)), Some(0));
        cache
            .get_or_compute(key(9), || async { Ok(9) })
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(1)), None);
        assert_eq!(cache.get(&key(0)), Some(0));
        assert_eq!(cache.stats().evictions, 1);
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(cache.get(&key(0)), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_hands_over() {
        let cache = Arc::new(VerificationCache::<u32, String>::new(CacheConfig::default()));
        let c1 = cache.clone();
        let leader = tokio::spawn(async move {
            c1.get_or_compute(key(1), || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(1)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c2 = cache.clone();
        let waiter =
            tokio::spawn(async move { c2.get_or_compute(key(1), || async { Ok(2) }).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let v = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, Ok(2));
    }
}
