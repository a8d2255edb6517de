//! Leader election: which replica may write.
//!
//! kube-lease-manager acquires and renews a coordination.k8s.io Lease ([`lease`]). Whether this
//! replica may write is decided right before every reconcile and every write request ([`fence`])
//! from what the Lease itself says: our claim is current until its last renewal plus the lease
//! duration minus a margin, so a replica that cannot renew (API outage, paused process) stops
//! writing before anyone else may take over. Writes keep their resourceVersion preconditions as
//! the fence behind this one. Standby replicas run the controller with warm caches and skip the
//! reconciles; becoming leader reconciles every ApiToken at once.

mod fence;
mod lease;

use std::sync::{Arc, Mutex};

use futures::Stream;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;

pub use fence::{Fence, NotLeader};
pub use lease::{Election, Elector};

/// What the Lease says about its holder, as last observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claim {
    pub holder: Option<String>,
    pub renewed_at: Option<Timestamp>,
    pub duration: Option<SignedDuration>,
}

impl Claim {
    pub fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renewed_at: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .map(|d| SignedDuration::from_secs(d.into())),
        }
    }

    /// When the claim ends unless renewed: the last renewal plus the lease duration.
    pub fn ends_at(&self) -> Option<Timestamp> {
        self.holder.as_ref()?;
        self.renewed_at?.checked_add(self.duration?).ok()
    }

    /// Until when `me` may write on this claim: [`Claim::ends_at`] minus `margin`. None when
    /// the claim is not ours or is incomplete.
    pub fn deadline(&self, me: &str, margin: SignedDuration) -> Option<Timestamp> {
        if self.holder.as_deref() != Some(me) {
            return None;
        }
        self.ends_at()?.checked_sub(margin).ok()
    }

    /// The holder gave the Lease up before its claim ended (a graceful stop), as opposed to a
    /// standby clearing an expired claim.
    pub fn released_early(previous: Option<&Claim>, now: &Claim, at: Timestamp) -> bool {
        now.holder.is_none()
            && previous
                .and_then(Claim::ends_at)
                .is_some_and(|end| end > at)
    }
}

/// Whether this replica may write now; shared by the controller, the write fence and metrics.
#[derive(Clone)]
pub struct Leadership(Arc<Inner>);

struct Inner {
    /// None without leader election: always allowed to write.
    identity: Option<String>,
    margin: SignedDuration,
    state: Mutex<State>,
    /// Bumped each time this replica becomes the writer.
    gained: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// kube-lease-manager's verdict.
    elected: bool,
    /// The Lease as last observed.
    claim: Option<Claim>,
}

impl Leadership {
    /// Without election: this process is the only writer.
    pub fn sole() -> Self {
        Self::new(None, SignedDuration::ZERO)
    }

    /// Elected as `identity`; stops writing `margin` before the claim's end.
    pub fn elected(identity: String, margin: SignedDuration) -> Self {
        Self::new(Some(identity), margin)
    }

    fn new(identity: Option<String>, margin: SignedDuration) -> Self {
        Self(Arc::new(Inner {
            identity,
            margin,
            state: Mutex::default(),
            gained: watch::channel(0).0,
        }))
    }

    pub fn identity(&self) -> Option<&str> {
        self.0.identity.as_deref()
    }

    /// Is my claim current? Asked right before each reconcile and each write.
    pub fn is_current(&self) -> bool {
        self.is_current_at(Timestamp::now())
    }

    pub fn is_current_at(&self, now: Timestamp) -> bool {
        let state = self
            .0
            .state
            .lock()
            .expect("leadership state is never poisoned");
        self.current(&state, now)
    }

    fn current(&self, state: &State, now: Timestamp) -> bool {
        let Some(me) = &self.0.identity else {
            return true;
        };
        state.elected
            && state
                .claim
                .as_ref()
                .and_then(|c| c.deadline(me, self.0.margin))
                .is_some_and(|deadline| now < deadline)
    }

    /// kube-lease-manager says we hold (or lost) the Lease.
    pub fn set_elected(&self, elected: bool) {
        self.update(|s| s.elected = elected);
    }

    /// The Lease as just observed (None: it is gone).
    pub fn observe(&self, claim: Option<Claim>) {
        self.update(|s| s.claim = claim);
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let now = Timestamp::now();
        let (before, after) = {
            let mut state = self
                .0
                .state
                .lock()
                .expect("leadership state is never poisoned");
            let before = self.current(&state, now);
            change(&mut state);
            (before, self.current(&state, now))
        };
        if before != after {
            tracing::info!(
                identity = self.identity(),
                leader = after,
                "leadership changed"
            );
        }
        if after && !before {
            self.0.gained.send_modify(|n| *n += 1);
        }
    }

    /// Yields each time this replica becomes the writer (for `Controller::reconcile_all_on`).
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.0.gained.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }
}

#[cfg(test)]
mod tests;
