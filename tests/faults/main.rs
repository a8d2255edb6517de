//! The fault suite (`make test-faults`): crashes at the worst moment, API server and etcd
//! outages, write conflicts and downtime, against a control plane of its own (the outages stop
//! parts of it, so the tests run one at a time: `--test-threads=1`). Built with the `failpoints`
//! feature so the operator binary can be told to abort mid-reconcile.
#[path = "../e2e/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../e2e/operator.rs"]
#[allow(dead_code)]
mod operator;

mod at_rest;
mod common;
mod conflicts;
mod crash;
mod downtime;
mod failover;
mod leaks;
mod outage;
