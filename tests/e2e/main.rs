//! End-to-end tests against the real control plane from tests/cluster (`make test` starts it).
mod apitoken;
mod cluster;
mod harness;
mod node;
mod restore;
mod rotation;
mod teardown;
mod upgrade;
mod validation;
