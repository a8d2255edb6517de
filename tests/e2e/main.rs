//! End-to-end tests against the real control plane from tests/cluster (`make test` starts it).
mod apitoken;
mod cluster;
mod deputy;
mod harness;
mod leaks;
mod node;
mod rotation;
mod validation;
