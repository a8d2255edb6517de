//! End-to-end tests against the real control plane from tests/cluster (`make test` starts it).
mod apitoken;
mod cluster;
mod harness;
mod leader;
mod metrics;
mod namespaces;
mod operator;
mod rbac;
mod rotation;
mod validation;
