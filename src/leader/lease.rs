//! Running the election: kube-lease-manager acquires and renews the Lease, and a watch on that
//! same Lease feeds [`Leadership`] the claim (holder, last renewal) that allows writes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{Claim, Leadership};

/// Which Lease, who we are, and how long a claim lasts after its last renewal.
#[derive(Clone, Debug)]
pub struct Election {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

impl Election {
    fn duration_secs(&self) -> u64 {
        self.duration.as_secs().max(3)
    }

    /// kube-lease-manager renews this long before the claim ends: a third of the duration.
    pub fn renew_before(&self) -> Duration {
        Duration::from_secs((self.duration_secs() / 3).max(1))
    }

    /// Writes stop this long before the claim ends: a fifth of the duration. It covers clock
    /// skew between replicas and a write still in flight; a renewal lands before it is reached.
    pub fn margin(&self) -> SignedDuration {
        SignedDuration::from_millis((self.duration_secs() * 200) as i64)
    }

    /// Starts electing; `leadership` follows from now on.
    pub async fn start(
        self,
        client: Client,
        leadership: Leadership,
    ) -> Result<Elector, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_secs())
            .with_grace(self.renew_before().as_secs())
            .build()
            .await?;
        let released = Arc::new(Notify::new());
        let api = Api::namespaced(client, &self.namespace);
        let observer = tokio::spawn(observe(
            api,
            self.lease_name.clone(),
            leadership.clone(),
            released.clone(),
        ));
        let (stop, stopped) = oneshot::channel();
        let supervisor = tokio::spawn(supervise(manager, leadership.clone(), released, stopped));
        tracing::info!(lease = %self.lease_name, namespace = %self.namespace, identity = %self.identity,
            duration_secs = self.duration_secs(), "leader election started");
        Ok(Elector {
            supervisor,
            observer,
            stop,
        })
    }
}

/// Runs kube-lease-manager and passes its verdict on. A standby's lease manager sleeps until
/// the holder's claim would end; when the holder releases the Lease early (a graceful stop),
/// the manager is restarted so that it looks, and takes over, at once. (Its local state then
/// still shows the old, unexpired claim, so stopping it writes nothing to the Lease.)
async fn supervise(
    mut manager: LeaseManager,
    leadership: Leadership,
    released: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    enum Next {
        Died,
        Restart,
        Stop,
    }
    loop {
        let (mut channel, task) = manager.watch().await;
        let next = loop {
            let elected = *channel.borrow_and_update();
            leadership.set_elected(elected);
            tokio::select! {
                changed = channel.changed() => if changed.is_err() { break Next::Died },
                () = released.notified(), if !elected => break Next::Restart,
                _ = &mut stop => break Next::Stop,
            }
        };
        leadership.set_elected(false);
        // Dropping the state channel makes kube-lease-manager release the Lease if we hold
        // it (no write otherwise) and return the manager.
        drop(channel);
        let ended = task.await;
        match (next, ended) {
            (Next::Stop, Ok(Ok(_))) => {
                tracing::info!("released the leader lease");
                return Ok(());
            }
            (Next::Restart, Ok(Ok(returned))) => {
                tracing::debug!("the Lease was released; looking at it now");
                manager = returned;
            }
            (_, Ok(Ok(_))) => return Err("the lease task ended".into()),
            (_, Ok(Err(error))) => return Err(format!("the lease task failed: {error}")),
            (_, Err(error)) => return Err(format!("the lease task panicked: {error}")),
        }
    }
}

/// Follows the Lease until it is deleted; signals `released` when a holder gives it up early.
async fn observe(api: Api<Lease>, name: String, leadership: Leadership, released: Arc<Notify>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed = false;
    let mut last: Option<Claim> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = false,
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => {
                listed = true;
                let claim = Claim::from_lease(&lease);
                if Claim::released_early(last.as_ref(), &claim, jiff::Timestamp::now()) {
                    released.notify_one();
                }
                last = Some(claim.clone());
                leadership.observe(Some(claim));
            }
            Ok(watcher::Event::InitDone) if listed => {}
            Ok(watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                leadership.observe(None);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, lease = %name, "watching the Lease failed; retrying")
            }
        }
    }
}

/// The running election.
pub struct Elector {
    supervisor: JoinHandle<Result<(), String>>,
    observer: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Elector {
    /// Resolves if the election stops by itself (the lease task died, or the Lease was
    /// deleted and would never be re-created): the process must then exit.
    pub async fn stopped(&mut self) -> String {
        tokio::select! {
            result = &mut self.supervisor => match result {
                Ok(Ok(())) => "the lease task ended".to_owned(),
                Ok(Err(reason)) => reason,
                Err(error) => format!("the lease task panicked: {error}"),
            },
            _ = &mut self.observer => "the Lease was deleted".to_owned(),
        }
    }

    /// Stops writing and gives the Lease up (after the controller has stopped).
    pub async fn release(self) {
        self.observer.abort();
        let _ = self.stop.send(());
        match self.supervisor.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => tracing::warn!(%reason, "releasing the leader lease failed"),
            Err(error) => tracing::warn!(%error, "the lease task panicked"),
        }
    }
}
