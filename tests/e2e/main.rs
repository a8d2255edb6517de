//! End-to-end tests against the real control plane from tests/cluster (`make test` starts it).
mod apitoken;
#[path = "../argocd/lua.rs"]
mod argocd_lua;
mod boundaries;
mod chart;
mod cluster;
mod deputy;
mod harness;
mod helm;
mod keysets;
mod kstatus;
mod leader;
mod leaks;
mod metrics;
mod namespaces;
mod node;
mod operator;
mod proxy;
mod rbac;
mod restore;
mod restore_order;
mod rollout;
mod rotation;
mod teardown;
mod upgrade;
mod validation;
mod verifier;
