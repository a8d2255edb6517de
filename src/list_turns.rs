//! Watches that list one at a time.
//!
//! The operator watches each namespace on its own (see [`crate::namespaces`]), and at start
//! every one of those watches lists its namespace at once. A list response is held whole while
//! it is decoded — managedFields and all, before anything can trim them — so the peak memory of
//! a start grew with the number of namespaces listed together: with 50,000 unrelated Secrets in
//! ten namespaces, ten pages of their metadata were decoded side by side. [`in_turn`] makes the
//! watches that share [`Turns`] take turns for their list phase (from `Init` to `InitDone`);
//! once listed, they watch side by side as before. A turn lasts at most [`TURN`]: a list that
//! hangs (an API server that stopped answering) goes on without it, and delays the others by no
//! more than that.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use kube::runtime::watcher::Event;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};

/// The longest one list holds its turn. A namespace of 50,000 Secrets lists in a few seconds.
pub const TURN: Duration = Duration::from_secs(10);

/// The turns a group of watches take to list: one at a time.
#[derive(Clone)]
pub struct Turns(Arc<Semaphore>);

impl Default for Turns {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

struct Gate<S> {
    watch: S,
    turns: Turns,
    /// The turn held, and until when.
    turn: Option<(OwnedSemaphorePermit, Instant)>,
    wants_turn: bool,
}

impl<S> Gate<S> {
    /// After `item`: a list announced waits for a turn; a list done or failed ends the turn.
    fn saw<K, E>(&mut self, item: &Result<Event<K>, E>) {
        match item {
            Ok(Event::Init) => self.wants_turn = self.turn.is_none(),
            Ok(Event::InitDone) | Err(_) => self.turn = None,
            _ => {}
        }
    }
}

/// `watch`, listing only in its turn. A watcher with kube's default `ListWatch` strategy (the
/// operator's) announces a list with `Init` before it sends the request, so the next poll waits
/// for the turn; `InitDone` ends the turn, and so does an error (the watcher backs off and lists
/// again, announcing it with another `Init`), and so does [`TURN`] passing.
pub fn in_turn<K, E, S>(
    watch: S,
    turns: &Turns,
) -> impl Stream<Item = Result<Event<K>, E>> + Send + use<K, E, S>
where
    S: Stream<Item = Result<Event<K>, E>> + Send + 'static,
    K: Send + 'static,
    E: Send + 'static,
{
    let gate = Gate {
        watch: watch.boxed(),
        turns: turns.clone(),
        turn: None,
        wants_turn: false,
    };
    stream::unfold(gate, |mut gate| async move {
        if gate.wants_turn {
            let turns = gate.turns.0.clone();
            let turn = turns.acquire_owned().await.expect("never closed");
            gate.turn = Some((turn, Instant::now() + TURN));
            gate.wants_turn = false;
        }
        let item = match gate.turn.as_ref().map(|(_, until)| *until) {
            None => gate.watch.next().await?,
            Some(until) => tokio::select! {
                item = gate.watch.next() => item?,
                () = sleep_until(until) => {
                    // Taking too long: list on, without the turn (`next` loses nothing).
                    gate.turn = None;
                    gate.watch.next().await?
                }
            },
        };
        gate.saw(&item);
        Some((item, gate))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use futures::channel::mpsc;

    type Item = Result<Event<u32>, String>;

    type Tx = mpsc::UnboundedSender<Item>;

    /// A watch fed by hand, and the stream that lists only in its turn.
    fn watch(turns: &Turns) -> (Tx, impl Stream<Item = Item> + Unpin + use<>) {
        let (tx, rx) = mpsc::unbounded();
        (tx, Box::pin(in_turn(rx, turns)))
    }

    /// Two watches that take turns.
    #[allow(clippy::type_complexity)]
    fn two() -> (
        (Tx, impl Stream<Item = Item> + Unpin),
        (Tx, impl Stream<Item = Item> + Unpin),
    ) {
        let turns = Turns::default();
        (watch(&turns), watch(&turns))
    }

    /// Two watches that announced a list: a is listing (one object seen), b waits for its turn.
    #[allow(clippy::type_complexity)]
    fn a_lists_b_waits() -> (
        (Tx, impl Stream<Item = Item> + Unpin),
        (Tx, impl Stream<Item = Item> + Unpin),
    ) {
        let ((a_tx, mut a), (b_tx, mut b)) = two();
        send(&a_tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        send(&b_tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut a)), Some("InitApply"));
        assert_eq!(event(poll(&mut b)), Some("Init"));
        ((a_tx, a), (b_tx, b))
    }

    fn send(tx: &Tx, items: impl IntoIterator<Item = Item>) {
        for item in items {
            tx.unbounded_send(item).unwrap();
        }
    }

    /// What the stream yields without waiting: `Some(item)`, or `None` while it waits.
    fn poll(s: &mut (impl Stream<Item = Item> + Unpin)) -> Option<Item> {
        s.next().now_or_never().flatten()
    }

    fn event(item: Option<Item>) -> Option<&'static str> {
        match item? {
            Ok(Event::Init) => Some("Init"),
            Ok(Event::InitApply(_)) => Some("InitApply"),
            Ok(Event::InitDone) => Some("InitDone"),
            Ok(Event::Apply(_)) => Some("Apply"),
            Ok(Event::Delete(_)) => Some("Delete"),
            Err(_) => Some("Err"),
        }
    }

    #[tokio::test]
    async fn a_second_list_waits_until_the_first_is_done_then_both_watch() {
        let ((a_tx, mut a), (b_tx, mut b)) = two();
        for tx in [&a_tx, &b_tx] {
            send(tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        }
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut b)), Some("Init"));
        // a polled first after its Init: a lists, b waits for its turn.
        assert_eq!(event(poll(&mut a)), Some("InitApply"));
        assert_eq!(event(poll(&mut b)), None);
        send(&a_tx, [Ok(Event::InitDone)]);
        assert_eq!(event(poll(&mut a)), Some("InitDone"));
        // a's list is done: b lists, and a watches meanwhile.
        assert_eq!(event(poll(&mut b)), Some("InitApply"));
        send(&a_tx, [Ok(Event::Apply(2))]);
        assert_eq!(event(poll(&mut a)), Some("Apply"));
        send(&b_tx, [Ok(Event::InitDone)]);
        assert_eq!(event(poll(&mut b)), Some("InitDone"));
    }

    #[tokio::test]
    async fn a_failed_list_gives_up_its_turn_and_takes_another_to_list_again() {
        let ((a_tx, mut a), (b_tx, mut b)) = two();
        send(&a_tx, [Ok(Event::Init), Err("list refused".into())]);
        send(&b_tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut a)), Some("Err"));
        assert_eq!(event(poll(&mut b)), Some("Init"));
        assert_eq!(event(poll(&mut b)), Some("InitApply"));
        // a lists again once b's list is done.
        send(&a_tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut a)), None);
        send(&b_tx, [Ok(Event::InitDone)]);
        assert_eq!(event(poll(&mut b)), Some("InitDone"));
        assert_eq!(event(poll(&mut a)), Some("InitApply"));
    }

    #[tokio::test]
    async fn a_watch_that_ends_gives_up_its_turn() {
        let ((a_tx, mut a), (b_tx, mut b)) = two();
        send(&a_tx, [Ok(Event::Init)]);
        assert_eq!(event(poll(&mut a)), Some("Init"));
        send(&b_tx, [Ok(Event::Init), Ok(Event::InitApply(1))]);
        assert_eq!(event(poll(&mut b)), Some("Init"));
        assert_eq!(event(poll(&mut a)), None); // a holds the turn, nothing sent yet
        assert_eq!(event(poll(&mut b)), None);
        drop(a_tx);
        assert!(a.next().await.is_none());
        drop(a);
        assert_eq!(event(poll(&mut b)), Some("InitApply"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_that_takes_too_long_goes_on_without_its_turn() {
        let ((a_tx, mut a), (_b_tx, mut b)) = a_lists_b_waits();
        // a's list hangs: b waits, for a turn's length and no longer.
        tokio::time::sleep(TURN - Duration::from_millis(1)).await;
        assert_eq!(event(poll(&mut a)), None);
        assert_eq!(event(poll(&mut b)), None);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(event(poll(&mut a)), None);
        assert_eq!(event(poll(&mut b)), Some("InitApply"));
        // a's list still finishes, and its InitDone takes nothing from b.
        send(&a_tx, [Ok(Event::InitApply(2)), Ok(Event::InitDone)]);
        assert_eq!(event(poll(&mut a)), Some("InitApply"));
        assert_eq!(event(poll(&mut a)), Some("InitDone"));
    }

    #[tokio::test]
    async fn a_list_announced_while_holding_the_turn_does_not_wait_for_itself() {
        let ((a_tx, mut a), _) = two();
        send(
            &a_tx,
            [Ok(Event::Init), Ok(Event::Init), Ok(Event::InitApply(1))],
        );
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut a)), Some("Init"));
        assert_eq!(event(poll(&mut a)), Some("InitApply"));
    }

    #[tokio::test]
    async fn a_watch_dropped_while_listing_gives_up_its_turn() {
        let ((a_tx, a), (_b_tx, mut b)) = a_lists_b_waits();
        assert_eq!(event(poll(&mut b)), None);
        drop(a); // its sender still open: the watch did not end, it was dropped
        assert_eq!(event(poll(&mut b)), Some("InitApply"));
        drop(a_tx);
    }
}
